//! The `rcf` binary, run as a user would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn rcf(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcf"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rcf");
    // write from another thread while this one collects the output (so a large input cannot
    // deadlock on full pipes), and accept a broken pipe: `rcf` may rightly exit before it has
    // read everything (a bad header, --strict), which made this helper fail by chance
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || match pipe.write_all(&input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.expect("write rcf's standard input"),
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A CSV with a timestamp, two metrics and one spike at row 900.
fn csv_input(rows: usize) -> String {
    let mut s = String::from("timestamp,temp,load\n");
    for t in 0..rows {
        let temp = 20.0 + 3.0 * (t as f64 / 20.0).sin() + if t == 900 { 30.0 } else { 0.0 };
        let load = 0.5 + 0.2 * (t as f64 / 7.0).cos();
        s.push_str(&format!(
            "2026-01-01T00:{:02}:{:02},{temp:.3},{load:.3}\n",
            t / 60 % 60,
            t % 60
        ));
    }
    s
}

#[test]
fn csv_in_csv_out_flags_the_spike() {
    let out = rcf(&["detect", "-", "--seed", "1"], &csv_input(1_200));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next().unwrap(),
        "timestamp,score,grade,anomaly,in_event,confidence,threshold,top_metric,direction,expected,relative_index,suppressed"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1_200);
    let spike = rows[900];
    assert!(spike.starts_with("2026-01-01T00:15:00,"), "{spike}");
    let fields: Vec<&str> = spike.split(',').collect();
    assert_eq!(fields[3], "true", "{spike}");
    assert_eq!(fields[4], "true", "{spike}"); // the alarm opens an event
    assert_eq!(fields[7], "temp");
    assert_eq!(fields[8], "high");
    assert!(text(&out.stderr).contains("1200 rows read, 0 malformed"));
}

#[test]
fn jsonl_in_jsonl_out() {
    let mut input = String::new();
    for t in 0..1_000 {
        let rate = 50.0 + 5.0 * (t as f64 / 30.0).sin() + if t == 800 { 80.0 } else { 0.0 };
        input.push_str(&format!(
            "{{\"ts\": {t}, \"msg_rate\": {rate:.2}, \"battery\": {:.2}}}\n",
            100.0 - (t % 300) as f64 / 10.0
        ));
    }
    let out = rcf(
        &[
            "detect",
            "-",
            "--output-format",
            "jsonl",
            "--anomalies-only",
        ],
        &input,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let spike = stdout
        .lines()
        .find(|l| l.contains("\"timestamp\":\"800\""))
        .unwrap_or_else(|| panic!("row 800 not reported:\n{stdout}"));
    assert!(
        spike.contains("\"anomaly\":true") && spike.contains("\"top_metric\":\"msg_rate\""),
        "{spike}"
    );
    assert!(stdout.lines().all(|l| l.contains("\"anomaly\":true")));
}

#[test]
fn malformed_rows_are_reported_with_line_numbers_and_skipped() {
    let mut input = csv_input(300);
    input.push_str("2026-01-01T01:00:00,12.5\n"); // line 302: one field short
    input.push_str("2026-01-01T01:00:01,abc,0.5\n"); // line 303: not a number
    input.push_str("2026-01-01T01:00:02,,0.5\n"); // line 304: empty = missing, accepted
    let out = rcf(&["detect", "-"], &input);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 302: expected 3 fields, got 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 303: column `temp`: `abc` is not a number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("303 rows read, 2 malformed and skipped, 301 verdicts written"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout).lines().count(), 302); // header + 301 verdicts

    let strict = rcf(&["detect", "-", "--strict"], &input);
    assert_eq!(strict.status.code(), Some(1));
    assert!(text(&strict.stderr).contains("line 302"));
}

#[test]
fn empty_input_and_bad_options_fail_clearly() {
    let out = rcf(&["detect", "-"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("empty input"),
        "{}",
        text(&out.stderr)
    );

    let header_only = rcf(&["detect", "-"], "timestamp,temp\n");
    assert!(header_only.status.success());
    assert!(text(&header_only.stderr).contains("0 rows read"));

    let bad = rcf(&["detect", "-", "--sensitivity", "rate=2"], "a\n1\n");
    assert_eq!(bad.status.code(), Some(2), "usage errors exit 2");
    assert!(text(&bad.stderr).contains("anomaly rate must be in (0, 0.5), got 2"));
    let bad = rcf(&["detect", "-", "--repeat-tolerance", "1.5"], "a\n1\n");
    assert_eq!(bad.status.code(), Some(2), "usage errors exit 2");
    assert!(text(&bad.stderr).contains("`repeat_tolerance`: must be in [0, 1), got 1.5"));

    let missing = rcf(&["detect", "/no/such/file.csv"], "");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot open /no/such/file.csv"));
}

#[test]
fn bootstrap_rows_get_no_verdicts_and_calibrate_the_rest() {
    let out = rcf(&["detect", "-", "--bootstrap", "600"], &csv_input(1_200));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1 + 600);
    // the first live row already has a calibrated threshold and confidence
    let first: Vec<&str> = stdout.lines().nth(1).unwrap().split(',').collect();
    assert!(
        first[5].parse::<f64>().unwrap() > 0.5,
        "confidence {}",
        first[5]
    );
}

#[test]
fn semicolon_csv_with_a_named_timestamp() {
    let mut input = String::from("datetime;a;b\n");
    for t in 0..200 {
        input.push_str(&format!("t{t};{};{}\n", t % 7, t % 5));
    }
    let out = rcf(&["detect", "-", "--timestamp", "datetime"], &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).lines().nth(1).unwrap().starts_with("t0,"));
}

