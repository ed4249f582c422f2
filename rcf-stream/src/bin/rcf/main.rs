//! `rcf`: streaming anomaly detection on telemetry from the command line.
//!
//! ```text
//! rcf detect                      # the built-in synthetic fleet demo: what it finds, and what it misses
//! rcf detect data.csv             # CSV in (header; optional timestamp column), CSV verdicts out
//! rcf detect - < data.jsonl --input-format jsonl --output-format jsonl
//! ```
//!
//! Exit codes: 0 the run completed (malformed rows, if any, were reported on stderr and
//! skipped); 1 the input could not be read or, with `--strict`, a row was malformed; 2 the command
//! line is invalid.

mod demo;
mod fleet;
mod fleet_demo;
mod input;
mod respond;
mod serve;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rcf_stream::{Detector, Sensitivity, Verdict};

use input::{Format, Row};

/// mimalloc: a budgeted fleet's threads allocate and free models all the time. glibc's malloc
/// in one arena made them queue on its lock (a 100,000-thing fleet under 1 GiB ran 1.9x
/// slower, BENCHMARKS.md), and in an arena per thread it left 1.7x the live heap resident.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rcf",
    version,
    about = "Streaming anomaly detection on telemetry with Random Cut Forests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a stream of telemetry and write one verdict per row. Without FILE, run the
    /// built-in synthetic fleet demo.
    Detect(DetectArgs),
    /// Device Defender-style fleet detection: security profiles (rules, fleet percentiles,
    /// per-thing ML) over JSON Lines datapoints, violation events on stdout, a SQLite store.
    /// Without input, run the built-in fleet demo.
    Fleet(Box<fleet::FleetArgs>),
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// CSV with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Args)]
struct DetectArgs {
    /// Input file, or `-` for standard input. Omitted: standard input when it is a pipe or a
    /// file, else the built-in demo.
    file: Option<PathBuf>,
    /// Input format (default: from the file extension, `.jsonl`/`.ndjson` for JSON Lines,
    /// else CSV; for standard input, JSON Lines if the first character is `{`).
    #[arg(long, value_enum)]
    input_format: Option<Format>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    output_format: OutputFormat,
    /// Name of the timestamp column or key (default: timestamp, time, ts, datetime or date,
    /// if present).
    #[arg(long)]
    timestamp: Option<String>,
    /// Readings per metric in one forest point.
    #[arg(long, default_value_t = rcf_stream::DEFAULT_SHINGLE_SIZE)]
    shingle_size: usize,
    /// Trees in the forest.
    #[arg(long, default_value_t = rcf_stream::rcf_core::DEFAULT_NUM_TREES)]
    trees: usize,
    /// Points sampled per tree.
    #[arg(long, default_value_t = rcf_stream::rcf_core::DEFAULT_SAMPLE_SIZE)]
    sample_size: usize,
    /// low, medium or high (Device Defender's confidence levels: more to fewer alarms),
    /// z=FACTOR, or rate=FRACTION (target share of points above the threshold).
    #[arg(long, default_value = "medium", value_parser = parse_sensitivity)]
    sensitivity: Sensitivity,
    /// Points after an event during which a new alarm must score 1.2 times as high; it ends
    /// early after a quarter of it with no point above the threshold (0: off).
    #[arg(long, default_value_t = rcf_stream::DEFAULT_HOLDOFF)]
    holdoff: usize,
    /// How closely (a fraction of its deviation) a candidate must repeat one of the last few
    /// events to be recognised as a known pattern and not reported (0: report every repeat).
    #[arg(long, default_value_t = rcf_stream::DEFAULT_REPEAT_TOLERANCE,
        value_parser = parse_repeat_tolerance)]
    repeat_tolerance: f64,
    /// Master seed (runs are reproducible).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use the first N rows as history: they warm the detector in one call and get no
    /// verdict, so verdicts are calibrated from the first row after them.
    #[arg(long, default_value_t = 0)]
    bootstrap: usize,
    /// Stop at the first malformed row instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Write only the rows reported as anomalies.
    #[arg(long)]
    anomalies_only: bool,
    /// Also write each row's input values (one column or key per metric, after the verdict).
    #[arg(long)]
    echo: bool,
    /// A key column (a device id, say): one detector per key, each learning its own normal;
    /// the key is written after the timestamp.
    #[arg(long, value_name = "COLUMN")]
    key: Option<String>,
    /// The metric columns to use, comma-separated (default: every column but the timestamp
    /// and key); other columns are ignored.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Most distinct keys (each holds a detector in memory); rows of further keys are
    /// reported as malformed.
    #[arg(long, default_value_t = 10_000)]
    max_keys: usize,
}

