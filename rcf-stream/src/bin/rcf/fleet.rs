//! `rcf fleet`: Device Defender-style detection for a fleet, from JSON Lines datapoints, with
//! violation events on stdout and a SQLite store; `rcf fleet violations|metrics` query it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use rcf_stream::fleet::{Engine, EngineConfig, Filter, ViolationEvent, datapoint, time};

use crate::{Failure, Malformed, Progress, output_error};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct FleetArgs {
    #[command(subcommand)]
    action: Option<FleetAction>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum FleetAction {
    /// Violation events from the store (Device Defender's ListViolationEvents), or with
    /// `--active` the active violations (ListActiveViolations), as JSON Lines.
    Violations(ViolationArgs),
    /// A thing's stored metric values (Device Defender's ListMetricValues), as JSON Lines.
    Metrics(MetricArgs),
    /// The ML behaviours' model training summaries (Device Defender's
    /// GetBehaviorModelTrainingSummaries: PENDING_BUILD, ACTIVE or EXPIRED, the share of
    /// datapoints collected, plus rcf's scope and per-thing warm-up), as JSON Lines.
    Models(ModelArgs),
    /// Live ingestion from an MQTT broker: Device Defender's report topics and a telemetry
    /// topic, replies on /accepted and /rejected, alerts to sinks; stops cleanly on SIGTERM.
    Serve(crate::serve::ServeArgs),
    /// Label a violation (PutVerificationStateOnViolation), with optional feedback: learn,
    /// mute, exclude-from-training. Prints the adjustment record.
    Verify(crate::respond::VerifyArgs),
    /// Every adjustment record (labels and the feedback they caused), as JSON Lines.
    Adjustments(crate::respond::StoreArgs),
    /// Revert an adjustment's feedback (appends a revert record).
    Revert(crate::respond::RevertArgs),
    /// Move a thing into the quarantine thing group.
    Quarantine(crate::respond::QuarantineArgs),
    /// Take a thing out of the quarantine thing group.
    Release(crate::respond::QuarantineArgs),
    /// Run mitigation actions on violations (StartDetectMitigationActionsTask) and print the
    /// task's outcome.
    Mitigate(crate::respond::MitigateArgs),
    /// Mitigation tasks (or one, or cancel one), as JSON Lines.
    Tasks(crate::respond::TasksArgs),
    /// Incidents: violations that started together, grouped, as JSON Lines.
    Incidents(crate::respond::StoreArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// Only this security profile.
    #[arg(long)]
    profile: Option<String>,
    /// Each thing's model state too (`rcf.perThing`).
    #[arg(long)]
    per_thing: bool,
    /// Keep at most this much of the models in memory while reading the store (e.g. 512MiB).
    #[arg(long, value_name = "SIZE", value_parser = memory_size)]
    memory_budget: Option<u64>,
}

/// A `--model-checkpoint-hours` value: 0 to a year.
fn checkpoint_hours(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|h| (0.0..=366.0 * 24.0).contains(h))
        .ok_or_else(|| format!("must be a number of hours from 0 to 8784, got {s:?}"))
}

/// A `--memory-budget` value.
fn memory_size(s: &str) -> Result<u64, String> {
    rcf_stream::fleet::parse_memory_size(s)
}

#[derive(Args)]
struct RunArgs {
    /// JSON Lines datapoints, or `-` for standard input. Omitted: standard input when it is a
    /// pipe or a file, else the built-in demo.
    file: Option<PathBuf>,
    /// The fleet configuration: a CreateSecurityProfile JSON, or a bundle with
    /// securityProfiles, dimensions, customMetrics, thingGroups and targets. Omitted: the
    /// configuration saved in the store.
    #[arg(long, value_name = "PROFILE.json")]
    profile: Option<PathBuf>,
    /// The SQLite store (created if missing); a run on the same store and the same input
    /// continues where the last committed batch ended. Omitted: in memory.
    #[arg(long, value_name = "FILE.db")]
    store: Option<PathBuf>,
    /// Device Defender's validation exactly (windows of 300 to 3600 s; no extensions).
    #[arg(long)]
    strict_profile: bool,
    /// Stop at the first malformed line instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Seconds the watermark trails the latest timestamp: data this late still counts.
    #[arg(long, default_value_t = 60)]
    grace: u64,
    /// Hours of silence after which a thing's alarms are invalidated.
    #[arg(long, default_value_t = 48)]
    invalidate_after: u64,
    /// Days of metric history and events kept in the store.
    #[arg(long, default_value_t = 14)]
    retention: u64,
    /// Close every open window at the end of the input (default: without --store, since the
    /// run is then all there is; with a store the last windows wait for the next input).
    #[arg(long, overrides_with = "no_flush")]
    flush: bool,
    /// Leave the last windows open at the end of the input.
    #[arg(long)]
    no_flush: bool,
    /// Input lines per store transaction.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    commit_every: u64,
    /// Process the input from its first line even if the store has a cursor for it.
    #[arg(long)]
    from_start: bool,
    /// Demo: write its profile (profile.json) and datapoints (datapoints.jsonl) into DIR
    /// instead of running it.
    #[arg(long, value_name = "DIR")]
    write_demo: Option<PathBuf>,
    /// Demo: things in the simulated fleet.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(60..=5_000))]
    demo_things: u64,
    /// Demo: days simulated.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(4..=30))]
    demo_days: u64,
    /// Seed of the ML models (and of the demo fleet).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep the ML models in memory within this size (bytes, or e.g. 512MiB, 2GiB); the rest
    /// are checkpointed to the store and restored at their next datapoint, with the same
    /// verdicts. Default: no limit.
    #[arg(long, value_name = "SIZE", value_parser = memory_size)]
    memory_budget: Option<u64>,
    /// With --store: a commit writes an ML model in full every this many hours of window
    /// time, and in between only the rows it learned (replayed onto the checkpoint when the
    /// store is opened again; the same model either way). 0: every commit, in full.
    #[arg(long, value_name = "HOURS", default_value_t = 24.0, value_parser = checkpoint_hours)]
    model_checkpoint_hours: f64,
    /// Trees of each ML model whose behaviour sets none (default: the fleet model's 10).
    #[arg(long)]
    num_trees: Option<usize>,
    /// Samples per tree of each ML model whose behaviour sets none (default 256).
    #[arg(long)]
    sample_size: Option<usize>,
    /// Datapoints per shingle of each ML model whose behaviour sets none (default 8).
    #[arg(long)]
    shingle_size: Option<usize>,
    #[command(flatten)]
    response: crate::respond::ResponseArgs,
}

#[derive(Args)]
struct ViolationArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// Active violations instead of the event history.
    #[arg(long)]
    active: bool,
    /// Only this thing.
    #[arg(long)]
    thing: Option<String>,
    /// Only this security profile.
    #[arg(long)]
    profile: Option<String>,
    /// Only STATIC, STATISTICAL or MACHINE_LEARNING behaviours.
    #[arg(long)]
    criteria_type: Option<String>,
    /// Leave out behaviours with suppressAlerts.
    #[arg(long)]
    no_suppressed: bool,
    /// From this time (epoch seconds or RFC 3339; default: the beginning).
    #[arg(long)]
    start: Option<String>,
    /// Until this time, exclusive (default: the end).
    #[arg(long)]
    end: Option<String>,
}

