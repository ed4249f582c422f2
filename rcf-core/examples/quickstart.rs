//! Quickstart: stream a built-in synthetic sensor series through a forest and report what it
//! finds.
//!
//! ```text
//! cargo run --release -p rcf-core --example quickstart
//! ```
//!
//! The series is a noisy sine wave (a periodic sensor reading) with ten injected spikes. Each
//! point is scored, then learned, in one `process` call; at the end the example lists the
//! highest scores, says which are the injected spikes, explains the top one with its
//! attribution, and shows that a saved forest continues identically.

use rcf_core::RandomCutForest;

use rcf_datasets::synth::Rng;

fn main() -> Result<(), rcf_core::Error> {
    // 20,000 readings of a noisy sine (period 200) with 10 spikes of ±3..5 after t = 1,000
    let mut rng = Rng::new(7);
    let n = 20_000;
    let mut series: Vec<f32> = (0..n)
        .map(|t| {
            let noise = (rng.uniform() - 0.5) * 0.15;
            ((std::f64::consts::TAU * t as f64 / 200.0).sin() + noise) as f32
        })
        .collect();
    let spikes: Vec<usize> = (0..10).map(|i| 1_500 + i * 1_830).collect();
    for (i, &t) in spikes.iter().enumerate() {
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        series[t] += sign * (3.0 + rng.uniform() as f32 * 2.0);
    }

    // one metric, shingles of the last 8 readings, 50 trees of 256 samples (the defaults)
    let mut forest = RandomCutForest::builder(1)
        .shingle_size(8)
        .seed(42)
        .build()?;
    let started = std::time::Instant::now();
    let scores: Vec<f64> = series
        .iter()
        .map(|&x| forest.process(&[x]))
        .collect::<Result<_, _>>()?;
    let elapsed = started.elapsed();

    println!(
        "streamed {n} points through a {}-tree forest in {:.1} ms ({:.1} µs/point)",
        forest.config().num_trees,
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    let typical = scores[2_000..].iter().sum::<f64>() / (n - 2_000) as f64;
    println!("typical score: {typical:.2} (scores of ordinary points sit near 1)\n");

    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let cutoff = scores[order[n / 100 - 1]];
    let found = spikes.iter().filter(|&&t| scores[t] >= cutoff).count();
    println!("{found}/10 injected spikes score in the top 1 % of all points (cut-off {cutoff:.2})");

    // A spike stays in the 8-reading shingle for 8 steps, so each one raises a short run of
    // high scores (rcf-stream's detector turns a run into one alarm). Group the top scores into
    // events at least a shingle apart and list the strongest ten.
    let mut events: Vec<usize> = Vec::new();
    for &t in &order {
        if events.len() == 10 {
            break;
        }
        if events.iter().all(|&e| e.abs_diff(t) >= 8) {
            events.push(t);
        }
    }
    println!("\nstrongest 10 events (peak score, and the injected spike it covers):");
    for &t in &events {
        let spike = spikes.iter().find(|&&s| s <= t && t < s + 8);
        let tag = spike.map_or(String::from("-"), |s| format!("spike at t = {s}"));
        println!("  t = {t:>6}  score {:>5.2}  {tag}", scores[t]);
    }

    // explain: which shingle position (how many steps ago) carries the anomaly?
    let probe = [6.0f32];
    let a = forest.attribution(&probe)?;
    let (pos, share) = (0..a.dimensions())
        .map(|i| (i, (a.high(i) + a.low(i)) / a.total()))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .expect("8 dimensions");
    println!(
        "a new reading of {:.1} would score {:.2}; {:.0} % of it comes from shingle slot {pos} \
         (the newest is slot {}), above the usual range ({})",
        probe[0],
        a.total(),
        share * 100.0,
        a.dimensions() - 1,
        if a.high(pos) > a.low(pos) {
            "high"
        } else {
            "low"
        }
    );

    // save, restore, and continue identically
    let bytes = forest.to_bytes();
    let mut restored = RandomCutForest::from_bytes(&bytes)?;
    let same = series[..500]
        .iter()
        .all(|&x| forest.process(&[x]).ok() == restored.process(&[x]).ok());
    println!(
        "saved state: {:.0} KiB; restored forest continues identically: {same}",
        bytes.len() as f64 / 1024.0
    );
    Ok(())
}
