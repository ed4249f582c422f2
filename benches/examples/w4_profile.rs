//! Profiling aid: W4 batch scoring on one thread, repeated (the forest is cached in /tmp so
//! training stays out of the profile).
fn main() {
    let cache = std::path::Path::new("/tmp/rcf-w4-forest.bin");
    let f = match std::fs::read(cache)
        .ok()
        .and_then(|b| rcf_core::RandomCutForest::from_bytes(&b).ok())
    {
        Some(f) => f,
        None => {
            let f = rcf_benches::w4_forest();
            std::fs::write(cache, f.to_bytes()).unwrap();
            f
        }
    };
    let mut f = f;
    if let Some(m) = std::env::args().nth(2) {
        f.set_box_cache_min_mass(m.parse().unwrap()).unwrap();
    }
    let q = rcf_datasets::synth::w4_queries();
    // THREADS: the pool's size (1 by default)
    let threads = std::env::var("THREADS").map_or(1, |t| t.parse().unwrap());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let reps: usize = std::env::args().nth(1).map_or(5, |a| a.parse().unwrap());
    let mut acc = 0.0;
    let t = std::time::Instant::now();
    for _ in 0..reps {
        acc += pool
            .install(|| f.score_many(&q).unwrap())
            .iter()
            .sum::<f64>();
    }
    println!(
        "{:.2} us/pt ({acc})",
        t.elapsed().as_secs_f64() * 1e6 / (reps * q.len() / 8) as f64
    );
}
