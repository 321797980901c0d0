//! The plugin layer against real components: the bundled hubs, the hostile
//! fixtures, and files that are not hub components. Needs the plugins
//! workspace built (`./dev test` does it).

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use support::temp_dir;
use switchboard::address::HubKey;
use switchboard::config::{Config, Limits};
use switchboard::node::Node;
use switchboard::plugin::{CallEnv, CallError, Context};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the plugins first (cd plugins && cargo build --release --target wasm32-wasip2)",
            path.display()
        )
    })
}

fn config(cpu_ms: u64, memory_mb: u64) -> Config {
    let mut config = Config::builtin();
    for tenant in config.tenants.values_mut() {
        tenant.limits = Limits {
            invocation_cpu_ms: cpu_ms,
            memory_mb,
            ..Limits::default()
        };
    }
    config
}

/// A node whose plugin folder holds `files` for tenant `demo`.
async fn node_with(files: &[(&str, Vec<u8>)], config: Config) -> (Arc<Node>, temp_dir::Dir) {
    let dir = temp_dir::Dir::new();
    let tenant_dir = dir.path().join("demo");
    std::fs::create_dir_all(&tenant_dir).expect("mkdir");
    for (name, bytes) in files {
        std::fs::write(tenant_dir.join(name), bytes).expect("write plugin");
    }
    let node = Node::start(config, Some(dir.path()))
        .await
        .expect("node starts");
    (node, dir)
}

fn ctx(hub: &str) -> Context {
    Context {
        tenant: "demo".into(),
        hub: hub.into(),
        connection_id: "c1".into(),
        user_id: None,
        claims_json: "{}".into(),
    }
}

async fn invoke(
    node: &Arc<Node>,
    hub: &str,
    method: &str,
    args: &str,
) -> Result<Result<Option<String>, String>, CallError> {
    let key = HubKey::new("demo", hub);
    let plugin = node.registry.get(&key).expect("hub loaded");
    let env = CallEnv {
        tenant: node.tenants.get("demo").expect("demo").clone(),
        hub: key,
        router: node.router.clone(),
        // The context names connection c1; no such connection is held here.
        caller: None,
        receipts: Default::default(),
    };
    node.engine
        .invoke(&plugin, env, &ctx(hub), method, args, None)
        .await
}

