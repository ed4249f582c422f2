//! Threshold-free metrics: average precision (AUC-PR) and AUC-ROC, with tied scores grouped
//! (as scikit-learn does), so constant or quantised scores are not rewarded for row order.

/// Average precision of `(score, is_positive)` pairs: Σ (R_k − R_{k−1}) · P_k over the distinct
/// score thresholds from the top. 0 when there is no positive.
pub fn average_precision(labelled: &[(f64, bool)]) -> f64 {
    let positives = labelled.iter().filter(|l| l.1).count();
    if positives == 0 {
        return 0.0;
    }
    let mut sorted: Vec<(f64, bool)> = labelled.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp, mut ap, mut recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        let s = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == s {
            if sorted[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let r = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (r - recall) * precision;
        recall = r;
    }
    ap
}

/// Area under the ROC curve of `(score, is_positive)` pairs, ties counted half. 0.5 when
/// either class is empty.
pub fn roc_auc(labelled: &[(f64, bool)]) -> f64 {
    let p = labelled.iter().filter(|l| l.1).count();
    let n = labelled.len() - p;
    if p == 0 || n == 0 {
        return 0.5;
    }
    let mut sorted: Vec<(f64, bool)> = labelled.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // rank-sum (Mann–Whitney) with average ranks for ties
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * sorted[i..j].iter().filter(|l| l.1).count() as f64;
        i = j;
    }
    (rank_sum - (p * (p + 1)) as f64 / 2.0) / (p * n) as f64
}

/// Inclusive `(start, end)` ranges of consecutive positive labels.
fn label_ranges(labels: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &l) in labels.iter().enumerate() {
        match (l, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, labels.len() - 1));
    }
    out
}

/// The ranges widened by `window / 2` on each side, overlapping ones merged.
fn widened(ranges: &[(usize, usize)], window: usize, len: usize) -> Vec<(usize, usize)> {
    let h = window / 2;
    let mut out = Vec::new();
    let mut a = ranges[0].0.saturating_sub(h);
    for i in 0..ranges.len() - 1 {
        // strict `<`, as the reference compares `end + h < next_start − h` in signed integers
        if ((ranges[i].1 + h) as i64) < ranges[i + 1].0 as i64 - h as i64 {
            out.push((a, ranges[i].1 + h));
            a = ranges[i + 1].0.saturating_sub(h);
        }
    }
    out.push((a, (ranges[ranges.len() - 1].1 + h).min(len - 1)));
    out
}

/// VUS-ROC and VUS-PR (Paparrizos et al., PVLDB 2022): the range-aware ROC and PR areas with
/// labels widened by a soft ramp of width ℓ, averaged over ℓ = 0…`window`, at `thresholds`
/// score quantiles. A port of TSB-AD's `RangeAUC_volume_opt` (its default: 250 thresholds),
/// checked against it in the tests. `labelled` is `(score, is_anomaly)` per row, in time order.
/// `None` when there is no positive label or `thresholds` is 0.
pub fn vus(labelled: &[(f64, bool)], window: usize, thresholds: usize) -> Option<(f64, f64)> {
    let n = labelled.len();
    let scores: Vec<f64> = labelled.iter().map(|l| l.0).collect();
    let labels: Vec<bool> = labelled.iter().map(|l| l.1).collect();
    let seq = label_ranges(&labels);
    if seq.is_empty() || thresholds == 0 {
        return None;
    }
    let p = labels.iter().filter(|&&l| l).count() as f64;
    let outer = widened(&seq, window, n);
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let cut: Vec<f64> = (0..thresholds)
        .map(|k| {
            let i = if thresholds == 1 {
                0.0
            } else {
                k as f64 * (n - 1) as f64 / (thresholds - 1) as f64
            };
            sorted[i as usize]
        })
        .collect();
    let n_pred: Vec<f64> = cut
        .iter()
        .map(|&t| scores.iter().filter(|&&s| s >= t).count() as f64)
        .collect();
    let (mut auc_sum, mut ap_sum) = (0.0, 0.0);
    let mut extended = vec![0.0f64; n];
    let mut lab = vec![0.0f64; n];
    for w in 0..=window {
        // labels with a soft ramp of width w around each range
        for (e, &l) in extended.iter_mut().zip(&labels) {
            *e = if l { 1.0 } else { 0.0 };
        }
        for &(s, e) in &seq {
            let after = (e + w / 2 + 1).min(n);
            for (x, v) in extended.iter_mut().enumerate().take(after).skip(e + 1) {
                *v += (1.0 - (x - e) as f64 / w as f64).sqrt();
            }
            let before = s.saturating_sub(w / 2);
            for (x, v) in extended.iter_mut().enumerate().take(s).skip(before) {
                *v += (1.0 - (s - x) as f64 / w as f64).sqrt();
            }
        }
        extended.iter_mut().for_each(|v| *v = v.min(1.0));
        let inner = widened(&seq, w, n);
        let mut tpr = vec![0.0f64; thresholds + 2];
        let mut fpr = vec![0.0f64; thresholds + 2];
        let mut precision = vec![1.0f64; thresholds + 1];
        for (j, &t) in cut.iter().enumerate() {
            // `lab` is only read inside `outer` (which holds `inner` and `seq`, as w ≤ window)
            for &(a, b) in &outer {
                lab[a..=b].copy_from_slice(&extended[a..=b]);
            }
            let mut existence = 0;
            for &(a, b) in &inner {
                let mut any = false;
                for x in a..=b {
                    let hit = scores[x] >= t;
                    lab[x] = if hit { extended[x] } else { 0.0 };
                    any |= hit;
                }
                existence += usize::from(any);
            }
            for &(a, b) in &seq {
                lab[a..=b].iter_mut().for_each(|v| *v = 1.0);
            }
            let (mut tp, mut n_labels) = (0.0, 0.0);
            for &(a, b) in &outer {
                for x in a..=b {
                    if scores[x] >= t {
                        tp += lab[x];
                    }
                    n_labels += lab[x];
                }
            }
            let fp = n_pred[j] - tp;
            let p_new = (p + n_labels) / 2.0;
            let recall = (tp / p_new).min(1.0);
            tpr[j + 1] = recall * existence as f64 / inner.len() as f64;
            fpr[j + 1] = fp / (n as f64 - p_new);
            precision[j + 1] = tp / n_pred[j];
        }
        tpr[thresholds + 1] = 1.0;
        fpr[thresholds + 1] = 1.0;
        auc_sum += (1..thresholds + 2)
            .map(|k| (fpr[k] - fpr[k - 1]) * (tpr[k] + tpr[k - 1]) / 2.0)
            .sum::<f64>();
        ap_sum += (1..=thresholds)
            .map(|k| (tpr[k] - tpr[k - 1]) * precision[k])
            .sum::<f64>();
    }
    let windows = (window + 1) as f64;
    Some((auc_sum / windows, ap_sum / windows))
}

