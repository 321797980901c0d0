//! What a cluster on NATS JetStream adds beyond routing (the routing specs
//! are in `backplane.rs`): the shared key-value store, the connection
//! registry, and surviving a NATS restart. Each test starts its own
//! nats-server on a free loopback port and stops it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::nats_server::NatsServer;
use switchboard::address::{HubKey, OutboundInvocation, Target};
use switchboard::backplane::kv::KvStore;
use switchboard::backplane::nats::NatsBackplane;
use switchboard::backplane::nats::registry::Registry;
use switchboard::backplane::{Backplane, Inbox, PublishError, Receipt};
use switchboard::config::NatsConfig;
use switchboard::outbound::{ConnectionHandle, Detached};
use switchboard::protocol::Protocol;
use switchboard::router::Router;

const WAIT: Duration = Duration::from_secs(15);

fn config(server: &NatsServer) -> NatsConfig {
    NatsConfig {
        url: server.url(),
        partitions: 2,
        registry_ttl_secs: 3,
        ..Default::default()
    }
}

async fn backplane(config: &NatsConfig) -> (Arc<NatsBackplane>, Inbox) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let backplane = NatsBackplane::connect(config).await.expect("connect");
    let inbox = backplane.subscribe();
    assert!(backplane.wait_ready(WAIT).await, "ready");
    (backplane, inbox)
}

fn router(backplane: Arc<NatsBackplane>, mut inbox: Inbox) -> Arc<Router> {
    let router = Arc::new(Router::new(backplane as Arc<dyn Backplane>));
    let weak = Arc::downgrade(&router);
    tokio::spawn(async move {
        while let Some(envelope) = inbox.recv().await {
            let Some(router) = weak.upgrade() else { return };
            router.apply_remote(envelope);
        }
    });
    router
}

/// Two nodes on one NATS server, with a router each.
async fn two_nodes(
    config: &NatsConfig,
) -> (
    Arc<NatsBackplane>,
    Arc<NatsBackplane>,
    Arc<Router>,
    Arc<Router>,
) {
    let (one, in1) = backplane(config).await;
    let (two, in2) = backplane(config).await;
    let router1 = router(one.clone(), in1);
    let router2 = router(two.clone(), in2);
    (one, two, router1, router2)
}

/// The node the registry lists as holding connection `id` (None when it
/// lists none, or cannot be read).
async fn listed_node(registry: &Registry, hub: &HubKey, id: &str) -> Option<String> {
    registry.connection_node(hub, id).await.ok().flatten()
}

/// Waits until both nodes are connected and ready again after an outage.
async fn both_reconnect(one: &NatsBackplane, two: &NatsBackplane) {
    eventually(
        "nodes reconnect by themselves",
        Duration::from_secs(30),
        || async { one.is_ready() && two.is_ready() },
    )
    .await;
}

