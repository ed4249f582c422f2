//! Reading telemetry: CSV (a header, an optional timestamp column, one column per metric) or
//! JSON Lines (one object per line: an optional timestamp key, one numeric key per metric).
//! Malformed rows come back as errors with their line number; the caller decides to skip them.

use std::io::{BufRead, BufReader, Read};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Comma- or semicolon-separated values with a header line.
    Csv,
    /// JSON Lines: one object per line.
    Jsonl,
}

/// Names recognised as the timestamp column / key (case-insensitive).
const TIMESTAMP_NAMES: [&str; 5] = ["timestamp", "time", "ts", "datetime", "date"];

fn is_timestamp(name: &str, wanted: Option<&str>) -> bool {
    match wanted {
        Some(w) => name == w,
        None => TIMESTAMP_NAMES.iter().any(|t| name.eq_ignore_ascii_case(t)),
    }
}

/// One data row.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) line: u64,
    pub(crate) timestamp: Option<String>,
    /// The key column's value (`--key`), if any.
    pub(crate) key: Option<String>,
    pub(crate) values: Vec<f32>,
}

/// A row that could not be read.
#[derive(Debug)]
pub(crate) struct RowError {
    pub(crate) line: u64,
    pub(crate) reason: String,
}

/// What an input holds: its metrics, then rows.
pub(crate) struct Input {
    pub(crate) metrics: Vec<String>,
    /// Whether rows carry a timestamp (else the output's first column is the line number).
    pub(crate) has_timestamp: bool,
    rows: Box<dyn Iterator<Item = Result<Row, RowError>>>,
}

impl Iterator for Input {
    type Item = Result<Row, RowError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}

/// At most this many characters of an input field are quoted in an error message: a
/// malformed 10 MB field must not be echoed to the terminal.
const SHOWN: usize = 60;

/// `text` for an error message: whole if short, else its first [`SHOWN`] characters and how
/// long it was.
pub(crate) fn shown(text: &str) -> String {
    if text.chars().count() <= SHOWN {
        text.to_string()
    } else {
        let head: String = text.chars().take(SHOWN).collect();
        format!("{head}… ({} bytes)", text.len())
    }
}

/// Parses a number; empty fields and NaN mark a missing value.
fn number(field: &str) -> Result<f32, String> {
    let f = field.trim();
    if f.is_empty() || f.eq_ignore_ascii_case("nan") || f.eq_ignore_ascii_case("null") {
        return Ok(f32::NAN);
    }
    let v: f64 = f
        .parse()
        .map_err(|_| format!("`{}` is not a number", shown(f)))?;
    narrow(v).map_err(|e| format!("`{}` {e}", shown(f)))
}

/// `v` as an `f32` reading: finite, and within the `f32` range (1.5e63 is a finite JSON
/// number but would become infinity).
fn narrow(v: f64) -> Result<f32, String> {
    if !v.is_finite() {
        return Err("is not finite".into());
    }
    let w = v as f32;
    if w.is_finite() {
        Ok(w)
    } else {
        Err(format!("is outside the float32 range (±{:e})", f32::MAX))
    }
}

/// Opens `reader` as `format`, reading the header (CSV) or the first record (JSON Lines).
///
/// # Errors
///
/// A message if the input is empty or its header names no metric.
pub(crate) fn open(reader: Box<dyn Read>, format: Format, opts: &Columns) -> Result<Input, String> {
    match format {
        Format::Csv => open_csv(reader, opts),
        Format::Jsonl => open_jsonl(reader, opts),
    }
}

/// Which columns mean what: `--timestamp`, `--key`, `--columns`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns {
    /// The timestamp column (default: a recognised name).
    pub(crate) timestamp: Option<String>,
    /// A key column (a device id): one detector per key.
    pub(crate) key: Option<String>,
    /// The metric columns, in this order (default: every other column); the rest are ignored.
    pub(crate) metrics: Option<Vec<String>>,
}

