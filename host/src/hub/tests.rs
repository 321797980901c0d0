//! Hub dispatch without a node: a session built from [`HubServices`] on the
//! memory backplane, what its client is sent read from a detached connection.

use std::time::Duration;

use super::*;
use crate::address::HubKey;
use crate::backplane::kv::KvStore;
use crate::backplane::memory::MemoryBus;
use crate::config::{Config, DEMO_TENANT, TenantConfig};
use crate::outbound::Detached;
use crate::plugin::{CompileCache, PluginEngine, Registry};
use crate::protocol::{Protocol, RawValue};
use crate::router::Router;
use crate::tenant::Identity;

/// A session of connection `c1` to the demo tenant's hub `chat`, which has
/// no plugin loaded, with the tenant's settings as `configure` leaves them;
/// and the connection's client end.
fn session(configure: impl FnOnce(&mut TenantConfig)) -> (HubSession, Detached) {
    let (backplane, _inbox) = MemoryBus::new().join();
    let services = HubServices::new(
        Arc::new(Registry::default()),
        Arc::new(PluginEngine::new(64, &CompileCache::Off).expect("engine")),
        Arc::new(Router::new(backplane)),
        Arc::default(),
    );
    let mut config = Config::builtin()
        .tenants
        .remove(DEMO_TENANT)
        .expect("the demo tenant");
    configure(&mut config);
    let tenant = Arc::new(Tenant::new(DEMO_TENANT, config, KvStore::memory()));
    let hub = HubKey::new(DEMO_TENANT, "chat");
    let (handle, client) = ConnectionHandle::new_detached("c1", hub, None, Protocol::Json, 64);
    (
        HubSession::new(services, tenant, handle, &Identity::anonymous()),
        client,
    )
}

fn invocation(id: &str, target: &str) -> HubMessage {
    let arguments = RawValue::from_string("[]".to_owned()).expect("JSON");
    HubMessage::invocation(Some(id.to_owned()), target.to_owned(), arguments)
}

/// The next record the client is sent, without its separator.
async fn next(client: &mut Detached) -> String {
    let frame = tokio::time::timeout(Duration::from_secs(5), client.recv())
        .await
        .expect("a frame in time")
        .expect("the connection is open");
    let text = String::from_utf8(frame.to_vec()).expect("JSON text");
    text.trim_end_matches('\u{1e}').to_owned()
}

fn failed(id: &str, error: &str) -> String {
    format!(r#"{{"type":3,"invocationId":"{id}","error":"{error}"}}"#)
}

#[tokio::test]
async fn a_hub_without_a_plugin_refuses_the_connection_and_fails_each_call() {
    let (mut session, mut client) = session(|_| {});
    assert_eq!(
        session.connected().await,
        Err("The hub 'chat' is not available.".to_owned())
    );
    assert_eq!(
        session.on_message(invocation("1", "Send")).await,
        Flow::Continue
    );
    assert_eq!(
        next(&mut client).await,
        failed("1", "The hub 'chat' is not available.")
    );
}

#[tokio::test]
async fn calls_over_the_rate_fail_and_the_connection_goes_on() {
    let (mut session, mut client) = session(|tenant| {
        tenant.limits.messages_per_second = 1;
        tenant.limits.messages_burst = Some(1);
    });
    session.on_message(invocation("1", "Send")).await;
    session.on_message(invocation("2", "Send")).await;
    assert_eq!(
        next(&mut client).await,
        failed("1", "The hub 'chat' is not available.")
    );
    assert_eq!(
        next(&mut client).await,
        failed(
            "2",
            "Rate limit exceeded: the tenant allows at most 1 invocations per second per connection."
        )
    );
}

#[tokio::test]
async fn a_draining_session_takes_no_new_calls_and_a_close_ends_it() {
    let (mut session, mut client) = session(|_| {});
    session.stop_accepting().await.expect("the dispatcher ends");
    session.on_message(invocation("1", "Send")).await;
    assert_eq!(
        next(&mut client).await,
        failed("1", "Server is shutting down.")
    );
    assert_eq!(session.on_message(HubMessage::Ping).await, Flow::Continue);
    let close = HubMessage::Close {
        error: None,
        allow_reconnect: false,
    };
    assert_eq!(session.on_message(close).await, Flow::Close);
}
