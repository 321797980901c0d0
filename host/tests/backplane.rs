//! The backplane conformance suite: one set of specs, run unchanged against
//! the memory backplane (three nodes in one process) and against NATS
//! JetStream (three nodes on a real nats-server). Each spec gets a fresh
//! cluster and its own hub; every wait is bounded.
//!
//! "Nothing arrives" is checked without sleeping: after the send that must
//! not arrive, the same node sends a marker to the same connection over the
//! same partition, and the marker must be the next frame it gets.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use support::nats_server::NatsServer;
use switchboard::address::{HubKey, OutboundInvocation, Target};
use switchboard::backplane::memory::MemoryBus;
use switchboard::backplane::nats::NatsBackplane;
use switchboard::backplane::{Backplane, Envelope, Inbox, Receipt};
use switchboard::config::NatsConfig;
use switchboard::outbound::{ConnectionHandle, Detached};
use switchboard::protocol::Protocol;
use switchboard::router::{RouteError, Router};

const WAIT: Duration = Duration::from_secs(10);

/// A backplane that counts what its node publishes.
struct Counting {
    inner: Arc<dyn Backplane>,
    published: Arc<AtomicU64>,
}

impl Backplane for Counting {
    fn publish(&self, envelope: Envelope) -> Receipt {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.inner.publish(envelope)
    }
}

struct Node {
    router: Arc<Router>,
    published: Arc<AtomicU64>,
}

struct Cluster {
    nodes: Vec<Node>,
    hub: HubKey,
    _nats: Option<NatsServer>,
}

fn node(backplane: Arc<dyn Backplane>, mut inbox: Inbox) -> Node {
    let published = Arc::new(AtomicU64::new(0));
    let router = Arc::new(Router::new(Arc::new(Counting {
        inner: backplane,
        published: published.clone(),
    })));
    let weak = Arc::downgrade(&router);
    tokio::spawn(async move {
        while let Some(envelope) = inbox.recv().await {
            let Some(router) = weak.upgrade() else { return };
            router.apply_remote(envelope);
        }
    });
    Node { router, published }
}

/// A group change or close is valid, and stored for the other nodes.
async fn stored(change: Result<Receipt, RouteError>) {
    change
        .expect("a valid change")
        .wait()
        .await
        .expect("stored");
}

impl Cluster {
    fn memory(n: usize) -> Cluster {
        let bus = MemoryBus::new();
        let nodes = (0..n)
            .map(|_| {
                let (backplane, inbox) = bus.join();
                node(backplane, inbox)
            })
            .collect();
        Cluster {
            nodes,
            hub: HubKey::new("t1", "spec"),
            _nats: None,
        }
    }

    async fn nats(n: usize) -> Cluster {
        let server = NatsServer::start();
        let config = NatsConfig {
            url: server.url(),
            partitions: 3,
            ..Default::default()
        };
        let mut nodes = Vec::new();
        for _ in 0..n {
            let backplane = NatsBackplane::connect(&config).await.expect("connect");
            let inbox = backplane.subscribe();
            assert!(backplane.wait_ready(WAIT).await, "backplane ready");
            nodes.push(node(backplane, inbox));
        }
        Cluster {
            nodes,
            hub: HubKey::new("t1", "spec"),
            _nats: Some(server),
        }
    }

    fn router(&self, i: usize) -> &Router {
        &self.nodes[i].router
    }

    /// Connection `id` joins `group` through node `i`'s router (wherever the
    /// connection is), once the cluster stored the change.
    async fn join(&self, i: usize, id: &str, group: &str) {
        stored(self.router(i).add_to_group(&self.hub, id, group)).await;
    }

    /// Connection `id` on node `i` ends.
    fn disconnect(&self, i: usize, id: &str) {
        let router = self.router(i);
        let handle = router.local_connection(&self.hub, id).expect("held");
        router.unregister(&handle);
    }

