//! Diagnostic: where the detector's alarms fall relative to W1's spikes.
fn main() {
    let w1 = rcf_datasets::synth::w1_standard();
    let mut d = rcf_benches::w1_detector();
    let mut hist = std::collections::BTreeMap::new();
    let mut spikes_hit = 0;
    let mut missed = std::collections::BTreeMap::new();
    for (t, v) in w1.values.iter().enumerate() {
        let verdict = d.process(&[*v]).unwrap();
        if w1.anomalies.contains(&t) && !verdict.is_anomaly {
            let why = match verdict.suppressed {
                Some(s) => format!("{s:?}"),
                None => "below the threshold".into(),
            };
            *missed.entry(why).or_insert(0) += 1;
        }
        if verdict.is_anomaly {
            let nearest = w1
                .anomalies
                .iter()
                .map(|&s| t as i64 - s as i64)
                .min_by_key(|x| x.abs())
                .unwrap();
            let key = if nearest.abs() <= 10 {
                nearest.to_string()
            } else if t < 2_000 {
                "warm-up".into()
            } else {
                "far".into()
            };
            *hist.entry(key).or_insert(0) += 1;
            if nearest == 0 {
                spikes_hit += 1;
            }
        }
    }
    println!(
        "spikes alarmed at their own point: {spikes_hit}/{}",
        w1.anomalies.len()
    );
    for (k, n) in hist {
        println!("{k:>8}: {n}");
    }
    for (why, n) in missed {
        println!("spikes not alarmed, {why}: {n}");
    }
}
