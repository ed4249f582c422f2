//! Every failure the fuzzers found (`fuzz/run.sh`), replayed with the property its target
//! checks. A finding is saved under `tests/fixtures/fuzz/` named after its target
//! (`forest-state-*`, `detector-checkpoint-*`, `cli-rows-*`) and stays here for good.

use std::path::Path;

use rcf_stream::Detector;
use rcf_stream::rcf_core::RandomCutForest;

/// The fuzz targets' own input builder, so a finding replays with the same points.
#[path = "../../fuzz/src/points.rs"]
mod points;
use points::points;

fn forest_state(data: &[u8]) {
    let Ok(mut forest) = RandomCutForest::from_bytes(data) else {
        return;
    };
    forest.check_invariants().unwrap();
    for x in points(&data[data.len() / 2..], forest.input_dims(), 8) {
        assert!(forest.process(&x).unwrap().is_finite());
    }
    forest.check_invariants().unwrap();
    RandomCutForest::from_bytes(&forest.to_bytes()).unwrap();
}

fn detector_checkpoint(data: &[u8]) {
    let Ok(mut detector) = Detector::from_bytes(data) else {
        return;
    };
    let m = detector.metrics().len();
    for (i, mut x) in points(&data[data.len() / 2..], m, 12)
        .into_iter()
        .enumerate()
    {
        if i % 5 == 3 {
            x[i % m] = f32::NAN;
        }
        let v = detector.process(&x).unwrap();
        assert!(v.score.is_finite() && v.grade.is_finite(), "{v:?}");
        if i % 4 == 0
            && let Err(e) = Detector::from_bytes(&detector.to_bytes())
        {
            panic!("point {i}: its own checkpoint is refused: {e}");
        }
    }
}

fn cli_rows(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = if selector % 2 == 0 { "csv" } else { "jsonl" };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rcf"))
        .args(["detect", "-", "--input-format", format])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = rest.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, &input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{:?}", out.status);
    // the target's property: every row the reader accepts is a valid point for the detector,
    // so the detector never has to reject one as non-finite
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("values must be finite"), "{err}");
}

#[test]
fn every_fuzz_finding_now_holds_its_property() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let check: fn(&[u8]) = if name.starts_with("forest-state-") {
            forest_state
        } else if name.starts_with("detector-checkpoint-") {
            detector_checkpoint
        } else if name.starts_with("cli-rows-") {
            cli_rows
        } else {
            panic!("{name}: not named after a fuzz target");
        };
        check(&data);
        replayed += 1;
    }
    assert!(replayed > 0, "no findings in {}", dir.display());
}
