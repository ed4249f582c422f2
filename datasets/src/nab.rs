//! The Numenta Anomaly Benchmark (NAB v1.1): loader and scorer.
//!
//! The scorer re-implements NAB's scoring from its specification (`benchmarks.md` §2), not
//! NAB's code: per-row weights from a scaled sigmoid around each label window, the earliest
//! detection in a window counting as a true positive, detections outside windows as false
//! positives weighted by their distance from the last window, one threshold for the whole
//! corpus chosen by a sweep, and normalisation between the null detector (0) and a perfect
//! one (100). `tests` check it reproduces AWS RCF's published 51.72 / 38.36 / 59.75 from the
//! result files NAB ships.

use std::collections::HashMap;
use std::path::Path;

use crate::DataError;

/// One NAB series with its label windows.
#[derive(Debug, Clone)]
pub struct NabFile {
    /// `"<category>/<file>.csv"`, as in NAB's label files.
    pub name: String,
    /// Row timestamps, `YYYY-MM-DD HH:MM:SS`.
    pub timestamps: Vec<String>,
    /// Row values.
    pub values: Vec<f64>,
    /// Label windows as inclusive row ranges `(start, end)`, in order.
    pub windows: Vec<(usize, usize)>,
}

impl NabFile {
    /// Rows in NAB's probationary period (never scored): `min(floor(0.15 n), 750)`.
    pub fn probation(&self) -> usize {
        ((self.values.len() as f64 * 0.15).floor() as usize).min(750)
    }

    /// Whether row `i` lies in a label window.
    pub fn in_window(&self, i: usize) -> bool {
        self.windows.iter().any(|&(a, b)| (a..=b).contains(&i))
    }
}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_err(path: &Path, line: usize, reason: impl Into<String>) -> DataError {
    DataError::Parse {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Loads all 58 NAB series with their windows from `root/nab` (sorted by name).
///
/// # Errors
///
/// [`DataError`] naming the file that is missing or malformed.
pub fn load(root: &Path) -> Result<Vec<NabFile>, DataError> {
    let nab = root.join("nab");
    let labels_path = nab.join("labels/combined_windows.json");
    let labels: HashMap<String, Vec<Vec<String>>> = serde_json::from_str(&read(&labels_path)?)
        .map_err(|e| parse_err(&labels_path, e.line(), e.to_string()))?;
    let mut names: Vec<&String> = labels.keys().collect();
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = nab.join("data").join(name);
        let text = read(&path)?;
        let mut timestamps = Vec::new();
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let (ts, v) = line
                .split_once(',')
                .ok_or_else(|| parse_err(&path, i + 1, "expected `timestamp,value`"))?;
            values.push(
                v.trim()
                    .parse()
                    .map_err(|_| parse_err(&path, i + 1, format!("`{v}` is not a number")))?,
            );
            timestamps.push(ts.trim().to_string());
        }
        let index: HashMap<&str, usize> = timestamps
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        let mut windows = Vec::new();
        for w in &labels[name] {
            let row = |t: &String| {
                let t = t.split('.').next().unwrap_or(t);
                index.get(t).copied().ok_or_else(|| {
                    parse_err(
                        &labels_path,
                        0,
                        format!("{name}: window bound {t} is not a row"),
                    )
                })
            };
            if w.len() != 2 {
                return Err(parse_err(
                    &labels_path,
                    0,
                    format!("{name}: a window needs 2 bounds"),
                ));
            }
            windows.push((row(&w[0])?, row(&w[1])?));
        }
        windows.sort_unstable();
        files.push(NabFile {
            name: name.clone(),
            timestamps,
            values,
            windows,
        });
    }
    Ok(files)
}

/// The `anomaly_score` column of a detector's NAB result files, by series name (e.g. AWS's
/// bundled `randomCutForest` results).
///
/// # Errors
///
/// [`DataError`] naming the file that is missing or malformed.
pub fn load_results(
    root: &Path,
    detector: &str,
    files: &[NabFile],
) -> Result<HashMap<String, Vec<f64>>, DataError> {
    let mut out = HashMap::new();
    for f in files {
        let (category, file) = f.name.split_once('/').unwrap_or(("", &f.name));
        let path = root
            .join("nab/results")
            .join(detector)
            .join(category)
            .join(format!("{detector}_{file}"));
        let text = read(&path)?;
        let mut lines = text.lines();
        let header = lines
            .next()
            .ok_or_else(|| parse_err(&path, 1, "empty file"))?;
        let column = header
            .split(',')
            .position(|h| h == "anomaly_score")
            .ok_or_else(|| parse_err(&path, 1, "no anomaly_score column"))?;
        let scores = lines
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                l.split(',')
                    .nth(column)
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| parse_err(&path, i + 2, "bad anomaly_score"))
            })
            .collect::<Result<Vec<f64>, _>>()?;
        if scores.len() != f.values.len() {
            return Err(parse_err(
                &path,
                0,
                format!("{} scores for {} rows", scores.len(), f.values.len()),
            ));
        }
        out.insert(f.name.clone(), scores);
    }
    Ok(out)
}

