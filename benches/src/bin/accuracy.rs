//! Accuracy runner: the rcf-stream `Detector`, one fixed configuration, on reference data.
//!
//! ```text
//! cargo run --release -p rcf-benches --bin accuracy -- nab                    # our detector
//! cargo run --release -p rcf-benches --bin accuracy -- nab --reference aws    # AWS RCF's bundled results
//! cargo run --release -p rcf-benches --bin accuracy -- skab                   # SKAB: F1, AUC-PR lift, NAB-style
//! cargo run --release -p rcf-benches --bin accuracy -- fleet                  # synthetic fleet: events found, false alarms
//! ```
//!
//! Prints progress on stderr and ends with exactly one line:
//! `NAB standard=S reward_low_FP_rate=P reward_low_FN_rate=N auc_pr=A` (VUS-PR / VUS-ROC go to
//! stderr with the progress, so the line keeps the issue's exact format). No per-file tuning: every
//! file gets the same detector configuration; NAB then picks one threshold per profile for the
//! whole corpus, as its rules allow.
//!
//! Development switches (experiments only; reported results use none of them):
//! `RCF_ACCURACY_CONFIG` (detector parameters),
//! `RCF_ACCURACY_DIFF=1` (each metric's first difference as an extra metric), `RCF_NAB_DEBUG`
//! (windows hit and detections at each profile's threshold, and the score had each file its
//! own best threshold), `RCF_SKAB_SCORE_FLAG` (SKAB rows
//! flagged by `score > threshold` instead of `in_event`), `RCF_FLEET_DEBUG` (every false alarm
//! of the fleet run).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use rcf_datasets::nab::{self, NabFile, PROFILES};
use rcf_stream::{Detector, Normalization, Sensitivity};

/// The configuration every NAB file gets: the detector's defaults. (`RCF_ACCURACY_CONFIG`,
/// e.g. `shingle=8,sensitivity=high,normalization=difference`, overrides them for
/// development experiments; reported results use the defaults.)
fn detector<S: AsRef<str>>(metrics: &[S]) -> Detector {
    let mut b = Detector::builder(metrics.iter().map(AsRef::as_ref)).seed(0);
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
                "seed" => b.seed(v.parse().unwrap()),
                "holdoff" => b.holdoff(v.parse().unwrap()),
                "repeat" => b.repeat_tolerance(v.parse().unwrap()),
                "normalization" => b.normalization(match v {
                    "none" => Normalization::None,
                    "difference" => Normalization::Difference,
                    "normalize_difference" => Normalization::NormalizeDifference,
                    _ => Normalization::Normalize,
                }),
                other => panic!("unknown key {other}"),
            };
        }
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| eprintln!("  configuration override: {spec}"));
    }
    b.build().expect("valid configuration")
}

/// A detector over the runner's rows; with `RCF_ACCURACY_DIFF=1` (an experiment) each metric is
/// followed by its first difference as an extra metric.
struct Run {
    detector: Detector,
    diff: Option<Vec<f32>>,
    row: Vec<f32>,
}

impl Run {
    fn new<S: AsRef<str>>(metrics: &[S]) -> Self {
        if std::env::var("RCF_ACCURACY_DIFF").is_ok_and(|v| v == "1") {
            let names: Vec<String> = metrics
                .iter()
                .flat_map(|m| [m.as_ref().to_string(), format!("{}'", m.as_ref())])
                .collect();
            Run {
                detector: detector(&names),
                diff: Some(Vec::new()),
                row: Vec::new(),
            }
        } else {
            Run {
                detector: detector(metrics),
                diff: None,
                row: Vec::new(),
            }
        }
    }

    fn process(&mut self, x: &[f32]) -> rcf_stream::Verdict {
        let Some(last) = &mut self.diff else {
            return self.detector.process(x).expect("finite values");
        };
        if last.is_empty() {
            last.extend_from_slice(x);
        }
        self.row.clear();
        for (v, l) in x.iter().zip(last.iter_mut()) {
            self.row.extend([*v, *v - *l]);
            *l = *v;
        }
        self.detector.process(&self.row).expect("finite values")
    }

