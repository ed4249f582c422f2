//! Profiling aid: W1-style updates only (no scoring), after a warm-up.
use rcf_core::RandomCutForest;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(40_000, |a| a.parse().unwrap());
    let mm: usize = std::env::args().nth(2).map_or(4, |a| a.parse().unwrap());
    let x: Vec<f32> = (0..n)
        .map(|t| {
            ((t as f64 * std::f64::consts::TAU / 200.0).sin()
                + 0.05 * (((t * 7919) % 1000) as f64 / 500.0 - 1.0)) as f32
        })
        .collect();
    let mut f = RandomCutForest::builder(1)
        .shingle_size(8)
        .box_cache_min_mass(mm)
        .build()
        .unwrap();
    for v in &x[..n / 2] {
        f.update(&[*v]).unwrap();
    }
    let t = std::time::Instant::now();
    for v in &x[n / 2..] {
        steady(&mut f, *v);
    }
    println!(
        "{:.2} us/update",
        t.elapsed().as_secs_f64() * 1e6 / (n / 2) as f64
    );
}
#[inline(never)]
fn steady(f: &mut RandomCutForest, v: f32) {
    f.update(&[v]).unwrap();
}
