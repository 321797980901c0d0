//! The connection run loop on an in-memory transport: a channel of inbound
//! chunks in, a channel of frames out, built from a [`ConnectionEnv`] on the
//! memory backplane with no listening node. Time is paused, so timeouts and
//! keep-alives cost no real seconds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};

use super::*;
use crate::address::{HubKey, OutboundInvocation, Target};
use crate::backplane::memory::MemoryBus;
use crate::config::{Config, DEMO_TENANT};
use crate::hub::HubServices;
use crate::outbound::{RequestInfo, TOO_SLOW};
use crate::plugin::registry::{self, Plugins};
use crate::plugin::versions::Source;
use crate::plugin::{CompileCache, PluginEngine, Registry};
use crate::protocol::TransferFormat;
use crate::router::Router;
use crate::tenant::{Identity, Tenants};

const RS: char = '\u{1e}';
/// The size of a connection's run future, measured when the connection layer
/// got its [`ConnectionEnv`] in place of the node (one pointer for another).
const RUN_FUTURE_BYTES: usize = 1792;

/// The bundled chat hub, built by the plugins workspace.
fn chat_wasm() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/chat.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the plugins first (cd plugins && cargo build --release --target wasm32-wasip2)",
            path.display()
        )
    })
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        handshake_timeout: Duration::from_secs(5),
        max_message_size: 32 * 1024,
        keep_alive: Duration::from_secs(15),
        client_timeout: Duration::from_secs(30),
        disconnect_timeout: Duration::from_secs(30),
        // Long, so that a client that does not read is found by its outbox.
        write_timeout: Duration::from_secs(3600),
        outbound_queue: 8,
        stateful_reconnect_buffer_bytes: 100_000,
        durable_resume: false,
        claim_renewal: Duration::from_secs(200),
    }
}

/// A node's connection layer without the node: the chat hub of the demo
/// tenant served on the memory backplane.
struct Harness {
    env: Arc<ConnectionEnv>,
    tenants: Tenants,
    hub: HubKey,
}

impl Harness {
    async fn new(settings: ConnectionSettings) -> Harness {
        let (backplane, _inbox) = MemoryBus::new().join();
        let router = Arc::new(Router::new(backplane));
        let engine = Arc::new(PluginEngine::new(64, &CompileCache::Off).expect("engine"));
        let registry = Arc::new(Registry::default());
        let tenants = Tenants::from_config(&Config::builtin());
        let hub = HubKey::new(DEMO_TENANT, "chat");
        let plugins = Plugins {
            engine: &engine,
            registry: &registry,
            tenants: &tenants,
            router: &router,
        };
        registry::load(
            plugins,
            hub.clone(),
            chat_wasm(),
            "test".into(),
            Source::File,
        )
        .await
        .expect("the chat hub loads");
        let usage = Arc::default();
        let env = ConnectionEnv {
            settings,
            hub: HubServices::new(registry, engine, router.clone(), Arc::clone(&usage)),
            router,
            usage,
            pending: Arc::new(PendingConnections::new(Duration::from_secs(30), 16)),
            resumable: Arc::new(ResumableConnections::new()),
            cluster: None,
            draining: CancellationToken::new(),
        };
        Harness {
            env: Arc::new(env),
            tenants,
            hub,
        }
    }

    /// What negotiate and the transport agreed for connection `id`.
    fn accepted(&self, id: &str) -> Accepted {
        let negotiated = Negotiated {
            connection_id: Arc::from(id),
            hub: self.hub.clone(),
            identity: Identity::anonymous(),
            negotiate_version: 1,
            stateful_reconnect: false,
            request: RequestInfo::default(),
            early: Vec::new(),
        };
        Accepted {
            span: span("test", &negotiated),
            negotiated,
            tenant: self.tenants.get(DEMO_TENANT).expect("the demo tenant"),
            formats: &[TransferFormat::Text, TransferFormat::Binary],
            keep_alive: true,
        }
    }

    /// Whether the router holds connection `id`.
    fn registered(&self, id: &str) -> bool {
        self.env.router.local_connection(&self.hub, id).is_some()
    }