    fn bootstrap(&mut self, rows: &[f32]) {
        if self.diff.is_none() {
            return self.detector.bootstrap(rows).expect("finite values");
        }
        // the detector sees each metric and its difference
        let m = self.detector.metrics().len() / 2;
        for r in rows.chunks_exact(m) {
            self.process(r);
        }
    }
}

/// A detector's output on one NAB file: what NAB scores, and the anomaly score itself.
struct NabRun {
    /// NAB wants values in [0, 1]: reported anomalies map to `0.5 + 0.5 · grade`, every other
    /// row to `0.5 · min(1, score / threshold)`, so NAB's sweep may still pick a cut below the
    /// alarms if that scores better. One-alarm-per-event suppression is part of what NAB then
    /// measures.
    nab: Vec<f64>,
    /// The verdicts' scores: what the threshold-free metrics (AUC-PR, VUS) rank, as they rank
    /// AWS RCF's `anomaly_score`.
    score: Vec<f64>,
}

fn run_detector(f: &NabFile) -> NabRun {
    let mut d = Run::new(&["value"]);
    let (mut nab, mut score) = (Vec::new(), Vec::new());
    for &v in &f.values {
        let verdict = d.process(&[v as f32]);
        nab.push(if verdict.is_anomaly {
            0.5 + 0.5 * verdict.grade
        } else if verdict.threshold > 0.0 {
            0.5 * (verdict.score / verdict.threshold).min(1.0)
        } else {
            0.0
        });
        score.push(verdict.score);
    }
    NabRun { nab, score }
}

