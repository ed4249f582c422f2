//! Prints the figures recorded in `BENCHMARKS.md` that criterion does not measure: memory, state
//! size, the box-cache speed/memory curve (timed interleaved, best of 3, in one run, since this
//! machine is noisy), spike ranks, and W4 thread scaling.
//!
//! ```text
//! cargo run --release -p rcf-benches --bin report            # everything
//! cargo run --release -p rcf-benches --bin report -- w1-csv FILE    # write W1 for side-by-side runs
//! cargo run --release -p rcf-benches --bin report -- w1-time FILE [MIN_MASS]  # time W1 over FILE
//! cargo run --release -p rcf-benches --bin report -- w1-spikes      # W1's spike indices
//! cargo run --release -p rcf-benches --bin report -- w4             # the W4 table alone
//! ```

use std::time::Instant;

use rcf_benches::{trained_w1_forest, w1_detector, w1_forest, w2_forest, w4_forest};
use rcf_core::RandomCutForest;
use rcf_datasets::synth;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// µs per point of `process` over `series`, on a fresh forest from `make`.
fn time_w1(make: &dyn Fn() -> RandomCutForest, series: &[f32]) -> (f64, Vec<f64>) {
    let mut f = make();
    let t0 = Instant::now();
    let scores: Vec<f64> = series.iter().map(|v| f.process(&[*v]).unwrap()).collect();
    (
        t0.elapsed().as_secs_f64() * 1e6 / series.len() as f64,
        scores,
    )
}

