//! The marker fast path: what a plugin's result costs to write when it holds no
//! `{"$binary":..}` / `{"$date":..}` marker. Such a payload has no `"$`.
//!
//! - MessagePack clients (`json_to_msgpack`): the conversion pays one substring search
//!   (`Markers::Check`, what the host does) on top of the plain pass (`Markers::Never`); looking
//!   for a marker at every object (`Markers::Always`) is what that search spares.
//! - JSON clients (`push_json`): a payload without `"$` is copied as it is; `push_json_walked`
//!   is the walk that the check spares it.
//!
//! A marked payload is measured too, for scale.
//!
//! `cargo bench --bench marked`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use switchboard::protocol::messagepack::{Markers, json_to_msgpack_with};
use switchboard::protocol::{push_json, push_json_walked};

/// One record of a typical hub result: a few fields, a nested object, a short array.
fn record(i: usize) -> String {
    format!(
        r#"{{"id":{i},"user":{{"name":"user-{i}","roles":["reader","writer"]}},"text":"hello from the load generator","score":{i}.5,"ok":true,"at":"2024-01-02T03:04:05.123Z"}}"#
    )
}

/// Plain payloads (no marker): a small object, a 100-record array, a long string.
fn plain() -> Vec<(&'static str, Box<RawValue>)> {
    let records: Vec<String> = (0..100).map(record).collect();
    let text = serde_json::Value::from("x".repeat(4096)).to_string();
    [
        ("object", record(1)),
        ("records_100", format!("[{}]", records.join(","))),
        ("string_4k", text),
    ]
    .into_iter()
    .map(|(name, json)| (name, RawValue::from_string(json).expect("valid JSON")))
    .collect()
}

/// The 100 records, each with a binary and a date marker.
fn marked() -> Box<RawValue> {
    let records: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"id":{i},"data":{{"$binary":"AAECf4D/"}},"at":{{"$date":"2024-01-02T03:04:05.123Z"}}}}"#
            )
        })
        .collect();
    RawValue::from_string(format!("[{}]", records.join(","))).expect("valid JSON")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_to_msgpack");
    let mut out = Vec::with_capacity(64 * 1024);
    let mut cases = plain();
    cases.push(("marked_records_100", marked()));
    for (name, json) in &cases {
        group.throughput(Throughput::Bytes(json.get().len() as u64));
        for (label, markers) in [
            ("never", Markers::Never),
            ("check", Markers::Check),
            ("always", Markers::Always),
        ] {
            // A marked payload only means something where markers are looked for.
            if name.starts_with("marked") && markers == Markers::Never {
                continue;
            }
            group.bench_with_input(BenchmarkId::new(label, name), json, |b, json| {
                b.iter(|| {
                    out.clear();
                    json_to_msgpack_with(black_box(json), &mut out, markers).expect("converts");
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("push_json");
    for (name, json) in &cases {
        group.throughput(Throughput::Bytes(json.get().len() as u64));
        group.bench_with_input(BenchmarkId::new("check", name), json, |b, json| {
            b.iter(|| {
                out.clear();
                push_json(&mut out, black_box(json.get()));
                black_box(out.len())
            })
        });
        group.bench_with_input(BenchmarkId::new("walk", name), json, |b, json| {
            b.iter(|| {
                out.clear();
                push_json_walked(&mut out, black_box(json.get()));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