#[derive(Args)]
struct MetricArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// The thing.
    #[arg(long)]
    thing: String,
    /// The metric.
    #[arg(long)]
    metric: String,
    /// Only values whose topic matches this dimension.
    #[arg(long)]
    dimension: Option<String>,
    /// With --dimension: values whose topic does not match it.
    #[arg(long)]
    not_in: bool,
    /// From this time (epoch seconds or RFC 3339).
    #[arg(long)]
    start: Option<String>,
    /// Until this time, exclusive.
    #[arg(long)]
    end: Option<String>,
}

pub(crate) fn main(args: FleetArgs) -> Result<(), Failure> {
    match args.action {
        Some(FleetAction::Violations(v)) => violations(&v),
        Some(FleetAction::Metrics(m)) => metrics(&m),
        Some(FleetAction::Models(m)) => models(&m),
        Some(FleetAction::Serve(a)) => crate::serve::serve(&a),
        Some(FleetAction::Verify(a)) => crate::respond::verify(&a),
        Some(FleetAction::Adjustments(a)) => crate::respond::adjustments(&a),
        Some(FleetAction::Revert(a)) => crate::respond::revert(&a),
        Some(FleetAction::Quarantine(a)) => crate::respond::quarantine(&a, false),
        Some(FleetAction::Release(a)) => crate::respond::quarantine(&a, true),
        Some(FleetAction::Mitigate(a)) => crate::respond::mitigate(&a),
        Some(FleetAction::Tasks(a)) => crate::respond::tasks(&a),
        Some(FleetAction::Incidents(a)) => crate::respond::incidents(&a),
        None => {
            let run = args.run;
            if let Some(dir) = &run.write_demo {
                return write_demo(&run, dir);
            }
            match &run.file {
                None if crate::stdin_has_data() => ingest(&run, &PathBuf::from("-")),
                None if run.profile.is_none() && run.store.is_none() => crate::fleet_demo::run(&run_config(&run)?, run.demo_things as usize, run.demo_days as usize, run.seed, &run.response),
                None => Err("no input: give a JSON Lines file, `-`, or pipe datapoints in (without --profile and --store, `rcf fleet` runs its demo)".to_string().into()),
                Some(f) => ingest(&run, f),
            }
        }
    }
}