/// Malformed rows reported in full before the rest are only counted.
const SHOWN_ERRORS: u64 = 10;

fn parse_sensitivity(s: &str) -> Result<Sensitivity, String> {
    let lower = s.to_ascii_lowercase();
    let parsed = match lower.as_str() {
        "low" => Sensitivity::Low,
        "medium" => Sensitivity::Medium,
        "high" => Sensitivity::High,
        _ => {
            if let Some(z) = lower.strip_prefix("z=") {
                Sensitivity::ZFactor(z.parse().map_err(|_| format!("`{z}` is not a number"))?)
            } else if let Some(r) = lower.strip_prefix("rate=") {
                Sensitivity::AnomalyRate(r.parse().map_err(|_| format!("`{r}` is not a number"))?)
            } else {
                return Err(format!(
                    "expected low, medium, high, z=FACTOR or rate=FRACTION, got `{s}`"
                ));
            }
        }
    };
    // the same checks as the library, reported as a usage error
    Detector::builder(["x"])
        .sensitivity(parsed)
        .validate()
        .map_err(|e| e.to_string())?;
    Ok(parsed)
}

fn parse_repeat_tolerance(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    // the same check as the library, reported as a usage error
    Detector::builder(["x"])
        .repeat_tolerance(v)
        .validate()
        .map_err(|e| e.to_string())?;
    Ok(v)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(args) => match &args.file {
            // `cat f.jsonl | rcf detect` reads the pipe; a terminal, or an empty standard
            // input (`< /dev/null`, CI), gets the demo
            None if stdin_has_data() => detect(&args, &PathBuf::from("-")),
            None => demo::run(&args).map(|()| 0),
            Some(file) => detect(&args, file),
        },
        Command::Fleet(args) => fleet::main(*args).map(|()| 0),
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        // `rcf detect | head`: the reader went away; stop quietly, as Unix tools do
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("rcf: {message}");
            ExitCode::from(1)
        }
    }
}

/// Whether standard input is not a terminal and has at least one byte to read (peeked into
/// stdin's own buffer, so nothing is lost for the reader that follows).
pub(crate) fn stdin_has_data() -> bool {
    use io::BufRead;
    let stdin = io::stdin();
    !stdin.is_terminal() && stdin.lock().fill_buf().is_ok_and(|b| !b.is_empty())
}

/// Why a run stopped early.
pub(crate) enum Failure {
    /// Standard output was closed by its reader.
    BrokenPipe,
    /// Anything else, said on stderr.
    Message(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

/// An output error: a closed pipe ends the run quietly, anything else is reported.
pub(crate) fn output_error(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::BrokenPipe
    } else {
        Failure::Message(format!("cannot write output: {e}"))
    }
}

/// Malformed rows: the first [`SHOWN_ERRORS`] reported in full, then counted by kind and
/// summarised at the end, so a wrong file does not flood the terminal.
#[derive(Default)]
pub(crate) struct Malformed {
    /// Malformed rows so far.
    pub(crate) total: u64,
    by_kind: std::collections::BTreeMap<String, u64>,
}

impl Malformed {
    /// A malformed row at `line`: with `--strict` the run stops here, else it is reported
    /// (or counted) and skipped.
    pub(crate) fn report(
        &mut self,
        progress: &Progress,
        strict: bool,
        line: u64,
        reason: &str,
    ) -> Result<(), Failure> {
        if strict {
            progress.clear();
            return Err(format!("line {line}: {reason} (--strict: stopped)").into());
        }
        self.total += 1;
        if self.total <= SHOWN_ERRORS {
            progress.clear();
            eprintln!("rcf: line {line}: {reason} (row skipped)");
            if self.total == SHOWN_ERRORS {
                eprintln!("rcf: further malformed rows are counted, not shown");
            }
        } else {
            *self.by_kind.entry(kind_of(reason)).or_default() += 1;
        }
        Ok(())
    }

