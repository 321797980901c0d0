//! The host's pure hot-path code: hub protocol decode and encode (JSON and MessagePack) of
//! typical messages, JSON <-> MessagePack value conversion, and the router's `resolve`.
//!
//! `cargo bench --bench protocol`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Bencher, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use switchboard::address::{HubKey, Target};
use switchboard::outbound::ConnectionHandle;
use switchboard::protocol::messagepack::{json_to_msgpack, msgpack_to_json};
use switchboard::protocol::{CompletionOutcome, HubMessage, Protocol};
use switchboard::router::Index;

/// A chat message as the bench's load generator sends it: 100 bytes of text.
const MESSAGE: &str = "~~12345~1700000000000~xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("valid JSON")
}

/// The messages a chat hub handles most: a `send` invocation in, the broadcast out, an `echo`
/// completion, and a ping.
fn typical() -> Vec<(&'static str, HubMessage)> {
    let args = format!(r#"["alice",{}]"#, serde_json::Value::from(MESSAGE));
    vec![
        (
            "invocation_send",
            HubMessage::Invocation {
                invocation_id: None,
                target: "send".into(),
                arguments: raw(&args),
                stream_ids: Vec::new(),
                headers: Vec::new(),
            },
        ),
        (
            "invocation_broadcast",
            HubMessage::Invocation {
                invocation_id: None,
                target: "addNewMessageToPage".into(),
                arguments: raw(&args),
                stream_ids: Vec::new(),
                headers: Vec::new(),
            },
        ),
        (
            "completion_echo",
            HubMessage::Completion {
                invocation_id: "42".into(),
                outcome: CompletionOutcome::Result(raw(
                    r#"{"n":1,"text":"hello from the load generator","tags":["a","b"],"ok":true}"#,
                )),
                headers: Vec::new(),
            },
        ),
        ("ping", HubMessage::Ping),
    ]
}

/// Parses `encoded`, which holds `records` records, in one read.
fn bench_parse(b: &mut Bencher<'_>, protocol: Protocol, encoded: &[u8], records: usize) {
    let mut parsed = Vec::with_capacity(records);
    b.iter(|| {
        let mut buf = BytesMut::from(encoded);
        parsed.clear();
        protocol
            .parse_messages(&mut buf, usize::MAX, &mut parsed)
            .expect("parses");
        black_box(parsed.len())
    });
}

fn bench_encode_decode(c: &mut Criterion) {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let mut group = c.benchmark_group(format!("protocol_{}", protocol.name()));
        for (name, msg) in typical() {
            let mut encoded = Vec::new();
            protocol.write_message(&msg, &mut encoded).expect("encodes");
            group.throughput(Throughput::Bytes(encoded.len() as u64));
            group.bench_function(BenchmarkId::new("write", name), |b| {
                let mut out = Vec::with_capacity(256);
                b.iter(|| {
                    out.clear();
                    protocol
                        .write_message(black_box(&msg), &mut out)
                        .expect("encodes");
                    black_box(out.len())
                });
            });
            group.bench_function(BenchmarkId::new("parse", name), |b| {
                bench_parse(b, protocol, &encoded, 1);
            });
        }
        // A read that holds 16 records at once (a busy client's socket).
        let (_, msg) = &typical()[0];
        let mut batch = Vec::new();
        for _ in 0..16 {
            protocol.write_message(msg, &mut batch).expect("encodes");
        }
        group.throughput(Throughput::Elements(16));
        group.bench_function("parse/16_sends_in_one_read", |b| {
            bench_parse(b, protocol, &batch, 16);
        });
        group.finish();
    }
}

fn bench_conversion(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_msgpack");
    let values = [
        ("chat_args", format!(r#"["alice",{}]"#, serde_json::Value::from(MESSAGE))),
        (
            "object",
            r#"{"n":1,"text":"hello from the load generator","tags":["a","b"],"ok":true,"ratio":0.5,"nested":{"x":null,"y":-7}}"#.to_string(),
        ),
    ];
    for (name, json) in values {
        let value = raw(&json);
        let mut packed = Vec::new();
        json_to_msgpack(&value, &mut packed).expect("converts");
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function(BenchmarkId::new("json_to_msgpack", name), |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                out.clear();
                json_to_msgpack(black_box(&value), &mut out).expect("converts");
                black_box(out.len())
            });
        });
        group.bench_function(BenchmarkId::new("msgpack_to_json", name), |b| {
            b.iter(|| black_box(msgpack_to_json(black_box(&packed)).expect("converts")));
        });
    }
    group.finish();
}

fn bench_resolve(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_resolve");
    let hub = HubKey::new("demo", "chat");
    for size in [100usize, 1000, 10_000] {
        let mut index = Index::default();
        // Keep the receivers alive so that the handles stay valid.
        let mut receivers = Vec::with_capacity(size);
        for i in 0..size {
            let user = format!("user{}", i % (size / 2).max(1));
            let (handle, rx) = ConnectionHandle::new_detached(
                &format!("conn{i}"),
                hub.clone(),
                Some(&user),
                Protocol::Json,
                1,
            );
            index.insert(handle);
            receivers.push(rx);
            if i % 10 == 0 {
                index
                    .add_to_group(&format!("conn{i}"), "tenth", usize::MAX)
                    .expect("group");
            }
        }
        let all = Target::All {
            except: vec!["conn0".into()],
        };
        let users = Target::Users(vec!["user1".into(), "user2".into()]);
        let group_target = Target::Groups {
            groups: vec!["tenth".into()],
            except: Vec::new(),
        };
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::new("all_except_one", size), |b| {
            b.iter(|| black_box(index.resolve(black_box(&all)).len()));
        });
        group.bench_function(BenchmarkId::new("two_users", size), |b| {
            b.iter(|| black_box(index.resolve(black_box(&users)).len()));
        });
        group.bench_function(BenchmarkId::new("group_of_a_tenth", size), |b| {
            b.iter(|| black_box(index.resolve(black_box(&group_target)).len()));
        });
        drop(receivers);
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_encode_decode,
    bench_conversion,
    bench_resolve
);
criterion_main!(benches);