#[tokio::test]
async fn bundled_hubs_describe_their_methods() {
    let (node, _dir) = node_with(&[], Config::builtin()).await;
    let chat = node
        .registry
        .get(&HubKey::new("demo", "chat"))
        .expect("chat");
    for m in [
        "send",
        "joinGroup",
        "leaveGroup",
        "sendToGroup",
        "sendToUser",
        "echo",
        "whoami",
    ] {
        assert!(chat.method(m).is_some(), "chat.{m}");
    }
    assert!(
        chat.method("ECHO").is_some(),
        "names match case-insensitively"
    );
    let notify = node
        .registry
        .get(&HubKey::new("demo", "notify"))
        .expect("notify");
    assert!(notify.method("registerClient").is_some());
    assert!(notify.method("notifyClient").is_some());
    assert_eq!(
        invoke(&node, "chat", "echo", r#"[{"a":[1,2.5,"é",null,true]}]"#).await,
        Ok(Ok(Some(r#"{"a":[1,2.5,"é",null,true]}"#.into())))
    );
    assert_eq!(
        invoke(&node, "chat", "echo", "[null]").await,
        Ok(Ok(Some("null".into()))),
        "null is a value, not void"
    );
    assert_eq!(
        invoke(&node, "notify", "registerClient", "[42]").await,
        Ok(Ok(None)),
        "void"
    );
    assert_eq!(
        invoke(&node, "notify", "notifyClient", r#"[7, "Confirmed"]"#).await,
        Ok(Err("Unable to find connection".into()))
    );
}

#[tokio::test]
async fn hostile_plugin_fails_only_its_own_invocations() {
    let (node, _dir) = node_with(&[("hostile.wasm", fixture("hostile"))], config(200, 32)).await;
    assert_eq!(
        invoke(&node, "hostile", "ping", "[]").await,
        Ok(Ok(Some("\"pong\"".into())))
    );
    assert_eq!(
        invoke(&node, "hostile", "spin", "[]").await,
        Err(CallError::CpuLimit(200))
    );
    assert_eq!(
        invoke(&node, "hostile", "allocate", "[]").await,
        Err(CallError::MemoryLimit(32))
    );
    match invoke(&node, "hostile", "panic", "[]").await {
        Err(CallError::Panicked(message)) => assert!(
            message.contains("hostile plugin panicked on purpose"),
            "{message}"
        ),
        other => panic!("expected a panic, got {other:?}"),
    }
    match invoke(&node, "hostile", "trap", "[]").await {
        Err(CallError::Trapped(message)) => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    // The plugin, its neighbours and the node all still work.
    assert_eq!(
        invoke(&node, "hostile", "ping", "[]").await,
        Ok(Ok(Some("\"pong\"".into())))
    );
    assert_eq!(
        invoke(&node, "chat", "echo", "[1]").await,
        Ok(Ok(Some("1".into())))
    );
}

/// Calls reuse a warm instance (the guest's statics show it) until a call
/// traps, or the instance holds more than half its memory limit.
#[tokio::test]
async fn warm_instances_are_reused_until_a_call_traps_or_hoards_memory() {
    let (node, _dir) = node_with(&[("hostile.wasm", fixture("hostile"))], config(500, 16)).await;
    let warm = || {
        node.registry
            .get(&HubKey::new("demo", "hostile"))
            .expect("hostile")
            .warm_instances()
    };
    let count = || invoke(&node, "hostile", "count", "[]");
    let served = |n: u32| Ok(Ok(Some(n.to_string())));
    assert_eq!(count().await, served(1));
    assert_eq!(warm(), 1, "a clean call returns its instance");
    assert_eq!(count().await, served(2), "the same instance again");

    assert!(invoke(&node, "hostile", "trap", "[]").await.is_err());
    assert_eq!(warm(), 0, "a trapped instance is dropped");
    assert_eq!(count().await, served(1), "a fresh instance");
    assert_eq!(count().await, served(2));

    assert_eq!(invoke(&node, "hostile", "hoard", "[2]").await, Ok(Ok(None)));
    assert_eq!(count().await, served(3), "a few MiB of 16: still reused");
    assert_eq!(
        invoke(&node, "hostile", "hoard", "[10]").await,
        Ok(Ok(None))
    );
    assert_eq!(warm(), 0, "over half the memory limit: retired");
    assert_eq!(count().await, served(1));

    node.engine.set_instance_reuse(false);
    assert_eq!(
        count().await,
        served(1),
        "reuse off: a fresh instance every call"
    );
    assert_eq!(count().await, served(1));
}

#[tokio::test]
async fn a_spinning_plugin_does_not_starve_other_calls() {
    let (node, _dir) = node_with(&[("hostile.wasm", fixture("hostile"))], config(1500, 32)).await;
    let spinner = {
        let node = node.clone();
        tokio::spawn(async move { invoke(&node, "hostile", "spin", "[]").await })
    };
    // While it spins (yielding every tick), other calls are served.
    for i in 0..20 {
        assert_eq!(
            invoke(&node, "chat", "echo", &format!("[{i}]")).await,
            Ok(Ok(Some(i.to_string())))
        );
    }
    assert!(!spinner.is_finished(), "the spinner is still running");
    assert_eq!(spinner.await.expect("join"), Err(CallError::CpuLimit(1500)));
}

#[tokio::test]
async fn invalid_files_are_rejected_and_others_still_load() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let files = [
        ("garbage.wasm", garbage),
        ("wrongworld.wasm", fixture("wrong_world")),
        ("empty.wasm", Vec::new()),
        ("hostile.wasm", fixture("hostile")),
    ];
    let (node, _dir) = node_with(&files, Config::builtin()).await;
    for broken in ["garbage", "wrongworld", "empty"] {
        assert!(
            node.registry.get(&HubKey::new("demo", broken)).is_none(),
            "{broken}"
        );
    }
    assert!(node.registry.get(&HubKey::new("demo", "hostile")).is_some());
    assert!(node.registry.get(&HubKey::new("demo", "chat")).is_some());
}

#[tokio::test]
async fn load_errors_say_what_is_wrong() {
    let (node, _dir) = node_with(&[], Config::builtin()).await;
    for (tenant, hub, wasm, says) in [
        (
            "demo",
            "x",
            b"not wasm".to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "demo",
            "y",
            fixture("wrong_world"),
            "does not implement the switchboard:hub world",
        ),
        ("nope", "z", fixture("chat"), "unknown tenant"),
    ] {
        let err = node
            .load_plugin(HubKey::new(tenant, hub), wasm, hub.into())
            .await
            .expect_err(says);
        assert!(err.to_string().contains(says), "{err}");
    }
}
