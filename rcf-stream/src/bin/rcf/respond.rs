//! The response commands of `rcf fleet`: verification labels and feedback, quarantine and
//! release, mitigation tasks, incidents; and the sink and executor flags they share with the
//! ingesting commands.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rcf_stream::fleet::{
    CommandExecutor, Engine, EngineConfig, Feedback, VerificationState, WebhookExecutor,
};
use serde_json::{Value, json};

use crate::{Failure, output_error};

/// Where alerts go and who runs mitigation actions (shared by `rcf fleet`, `serve` and
/// `mitigate`).
#[derive(Args, Default)]
pub(crate) struct ResponseArgs {
    /// Deliver violation events to a sink (repeatable): `webhook=http://HOST:PORT/PATH`,
    /// `jsonl=PATH`, `mqtt=mqtt://HOST:PORT/TOPIC`, with options after commas (`batch=N`,
    /// `rate=N` per minute, `timeout=S`, `retry=S`, `incidents`). Delivery is at least once
    /// from the store's outbox: what a sink does not acknowledge is sent at the next run.
    #[arg(long = "sink", value_name = "SPEC")]
    pub(crate) sinks: Vec<String>,
    /// Run the mitigation actions rcf does not run itself (policy, certificates, logging) by
    /// POSTing `{"actionName", "actionType", "actionParams", "violation"}` to this URL.
    #[arg(long, value_name = "URL", conflicts_with = "executor_command")]
    pub(crate) executor_webhook: Option<String>,
    /// ... or by running this shell command with that JSON on its standard input (exit
    /// status 0 is success).
    #[arg(long, value_name = "COMMAND")]
    pub(crate) executor_command: Option<String>,
}

impl ResponseArgs {
    /// Adds the sinks and the executor to an engine.
    pub(crate) fn apply(&self, engine: &mut Engine) -> Result<(), Failure> {
        for s in &self.sinks {
            engine
                .add_sink_spec(s)
                .map_err(|e| format!("--sink {s}: {e}"))?;
        }
        if let Some(url) = &self.executor_webhook {
            if !url.starts_with("http://") {
                return Err(format!("--executor-webhook {url}: must start with http://").into());
            }
            engine.set_executor(Box::new(WebhookExecutor::new(url, Duration::from_secs(10))));
        }
        if let Some(cmd) = &self.executor_command {
            engine.set_executor(Box::new(CommandExecutor::new(
                "sh",
                &["-c".to_string(), cmd.clone()],
                Duration::from_secs(60),
            )));
        }
        Ok(())
    }
}

/// Delivers what is owed after a commit; says on stderr when something is left undelivered.
pub(crate) fn respond(engine: &mut Engine, quiet_if_done: bool) -> Result<(), Failure> {
    let r = engine.respond_now().map_err(|e| e.to_string())?;
    if r.failed > 0 || (!quiet_if_done && r.pending > 0) {
        let status = engine.sink_status().map_err(|e| e.to_string())?;
        for s in status
            .iter()
            .filter(|s| s["pending"].as_u64().unwrap_or(0) > 0)
        {
            eprintln!(
                "rcf: sink {}: {} alert(s) not yet delivered{}; they stay in the store's outbox and go out at the next run",
                s["sink"].as_str().unwrap_or(""),
                s["pending"],
                s["lastError"]
                    .as_str()
                    .map_or(String::new(), |e| format!(" ({e})"))
            );
        }
    }
    Ok(())
}

fn open(store: &Path) -> Result<Engine, Failure> {
    if !store.exists() {
        return Err(format!("no store at {}", store.display()).into());
    }
    Ok(Engine::open(EngineConfig::default(), Some(store)).map_err(|e| e.to_string())?)
}

fn print(rows: &[Value]) -> Result<(), Failure> {
    let mut out = BufWriter::new(io::stdout().lock());
    for r in rows {
        writeln!(out, "{r}").map_err(output_error)?;
    }
    out.flush().map_err(output_error)
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// The violation.
    violation_id: String,
    /// TRUE_POSITIVE, BENIGN_POSITIVE, FALSE_POSITIVE or UNKNOWN.
    #[arg(long)]
    state: String,
    /// Why (verificationStateDescription).
    #[arg(long)]
    description: Option<String>,
    /// What the label does: `label-only` (Device Defender's behaviour), `learn` (similar
    /// deviations of the thing stop alarming; `learn:group=G` for a thing group),
    /// `mute:until=TIME[:group=G]` (no alerts until then; events still stored), or
    /// `exclude-from-training` (the violation's span stays out of the thing's model).
    #[arg(long, default_value = "label-only")]
    feedback: String,
    /// Who labels (recorded with the adjustment).
    #[arg(long, default_value = "cli")]
    actor: String,
}

pub(crate) fn verify(a: &VerifyArgs) -> Result<(), Failure> {
    let mut e = open(&a.store)?;
    let state = VerificationState::parse(&a.state).map_err(|e| e.to_string())?;
    let feedback = Feedback::parse(&a.feedback).map_err(|e| e.to_string())?;
    let rec = e
        .put_verification_state(
            &a.violation_id,
            state,
            a.description.as_deref(),
            &feedback,
            &a.actor,
        )
        .map_err(|e| e.to_string())?;
    e.commit_response().map_err(|e| e.to_string())?;
    print(&[rec])
}

#[derive(Args)]
pub(crate) struct StoreArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
}

