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
mod input;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rcf_stream::{Detector, Sensitivity, Verdict};

use input::{Format, Row};

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
    /// Input file, or `-` for standard input. Omit to run the built-in demo.
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
}

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
        .build()
        .map_err(|e| e.to_string())?;
    Ok(parsed)
}

fn parse_repeat_tolerance(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    // the same check as the library, reported as a usage error
    Detector::builder(["x"])
        .repeat_tolerance(v)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(v)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(args) => match &args.file {
            None => demo::run(&args).map(|()| 0),
            Some(file) => detect(&args, file),
        },
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rcf: {message}");
            ExitCode::from(1)
        }
    }
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
struct Progress {
    total: Option<u64>,
    enabled: bool,
    rows: u64,
}

impl Progress {
    fn tick(&mut self, read_fraction: impl FnOnce(u64) -> Option<f64>) {
        self.rows += 1;
        if self.enabled && self.rows.is_multiple_of(1_000) {
            let pct = self
                .total
                .and_then(read_fraction)
                .map_or(String::new(), |f| format!("{:>3.0}% ", f * 100.0));
            eprint!("\r{pct}{} rows", self.rows);
        }
    }

    fn finish(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Runs the detector over a file or standard input; returns the number of malformed rows.
fn detect(args: &DetectArgs, file: &PathBuf) -> Result<u64, String> {
    let stdin = file.as_os_str() == "-";
    let (reader, size): (Box<dyn Read>, Option<u64>) = if stdin {
        (Box::new(io::stdin()), None)
    } else {
        let f = File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
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
    let input = input::open(reader, format, args.timestamp.as_deref())?;
    let metrics = input.metrics.clone();
    let mut detector = build_detector(args, &metrics)?;
    let stdout = io::stdout();
    let mut out = Writer::new(args.output_format, BufWriter::new(stdout.lock()), &metrics)
        .map_err(|e| format!("cannot write output: {e}"))?;
    let mut progress = Progress {
        total: size,
        enabled: !stdin && io::stderr().is_terminal(),
        rows: 0,
    };
    let mut malformed = 0u64;
    let mut history: Vec<f32> = Vec::new();
    let mut history_rows = 0usize;
    let mut written = 0u64;
    for row in input {
        progress.tick(|total| Some(bytes_read.get() as f64 / total as f64));
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                malformed += 1;
                report(e.line, &e.reason);
                if args.strict {
                    return Err(format!("line {}: malformed row (--strict)", e.line));
                }
                continue;
            }
        };
        if history_rows < args.bootstrap {
            history.extend_from_slice(&row.values);
            history_rows += 1;
            if history_rows == args.bootstrap {
                detector.bootstrap(&history).map_err(|e| e.to_string())?;
                history = Vec::new();
            }
            continue;
        }
        match detector.process(&row.values) {
            Ok(v) => {
                if !args.anomalies_only || v.is_anomaly {
                    out.write(&row, &v)
                        .map_err(|e| format!("cannot write output: {e}"))?;
                    written += 1;
                }
            }
            Err(e) => {
                malformed += 1;
                report(row.line, &e.to_string());
                if args.strict {
                    return Err(format!("line {}: malformed row (--strict)", row.line));
                }
            }
        }
    }
    if history_rows > 0 && history_rows < args.bootstrap {
        // fewer rows than the bootstrap asked for: learn from them anyway
        detector.bootstrap(&history).map_err(|e| e.to_string())?;
    }
    out.flush()
        .map_err(|e| format!("cannot write output: {e}"))?;
    progress.finish();
    eprintln!(
        "rcf: {} rows read, {} malformed and skipped, {} verdicts written{}",
        progress.rows,
        malformed,
        written,
        if args.bootstrap > 0 {
            format!(", first {} rows used as history", history_rows)
        } else {
            String::new()
        }
    );
    Ok(malformed)
}

fn report(line: u64, reason: &str) {
    eprintln!("rcf: line {line}: {reason} (row skipped)");
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
                if !byte[0].is_ascii_whitespace() {
                    break;
                }
            }
            Err(e) => return Err(format!("cannot read input: {e}")),
        }
    }
    let format = if head.last() == Some(&b'{') {
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
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

const COLUMNS: [&str; 12] = [
    "timestamp",
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
    fn new(format: OutputFormat, w: W, _metrics: &[String]) -> io::Result<Self> {
        Ok(match format {
            OutputFormat::Csv => {
                let mut csv = csv::Writer::from_writer(w);
                csv.write_record(COLUMNS)?;
                Writer::Csv(Box::new(csv))
            }
            OutputFormat::Jsonl => Writer::Jsonl(w),
        })
    }

    fn write(&mut self, row: &Row, v: &Verdict) -> io::Result<()> {
        let top = v.top_metric();
        let expected = top
            .and_then(|t| v.expected.iter().find(|e| e.metric == t.metric))
            .map(|e| e.expected);
        let suppressed = v.suppressed.map(|s| format!("{s:?}"));
        let timestamp = row
            .timestamp
            .clone()
            .unwrap_or_else(|| row.line.to_string());
        match self {
            Writer::Csv(csv) => csv
                .write_record([
                    timestamp,
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
                .map_err(io::Error::other),
            Writer::Jsonl(w) => {
                let object = serde_json::json!({
                    "timestamp": timestamp,
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
                writeln!(w, "{object}")
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Writer::Csv(csv) => csv.flush(),
            Writer::Jsonl(w) => w.flush(),
        }
    }
}