fn run_config(run: &RunArgs) -> Result<EngineConfig, Failure> {
    let mut c = EngineConfig::default();
    c.grace_ms = run.grace as i64 * 1000;
    c.invalidate_after_ms = run.invalidate_after as i64 * 3_600_000;
    c.retention_ms = run.retention as i64 * 86_400_000;
    c.strict = run.strict_profile;
    c.seed = run.seed;
    c.memory_budget = run.memory_budget;
    c.model_checkpoint_ms = (run.model_checkpoint_hours * 3_600_000.0).round() as i64;
    if let Some(n) = run.num_trees {
        c.model.num_trees = n;
    }
    if let Some(n) = run.sample_size {
        c.model.sample_size = n;
    }
    if let Some(n) = run.shingle_size {
        c.model.shingle_size = n;
    }
    Ok(c)
}

fn open_engine(run: &RunArgs) -> Result<Engine, Failure> {
    let mut engine =
        Engine::open(run_config(run)?, run.store.as_deref()).map_err(|e| e.to_string())?;
    match &run.profile {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
            let events = engine
                .configure(&v)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            if !events.is_empty() {
                eprintln!(
                    "rcf: the new configuration invalidated {} alarm(s)",
                    events.len()
                );
                let mut out = io::stdout().lock();
                for ev in &events {
                    writeln!(out, "{}", ev.to_json()).map_err(output_error)?;
                }
            }
        }
        None if engine.profiles().is_empty() => {
            return Err("no --profile given and the store holds no configuration"
                .to_string()
                .into());
        }
        None => {}
    }
    run.response.apply(&mut engine)?;
    Ok(engine)
}

