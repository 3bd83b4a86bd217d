//! Micro-benchmarks of the proxy's per-frame work: request-header decode (every request) and the response path
//! as the session runs it (`kafka::process_response`, the production function): a Metadata rewrite (every
//! metadata response), a Fetch v17 response passing through (every fetch response of a modern consumer, walked
//! for KIP-951 leader endpoints, almost always without them), the same Fetch over the tenant's fetch quota
//! and a Produce v11 response over its produce quota (`throttle_time_ms` raised). `cargo bench -p kaas-bench
//! --bench kafka_path`; `response_path_ir` runs the same cases for instruction counts under valgrind.

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kaas_proxy::kafka::codec::Frame;
use kaas_proxy::kafka::header::parse_request;
use kaas_proxy::kafka::rewrite::Advertise;

fn benches(c: &mut Criterion) {
    let header = common::request_header();
    let mut g = c.benchmark_group("request_header");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode", |b| {
        b.iter(|| parse_request(std::hint::black_box(&header)).map(|h| h.correlation_id))
    });
    g.finish();

    let adv = Advertise::new("acme", "kaas.example.com", 9092);
    let mut g = c.benchmark_group("response_path");
    for case in common::cases() {
        g.throughput(Throughput::Bytes(case.frame_body.len() as u64));
        // The frame is built in the untimed setup: the session gets it off the read buffer without a copy.
        g.bench_function(case.name, |b| {
            b.iter_batched(
                || Frame::from_body(&case.frame_body),
                |frame| common::production(frame, &case.request, &adv),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(kafka_path, benches);
criterion_main!(kafka_path);
