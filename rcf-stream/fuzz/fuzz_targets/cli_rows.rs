//! The CLI's telemetry reader (CSV or JSON Lines, picked by the first byte) on arbitrary
//! bytes, and a detector fed with every row it accepts: never panics or hangs; a malformed row
//! is an error with a bounded message.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use rcf_stream::Detector;

#[allow(dead_code)]
#[path = "../src/common.rs"]
mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../../src/bin/rcf/input.rs"]
mod input;

fuzz_target!(init: common::write_seeds(common::rows()), |data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = if selector % 2 == 0 {
        input::Format::Csv
    } else {
        input::Format::Jsonl
    };
    // selector bits: 1 format, 2 a named timestamp, 4 a key column, 8 chosen metric columns
    let columns = input::Columns {
        timestamp: (selector & 2 != 0).then(|| "time".to_string()),
        key: (selector & 4 != 0).then(|| "device".to_string()),
        metrics: (selector & 8 != 0).then(|| vec!["a".to_string()]),
    };
    let Ok(rows) = input::open(Box::new(Cursor::new(rest.to_vec())), format, &columns) else {
        return;
    };
    let mut detector = Detector::builder(rows.metrics.iter().cloned())
        .sample_size(16)
        .num_trees(4)
        .build()
        .ok();
    for row in rows.take(2_000) {
        match row {
            Ok(row) => {
                if let Some(d) = detector.as_mut() {
                    // the reader gives one value per metric, finite or NaN
                    d.process(&row.values).expect("a parsed row is a valid point");
                }
            }
            Err(e) => assert!(e.reason.len() < 1_000, "{} byte message", e.reason.len()),
        }
    }
});
