//! Profiling aid: `score_many` on the W4 forest (frozen) for batch sizes around the size at
//! which it switches from the live trees to frozen copies (`FROZEN_MIN_POINTS`), one thread,
//! µs per point (best of 20 calls per size, sizes interleaved).
fn main() {
    let f = rcf_benches::w4_forest();
    let q = rcf_datasets::synth::w4_queries();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let sizes: Vec<usize> = match std::env::args().nth(1) {
        Some(n) => vec![n.parse().unwrap()],
        None => vec![64, 128, 255, 256, 512, 1024, 4096],
    };
    let mut best = vec![f64::INFINITY; sizes.len()];
    let rounds: usize = std::env::args().nth(2).map_or(20, |r| r.parse().unwrap());
    for _ in 0..rounds {
        for (k, &n) in sizes.iter().enumerate() {
            let batch = &q[..n * 8];
            let t = std::time::Instant::now();
            let s = pool.install(|| f.score_many(batch).unwrap());
            best[k] = best[k].min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            assert_eq!(s.len(), n);
        }
    }
    for (n, b) in sizes.iter().zip(&best) {
        println!("{n:>5} points: {b:.2} us/point");
    }
}