    /// A connection on node `i`.
    fn connect(&self, i: usize, id: &str, user: Option<&str>) -> Conn {
        self.connect_to(i, &self.hub.clone(), id, user)
    }

    fn connect_to(&self, i: usize, hub: &HubKey, id: &str, user: Option<&str>) -> Conn {
        let (handle, rx) =
            ConnectionHandle::new_detached(id, hub.clone(), user, Protocol::Json, 10_000);
        self.router(i).register(handle);
        Conn {
            id: id.to_owned(),
            rx,
        }
    }

    fn send(&self, from: usize, target: Target, text: &str) {
        let _ = self.send_in(from, &self.hub.clone(), target, text);
    }

    /// Sends and returns the receipt of the send.
    fn send_receipt(&self, from: usize, target: Target, text: &str) -> Receipt {
        self.send_in(from, &self.hub.clone(), target, text)
    }

    fn send_in(&self, from: usize, hub: &HubKey, target: Target, text: &str) -> Receipt {
        let message =
            OutboundInvocation::from_json("m", &format!("[{}]", json(text))).expect("valid args");
        self.router(from).send(hub, &target, Arc::new(message))
    }

    /// Sends a marker from node `from` to `conn` and expects it to be the
    /// next frame `conn` receives: nothing else sent before it by `from` got there.
    async fn expect_quiet(&self, from: usize, conn: &mut Conn) {
        self.expect_quiet_in(from, &self.hub.clone(), conn).await;
    }

    async fn expect_quiet_in(&self, from: usize, hub: &HubKey, conn: &mut Conn) {
        let marker = format!("marker-{}", conn.id);
        let _ = self.send_in(
            from,
            hub,
            Target::Connections(vec![conn.id.clone()]),
            &marker,
        );
        assert_eq!(
            conn.next().await,
            marker,
            "{} got something unexpected",
            conn.id
        );
    }
}

fn json(text: &str) -> String {
    serde_json::to_string(text).expect("string")
}

