//! The NAB scorer against NAB's own published results (benchmarks.md §3). Skips with a visible
//! message when the data set is absent.

use std::collections::HashMap;

use rcf_datasets::nab::{self, NabFile, PROFILES};

fn data() -> Option<(std::path::PathBuf, Vec<NabFile>)> {
    match rcf_datasets::data_root() {
        Ok(root) => {
            let files = nab::load(&root).expect("NAB loads");
            Some((root, files))
        }
        Err(e) => {
            rcf_datasets::skip("NAB scorer checks", e);
            None
        }
    }
}

/// Stored thresholds and raw / normalised scores of AWS RCF (config/thresholds.json,
/// results/final_results.json).
const AWS: [(f64, f64, f64); 3] = [
    (0.4539184570312501, 3.98356657241316, 51.72),
    (0.5751955032348636, -27.003008629582606, 38.36),
    (0.44804840087890635, -24.07429862443211, 59.75),
];

#[test]
fn loads_the_whole_corpus() {
    let Some((_, files)) = data() else { return };
    assert_eq!(files.len(), 58);
    assert_eq!(files.iter().map(|f| f.values.len()).sum::<usize>(), 365_558);
    assert_eq!(files.iter().map(|f| f.windows.len()).sum::<usize>(), 116);
    assert_eq!(files.iter().filter(|f| f.windows.is_empty()).count(), 6);
}

#[test]
fn reproduces_aws_rcf_at_its_stored_thresholds() {
    let Some((root, files)) = data() else { return };
    let scores = nab::load_results(&root, "randomCutForest", &files).unwrap();
    for (p, &(theta, raw, normalized)) in PROFILES.iter().zip(&AWS) {
        let s = nab::score_at(&files, &scores, theta, p);
        assert!(
            (s.raw - raw).abs() < 1e-6,
            "{}: raw {} vs {raw}",
            p.name,
            s.raw
        );
        assert!(
            (s.normalized - normalized).abs() < 0.005,
            "{}: {} vs {normalized}",
            p.name,
            s.normalized
        );
    }
}

#[test]
fn reproduces_every_file_score_of_nab() {
    let Some((root, files)) = data() else { return };
    let scores = nab::load_results(&root, "randomCutForest", &files).unwrap();
    for (p, &(theta, _, _)) in PROFILES.iter().zip(&AWS) {
        let path = root.join(format!(
            "nab/results/randomCutForest/randomCutForest_{}_scores.csv",
            p.name
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: HashMap<String, f64> = text
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0] != "Totals").then(|| (f[2].to_string(), f[4].parse().unwrap()))
            })
            .collect();
        assert_eq!(expected.len(), 58);
        for f in &files {
            let ours = nab::file_score(f, &scores[&f.name], theta, p);
            assert!(
                (ours - expected[&f.name]).abs() < 1e-6,
                "{} {}: {ours} vs {}",
                p.name,
                f.name,
                expected[&f.name]
            );
        }
    }
}

#[test]
fn own_threshold_sweep_finds_the_same_optimum() {
    let Some((root, files)) = data() else { return };
    let scores = nab::load_results(&root, "randomCutForest", &files).unwrap();
    for (p, &(theta, raw, normalized)) in PROFILES.iter().zip(&AWS) {
        let best = nab::optimize(&files, &scores, p);
        assert!((best.raw - raw).abs() < 1e-6, "{}: {best:?}", p.name);
        assert!((best.normalized - normalized).abs() < 0.005);
        // the optimum is a score value within the same gap as NAB's threshold
        assert!(
            (best.threshold - theta).abs() < 2e-3,
            "{}: θ* {} vs {theta}",
            p.name,
            best.threshold
        );
    }
}

#[test]
fn null_and_perfect_detectors_score_0_and_100() {
    let Some((_, files)) = data() else { return };
    let null: HashMap<String, Vec<f64>> = files
        .iter()
        .map(|f| (f.name.clone(), vec![0.5; f.values.len()]))
        .collect();
    let perfect: HashMap<String, Vec<f64>> = files
        .iter()
        .map(|f| {
            let mut s = vec![0.0; f.values.len()];
            for &(a, _) in &f.windows {
                s[a] = 1.0;
            }
            (f.name.clone(), s)
        })
        .collect();
    for p in &PROFILES {
        assert!(
            nab::optimize(&files, &null, p).normalized.abs() < 1e-9,
            "{}",
            p.name
        );
        assert!(
            (nab::optimize(&files, &perfect, p).normalized - 100.0).abs() < 1e-9,
            "{}",
            p.name
        );
    }
}

#[test]
fn threshold_free_metrics_of_aws_rcf() {
    let Some((root, files)) = data() else { return };
    let scores = nab::load_results(&root, "randomCutForest", &files).unwrap();
    let per_file: Vec<(f64, f64)> = files
        .iter()
        .filter_map(|f| nab::auc(f, &scores[&f.name]))
        .collect();
    assert_eq!(per_file.len(), 52);
    let ap = per_file.iter().map(|x| x.0).sum::<f64>() / 52.0;
    let roc = per_file.iter().map(|x| x.1).sum::<f64>() / 52.0;
    // published (benchmarks.md §3): AUC-PR 0.222, AUC-ROC 0.573, to 3 decimals
    assert!((ap - 0.222).abs() < 0.0005, "AUC-PR {ap}");
    assert!((roc - 0.573).abs() < 0.0005, "AUC-ROC {roc}");
}
