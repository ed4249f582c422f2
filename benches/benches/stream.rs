//! The streaming detector on W1, next to the bare forest it wraps (`stream/process`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rcf_benches::{WARM_POINTS, w1_detector, w1_forest};
use rcf_datasets::synth;

const BLOCK: usize = 1_000;

fn stream(c: &mut Criterion) {
    let series = synth::w1_standard().values;
    let mut group = c.benchmark_group("stream/process");
    group.throughput(Throughput::Elements(BLOCK as u64));

    let mut forest = w1_forest(rcf_core::DEFAULT_BOX_CACHE_MIN_MASS);
    let mut detector = w1_detector();
    for v in &series[..WARM_POINTS] {
        forest.update(&[*v]).unwrap();
        detector.process(&[*v]).unwrap();
    }
    let mut t = WARM_POINTS;
    group.bench_function(BenchmarkId::new("w1", "forest"), |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for _ in 0..BLOCK {
                acc += forest.process(&[black_box(series[t])]).unwrap();
                t = if t + 1 == series.len() {
                    WARM_POINTS
                } else {
                    t + 1
                };
            }
            acc
        })
    });
    let mut t = WARM_POINTS;
    group.bench_function(BenchmarkId::new("w1", "detector"), |b| {
        b.iter(|| {
            let mut anomalies = 0;
            for _ in 0..BLOCK {
                anomalies += usize::from(
                    detector
                        .process(&[black_box(series[t])])
                        .unwrap()
                        .is_anomaly,
                );
                t = if t + 1 == series.len() {
                    WARM_POINTS
                } else {
                    t + 1
                };
            }
            anomalies
        })
    });
    group.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