#[test]
fn the_demo_finds_the_injected_anomalies() {
    let out = rcf(&["detect"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let found = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("found"))
        .count();
    // 5 harmful events injected (and a benign change); the stuck battery inside its normal
    // range is not visible to level normalisation, so at least 4 must be found
    assert!(found >= 4, "{stdout}");
    assert!(stdout.contains("message-rate burst") && stdout.contains("msg_rate high"));
    // the benign firmware rollout is never counted as found, and grade is explained
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("benign") && l.contains("firmware"))
    );
    assert!(
        !stdout
            .lines()
            .any(|l| l.trim_start().starts_with("found ") && l.contains("(benign)"))
    );
    assert!(stdout.contains("of 5 injected anomalies") && stdout.contains("grade: how anomalous"));
}

/// A JSON Lines first line with 1,000,000 keys hung the CLI (a quadratic scan ran before the
/// size check): it now fails at once with the limit.
#[test]
fn a_million_key_json_line_fails_with_the_metric_limit() {
    let mut line = String::from("{");
    for i in 0..1_000_000 {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&format!("\"k{i}\":1"));
    }
    line.push_str("}\n");
    let out = rcf(&["detect", "-", "--input-format", "jsonl"], &line);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("at most 16384 metrics"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 2_000, "the error quotes {} bytes", err.len());
}

/// A malformed row's 10 MB field was echoed whole to stderr; messages now quote the start.
#[test]
fn a_huge_malformed_field_is_not_echoed_whole() {
    let mut input = csv_input(200);
    input.push_str("2026-01-02T00:00:00,");
    input.push_str(&"x".repeat(10_000_000));
    input.push_str(",1.0\n");
    let out = rcf(&["detect", "-"], &input);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("is not a number"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(
        err.contains("(10000000 bytes)"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 2_000, "stderr holds {} bytes", err.len());
    // JSON Lines too
    let mut jsonl = String::from("{\"a\": 1}\n");
    jsonl.push_str(&format!("{{\"a\": \"{}\"}}\n", "y".repeat(10_000_000)));
    let out = rcf(&["detect", "-", "--input-format", "jsonl"], &jsonl);
    let err = text(&out.stderr);
    assert!(err.len() < 2_000, "stderr holds {} bytes", err.len());
}

/// Found by the fuzzer: a JSON number beyond the f32 range (1.5e63) was read as infinity and
/// then blamed on the detector; the reader now names it, in CSV too.
#[test]
fn numbers_beyond_the_f32_range_are_named_by_the_reader() {
    let out = rcf(
        &["detect", "-", "--input-format", "jsonl"],
        "{\"a\": 1}\n{\"a\": 1.5e63}\n",
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2: key `a`: 1.5e+63 is outside the float32 range"),
        "{err}"
    );
    let out = rcf(&["detect", "-"], "a\n1\n-4e39\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("`-4e39` is outside the float32 range"),
        "{err}"
    );
}

/// `cat f | rcf detect` (no `-`) reads the pipe instead of running the demo.
#[test]
fn a_pipe_is_read_without_a_dash() {
    let out = rcf(&["detect"], &csv_input(300));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("timestamp,score,"));
    assert_eq!(text(&out.stdout).lines().count(), 301);
}

/// `rcf detect | head` exits quietly (0, nothing on stderr) when its reader goes away.
#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcf"))
        .args(["detect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = csv_input(200_000);
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    // read one line, then close our end, as `head -1` does
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("Broken pipe"),
        "{}",
        text(&out.stderr)
    );
}

/// A wrong file does not flood the terminal: ten rows in full, then a count by kind.
#[test]
fn malformed_rows_are_shown_ten_then_counted() {
    let mut input = String::from("temp,load\n");
    for t in 0..500 {
        input.push_str(&format!("{t},oops{t}\n"));
    }
    let out = rcf(&["detect", "-"], &input);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.matches("(row skipped)").count(), 10, "{err}");
    assert!(
        err.contains("490 more malformed rows not shown: 490 × is not a number"),
        "{err}"
    );
    assert!(err.lines().count() < 16, "{err}");
    // --strict says it once
    let out = rcf(&["detect", "-", "--strict"], &input);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("line 2: column `load`: `oops0` is not a number (--strict: stopped)"),
        "{err}"
    );
}

#[test]
fn a_headerless_csv_is_recognised() {
    let out = rcf(&["detect", "-"], "1.0,2.0\n3.0,4.0\n");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("the first line (1.0,2.0) looks like data, not a header"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_bootstrap_longer_than_the_input_is_said() {
    let out = rcf(&["detect", "-", "--bootstrap", "1000"], &csv_input(200));
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("--bootstrap 1000 asked for more rows than the input has (200)"),
        "{}",
        text(&out.stderr)
    );
}

/// A BOM was accepted in CSV but rejected in JSON Lines; without a timestamp the first column
/// is named `line`; `--echo` writes the input values.
#[test]
fn bom_line_column_and_echo() {
    let mut jsonl = String::from("\u{feff}");
    for t in 0..100 {
        jsonl.push_str(&format!("{{\"a\": {}, \"b\": 2}}\n", t % 7));
    }
    let out = rcf(&["detect", "-", "--echo"], &jsonl);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("line,score,") && header.ends_with(",suppressed,a,b"),
        "{header}"
    );
    let last = lines.last().unwrap();
    assert!(last.starts_with("100,") && last.ends_with(",1,2"), "{last}"); // a = 99 % 7
    let out = rcf(
        &["detect", "-", "--output-format", "jsonl", "--echo"],
        &csv_input(50),
    );
    let first: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert!(first["timestamp"].is_string());
    assert!(first["values"]["temp"].as_f64().unwrap() > 19.0);
}