    /// Connection `id` past a JSON handshake (see [`Harness::connect`]).
    async fn handshaken(&self, id: &str, frames: usize) -> Client {
        let mut client = self.connect(id, frames);
        client.handshake().await;
        client
    }

    /// Starts connection `id` on a new in-memory transport whose frames
    /// arrive on a channel of `frames` places.
    fn connect(&self, id: &str, frames: usize) -> Client {
        let accepted = self.accepted(id);
        let (to_server, inbound) = mpsc::unbounded_channel();
        let inbound = futures_util::stream::unfold(inbound, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let (out, frames) = mpsc::channel(frames);
        let run = tokio::spawn(run(
            self.env.clone(),
            accepted,
            Box::pin(inbound),
            PollSender::new(out),
        ));
        Client {
            to_server,
            frames,
            run,
        }
    }
}

struct Client {
    to_server: mpsc::UnboundedSender<Inbound>,
    frames: mpsc::Receiver<OutFrame>,
    run: tokio::task::JoinHandle<()>,
}

impl Client {
    fn send(&self, text: &str) {
        let chunk = Bytes::from(text.to_owned());
        let _ = self.to_server.send(Inbound::Data(chunk));
    }

    /// The next frame's text; "<close>" for the transport's end.
    async fn next(&mut self) -> String {
        match self.frames.recv().await.expect("a frame") {
            OutFrame::Data { data, .. } => String::from_utf8(data.to_vec()).expect("JSON text"),
            OutFrame::Close => "<close>".to_owned(),
        }
    }

