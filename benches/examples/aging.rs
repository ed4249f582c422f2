//! Diagnostic: one fleet-model detector over many days of a daily rhythm; per day, the
//! datapoints over the threshold, the mean threshold and the mean score.
use rcf_stream::{Detector, Normalization};

fn main() {
    let days: usize = std::env::args().nth(1).map_or(16, |a| a.parse().unwrap());
    let norm = match std::env::args().nth(2).as_deref() {
        Some("none") => Normalization::None,
        _ => Normalization::Normalize,
    };
    let models: u64 = 50;
    let mut over = vec![0usize; days];
    let mut th = vec![0.0f64; days];
    let mut sc = vec![0.0f64; days];
    let mut n = vec![0usize; days];
    for m in 0..models {
        let mut r = rcf_datasets::synth::Rng::new(m + 1);
        let mut d = Detector::builder(["m", "b", "bat"])
            .num_trees(10)
            .sample_size(256)
            .shingle_size(8)
            .box_cache_min_mass(100_000)
            .p_values(false)
            .normalization(norm)
            .sensitivity(rcf_stream::Sensitivity::ZFactor(3.5))
            .seed(m)
            .build()
            .unwrap();
        let base = 50.0 + 20.0 * r.uniform();
        let peak = 13.0 + 3.0 * r.uniform();
        let size = 180.0 + 40.0 * r.uniform();
        let bat = 0.6 + 0.3 * r.uniform();
        for p in 0..days * 288 {
            let h = (p % 288) as f64 / 12.0;
            let daily = 1.0 + 0.5 * (std::f64::consts::TAU * (h - peak) / 24.0).cos();
            let msgs = (base * daily * (1.0 + 0.08 * r.normal())).max(0.0).round();
            let bytes = (msgs * size * (1.0 + 0.05 * r.normal())).round();
            let level = bat + 0.08 * (std::f64::consts::TAU * h / 24.0).sin() + 0.005 * r.normal();
            let battery = (level * 1000.0).round() / 10.0;
            let v = d
                .process(&[msgs as f32, bytes as f32, battery as f32])
                .unwrap();
            let day = p / 288;
            if v.score > 0.0 {
                over[day] += usize::from(v.score > v.threshold);
                th[day] += v.threshold;
                sc[day] += v.score;
                n[day] += 1;
            }
        }
    }
    for day in 0..days {
        let k = n[day].max(1) as f64;
        println!(
            "day {day:2}: over {:5}  threshold {:.3}  score {:.3}",
            over[day],
            th[day] / k,
            sc[day] / k
        );
    }
}
