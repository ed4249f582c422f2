//! Accuracy runner: the rcf-stream `Detector`, one fixed configuration, on reference data.
//!
//! ```text
//! cargo run --release -p rcf-benches --bin accuracy -- nab                    # our detector
//! cargo run --release -p rcf-benches --bin accuracy -- nab --reference aws    # AWS RCF's bundled results
//! ```
//!
//! Prints progress on stderr and ends with exactly one line:
//! `NAB standard=S reward_low_FP_rate=P reward_low_FN_rate=N auc_pr=A`. No per-file tuning: every
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

/// NAB wants scores in [0, 1]. Reported anomalies map to [0.5, 1] by grade; every other row to
/// `0.5 · min(1, score / threshold)`, so the threshold-free metrics see the detector's ranking
/// and NAB's sweep may still pick a threshold below the alarms if that scores better.
/// One-alarm-per-event suppression is part of what NAB then measures.
fn run_detector(f: &NabFile) -> Vec<f64> {
    let mut d = detector();
    let mapping = std::env::var("RCF_ACCURACY_SCORE").unwrap_or_default();
    f.values
        .iter()
        .map(|&v| {
            let verdict = d.process(&[v as f32]).expect("NAB values are finite");
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
    let ap = aucs.iter().map(|a| a.0).sum::<f64>() / aucs.len() as f64;
    let roc = aucs.iter().map(|a| a.1).sum::<f64>() / aucs.len() as f64;
    eprintln!(
        "  AUC-PR {ap:.3}, AUC-ROC {roc:.3} (mean of {} files with windows)",
        aucs.len()
    );
    line.push_str(&format!(" auc_pr={ap:.3}"));
    line
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
        _ => {
            eprintln!("usage: accuracy nab [--reference aws]");
            std::process::ExitCode::from(2)
        }
    }
}