/// The period TSB-AD uses as the VUS buffer length (its `find_length`): the lag of the highest
/// local maximum of the autocorrelation of the first 20,000 values, over lags 3…400; 125 when
/// there is none or it falls outside 3…300 (after the offset of 3, as the reference does).
pub fn period(values: &[f64]) -> usize {
    const FALLBACK: usize = 125;
    const BASE: usize = 3;
    let x = &values[..values.len().min(20_000)];
    let n = x.len();
    if n <= BASE + 2 {
        return FALLBACK;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let denom: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
    if denom <= 0.0 || !denom.is_finite() {
        return FALLBACK;
    }
    let max_lag = 400.min(n - 1);
    let acf: Vec<f64> = (BASE..=max_lag)
        .map(|lag| {
            (lag..n)
                .map(|t| (x[t] - mean) * (x[t - lag] - mean))
                .sum::<f64>()
                / denom
        })
        .collect();
    // strict local maxima, as scipy's argrelextrema(np.greater); the first wins ties
    let mut best: Option<(usize, f64)> = None;
    for i in 1..acf.len().saturating_sub(1) {
        if acf[i] > acf[i - 1] && acf[i] > acf[i + 1] && best.is_none_or(|b| acf[i] > b.1) {
            best = Some((i, acf[i]));
        }
    }
    match best {
        Some((i, _)) if (3..=300).contains(&i) => i + BASE,
        _ => FALLBACK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_random_and_tied_rankings() {
        let perfect = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!(average_precision(&perfect), 1.0);
        assert_eq!(roc_auc(&perfect), 1.0);
        let inverted = [(0.1, true), (0.2, true), (0.8, false), (0.9, false)];
        assert_eq!(roc_auc(&inverted), 0.0);
        // recall 1/2 at precision 1/3, then 1 at 1/2
        assert!((average_precision(&inverted) - 5.0 / 12.0).abs() < 1e-12);
        // all tied: precision is the positive rate, ROC is chance
        let tied = [(0.5, true), (0.5, false), (0.5, false), (0.5, false)];
        assert!((average_precision(&tied) - 0.25).abs() < 1e-12);
        assert!((roc_auc(&tied) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_example() {
        // ranks: 0.9 P, 0.7 N, 0.6 P, 0.2 N → AP = 1·0.5 + (2/3)·0.5; AUC = 3/4
        let l = [(0.9, true), (0.7, false), (0.6, true), (0.2, false)];
        assert!((average_precision(&l) - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        assert!((roc_auc(&l) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn period_finds_a_sine_period_and_falls_back_on_noise() {
        let sine: Vec<f64> = (0..2_000)
            .map(|t| (t as f64 * std::f64::consts::TAU / 48.0).sin())
            .collect();
        assert_eq!(period(&sine), 48);
        assert_eq!(period(&[1.0; 50]), 125);
        assert_eq!(period(&[]), 125);
    }
}