/// 64-bit FNV-1a, to recognise an input seen before.
fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn ingest(run: &RunArgs, file: &PathBuf) -> Result<(), Failure> {
    let mut engine = open_engine(run)?;
    let (reader, size, stdin) = crate::open_input(file)?;
    let mut lines = BufReader::new(reader).split(b'\n');
    let mut progress = Progress {
        total: size,
        enabled: !stdin && io::stderr().is_terminal(),
        rows: 0,
    };
    let mut malformed = Malformed::default();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut hash = FNV_START;
    let mut line_no = 0u64;
    // resume: the store's cursor says how many lines of which input it committed
    let mut replay: Vec<Vec<u8>> = Vec::new();
    if let (Some(cursor), false) = (engine.cursor().map(str::to_string), run.from_start)
        && let Some((n, h)) = cursor
            .split_once(':')
            .and_then(|(n, h)| Some((n.parse::<u64>().ok()?, u64::from_str_radix(h, 16).ok()?)))
    {
        let mut prefix = FNV_START;
        while (replay.len() as u64) < n {
            match lines.next() {
                Some(Ok(l)) => {
                    prefix = fnv(prefix, &l);
                    prefix = fnv(prefix, b"\n");
                    replay.push(l);
                }
                Some(Err(e)) => return Err(format!("cannot read input: {e}").into()),
                None => break,
            }
        }
        if replay.len() as u64 == n && prefix == h {
            eprintln!(
                "rcf: resuming after line {n}: an earlier run on this store committed the lines before it"
            );
            replay.clear();
            line_no = n;
            hash = prefix;
        }
    }
    let mut events: Vec<ViolationEvent> = Vec::new();
    let mut late_shown = 0u64;
    let mut replayed = replay.into_iter();
    let started = std::time::Instant::now();
    let mut since_commit = 0u64;
    loop {
        let line = match replayed.next() {
            Some(l) => l,
            None => match lines.next() {
                Some(Ok(l)) => l,
                Some(Err(e)) => return Err(format!("cannot read input: {e}").into()),
                None => break,
            },
        };
        line_no += 1;
        hash = fnv(fnv(hash, &line), b"\n");
        progress.tick(|_| None);
        since_commit += 1;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_start_matches('\u{feff}').trim();
        if !text.is_empty() {
            match datapoint::parse_line(text) {
                Err(reason) => malformed.report(&progress, run.strict, line_no, &reason)?,
                Ok(dps) => {
                    for dp in dps {
                        match engine.ingest_into(&dp, &mut events) {
                            Ok(r) if r.late => {
                                late_shown += 1;
                                if late_shown <= 10 {
                                    progress.clear();
                                    eprintln!(
                                        "rcf: line {line_no}: late: {} at {} arrived after its window closed (watermark {}); stored, not evaluated",
                                        dp.metric,
                                        time::format_rfc3339(dp.timestamp),
                                        engine.watermark().map_or("-".into(), time::format_rfc3339)
                                    );
                                }
                            }
                            Ok(_) => {}
                            Err(rcf_stream::fleet::FleetError::Datapoint(reason)) => {
                                malformed.report(&progress, run.strict, line_no, &reason)?;
                            }
                            Err(e) => return Err(e.to_string().into()),
                        }
                    }
                }
            }
        }
        for ev in events.drain(..) {
            writeln!(out, "{}", ev.to_json()).map_err(output_error)?;
        }
        if since_commit >= run.commit_every {
            // printed before committed: an event is on stdout at least once
            out.flush().map_err(output_error)?;
            engine
                .commit(Some(&format!("{line_no}:{hash:016x}")))
                .map_err(|e| e.to_string())?;
            since_commit = 0;
            crate::respond::respond(&mut engine, true)?;
        }
    }
    let flush = if run.no_flush {
        false
    } else {
        run.flush || run.store.is_none()
    };
    if flush {
        for ev in engine.flush().map_err(|e| e.to_string())? {
            writeln!(out, "{}", ev.to_json()).map_err(output_error)?;
        }
    }
    out.flush().map_err(output_error)?;
    engine
        .commit(Some(&format!("{line_no}:{hash:016x}")))
        .map_err(|e| e.to_string())?;
    progress.clear();
    crate::respond::respond(&mut engine, false)?;
    if let Some(summary) = malformed.summary() {
        eprintln!("rcf: {summary}");
    }
    if late_shown > 10 {
        eprintln!("rcf: {} more late datapoints not shown", late_shown - 10);
    }
    let c = engine.counters();
    let active = engine
        .list_active_violations(&Filter::default())
        .map_err(|e| e.to_string())?
        .len();
    eprintln!(
        "rcf: {} lines, {} malformed and skipped; {} datapoints ({} late, {} of metrics no behaviour uses) from {} things in {:.1} s; events: {} in-alarm, {} alarm-cleared, {} alarm-invalidated; {} active violations{}",
        line_no,
        malformed.total,
        c.datapoints,
        c.late,
        c.unmonitored,
        engine.things(),
        started.elapsed().as_secs_f64(),
        c.in_alarm,
        c.cleared,
        c.invalidated,
        active,
        run.store
            .as_ref()
            .map_or(String::new(), |s| format!("; store {}", s.display()))
    );
    Ok(())
}