/// `v` averaged over a window of `width` rows centred on each row (shorter at the ends).
fn centred_mean(v: &[f64], width: usize) -> Vec<f64> {
    let half = width / 2;
    let mut prefix = vec![0.0; v.len() + 1];
    for (i, x) in v.iter().enumerate() {
        prefix[i + 1] = prefix[i] + x;
    }
    (0..v.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(v.len()));
            (prefix[b] - prefix[a]) / (b - a) as f64
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

/// NAB's three scores of `scores`, and the threshold-free metrics of `ranking`.
fn summary(
    files: &[NabFile],
    scores: &HashMap<String, Vec<f64>>,
    ranking: &HashMap<String, Vec<f64>>,
) -> String {
    let mut line = String::from("NAB");
    for p in &PROFILES {
        let s = nab::optimize(files, scores, p);
        eprintln!(
            "  {:<20} {:7.2} (raw {:8.3}, threshold {:.4})",
            p.name, s.normalized, s.raw, s.threshold
        );
        line.push_str(&format!(" {}={:.2}", p.name, s.normalized));
        if std::env::var_os("RCF_NAB_DEBUG").is_some() {
            let (mut hit, mut windows, mut fps, mut dets) = (0, 0, 0, 0);
            let mut by_category: std::collections::BTreeMap<&str, usize> = Default::default();
            let mut missed = Vec::new();
            for f in files {
                let sc = &scores[&f.name];
                windows += f.windows.len();
                for &(a, b) in &f.windows {
                    let found = (a..=b).any(|i| i >= f.probation() && sc[i] >= s.threshold);
                    hit += usize::from(found);
                    if !found {
                        missed.push(format!("{} {a}..{b}", f.name));
                    }
                }
                for (i, &v) in sc.iter().enumerate().skip(f.probation()) {
                    if v >= s.threshold {
                        dets += 1;
                        if !f.in_window(i) {
                            fps += 1;
                            let category = f.name.split('/').next().unwrap_or("");
                            *by_category.entry(category).or_default() += 1;
                        }
                    }
                }
            }
            eprintln!("    windows hit {hit}/{windows}, detections {dets}, outside windows {fps}");
            eprintln!("    outside windows by category: {by_category:?}");
            eprintln!("    missed: {}", missed.join(", "));
            // a ceiling for calibration alone: the best cut chosen per file (NAB allows one for
            // the corpus), among the file's scores at or above 0.5 (the alarms) and "none"
            let raw: f64 = files
                .iter()
                .map(|f| {
                    let sc = &scores[&f.name];
                    let mut cuts: Vec<f64> = sc[f.probation()..]
                        .iter()
                        .copied()
                        .filter(|v| *v >= 0.5)
                        .collect();
                    cuts.push(f64::INFINITY);
                    cuts.iter()
                        .map(|&c| nab::file_score(f, sc, c, p))
                        .fold(f64::NEG_INFINITY, f64::max)
                })
                .sum();
            eprintln!(
                "    with the best cut per file instead (not allowed by NAB): {:.2}",
                nab::normalized(files, raw, p)
            );
        }
    }
    let aucs: Vec<(f64, f64)> = files
        .iter()
        .filter_map(|f| nab::auc(f, &ranking[&f.name]))
        .collect();
    let (ap, roc) = mean_pair(&aucs);
    eprintln!(
        "  AUC-PR {ap:.3}, AUC-ROC {roc:.3} (mean of {} files with windows)",
        aucs.len()
    );
    line.push_str(&format!(" auc_pr={ap:.3}"));
    let vus: Vec<(f64, f64)> = files
        .iter()
        .filter_map(|f| nab::vus(f, &ranking[&f.name]))
        .collect();
    let (vus_roc, vus_pr) = mean_pair(&vus);
    eprintln!(
        "  VUS-PR {vus_pr:.3}, VUS-ROC {vus_roc:.3} (same files and labels; buffer = period)"
    );
    if std::env::var_os("RCF_NAB_DEBUG").is_some() {
        // what a non-causal score would get: each row's score averaged over a centred window
        for width in [25usize, 101] {
            let centred: Vec<(f64, f64)> = files
                .iter()
                .filter_map(|f| nab::auc(f, &centred_mean(&ranking[&f.name], width)))
                .collect();
            eprintln!(
                "  AUC-PR of the scores averaged over {width} centred rows (not causal): {:.3}",
                mean_pair(&centred).0
            );
        }
    }
    line
}

/// SKAB: per file, a fresh detector (all 8 sensors) bootstrapped with the training rows, then
/// the test rows streamed. SKAB's anomalies are long segments scored point by point, so a
/// point counts as flagged when it is `in_event` (the one-alarm-per-event flag marks only an
/// event's start; `RCF_SKAB_SCORE_FLAG` flags `score > threshold` instead). Reports pooled F1,
/// mean AUC-PR of `score / threshold`, and its lift over the positive rate (what random scores
/// get), and the NAB-style changepoint score of the detector's alarms (one per event), as
/// SKAB's README reports it.
fn skab(files: &[rcf_datasets::skab::SkabFile]) -> String {
    use rcf_datasets::skab::{SENSORS, TRAINING_ROWS};
    let (mut tp, mut fp, mut fn_, mut tn) = (0usize, 0usize, 0usize, 0usize);
    let (mut ap_sum, mut lift_sum) = (0.0, 0.0);
    let mut alarms: Vec<Vec<bool>> = Vec::with_capacity(files.len());
    let by_score = std::env::var_os("RCF_SKAB_SCORE_FLAG").is_some();
    for f in files {
        let mut d = Run::new(&SENSORS);
        d.bootstrap(&f.values[..TRAINING_ROWS * 8]);
        let mut labelled = Vec::new();
        let mut alarm = Vec::with_capacity(f.len() - TRAINING_ROWS);
        for t in TRAINING_ROWS..f.len() {
            let v = d.process(f.row(t));
            alarm.push(v.is_anomaly);
            let flagged = if by_score {
                v.threshold > 0.0 && v.score > v.threshold
            } else {
                v.in_event
            };
            match (flagged, f.anomaly[t]) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
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
    let base = (tp + fn_) as f64 / (tp + fp + fn_ + tn) as f64;
    eprintln!(
        "  precision {precision:.3}, recall {recall:.3} over {} test rows (flagging every row: F1 {:.3})",
        tp + fp + fn_ + tn,
        2.0 * base / (1.0 + base)
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

/// Devices in the fleet evaluation.
const FLEET_DEVICES: usize = 24;
/// Minutes per device.
const FLEET_MINUTES: usize = 6_000;
/// Minutes of history each detector is bootstrapped with (as the `rcf detect` demo does).
const FLEET_HISTORY: usize = 1_500;
/// An alarm up to this many minutes after an event (or its first hour) still counts for it.
const FLEET_SLACK: usize = 10;

/// The synthetic fleet: [`FLEET_DEVICES`] devices with three events each, the eight kinds in
/// rotation (9 events of each), a seeded start in each of three slots after the bootstrap. A
/// fresh detector per device (all 5 metrics), bootstrapped with [`FLEET_HISTORY`] minutes. An
/// event is found when an alarm naming one of the metrics it changes (its top attributed
/// metric) falls in its first hour (plus [`FLEET_SLACK`]) or, for events with an end, up to
/// `FLEET_SLACK` after it; every other alarm is false, including alarms after the first hour
/// of a benign firmware change (which should be learned). Requiring the metric keeps a
/// coincidence from counting (a battery reset alarm inside a torque drift's first hour).
fn fleet() -> String {
    use rcf_datasets::fleet::{AnomalyKind, Event, METRICS, device};
    const KINDS: [AnomalyKind; 8] = [
        AnomalyKind::Spike,
        AnomalyKind::LevelShift,
        AnomalyKind::Drift,
        AnomalyKind::StuckSensor,
        AnomalyKind::VarianceBurst,
        AnomalyKind::MessageRateBurst,
        AnomalyKind::AuthFailureBurst,
        AnomalyKind::FirmwareChange,
    ];
    let len = |kind| match kind {
        AnomalyKind::Spike => 1,
        AnomalyKind::LevelShift | AnomalyKind::Drift => 120,
        AnomalyKind::StuckSensor => 100,
        AnomalyKind::VarianceBurst => 60,
        AnomalyKind::MessageRateBurst => 30,
        _ => 10,
    };
    let mut rng = rcf_datasets::synth::Rng::new(5);
    let mut found = [0usize; 8];
    let mut total = [0usize; 8];
    let (mut false_alarms, mut live) = (0usize, 0usize);
    // minutes in an open event / all minutes, [normal, anomalous] (firmware changes after their
    // first hour left out: they should be learned, but are a change from the earlier normal)
    let (mut covered, mut minutes) = ([0usize; 2], [0usize; 2]);
    for i in 0..FLEET_DEVICES {
        let mut kinds: Vec<usize> = (0..3).map(|k| (3 * i + k) % 8).collect();
        // a firmware change lasts to the end, so it goes last
        kinds.sort_by_key(|&k| KINDS[k] == AnomalyKind::FirmwareChange);
        let events: Vec<Event> = kinds
            .iter()
            .enumerate()
            .map(|(slot, &k)| {
                let start = 2_000 + slot * 1_300 + (rng.uniform() * 600.0) as usize;
                let kind = KINDS[k];
                let len = if kind == AnomalyKind::FirmwareChange {
                    FLEET_MINUTES - start
                } else {
                    len(kind)
                };
                Event { kind, start, len }
            })
            .collect();
        let dev = device(i, FLEET_MINUTES, events, 11);
        let mut d = Run::new(&METRICS);
        d.bootstrap(&dev.values[..FLEET_HISTORY * METRICS.len()]);
        let mut hit = vec![false; dev.events.len()];
        let learned = |t: usize| {
            dev.events
                .iter()
                .any(|e| e.kind == AnomalyKind::FirmwareChange && t >= e.start + 60)
        };
        for t in FLEET_HISTORY..dev.len() {
            let v = d.process(dev.row(t));
            live += 1;
            if !learned(t) {
                let a = usize::from(dev.is_anomalous(t));
                covered[a] += usize::from(v.in_event);
                minutes[a] += 1;
            }
            if !v.is_anomaly {
                continue;
            }
            let mut counted = false;
            let top = v.top_metric().map(|a| a.metric.clone());
            for (e, h) in dev.events.iter().zip(&mut hit) {
                let first_hour = e.start..e.start + e.len.min(60) + FLEET_SLACK;
                let end = e.start + e.len..e.start + e.len + FLEET_SLACK;
                let bounded = e.kind != AnomalyKind::FirmwareChange;
                let names_it = top
                    .as_deref()
                    .is_some_and(|m| e.kind.metrics().contains(&m));
                if names_it && (first_hour.contains(&t) || (bounded && end.contains(&t))) {
                    *h = true;
                    counted = true;
                }
            }
            false_alarms += usize::from(!counted);
            if !counted && std::env::var_os("RCF_FLEET_DEBUG").is_some() {
                let top = v.top_metric().map_or("-".into(), |m| m.metric.to_string());
                eprintln!(
                    "    false alarm {} t={t} t%720={} {top} grade {:.2}",
                    dev.name,
                    t % 720,
                    v.grade
                );
            }
        }
        for (e, h) in dev.events.iter().zip(hit) {
            let k = KINDS
                .iter()
                .position(|&x| x == e.kind)
                .expect("a known kind");
            total[k] += 1;
            found[k] += usize::from(h);
            if std::env::var_os("RCF_FLEET_DEBUG").is_some() {
                eprintln!(
                    "    event {} {:?} at {} for {}: {}",
                    dev.name,
                    e.kind,
                    e.start,
                    e.len,
                    if h { "found" } else { "missed" }
                );
            }
        }
    }
    for (k, kind) in KINDS.iter().enumerate() {
        eprintln!("  {:<48} {}/{}", kind.describe(), found[k], total[k]);
    }
    let (f, e) = (found.iter().sum::<usize>(), total.iter().sum::<usize>());
    let per_day = false_alarms as f64 / live as f64 * 1_440.0;
    eprintln!("  {false_alarms} false alarms in {live} live device-minutes");
    eprintln!(
        "  in an open event: {:.1} % of anomalous minutes, {:.1} % of normal minutes",
        100.0 * covered[1] as f64 / minutes[1] as f64,
        100.0 * covered[0] as f64 / minutes[0] as f64
    );
    format!(
        "FLEET found={f}/{e} recall={:.3} false_alarms_per_device_day={per_day:.3}",
        f as f64 / e as f64
    )
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fleet") {
        println!("{}", fleet());
        return std::process::ExitCode::SUCCESS;
    }
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
            let (scores, ranking) = if args.get(1).map(String::as_str) == Some("--reference") {
                let name = match args.get(2).map(String::as_str) {
                    Some("aws") => "randomCutForest",
                    other => {
                        eprintln!("accuracy: unknown reference {other:?} (known: aws)");
                        return std::process::ExitCode::from(2);
                    }
                };
                let scores = nab::load_results(&root, name, &files).expect("bundled results load");
                (scores.clone(), scores)
            } else {
                let (mut scores, mut ranking) = (HashMap::new(), HashMap::new());
                let total: usize = files.iter().map(|f| f.values.len()).sum();
                let mut done = 0;
                let started = std::time::Instant::now();
                let terminal = std::io::stderr().is_terminal();
                for f in &files {
                    let run = run_detector(f);
                    scores.insert(f.name.clone(), run.nab);
                    ranking.insert(f.name.clone(), run.score);
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
                (scores, ranking)
            };
            println!("{}", summary(&files, &scores, &ranking));
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
            eprintln!("usage: accuracy nab [--reference aws] | accuracy skab | accuracy fleet");
            std::process::ExitCode::from(2)
        }
    }
}