/// Polls `check` every 50 ms until it holds; panics after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_is_shared_by_nodes_with_ttl_and_compare_and_set() {
    let server = NatsServer::start();
    let config = config(&server);
    let (one, _in1) = backplane(&config).await;
    let (two, _in2) = backplane(&config).await;
    let kv1 = KvStore::jetstream(one.kv_store("demo"));
    let kv2 = KvStore::jetstream(two.kv_store("demo"));
    let other_tenant = KvStore::jetstream(two.kv_store("acme"));

    kv1.set("client:42", "conn-a", None).await.expect("set");
    assert_eq!(
        kv2.get("client:42").await.expect("get"),
        Some("conn-a".into())
    );
    assert_eq!(other_tenant.get("client:42").await.expect("get"), None);

    // Hostile keys are just keys.
    for key in ["a.b", "*", ">", "a b", "ü🚀", &"k".repeat(1024)] {
        kv2.set(key, key, None).await.expect("set hostile");
        assert_eq!(kv1.get(key).await.expect("get").as_deref(), Some(key));
    }
    assert_eq!(kv1.get("a").await.expect("get"), None, "no wildcard match");

    // Compare-and-set, across nodes.
    assert!(
        kv1.compare_and_set("lock", None, "1", None)
            .await
            .expect("cas")
    );
    assert!(
        !kv2.compare_and_set("lock", None, "2", None)
            .await
            .expect("cas")
    );
    assert!(
        !kv2.compare_and_set("lock", Some("x"), "2", None)
            .await
            .expect("cas")
    );
    assert!(
        kv2.compare_and_set("lock", Some("1"), "2", None)
            .await
            .expect("cas")
    );
    assert_eq!(kv1.get("lock").await.expect("get"), Some("2".into()));
    // Racing writers: exactly one wins.
    let (a, b) = tokio::join!(
        kv1.compare_and_set("race", None, "a", None),
        kv2.compare_and_set("race", None, "b", None)
    );
    assert_eq!(
        u8::from(a.expect("a")) + u8::from(b.expect("b")),
        1,
        "exactly one wins"
    );

    // Delete, then absent counts for compare-and-set.
    kv1.delete("lock").await.expect("delete");
    assert_eq!(kv2.get("lock").await.expect("get"), None);
    assert!(
        kv2.compare_and_set("lock", None, "3", None)
            .await
            .expect("cas")
    );

    // Per-entry TTL.
    kv1.set("short", "v", Some(Duration::from_secs(1)))
        .await
        .expect("set ttl");
    kv1.set("long", "v", Some(Duration::from_secs(3600)))
        .await
        .expect("set ttl");
    assert_eq!(kv2.get("short").await.expect("get"), Some("v".into()));
    eventually("the 1 s entry expires", Duration::from_secs(5), || async {
        kv2.get("short").await.expect("get").is_none()
    })
    .await;
    assert_eq!(kv2.get("long").await.expect("get"), Some("v".into()));
    assert!(
        kv2.compare_and_set("short", None, "again", None)
            .await
            .expect("cas")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_lists_connections_and_forgets_a_dead_node() {
    let server = NatsServer::start();
    let config = config(&server);
    let hub = HubKey::new("demo", "chat");
    let (one, in1) = backplane(&config).await;
    let (two, in2) = backplane(&config).await;
    let registry = two.registry();
    let one_id = one.node_id().to_owned();
    let router1 = router(one.clone(), in1);
    let _router2 = router(two, in2);
    let local: std::sync::Weak<Router> = Arc::downgrade(&router1);
    one.start_registry(local);
    let (a, _rx_a) =
        ConnectionHandle::new_detached("a.b*", hub.clone(), Some("alice"), Protocol::Json, 8);
    let (b, _rx_b) =
        ConnectionHandle::new_detached("b", hub.clone(), Some("alice"), Protocol::Json, 8);
    router1.register(a);
    router1.register(b.clone());

    eventually("node one registers its connections", WAIT, || async {
        listed_node(&registry, &hub, "a.b*").await.as_deref() == Some(one_id.as_str())
    })
    .await;
    assert_eq!(registry.user_connections(&hub, "alice").await.ok(), Some(2));
    assert_eq!(
        registry.connection_node(&hub, "a").await.expect("get"),
        None
    );

    // A connection that ends is removed at the next refresh.
    router1.unregister(&b);
    eventually("an ended connection leaves the registry", WAIT, || async {
        listed_node(&registry, &hub, "b").await.is_none()
    })
    .await;

    // Node one dies (its backplane and router stop): its entries expire.
    drop(router1);
    drop(one);
    eventually("a dead node's entries expire", WAIT, || async {
        listed_node(&registry, &hub, "a.b*").await.is_none()
    })
    .await;
    assert_eq!(registry.user_connections(&hub, "alice").await.ok(), Some(0));
}

fn text(frame: &Bytes) -> String {
    let body = frame.strip_suffix(&[0x1e]).expect("JSON frame");
    let value: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    value["arguments"][0].as_str().expect("text").to_owned()
}

async fn next(rx: &mut Detached) -> String {
    let frame = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message in time")
        .expect("open");
    text(&frame)
}

fn send(router: &Router, hub: &HubKey, to: &str, text: &str) {
    let _ = send_receipt(router, hub, to, text);
}

fn send_receipt(router: &Router, hub: &HubKey, to: &str, text: &str) -> Receipt {
    let message =
        OutboundInvocation::from_json("m", &serde_json::to_string(&[text]).expect("json"))
            .expect("args");
    router.send(
        hub,
        &Target::Connections(vec![to.to_owned()]),
        Arc::new(message),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_sends_wait_in_the_queue_and_arrive_once_in_order() {
    let mut server = NatsServer::start();
    let config = config(&server);
    let hub = HubKey::new("demo", "chat");
    let (one, two, router1, router2) = two_nodes(&config).await;
    let (local, mut local_rx) =
        ConnectionHandle::new_detached("local", hub.clone(), None, Protocol::Json, 10_000);
    let (remote, mut remote_rx) =
        ConnectionHandle::new_detached("remote", hub.clone(), None, Protocol::Json, 10_000);
    router1.register(local);
    router2.register(remote);

    send(&router1, &hub, "remote", "before");
    assert_eq!(next(&mut remote_rx).await, "before");

    server.stop();
    eventually("nodes notice the outage", WAIT, || async {
        !one.is_ready() && !two.is_ready()
    })
    .await;
    // Local delivery keeps working, confirmed at once; cross-node sends wait for NATS.
    let receipt = send_receipt(&router1, &hub, "local", "local-during-outage");
    assert_eq!(receipt.ready(), Some(&Ok(())));
    assert_eq!(next(&mut local_rx).await, "local-during-outage");
    let queued: Vec<Receipt> = (0..5)
        .map(|i| send_receipt(&router1, &hub, "remote", &format!("queued-{i}")))
        .collect();
    assert!(
        queued.iter().all(|r| r.ready().is_none()),
        "not confirmed while NATS is away"
    );
    assert!(one.stats().queued_disconnected >= 5);

    server.restart();
    for receipt in queued {
        let outcome = tokio::time::timeout(Duration::from_secs(30), receipt.wait())
            .await
            .expect("confirmed in time");
        assert_eq!(outcome, Ok(()));
    }
    both_reconnect(&one, &two).await;
    for i in 0..5 {
        assert_eq!(next(&mut remote_rx).await, format!("queued-{i}"));
    }
    for i in 0..50 {
        send(&router1, &hub, "remote", &format!("after-{i}"));
    }
    for i in 0..50 {
        assert_eq!(next(&mut remote_rx).await, format!("after-{i}"));
    }
    // Nothing more: no duplicates.
    send(&router1, &hub, "remote", "end");
    assert_eq!(next(&mut remote_rx).await, "end");
    assert!(remote_rx.try_recv().is_none());
    let stats = two.stats();
    assert_eq!(stats.received, 57, "{stats:?}");
    let sent = one.stats();
    assert!(sent.disconnects >= 1);
    assert!(sent.published_late >= 5, "{sent:?}");
    assert_eq!(sent.refused(), 0, "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_queue_age_refuses_sends_and_tells_the_sender() {
    let mut server = NatsServer::start();
    let config = NatsConfig {
        queue_max_age_ms: 500,
        ..config(&server)
    };
    let hub = HubKey::new("demo", "chat");
    let (one, two, router1, router2) = two_nodes(&config).await;
    let (remote, mut remote_rx) =
        ConnectionHandle::new_detached("remote", hub.clone(), None, Protocol::Json, 10_000);
    router2.register(remote);
    send(&router1, &hub, "remote", "before");
    assert_eq!(next(&mut remote_rx).await, "before");

    server.stop();
    eventually("node one notices the outage", WAIT, || async {
        !one.is_connected()
    })
    .await;
    let expired = send_receipt(&router1, &hub, "remote", "expired");
    let outcome = tokio::time::timeout(WAIT, expired.wait())
        .await
        .expect("settled in time");
    assert_eq!(outcome, Err(PublishError::Expired(500)));
    // Down for longer than the queue's age limit: refused at once.
    eventually("refused at once", WAIT, || async {
        matches!(
            send_receipt(&router1, &hub, "remote", "refused").ready(),
            Some(Err(PublishError::Unavailable(500)))
        )
    })
    .await;

    server.restart();
    both_reconnect(&one, &two).await;
    let receipt = send_receipt(&router1, &hub, "remote", "after");
    assert_eq!(receipt.wait().await, Ok(()));
    assert_eq!(
        next(&mut remote_rx).await,
        "after",
        "refused sends never arrive"
    );
    let stats = one.stats();
    assert!(
        stats.refused_expired >= 1 && stats.refused_unavailable >= 1,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_envelopes_carry_the_same_cursor_on_every_node() {
    use switchboard::backplane::nats::subject;
    use switchboard::backplane::{Envelope, EnvelopeKind};

    let server = NatsServer::start();
    let config = config(&server);
    let (sender, _in0) = backplane(&config).await;
    let (_one, mut in1) = backplane(&config).await;
    let (_two, mut in2) = backplane(&config).await;
    let hub = HubKey::new("demo", "cursor.hub*>");
    let partition = subject::partition(&hub, config.partitions);
    for i in 0..5 {
        let _ = sender.publish(Envelope::new(
            hub.clone(),
            EnvelopeKind::GroupAdd {
                connection: format!("c{i}"),
                group: "g".into(),
            },
        ));
    }
    let mut seen = Vec::new();
    for inbox in [&mut in1, &mut in2] {
        let mut cursors = Vec::new();
        for i in 0..5 {
            let envelope = tokio::time::timeout(WAIT, inbox.recv())
                .await
                .expect("an envelope in time")
                .expect("open");
            assert!(
                matches!(&envelope.kind, EnvelopeKind::GroupAdd { connection, .. } if *connection == format!("c{i}"))
            );
            let cursor = envelope.cursor.expect("an envelope from NATS has a cursor");
            assert_eq!(cursor.partition, partition);
            cursors.push(cursor);
        }
        // Stream sequences: consecutive, since nothing else went to this partition.
        for pair in cursors.windows(2) {
            assert_eq!(pair[1].sequence, pair[0].sequence + 1, "{cursors:?}");
        }
        seen.push(cursors);
    }
    assert_eq!(seen[0], seen[1], "one message, one cursor, on every node");
    // The sender reads its own envelopes back (and skips them): its cursor reaches the same place.
    let last = seen[0][4];
    eventually("the sender's cursor reaches the last one", WAIT, || async {
        sender.cursors() == vec![last]
    })
    .await;
}

/// The next envelope `inbox` gets.
async fn next_envelope(inbox: &mut Inbox) -> switchboard::backplane::Envelope {
    tokio::time::timeout(WAIT, inbox.recv())
        .await
        .expect("an envelope in time")
        .expect("open")
}

fn sent_text(envelope: &switchboard::backplane::Envelope) -> Option<String> {
    match &envelope.kind {
        switchboard::backplane::EnvelopeKind::Send { message, .. } => {
            let args: Vec<String> = serde_json::from_str(message.args.get()).ok()?;
            args.into_iter().next()
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_fences_the_old_owner_s_writes_in_the_store_itself() {
    use switchboard::backplane::{ClaimMark, Envelope, EnvelopeKind, Fence};

    let server = NatsServer::start();
    let config = config(&server);
    let (old_owner, mut own_inbox) = backplane(&config).await;
    let (taker, _taker_inbox) = backplane(&config).await;
    let (_observer, mut seen) = backplane(&config).await;
    let hub = HubKey::new("demo", "fenced");
    let to_group = |text: &str, fence: u64| {
        let message =
            OutboundInvocation::from_json("m", &serde_json::to_string(&[text]).expect("json"))
                .expect("args");
        Envelope::new(
            hub.clone(),
            EnvelopeKind::Send {
                target: group("g"),
                message: Arc::new(message),
            },
        )
        .fenced(Some(Fence {
            connection: "x".into(),
            after: ClaimMark::new(fence),
        }))
    };
    // Never claimed: the first owner's writes are stored, and its own node
    // delivers them when it reads them back (not in place).
    old_owner
        .publish(to_group("before", 0))
        .wait()
        .await
        .expect("stored");
    let first = next_envelope(&mut seen).await;
    assert_eq!(sent_text(&first).as_deref(), Some("before"));
    let back = next_envelope(&mut own_inbox).await;
    assert_eq!(sent_text(&back).as_deref(), Some("before"));
    assert!(
        !back.own,
        "a fenced write is delivered by its own node on read-back"
    );
    // Another node claims the connection.
    let claim = || {
        Envelope::new(
            hub.clone(),
            EnvelopeKind::Claim {
                connection: "x".into(),
                epoch: 2,
            },
        )
    };
    taker.publish(claim()).wait().await.expect("claim stored");
    let (claimed_at, epoch) = taker
        .last_claim(&hub, "x")
        .await
        .expect("read")
        .expect("a claim");
    assert_eq!(epoch, 2);
    // The old owner, however late it learns of the claim, writes nothing more.
    let refused = old_owner
        .publish(to_group("after the claim", 0))
        .wait()
        .await;
    assert!(matches!(refused, Err(PublishError::Fenced)), "{refused:?}");
    // The new owner writes under its claim.
    taker
        .publish(to_group("new owner", claimed_at))
        .wait()
        .await
        .expect("stored");
    let claimed = next_envelope(&mut seen).await;
    assert!(
        matches!(&claimed.kind, EnvelopeKind::Claim { epoch: 2, .. }),
        "{claimed:?}"
    );
    let next = next_envelope(&mut seen).await;
    assert_eq!(
        sent_text(&next).as_deref(),
        Some("new owner"),
        "the refused write was never stored"
    );
    // A claim renewed under the last one moves the condition on, for the
    // writes made while it was on its way too; one written under an older
    // claim is refused like any other write.
    let mark = ClaimMark::new(claimed_at);
    let fence = Fence {
        connection: "x".into(),
        after: mark.clone(),
    };
    let renewal = taker.publish(claim().fenced(Some(fence.clone())));
    let during: Vec<_> = (0..20)
        .map(|i| {
            let mut write = to_group(&format!("during {i}"), 0);
            write.fence = Some(fence.clone());
            taker.publish(write)
        })
        .collect();
    renewal.wait().await.expect("renewed");
    for (i, write) in during.into_iter().enumerate() {
        let stored = write.wait().await;
        assert!(
            stored.is_ok(),
            "write {i} made during the renewal: {stored:?}"
        );
    }
    let (renewed, _) = taker
        .last_claim(&hub, "x")
        .await
        .expect("read")
        .expect("a claim");
    assert!(renewed > claimed_at);
    assert_eq!(mark.get(), renewed, "the fence moved to the renewed claim");
    let stale = taker.publish(to_group("stale", claimed_at)).wait().await;
    assert!(matches!(stale, Err(PublishError::Fenced)), "{stale:?}");
}

fn group(name: &str) -> Target {
    Target::Groups {
        groups: vec![name.to_owned()],
        except: Vec::new(),
    }
}