fn when(s: &Option<String>, default: i64) -> Result<i64, Failure> {
    match s {
        None => Ok(default),
        Some(s) => {
            let v = match s.parse::<f64>() {
                Ok(x) => serde_json::json!(x),
                Err(_) => serde_json::json!(s),
            };
            time::parse_json(&v).map_err(|e| Failure::Message(format!("`{s}`: {e}")))
        }
    }
}

fn open_existing(path: &std::path::Path) -> Result<Engine, Failure> {
    if !path.exists() {
        return Err(format!("no store at {}", path.display()).into());
    }
    Ok(Engine::open(EngineConfig::default(), Some(path)).map_err(|e| e.to_string())?)
}

fn violations(a: &ViolationArgs) -> Result<(), Failure> {
    let engine = open_existing(&a.store)?;
    let mut f = Filter::default();
    f.thing = a.thing.clone();
    f.profile = a.profile.clone();
    f.criteria_type = a.criteria_type.clone();
    f.list_suppressed_alerts = a.no_suppressed.then_some(false);
    let rows = if a.active {
        engine.list_active_violations(&f)
    } else {
        engine.list_violation_events(when(&a.start, 0)?, when(&a.end, i64::MAX)?, &f)
    }
    .map_err(|e| e.to_string())?;
    let mut out = BufWriter::new(io::stdout().lock());
    for r in &rows {
        writeln!(out, "{r}").map_err(output_error)?;
    }
    out.flush().map_err(output_error)?;
    eprintln!(
        "rcf: {} {}",
        rows.len(),
        if a.active {
            "active violations"
        } else {
            "violation events"
        }
    );
    Ok(())
}

fn metrics(a: &MetricArgs) -> Result<(), Failure> {
    let mut engine = open_existing(&a.store)?;
    let rows = engine
        .list_metric_values(
            &a.thing,
            &a.metric,
            a.dimension.as_deref().map(|d| (d, a.not_in)),
            when(&a.start, 0)?,
            when(&a.end, i64::MAX)?,
        )
        .map_err(|e| e.to_string())?;
    let mut out = BufWriter::new(io::stdout().lock());
    for r in &rows {
        writeln!(out, "{r}").map_err(output_error)?;
    }
    out.flush().map_err(output_error)?;
    eprintln!("rcf: {} values", rows.len());
    Ok(())
}

fn models(a: &ModelArgs) -> Result<(), Failure> {
    if !a.store.exists() {
        return Err(format!("no store at {}", a.store.display()).into());
    }
    let mut c = EngineConfig::default();
    c.memory_budget = a.memory_budget;
    let engine = Engine::open(c, Some(&a.store)).map_err(|e| e.to_string())?;
    let rows = engine
        .model_training_summaries(a.profile.as_deref(), a.per_thing)
        .map_err(|e| e.to_string())?;
    let mut out = BufWriter::new(io::stdout().lock());
    for r in &rows {
        writeln!(out, "{r}").map_err(output_error)?;
    }
    out.flush().map_err(output_error)?;
    eprintln!("rcf: {} ML behaviours", rows.len());
    Ok(())
}

fn write_demo(run: &RunArgs, dir: &PathBuf) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let fleet =
        rcf_datasets::defender::fleet(run.demo_things as usize, run.demo_days as usize, run.seed);
    std::fs::write(
        dir.join("profile.json"),
        rcf_datasets::defender::demo_profile(),
    )
    .map_err(|e| format!("cannot write: {e}"))?;
    let path = dir.join("datapoints.jsonl");
    let mut w = BufWriter::new(
        File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?,
    );
    for r in &fleet.reports {
        writeln!(w, "{}", r.to_json_line()).map_err(|e| format!("cannot write: {e}"))?;
    }
    w.flush().map_err(|e| format!("cannot write: {e}"))?;
    eprintln!(
        "rcf: wrote {} and {} ({} datapoints from {} things over {} days)",
        dir.join("profile.json").display(),
        path.display(),
        fleet.reports.len(),
        fleet.things.len(),
        fleet.days
    );
    Ok(())
}