/// A NAB scoring profile: weights of true positives, false negatives and false positives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Profile name as NAB prints it.
    pub name: &'static str,
    /// Weight of a detected window (at its left edge).
    pub tp: f64,
    /// Cost of a missed window.
    pub fn_: f64,
    /// Cost of a false positive (far from any window).
    pub fp: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fn_: 1.0,
        fp: 0.11,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fn_: 1.0,
        fp: 0.22,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fn_: 2.0,
        fp: 0.11,
    },
];

/// NAB's scaled sigmoid: `2 / (1 + e^{5y}) − 1` for `y ≤ 3`, −1 beyond.
fn sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Per-row weights of a file under `profile`, and the window each row belongs to (if any).
fn row_weights(file: &NabFile, p: &Profile) -> Vec<(f64, Option<usize>)> {
    let n = file.values.len();
    let mut out = Vec::with_capacity(n);
    let mut last: Option<(usize, usize)> = None; // (end row, width) of the last closed window
    let mut k = 0;
    for i in 0..n {
        while k < file.windows.len() && file.windows[k].1 < i {
            let (a, b) = file.windows[k];
            last = Some((b, b - a + 1));
            k += 1;
        }
        let entry = match file.windows.get(k) {
            Some(&(a, b)) if a <= i => {
                let width = (b - a + 1) as f64;
                let y = -((b - i + 1) as f64) / width;
                (p.tp * sigmoid(y) / sigmoid(-1.0), Some(k))
            }
            _ => match last {
                None => (-p.fp, None),
                Some((end, width)) => {
                    let y = (i - end) as f64 / (width as f64 - 1.0).max(1.0);
                    (p.fp * sigmoid(y), None)
                }
            },
        };
        out.push(entry);
    }
    out
}

/// The raw NAB score of one file's `scores` at threshold `theta`.
pub fn file_score(file: &NabFile, scores: &[f64], theta: f64, p: &Profile) -> f64 {
    score_from(file, scores, theta, p, file.probation())
}

/// [`file_score`] with rows before `start` left unscored.
fn score_from(file: &NabFile, scores: &[f64], theta: f64, p: &Profile, start: usize) -> f64 {
    let weights = row_weights(file, p);
    let mut best: Vec<Option<f64>> = vec![None; file.windows.len()];
    let mut total = 0.0;
    for i in start..file.values.len() {
        if scores[i] < theta {
            continue;
        }
        match weights[i] {
            (w, Some(k)) => best[k] = Some(best[k].map_or(w, |b: f64| b.max(w))),
            (w, None) => total += w,
        }
    }
    let counted = counted_windows(file, start);
    total
        + best
            .iter()
            .zip(&counted)
            .filter(|(_, c)| **c)
            .map(|(b, _)| b.unwrap_or(-p.fn_))
            .sum::<f64>()
}

/// Windows with at least one scorable row (NAB ignores the others; none exists in v1.1).
fn counted_windows(file: &NabFile, start: usize) -> Vec<bool> {
    file.windows.iter().map(|&(_, b)| b >= start).collect()
}

/// A corpus result: the normalised score, its raw score, and the threshold used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NabScore {
    /// 100 · (raw − null) / (perfect − null).
    pub normalized: f64,
    /// The raw score summed over files.
    pub raw: f64,
    /// The threshold.
    pub threshold: f64,
}

fn normalize(raw: f64, windows: usize, p: &Profile) -> f64 {
    let perfect = p.tp * windows as f64;
    let null = -p.fn_ * windows as f64;
    100.0 * (raw - null) / (perfect - null)
}

fn total_windows(files: &[NabFile]) -> usize {
    files
        .iter()
        .map(|f| {
            counted_windows(f, f.probation())
                .iter()
                .filter(|c| **c)
                .count()
        })
        .sum()
}

/// NAB's normalisation of a corpus raw score (a sum of [`file_score`]s over `files`): 0 for the
/// null detector, 100 for a perfect one.
pub fn normalized(files: &[NabFile], raw: f64, p: &Profile) -> f64 {
    normalize(raw, total_windows(files), p)
}

/// The corpus score at a given threshold.
pub fn score_at(
    files: &[NabFile],
    scores: &HashMap<String, Vec<f64>>,
    theta: f64,
    p: &Profile,
) -> NabScore {
    let raw = files
        .iter()
        .map(|f| file_score(f, &scores[&f.name], theta, p))
        .sum();
    NabScore {
        normalized: normalize(raw, total_windows(files), p),
        raw,
        threshold: theta,
    }
}

