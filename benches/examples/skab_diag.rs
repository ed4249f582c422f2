//! Diagnostic: on SKAB, does recall die because scores fall (the forest learns the anomaly) or
//! because the threshold rises?
use rcf_datasets::skab::{self, SENSORS, TRAINING_ROWS};
use rcf_stream::Detector;
fn main() {
    let root = rcf_datasets::data_root().unwrap();
    let files = skab::load(&root).unwrap();
    // the anomaly-free recording, as extra history (SKAB's strongest methods train on it)
    let free: Vec<f32> =
        std::fs::read_to_string(root.join("skab/data/anomaly-free/anomaly-free.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .flat_map(|l| {
                l.split(';')
                    .skip(1)
                    .take(8)
                    .map(|v| v.trim().parse::<f32>().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
    let use_free = std::env::var_os("FREE").is_some();
    let (mut tp, mut fp, mut fn_) = ([0usize; 2], [0usize; 2], [0usize; 2]);
    let mut ap = [0.0; 2];
    for f in &files {
        let shingle: usize = std::env::var("SHINGLE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4);
        let norm = match std::env::var("NORM").as_deref() {
            Ok("none") => rcf_stream::Normalization::None,
            Ok("diff") => rcf_stream::Normalization::NormalizeDifference,
            _ => rcf_stream::Normalization::Normalize,
        };
        let mut d = Detector::builder(SENSORS)
            .seed(0)
            .shingle_size(shingle)
            .normalization(norm)
            .build()
            .unwrap();
        if use_free {
            d.bootstrap(&free).unwrap();
        }
        d.bootstrap(&f.values[..TRAINING_ROWS * 8]).unwrap();
        let mut frozen = None;
        let (mut raw, mut ratio) = (Vec::new(), Vec::new());
        for t in TRAINING_ROWS..f.len() {
            let v = d.process(f.row(t)).unwrap();
            let fz = *frozen.get_or_insert(v.threshold);
            for (k, flagged) in [v.score > v.threshold, v.score > fz]
                .into_iter()
                .enumerate()
            {
                match (flagged, f.anomaly[t]) {
                    (true, true) => tp[k] += 1,
                    (true, false) => fp[k] += 1,
                    (false, true) => fn_[k] += 1,
                    _ => {}
                }
            }
            raw.push((v.score, f.anomaly[t]));
            ratio.push((v.score / v.threshold, f.anomaly[t]));
        }
        ap[0] += rcf_datasets::metrics::average_precision(&ratio);
        ap[1] += rcf_datasets::metrics::average_precision(&raw);
    }
    for (k, name) in ["adaptive threshold", "threshold frozen after bootstrap"]
        .iter()
        .enumerate()
    {
        let p = tp[k] as f64 / (tp[k] + fp[k]).max(1) as f64;
        let r = tp[k] as f64 / (tp[k] + fn_[k]).max(1) as f64;
        println!(
            "{name}: precision {p:.3} recall {r:.3} F1 {:.3}",
            2.0 * p * r / (p + r).max(1e-9)
        );
    }
    println!(
        "AUC-PR of score/threshold {:.3}, of raw score {:.3}",
        ap[0] / files.len() as f64,
        ap[1] / files.len() as f64
    );
}