    pub(crate) fn summary(&self) -> Option<String> {
        if self.by_kind.is_empty() {
            return None;
        }
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect();
        Some(format!(
            "{} more malformed rows not shown: {}",
            self.total - SHOWN_ERRORS,
            kinds.join(", ")
        ))
    }
}

/// The kind of a malformed-row message, for the summary: its text with quoted values and
/// numbers left out ("column `temp`: `abc` is not a number" → "is not a number").
fn kind_of(reason: &str) -> String {
    let tail = reason.rsplit_once(": ").map_or(reason, |(_, t)| t);
    let mut out = String::new();
    let mut quoted = false;
    for c in tail.chars() {
        match c {
            '`' => quoted = !quoted,
            _ if quoted => {}
            c if c.is_ascii_digit() => {}
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A detector built from the command-line options.
fn build_detector(args: &DetectArgs, metrics: &[String]) -> Result<Detector, String> {
    Detector::builder(metrics.iter().cloned())
        .shingle_size(args.shingle_size)
        .num_trees(args.trees)
        .sample_size(args.sample_size)
        .sensitivity(args.sensitivity)
        .holdoff(args.holdoff)
        .repeat_tolerance(args.repeat_tolerance)
        .seed(args.seed)
        .build()
        .map_err(|e| e.to_string())
}

/// Progress on stderr, for files, when stderr is a terminal.
pub(crate) struct Progress {
    pub(crate) total: Option<u64>,
    pub(crate) enabled: bool,
    pub(crate) rows: u64,
}

impl Progress {
    pub(crate) fn tick(&mut self, read_fraction: impl FnOnce(u64) -> Option<f64>) {
        self.rows += 1;
        if self.enabled && self.rows.is_multiple_of(1_000) {
            let pct = self
                .total
                .and_then(read_fraction)
                .map_or(String::new(), |f| format!("{:>3.0}% ", f * 100.0));
            eprint!("\r{pct}{} rows", self.rows);
        }
    }

    /// Clears the progress line, so a message does not glue onto it.
    pub(crate) fn clear(&self) {
        if self.enabled && self.rows >= 1_000 {
            eprint!("\r\x1b[2K");
        }
    }
}

/// An input opened by [`open_input`]: the reader, its size if known, whether it is stdin.
pub(crate) type Opened = (Box<dyn Read>, Option<u64>, bool);

/// `file` for reading (`-`: standard input): the reader, the file's size if known, and whether
/// it is standard input.
pub(crate) fn open_input(file: &PathBuf) -> Result<Opened, Failure> {
    if file.as_os_str() == "-" {
        return Ok((Box::new(io::stdin()), None, true));
    }
    let f = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let size = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(f), size, false))
}

/// Runs the detector over a file or standard input; returns the number of malformed rows.
fn detect(args: &DetectArgs, file: &PathBuf) -> Result<u64, Failure> {
    let (reader, size, stdin) = open_input(file)?;
    let counted = CountingReader::new(reader);
    let bytes_read = counted.counter();
    let (format, reader) = match args.input_format {
        Some(f) => (f, Box::new(counted) as Box<dyn Read>),
        None if !stdin => {
            let ext = file
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            let f = if ext == "jsonl" || ext == "ndjson" {
                Format::Jsonl
            } else {
                Format::Csv
            };
            (f, Box::new(counted) as Box<dyn Read>)
        }
        None => sniff(Box::new(counted))?,
    };
    let columns = input::Columns {
        timestamp: args.timestamp.clone(),
        key: args.key.clone(),
        metrics: args.columns.clone(),
    };
    let input = input::open(reader, format, &columns)?;
    let metrics = input.metrics.clone();
    // one detector per key (a single one, under the empty key, without --key)
    let template = build_detector(args, &metrics)?;
    let mut detectors: std::collections::HashMap<String, Keyed> = std::collections::HashMap::new();
    let stdout = io::stdout();
    let stamp = if input.has_timestamp {
        "timestamp"
    } else {
        "line"
    };
    let echo = if args.echo { &metrics[..] } else { &[] };
    let mut out = Writer::new(
        args.output_format,
        BufWriter::new(stdout.lock()),
        stamp,
        args.key.as_deref(),
        echo,
    )
    .map_err(output_error)?;
    let mut progress = Progress {
        total: size,
        enabled: !stdin && io::stderr().is_terminal(),
        rows: 0,
    };
    let mut malformed = Malformed::default();
    let mut written = 0u64;
    let mut history_rows = 0usize;
    for row in input {
        progress.tick(|total| Some(bytes_read.get() as f64 / total as f64));
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                malformed.report(&progress, args.strict, e.line, &e.reason)?;
                continue;
            }
        };
        let key = row.key.clone().unwrap_or_default();
        if !detectors.contains_key(&key) {
            if detectors.len() >= args.max_keys {
                let reason = format!(
                    "key `{}` would be key number {} (--max-keys {})",
                    input::shown(&key),
                    args.max_keys + 1,
                    args.max_keys
                );
                malformed.report(&progress, args.strict, row.line, &reason)?;
                continue;
            }
            detectors.insert(
                key.clone(),
                Keyed {
                    detector: template.clone(),
                    history: Vec::new(),
                    rows: 0,
                },
            );
        }
        let k = detectors.get_mut(&key).expect("inserted");
        if k.rows < args.bootstrap {
            k.history.extend_from_slice(&row.values);
            k.rows += 1;
            history_rows += 1;
            if k.rows == args.bootstrap {
                k.detector
                    .bootstrap(&k.history)
                    .map_err(|e| e.to_string())?;
                k.history = Vec::new();
            }
            continue;
        }
        match k.detector.process(&row.values) {
            Ok(v) => {
                if !args.anomalies_only || v.is_anomaly {
                    out.write(&row, &v).map_err(output_error)?;
                    written += 1;
                }
            }
            Err(e) => malformed.report(&progress, args.strict, row.line, &e.to_string())?,
        }
    }
    let short: Vec<&String> = detectors
        .iter()
        .filter(|(_, k)| k.rows > 0 && k.rows < args.bootstrap)
        .map(|(key, _)| key)
        .collect();
    if !short.is_empty() {
        // fewer rows than the bootstrap asked for: learn from them anyway, and say so
        for key in &short {
            let k = &detectors[*key];
            let mut d = k.detector.clone();
            d.bootstrap(&k.history).map_err(|e| e.to_string())?;
        }
        progress.clear();
        eprintln!(
            "rcf: warning: --bootstrap {} asked for more rows than the input has{}: \
             every row was used as history and no verdict was written{}",
            args.bootstrap,
            if args.key.is_some() {
                format!(" for {} of {} keys", short.len(), detectors.len())
            } else {
                format!(" ({history_rows})")
            },
            if args.key.is_some() { " for them" } else { "" }
        );
    }
    out.flush().map_err(output_error)?;
    progress.clear();
    if let Some(summary) = malformed.summary() {
        eprintln!("rcf: {summary}");
    }
    eprintln!(
        "rcf: {} rows read, {} malformed and skipped, {} verdicts written{}{}",
        progress.rows,
        malformed.total,
        written,
        if args.key.is_some() {
            format!(", {} keys", detectors.len())
        } else {
            String::new()
        },
        if args.bootstrap > 0 {
            format!(", first {} rows used as history", history_rows)
        } else {
            String::new()
        }
    );
    Ok(malformed.total)
}