/// The corpus score at NAB's optimal threshold: one threshold for all files, found by sweeping
/// every distinct score from the top (ties between thresholds keep the highest).
pub fn optimize(files: &[NabFile], scores: &HashMap<String, Vec<f64>>, p: &Profile) -> NabScore {
    // every scorable row: (score, weight, global window id)
    let mut rows: Vec<(f64, f64, Option<usize>)> = Vec::new();
    let mut window_base = 0;
    let mut counted_total = 0;
    let mut window_counted = Vec::new();
    for f in files {
        let start = f.probation();
        let weights = row_weights(f, p);
        let s = &scores[&f.name];
        for i in start..f.values.len() {
            rows.push((s[i], weights[i].0, weights[i].1.map(|k| window_base + k)));
        }
        let counted = counted_windows(f, start);
        counted_total += counted.iter().filter(|c| **c).count();
        window_counted.extend(counted);
        window_base += f.windows.len();
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best_in: Vec<Option<f64>> = vec![None; window_base];
    let mut raw = -p.fn_ * counted_total as f64; // nothing detected
    let mut best = NabScore {
        normalized: normalize(raw, counted_total, p),
        raw,
        threshold: 1.1,
    };
    let mut i = 0;
    while i < rows.len() {
        let theta = rows[i].0;
        while i < rows.len() && rows[i].0 == theta {
            let (_, w, k) = rows[i];
            match k {
                Some(k) if window_counted[k] => {
                    let before = best_in[k].unwrap_or(-p.fn_);
                    if w > before {
                        raw += w - before;
                        best_in[k] = Some(w);
                    } else if best_in[k].is_none() {
                        best_in[k] = Some(before);
                    }
                }
                Some(_) => {}
                None => raw += w,
            }
            i += 1;
        }
        if raw > best.raw {
            best = NabScore {
                normalized: normalize(raw, counted_total, p),
                raw,
                threshold: theta,
            };
        }
    }
    best
}

/// `(score, in a window)` for every row after probation: what the threshold-free metrics rank.
/// `None` for a file without windows.
fn scored_rows(file: &NabFile, scores: &[f64]) -> Option<Vec<(f64, bool)>> {
    if file.windows.is_empty() {
        return None;
    }
    Some(
        (file.probation()..file.values.len())
            .map(|i| (scores[i], file.in_window(i)))
            .collect(),
    )
}

/// Threshold-free metrics of one file: window rows are positives, probationary rows excluded.
/// `None` for a file without windows.
pub fn auc(file: &NabFile, scores: &[f64]) -> Option<(f64, f64)> {
    let labelled = scored_rows(file, scores)?;
    Some((
        crate::metrics::average_precision(&labelled),
        crate::metrics::roc_auc(&labelled),
    ))
}

/// VUS-ROC and VUS-PR of `scores` on `file`, with window rows as positive labels and
/// probationary rows left out (as [`auc`]); the buffer length is the series'
/// [`period`](crate::metrics::period), as TSB-AD chooses it. `None` when the file has no window.
pub fn vus(file: &NabFile, scores: &[f64]) -> Option<(f64, f64)> {
    let labelled = scored_rows(file, scores)?;
    let window = crate::metrics::period(&file.values[file.probation()..]);
    crate::metrics::vus(&labelled, window, 250)
}

/// A NAB-style score of binary detections against changepoints, as SKAB reports it for
/// changepoint detection: each changepoint opens a window of `width` rows to its right
/// (overlapping windows merge), rows before `start` are not scored, and NAB's row weights of
/// `profile` apply (earliest detection in a window counts, misses cost `fn_`, other detections
/// `fp` scaled by NAB's sigmoid). Summed over `series` (one `(changepoints, detections)` pair
/// per file, equal lengths) and normalised as NAB does: 0 for no detections, 100 for one at each
/// window's start. `None` when no window starts at or after `start`, or a pair's lengths differ.
pub fn changepoint_score(
    series: &[(&[bool], &[bool])],
    width: usize,
    start: usize,
    p: &Profile,
) -> Option<f64> {
    let (mut raw, mut windows) = (0.0, 0usize);
    for &(changepoints, detections) in series {
        let n = changepoints.len();
        if detections.len() != n {
            return None;
        }
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (i, _) in changepoints.iter().enumerate().filter(|c| *c.1) {
            let end = (i + width.max(1) - 1).min(n - 1);
            match merged.last_mut() {
                Some(last) if i <= last.1 + 1 => last.1 = last.1.max(end),
                _ => merged.push((i, end)),
            }
        }
        let file = NabFile {
            name: String::new(),
            timestamps: Vec::new(),
            values: vec![0.0; n],
            windows: merged,
        };
        let scores: Vec<f64> = detections.iter().map(|&d| f64::from(u8::from(d))).collect();
        raw += score_from(&file, &scores, 0.5, p, start);
        windows += counted_windows(&file, start).iter().filter(|c| **c).count();
    }
    (windows > 0).then(|| normalize(raw, windows, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> NabFile {
        NabFile {
            name: "toy/a.csv".into(),
            timestamps: (0..100).map(|i| i.to_string()).collect(),
            values: vec![0.0; 100],
            windows: vec![(40, 49)],
        }
    }

    #[test]
    fn sigmoid_matches_the_specification() {
        assert!((sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert_eq!(sigmoid(0.0), 0.0);
        assert!((sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(sigmoid(3.5), -1.0);
    }

    #[test]
    fn hand_made_cases() {
        let f = toy(); // probation: 15 rows
        let p = &PROFILES[0];
        let none = vec![0.0; 100];
        assert!(
            (file_score(&f, &none, 0.5, p) + 1.0).abs() < 1e-12,
            "a missed window costs A_FN"
        );
        let mut early = none.clone();
        early[40] = 1.0;
        assert!(
            (file_score(&f, &early, 0.5, p) - 1.0).abs() < 1e-12,
            "the left edge earns A_TP"
        );
        let mut late = none.clone();
        late[49] = 1.0;
        // the right edge of a 10-row window: y = −1/10, weight σ(−0.1)/σ(−1) ≈ 0.248
        let s = file_score(&f, &late, 0.5, p);
        assert!((s - sigmoid(-0.1) / sigmoid(-1.0)).abs() < 1e-12, "{s}");
        let mut fp_before = none.clone();
        fp_before[20] = 1.0;
        assert!((file_score(&f, &fp_before, 0.5, p) - (-1.0 - 0.11)).abs() < 1e-12);
        let mut in_probation = none.clone();
        in_probation[5] = 1.0;
        assert!(
            (file_score(&f, &in_probation, 0.5, p) + 1.0).abs() < 1e-12,
            "probation is not scored"
        );
        // just after the window a false positive costs less than far away
        let (mut near, mut far) = (early.clone(), early.clone());
        near[51] = 1.0;
        far[95] = 1.0;
        let (sn, sf) = (file_score(&f, &near, 0.5, p), file_score(&f, &far, 0.5, p));
        assert!(sn > sf && (sf - (1.0 - 0.11)).abs() < 1e-9, "{sn} {sf}");
    }

    #[test]
    fn optimize_agrees_with_score_at_its_threshold() {
        let f = vec![toy()];
        let mut s = HashMap::new();
        let mut v: Vec<f64> = (0..100).map(|i| ((i * 37) % 100) as f64 / 100.0).collect();
        v[41] = 2.0;
        s.insert("toy/a.csv".to_string(), v);
        for p in &PROFILES {
            let best = optimize(&f, &s, p);
            let at = score_at(&f, &s, best.threshold, p);
            assert!(
                (best.raw - at.raw).abs() < 1e-9,
                "{p:?}: {best:?} vs {at:?}"
            );
            // and no other candidate threshold does better
            for t in [0.1, 0.5, 0.9, 1.5, 2.0, 3.0] {
                assert!(score_at(&f, &s, t, p).raw <= best.raw + 1e-12);
            }
        }
    }

    #[test]
    fn changepoint_score_spans_null_to_perfect() {
        let mut cp = vec![false; 300];
        cp[100] = true;
        cp[200] = true;
        cp[230] = true; // merges with the window opened at 200
        let none = vec![false; 300];
        let p = &PROFILES[0];
        let score = |d: &[bool]| changepoint_score(&[(&cp, d)], 60, 50, p).unwrap();
        assert_eq!(score(&none), 0.0);
        let mut perfect = none.clone();
        perfect[100] = true;
        perfect[200] = true;
        assert!((score(&perfect) - 100.0).abs() < 1e-9);
        // a late detection earns less than an early one, a false alarm costs
        let mut late = none.clone();
        late[150] = true;
        late[280] = true;
        assert!(
            score(&late) > 0.0 && score(&late) < 100.0,
            "{}",
            score(&late)
        );
        let mut extra = perfect.clone();
        extra[20] = true; // before `start`: not scored
        assert_eq!(score(&extra), score(&perfect));
        extra[60] = true;
        assert!(score(&extra) < score(&perfect));
        assert!(changepoint_score(&[(&cp, &none[..10])], 60, 0, p).is_none());
        assert!(changepoint_score(&[(&none, &none)], 60, 0, p).is_none());
    }
}
