//! VUS-ROC / VUS-PR against TSB-AD's reference implementation.
//!
//! The expected values were computed by TSB-AD 1.5's `basic_metricor().RangeAUC_volume_opt(
//! labels, scores, window, 250)` (PyPI `TSB-AD`, `TSB_AD/evaluation/basic_metrics.py`) on the
//! cases below, written to CSV from this generator: they are the reference's outputs, not ours.

use rcf_datasets::metrics::vus;
use rcf_datasets::synth::Rng;

/// Case `k`: a few anomaly ranges; scores are noise plus a bump near them, rounded to 3
/// decimals so that ties occur.
fn case(k: u64) -> (Vec<bool>, Vec<f64>, usize) {
    let mut rng = Rng::new(100 + k);
    let n = 300 + 100 * k as usize;
    let mut labels = vec![false; n];
    for r in 0..(1 + k as usize) {
        let start = 40 + r * (n / (2 + k as usize)) + (rng.uniform() * 20.0) as usize;
        for l in labels
            .iter_mut()
            .skip(start)
            .take(5 + (rng.uniform() * 15.0) as usize)
        {
            *l = true;
        }
    }
    let scores = (0..n)
        .map(|i| {
            let near = (i.saturating_sub(3)..(i + 4).min(n)).any(|j| labels[j]);
            let bump = if near { 1.2 * rng.uniform() } else { 0.0 };
            ((rng.uniform() + bump) * 1000.0).round() / 1000.0
        })
        .collect();
    (labels, scores, 10 + 5 * k as usize)
}

#[test]
fn matches_tsb_ad_reference() {
    let reference = [
        (0.903971302322, 0.582911667265),
        (0.970052969471, 0.818929082328),
        (0.892630445815, 0.650911088961),
    ];
    for (k, (roc_ref, pr_ref)) in reference.into_iter().enumerate() {
        let (labels, scores, window) = case(k as u64);
        let (roc, pr) = vus(&zip(&scores, &labels), window, 250).unwrap();
        assert!(
            (roc - roc_ref).abs() < 1e-9,
            "case {k}: VUS-ROC {roc} vs {roc_ref}"
        );
        assert!(
            (pr - pr_ref).abs() < 1e-9,
            "case {k}: VUS-PR {pr} vs {pr_ref}"
        );
    }
}

#[test]
fn perfect_and_no_positive_cases() {
    let labels: Vec<bool> = (0..100).map(|i| (40..50).contains(&i)).collect();
    let perfect: Vec<f64> = labels.iter().map(|&l| if l { 1.0 } else { 0.0 }).collect();
    let (roc, pr) = vus(&zip(&perfect, &labels), 0, 250).unwrap();
    assert!(roc > 0.99 && pr > 0.99, "{roc} {pr}");
    assert!(vus(&[(0.5, false); 10], 4, 250).is_none());
}

fn zip(scores: &[f64], labels: &[bool]) -> Vec<(f64, bool)> {
    scores.iter().copied().zip(labels.iter().copied()).collect()
}