fn in_top(scores: &[f64], indices: &[usize], fraction: f64) -> usize {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let cutoff = sorted[((scores.len() as f64 * fraction).ceil() as usize).max(1) - 1];
    indices.iter().filter(|&&i| scores[i] >= cutoff).count()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("w1-csv") => {
            let path = args.get(2).expect("usage: report w1-csv FILE");
            let s = synth::w1_standard();
            let text: String = s.values.iter().map(|v| format!("{v}\n")).collect();
            std::fs::write(path, text).expect("write W1");
            return;
        }
        Some("w1-time") => {
            let path = args.get(2).expect("usage: report w1-time FILE [MIN_MASS]");
            let min_mass = args
                .get(3)
                .map_or(rcf_core::DEFAULT_BOX_CACHE_MIN_MASS, |m| {
                    m.parse().expect("MIN_MASS is a whole number")
                });
            let text = std::fs::read_to_string(path).expect("read W1");
            let series: Vec<f32> = text.lines().map(|l| l.parse().unwrap()).collect();
            let (us, _) = time_w1(&|| w1_forest(min_mass), &series);
            println!("{us:.3}");
            return;
        }
        Some("w4") => {
            w4_table();
            return;
        }
        Some("w3-rss") => {
            let series = synth::w1_standard().values;
            let mut f = w1_forest(rcf_core::DEFAULT_BOX_CACHE_MIN_MASS);
            let before = rss_kib();
            for v in &series {
                f.update(&[*v]).unwrap();
            }
            let after = rss_kib();
            if let (Some(b), Some(a)) = (before, after) {
                println!(
                    "resident memory growth while training it in a fresh process: {} KiB (includes allocator slack)",
                    a.saturating_sub(b)
                );
            }
            std::hint::black_box(&f);
            return;
        }
        Some("w1-spikes") => {
            for t in synth::w1_standard().anomalies {
                println!("{t}");
            }
            return;
        }
        _ => {}
    }
    let w1 = synth::w1_standard();

    println!("## W1 box-cache curve (process, 100,000 points, best of 3 interleaved rounds)\n");
    println!("| box_cache_min_mass | µs/point | forest memory (KiB) | cached boxes per tree |");
    println!("|---|---|---|---|");
    let thresholds = [2usize, 3, 4, 6, 8, 16];
    let mut best = vec![f64::INFINITY; thresholds.len()];
    let mut w1_scores = Vec::new();
    for _round in 0..3 {
        for (i, &m) in thresholds.iter().enumerate() {
            let (us, scores) = time_w1(&|| w1_forest(m), &w1.values);
            best[i] = best[i].min(us);
            if m == rcf_core::DEFAULT_BOX_CACHE_MIN_MASS {
                w1_scores = scores;
            }
        }
    }
    for (i, &m) in thresholds.iter().enumerate() {
        let f = trained_w1_forest(m);
        let boxes = f.memory_breakdown().boxes as f64 / (2.0 * 8.0 * 4.0) / 50.0;
        println!(
            "| {m} | {:.2} | {:.0} | {boxes:.0} |",
            best[i],
            f.memory_usage() as f64 / 1024.0
        );
    }
    let hits = in_top(&w1_scores, &w1.anomalies, 0.01);
    println!(
        "\nW1 spikes in the top 1 % of scores: {hits}/{}",
        w1.anomalies.len()
    );

    println!("\n## Streaming detector on W1 (best of 3 interleaved rounds)\n");
    let mut best = [f64::INFINITY; 2];
    let mut alarms = 0;
    for _round in 0..3 {
        let (us, _) = time_w1(
            &|| w1_forest(rcf_core::DEFAULT_BOX_CACHE_MIN_MASS),
            &w1.values,
        );
        best[0] = best[0].min(us);
        let mut d = w1_detector();
        let t0 = Instant::now();
        alarms = 0;
        for v in &w1.values {
            alarms += usize::from(d.process(&[*v]).unwrap().is_anomaly);
        }
        best[1] = best[1].min(t0.elapsed().as_secs_f64() * 1e6 / w1.values.len() as f64);
    }
    println!(
        "forest.process {:.2} µs/point, Detector::process {:.2} µs/point: ratio {:.2} (target ≤ 1.3); {alarms} alarms for {} spikes",
        best[0],
        best[1],
        best[1] / best[0],
        w1.anomalies.len()
    );

    println!("\n## W3 memory and state (trained W1 forest, default settings)\n");
    let f = trained_w1_forest(rcf_core::DEFAULT_BOX_CACHE_MIN_MASS);
    let m = f.memory_breakdown();
    println!(
        "forest.memory_usage(): {:.0} KiB",
        f.memory_usage() as f64 / 1024.0
    );
    println!(
        "  nodes {:.0} KiB, leaves {:.0} KiB, boxes {:.0} KiB, samplers {:.0} KiB, points {:.0} KiB, other {:.0} KiB",
        m.nodes as f64 / 1024.0,
        m.leaves as f64 / 1024.0,
        m.boxes as f64 / 1024.0,
        m.samplers as f64 / 1024.0,
        m.points as f64 / 1024.0,
        m.other as f64 / 1024.0
    );
    // resident memory measured in a fresh process, so no earlier allocation is reused
    let exe = std::env::current_exe().expect("own path");
    if let Ok(out) = std::process::Command::new(exe).arg("w3-rss").output() {
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let mut save = f64::INFINITY;
    let mut load = f64::INFINITY;
    let mut bytes = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        bytes = f.to_bytes();
        save = save.min(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let g = RandomCutForest::from_bytes(&bytes).unwrap();
        load = load.min(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(g.score(&[0.5]).unwrap(), f.score(&[0.5]).unwrap());
    }
    println!(
        "serialized: {:.0} KiB; save {save:.2} ms, load {load:.2} ms (best of 20)",
        bytes.len() as f64 / 1024.0
    );

    println!("\n## W2 (3 metrics, shingle 4, 100 trees; best of 3 interleaved rounds)\n");
    let w2 = synth::w2_standard();
    let rows: Vec<usize> = w2.anomalies.iter().map(|&(t, _)| t).collect();
    println!("| box_cache_min_mass | process µs/point | attribution + process µs/point |");
    println!("|---|---|---|");
    let mut best = [[f64::INFINITY; 2]; 2];
    let mut hits = 0;
    let mut named = 0;
    for _round in 0..3 {
        for (i, min_mass) in [rcf_core::DEFAULT_BOX_CACHE_MIN_MASS, 2]
            .into_iter()
            .enumerate()
        {
            let mut f = w2_forest();
            f.set_box_cache_min_mass(min_mass).unwrap();
            let mut scores = Vec::with_capacity(w2.len());
            let t0 = Instant::now();
            for t in 0..w2.len() {
                scores.push(f.process(w2.row(t)).unwrap());
            }
            best[i][0] = best[i][0].min(t0.elapsed().as_secs_f64() * 1e6 / w2.len() as f64);
            hits = in_top(&scores, &rows, 0.01);
            let mut g = w2_forest();
            g.set_box_cache_min_mass(min_mass).unwrap();
            named = 0;
            let t0 = Instant::now();
            for t in 0..w2.len() {
                let a = g.attribution(w2.row(t)).unwrap();
                g.process(w2.row(t)).unwrap();
                if let Some(&(_, metric)) = w2.anomalies.iter().find(|&&(s, _)| s == t) {
                    let folded = a.fold_shingle();
                    let weight = |j: usize| folded.high(j) + folded.low(j);
                    let top = (0..3)
                        .max_by(|&i, &j| weight(i).total_cmp(&weight(j)))
                        .unwrap();
                    named += usize::from(top == metric);
                }
            }
            best[i][1] = best[i][1].min(t0.elapsed().as_secs_f64() * 1e6 / w2.len() as f64);
        }
    }
    for (i, min_mass) in [rcf_core::DEFAULT_BOX_CACHE_MIN_MASS, 2]
        .into_iter()
        .enumerate()
    {
        println!("| {min_mass} | {:.2} | {:.2} |", best[i][0], best[i][1]);
    }
    println!(
        "\nspikes in the top 1 %: {hits}/{}; attribution names the spiked metric: {named}/{}",
        rows.len(),
        rows.len()
    );

    w4_table();
}

/// The W4 table: batch scoring of the frozen W4 forest on 1 and 2 threads, at the default box
/// cache and with every box cached (also `report w4` alone).
fn w4_table() {
    println!("\n## W4 (batch scoring of a frozen forest; best of 5 interleaved rounds)\n");
    let mut f = w4_forest();
    let queries = synth::w4_queries();
    let n = queries.len() / 8;
    println!("| box_cache_min_mass | 1 thread µs/point | 2 threads µs/point | speed-up |");
    println!("|---|---|---|---|");
    for min_mass in [rcf_core::DEFAULT_BOX_CACHE_MIN_MASS, 2] {
        f.set_box_cache_min_mass(min_mass).unwrap();
        let mut best = [f64::INFINITY; 2];
        for _ in 0..5 {
            for (i, threads) in [1usize, 2].into_iter().enumerate() {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let t = Instant::now();
                let s = pool.install(|| f.score_many(&queries).unwrap());
                best[i] = best[i].min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
                assert_eq!(s.len(), n);
            }
        }
        println!(
            "| {min_mass} | {:.2} | {:.2} | {:.2}× |",
            best[0],
            best[1],
            best[0] / best[1]
        );
    }
}
