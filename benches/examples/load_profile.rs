//! Profiling aid: save and load a W1-trained forest repeatedly.
use rcf_core::RandomCutForest;
fn main() {
    let mut f = RandomCutForest::builder(1).shingle_size(8).build().unwrap();
    for t in 0..30_000 {
        f.update(&[((t as f64 * std::f64::consts::TAU / 200.0).sin()
            + 0.05 * (((t * 7919) % 1000) as f64 / 500.0 - 1.0)) as f32])
            .unwrap();
    }
    let bytes = f.to_bytes();
    let t = std::time::Instant::now();
    for _ in 0..200 {
        std::hint::black_box(load(&bytes));
    }
    println!("{:.2} ms/load", t.elapsed().as_secs_f64() * 1e3 / 200.0);
}
#[inline(never)]
fn load(b: &[u8]) -> RandomCutForest {
    RandomCutForest::from_bytes(b).unwrap()
}
