//! Quick W1 timing (not a benchmark; criterion benches live in benches/).
use rcf_core::RandomCutForest;
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(100_000);
    let mut s: u64 = 7;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / (1u64 << 53) as f64
    };
    let x: Vec<f32> = (0..n)
        .map(|t| {
            ((t as f64 * std::f64::consts::TAU / 200.0).sin() + 0.05 * (next() - 0.5) * 3.4) as f32
        })
        .collect();
    for mm in std::env::args()
        .nth(2)
        .map(|a| vec![a.parse::<usize>().unwrap()])
        .unwrap_or(vec![2usize, 4, 8, 16])
    {
        let mut f = RandomCutForest::builder(1)
            .shingle_size(8)
            .box_cache_min_mass(mm)
            .build()
            .unwrap();
        let t0 = Instant::now();
        let mut acc = 0.0;
        for v in &x {
            acc += f.process(&[*v]).unwrap();
        }
        let dt = t0.elapsed().as_secs_f64() / n as f64 * 1e6;
        let t1 = Instant::now();
        let mut sc = f.scratch();
        let mut acc2 = 0.0;
        for v in &x[..x.len().min(20000)] {
            acc2 += f.score_with(&mut sc, &[*v]).unwrap();
        }
        let score_us = t1.elapsed().as_secs_f64() / x.len().min(20000) as f64 * 1e6;
        let t2 = Instant::now();
        for v in &x[..x.len().min(20000)] {
            f.update(&[*v]).unwrap();
        }
        let upd_us = t2.elapsed().as_secs_f64() / x.len().min(20000) as f64 * 1e6;
        println!("  score-only {score_us:.2} us, update-only {upd_us:.2} us ({acc2:.1})");
        println!(
            "min_mass {mm}: {dt:.2} us/pt  mem {} KB  bytes {} KB  mean {:.3}",
            f.memory_usage() / 1024,
            f.to_bytes().len() / 1024,
            acc / n as f64
        );
    }
}
#[allow(dead_code)]
fn split() {}
