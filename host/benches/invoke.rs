//! What one hub method call costs through the plugin engine: a warm (reused)
//! instance or a fresh one from the pooling allocator, the call, and the JSON
//! in and out.
//!
//! `cargo bench --bench invoke`

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use switchboard::address::HubKey;
use switchboard::config::Config;
use switchboard::node::Node;
use switchboard::plugin::Context;

fn bench_invoke(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let node = runtime
        .block_on(Node::start(Config::builtin(), None))
        .expect("node");
    let key = HubKey::new("demo", "chat");
    let env = support::demo_env(&node, &key);
    let ctx = Context {
        tenant: "demo".into(),
        hub: "chat".into(),
        connection_id: "c1".into(),
        user_id: None,
        claims_json: "{}".into(),
    };
    let plugin = node.registry.get(&key).expect("chat");

    let mut group = c.benchmark_group("hub_invoke");
    for (name, method, args) in [
        ("echo_small", "echo", r#"[42]"#),
        ("echo_1kb", "echo", &*format!(r#"["{}"]"#, "x".repeat(1024))),
        ("whoami", "whoami", "[]"),
    ] {
        for (mode, reuse) in [("warm_instance", true), ("fresh_instance", false)] {
            node.engine.set_instance_reuse(reuse);
            group.bench_function(format!("{mode}/{name}"), |b| {
                b.to_async(&runtime).iter(|| async {
                    node.engine
                        .invoke(&plugin, env.clone(), &ctx, method, args, None)
                        .await
                        .expect("call")
                        .expect("ok")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_invoke);
criterion_main!(benches);
