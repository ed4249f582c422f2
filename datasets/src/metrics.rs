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
}