impl Columns {
    /// The metric columns among `names` (the header or the first object's keys), given the
    /// timestamp and key columns found.
    fn select(&self, names: &[String], ts: Option<&str>) -> Result<Vec<String>, String> {
        if let Some(k) = &self.key
            && !names.iter().any(|n| n == k)
        {
            return Err(format!("no column named `{}` for --key", shown(k)));
        }
        let metrics: Vec<String> = match &self.metrics {
            Some(wanted) => {
                for w in wanted {
                    if !names.iter().any(|n| n == w) {
                        return Err(format!(
                            "no column named `{}` for --columns (the input has {})",
                            shown(w),
                            shown(&names.join(", "))
                        ));
                    }
                    if Some(w.as_str()) == ts || self.key.as_ref() == Some(w) {
                        return Err(format!(
                            "--columns names `{}`, the timestamp or key column",
                            shown(w)
                        ));
                    }
                }
                wanted.clone()
            }
            None => names
                .iter()
                .filter(|n| Some(n.as_str()) != ts && self.key.as_ref() != Some(*n))
                .cloned()
                .collect(),
        };
        Ok(metrics)
    }
}

fn open_csv(reader: Box<dyn Read>, opts: &Columns) -> Result<Input, String> {
    let wanted = opts.timestamp.as_deref();
    let mut buffered = BufReader::new(reader);
    // read the whole header line to sniff the delimiter (SKAB and many European exports use
    // `;`), then hand it back to the CSV reader in front of the rest
    let mut header = Vec::new();
    buffered
        .read_until(b'\n', &mut header)
        .map_err(|e| format!("cannot read input: {e}"))?;
    let header_line = String::from_utf8_lossy(&header).into_owned();
    if header_line.trim().is_empty() {
        return Err("empty input: expected a CSV header line".into());
    }
    let delimiter = if header_line.contains(';') && !header_line.contains(',') {
        b';'
    } else {
        b','
    };
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::Cursor::new(header).chain(buffered));
    let headers = csv
        .headers()
        .map_err(|e| format!("cannot read the CSV header: {e}"))?
        .clone();
    let ts = headers.iter().position(|h| is_timestamp(h, wanted));
    if let (Some(w), None) = (wanted, ts) {
        return Err(format!("no column named `{w}` in the header"));
    }
    let names: Vec<String> = headers.iter().map(str::to_string).collect();
    let metrics = opts.select(&names, ts.map(|i| names[i].as_str()))?;
    // header index of each metric, and of the key
    let metric_at: Vec<usize> = metrics
        .iter()
        .map(|m| {
            names
                .iter()
                .position(|n| n == m)
                .expect("selected from the header")
        })
        .collect();
    let key_at = opts
        .key
        .as_ref()
        .and_then(|k| names.iter().position(|n| n == k));
    if metrics.is_empty() {
        return Err("the header names no metric column".into());
    }
    // a first line of numbers is data, not a header: say so, instead of one "not a number"
    // error per row naming the first row's values as columns
    if ts.is_none() && headers.iter().all(|h| h.parse::<f64>().is_ok()) {
        return Err(format!(
            "the first line ({}) looks like data, not a header: CSV input needs a header line \
             naming the metrics (and optionally a timestamp column)",
            shown(header_line.trim())
        ));
    }
    let has_timestamp = ts.is_some();
    let width = headers.len();
    let rows = csv.into_records().map(move |record| {
        let record = record.map_err(|e| RowError {
            line: e.position().map_or(0, |p| p.line()),
            reason: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != width {
            return Err(RowError {
                line,
                reason: format!("expected {width} fields, got {}", record.len()),
            });
        }
        let timestamp = ts.map(|i| record[i].to_string());
        let key = key_at.map(|i| record[i].to_string());
        let mut values = Vec::with_capacity(metric_at.len());
        for &i in &metric_at {
            values.push(number(&record[i]).map_err(|reason| RowError {
                line,
                reason: format!("column `{}`: {reason}", shown(&headers[i])),
            })?);
        }
        Ok(Row {
            line,
            timestamp,
            key,
            values,
        })
    });
    Ok(Input {
        metrics,
        has_timestamp,
        rows: Box::new(rows),
    })
}

/// A line without the UTF-8 byte order mark some tools put at the start of a file (CSV
/// accepted it; JSON Lines refused its first line).
fn strip_bom(line: &str) -> &str {
    line.strip_prefix('\u{feff}').unwrap_or(line)
}

fn open_jsonl(reader: Box<dyn Read>, opts: &Columns) -> Result<Input, String> {
    let wanted = opts.timestamp.as_deref();
    let mut lines = BufReader::new(reader).lines().enumerate().peekable();
    // the first non-blank line defines the metrics (in its key order, sorted by serde_json)
    let first = loop {
        match lines.peek() {
            None => return Err("empty input: expected at least one JSON object".into()),
            Some((_, Ok(l))) if l.trim().is_empty() => {
                lines.next();
            }
            Some((i, Ok(l))) => break (*i, l.clone()),
            Some((_, Err(e))) => return Err(format!("cannot read input: {e}")),
        }
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(strip_bom(&first.1))
            .map_err(|e| format!("line {}: not a JSON object: {e}", first.0 + 1))?;
    let ts_key = object.keys().find(|k| is_timestamp(k, wanted)).cloned();
    if let (Some(w), None) = (wanted, &ts_key) {
        return Err(format!("line {}: no key named `{w}`", first.0 + 1));
    }
    let names: Vec<String> = object.keys().cloned().collect();
    let metrics = opts
        .select(&names, ts_key.as_deref())
        .map_err(|e| format!("line {}: {e}", first.0 + 1))?;
    let key_name = opts.key.clone();
    // with --columns, keys beyond the chosen ones are ignored, not errors
    let strict_keys = opts.metrics.is_none();
    if metrics.is_empty() {
        return Err(format!(
            "line {}: the object has no metric key",
            first.0 + 1
        ));
    }
    let has_timestamp = ts_key.is_some();
    let names = metrics.clone();
    // a set for the per-row "unknown key" check: linear in the keys, however many there are
    let known: std::collections::HashSet<String> = metrics.iter().cloned().collect();
    let rows = lines.filter_map(move |(i, line)| {
        let line_no = i as u64 + 1;
        let text = match line {
            Ok(t) => t,
            Err(e) => {
                return Some(Err(RowError {
                    line: line_no,
                    reason: e.to_string(),
                }));
            }
        };
        if text.trim().is_empty() {
            return None;
        }
        let parsed: Result<serde_json::Map<String, serde_json::Value>, _> =
            serde_json::from_str(strip_bom(&text));
        let object = match parsed {
            Ok(o) => o,
            Err(e) => {
                return Some(Err(RowError {
                    line: line_no,
                    reason: format!("not a JSON object: {e}"),
                }));
            }
        };
        let timestamp = ts_key
            .as_ref()
            .and_then(|k| object.get(k))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let key = match key_name.as_ref().map(|k| (k, object.get(k))) {
            None => None,
            Some((_, Some(serde_json::Value::String(s)))) => Some(s.clone()),
            Some((_, Some(v @ serde_json::Value::Number(_)))) => Some(v.to_string()),
            Some((k, _)) => {
                return Some(Err(RowError {
                    line: line_no,
                    reason: format!("key `{}` (--key) is missing or not a string", shown(k)),
                }));
            }
        };
        let mut values = Vec::with_capacity(names.len());
        for name in &names {
            let v = match object.get(name) {
                None | Some(serde_json::Value::Null) => f32::NAN,
                Some(serde_json::Value::Number(n)) => {
                    match n
                        .as_f64()
                        .ok_or_else(|| "is not finite".to_string())
                        .and_then(narrow)
                    {
                        Ok(v) => v,
                        Err(e) => {
                            return Some(Err(RowError {
                                line: line_no,
                                reason: format!(
                                    "key `{}`: {} {e}",
                                    shown(name),
                                    shown(&n.to_string())
                                ),
                            }));
                        }
                    }
                }
                Some(serde_json::Value::String(s)) => match number(s) {
                    Ok(v) => v,
                    Err(reason) => {
                        return Some(Err(RowError {
                            line: line_no,
                            reason: format!("key `{}`: {reason}", shown(name)),
                        }));
                    }
                },
                Some(other) => {
                    return Some(Err(RowError {
                        line: line_no,
                        reason: format!(
                            "key `{}`: {} is not a number",
                            shown(name),
                            shown(&other.to_string())
                        ),
                    }));
                }
            };
            values.push(v);
        }
        if let Some(extra) = object.keys().find(|k| {
            strict_keys
                && !known.contains(*k)
                && Some(*k) != ts_key.as_ref()
                && key_name.as_ref() != Some(*k)
        }) {
            return Some(Err(RowError {
                line: line_no,
                reason: format!(
                    "unknown key `{}` (the first line defines the metrics)",
                    shown(extra)
                ),
            }));
        }
        Some(Ok(Row {
            line: line_no,
            timestamp,
            key,
            values,
        }))
    });
    Ok(Input {
        metrics,
        has_timestamp,
        rows: Box::new(rows),
    })
}
