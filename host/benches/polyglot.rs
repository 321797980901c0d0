//! The chat hub in Rust, JavaScript and Python, side by side: component size,
//! load time (compile, validate, describe) without and with the compile
//! cache, a fresh and a warm `echo` call, and the linear memory of one
//! instance. Plain timing loops, printed as a table.
//!
//! `cargo bench --bench polyglot` (after `./dev test` has built the JS and
//! Python components into plugins-js/target and plugins-python/target).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::address::HubKey;
use switchboard::config::Config;
use switchboard::node::Node;
use switchboard::plugin::Context;

/// Calls per measured mode (after as many to warm up).
const CALLS: u32 = 200;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn start(cache: Option<&Path>) -> Arc<Node> {
    let mut config = Config::builtin();
    config.compile_cache = cache.is_some();
    config.compile_cache_dir = cache.map(Path::to_path_buf);
    Node::start(config, None).await.expect("node")
}

/// The mean time of `CALLS` echo calls, after as many unmeasured ones.
async fn echo_time(node: &Node, key: &HubKey, reuse: bool) -> Duration {
    let plugin = node.registry.get(key).expect("loaded");
    let env = support::demo_env(node, key);
    let ctx = context(key);
    node.engine.set_instance_reuse(reuse);
    let mut started = Instant::now();
    for i in 0..2 * CALLS {
        if i == CALLS {
            started = Instant::now();
        }
        let out = node
            .engine
            .invoke(
                &plugin,
                env.clone(),
                &ctx,
                "echo",
                r#"[{"n":42,"text":"hello"}]"#,
                None,
            )
            .await
            .expect("call")
            .expect("ok");
        assert_eq!(out.as_deref(), Some(r#"{"n":42,"text":"hello"}"#));
    }
    node.engine.set_instance_reuse(true);
    started.elapsed() / CALLS
}

fn context(key: &HubKey) -> Context {
    Context {
        tenant: "demo".into(),
        hub: key.hub.to_string(),
        connection_id: "c1".into(),
        user_id: None,
        claims_json: "{}".into(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let builds = [
        ("Rust", "plugins/target/wasm32-wasip2/release/chat.wasm"),
        ("JavaScript", "plugins-js/target/chat.wasm"),
        ("Python", "plugins-python/target/chat.wasm"),
    ];
    let cache =
        std::env::temp_dir().join(format!("switchboard-bench-cache-{}", std::process::id()));
    runtime.block_on(async {
        let cold = start(None).await;
        let cached = start(Some(&cache)).await;
        println!(
            "| hub | component | load, compiling | load, cached | fresh call | warm call | memory per instance |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (lang, rel) in builds {
            let path = repo().join(rel);
            let Ok(wasm) = std::fs::read(&path) else {
                println!("| {lang} | missing: {} | | | | | |", path.display());
                continue;
            };
            let key = HubKey::new("demo", &format!("chat-{}", lang.to_lowercase()));
            let t = Instant::now();
            cold.load_plugin(key.clone(), wasm.clone(), rel.into())
                .await
                .expect("load");
            let compile = t.elapsed();
            // The first load fills the cache; the second is what a restart costs.
            cached
                .load_plugin(key.clone(), wasm.clone(), rel.into())
                .await
                .expect("load");
            let t = Instant::now();
            cached
                .load_plugin(key.clone(), wasm.clone(), rel.into())
                .await
                .expect("load");
            let reload = t.elapsed();
            let fresh = echo_time(&cold, &key, false).await;
            let warm = echo_time(&cold, &key, true).await;
            let plugin = cold.registry.get(&key).expect("loaded");
            let env = support::demo_env(&cold, &key);
            let memory = cold
                .engine
                .memory_after_call(&plugin, env, &context(&key), "echo", "[1]")
                .await
                .expect("call");
            println!(
                "| {lang} | {:.2} MB | {} | {} | {} | {} | {:.1} MiB |",
                wasm.len() as f64 / 1e6,
                ms(compile),
                ms(reload),
                us(fresh),
                us(warm),
                memory as f64 / f64::from(1 << 20),
            );
        }
    });
    let _ = std::fs::remove_dir_all(&cache);
}
