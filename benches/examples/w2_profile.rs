//! Profiling aid: W2 (3 metrics, shingle 4, 100 trees) with attribution on every point, as the
//! report times it (`attribution(x)` then `process(x)`), over the first N points of the
//! standard W2 series; prints µs per point and a checksum of the attributions.
//!
//! ```text
//! cargo run --release -p rcf-benches --example w2_profile -- [N] [attribution|process]
//! ```
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |a| a.parse().unwrap());
    let attribution = std::env::args().nth(2).as_deref() != Some("process");
    let w2 = rcf_datasets::synth::w2_standard();
    let n = n.min(w2.len());
    let mut f = rcf_benches::w2_forest();
    let mut sum = 0.0;
    let t = std::time::Instant::now();
    for i in 0..n {
        if attribution {
            let a = f.attribution(w2.row(i)).unwrap();
            sum += a.highs().iter().sum::<f64>() - a.lows().iter().sum::<f64>();
        }
        sum += f.process(w2.row(i)).unwrap();
    }
    println!(
        "{:.2} us/pt ({sum})",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
