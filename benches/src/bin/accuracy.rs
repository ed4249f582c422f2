//! Accuracy runner: the rcf-stream `Detector`, one fixed configuration, on reference data.
//!
//! ```text
//! cargo run --release -p rcf-benches --bin accuracy -- nab                    # our detector
//! cargo run --release -p rcf-benches --bin accuracy -- nab --reference aws    # AWS RCF's bundled results
//! cargo run --release -p rcf-benches --bin accuracy -- skab                   # SKAB: F1, AUC-PR lift, NAB-style
//! ```
//!
//! Prints progress on stderr and ends with exactly one line:
//! `NAB standard=S reward_low_FP_rate=P reward_low_FN_rate=N auc_pr=A` (VUS-PR / VUS-ROC go to
//! stderr with the progress, so the line keeps the issue's exact format). No per-file tuning: every
//! file gets the same detector configuration; NAB then picks one threshold per profile for the
//! whole corpus, as its rules allow.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use rcf_datasets::nab::{self, NabFile, PROFILES};
use rcf_stream::{Detector, Normalization, Sensitivity};

/// The configuration every NAB file gets: the detector's defaults. (`RCF_ACCURACY_CONFIG`,
/// e.g. `shingle=8,sensitivity=high,normalization=difference`, overrides them for
/// development experiments; reported results use the defaults.)
fn detector() -> Detector {
    let mut b = Detector::builder(["value"]).seed(0);
    if let Ok(spec) = std::env::var("RCF_ACCURACY_CONFIG") {
        for kv in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("key=value");
            b = match k {
                "shingle" => b.shingle_size(v.parse().unwrap()),
                "trees" => b.num_trees(v.parse().unwrap()),
                "samples" => b.sample_size(v.parse().unwrap()),
                "decay" => b.time_decay(v.parse().unwrap()),
                "sensitivity" => b.sensitivity(match v {
                    "low" => Sensitivity::Low,
                    "medium" => Sensitivity::Medium,
                    "high" => Sensitivity::High,
                    z => Sensitivity::ZFactor(z.parse().unwrap()),
                }),
                "normalization" => b.normalization(match v {
                    "none" => Normalization::None,
                    "difference" => Normalization::Difference,
                    "normalize_difference" => Normalization::NormalizeDifference,
                    _ => Normalization::Normalize,
                }),
                other => panic!("unknown key {other}"),
            };
        }
        eprintln!("  configuration override: {spec}");
    }
    b.build().expect("valid configuration")
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26 for erf; |error| < 1.5e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// NAB wants scores in [0, 1]. Reported anomalies map to [0.5, 1] by grade; every other row to
/// `0.5 · min(1, score / threshold)`, so the threshold-free metrics see the detector's ranking
/// and NAB's sweep may still pick a threshold below the alarms if that scores better.
/// One-alarm-per-event suppression is part of what NAB then measures.
fn run_detector(f: &NabFile) -> Vec<f64> {
    let mut d = detector();
    let mapping = std::env::var("RCF_ACCURACY_SCORE").unwrap_or_default();
    // HTM-style anomaly likelihood: the short-term average of scores judged against the
    // long-term distribution of such averages
    let short: usize = std::env::var("RCF_LIKELIHOOD_SHORT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut recent: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    let (mut w, mut mean, mut var) = (0.0f64, 0.0f64, 0.0f64);
    let decay = 1.0 / 2_560.0;
    f.values
        .iter()
        .map(|&v| {
            let verdict = d.process(&[v as f32]).expect("NAB values are finite");
            if mapping == "likelihood" {
                if verdict.score <= 0.0 {
                    return 0.0;
                }
                recent.push_back(verdict.score);
                if recent.len() > short {
                    recent.pop_front();
                }
                let avg = recent.iter().sum::<f64>() / recent.len() as f64;
                let sd = var.sqrt().max(1e-3);
                let likelihood = if w > 50.0 {
                    phi((avg - mean) / sd)
                } else {
                    0.5
                };
                w = (1.0 - decay) * w + 1.0;
                let a = 1.0 / w;
                let diff = avg - mean;
                mean += a * diff;
                var = (1.0 - a) * (var + a * diff * diff);
                return likelihood;
            }
            if mapping == "pvalue" {
                return 1.0 - verdict.p_value;
            }
            if mapping == "pvalue_alarm" {
                // alarms only, ranked by how rare their score is
                return if verdict.is_anomaly {
                    1.0 - verdict.p_value
                } else {
                    0.0
                };
            }
            if verdict.is_anomaly {
                0.5 + 0.5 * verdict.grade
            } else if verdict.threshold > 0.0 {
                0.5 * (verdict.score / verdict.threshold).min(1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Per-file means of a pair of metrics.
fn mean_pair(per_file: &[(f64, f64)]) -> (f64, f64) {
    let n = per_file.len() as f64;
    (
        per_file.iter().map(|a| a.0).sum::<f64>() / n,
        per_file.iter().map(|a| a.1).sum::<f64>() / n,
    )
}

fn summary(files: &[NabFile], scores: &HashMap<String, Vec<f64>>) -> String {
    let mut line = String::from("NAB");
    for p in &PROFILES {
        let s = nab::optimize(files, scores, p);
        eprintln!(
            "  {:<20} {:7.2} (raw {:8.3}, threshold {:.4})",
            p.name, s.normalized, s.raw, s.threshold
        );
        line.push_str(&format!(" {}={:.2}", p.name, s.normalized));
    }
    let aucs: Vec<(f64, f64)> = files
        .iter()
        .filter_map(|f| nab::auc(f, &scores[&f.name]))
        .collect();
    let (ap, roc) = mean_pair(&aucs);
    eprintln!(
        "  AUC-PR {ap:.3}, AUC-ROC {roc:.3} (mean of {} files with windows)",
        aucs.len()
    );
    line.push_str(&format!(" auc_pr={ap:.3}"));
    let vus: Vec<(f64, f64)> = files
        .iter()
        .filter_map(|f| nab::vus(f, &scores[&f.name]))
        .collect();
    let (vus_roc, vus_pr) = mean_pair(&vus);
    eprintln!(
        "  VUS-PR {vus_pr:.3}, VUS-ROC {vus_roc:.3} (same files and labels; buffer = period)"
    );
    line
}

/// SKAB: per file, a fresh detector (all 8 sensors) bootstrapped with the training rows, then
/// the test rows streamed. SKAB's anomalies are long segments scored point by point, so a
/// point counts as flagged when its score is above the threshold (the one-alarm-per-event flag
/// marks only an event's start). Reports pooled F1, mean AUC-PR of `score / threshold`, and
/// its lift over the positive rate (what random scores get), and the NAB-style changepoint
/// score of the detector's alarms (one per event), as SKAB's README reports it.
fn skab(files: &[rcf_datasets::skab::SkabFile]) -> String {
    use rcf_datasets::skab::{SENSORS, TRAINING_ROWS};
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let (mut ap_sum, mut lift_sum) = (0.0, 0.0);
    let mut alarms: Vec<Vec<bool>> = Vec::with_capacity(files.len());
    for f in files {
        let mut d = Detector::builder(SENSORS)
            .seed(0)
            .build()
            .expect("valid configuration");
        d.bootstrap(&f.values[..TRAINING_ROWS * 8])
            .expect("finite values");
        let mut labelled = Vec::new();
        let mut alarm = Vec::with_capacity(f.len() - TRAINING_ROWS);
        for t in TRAINING_ROWS..f.len() {
            let v = d.process(f.row(t)).expect("finite values");
            alarm.push(v.is_anomaly);
            let flagged = v.threshold > 0.0 && v.score > v.threshold;
            match (flagged, f.anomaly[t]) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                _ => {}
            }
            let s = if v.threshold > 0.0 {
                v.score / v.threshold
            } else {
                0.0
            };
            labelled.push((s, f.anomaly[t]));
        }
        let positives = labelled.iter().filter(|l| l.1).count() as f64 / labelled.len() as f64;
        alarms.push(alarm);
        let ap = rcf_datasets::metrics::average_precision(&labelled);
        ap_sum += ap;
        lift_sum += if positives > 0.0 { ap / positives } else { 1.0 };
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let n = files.len() as f64;
    eprintln!(
        "  precision {precision:.3}, recall {recall:.3} over {} test rows",
        tp + fp + fn_
    );
    // changepoint detection: the detector's alarms (one per event) against a 60-row (60 s)
    // window to the right of each changepoint, NAB-weighted, test rows only
    let series: Vec<(&[bool], &[bool])> = files
        .iter()
        .zip(&alarms)
        .map(|(f, a)| (&f.changepoint[TRAINING_ROWS..], a.as_slice()))
        .collect();
    // chance level: as many alarms per file as ours, at seeded uniformly random rows
    let mut rng = rcf_datasets::synth::Rng::new(0);
    let random: Vec<Vec<bool>> = alarms
        .iter()
        .map(|a| {
            let mut r = vec![false; a.len()];
            for _ in a.iter().filter(|x| **x) {
                r[(rng.uniform() * a.len() as f64) as usize % a.len()] = true;
            }
            r
        })
        .collect();
    let random_series: Vec<(&[bool], &[bool])> = series
        .iter()
        .zip(&random)
        .map(|(s, r)| (s.0, r.as_slice()))
        .collect();
    let mut changepoint = Vec::new();
    for p in &PROFILES {
        let score = nab::changepoint_score(&series, 60, 0, p).unwrap_or(f64::NAN);
        let chance = nab::changepoint_score(&random_series, 60, 0, p).unwrap_or(f64::NAN);
        eprintln!(
            "  changepoint NAB-style {:<20} {score:7.2} (random alarms, same count: {chance:.2})",
            p.name
        );
        changepoint.push(score);
    }
    format!(
        "SKAB f1={f1:.3} auc_pr={:.3} auc_pr_lift={:.2} nab_standard={:.2} nab_low_fp={:.2} nab_low_fn={:.2}",
        ap_sum / n,
        lift_sum / n,
        changepoint[0],
        changepoint[1],
        changepoint[2]
    )
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match rcf_datasets::data_root() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("accuracy: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match args.first().map(String::as_str) {
        Some("nab") => {
            let files = match nab::load(&root) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("accuracy: {e}");
                    return std::process::ExitCode::from(1);
                }
            };
            let scores = if args.get(1).map(String::as_str) == Some("--reference") {
                let name = match args.get(2).map(String::as_str) {
                    Some("aws") => "randomCutForest",
                    other => {
                        eprintln!("accuracy: unknown reference {other:?} (known: aws)");
                        return std::process::ExitCode::from(2);
                    }
                };
                nab::load_results(&root, name, &files).expect("bundled results load")
            } else {
                let mut scores = HashMap::new();
                let total: usize = files.iter().map(|f| f.values.len()).sum();
                let mut done = 0;
                let started = std::time::Instant::now();
                let terminal = std::io::stderr().is_terminal();
                for f in &files {
                    scores.insert(f.name.clone(), run_detector(f));
                    done += f.values.len();
                    if terminal {
                        eprint!(
                            "\r  {done:>7}/{total} rows, {:>2}/{} files",
                            scores.len(),
                            files.len()
                        );
                        let _ = std::io::stderr().flush();
                    } else if scores.len() % 10 == 0 {
                        eprintln!(
                            "  {done}/{total} rows, {}/{} files",
                            scores.len(),
                            files.len()
                        );
                    }
                }
                if terminal {
                    eprint!("\r");
                }
                eprintln!(
                    "  {total} rows in {:.1} s{:20}",
                    started.elapsed().as_secs_f64(),
                    ""
                );
                scores
            };
            println!("{}", summary(&files, &scores));
            std::process::ExitCode::SUCCESS
        }
        Some("skab") => match rcf_datasets::skab::load(&root) {
            Ok(files) => {
                println!("{}", skab(&files));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("accuracy: {e}");
                std::process::ExitCode::from(1)
            }
        },
        _ => {
            eprintln!("usage: accuracy nab [--reference aws] | accuracy skab");
            std::process::ExitCode::from(2)
        }
    }
}
