//! Shared set-up for rcf's benchmarks: the forests of workloads W1–W4 (`benchmarks.md` §7),
//! trained the same way for the criterion benches and the `report` binary.

#![forbid(unsafe_code)]

use rcf_core::RandomCutForest;
use rcf_datasets::synth;

/// Points of W1 used to warm a forest before measuring (the sample is full and steady).
pub const WARM_POINTS: usize = 20_000;

/// The W1 forest: 1 input, shingle 8, 50 trees, 256 samples, default decay, with the given
/// box-cache threshold.
pub fn w1_forest(box_cache_min_mass: usize) -> RandomCutForest {
    RandomCutForest::builder(1)
        .shingle_size(8)
        .num_trees(50)
        .sample_size(256)
        .box_cache_min_mass(box_cache_min_mass)
        .seed(1)
        .build()
        .expect("valid W1 parameters")
}

/// The W2 forest: 3 inputs, shingle 4, 100 trees, 256 samples.
pub fn w2_forest() -> RandomCutForest {
    RandomCutForest::builder(3)
        .shingle_size(4)
        .num_trees(100)
        .sample_size(256)
        .seed(2)
        .build()
        .expect("valid W2 parameters")
}

/// A W1 forest after the whole standard W1 stream (the W3 subject).
pub fn trained_w1_forest(box_cache_min_mass: usize) -> RandomCutForest {
    let mut f = w1_forest(box_cache_min_mass);
    for v in synth::w1_standard().values {
        f.update(&[v]).expect("finite data");
    }
    f
}

/// The W4 forest: 8 dimensions without internal shingling, trained on W1's shingles, frozen.
pub fn w4_forest() -> RandomCutForest {
    let mut f = RandomCutForest::builder(8)
        .num_trees(50)
        .sample_size(256)
        .seed(4)
        .build()
        .expect("valid W4 parameters");
    let points = synth::shingle(&synth::w1_standard().values, 8);
    for p in points.chunks_exact(8) {
        f.update(p).expect("finite data");
    }
    f
}

/// A detector with W1's forest parameters (1 metric, shingle 8, 50 trees, 256 samples).
pub fn w1_detector() -> rcf_stream::Detector {
    rcf_stream::Detector::builder(["value"])
        .shingle_size(8)
        .num_trees(50)
        .sample_size(256)
        .seed(1)
        .build()
        .expect("valid W1 parameters")
}

/// A simulated fleet's report as the fleet engine's datapoint (the fleet benchmarks').
pub fn fleet_datapoint(r: &rcf_datasets::defender::Report) -> rcf_stream::fleet::Datapoint {
    use rcf_datasets::defender::Value;
    use rcf_stream::fleet::MetricValue;
    let v = match &r.value {
        Value::Count(c) => MetricValue::Count(*c),
        Value::Number(x) => MetricValue::Number(*x),
        Value::Ports(p) => MetricValue::Ports(p.clone()),
    };
    rcf_stream::fleet::Datapoint::new(&r.thing, r.metric, v, r.timestamp, r.topic).expect("valid")
}

/// A benchmark's scratch directory in the temp directory, `{prefix}-{pid}`, removed when
/// dropped.
///
/// A run that is killed cannot remove its directory, and a fleet store at 100,000 things
/// holds tens of GB, so making one first removes the directories of earlier runs of the
/// same prefix whose process is gone (Linux: no `/proc/{pid}`; elsewhere none are removed).
#[derive(Debug)]
pub struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// Removes stale `{prefix}-{pid}` directories, then makes this process's, empty.
    pub fn new(prefix: &str) -> std::io::Result<ScratchDir> {
        let tmp = std::env::temp_dir();
        if std::path::Path::new("/proc/self").exists() {
            for entry in std::fs::read_dir(&tmp)?.flatten() {
                let name = entry.file_name();
                let pid = name
                    .to_str()
                    .and_then(|n| n.strip_prefix(prefix))
                    .and_then(|n| n.strip_prefix('-'))
                    .and_then(|n| n.parse::<u32>().ok());
                if let Some(pid) = pid
                    && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = tmp.join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(ScratchDir(dir))
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
