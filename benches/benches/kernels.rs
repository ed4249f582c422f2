//! The separation kernel: SSE2 (what the forest uses on x86-64) against its portable twin, at
//! the dimensions of the workloads. This bench is the evidence the style guide asks for before
//! an architecture-specific kernel is kept.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rcf_core::__bench::{gap_and_range, gap_and_range_portable};

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernels/gap_and_range");
    const CALLS: usize = 1_024;
    group.throughput(Throughput::Elements(CALLS as u64));
    for dims in [3usize, 8, 12, 40] {
        // CALLS different boxes, as a walk visits them
        let x: Vec<f32> = (0..dims).map(|i| (i as f32 * 0.7).sin() * 2.0).collect();
        let boxes: Vec<(Vec<f32>, Vec<f32>)> = (0..CALLS)
            .map(|k| {
                let lo = (0..dims)
                    .map(|i| ((i + k) as f32 * 0.13).cos() - 1.0)
                    .collect();
                let hi = (0..dims)
                    .map(|i| ((i * k) as f32 * 0.07).sin() + 1.0)
                    .collect();
                (lo, hi)
            })
            .collect();
        for (name, kernel) in [
            (
                "sse2",
                gap_and_range as fn(&[f32], &[f32], &[f32]) -> (f64, f64),
            ),
            ("portable", gap_and_range_portable),
        ] {
            group.bench_function(BenchmarkId::new(name, format!("d{dims}")), |b| {
                b.iter(|| {
                    let mut acc = 0.0;
                    for (lo, hi) in &boxes {
                        let (g, r) = kernel(black_box(&x), lo, hi);
                        acc += g / (g + r);
                    }
                    acc
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
