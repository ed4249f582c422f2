//! Criterion benchmarks of the forest on workloads W1–W4 (`benchmarks.md` §7).
//!
//! `cargo bench -p rcf-benches --bench forest` measures; `cargo test -p rcf-benches --benches`
//! runs each once (CI).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rcf_benches::{WARM_POINTS, trained_w1_forest, w1_forest, w2_forest, w4_forest};
use rcf_datasets::synth;

/// Points per measured iteration for the streaming workloads.
const BLOCK: usize = 1_000;

fn w1(c: &mut Criterion) {
    let series = synth::w1_standard().values;
    let mut group = c.benchmark_group("forest/process");
    group.throughput(Throughput::Elements(BLOCK as u64));
    for min_mass in [2usize, 4, 8, 16] {
        let mut forest = w1_forest(min_mass);
        for v in &series[..WARM_POINTS] {
            forest.update(&[*v]).unwrap();
        }
        let mut t = WARM_POINTS;
        group.bench_function(
            BenchmarkId::new("w1", format!("d8_t50_s256_c{min_mass}")),
            |b| {
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
            },
        );
    }
    group.finish();
}

fn w2(c: &mut Criterion) {
    let data = synth::w2_standard();
    let n = data.len();
    let warm = 10_000;
    let mut group = c.benchmark_group("forest/process");
    group.throughput(Throughput::Elements(BLOCK as u64));
    for with_attribution in [false, true] {
        let mut forest = w2_forest();
        for t in 0..warm {
            forest.update(data.row(t)).unwrap();
        }
        let mut t = warm;
        let id = if with_attribution {
            "w2_attribution"
        } else {
            "w2"
        };
        group.bench_function(BenchmarkId::new(id, "d12_t100_s256"), |b| {
            b.iter(|| {
                let mut acc = 0.0;
                for _ in 0..BLOCK {
                    let row = black_box(data.row(t));
                    if with_attribution {
                        acc += forest.attribution(row).unwrap().total();
                    }
                    acc += forest.process(row).unwrap();
                    t = if t + 1 == n { warm } else { t + 1 };
                }
                acc
            })
        });
    }
    group.finish();
}

fn w3(c: &mut Criterion) {
    let forest = trained_w1_forest(rcf_core::DEFAULT_BOX_CACHE_MIN_MASS);
    let bytes = forest.to_bytes();
    let mut group = c.benchmark_group("forest/state");
    group.sample_size(30);
    group.bench_function("w3_save", |b| b.iter(|| black_box(&forest).to_bytes()));
    group.bench_function("w3_load", |b| {
        b.iter(|| rcf_core::RandomCutForest::from_bytes(black_box(&bytes)).unwrap())
    });
    group.finish();
}

fn w4(c: &mut Criterion) {
    let mut forest = w4_forest();
    let queries = synth::w4_queries();
    let n = queries.len() / 8;
    let mut group = c.benchmark_group("forest/score_many");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    for min_mass in [rcf_core::DEFAULT_BOX_CACHE_MIN_MASS, 2] {
        forest.set_box_cache_min_mass(min_mass).unwrap();
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let id = BenchmarkId::new("w4", format!("c{min_mass}_threads{threads}"));
            group.bench_function(id, |b| {
                b.iter(|| pool.install(|| forest.score_many(black_box(&queries)).unwrap()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, w1, w2, w3, w4);
criterion_main!(benches);
