//! Criterion benches of the protocol core's main operations on 2^16
//! elements; throughput is elements per second. `triad-bench micro` gives
//! the byte and round counts and runs at any size.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use triad_bench::measure;

const N: usize = 1 << 16;

fn protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    for op in [
        "mul",
        "lt",
        "eq",
        "shuffle",
        "a2b",
        "sort32",
        "sort32_radix",
    ] {
        group.bench_function(op, |b| {
            b.iter_custom(|iters| {
                let m = measure(op, N, 1, 1, iters as usize).expect("benchmark run failed");
                std::time::Duration::from_secs_f64(m.seconds * iters as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, protocol);
criterion_main!(benches);