pub(crate) fn adjustments(a: &StoreArgs) -> Result<(), Failure> {
    let rows = open(&a.store)?.adjustments().map_err(|e| e.to_string())?;
    print(&rows)?;
    eprintln!("rcf: {} adjustment records", rows.len());
    Ok(())
}

pub(crate) fn incidents(a: &StoreArgs) -> Result<(), Failure> {
    let rows = open(&a.store)?.incidents().map_err(|e| e.to_string())?;
    print(&rows)?;
    eprintln!("rcf: {} incidents", rows.len());
    Ok(())
}

#[derive(Args)]
pub(crate) struct RevertArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// The adjustment to revert.
    adjustment_id: i64,
    /// Who reverts.
    #[arg(long, default_value = "cli")]
    actor: String,
}

pub(crate) fn revert(a: &RevertArgs) -> Result<(), Failure> {
    let mut e = open(&a.store)?;
    let rec = e
        .revert_adjustment(a.adjustment_id, &a.actor)
        .map_err(|e| e.to_string())?;
    e.commit_response().map_err(|e| e.to_string())?;
    print(&[rec])
}

#[derive(Args)]
pub(crate) struct QuarantineArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// The thing.
    thing: String,
    /// The quarantine thing group.
    #[arg(long, default_value = "quarantine")]
    group: String,
}

pub(crate) fn quarantine(a: &QuarantineArgs, release: bool) -> Result<(), Failure> {
    let mut e = open(&a.store)?;
    if release {
        let events = e.release(&a.thing, &a.group).map_err(|e| e.to_string())?;
        e.commit_response().map_err(|e| e.to_string())?;
        print(&events.iter().map(|ev| ev.to_json()).collect::<Vec<_>>())?;
        eprintln!("rcf: {} released from {}", a.thing, a.group);
    } else {
        e.quarantine(&a.thing, &a.group)
            .map_err(|e| e.to_string())?;
        e.commit_response().map_err(|e| e.to_string())?;
        eprintln!(
            "rcf: {} is in thing group {} ({} things there)",
            a.thing,
            a.group,
            e.group(&a.group).len()
        );
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct MitigateArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// The task id (default: one made from the time).
    #[arg(long)]
    task_id: Option<String>,
    /// A target violation (repeatable, 1 to 25).
    #[arg(long = "violation-id", value_name = "ID")]
    violation_ids: Vec<String>,
    /// Or: every violation of this profile ...
    #[arg(long, conflicts_with = "violation_ids")]
    profile: Option<String>,
    /// ... and behaviour.
    #[arg(long, requires = "profile")]
    behavior: Option<String>,
    /// An action to run, in order (repeatable, 1 to 5; the names of the configuration's
    /// mitigationActions).
    #[arg(long = "action", value_name = "NAME", required = true)]
    actions: Vec<String>,
    /// Only violations still active.
    #[arg(long)]
    only_active: bool,
    /// Violations of behaviours with suppressAlerts too.
    #[arg(long)]
    include_suppressed: bool,
    /// Idempotency token: a repeated command with the same token returns the first task.
    #[arg(long)]
    token: Option<String>,
    #[command(flatten)]
    response: ResponseArgs,
}

pub(crate) fn mitigate(a: &MitigateArgs) -> Result<(), Failure> {
    let mut e = open(&a.store)?;
    a.response.apply(&mut e)?;
    let task_id = a.task_id.clone().unwrap_or_else(|| {
        format!(
            "cli-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        )
    });
    let mut target = json!({});
    if let Some(p) = &a.profile {
        target["securityProfileName"] = json!(p);
        if let Some(b) = &a.behavior {
            target["behaviorName"] = json!(b);
        }
    } else {
        target["violationIds"] = json!(a.violation_ids);
    }
    let mut req = json!({"taskId": task_id, "target": target, "actions": a.actions,
        "includeOnlyActiveViolations": a.only_active,
        "includeSuppressedAlerts": a.include_suppressed});
    if let Some(t) = &a.token {
        req["clientRequestToken"] = json!(t);
    }
    let task = e.start_mitigation_task(&req).map_err(|e| e.to_string())?;
    e.commit_response().map_err(|e| e.to_string())?;
    respond(&mut e, true)?;
    let id = task["taskId"].as_str().unwrap_or_default().to_string();
    let done = e.describe_mitigation_task(&id).map_err(|e| e.to_string())?;
    print(std::slice::from_ref(&done))?;
    eprintln!(
        "rcf: task {id}: {} ({} executed, {} skipped, {} failed)",
        done["taskStatus"].as_str().unwrap_or(""),
        done["taskStatistics"]["actionsExecuted"],
        done["taskStatistics"]["actionsSkipped"],
        done["taskStatistics"]["actionsFailed"]
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct TasksArgs {
    /// The store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// Only this task.
    #[arg(long)]
    task_id: Option<String>,
    /// Cancel it (actions not yet run are skipped; nothing is rolled back).
    #[arg(long, requires = "task_id")]
    cancel: bool,
}

pub(crate) fn tasks(a: &TasksArgs) -> Result<(), Failure> {
    let mut e = open(&a.store)?;
    let rows = match (&a.task_id, a.cancel) {
        (Some(id), true) => vec![e.cancel_mitigation_task(id).map_err(|e| e.to_string())?],
        (Some(id), false) => vec![e.describe_mitigation_task(id).map_err(|e| e.to_string())?],
        (None, _) => e.list_mitigation_tasks().map_err(|e| e.to_string())?,
    };
    print(&rows)
}