fn conns(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The members of `name` but the connections `except`.
fn group(name: &str, except: &[&str]) -> Target {
    Target::Groups {
        groups: conns(&[name]),
        except: conns(except),
    }
}

struct Conn {
    id: String,
    rx: Detached,
}

impl Conn {
    /// The text argument of the next invocation this connection receives.
    async fn next(&mut self) -> String {
        let frame = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: nothing arrived within {WAIT:?}", self.id))
            .expect("connection open");
        let body = frame.strip_suffix(&[0x1e]).expect("a JSON hub frame");
        let value: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        value["arguments"][0]
            .as_str()
            .expect("a text argument")
            .to_owned()
    }

    fn try_next(&mut self) -> Option<Bytes> {
        self.rx.try_recv()
    }
}

mod specs {
    use super::*;

    pub(crate) async fn all_reaches_every_node(c: &Cluster) {
        let mut a = c.connect(0, "a", None);
        let mut b = c.connect(1, "b", None);
        let mut d = c.connect(2, "d", None);
        c.send(1, Target::All { except: vec![] }, "hi");
        for conn in [&mut a, &mut b, &mut d] {
            assert_eq!(conn.next().await, "hi");
        }
    }

    pub(crate) async fn all_except_skips_listed_connections_on_any_node(c: &Cluster) {
        let mut a = c.connect(0, "a", None);
        let mut b = c.connect(1, "b", None);
        let mut d = c.connect(2, "d", None);
        c.send(
            0,
            Target::All {
                except: conns(&["a", "d"]),
            },
            "x",
        );
        assert_eq!(b.next().await, "x");
        c.expect_quiet(0, &mut d).await;
        c.expect_quiet(1, &mut a).await;
    }

    pub(crate) async fn connection_on_another_node(c: &Cluster) {
        let mut a = c.connect(0, "a", None);
        let mut b = c.connect(1, "b", None);
        c.send(0, Target::Connections(conns(&["b"])), "to-b");
        assert_eq!(b.next().await, "to-b");
        c.expect_quiet(1, &mut a).await;
    }

    pub(crate) async fn connections_spread_over_nodes(c: &Cluster) {
        let mut a = c.connect(0, "a", None);
        let mut b = c.connect(1, "b", None);
        let mut d = c.connect(2, "d", None);
        let mut e = c.connect(2, "e", None);
        c.send(0, Target::Connections(conns(&["a", "b", "d", "d"])), "many");
        for conn in [&mut a, &mut b, &mut d] {
            assert_eq!(conn.next().await, "many");
        }
        c.expect_quiet(0, &mut d).await;
        c.expect_quiet(0, &mut e).await;
    }

    pub(crate) async fn a_cross_node_send_is_confirmed_before_it_counts_as_sent(c: &Cluster) {
        let mut b = c.connect(1, "b", None);
        let receipt = c.send_receipt(0, Target::Connections(conns(&["b"])), "confirmed");
        let outcome = tokio::time::timeout(WAIT, receipt.wait())
            .await
            .expect("a receipt in time");
        assert_eq!(outcome, Ok(()));
        assert_eq!(b.next().await, "confirmed");
    }

    pub(crate) async fn a_local_send_needs_no_confirmation(c: &Cluster) {
        let mut a = c.connect(0, "a", None);
        let receipt = c.send_receipt(0, Target::Connections(conns(&["a"])), "local");
        assert_eq!(receipt.ready(), Some(&Ok(())), "ready at once");
        assert_eq!(a.next().await, "local");
    }

    pub(crate) async fn send_to_local_connection_never_leaves_the_node(c: &Cluster) {
        let mut a = c.connect(0, "a", None);
        let _b = c.connect(1, "b", None);
        let before = c.nodes[0].published.load(Ordering::Relaxed);
        c.send(0, Target::Connections(conns(&["a"])), "local");
        assert_eq!(a.next().await, "local");
        assert_eq!(c.nodes[0].published.load(Ordering::Relaxed), before);
    }

    pub(crate) async fn user_with_connections_on_several_nodes(c: &Cluster) {
        let mut a1 = c.connect(0, "a1", Some("alice"));
        let mut a2 = c.connect(1, "a2", Some("alice"));
        let mut a3 = c.connect(2, "a3", Some("alice"));
        let mut bob = c.connect(2, "bob", Some("bob"));
        c.send(1, Target::Users(conns(&["alice"])), "for-alice");
        for conn in [&mut a1, &mut a2, &mut a3] {
            assert_eq!(conn.next().await, "for-alice");
        }
        c.expect_quiet(1, &mut bob).await;
    }

    pub(crate) async fn users_from_a_node_without_them(c: &Cluster) {
        let mut a = c.connect(1, "a", Some("alice"));
        let mut b = c.connect(2, "b", Some("bob"));
        let mut carol = c.connect(2, "c", Some("carol"));
        c.send(0, Target::Users(conns(&["alice", "bob", "nobody"])), "u");
        assert_eq!(a.next().await, "u");
        assert_eq!(b.next().await, "u");
        c.expect_quiet(0, &mut carol).await;
    }

    pub(crate) async fn group_spanning_three_nodes(c: &Cluster) {
        let mut members = Vec::new();
        for i in 0..3 {
            let conn = c.connect(i, &format!("m{i}"), None);
            c.join(i, &conn.id, "room").await;
            members.push(conn);
        }
        let mut outsider = c.connect(1, "outsider", None);
        c.send(2, group("room", &[]), "g");
        for conn in &mut members {
            assert_eq!(conn.next().await, "g");
        }
        c.expect_quiet(2, &mut outsider).await;
    }

    pub(crate) async fn others_in_group(c: &Cluster) {
        let mut me = c.connect(0, "me", None);
        let mut other = c.connect(1, "other", None);
        c.join(0, "me", "g").await;
        c.join(1, "other", "g").await;
        c.send(0, group("g", &["me"]), "o");
        assert_eq!(other.next().await, "o");
        // `me` is local to node 0: a marker from node 1 follows anything node 0 sent it.
        c.send(1, Target::Connections(conns(&["other"])), "sync");
        assert_eq!(other.next().await, "sync");
        c.expect_quiet(1, &mut me).await;
    }

    pub(crate) async fn group_except_on_a_remote_node(c: &Cluster) {
        let mut x = c.connect(1, "x", None);
        let mut y = c.connect(2, "y", None);
        c.join(1, "x", "g").await;
        c.join(2, "y", "g").await;
        c.send(0, group("g", &["y"]), "e");
        assert_eq!(x.next().await, "e");
        c.expect_quiet(0, &mut y).await;
    }

    pub(crate) async fn group_add_for_a_connection_on_another_node(c: &Cluster) {
        let mut b = c.connect(1, "b", None);
        c.join(0, "b", "g").await;
        // Same sender, same partition: the add is applied before the send.
        c.send(0, group("g", &[]), "after-add");
        assert_eq!(b.next().await, "after-add");
        c.send(2, group("g", &[]), "from-2");
        assert_eq!(b.next().await, "from-2");
    }

    pub(crate) async fn group_remove_for_a_connection_on_another_node(c: &Cluster) {
        let mut b = c.connect(1, "b", None);
        c.join(1, "b", "g").await;
        stored(c.router(0).remove_from_group(&c.hub, "b", "g")).await;
        c.send(0, group("g", &[]), "after-remove");
        c.expect_quiet(0, &mut b).await;
    }

    pub(crate) async fn user_group_changes_reach_the_users_connections_on_every_node(c: &Cluster) {
        let mut near = c.connect(0, "u-near", Some("ug"));
        let mut far = c.connect(1, "u-far", Some("ug"));
        let mut other = c.connect(2, "not-u", Some("someone-else"));
        stored(c.router(2).add_user_to_group(&c.hub, "ug", "g")).await;
        let to_group = || group("g", &[]);
        c.send(2, to_group(), "to-user-group");
        assert_eq!(near.next().await, "to-user-group");
        assert_eq!(far.next().await, "to-user-group");
        c.expect_quiet(2, &mut other).await;
        stored(c.router(2).remove_user_from_group(&c.hub, "ug", "g")).await;
        c.send(2, to_group(), "after-remove");
        c.expect_quiet(2, &mut near).await;
        c.expect_quiet(2, &mut far).await;
    }

    pub(crate) async fn close_a_connection_on_another_node(c: &Cluster) {
        let _doomed = c.connect(1, "doomed", None);
        let mut bystander = c.connect(1, "bystander", None);
        // Node 0 does not hold it: the close goes to node 1 over the backplane.
        stored(Ok(c.router(0).close_connection(
            &c.hub,
            "doomed",
            Some("moved"),
        )))
        .await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while c
            .router(1)
            .local_connection(&c.hub, "doomed")
            .is_some_and(|h| !h.is_closed())
        {
            assert!(tokio::time::Instant::now() < deadline, "never closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Only the named connection closes.
        c.expect_quiet(0, &mut bystander).await;
    }

    pub(crate) async fn several_groups_deliver_once(c: &Cluster) {
        let mut b = c.connect(1, "b", None);
        for g in ["g1", "g2"] {
            c.join(1, "b", g).await;
        }
        c.send(
            0,
            Target::Groups {
                groups: conns(&["g1", "g2"]),
                except: vec![],
            },
            "once",
        );
        assert_eq!(b.next().await, "once");
        c.expect_quiet(0, &mut b).await;
    }

    pub(crate) async fn disconnected_connection_gets_nothing(c: &Cluster) {
        let mut gone = c.connect(1, "gone", Some("u"));
        let mut witness = c.connect(1, "witness", None);
        c.join(1, "gone", "g").await;
        c.disconnect(1, "gone");
        c.send(0, Target::Connections(conns(&["gone"])), "1");
        c.send(0, Target::Users(conns(&["u"])), "2");
        c.send(0, group("g", &[]), "3");
        c.send(
            0,
            Target::All {
                except: conns(&["witness"]),
            },
            "4",
        );
        c.expect_quiet(0, &mut witness).await;
        assert!(
            gone.try_next().is_none(),
            "a closed connection received a message"
        );
    }

    pub(crate) async fn groups_die_with_their_connection(c: &Cluster) {
        let _old = c.connect(1, "b", None);
        c.join(1, "b", "g").await;
        c.disconnect(1, "b");
        let mut again = c.connect(1, "b", None);
        c.send(0, group("g", &[]), "stale");
        c.expect_quiet(0, &mut again).await;
    }

    pub(crate) async fn no_echo_of_a_nodes_own_sends(c: &Cluster) {
        let mut a = c.connect(0, "a", None);
        let mut b = c.connect(1, "b", None);
        c.send(0, Target::All { except: vec![] }, "once");
        assert_eq!(a.next().await, "once");
        assert_eq!(b.next().await, "once");
        // Node 1 publishes after it read node 0's message: an echo of it to
        // node 0 would come first.
        c.send(
            1,
            Target::All {
                except: conns(&["b"]),
            },
            "after",
        );
        assert_eq!(a.next().await, "after", "node 0 got its own send back");
    }

    pub(crate) async fn per_sender_order_to_a_user_across_nodes(c: &Cluster) {
        let mut a = c.connect(1, "a", Some("alice"));
        let mut b = c.connect(2, "b", Some("alice"));
        const N: usize = 500;
        for i in 0..N {
            c.send(0, Target::Users(conns(&["alice"])), &i.to_string());
        }
        for conn in [&mut a, &mut b] {
            for i in 0..N {
                assert_eq!(conn.next().await, i.to_string(), "{} out of order", conn.id);
            }
        }
    }

    pub(crate) async fn per_sender_order_with_group_changes(c: &Cluster) {
        let mut b = c.connect(1, "b", None);
        let to_g = group("g", &[]);
        for round in 0..20 {
            c.join(0, "b", "g").await;
            c.send(0, to_g.clone(), &format!("in-{round}"));
            stored(c.router(0).remove_from_group(&c.hub, "b", "g")).await;
            c.send(0, to_g.clone(), &format!("out-{round}"));
        }
        for round in 0..20 {
            assert_eq!(b.next().await, format!("in-{round}"));
        }
        c.expect_quiet(0, &mut b).await;
    }

    pub(crate) fn hostile_names() -> Vec<String> {
        vec![
            ".".into(),
            "*".into(),
            ">".into(),
            "a.b".into(),
            "a b".into(),
            "t1.spec.g".into(),
            "ünï©ødé 🚀".into(),
            "g".repeat(1024),
        ]
    }

    pub(crate) async fn hostile_group_and_user_names(c: &Cluster) {
        let names = hostile_names();
        let mut plain = c.connect(2, "plain", Some("plain-user"));
        c.join(2, "plain", "g").await;
        let mut by_name = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let conn = c.connect(1, &format!("c{i}"), Some(name));
            c.join(1, &conn.id, name).await;
            by_name.push(conn);
        }
        for (i, name) in names.iter().enumerate() {
            c.send(
                0,
                Target::Groups {
                    groups: vec![name.clone()],
                    except: vec![],
                },
                &format!("g{i}"),
            );
            c.send(0, Target::Users(vec![name.clone()]), &format!("u{i}"));
        }
        for (i, conn) in by_name.iter_mut().enumerate() {
            assert_eq!(conn.next().await, format!("g{i}"));
            assert_eq!(conn.next().await, format!("u{i}"));
        }
        // No name acted as a wildcard: the plain member and user got nothing.
        c.expect_quiet(0, &mut plain).await;
        for conn in &mut by_name {
            c.expect_quiet(0, conn).await;
        }
    }

    pub(crate) async fn hostile_connection_ids(c: &Cluster) {
        for (i, name) in hostile_names().into_iter().enumerate() {
            let mut conn = c.connect(1, &name, None);
            c.send(0, Target::Connections(vec![name.clone()]), &format!("n{i}"));
            assert_eq!(conn.next().await, format!("n{i}"));
            c.disconnect(1, &name);
        }
    }

    pub(crate) async fn tenants_and_hubs_are_isolated(c: &Cluster) {
        let other_tenant = HubKey::new("t2", "spec");
        let other_hub = HubKey::new("t1", "spec2");
        let mut mine = c.connect(1, "x", Some("u"));
        let mut witness = c.connect(2, "w", None);
        let mut theirs = c.connect_to(1, &other_tenant, "x", Some("u"));
        let mut next_door = c.connect_to(2, &other_hub, "x", Some("u"));
        c.join(1, "x", "g").await;
        stored(c.router(1).add_to_group(&other_tenant, "x", "g")).await;
        stored(c.router(2).add_to_group(&other_hub, "x", "g")).await;
        c.send(0, Target::All { except: vec![] }, "all");
        c.send(0, Target::Users(conns(&["u"])), "user");
        c.send(0, group("g", &[]), "group");
        c.send(0, Target::Connections(conns(&["x"])), "conn");
        c.send(0, Target::Connections(conns(&["w"])), "done");
        for text in ["all", "user", "group", "conn"] {
            assert_eq!(mine.next().await, text);
        }
        assert_eq!(witness.next().await, "all");
        assert_eq!(witness.next().await, "done");
        // Both nodes have applied every envelope: a leak would be queued now.
        assert!(
            theirs.try_next().is_none(),
            "another tenant received a message"
        );
        assert!(
            next_door.try_next().is_none(),
            "another hub received a message"
        );
    }

    pub(crate) async fn hub_unknown_to_a_node_is_ignored(c: &Cluster) {
        let mut b = c.connect(1, "b", None);
        let unknown = HubKey::new("t1", "nowhere");
        let _ = c.send_in(0, &unknown, Target::All { except: vec![] }, "lost");
        stored(c.router(0).add_to_group(&unknown, "zz", "g")).await;
        c.send(0, Target::Connections(conns(&["b"])), "still-fine");
        assert_eq!(b.next().await, "still-fine");
    }
}

macro_rules! conformance {
    ($($spec:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $spec() {
                    let cluster = super::Cluster::memory(3);
                    super::specs::$spec(&cluster).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $spec() {
                    let cluster = super::Cluster::nats(3).await;
                    super::specs::$spec(&cluster).await;
                }
            )*
        }
    };
}

conformance!(
    all_reaches_every_node,
    a_cross_node_send_is_confirmed_before_it_counts_as_sent,
    a_local_send_needs_no_confirmation,
    all_except_skips_listed_connections_on_any_node,
    connection_on_another_node,
    connections_spread_over_nodes,
    send_to_local_connection_never_leaves_the_node,
    user_with_connections_on_several_nodes,
    users_from_a_node_without_them,
    group_spanning_three_nodes,
    others_in_group,
    group_except_on_a_remote_node,
    group_add_for_a_connection_on_another_node,
    group_remove_for_a_connection_on_another_node,
    several_groups_deliver_once,
    user_group_changes_reach_the_users_connections_on_every_node,
    close_a_connection_on_another_node,
    disconnected_connection_gets_nothing,
    groups_die_with_their_connection,
    no_echo_of_a_nodes_own_sends,
    per_sender_order_to_a_user_across_nodes,
    per_sender_order_with_group_changes,
    hostile_group_and_user_names,
    hostile_connection_ids,
    tenants_and_hubs_are_isolated,
    hub_unknown_to_a_node_is_ignored,
);