    /// Handshakes in JSON, and checks the server agreed.
    async fn handshake(&mut self) {
        self.send(&format!(r#"{{"protocol":"json","version":1}}{RS}"#));
        assert_eq!(self.next().await, format!("{{}}{RS}"));
    }

    /// The handshake answer of a refused client, after which its transport
    /// and its connection end.
    async fn refusal(mut self) -> String {
        let refusal = self.next().await;
        assert_eq!(self.next().await, "<close>");
        self.ended().await;
        refusal
    }

    /// The connection's run loop ended, and its transport with it.
    async fn ended(mut self) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(60), &mut self.run)
            .await
            .expect("the connection ends")
            .expect("the run loop does not panic");
        let mut rest = Vec::new();
        while let Ok(frame) = self.frames.try_recv() {
            rest.push(match frame {
                OutFrame::Data { data, .. } => String::from_utf8(data.to_vec()).expect("text"),
                OutFrame::Close => "<close>".to_owned(),
            });
        }
        rest
    }
}

#[tokio::test(start_paused = true)]
async fn a_good_handshake_is_answered_and_registers_the_connection() {
    let harness = Harness::new(settings()).await;
    let client = harness.handshaken("c1", 16).await;
    assert!(harness.registered("c1"), "registered with the router");
    client.send(&format!(r#"{{"type":7}}{RS}"#));
    client.ended().await;
    assert!(!harness.registered("c1"));
}

#[tokio::test(start_paused = true)]
async fn a_handshake_that_is_not_json_is_refused() {
    let harness = Harness::new(settings()).await;
    let client = harness.connect("c1", 16);
    client.send(&format!("{{protocol json{RS}"));
    let refusal = client.refusal().await;
    assert!(refusal.starts_with(r#"{"error":"#), "{refusal}");
    assert!(!harness.registered("c1"));
}

#[tokio::test(start_paused = true)]
async fn a_handshake_for_an_unknown_protocol_is_refused() {
    let harness = Harness::new(settings()).await;
    let client = harness.connect("c1", 16);
    client.send(&format!(r#"{{"protocol":"xml","version":1}}{RS}"#));
    let refusal = client.refusal().await;
    assert!(
        refusal.starts_with(r#"{"error":"#) && refusal.contains("xml"),
        "{refusal}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_handshakes_is_refused_after_the_timeout() {
    let harness = Harness::new(settings()).await;
    let mut client = harness.connect("c1", 16);
    let started = tokio::time::Instant::now();
    assert_eq!(
        client.next().await,
        format!(r#"{{"error":"Handshake was canceled."}}{RS}"#)
    );
    assert_eq!(started.elapsed(), settings().handshake_timeout);
    assert_eq!(client.next().await, "<close>");
    client.ended().await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_gets_a_ping_each_keep_alive() {
    let harness = Harness::new(settings()).await;
    let mut client = harness.handshaken("c1", 16).await;
    let started = tokio::time::Instant::now();
    assert_eq!(client.next().await, format!(r#"{{"type":6}}{RS}"#));
    assert_eq!(started.elapsed(), settings().keep_alive);
    assert_eq!(client.next().await, format!(r#"{{"type":6}}{RS}"#));
    assert_eq!(started.elapsed(), settings().keep_alive * 2);
}

#[tokio::test(start_paused = true)]
async fn a_client_silent_past_its_timeout_is_closed() {
    let settings = ConnectionSettings {
        // No pings in the way of the Close.
        keep_alive: Duration::from_secs(3600),
        ..settings()
    };
    let harness = Harness::new(settings).await;
    let mut client = harness.handshaken("c1", 16).await;
    // The client timeout starts with the client's first Ping.
    let started = tokio::time::Instant::now();
    client.send(&format!(r#"{{"type":6}}{RS}"#));
    let close = client.next().await;
    assert_eq!(started.elapsed(), settings.client_timeout);
    assert_eq!(
        close,
        format!(
            r#"{{"type":7,"error":"Server timeout elapsed without receiving a message from the client.","allowReconnect":true}}{RS}"#
        )
    );
    assert_eq!(client.next().await, "<close>");
    client.ended().await;
}

#[tokio::test(start_paused = true)]
async fn a_close_message_ends_the_connection() {
    let harness = Harness::new(settings()).await;
    let client = harness.handshaken("c1", 16).await;
    let started = tokio::time::Instant::now();
    client.send(&format!(r#"{{"type":7}}{RS}"#));
    let rest = client.ended().await;
    assert_eq!(started.elapsed(), Duration::ZERO, "at once, not on a timer");
    assert!(rest.iter().all(|f| !f.contains("error")), "{rest:?}");
    assert!(!harness.registered("c1"));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_is_closed_by_its_bounded_outbox() {
    let harness = Harness::new(settings()).await;
    // The transport takes the handshake answer and one frame, then never drains.
    let mut client = harness.handshaken("c1", 1).await;
    let handle = harness
        .env
        .router
        .local_connection(&harness.hub, "c1")
        .expect("registered");
    let target = Target::Connections(vec!["c1".to_owned()]);
    let mut sent = 0;
    while !handle.is_closed() && sent < 1000 {
        let message = OutboundInvocation::from_json("notice", r#"["hello"]"#).expect("args");
        let _ = harness
            .env
            .router
            .send(&harness.hub, &target, Arc::new(message));
        sent += 1;
        // The writer takes what it can: its one frame, then waits on the transport.
        tokio::task::yield_now().await;
    }
    assert!(handle.is_closed(), "closed as too slow");
    assert!(
        sent <= 2 * settings().outbound_queue + 2,
        "the outbox did not grow: closed after {sent} sends"
    );
    assert_eq!(
        handle.close_reason().map(|r| r.error).as_deref(),
        Some(TOO_SLOW)
    );
    assert!(handle.closed_as_slow());
    // The run loop ends, and the transport is dropped without a goodbye.
    drop(client.frames.recv().await);
    let rest = client.ended().await;
    assert!(rest.iter().all(|f| !f.contains(TOO_SLOW)), "{rest:?}");
}

/// What an idle connection keeps for its life is mostly its run future
/// (its set-up is boxed and freed once it is live): it stays as small as
/// when connections held the whole node.
#[tokio::test]
async fn an_idle_connections_run_future_stays_small() {
    let harness = Harness::new(settings()).await;
    let (_to_server, inbound) = mpsc::unbounded_channel::<Inbound>();
    let inbound = futures_util::stream::unfold(inbound, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let (out, _frames) = mpsc::channel(1);
    let future = run(
        harness.env.clone(),
        harness.accepted("c1"),
        Box::pin(inbound),
        PollSender::new(out),
    );
    let size = std::mem::size_of_val(&future);
    eprintln!("run future: {size} bytes");
    assert!(size <= RUN_FUTURE_BYTES, "{size} bytes");
}