/// One key's detector and its bootstrap history.
struct Keyed {
    detector: Detector,
    history: Vec<f32>,
    rows: usize,
}

/// Decides CSV or JSON Lines from the first non-blank byte of standard input.
fn sniff(mut reader: Box<dyn Read>) -> Result<(Format, Box<dyn Read>), String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                head.push(byte[0]);
                let in_bom = head.len() <= 3 && [0xEF, 0xBB, 0xBF].starts_with(&head);
                if !byte[0].is_ascii_whitespace() && !in_bom {
                    break;
                }
            }
            Err(e) => return Err(format!("cannot read input: {e}")),
        }
    }
    // a UTF-8 byte order mark before the first `{` still means JSON Lines
    let start = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        3
    } else {
        0
    };
    let format = if head
        .get(start..)
        .and_then(|h| h.iter().find(|b| !b.is_ascii_whitespace()))
        == Some(&b'{')
    {
        Format::Jsonl
    } else {
        Format::Csv
    };
    Ok((format, Box::new(io::Cursor::new(head).chain(reader))))
}

/// Counts the bytes read through it (for the progress percentage).
struct CountingReader {
    inner: Box<dyn Read>,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl CountingReader {
    fn new(inner: Box<dyn Read>) -> Self {
        Self {
            inner,
            count: std::rc::Rc::new(std::cell::Cell::new(0)),
        }
    }
    fn counter(&self) -> std::rc::Rc<std::cell::Cell<u64>> {
        self.count.clone()
    }
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Verdict output: CSV or JSON Lines.
enum Writer<W: Write> {
    Csv(Box<csv::Writer<W>>, bool, Vec<String>),
    Jsonl(W, &'static str, Option<String>, Vec<String>),
}

/// The verdict columns after the first (`timestamp`, or `line` when the input has none).
const COLUMNS: [&str; 11] = [
    "score",
    "grade",
    "anomaly",
    "in_event",
    "confidence",
    "threshold",
    "top_metric",
    "direction",
    "expected",
    "relative_index",
    "suppressed",
];

impl<W: Write> Writer<W> {
    /// `stamp` names the first column (`timestamp`, or `line` for inputs without one);
    /// `echo` lists the metrics whose input values follow the verdict (none without `--echo`).
    /// `key` names the key column written after it (`--key`).
    fn new(
        format: OutputFormat,
        w: W,
        stamp: &'static str,
        key: Option<&str>,
        echo: &[String],
    ) -> io::Result<Self> {
        Ok(match format {
            OutputFormat::Csv => {
                let mut csv = csv::Writer::from_writer(w);
                let header = std::iter::once(stamp)
                    .chain(key)
                    .chain(COLUMNS)
                    .chain(echo.iter().map(String::as_str));
                csv.write_record(header).map_err(into_io)?;
                Writer::Csv(Box::new(csv), key.is_some(), echo.to_vec())
            }
            OutputFormat::Jsonl => Writer::Jsonl(w, stamp, key.map(str::to_string), echo.to_vec()),
        })
    }

    fn write(&mut self, row: &Row, v: &Verdict) -> io::Result<()> {
        let top = v.top_metric();
        let expected = top
            .and_then(|t| v.expected.iter().find(|e| e.metric == t.metric))
            .map(|e| e.expected);
        let suppressed = v.suppressed.map(|s| s.as_str().to_string());
        let timestamp = row
            .timestamp
            .clone()
            .unwrap_or_else(|| row.line.to_string());
        let value = |v: f32| {
            if v.is_nan() {
                String::new()
            } else {
                v.to_string()
            }
        };
        match self {
            Writer::Csv(csv, keyed, echo) => csv
                .write_record(
                    std::iter::once(timestamp)
                        .chain(keyed.then(|| row.key.clone().unwrap_or_default()))
                        .chain([
                            format!("{:.6}", v.score),
                            format!("{:.4}", v.grade),
                            v.is_anomaly.to_string(),
                            v.in_event.to_string(),
                            format!("{:.4}", v.confidence),
                            format!("{:.6}", v.threshold),
                            top.map_or(String::new(), |t| t.metric.to_string()),
                            top.map_or(String::new(), |t| t.direction().to_string()),
                            expected.map_or(String::new(), |e| format!("{e:.6}")),
                            v.relative_index.to_string(),
                            suppressed.unwrap_or_default(),
                        ])
                        .chain(row.values.iter().take(echo.len()).map(|&x| value(x))),
                )
                .map_err(into_io),
            Writer::Jsonl(w, stamp, key, echo) => {
                let mut object = serde_json::json!({
                    *stamp: timestamp,
                    "score": v.score,
                    "grade": v.grade,
                    "anomaly": v.is_anomaly,
                    "in_event": v.in_event,
                    "confidence": v.confidence,
                    "threshold": v.threshold,
                    "top_metric": top.map(|t| t.metric.to_string()),
                    "direction": top.map(|t| t.direction()),
                    "expected": expected,
                    "relative_index": v.relative_index,
                    "suppressed": suppressed,
                    "attribution": v.attribution.iter().map(|a| serde_json::json!({
                        "metric": &*a.metric, "high": a.high, "low": a.low,
                    })).collect::<Vec<_>>(),
                });
                if let Some(k) = key {
                    object[k.as_str()] = serde_json::json!(row.key);
                }
                if !echo.is_empty() {
                    let inputs: serde_json::Map<String, serde_json::Value> = echo
                        .iter()
                        .zip(&row.values)
                        .map(|(m, &x)| {
                            (
                                m.clone(),
                                serde_json::json!(if x.is_nan() { None } else { Some(x) }),
                            )
                        })
                        .collect();
                    object["values"] = serde_json::Value::Object(inputs);
                }
                writeln!(w, "{object}")
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Writer::Csv(csv, ..) => csv.flush(),
            Writer::Jsonl(w, ..) => w.flush(),
        }
    }
}

/// A CSV writer error as the I/O error inside it, if it is one (so a closed pipe stays a
/// broken pipe).
fn into_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}
