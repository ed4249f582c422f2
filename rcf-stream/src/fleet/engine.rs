//! The fleet engine: profiles, windows, rules, ML detectors per thing, alarms, events and the
//! store, driven by datapoints in event time.
//!
//! # Time
//!
//! The clock is the data's: the *watermark* is the latest timestamp seen minus
//! [`EngineConfig::grace_ms`]. A window `[start, start + duration)` closes when the watermark
//! reaches its end; its datapoints are then evaluated together, for every thing at once (so a
//! statistical threshold sees the whole fleet's window). A datapoint that arrives for a window
//! already closed (or, for behaviours evaluated per datapoint, older than the watermark) is
//! *late*: it is stored in the metric history and counted, not evaluated. The same input in the
//! same order gives the same events, with the same ids, every time.
//!
//! # Transactions
//!
//! Everything an engine writes goes into one open store transaction until
//! [`Engine::commit`]; on a file store a commit also saves the engine's state (windows, alarm
//! streaks, detectors) of every thing that changed, and the caller's input cursor. A process
//! killed at any moment restarts on the same store from the last commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map};
use std::path::Path;
use std::sync::Arc;

use rcf_core::state::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::datapoint::Datapoint;
use super::dimension::Dimension;
use super::metric::{Aggregation, MetricCatalog, MetricType};
use super::mitigation::MitigationAction;
use super::models::{ModelSettings, ModelStats, Usage};
use super::profile::{CriteriaKind, MissingData, ProfileError, SecurityProfile, check_thing};
use super::store::{EventRow, Store, StoreError};
use super::time::{self, Millis};
use super::value::{MetricValue, json_kind, quoted};
use super::violation::{EventType, MlExplanation, ViolationEvent, violation_id};
use crate::{CheckpointDigest, Detector, DetectorState, Verdict};

mod respond;
mod shard;
pub use respond::ResponseReport;
pub use shard::{Shard, ShardOutput, ShardVerdict};

/// An hour, in milliseconds.
const HOUR: Millis = 3_600_000;
/// How often (in event time) things are checked for silence.
const SILENCE_CHECK_MS: Millis = 60_000;

/// Models a worker takes at a time when a window's ML behaviours are scored: within a chunk
/// each model is hinted into cache while the one before it is processed.
const PREFETCH_CHUNK: usize = 16;

/// An ML verdict counts once the detector's confidence reaches this (its samples are half
/// full of post-warm-up data, about 11 hours at five-minute datapoints with the default 256
/// samples, or at once after training from history): the first calibrated verdicts of a young
/// model raised most of the demo fleet's false alarms.
pub const ML_MIN_CONFIDENCE: f64 = 0.5;

/// Engine settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How far behind the latest timestamp the watermark runs, in ms (default 60 s): data up
    /// to this late still counts in its window.
    pub grace_ms: Millis,
    /// An alarm of a thing that sends nothing for longer than this is invalidated, and the
    /// thing's windows and models are dropped (default 48 h, Device Defender's figure).
    pub invalidate_after_ms: Millis,
    /// Metric values and violation events older than this (behind the watermark) are deleted
    /// (default 14 days).
    pub retention_ms: Millis,
    /// Datapoints more than this far ahead of the wall clock are rejected (default a day;
    /// `None` accepts any time up to the year 9999).
    pub max_future_ms: Option<Millis>,
    /// Device Defender's validation exactly (windows of 300 to 3600 s only, no extensions that
    /// change semantics); the default accepts rcf's extensions.
    pub strict: bool,
    /// Keep metric history (needed for [`Engine::list_metric_values`] and for training new ML
    /// behaviours from history); default on.
    pub history: bool,
    /// Seed of the ML detectors (each mixes in its thing and behaviour).
    pub seed: u64,
    /// Settings of ML models whose behaviour's `rcf` extension gives none (default: the
    /// compact fleet model).
    pub model: ModelSettings,
    /// Bytes the ML models in memory may hold ([`Detector::memory_usage`], summed); beyond
    /// it models are checkpointed to the store and restored at their next datapoint (see
    /// [`models`](super::models) for which). `None` (the default): no limit. On an in-memory
    /// store the checkpoints stay in the process (in SQLite's memory), so a budget saves
    /// memory only with a file store. A window close may exceed the budget by the models it
    /// is scoring (about an eighth of the budget, at most [`MODEL_CHUNK`]) before it evicts.
    pub memory_budget: Option<u64>,
    /// How often (in window time) a commit to a file store writes a thing's ML model in full
    /// (default 24 h). Between those checkpoints a commit writes only the rows the model
    /// learned since the last commit (a few bytes per window, the store's `model_logs`), and
    /// they are replayed onto the checkpoint when the store is opened again, so the model is
    /// the same either way. A full fleet model is about 72 KB, so at hourly commits this
    /// writes a 24th of the model bytes; the price is the replay when a store is opened (up
    /// to the interval's windows per model: 100,000 models in about 80 s on 2 cores, see
    /// BENCHMARKS.md). `0`: every commit writes every changed model in full. The checkpoints
    /// are staggered over the interval by thing name, so that a fleet's models do not all
    /// fall due at one commit.
    pub model_checkpoint_ms: Millis,
}

/// Window closes under a memory budget score models in chunks of about an eighth of the
/// budget and at most this many, evicting between chunks.
pub const MODEL_CHUNK: usize = 512;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            grace_ms: 60_000,
            invalidate_after_ms: 48 * HOUR,
            retention_ms: 14 * 24 * HOUR,
            max_future_ms: Some(24 * HOUR),
            strict: false,
            history: true,
            seed: 0,
            model: ModelSettings::default(),
            memory_budget: None,
            model_checkpoint_ms: 24 * HOUR,
        }
    }
}

/// Everything that can go wrong in the fleet engine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A profile, dimension or fleet configuration is invalid (the field's JSON path and why).
    #[error("invalid profile: {0}")]
    Profile(#[from] ProfileError),
    /// A datapoint is invalid; nothing of it was applied.
    #[error("invalid datapoint: {0}")]
    Datapoint(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thing's state handed to a [`Shard`] is not one (foreign, of another thing, of an
    /// unknown format version, or corrupt); nothing was applied.
    #[error("invalid thing state: {0}")]
    State(String),
    /// An engine setting or call argument is invalid.
    #[error("invalid `{name}`: {reason}")]
    InvalidParameter {
        /// The setting or argument.
        name: &'static str,
        /// What is wrong, with the value.
        reason: String,
    },
}

/// Whom a profile applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Every thing.
    All,
    /// The things in a thing group.
    Group(String),
}

impl Target {
    fn parse(s: &str) -> Result<Self, String> {
        // an ARN's last part: ...:all/things, ...:thinggroup/NAME
        let tail = s.rsplit(':').next().unwrap_or(s);
        if s == "all"
            || tail == "all/things"
            || tail == "all/registered-things"
            || tail == "all/unregistered-things"
        {
            return Ok(Target::All);
        }
        let name = tail.strip_prefix("thinggroup/").unwrap_or(tail);
        super::profile::check_identifier(name).map_err(|e| format!("thing group {e}"))?;
        Ok(Target::Group(name.to_string()))
    }

    fn to_json(&self) -> Value {
        match self {
            Target::All => json!("all"),
            Target::Group(g) => json!(g),
        }
    }
}

/// Counts since the store was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datapoints accepted.
    pub datapoints: u64,
    /// Of those, late for at least one behaviour (stored, not evaluated there).
    pub late: u64,
    /// Of those, of a metric no behaviour uses.
    pub unmonitored: u64,
    /// Windows closed and evaluated (per thing and behaviour).
    pub windows: u64,
    /// `in-alarm` events.
    pub in_alarm: u64,
    /// `alarm-cleared` events.
    pub cleared: u64,
    /// `alarm-invalidated` events.
    pub invalidated: u64,
}

/// What happened to one accepted datapoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ingested {
    /// It came after its window closed for at least one behaviour (or, for a per-datapoint
    /// behaviour, older than the watermark): stored, not evaluated there.
    pub late: bool,
    /// No behaviour uses its metric (it is stored when the metric is known).
    pub unmonitored: bool,
}

/// One behaviour of one profile, as the engine evaluates it.
#[derive(Debug, Clone)]
struct Slot {
    profile: usize,
    behavior: usize,
    profile_name: Arc<str>,
    behavior_name: Arc<str>,
    fingerprint: String,
    window_ms: Option<Millis>,
    /// Per feature: how windows reduce it.
    aggregation: Vec<Aggregation>,
    features: Vec<Arc<str>>,
    dimension: Option<(Dimension, bool)>,
    /// The behaviour as configured (events of a slot dropped by a new configuration still
    /// describe the behaviour they were raised under).
    def: Arc<super::profile::Behavior>,
    /// The slots of the behaviours it requires (`rcf.requires`).
    requires: Vec<usize>,
}

impl Slot {
    /// A restored model, judged at its behaviour's sensitivity: a checkpoint written by a
    /// build that mapped the confidence level to another z-factor takes this build's.
    fn recalibrate(&self, d: &mut Detector) -> Result<(), FleetError> {
        // the fleet reads no p-values: a checkpoint from before they were dropped keeps its
        // score distribution (8 KiB) only until here
        d.drop_p_values();
        d.settle_after_warm_up();
        match self.def.ml_sensitivity() {
            Some(s) if d.config().sensitivity != s => {
                d.set_sensitivity(s)
                    .map_err(|e| FleetError::InvalidParameter {
                        name: "rcf.zFactor",
                        reason: e.to_string(),
                    })
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Route {
    slot: usize,
    feature: usize,
}

/// An open window of one thing and behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Window {
    start: Millis,
    sums: Vec<f64>,
    counts: Vec<u32>,
    /// Every value so far was a `count`.
    integral: bool,
}

/// An alarm's streaks and, when in alarm, its violation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Alarm {
    violating: u8,
    conforming: u8,
    active: Option<Active>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Active {
    id: String,
    start: Millis,
}

/// A closing window's ML verdicts: its thing's own model's and its behaviour's group model's
/// (each as the scope has them).
#[derive(Default)]
struct MlVerdicts {
    device: Option<crate::Result<Verdict>>,
    group: Option<crate::Result<Verdict>>,
}

/// A behaviour's group model (scopes `group` and `hierarchical`).
#[derive(Debug, Clone)]
struct GroupModel {
    /// The behaviour's fingerprint when the model was made (a changed behaviour starts anew).
    fingerprint: String,
    detector: Box<Detector>,
    /// The end of the last window it learned (since the engine was opened).
    last_use: Option<Millis>,
}

/// A group model as saved (in the store's meta table, `group-models`).
#[derive(Serialize, Deserialize)]
struct SavedGroupModel {
    profile: String,
    behavior: String,
    fingerprint: String,
    /// Raw bytes (one length, then a copy), not a sequence of numbers: the same encoding,
    /// written and read as one block.
    detector: Bytes,
}

/// An ML window to score: (position among the closing windows, thing, slot, window start,
/// the row of feature values).
type MlJob = (usize, Arc<str>, usize, Millis, Vec<f32>);

/// The next message of `rx`, taking up the pool's pending jobs while there is none (a
/// worker thread that only waited could wait for jobs queued behind it); `None` once every
/// sender is gone.
fn recv_helping<T>(rx: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    use std::sync::mpsc::TryRecvError;
    loop {
        match rx.try_recv() {
            Ok(x) => return Some(x),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => match rayon::yield_now() {
                Some(rayon::Yield::Executed) => {}
                // outside the pool, or no job left to take: the senders are at work
                _ => return rx.recv().ok(),
            },
        }
    }
}

/// An evicted model to restore: (thing, slot, its checkpoint's digest if this process wrote
/// it, the rows of its log to replay onto it).
type Wanted = (Arc<str>, usize, Option<CheckpointDigest>, Vec<f32>);

/// Replays `rows` (`features` values each) onto a model's checkpoint `d`, as the engine
/// processed them live.
fn replay(d: &mut Detector, rows: &[f32], features: usize) {
    for row in rows.chunks_exact(features.max(1)) {
        // a row the model rejected live is rejected again, and changes nothing either time
        let _ = d.process(row);
    }
}

/// A model being evicted, encoded: (thing, slot, (checkpoint, its digest)).
type EncodedModel = (Arc<str>, usize, (Vec<u8>, CheckpointDigest));

/// One thing's state for one behaviour.
#[derive(Debug, Clone)]
struct SlotState {
    windows: Vec<Window>,
    alarm: Alarm,
    /// The first datapoint's time (a thing is not "missing" from windows before it).
    since: Millis,
    detector: Option<Box<Detector>>,
    /// The model is checkpointed in the store's `models` table (evicted by the budget).
    evicted: bool,
    /// The digest of that checkpoint where this process wrote it: its restore then skips
    /// the forest's structural checks unless the bytes changed (`None` after a reload).
    digest: Option<CheckpointDigest>,
    /// The model's use, for the eviction order.
    usage: Usage,
    /// The store holds the model as of the last commit: its checkpoint in `models` (of
    /// commit `log_from`) with the `logged` rows of its log in `model_logs` replayed onto it.
    /// False until its first checkpoint (and after a failed commit).
    stored: bool,
    /// The engine commit its checkpoint belongs to.
    log_from: u64,
    /// Rows of its log in the store (entries of commits after `log_from`).
    logged: u64,
    /// Rows the model processed since the last commit (while `stored`), for its log.
    pending: Vec<f32>,
    /// Rows of its log read when the store was opened, to replay when the model is read
    /// back.
    unreplayed: Vec<f32>,
    /// When (window time) the next full checkpoint is due.
    checkpoint_due: Millis,
}

impl SlotState {
    fn new(since: Millis) -> Self {
        SlotState {
            windows: Vec::new(),
            alarm: Alarm::default(),
            since,
            detector: None,
            evicted: false,
            digest: None,
            usage: Usage::default(),
            stored: false,
            log_from: 0,
            logged: 0,
            pending: Vec::new(),
            unreplayed: Vec::new(),
            checkpoint_due: Millis::MIN,
        }
    }
}

/// A row log longer than this many values (about four days of three-metric windows) is
/// dropped for a full checkpoint at the next commit (an engine on a file store that is never
/// committed must not grow without bound).
const MAX_PENDING: usize = 4096;

/// The state of `thing` for the slot saved as (`profile`, `behavior`), with the slot's index,
/// if both are still there.
fn saved_slot<'a>(
    things: &'a mut BTreeMap<Arc<str>, ThingState>,
    index: &HashMap<(String, String), usize>,
    thing: &str,
    profile: &str,
    behavior: &str,
) -> Option<(usize, &'a mut SlotState)> {
    let i = *index.get(&(profile.to_string(), behavior.to_string()))?;
    let st = things.get_mut(thing)?.slots[i].as_mut()?;
    Some((i, st))
}

/// When a model first checkpointed at `now` is next due: within `every` of it, at a point set
/// by the thing's name, so that a fleet's checkpoints spread over the interval.
fn staggered_due(thing: &str, now: Millis, every: Millis) -> Millis {
    if every <= 0 {
        return now;
    }
    let h = thing.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    });
    now.saturating_add(1 + (h % every as u64) as Millis)
}

#[derive(Debug, Clone, Default)]
struct ThingState {
    last_seen: Millis,
    slots: Vec<Option<SlotState>>,
    /// Per profile: whether it applies to the thing (valid for `targets_version`).
    targeted: Vec<bool>,
    targets_version: u64,
    /// Listed in [`Engine::dirty`] since the last commit.
    dirty: bool,
    /// The thing's position in name order (kept up to date before each window close; see
    /// [`Engine::ranks_stale`]), so closing windows sort by integers.
    rank: u32,
}

impl ThingState {
    /// Lists the thing (once) in `dirty`, for saving at the next commit.
    fn mark_dirty(&mut self, name: &Arc<str>, dirty: &mut Vec<Arc<str>>) {
        if !self.dirty {
            self.dirty = true;
            dirty.push(name.clone());
        }
    }
}

/// A thing's state as stored (slots by name, so they survive profile changes).
#[derive(Serialize, Deserialize)]
struct SavedThing {
    last_seen: Millis,
    slots: Vec<SavedSlot>,
}

#[derive(Serialize, Deserialize)]
struct SavedSlot {
    profile: String,
    behavior: String,
    fingerprint: String,
    windows: Vec<Window>,
    alarm: Alarm,
    since: Millis,
    /// As [`SavedGroupModel::detector`]: raw bytes.
    detector: Option<Bytes>,
}

#[derive(Serialize, Deserialize)]
struct SavedClock {
    max_ts: Option<Millis>,
    watermark: Millis,
    /// Kept in the format; on load the next close comes from the things' windows.
    next_close: Millis,
    last_retention: Millis,
    counters: Counters,
}

/// An observation of one behaviour for one thing: a datapoint evaluated.
struct Observation {
    value: Option<MetricValue>,
    violating: bool,
    /// Why, put into words only when an event needs it (most observations cause none).
    reason: Reason,
    ml: Option<MlExplanation>,
}

/// What an observation's reason says, before it is formatted.
enum Reason {
    /// Said in full.
    Text(&'static str),
    /// A static criterion: the value against the behaviour's operator and value.
    Static,
    /// A fleet percentile of `n` things.
    Statistical { threshold: f64, n: usize },
    /// An ML verdict (its explanation is in the observation).
    Ml,
}

/// The fleet detect engine.
///
/// ```
/// use rcf_stream::fleet::{Datapoint, Engine, EngineConfig, MetricValue};
/// use serde_json::json;
///
/// let mut engine = Engine::open(EngineConfig::default(), None)?;
/// engine.configure(&json!({
///     "securityProfileName": "lights",
///     "behaviors": [{"name": "no-telnet", "metric": "aws:listening-tcp-ports",
///                    "criteria": {"comparisonOperator": "not-in-port-set",
///                                 "value": {"ports": [23, 2323]}}}]
/// }))?;
/// let dp = Datapoint::new("bulb-1", "aws:listening-tcp-ports",
///                         MetricValue::Ports(vec![80, 23]), 1_767_225_600_000, None)?;
/// let events = engine.ingest(&dp)?;
/// assert_eq!(events[0].event_type.as_str(), "in-alarm");
/// engine.commit(None)?;
/// assert_eq!(engine.list_active_violations(&Default::default())?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    config: EngineConfig,
    /// The wall clock (epoch ms) as last read for the far-future check: it only moves on, so
    /// a datapoint within it of the check passes without reading the clock again.
    wall_ms: std::sync::atomic::AtomicI64,
    catalog: MetricCatalog,
    dimensions: BTreeMap<String, Dimension>,
    profiles: Vec<SecurityProfile>,
    targets: BTreeMap<String, BTreeSet<Target>>,
    groups: BTreeMap<String, BTreeSet<Arc<str>>>,
    targets_version: u64,
    slots: Vec<Slot>,
    routes: HashMap<Arc<str>, Arc<[Route]>, foldhash::fast::RandomState>,
    things: BTreeMap<Arc<str>, ThingState>,
    /// Things changed since the last commit (each once: its `dirty` flag says it is listed).
    dirty: Vec<Arc<str>>,
    removed: BTreeSet<Arc<str>>,
    /// Open windows by end time: (thing, slot) to close then. Entries may be stale (state
    /// dropped since); closing checks. Keyed by time so a close visits only its windows.
    open_windows: BTreeMap<Millis, Vec<(Arc<str>, usize)>>,
    /// A thing was added since ranks were assigned (removals keep the order of the rest).
    ranks_stale: bool,
    /// Commits that saved state (the store's `commits`): numbers model checkpoints and the
    /// entries of their logs.
    commits: u64,
    max_ts: Option<Millis>,
    watermark: Millis,
    last_retention: Millis,
    last_silence_check: Millis,
    counters: Counters,
    /// The model registry's counts (resident bytes kept current).
    models: ModelStats,
    /// Group models by (profile, behaviour).
    group_models: BTreeMap<(Arc<str>, Arc<str>), GroupModel>,
    cursor: Option<String>,
    store: Store,
    /// The fleet configuration as JSON (saved with the state).
    setup: Value,
    /// Sinks, feedback rules, open incidents, mitigation actions ([`respond`]).
    response: respond::Response,
    /// Observations collected for a [`Shard`] asked for verdicts.
    observed: Option<Vec<ShardVerdict>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.path())
            .field("profiles", &self.profiles.len())
            .field("things", &self.things.len())
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl Engine {
    /// Opens an engine on the store at `path` (created if missing), or on a new in-memory
    /// store. A store written before restores the engine as it was at its last commit:
    /// configuration, windows, alarms, detectors and the input cursor.
    ///
    /// # Errors
    ///
    /// The store cannot be opened, is not an rcf store, or its saved state is corrupt; a
    /// setting is out of range.
    pub fn open(config: EngineConfig, path: Option<&Path>) -> Result<Self, FleetError> {
        check_config(&config)?;
        let store = Store::open(path)?;
        Self::with_store(config, store)
    }

    /// Restores an engine from [`to_bytes`](Self::to_bytes), on an in-memory store.
    ///
    /// # Errors
    ///
    /// The bytes are not an engine's store.
    pub fn from_bytes(config: EngineConfig, bytes: &[u8]) -> Result<Self, FleetError> {
        check_config(&config)?;
        let store = Store::from_bytes(bytes)?;
        let mut e = Self::with_store(config, store)?;
        // an in-memory engine keeps thing state only in memory: drop the stored copies (and
        // the checkpoints of the models now in memory; evicted ones stay)
        e.store.begin()?;
        e.store.query("DELETE FROM thing_state", &[])?;
        for (name, t) in e.things.iter_mut() {
            for (i, st) in t.slots.iter_mut().enumerate() {
                if let Some(st) = st.as_mut()
                    && st.detector.is_some()
                    && st.stored
                {
                    let slot = &e.slots[i];
                    e.store
                        .delete_model(name, &slot.profile_name, &slot.behavior_name)?;
                    st.stored = false;
                    st.logged = 0;
                }
            }
        }
        // every log was replayed when the store was opened: the models with one are in memory
        e.store.query("DELETE FROM model_logs", &[])?;
        e.store.commit()?;
        Ok(e)
    }

    fn with_store(config: EngineConfig, store: Store) -> Result<Self, FleetError> {
        let mut e = Engine {
            config,
            wall_ms: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
            catalog: MetricCatalog::default(),
            dimensions: BTreeMap::new(),
            profiles: Vec::new(),
            targets: BTreeMap::new(),
            groups: BTreeMap::new(),
            targets_version: 1,
            slots: Vec::new(),
            routes: HashMap::default(),
            things: BTreeMap::new(),
            dirty: Vec::new(),
            removed: BTreeSet::new(),
            open_windows: BTreeMap::new(),
            ranks_stale: true,
            commits: 0,
            max_ts: None,
            watermark: i64::MIN,
            last_retention: i64::MIN,
            last_silence_check: i64::MIN,
            counters: Counters::default(),
            models: ModelStats::default(),
            group_models: BTreeMap::new(),
            cursor: None,
            store,
            setup: Value::Null,
            response: respond::Response::default(),
            observed: None,
        };
        e.load()?;
        Ok(e)
    }

    fn corrupt(&self, what: &str, why: impl std::fmt::Display) -> FleetError {
        FleetError::Store(StoreError {
            path: self.store.path().to_string(),
            reason: format!("{what} is corrupt: {why}"),
        })
    }

    fn load(&mut self) -> Result<(), FleetError> {
        if let Some(setup) = self.store.meta("setup")? {
            let v: Value = serde_json::from_slice(&setup)
                .map_err(|e| self.corrupt("the saved configuration", e))?;
            self.apply_setup(&v)
                .map_err(|e| self.corrupt("the saved configuration", e))?;
        }
        for (group, thing) in self.store.groups()? {
            self.groups.entry(group).or_default().insert(thing.into());
        }
        if let Some(clock) = self.store.meta("clock")? {
            let c: SavedClock = decode(&clock).map_err(|e| self.corrupt("the saved clock", e))?;
            self.max_ts = c.max_ts;
            self.watermark = c.watermark;
            self.last_retention = c.last_retention;
            self.counters = c.counters;
        }
        self.cursor = self
            .store
            .meta("cursor")?
            .map(|c| String::from_utf8(c).map_err(|e| self.corrupt("the saved cursor", e)))
            .transpose()?;
        self.load_response()?;
        let index = self.slot_index();
        for (name, bytes) in self.store.things()? {
            let saved: SavedThing = decode(&bytes)
                .map_err(|e| self.corrupt(&format!("the state of thing {}", quoted(&name)), e))?;
            let t = self.restore_thing(&name, saved, &index)?;
            self.things.insert(name.into(), t);
        }
        if let Some(bytes) = self.store.meta("group-models")? {
            let saved: Vec<SavedGroupModel> =
                decode(&bytes).map_err(|e| self.corrupt("the saved group models", e))?;
            for g in saved {
                let Some(&i) = index.get(&(g.profile.clone(), g.behavior.clone())) else {
                    continue;
                };
                if self.slots[i].fingerprint != g.fingerprint {
                    continue;
                }
                let mut d = Detector::from_bytes(&g.detector.0).map_err(|e| {
                    self.corrupt(
                        &format!("the group model of behaviour {}", quoted(&g.behavior)),
                        e,
                    )
                })?;
                let slot = &self.slots[i];
                slot.recalibrate(&mut d)?;
                self.group_models.insert(
                    (slot.profile_name.clone(), slot.behavior_name.clone()),
                    GroupModel {
                        fingerprint: g.fingerprint,
                        detector: Box::new(d),
                        last_use: None,
                    },
                );
            }
        }
        // evicted models: a checkpoint whose slot has no model in memory is that model; any
        // other checkpoint is left over (its slot was dropped) and deleted
        self.commits = match self.store.meta("commits")? {
            Some(b) => <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_le_bytes)
                .map_err(|_| self.corrupt("the commit count", "not 8 bytes"))?,
            None => 0,
        };
        for (thing, profile, behavior, (seen, needed), log_from) in self.store.model_keys()? {
            match saved_slot(&mut self.things, &index, &thing, &profile, &behavior) {
                Some((_, st)) if st.detector.is_none() => {
                    // the model as of the last commit: this checkpoint and its log
                    st.evicted = true;
                    st.stored = true;
                    st.log_from = log_from.max(0) as u64;
                    (st.usage.seen, st.usage.needed) = (seen, needed);
                    st.checkpoint_due =
                        staggered_due(&thing, self.watermark, self.config.model_checkpoint_ms);
                }
                _ => {
                    self.store.begin()?;
                    self.store.delete_model(&thing, &profile, &behavior)?;
                }
            }
        }
        // their logs: the entries of commits after each checkpoint's, rows in order
        for (seq, thing, profile, behavior, first, rows) in self.store.model_logs()? {
            let Some((i, st)) = saved_slot(&mut self.things, &index, &thing, &profile, &behavior)
                .filter(|(_, st)| st.evicted && seq > st.log_from as i64)
            else {
                continue; // left over: a checkpoint written since, or a slot dropped
            };
            let nf = self.slots[i].features.len().max(1);
            let bad = if first != st.logged as i64 {
                Some(format!(
                    "its log's entry of commit {seq} follows row {first}, but {} rows come before it",
                    st.logged
                ))
            } else if rows.is_empty() || rows.len() % (4 * nf) != 0 {
                Some(format!(
                    "its log's entry of commit {seq} holds {} bytes, not rows of {nf} values",
                    rows.len()
                ))
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(self.corrupt_model(&thing, why));
            }
            st.unreplayed.extend(
                rows.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
            );
            let n = (rows.len() / (4 * nf)) as u64;
            st.logged += n;
            st.usage.seen += n;
        }
        self.models = ModelStats::default();
        for t in self.things.values() {
            for st in t.slots.iter().flatten() {
                if st.detector.is_some() {
                    self.models.resident += 1;
                    self.models.resident_bytes += st.usage.bytes;
                } else if st.evicted {
                    self.models.evicted += 1;
                }
            }
        }
        self.models.peak_bytes = self.models.resident_bytes;
        self.index_windows();
        self.ranks_stale = true;
        // without a budget every model comes back now, as saved (checkpoints decoded and logs
        // replayed in parallel); under a budget those with a log do, in chunks, and what
        // does not fit is checkpointed afresh, so that no log is held in memory; the others
        // come back at their next datapoint
        let budget = self.config.memory_budget.is_some();
        let back: Vec<MlJob> = self
            .things
            .iter()
            .flat_map(|(name, t)| {
                t.slots.iter().enumerate().filter_map(move |(i, st)| {
                    st.as_ref()
                        .filter(|st| st.evicted && (!budget || !st.unreplayed.is_empty()))
                        .map(|_| (0, name.clone(), i, 0, Vec::new()))
                })
            })
            .collect();
        let chunk = if budget {
            MODEL_CHUNK
        } else {
            back.len().max(1)
        };
        for part in back.chunks(chunk) {
            self.restore_models(part)?;
            self.enforce_budget()?;
        }
        self.enforce_budget()?;
        Ok(())
    }

    /// A thing's state from its saved form: slots by name, those whose behaviour is gone or
    /// changed (another fingerprint) dropped.
    fn restore_thing(
        &self,
        name: &str,
        saved: SavedThing,
        index: &HashMap<(String, String), usize>,
    ) -> Result<ThingState, FleetError> {
        let mut t = ThingState {
            last_seen: saved.last_seen,
            slots: vec![None; self.slots.len()],
            ..Default::default()
        };
        for s in saved.slots {
            let Some(&i) = index.get(&(s.profile.clone(), s.behavior.clone())) else {
                continue;
            };
            if self.slots[i].fingerprint != s.fingerprint {
                continue;
            }
            let detector = match s.detector {
                Some(b) => {
                    let mut d = Detector::from_bytes(&b.0).map_err(|e| {
                        self.corrupt(&format!("the detector of thing {}", quoted(name)), e)
                    })?;
                    self.slots[i].recalibrate(&mut d)?;
                    Some(Box::new(d))
                }
                None => None,
            };
            let mut state = SlotState::new(s.since);
            state.windows = s.windows;
            state.alarm = s.alarm;
            if let Some(d) = &detector {
                state.usage.measure(d);
            }
            state.detector = detector;
            t.slots[i] = Some(state);
        }
        Ok(t)
    }

    /// The slots by (profile, behaviour) name.
    fn slot_index(&self) -> HashMap<(String, String), usize> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.profile_name.to_string(), s.behavior_name.to_string()), i))
            .collect()
    }

    /// Rebuilds [`open_windows`](Self::open_windows) from the things' state (after loading
    /// or reconfiguring).
    fn index_windows(&mut self) {
        self.open_windows.clear();
        for (name, t) in &self.things {
            for (i, s) in t.slots.iter().enumerate() {
                let (Some(st), Some(w)) = (s, self.slots[i].window_ms) else {
                    continue;
                };
                for win in &st.windows {
                    self.open_windows
                        .entry(win.start + w)
                        .or_default()
                        .push((name.clone(), i));
                }
            }
        }
    }

    /// When the next window closes (its end), if any is open.
    fn next_close(&self) -> Option<Millis> {
        self.open_windows.keys().next().copied()
    }

    /// Sets the fleet configuration: one `CreateSecurityProfile` JSON (applied to all things),
    /// or a bundle `{"securityProfiles": [...], "dimensions": [CreateDimension ...],
    /// "customMetrics": [CreateCustomMetric ...], "thingGroups": {"group": ["thing", ...]},
    /// "targets": {"profile": ["all" | "group" | ARN, ...]}}` (a profile without targets applies
    /// to all things). Profiles not named are removed. A behaviour that is removed or changed
    /// invalidates its alarms (`alarm-invalidated` events, returned) and drops its state; an
    /// unchanged one keeps everything. Nothing changes if the configuration is invalid.
    ///
    /// # Errors
    ///
    /// The first invalid field, by JSON path.
    pub fn configure(&mut self, setup: &Value) -> Result<Vec<ViolationEvent>, FleetError> {
        // validate on a scratch engine first: a rejected configuration changes nothing
        let before: Vec<(String, String, String)> = self
            .slots
            .iter()
            .map(|s| {
                (
                    s.profile_name.to_string(),
                    s.behavior_name.to_string(),
                    s.fingerprint.clone(),
                )
            })
            .collect();
        let old_slots = self.slots.clone();
        let old_names: Vec<String> = self.profiles.iter().map(|p| p.name.clone()).collect();
        let old_targeted: Vec<(Arc<str>, Vec<bool>)> = {
            let names: Vec<Arc<str>> = self.things.keys().cloned().collect();
            names
                .into_iter()
                .map(|n| {
                    let t = self.targeted_all(&n);
                    (n, t)
                })
                .collect()
        };
        let mut trial = Engine::with_store(self.config.clone(), Store::open(None)?)?;
        trial.catalog = self.catalog.clone();
        trial.groups = self.groups.clone();
        trial.apply_setup(setup)?;
        // valid: apply for real
        let mut out = Vec::new();
        self.apply_setup(setup)?;
        let now = self.now();
        // map the old slots onto the new ones by (profile, behaviour, fingerprint)
        let new_index: HashMap<(String, String, String), usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    (
                        s.profile_name.to_string(),
                        s.behavior_name.to_string(),
                        s.fingerprint.clone(),
                    ),
                    i,
                )
            })
            .collect();
        let map: Vec<Option<usize>> = before.iter().map(|k| new_index.get(k).copied()).collect();
        let names: Vec<Arc<str>> = self.things.keys().cloned().collect();
        for name in names {
            let mut t = self.things.remove(&name).expect("listed");
            let mut slots: Vec<Option<SlotState>> = vec![None; self.slots.len()];
            let mut changed = false;
            for (old, state) in t.slots.drain(..).enumerate() {
                let Some(state) = state else { continue };
                match map[old] {
                    Some(new) => slots[new] = Some(state),
                    None => {
                        changed = true;
                        self.discard(&name, &old_slots[old], &state)?;
                        if let Some(a) = &state.alarm.active {
                            let s = &old_slots[old];
                            self.invalidate(
                                &name,
                                s,
                                a,
                                now,
                                "the behaviour was removed or changed",
                                &mut out,
                            )?;
                        }
                    }
                }
            }
            t.slots = slots;
            t.targets_version = 0;
            self.things.insert(name.clone(), t);
            if changed {
                self.mark_dirty(&name);
            }
        }
        // things that left a profile's target (a profile kept under the same name)
        for (name, was) in old_targeted {
            let now_targeted = self.targeted_all(&name);
            for (p, now_in) in now_targeted.iter().enumerate() {
                let pname = &self.profiles[p].name;
                let was_in = old_names
                    .iter()
                    .position(|x| x == pname)
                    .is_some_and(|j| was[j]);
                if was_in && !now_in {
                    self.leave(&name, p, now, &mut out)?;
                }
            }
        }
        // group models of behaviours gone or changed go too
        let live: BTreeSet<(&str, &str, &str)> = self
            .slots
            .iter()
            .map(|s| (&*s.profile_name, &*s.behavior_name, s.fingerprint.as_str()))
            .collect();
        self.group_models
            .retain(|(p, b), g| live.contains(&(&**p, &**b, g.fingerprint.as_str())));
        self.index_windows();
        self.store
            .put_meta("setup", self.setup.to_string().as_bytes())?;
        Ok(out)
    }

    fn apply_setup(&mut self, setup: &Value) -> Result<(), FleetError> {
        let o = setup.as_object().ok_or_else(|| ProfileError {
            field: String::new(),
            reason: format!(
                "the fleet configuration must be a JSON object, got {}",
                json_kind(setup)
            ),
        })?;
        let perr =
            |field: String, reason: String| FleetError::Profile(ProfileError { field, reason });
        let (profiles_json, bundle): (Vec<Value>, bool) = if o.contains_key("securityProfileName") {
            (vec![setup.clone()], false)
        } else {
            for key in o.keys() {
                if !matches!(
                    key.as_str(),
                    "securityProfiles"
                        | "dimensions"
                        | "customMetrics"
                        | "thingGroups"
                        | "targets"
                        | "mitigationActions"
                ) {
                    return Err(perr(key.clone(), "is not a fleet configuration key: securityProfiles, dimensions, customMetrics, thingGroups, targets or mitigationActions (or give one CreateSecurityProfile body)".into()));
                }
            }
            match o.get("securityProfiles") {
                Some(Value::Array(a)) => (a.clone(), true),
                None => (Vec::new(), true),
                Some(other) => {
                    return Err(perr(
                        "securityProfiles".into(),
                        format!("must be a list, got {}", json_kind(other)),
                    ));
                }
            }
        };
        let mut catalog = self.catalog.clone();
        let mut dimensions = BTreeMap::new();
        let mut targets: BTreeMap<String, BTreeSet<Target>> = BTreeMap::new();
        let mut groups = self.groups.clone();
        if bundle {
            if let Some(list) = o.get("customMetrics") {
                let list = list
                    .as_array()
                    .ok_or_else(|| perr("customMetrics".into(), "must be a list".into()))?;
                for (i, m) in list.iter().enumerate() {
                    let at = format!("customMetrics[{i}]");
                    let name = m
                        .get("metricName")
                        .and_then(Value::as_str)
                        .ok_or_else(|| perr(format!("{at}.metricName"), "is required".into()))?;
                    let t = m
                        .get("metricType")
                        .and_then(Value::as_str)
                        .ok_or_else(|| perr(format!("{at}.metricType"), "is required".into()))?;
                    let t =
                        MetricType::parse(t).map_err(|e| perr(format!("{at}.metricType"), e))?;
                    catalog
                        .declare(name, t)
                        .map_err(|e| perr(format!("{at}.metricName"), e))?;
                }
            }
            if let Some(list) = o.get("dimensions") {
                let list = list
                    .as_array()
                    .ok_or_else(|| perr("dimensions".into(), "must be a list".into()))?;
                for (i, d) in list.iter().enumerate() {
                    let at = format!("dimensions[{i}]");
                    let name = d
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| perr(format!("{at}.name"), "is required".into()))?;
                    match d.get("type").and_then(Value::as_str) {
                        Some("TOPIC_FILTER") | None => {}
                        Some(other) => {
                            return Err(perr(
                                format!("{at}.type"),
                                format!("{} is not a dimension type: TOPIC_FILTER", quoted(other)),
                            ));
                        }
                    }
                    let values =
                        d.get("stringValues")
                            .and_then(Value::as_array)
                            .ok_or_else(|| {
                                perr(
                                    format!("{at}.stringValues"),
                                    "is required (a list of topic filters)".into(),
                                )
                            })?;
                    let filters = values
                        .iter()
                        .map(|v| {
                            v.as_str().map(str::to_string).ok_or_else(|| {
                                perr(format!("{at}.stringValues"), "must be strings".into())
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let dim = Dimension::new(name, filters).map_err(|e| perr(at.clone(), e))?;
                    if dimensions.insert(name.to_string(), dim).is_some() {
                        return Err(perr(
                            format!("{at}.name"),
                            format!("{} is defined twice", quoted(name)),
                        ));
                    }
                }
            }
            if let Some(g) = o.get("thingGroups") {
                let g = g.as_object().ok_or_else(|| {
                    perr(
                        "thingGroups".into(),
                        "must be an object of group name to thing names".into(),
                    )
                })?;
                for (group, things) in g {
                    super::profile::check_identifier(group)
                        .map_err(|e| perr(format!("thingGroups.{group}"), e))?;
                    let things = things.as_array().ok_or_else(|| {
                        perr(
                            format!("thingGroups.{group}"),
                            "must be a list of thing names".into(),
                        )
                    })?;
                    let set = groups.entry(group.clone()).or_default();
                    set.clear();
                    for (i, t) in things.iter().enumerate() {
                        let t = t.as_str().ok_or_else(|| {
                            perr(
                                format!("thingGroups.{group}[{i}]"),
                                "must be a thing name".into(),
                            )
                        })?;
                        check_thing(t).map_err(|e| perr(format!("thingGroups.{group}[{i}]"), e))?;
                        set.insert(t.into());
                    }
                }
            }
        }
        let mut profiles = Vec::with_capacity(profiles_json.len());
        for (i, p) in profiles_json.iter().enumerate() {
            let at = if bundle {
                format!("securityProfiles[{i}].")
            } else {
                String::new()
            };
            let prof =
                SecurityProfile::from_json_with(p, self.config.strict, &catalog).map_err(|e| {
                    ProfileError {
                        field: format!("{at}{}", e.field),
                        reason: e.reason,
                    }
                })?;
            if profiles
                .iter()
                .any(|q: &SecurityProfile| q.name == prof.name)
            {
                return Err(perr(
                    format!("{at}securityProfileName"),
                    format!("{} is defined twice", quoted(&prof.name)),
                ));
            }
            for (j, b) in prof.behaviors.iter().enumerate() {
                // undeclared custom metrics are declared by the type their criteria imply
                for m in b.metrics() {
                    if catalog.get(m).is_none() {
                        let t = b
                            .implied_type(m)
                            .map_err(|e| perr(format!("{at}behaviors[{j}].metric"), e))?;
                        catalog
                            .declare(m, t)
                            .map_err(|e| perr(format!("{at}behaviors[{j}].metric"), e))?;
                    }
                }
                if let Some(d) = &b.dimension
                    && !dimensions.contains_key(&d.name)
                {
                    return Err(perr(
                        format!("{at}behaviors[{j}].metricDimension.dimensionName"),
                        format!(
                            "{} is not a defined dimension (define it under \"dimensions\")",
                            quoted(&d.name)
                        ),
                    ));
                }
            }
            profiles.push(prof);
        }
        if let Some(t) = o.get("targets").filter(|_| bundle) {
            let t = t.as_object().ok_or_else(|| {
                perr(
                    "targets".into(),
                    "must be an object of profile name to targets".into(),
                )
            })?;
            for (pname, list) in t {
                if !profiles.iter().any(|p| &p.name == pname) {
                    return Err(perr(
                        format!("targets.{pname}"),
                        format!("{} is not one of the securityProfiles", quoted(pname)),
                    ));
                }
                let list = list
                    .as_array()
                    .ok_or_else(|| perr(format!("targets.{pname}"), "must be a list".into()))?;
                let set = targets.entry(pname.clone()).or_default();
                for (i, x) in list.iter().enumerate() {
                    let x = x.as_str().ok_or_else(|| {
                        perr(format!("targets.{pname}[{i}]"), "must be a string".into())
                    })?;
                    set.insert(
                        Target::parse(x).map_err(|e| perr(format!("targets.{pname}[{i}]"), e))?,
                    );
                }
            }
        }
        let mut actions: BTreeMap<String, MitigationAction> = BTreeMap::new();
        if let Some(list) = o.get("mitigationActions").filter(|_| bundle) {
            let list = list
                .as_array()
                .ok_or_else(|| perr("mitigationActions".into(), "must be a list".into()))?;
            for (i, a) in list.iter().enumerate() {
                let at = format!("mitigationActions[{i}]");
                let a = MitigationAction::from_json(a, &at)?;
                if actions.contains_key(&a.name) {
                    return Err(perr(
                        format!("{at}.actionName"),
                        format!("{} is defined twice", quoted(&a.name)),
                    ));
                }
                actions.insert(a.name.clone(), a);
            }
        }
        for (pi, p) in profiles.iter().enumerate() {
            for (bi, b) in p.behaviors.iter().enumerate() {
                for (k, name) in b.mitigation_actions.iter().enumerate() {
                    if !actions.contains_key(name) {
                        return Err(perr(
                            format!(
                                "securityProfiles[{pi}].behaviors[{bi}].rcf.mitigationActions[{k}]"
                            ),
                            format!("{} is not one of the mitigationActions", quoted(name)),
                        ));
                    }
                }
            }
        }
        // all checked: apply
        self.response.actions = actions;
        self.catalog = catalog;
        self.dimensions = dimensions;
        for (group, set) in &groups {
            let old = self.groups.get(group);
            for t in set {
                if old.is_none_or(|o| !o.contains(t)) {
                    self.store.set_group(group, t, true)?;
                }
            }
            if let Some(old) = old {
                for t in old.difference(set) {
                    self.store.set_group(group, t, false)?;
                }
            }
        }
        self.groups = groups;
        self.profiles = profiles;
        self.targets = targets;
        self.targets_version += 1;
        self.setup = self.setup_json();
        self.rebuild_slots();
        Ok(())
    }

    /// The configuration as a bundle (what [`configure`](Self::configure) takes).
    pub fn setup_json(&self) -> Value {
        let mut o = Map::new();
        if !self.response.actions.is_empty() {
            o.insert(
                "mitigationActions".into(),
                self.response
                    .actions
                    .values()
                    .map(|a| a.to_json())
                    .collect(),
            );
        }
        o.insert(
            "securityProfiles".into(),
            Value::Array(self.profiles.iter().map(|p| p.to_json().clone()).collect()),
        );
        o.insert(
            "dimensions".into(),
            Value::Array(self.dimensions.values().map(|d| json!({"name": d.name, "type": "TOPIC_FILTER", "stringValues": d.filters})).collect()),
        );
        o.insert(
            "customMetrics".into(),
            Value::Array(
                self.catalog
                    .custom_metrics()
                    .map(|(n, t)| json!({"metricName": n, "metricType": t.as_str()}))
                    .collect(),
            ),
        );
        o.insert(
            "targets".into(),
            Value::Object(
                self.targets
                    .iter()
                    .map(|(p, t)| {
                        (
                            p.clone(),
                            Value::Array(t.iter().map(Target::to_json).collect()),
                        )
                    })
                    .collect(),
            ),
        );
        Value::Object(o)
    }

    fn rebuild_slots(&mut self) {
        self.slots.clear();
        self.routes.clear();
        let mut routes: HashMap<Arc<str>, Vec<Route>> = HashMap::new();
        for (p, prof) in self.profiles.iter().enumerate() {
            for (b, beh) in prof.behaviors.iter().enumerate() {
                let features: Vec<Arc<str>> = beh.metrics().map(Arc::from).collect();
                let aggregation = features
                    .iter()
                    .map(|m| {
                        self.catalog
                            .get(m)
                            .map_or(Aggregation::Gauge, |k| k.aggregation)
                    })
                    .collect();
                let slot = self.slots.len();
                for (f, m) in features.iter().enumerate() {
                    routes
                        .entry(m.clone())
                        .or_default()
                        .push(Route { slot, feature: f });
                }
                self.slots.push(Slot {
                    profile: p,
                    behavior: b,
                    profile_name: prof.name.as_str().into(),
                    behavior_name: beh.name.as_str().into(),
                    fingerprint: beh.to_json().to_string(),
                    window_ms: beh.window_ms(),
                    aggregation,
                    features,
                    dimension: beh
                        .dimension
                        .as_ref()
                        .map(|d| (self.dimensions[&d.name].clone(), d.not_in)),
                    def: Arc::new(beh.clone()),
                    requires: Vec::new(),
                });
            }
        }
        // composite behaviours: the slots of what they require (validated to exist)
        for i in 0..self.slots.len() {
            let (p, reqs) = (self.slots[i].profile, self.slots[i].def.requires.clone());
            self.slots[i].requires = reqs
                .iter()
                .filter_map(|r| {
                    self.slots
                        .iter()
                        .position(|s| s.profile == p && &*s.behavior_name == r)
                })
                .collect();
        }
        self.routes = routes.into_iter().map(|(m, r)| (m, Arc::from(r))).collect();
    }

    /// The profiles.
    pub fn profiles(&self) -> &[SecurityProfile] {
        &self.profiles
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counts since the store was created.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The watermark (latest timestamp minus the grace), if any datapoint was seen.
    pub fn watermark(&self) -> Option<Millis> {
        self.max_ts.map(|_| self.watermark)
    }

    /// Things seen and still tracked.
    pub fn things(&self) -> usize {
        self.things.len()
    }

    /// The input cursor saved with the last commit (see [`commit`](Self::commit)).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// The store's path (`:memory:` for an in-memory store).
    pub fn store_path(&self) -> &str {
        self.store.path()
    }

    /// The things in a thing group.
    pub fn group(&self, name: &str) -> Vec<String> {
        self.groups
            .get(name)
            .map_or_else(Vec::new, |g| g.iter().map(|t| t.to_string()).collect())
    }

    /// Adds a thing to a thing group (created if new). Returns nothing to report: joining a
    /// target starts monitoring with the next datapoint.
    ///
    /// # Errors
    ///
    /// A bad group or thing name.
    pub fn add_to_group(&mut self, group: &str, thing: &str) -> Result<(), FleetError> {
        super::profile::check_identifier(group).map_err(|r| FleetError::InvalidParameter {
            name: "group",
            reason: r,
        })?;
        check_thing(thing).map_err(|r| FleetError::InvalidParameter {
            name: "thing",
            reason: r,
        })?;
        if self
            .groups
            .entry(group.to_string())
            .or_default()
            .insert(thing.into())
        {
            self.store.set_group(group, thing, true)?;
            self.targets_version += 1;
        }
        Ok(())
    }

    /// Removes a thing from a thing group; profiles that no longer apply to it invalidate its
    /// alarms (returned) and drop its state.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn remove_from_group(
        &mut self,
        group: &str,
        thing: &str,
    ) -> Result<Vec<ViolationEvent>, FleetError> {
        let mut out = Vec::new();
        let Some(set) = self.groups.get(group) else {
            return Ok(out);
        };
        if !set.contains(thing) {
            return Ok(out);
        }
        let name: Arc<str> = thing.into();
        let before = self.targeted_all(&name);
        self.groups.get_mut(group).expect("checked").remove(thing);
        self.store.set_group(group, thing, false)?;
        self.targets_version += 1;
        let after = self.targeted_all(&name);
        let now = self.now();
        for p in 0..self.profiles.len() {
            if before[p] && !after[p] {
                self.leave(&name, p, now, &mut out)?;
            }
        }
        Ok(out)
    }

    fn targeted_all(&self, thing: &str) -> Vec<bool> {
        (0..self.profiles.len())
            .map(|p| self.is_targeted(p, thing))
            .collect()
    }

    fn is_targeted(&self, p: usize, thing: &str) -> bool {
        match self.targets.get(&self.profiles[p].name) {
            None => true,
            Some(t) if t.is_empty() => true,
            Some(t) => t.iter().any(|x| match x {
                Target::All => true,
                Target::Group(g) => self.groups.get(g).is_some_and(|s| s.contains(thing)),
            }),
        }
    }

    /// A thing left profile `p`'s target: invalidate its alarms there and drop that state.
    fn leave(
        &mut self,
        thing: &Arc<str>,
        p: usize,
        now: Millis,
        out: &mut Vec<ViolationEvent>,
    ) -> Result<(), FleetError> {
        let Some(mut t) = self.things.remove(thing) else {
            return Ok(());
        };
        for (i, s) in t.slots.iter_mut().enumerate() {
            if self.slots[i].profile != p {
                continue;
            }
            let Some(state) = s.take() else { continue };
            let slot = self.slots[i].clone();
            self.discard(thing, &slot, &state)?;
            if let Some(a) = &state.alarm.active {
                self.invalidate(
                    thing,
                    &slot,
                    a,
                    now,
                    "the thing left the profile's target",
                    out,
                )?;
            }
        }
        t.targets_version = 0;
        self.things.insert(thing.clone(), t);
        self.mark_dirty(thing);
        Ok(())
    }

    /// Lists a thing for saving at the next commit.
    fn mark_dirty(&mut self, name: &Arc<str>) {
        if let Some(t) = self.things.get_mut(name) {
            t.mark_dirty(name, &mut self.dirty);
        }
    }

    /// The engine's "now": the watermark, or 0 before any data.
    fn now(&self) -> Millis {
        if self.max_ts.is_some() {
            self.watermark
        } else {
            0
        }
    }

    /// Ingests one datapoint; returns the events it caused (an `in-alarm`, a clear, the
    /// window closes and invalidations its time triggered).
    ///
    /// # Errors
    ///
    /// [`FleetError::Datapoint`] for a datapoint that cannot be accepted (its value does not
    /// fit its metric, its thing name is invalid, it is far in the future): nothing of it is
    /// applied. [`FleetError::Store`] if the store fails.
    pub fn ingest(&mut self, dp: &Datapoint) -> Result<Vec<ViolationEvent>, FleetError> {
        let mut out = Vec::new();
        self.ingest_into(dp, &mut out)?;
        Ok(out)
    }

    /// [`ingest`](Self::ingest), appending the events to `out` and saying whether the
    /// datapoint was late or unmonitored.
    ///
    /// # Errors
    ///
    /// As [`ingest`](Self::ingest); on an error nothing is appended and nothing changes.
    pub fn ingest_into(
        &mut self,
        dp: &Datapoint,
        out: &mut Vec<ViolationEvent>,
    ) -> Result<Ingested, FleetError> {
        // checks first: nothing changes before they pass
        let kind = self.check(dp)?;
        // --- accepted
        let mut outcome = Ingested::default();
        self.counters.datapoints += 1;
        if self.config.history && kind.is_some() {
            self.store.insert_metric(
                &dp.thing,
                &dp.metric,
                dp.timestamp,
                self.counters.datapoints,
                dp.topic.as_deref(),
                &dp.value,
            )?;
        }
        let routes: Arc<[Route]> = match self.routes.get(&*dp.metric) {
            Some(r) => r.clone(),
            None => Arc::from(Vec::new()),
        };
        if routes.is_empty() {
            outcome.unmonitored = true;
            self.counters.unmonitored += 1;
        }
        // one lookup of the thing (added if new)
        let (thing, retarget) = {
            let (name, t) = match self.things.entry(dp.thing.clone()) {
                btree_map::Entry::Occupied(o) => (o.key().clone(), o.into_mut()),
                btree_map::Entry::Vacant(v) => {
                    self.ranks_stale = true;
                    let name = v.key().clone();
                    let slots = vec![None; self.slots.len()];
                    let t = v.insert(ThingState {
                        last_seen: dp.timestamp,
                        slots,
                        ..Default::default()
                    });
                    (name, t)
                }
            };
            t.mark_dirty(&name, &mut self.dirty);
            let retarget = t.targets_version != self.targets_version;
            (name, retarget)
        };
        if retarget {
            let targeted = self.targeted_all(&thing);
            let t = self.things.get_mut(&thing).expect("inserted");
            t.targeted = targeted;
            t.targets_version = self.targets_version;
        }
        // windowed behaviours accumulate (one borrow of the thing); per-datapoint ones are
        // judged after, in route order (only they raise events here)
        let mut late = false;
        let mut judged: Vec<usize> = Vec::new();
        {
            let t = self.things.get_mut(&thing).expect("inserted");
            for &r in routes.iter() {
                let slot = &self.slots[r.slot];
                if !t.targeted[slot.profile] {
                    continue;
                }
                if let Some((dim, not_in)) = &slot.dimension {
                    let hit = dp.topic.as_deref().is_some_and(|t| dim.matches(t));
                    if hit == *not_in {
                        continue;
                    }
                }
                match slot.window_ms {
                    Some(w) => {
                        let start = dp.timestamp.div_euclid(w) * w;
                        if self.max_ts.is_some() && start + w <= self.watermark {
                            late = true;
                            continue;
                        }
                        let x = dp.value.as_number().expect("windowed metrics are numbers");
                        let nf = slot.features.len();
                        let st =
                            t.slots[r.slot].get_or_insert_with(|| SlotState::new(dp.timestamp));
                        let win = match st.windows.iter_mut().position(|w| w.start == start) {
                            Some(i) => &mut st.windows[i],
                            None => {
                                st.windows.push(Window {
                                    start,
                                    sums: vec![0.0; nf],
                                    counts: vec![0; nf],
                                    integral: true,
                                });
                                self.open_windows
                                    .entry(start + w)
                                    .or_default()
                                    .push((thing.clone(), r.slot));
                                st.windows.last_mut().expect("pushed")
                            }
                        };
                        win.sums[r.feature] += x;
                        win.counts[r.feature] += 1;
                        win.integral &= matches!(dp.value, MetricValue::Count(_));
                    }
                    None => {
                        if self.max_ts.is_some() && dp.timestamp < self.watermark {
                            late = true;
                            continue;
                        }
                        t.slots[r.slot].get_or_insert_with(|| SlotState::new(dp.timestamp));
                        judged.push(r.slot);
                    }
                }
            }
            t.last_seen = t.last_seen.max(dp.timestamp);
        }
        for slot in judged {
            let obs = self.judge_static(slot, &dp.value);
            self.observe(&thing, slot, obs, dp.timestamp, out)?;
        }
        if late {
            outcome.late = true;
            self.counters.late += 1;
        }
        if self.max_ts.is_none_or(|m| dp.timestamp > m) {
            self.max_ts = Some(dp.timestamp);
            let w = dp.timestamp - self.config.grace_ms;
            if w > self.watermark {
                self.advance(w, out)?;
            }
        }
        Ok(outcome)
    }

    /// Checks a datapoint as [`ingest`](Self::ingest) would, without applying it (to
    /// validate a whole batch before any of it is applied).
    ///
    /// # Errors
    ///
    /// [`FleetError::Datapoint`], saying what is wrong.
    pub fn check(&self, dp: &Datapoint) -> Result<Option<super::metric::MetricKind>, FleetError> {
        check_thing(&dp.thing).map_err(FleetError::Datapoint)?;
        if !(time::MIN_TIMESTAMP..=time::MAX_TIMESTAMP).contains(&dp.timestamp) {
            return Err(FleetError::Datapoint(format!(
                "timestamp {} ms is outside 2000-01-01 .. 9999-12-31",
                dp.timestamp
            )));
        }
        if let Some(ahead) = self.config.max_future_ms {
            use std::sync::atomic::Ordering::Relaxed;
            let mut wall = self.wall_ms.load(Relaxed);
            if dp.timestamp > wall.saturating_add(ahead) {
                wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                self.wall_ms.fetch_max(wall, Relaxed);
            }
            if dp.timestamp > wall.saturating_add(ahead) {
                return Err(FleetError::Datapoint(format!(
                    "timestamp {} is more than {} h ahead of the clock ({})",
                    time::format_rfc3339(dp.timestamp),
                    ahead / HOUR,
                    time::format_rfc3339(wall)
                )));
            }
        }
        let kind = self.catalog.get(&dp.metric);
        if let Some(k) = kind {
            if !k.metric_type.accepts(&dp.value) {
                return Err(FleetError::Datapoint(format!(
                    "metric {} is a {} metric: the value must be {}, got `{}`",
                    quoted(&dp.metric),
                    k.metric_type.as_str(),
                    k.metric_type.members(),
                    dp.value.member()
                )));
            }
        } else {
            super::metric::check_name(&dp.metric)
                .map_err(|e| FleetError::Datapoint(format!("metric {e}")))?;
        }
        if let MetricValue::Number(x) = dp.value
            && !x.is_finite()
        {
            return Err(FleetError::Datapoint(format!(
                "value {x} of {} is not finite",
                quoted(&dp.metric)
            )));
        }
        if let MetricValue::Numbers(v) = &dp.value
            && let Some(x) = v.iter().find(|x| !x.is_finite())
        {
            return Err(FleetError::Datapoint(format!(
                "value {x} of {} is not finite",
                quoted(&dp.metric)
            )));
        }
        Ok(kind)
    }

    /// Advances the clock to `now` (epoch ms) without data: closes the windows that end by
    /// `now − grace` and invalidates the alarms of things silent for too long. For a live
    /// stream, call it on a timer so quiet periods still close windows.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn tick(&mut self, now: Millis) -> Result<Vec<ViolationEvent>, FleetError> {
        let mut out = Vec::new();
        let w = now - self.config.grace_ms;
        if w > self.watermark {
            self.max_ts = Some(self.max_ts.map_or(now, |m| m.max(now)));
            self.advance(w, &mut out)?;
        }
        Ok(out)
    }

    /// Closes every open window now, whatever the watermark (the end of a finite input). Data
    /// for those windows that comes later is late.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn flush(&mut self) -> Result<Vec<ViolationEvent>, FleetError> {
        let mut out = Vec::new();
        let last = self
            .things
            .values()
            .flat_map(|t| t.slots.iter().flatten())
            .flat_map(|s| s.windows.iter().map(|w| w.start))
            .max();
        if let Some(start) = last {
            let end = self
                .slots
                .iter()
                .filter_map(|s| s.window_ms)
                .max()
                .unwrap_or(0)
                + start;
            if end > self.watermark {
                self.advance(end, &mut out)?;
            }
        }
        Ok(out)
    }

    fn advance(
        &mut self,
        watermark: Millis,
        out: &mut Vec<ViolationEvent>,
    ) -> Result<(), FleetError> {
        self.watermark = watermark;
        while let Some(end) = self.next_close().filter(|&end| end <= self.watermark) {
            self.close_windows(end, out)?;
        }
        // silence is checked once a minute of event time (a scan of all things)
        if self.watermark.div_euclid(SILENCE_CHECK_MS)
            != self.last_silence_check.div_euclid(SILENCE_CHECK_MS)
        {
            self.last_silence_check = self.watermark;
            self.expire_silent(out)?;
        }
        Ok(())
    }

    /// Closes every window that ends at `end`, for all things at once.
    fn close_windows(
        &mut self,
        end: Millis,
        out: &mut Vec<ViolationEvent>,
    ) -> Result<(), FleetError> {
        // 1. take the closing windows (things in name order, then behaviours in order): those
        // indexed under `end`, and, for behaviours where silence violates, the things with
        // none in a window they should have reported in
        let mut due: Vec<(Arc<str>, usize)> = Vec::new();
        while let Some(entry) = self.open_windows.first_entry() {
            if *entry.key() > end {
                break;
            }
            let at = *entry.key();
            let list = entry.remove();
            if at == end {
                due = list;
            }
        }
        let silent_violates: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let slot = &self.slots[i];
                slot.window_ms.is_some_and(|w| end % w == 0)
                    && self.profiles[slot.profile].behaviors[slot.behavior].missing_data
                        == MissingData::Violate
            })
            .collect();
        if !silent_violates.is_empty() {
            for (name, t) in &self.things {
                for &i in &silent_violates {
                    if t.slots[i].is_some() {
                        due.push((name.clone(), i));
                    }
                }
            }
        }
        if self.ranks_stale {
            for (rank, t) in self.things.values_mut().enumerate() {
                t.rank = rank as u32;
            }
            self.ranks_stale = false;
        }
        // in name order by rank (integers: sorting by name cost more than judging), each
        // (thing, behaviour) once (the index may list one twice)
        let mut order: Vec<(u32, usize, Arc<str>)> = due
            .into_iter()
            .filter_map(|(name, i)| {
                let rank = self.things.get(&name)?.rank;
                Some((rank, i, name))
            })
            .collect();
        order.sort_unstable_by_key(|&(rank, i, _)| (rank, i));
        order.dedup_by_key(|&mut (rank, i, _)| (rank, i));
        let mut closing: Vec<(Arc<str>, usize, Option<Window>)> = Vec::new();
        for (_, i, name) in order {
            let t = self.things.get_mut(&name).expect("ranked");
            let Some(st) = t.slots[i].as_mut() else {
                continue;
            };
            let slot = &self.slots[i];
            let w = slot.window_ms.expect("indexed slots are windowed");
            // windows are few per slot (the open one, sometimes the next)
            let taken = st
                .windows
                .iter()
                .position(|win| win.start + w == end)
                .map(|k| st.windows.remove(k));
            st.windows.retain(|win| win.start + w > end);
            let missing = taken.is_none()
                && end % w == 0
                && st.since < end - w
                && self.profiles[slot.profile].behaviors[slot.behavior].missing_data
                    == MissingData::Violate
                && t.last_seen > end - self.config.invalidate_after_ms;
            if taken.is_some() || missing {
                t.mark_dirty(&name, &mut self.dirty);
                closing.push((name, i, taken));
            }
        }
        // 2. statistical thresholds: the percentile of each behaviour's closing values
        let mut pooled: HashMap<usize, Vec<f64>> = HashMap::new();
        for (_, i, win) in &closing {
            if let (CriteriaKind::Statistical { .. }, Some(win)) = (self.slot_kind(*i), win) {
                pooled
                    .entry(*i)
                    .or_default()
                    .push(self.window_value(*i, win).as_number().unwrap_or(f64::NAN));
            }
        }
        let mut thresholds: Vec<Option<(f64, usize)>> = vec![None; self.slots.len()];
        for (i, t) in pooled.into_iter().map(|(i, mut v)| {
            let p = match self.slot_kind(i) {
                CriteriaKind::Statistical { percentile, .. } => *percentile,
                _ => unreachable!(),
            };
            // Device Defender: the statistic is unavailable if any value is negative
            if v.iter().any(|x| *x < 0.0 || x.is_nan()) {
                return (i, None);
            }
            v.sort_by(f64::total_cmp);
            (i, Some((percentile_of(&v, p), v.len())))
        }) {
            thresholds[i] = t;
        }
        // 3. ML verdicts. Things' own models in chunks under a memory budget (one chunk
        // without): the chunk's models made resident first (restored, or new ones trained
        // from the store's history), then scored in parallel (each thing's model is its own;
        // the order of the results does not depend on the threads), then the budget enforced.
        // Group models then score and learn every thing's window, in name order.
        let mut ml: Vec<MlJob> = Vec::new();
        let mut grouped: Vec<MlJob> = Vec::new();
        for (k, (name, i, win)) in closing.iter().enumerate() {
            let (CriteriaKind::Ml { .. }, Some(win)) = (&self.slot_kind(*i), win) else {
                continue;
            };
            let row: Vec<f32> = (0..win.sums.len())
                .map(|f| self.feature_value(*i, f, win))
                .collect();
            let scope = self.slots[*i].def.ml.scope;
            if scope.group() {
                grouped.push((k, name.clone(), *i, win.start, row.clone()));
            }
            if scope.per_device() {
                ml.push((k, name.clone(), *i, win.start, row));
            }
        }
        let mut verdicts: Vec<MlVerdicts> = Vec::new();
        if !ml.is_empty() || !grouped.is_empty() {
            verdicts.resize_with(closing.len(), MlVerdicts::default);
            let chunk = if self.config.memory_budget.is_some() {
                MODEL_CHUNK
            } else {
                ml.len().max(1)
            };
            let mut done = 0;
            while done < ml.len() {
                // under a budget, chunks of about an eighth of it (at most MODEL_CHUNK)
                let size = match self.config.memory_budget {
                    Some(b) => {
                        let per = self
                            .models
                            .resident_bytes
                            .checked_div(self.models.resident)
                            .unwrap_or(64 << 10)
                            .max(1);
                        (usize::try_from(b / 8).unwrap_or(usize::MAX) / per).clamp(8, chunk)
                    }
                    None => chunk,
                };
                let part = &ml[done..(done + size).min(ml.len())];
                done += part.len();
                self.restore_models(part)?;
                for (_, name, i, start, _) in part {
                    self.resident_model(name, *i, *start)?;
                }
                for (k, v) in self.score_models(part, end) {
                    verdicts[k].device = Some(v);
                }
                self.enforce_budget()?;
            }
            for (k, v) in self.score_group_models(&grouped, end)? {
                verdicts[k].group = Some(v);
            }
        }
        // 4. evaluate (composite behaviours see the observations of what they require in the
        // same window), then apply in order
        let mut observed: Vec<(Arc<str>, usize, Option<Observation>)> =
            Vec::with_capacity(closing.len());
        for (k, (name, i, win)) in closing.into_iter().enumerate() {
            self.counters.windows += 1;
            let obs = match win {
                None => Some(Observation {
                    value: None,
                    violating: true,
                    reason: Reason::Text("no datapoint in the window (rcf.missingData: violate)"),
                    ml: None,
                }),
                Some(win) => {
                    let verdict = verdicts.get_mut(k).map(std::mem::take).unwrap_or_default();
                    self.judge_window(i, &win, thresholds[i], verdict)?
                }
            };
            observed.push((name, i, obs));
        }
        if self.slots.iter().any(|s| !s.requires.is_empty()) {
            // closing is in (thing, slot) order: a thing's observations are adjacent
            let violating: HashMap<(&str, usize), bool> = observed
                .iter()
                .filter_map(|(n, i, o)| o.as_ref().map(|o| ((&**n, *i), o.violating)))
                .collect();
            let gated: Vec<bool> = observed
                .iter()
                .map(|(n, i, _)| {
                    self.slots[*i]
                        .requires
                        .iter()
                        .all(|r| violating.get(&(&**n, *r)).copied().unwrap_or(false))
                })
                .collect();
            for ((_, _, obs), pass) in observed.iter_mut().zip(gated) {
                if let Some(o) = obs.as_mut() {
                    o.violating &= pass;
                }
            }
        }
        for (name, i, obs) in observed {
            if let Some(obs) = obs {
                self.observe(&name, i, obs, end, out)?;
            }
        }
        Ok(())
    }

    /// Scores each window of `jobs` (things in name order) with its behaviour's group model,
    /// which then learns it; returns the verdicts by closing position.
    fn score_group_models(
        &mut self,
        jobs: &[MlJob],
        end: Millis,
    ) -> Result<Vec<(usize, crate::Result<Verdict>)>, FleetError> {
        let mut out = Vec::with_capacity(jobs.len());
        let mut i_prev = usize::MAX;
        for (k, _, i, _, row) in jobs {
            let slot = &self.slots[*i];
            let key = (slot.profile_name.clone(), slot.behavior_name.clone());
            if *i != i_prev {
                i_prev = *i;
                let stale = self
                    .group_models
                    .get(&key)
                    .is_none_or(|g| g.fingerprint != slot.fingerprint);
                if stale {
                    let members = jobs.iter().filter(|j| j.2 == *i).count();
                    let d = self.new_group_detector(*i, members)?;
                    self.group_models.insert(
                        key.clone(),
                        GroupModel {
                            fingerprint: self.slots[*i].fingerprint.clone(),
                            detector: Box::new(d),
                            last_use: None,
                        },
                    );
                }
            }
            let g = self.group_models.get_mut(&key).expect("made above");
            g.last_use = Some(end);
            out.push((*k, g.detector.process(row)));
        }
        Ok(out)
    }

    /// A new group model for slot `i`, for a group of about `members` things: shingle 1 (its
    /// stream interleaves things), no hold-off or repeat suppression (consecutive points are
    /// different things), and a time decay that remembers as many windows as a thing's own
    /// model does.
    fn new_group_detector(&self, i: usize, members: usize) -> Result<Detector, FleetError> {
        let slot = &self.slots[i];
        let b = &slot.def;
        let sensitivity = b.ml_sensitivity().expect("ML slot");
        let m = &self.config.model;
        let samples = b.ml.sample_size.unwrap_or(m.sample_size);
        let seed = b.ml.seed.unwrap_or(self.config.seed)
            ^ violation_id(&slot.profile_name, &slot.behavior_name, "", 1)
                .bytes()
                .fold(0u64, |h, c| h.wrapping_mul(31).wrapping_add(u64::from(c)));
        Detector::builder(slot.features.iter().map(|f| f.to_string()))
            .seed(seed)
            .sensitivity(sensitivity)
            .num_trees(b.ml.num_trees.unwrap_or(m.num_trees))
            .sample_size(samples)
            .shingle_size(1)
            .box_cache_min_mass(m.box_cache_min_mass)
            .p_values(false)
            .time_decay(m.time_decay(b.ml.time_decay, samples, members))
            .holdoff(0)
            .repeat_tolerance(0.0)
            .build()
            .map(|mut d| {
                d.settle_after_warm_up();
                d
            })
            .map_err(|e| FleetError::InvalidParameter {
                name: "rcf",
                reason: e.to_string(),
            })
    }

    /// Makes the model of (`thing`, slot `i`) resident: restored from its checkpoint if
    /// evicted, else, if it has none yet, a new one trained from the store's history before
    /// `start`.
    fn resident_model(
        &mut self,
        thing: &Arc<str>,
        i: usize,
        start: Millis,
    ) -> Result<(), FleetError> {
        let st = self.things[thing].slots[i]
            .as_ref()
            .expect("closing slots have state");
        if st.detector.is_some() {
            return Ok(());
        }
        if st.evicted {
            return self.restore_models(&[(0, thing.clone(), i, start, Vec::new())]);
        }
        let w = self.slots[i].window_ms.expect("ML is windowed");
        let d = self.new_detector(thing, i, start, w)?;
        self.install(thing, i, d);
        Ok(())
    }

    /// Scores each row of `part` (resident models of things in name order) with its model,
    /// in parallel; returns the verdicts by closing position.
    fn score_models(
        &mut self,
        part: &[MlJob],
        end: Millis,
    ) -> Vec<(usize, crate::Result<Verdict>)> {
        let (Some(first), Some(last)) = (part.first(), part.last()) else {
            return Vec::new();
        };
        // on a file store a checkpointed model's rows go to its log at the next commit
        let log = self.store.is_durable();
        let mut jobs: Vec<(usize, &mut SlotState, &[f32], Millis)> = Vec::with_capacity(part.len());
        let mut next = 0;
        for (name, t) in self.things.range_mut(first.1.clone()..=last.1.clone()) {
            for (i, s) in t.slots.iter_mut().enumerate() {
                if let Some((k, n, pi, _, row)) = part.get(next)
                    && n == name
                    && *pi == i
                {
                    let w = self.slots[i].window_ms.expect("ML is windowed");
                    jobs.push((*k, s.as_mut().expect("resident"), row, w));
                    next += 1;
                }
            }
        }
        debug_assert_eq!(next, part.len(), "the part is in name order");
        use rayon::prelude::*;
        let done: Vec<(usize, crate::Result<Verdict>, isize)> = jobs
            .par_chunks_mut(PREFETCH_CHUNK)
            .flat_map_iter(|chunk| {
                let mut out = Vec::with_capacity(chunk.len());
                for j in 0..chunk.len() {
                    if let Some(d) = chunk.get(j + 1).and_then(|n| n.1.detector.as_deref()) {
                        d.prefetch();
                    }
                    let (k, st, row, w) = &mut chunk[j];
                    let det = st.detector.as_deref_mut().expect("made resident");
                    let v = det.process(row);
                    if log && st.stored {
                        if st.pending.len() + row.len() > MAX_PENDING {
                            st.stored = false;
                            st.pending = Vec::new();
                        } else {
                            st.pending.extend_from_slice(row);
                        }
                    }
                    // an event opening or closing changes the model's size
                    let bytes = det.memory_usage();
                    let grew = bytes as isize - st.usage.bytes as isize;
                    st.usage.bytes = bytes;
                    st.usage.seen = det.points_seen();
                    st.usage.touch(end, *w);
                    out.push((*k, v, grew));
                }
                out
            })
            .collect();
        let grew: isize = done.iter().map(|d| d.2).sum();
        self.models.resident_bytes = self.models.resident_bytes.saturating_add_signed(grew);
        self.models.peak_bytes = self.models.peak_bytes.max(self.models.resident_bytes);
        done.into_iter().map(|(k, v, _)| (k, v)).collect()
    }

    /// Evicts models until those in memory fit the budget (to 7/8 of it, so that evictions
    /// come in batches and not one per model scored), those expected to be needed last
    /// first.
    fn enforce_budget(&mut self) -> Result<(), FleetError> {
        let Some(budget) = self.config.memory_budget else {
            return Ok(());
        };
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        if self.models.resident_bytes <= budget {
            return Ok(());
        }
        let target = budget - budget / 8;
        // (next use, rank, slot): the farthest next use first, ties by name order, last first
        let mut resident: Vec<(Millis, u32, usize, Arc<str>)> = Vec::new();
        for (rank, (name, t)) in self.things.iter().enumerate() {
            for (i, st) in t.slots.iter().enumerate() {
                if let Some(st) = st
                    && st.detector.is_some()
                {
                    resident.push((st.usage.next_use(), rank as u32, i, name.clone()));
                }
            }
        }
        resident.sort_unstable_by_key(|r| std::cmp::Reverse((r.0, r.1, r.2)));
        // take the victims out
        let mut victims: Vec<(Arc<str>, usize, Box<Detector>)> = Vec::new();
        let mut left = self.models.resident_bytes;
        for (_, _, i, name) in resident {
            if left <= target {
                break;
            }
            let t = self.things.get_mut(&name).expect("known");
            let st = t.slots[i].as_mut().expect("resident");
            left = left.saturating_sub(st.usage.bytes);
            victims.push((name, i, st.detector.take().expect("resident")));
        }
        // the pool encodes the checkpoints while this thread writes them, serially and in
        // victim order (the store's file does not depend on the threads): encoding all, then
        // writing all, left a budgeted 100k fleet's two cores 40 % idle
        let (tx, rx) = std::sync::mpsc::channel::<(usize, EncodedModel)>();
        rayon::in_place_scope(|s| {
            for (k, (name, i, d)) in victims.into_iter().enumerate() {
                let tx = tx.clone();
                s.spawn(move |_| {
                    let _ = tx.send((k, (name, i, d.to_bytes_with_digest())));
                });
            }
            drop(tx);
            let mut early: BTreeMap<usize, EncodedModel> = BTreeMap::new();
            let mut written = Ok(());
            let mut next = 0;
            while let Some((k, model)) = recv_helping(&rx) {
                early.insert(k, model);
                while let Some((name, i, (bytes, digest))) = early.remove(&next) {
                    next += 1;
                    if written.is_ok() {
                        written = self.evict(&name, i, &bytes, digest);
                    }
                }
            }
            written
        })
    }

    /// Restores, in parallel, the evicted models of `part` from their checkpoints.
    fn restore_models(&mut self, part: &[MlJob]) -> Result<(), FleetError> {
        let mut wanted: Vec<Wanted> = Vec::new();
        for (_, name, i, _, _) in part {
            let st = self.things[name].slots[*i]
                .as_ref()
                .expect("closing slots have state");
            if st.detector.is_some() || !st.evicted {
                continue;
            }
            // a copy: a failed restore changes nothing
            wanted.push((name.clone(), *i, st.digest, st.unreplayed.clone()));
        }
        // this thread reads the checkpoints (serially) while the pool decodes those read and
        // replays their logs; those this process wrote skip the forests' checks (unless
        // changed since)
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Detector, String>)>();
        let mut read = Ok(());
        let (store, slots) = (&mut self.store, &self.slots);
        rayon::in_place_scope(|s| {
            for (k, (name, i, digest, log)) in wanted.iter().enumerate() {
                let slot = &slots[*i];
                let (p, b) = (&*slot.profile_name, &*slot.behavior_name);
                let bytes = match store.read_model(name, p, b) {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => {
                        read = Err((name, None));
                        break;
                    }
                    Err(e) => {
                        read = Err((name, Some(e)));
                        break;
                    }
                };
                let (tx, digest) = (tx.clone(), *digest);
                s.spawn(move |_| {
                    let d = match digest {
                        Some(digest) => Detector::from_bytes_with_digest(&bytes, &digest),
                        None => Detector::from_bytes(&bytes),
                    };
                    let d = d.map_err(|e| e.to_string()).and_then(|mut d| {
                        // at this build's sensitivity, as the rows were learned live
                        slot.recalibrate(&mut d).map_err(|e| e.to_string())?;
                        replay(&mut d, log, slot.features.len());
                        Ok(d)
                    });
                    let _ = tx.send((k, d));
                });
            }
        });
        drop(tx);
        match read {
            Ok(()) => {}
            Err((_, Some(e))) => return Err(e.into()),
            Err((name, None)) => return Err(self.corrupt_model(name, "its checkpoint is missing")),
        }
        let mut decoded: Vec<(usize, Result<Detector, String>)> = rx.into_iter().collect();
        decoded.sort_unstable_by_key(|d| d.0);
        // nothing is installed unless every checkpoint decodes
        let mut models = Vec::with_capacity(decoded.len());
        for ((name, _, _, _), (_, d)) in wanted.iter().zip(decoded) {
            let d = d.map_err(|e| self.corrupt_model(name, e))?;
            models.push(d);
        }
        for ((name, i, _, _), d) in wanted.into_iter().zip(models) {
            self.models.restores += 1;
            self.models.evicted -= 1;
            self.install(&name, i, d);
        }
        Ok(())
    }

    /// The error for the evicted model of `thing` whose checkpoint is missing or corrupt.
    fn corrupt_model(&self, thing: &str, why: impl std::fmt::Display) -> FleetError {
        self.corrupt(
            &format!("the evicted model of thing {}", quoted(thing)),
            why,
        )
    }

    /// Puts a model into memory for (`thing`, slot `i`).
    fn install(&mut self, thing: &Arc<str>, i: usize, d: Detector) {
        let st = self.things.get_mut(thing).expect("known").slots[i]
            .as_mut()
            .expect("known");
        st.usage.measure(&d);
        st.detector = Some(Box::new(d));
        st.evicted = false;
        st.digest = None;
        st.unreplayed = Vec::new();
        self.models.resident += 1;
        self.models.resident_bytes += st.usage.bytes;
        self.models.peak_bytes = self.models.peak_bytes.max(self.models.resident_bytes);
    }

    /// Writes the checkpoint `state` (with its `digest`) of the model of (`thing`, slot `i`),
    /// already taken out of memory, and records the eviction.
    fn evict(
        &mut self,
        thing: &Arc<str>,
        i: usize,
        state: &[u8],
        digest: CheckpointDigest,
    ) -> Result<(), FleetError> {
        let t = self.things.get_mut(thing).expect("known");
        let st = t.slots[i].as_mut().expect("resident");
        st.evicted = true;
        st.digest = Some(digest);
        let bytes = std::mem::take(&mut st.usage.bytes);
        // the checkpoint is the model as it is, in the commit to come: no log to replay
        // onto it (the entries of the commits before are left behind)
        let learned = (st.usage.seen, st.usage.needed);
        if !st.stored {
            st.checkpoint_due =
                staggered_due(thing, self.watermark, self.config.model_checkpoint_ms);
        }
        st.stored = true;
        st.log_from = self.commits;
        st.logged = 0;
        st.pending = Vec::new();
        // the thing's saved state must say the model is evicted
        t.mark_dirty(thing, &mut self.dirty);
        let slot = &self.slots[i];
        self.store.put_model(
            thing,
            &slot.profile_name,
            &slot.behavior_name,
            state,
            learned,
            self.commits,
        )?;
        self.models.resident -= 1;
        self.models.evicted += 1;
        self.models.evictions += 1;
        self.models.resident_bytes = self.models.resident_bytes.saturating_sub(bytes);
        Ok(())
    }

    /// Accounts for a slot state being dropped: its model leaves memory, and its checkpoint
    /// (if it has one) the store.
    fn discard(&mut self, thing: &str, slot: &Slot, st: &SlotState) -> Result<(), FleetError> {
        if st.detector.is_some() {
            self.models.resident -= 1;
            self.models.resident_bytes = self.models.resident_bytes.saturating_sub(st.usage.bytes);
        } else if st.evicted {
            self.models.evicted -= 1;
        } else {
            return Ok(());
        }
        // a restored model's checkpoint stays in the store until replaced: delete it too
        // (its log entries go with the commits no checkpoint needs)
        self.store
            .delete_model(thing, &slot.profile_name, &slot.behavior_name)?;
        Ok(())
    }

    /// Device Defender's `GetBehaviorModelTrainingSummaries`: one record per ML behaviour
    /// (of `profile`, or of every profile), in profile and behaviour order, with
    /// `securityProfileName`, `behaviorName`, `trainingDataCollectionStartDate`,
    /// `modelStatus`, `datapointsCollectedPercentage` and `lastModelRefreshDate`, plus rcf's
    /// `rcf` object: the scope, how many things' models are warming, active and evicted, the
    /// datapoints a model needs before it raises violations, and with `per_thing` each thing's
    /// state (`WARMING`, `ACTIVE`, or `GROUP` where only the group model judges it).
    ///
    /// A behaviour is `ACTIVE` once a model that judges its things is warm (ready, at
    /// [`ML_MIN_CONFIDENCE`]); `PENDING_BUILD` before, with the share of the datapoints
    /// collected (the mean over its things for their own models, the group model's own
    /// otherwise); `EXPIRED` if it has been pending for 30 days of event time (Device
    /// Defender's retry limit). Times are epoch seconds.
    ///
    /// # Errors
    ///
    /// [`FleetError::InvalidParameter`] for a profile that does not exist.
    pub fn model_training_summaries(
        &self,
        profile: Option<&str>,
        per_thing: bool,
    ) -> Result<Vec<Value>, FleetError> {
        if let Some(p) = profile
            && !self.profiles.iter().any(|x| x.name == p)
        {
            return Err(FleetError::InvalidParameter {
                name: "profile",
                reason: format!("no security profile is named {}", quoted(p)),
            });
        }
        let secs = |ms: Millis| json!(ms.div_euclid(1000));
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if !matches!(slot.def.kind, CriteriaKind::Ml { .. })
                || profile.is_some_and(|p| p != &*slot.profile_name)
            {
                continue;
            }
            let scope = slot.def.ml.scope;
            let group = self
                .group_models
                .get(&(slot.profile_name.clone(), slot.behavior_name.clone()))
                .filter(|g| g.fingerprint == slot.fingerprint);
            let group_warm = group.is_some_and(|g| {
                g.detector.state() == DetectorState::Ready
                    && g.detector.points_seen()
                        >= g.detector.points_to_confidence(ML_MIN_CONFIDENCE)
            });
            let (mut warming, mut active, mut evicted, mut things) = (0usize, 0usize, 0usize, 0);
            let (mut share, mut start, mut refresh) = (0.0f64, None::<Millis>, None::<Millis>);
            // what a model of this behaviour needs (the first thing's, as the engine makes them)
            let mut first_needed: Option<u64> = None;
            let mut list = Vec::new();
            for (name, t) in &self.things {
                let Some(st) = t.slots[i].as_ref() else {
                    continue;
                };
                things += 1;
                start = Some(start.map_or(st.since, |s| s.min(st.since)));
                let u = &st.usage;
                first_needed.get_or_insert(u.needed);
                if u.last_use != 0 {
                    refresh = Some(refresh.map_or(u.last_use, |r| r.max(u.last_use)));
                }
                if st.evicted {
                    evicted += 1;
                }
                let state = if !scope.per_device() {
                    "GROUP"
                } else if u.needed > 0 && u.seen >= u.needed {
                    active += 1;
                    "ACTIVE"
                } else {
                    warming += 1;
                    if scope == super::profile::ModelScope::Hierarchical && group_warm {
                        "GROUP"
                    } else {
                        "WARMING"
                    }
                };
                if scope.per_device() {
                    share += if u.needed == 0 {
                        0.0
                    } else {
                        (u.seen as f64 / u.needed as f64).min(1.0)
                    };
                }
                if per_thing {
                    list.push(json!({
                        "thingName": &**name,
                        "modelStatus": state,
                        "datapointsCollected": u.seen,
                        "datapointsNeeded": u.needed,
                        "evicted": st.evicted,
                    }));
                }
            }
            let group_share = group.map_or(0.0, |g| {
                let need = g.detector.points_to_confidence(ML_MIN_CONFIDENCE);
                (g.detector.points_seen() as f64 / need as f64).min(1.0)
            });
            if let Some(g) = group.and_then(|g| g.last_use) {
                refresh = Some(refresh.map_or(g, |r| r.max(g)));
            }
            let is_active = match scope {
                super::profile::ModelScope::PerDevice => active > 0,
                super::profile::ModelScope::Group => group_warm,
                super::profile::ModelScope::Hierarchical => active > 0 || group_warm,
            };
            let percentage = if is_active {
                100.0
            } else if scope.per_device() && things > 0 {
                100.0 * share / things as f64
            } else {
                100.0 * group_share
            };
            let status = if is_active {
                "ACTIVE"
            } else if start.is_some_and(|s| self.watermark - s > 30 * 24 * HOUR) {
                "EXPIRED"
            } else {
                "PENDING_BUILD"
            };
            let needed = match scope {
                super::profile::ModelScope::Group => None,
                _ => first_needed.filter(|&n| n > 0),
            };
            let mut rec = json!({
                "securityProfileName": &*slot.profile_name,
                "behaviorName": &*slot.behavior_name,
                "modelStatus": status,
                "datapointsCollectedPercentage": (percentage * 10.0).round() / 10.0,
                "rcf": {
                    "scope": scope.as_str(),
                    "things": things,
                    "warming": warming,
                    "active": active,
                    "evicted": evicted,
                    "datapointsNeeded": needed,
                    "groupModel": group.map(|g| json!({
                        "datapointsCollected": g.detector.points_seen(),
                        "datapointsNeeded": g.detector.points_to_confidence(ML_MIN_CONFIDENCE),
                        "active": group_warm,
                    })),
                },
            });
            if let Some(s) = start {
                rec["trainingDataCollectionStartDate"] = secs(s);
            }
            if let Some(r) = refresh.filter(|_| is_active) {
                rec["lastModelRefreshDate"] = secs(r);
            }
            if per_thing {
                rec["rcf"]["perThing"] = Value::Array(list);
            }
            out.push(rec);
        }
        Ok(out)
    }

    /// What the model registry holds and has done since the engine was opened.
    ///
    /// ```
    /// use rcf_stream::fleet::{Engine, EngineConfig};
    /// let engine = Engine::open(EngineConfig::default(), None)?;
    /// assert_eq!(engine.model_stats().resident, 0);
    /// # Ok::<(), rcf_stream::fleet::FleetError>(())
    /// ```
    pub fn model_stats(&self) -> ModelStats {
        self.models
    }

    fn slot_kind(&self, i: usize) -> &CriteriaKind {
        let s = &self.slots[i];
        &self.profiles[s.profile].behaviors[s.behavior].kind
    }

    /// A closed window's value: sums for counts, means for levels.
    fn window_value(&self, i: usize, win: &Window) -> MetricValue {
        let slot = &self.slots[i];
        let v = match slot.aggregation[0] {
            Aggregation::Sum => win.sums[0],
            _ => win.sums[0] / f64::from(win.counts[0].max(1)),
        };
        if slot.aggregation[0] == Aggregation::Sum && win.integral && (0.0..1.8e19).contains(&v) {
            MetricValue::Count(v as u64)
        } else {
            MetricValue::Number(v)
        }
    }

    fn judge_static(&self, i: usize, value: &MetricValue) -> Observation {
        let s = &self.slots[i];
        let b = &self.profiles[s.profile].behaviors[s.behavior];
        match &b.kind {
            CriteriaKind::Static { op, value: want } => {
                let holds = op.holds(value, want).unwrap_or(true);
                Observation {
                    value: Some(value.clone()),
                    violating: !holds,
                    reason: Reason::Static,
                    ml: None,
                }
            }
            // statistical and ML behaviours are always windowed
            _ => Observation {
                value: Some(value.clone()),
                violating: false,
                reason: Reason::Text(""),
                ml: None,
            },
        }
    }

    /// An observation's reason in words.
    fn describe(&self, i: usize, obs: &Observation) -> String {
        let s = &self.slots[i];
        let b = &self.profiles[s.profile].behaviors[s.behavior];
        let value = obs
            .value
            .as_ref()
            .map_or("nothing".to_string(), ToString::to_string);
        let not = if obs.violating { "not " } else { "" };
        match (&obs.reason, &b.kind) {
            (Reason::Text(t), _) => (*t).to_string(),
            (Reason::Static, CriteriaKind::Static { op, value: want }) => {
                format!("{} {value} is {not}{} {want}", b.metric, op.as_str())
            }
            (
                Reason::Statistical { threshold, n },
                CriteriaKind::Statistical { op, statistic, .. },
            ) => format!(
                "{} {value} is {not}{} the fleet's {statistic} ({threshold} over {n} things)",
                b.metric,
                op.as_str()
            ),
            (Reason::Ml, _) => match &obs.ml {
                Some(ml) if obs.violating => {
                    let top = ml
                        .attribution
                        .iter()
                        .max_by(|a, b| (a.1 + a.2).total_cmp(&(b.1 + b.2)))
                        .map_or(String::new(), |(m, h, l)| {
                            format!(", mostly {m} {}", if h >= l { "high" } else { "low" })
                        });
                    format!(
                        "RCF score {:.3} above threshold {:.3} (grade {:.2}){top}",
                        ml.score, ml.threshold, ml.grade
                    )
                }
                Some(ml) => format!(
                    "RCF score {:.3} within threshold {:.3}",
                    ml.score, ml.threshold
                ),
                None => String::new(),
            },
            _ => String::new(),
        }
    }

    fn judge_window(
        &self,
        i: usize,
        win: &Window,
        threshold: Option<(f64, usize)>,
        verdict: MlVerdicts,
    ) -> Result<Option<Observation>, FleetError> {
        let value = self.window_value(i, win);
        Ok(match self.slot_kind(i) {
            CriteriaKind::Static { .. } => Some(self.judge_static(i, &value)),
            CriteriaKind::Statistical { op, .. } => match threshold {
                None => None,
                Some((threshold, n)) => {
                    let x = value.as_number().expect("numeric");
                    let holds = op
                        .holds(&MetricValue::Number(x), &MetricValue::Number(threshold))
                        .expect("numbers");
                    Some(Observation {
                        value: Some(value),
                        violating: !holds,
                        reason: Reason::Statistical { threshold, n },
                        ml: None,
                    })
                }
            },
            CriteriaKind::Ml { confidence } => {
                let ml_err = |e: crate::Error| FleetError::Datapoint(format!("ML behaviour: {e}"));
                let warm = |v: &Verdict| {
                    matches!(v.state, DetectorState::Ready) && v.confidence >= ML_MIN_CONFIDENCE
                };
                let device = verdict.device.transpose().map_err(ml_err)?.filter(warm);
                let group = verdict.group.transpose().map_err(ml_err)?.filter(warm);
                // hierarchical: the thing's own model once warm, the group's until then
                let (v, from_group) = match (device, group) {
                    (Some(v), _) => (v, false),
                    (None, Some(v)) => (v, true),
                    (None, None) => return Ok(None),
                };
                // a group model's events span things, so only its own verdict counts
                let violating = v.is_anomaly || (v.in_event && !from_group);
                let mut ml = MlExplanation::from_verdict(*confidence, &v, &self.slots[i].features);
                ml.group_model = from_group;
                Some(Observation {
                    value: Some(value),
                    violating,
                    reason: Reason::Ml,
                    ml: Some(ml),
                })
            }
        })
    }

    /// Feature `f`'s value in a window as the detector reads it (NaN: no data, imputed).
    fn feature_value(&self, i: usize, f: usize, win: &Window) -> f32 {
        if win.counts[f] == 0 {
            return f32::NAN;
        }
        let v = match self.slots[i].aggregation[f] {
            Aggregation::Sum => win.sums[f],
            _ => win.sums[f] / f64::from(win.counts[f]),
        };
        (v as f32).clamp(-f32::MAX, f32::MAX)
    }

    /// A new ML detector for `thing` and slot `i`, trained at once from the stored history
    /// before `start` (no waiting for a training period when history exists).
    fn new_detector(
        &mut self,
        thing: &str,
        i: usize,
        start: Millis,
        w: Millis,
    ) -> Result<Detector, FleetError> {
        let slot = self.slots[i].clone();
        let b = &self.profiles[slot.profile].behaviors[slot.behavior];
        let sensitivity = b.ml_sensitivity().expect("ML slot");
        let seed = b.ml.seed.unwrap_or(self.config.seed)
            ^ super::violation::violation_id(&slot.profile_name, &slot.behavior_name, thing, 0)
                .bytes()
                .fold(0u64, |h, c| h.wrapping_mul(31).wrapping_add(u64::from(c)));
        let m = &self.config.model;
        let samples = b.ml.sample_size.unwrap_or(m.sample_size);
        let builder = Detector::builder(slot.features.iter().map(|f| f.to_string()))
            .seed(seed)
            .sensitivity(sensitivity)
            .num_trees(b.ml.num_trees.unwrap_or(m.num_trees))
            .sample_size(samples)
            .time_decay(m.time_decay(b.ml.time_decay, samples, 1))
            .shingle_size(b.ml.shingle_size.unwrap_or(m.shingle_size))
            .box_cache_min_mass(m.box_cache_min_mass)
            .p_values(false);
        let mut d = builder.build().map_err(|e| FleetError::InvalidParameter {
            name: "rcf",
            reason: e.to_string(),
        })?;
        d.settle_after_warm_up();
        if self.config.history {
            let from = start - self.config.retention_ms;
            let mut windows: BTreeMap<Millis, Window> = BTreeMap::new();
            let nf = slot.features.len();
            for (f, m) in slot.features.iter().enumerate() {
                for row in self.store.metric_values(thing, m, from, start)? {
                    if let Some((dim, not_in)) = &slot.dimension
                        && row.topic.as_deref().is_some_and(|t| dim.matches(t)) == *not_in
                    {
                        continue;
                    }
                    let Some(x) = row.value.as_number() else {
                        continue;
                    };
                    let ts = row.ts;
                    // verification feedback: a confirmed incident's span stays out
                    if self.excluded(thing, &slot.profile_name, &slot.behavior_name, ts) {
                        continue;
                    }
                    let ws = ts.div_euclid(w) * w;
                    let win = windows.entry(ws).or_insert_with(|| Window {
                        start: ws,
                        sums: vec![0.0; nf],
                        counts: vec![0; nf],
                        integral: false,
                    });
                    win.sums[f] += x;
                    win.counts[f] += 1;
                }
            }
            // an excluded span (a confirmed incident) is missing data to the model: imputed
            // from what it knows, so the shingle stays continuous and nothing of it is learned
            if let Some(&first) = windows.keys().next() {
                for (s, e) in self.excluded_spans(thing, &slot.profile_name, &slot.behavior_name) {
                    let lo = s.max(first).div_euclid(w) * w;
                    let hi = e.unwrap_or(start).min(start);
                    let mut ws = lo;
                    while ws < hi {
                        windows.entry(ws).or_insert_with(|| Window {
                            start: ws,
                            sums: vec![0.0; nf],
                            counts: vec![0; nf],
                            integral: false,
                        });
                        ws += w;
                    }
                }
            }
            if !windows.is_empty() {
                let rows: Vec<f32> = windows
                    .values()
                    .flat_map(|win| {
                        (0..nf)
                            .map(|f| self.feature_value(i, f, win))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                d.bootstrap(&rows)
                    .map_err(|e| FleetError::Datapoint(format!("training from history: {e}")))?;
            }
        }
        Ok(d)
    }

    /// Applies an observation to the alarm of (thing, slot): streaks, and the events they
    /// cause.
    fn observe(
        &mut self,
        thing: &Arc<str>,
        i: usize,
        mut obs: Observation,
        time: Millis,
        out: &mut Vec<ViolationEvent>,
    ) -> Result<(), FleetError> {
        // a learned tolerance (verification feedback) makes a like deviation conforming
        if self.forgiven(thing, i, &obs) {
            obs.violating = false;
        }
        let slot = &self.slots[i];
        let b = &self.profiles[slot.profile].behaviors[slot.behavior];
        let (to_alarm, to_clear) = (b.consecutive_to_alarm(), b.consecutive_to_clear());
        let st = self.things.get_mut(thing).expect("known").slots[i]
            .as_mut()
            .expect("observed slots have state");
        let a = &mut st.alarm;
        let mut event = None;
        if obs.violating {
            a.conforming = 0;
            a.violating = a.violating.saturating_add(1);
            match &a.active {
                None if a.violating >= to_alarm => {
                    let id = violation_id(&slot.profile_name, &slot.behavior_name, thing, time);
                    a.active = Some(Active {
                        id: id.clone(),
                        start: time,
                    });
                    event = Some((
                        EventType::InAlarm,
                        id,
                        time,
                        format!("{} violating datapoint(s)", a.violating),
                    ));
                }
                Some(active) => {
                    // still in alarm: keep the active violation's last value current
                    let (id, start) = (active.id.clone(), active.start);
                    let last = obs.value.as_ref().map(|v| v.to_json().to_string());
                    self.store.put_active(
                        &id,
                        thing,
                        &slot.profile_name,
                        &slot.behavior_name,
                        b.kind.type_name(),
                        b.suppresses_alerts(),
                        start,
                        time,
                        last.as_deref(),
                        &slot.fingerprint,
                    )?;
                }
                None => {}
            }
        } else {
            a.violating = 0;
            if a.active.is_some() {
                a.conforming = a.conforming.saturating_add(1);
                if a.conforming >= to_clear {
                    let active = a.active.take().expect("checked");
                    a.conforming = 0;
                    event = Some((
                        EventType::AlarmCleared,
                        active.id,
                        active.start,
                        format!("{to_clear} conforming datapoint(s)"),
                    ));
                }
            }
        }
        if let Some(list) = &mut self.observed {
            let slot = &self.slots[i];
            list.push(ShardVerdict {
                profile_name: slot.profile_name.clone(),
                behavior_name: slot.behavior_name.clone(),
                time,
                value: obs.value.clone(),
                violating: obs.violating,
                score: obs.ml.as_ref().map(|m| m.score),
                grade: obs.ml.as_ref().map(|m| m.grade),
                in_alarm: a.active.is_some(),
            });
        }
        if let Some((et, id, start, count)) = event {
            let reason = format!("{count}: {}", self.describe(i, &obs));
            let slot = self.slots[i].clone();
            let mut ev = self.event(thing, &slot, et, id, start, time, obs.value, reason, obs.ml);
            self.record(&mut ev)?;
            out.push(ev);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        thing: &Arc<str>,
        slot: &Slot,
        event_type: EventType,
        violation_id: String,
        start: Millis,
        time: Millis,
        metric_value: Option<MetricValue>,
        reason: String,
        ml: Option<MlExplanation>,
    ) -> ViolationEvent {
        let b = &slot.def;
        ViolationEvent {
            violation_id,
            thing_name: thing.clone(),
            security_profile_name: slot.profile_name.clone(),
            behavior: b.to_json().clone(),
            behavior_name: slot.behavior_name.clone(),
            criteria_type: b.kind.type_name(),
            metric_value,
            event_type,
            time,
            violation_start_time: start,
            verification_state: "UNKNOWN".into(),
            verification_state_description: None,
            suppressed: b.suppresses_alerts(),
            reason,
            ml,
        }
    }

    /// Stores an event and keeps the active-violation table in step.
    fn record(&mut self, ev: &mut ViolationEvent) -> Result<(), FleetError> {
        if ev.event_type != EventType::InAlarm {
            // a label put on the violation while it was active carries over to its end
            self.stamp_label(ev)?;
        }
        let json = ev.to_json().to_string();
        let first = self.store.insert_event(&EventRow {
            violation_id: &ev.violation_id,
            event_type: ev.event_type.as_str(),
            thing: &ev.thing_name,
            profile: &ev.security_profile_name,
            behavior: &ev.behavior_name,
            criteria_type: ev.criteria_type,
            time: ev.time,
            suppressed: ev.suppressed,
            json: &json,
        })?;
        if first {
            self.on_recorded(ev, &json)?;
        }
        match ev.event_type {
            EventType::InAlarm => {
                self.counters.in_alarm += 1;
                let last = ev.metric_value.as_ref().map(|v| v.to_json().to_string());
                self.store.put_active(
                    &ev.violation_id,
                    &ev.thing_name,
                    &ev.security_profile_name,
                    &ev.behavior_name,
                    ev.criteria_type,
                    ev.suppressed,
                    ev.time,
                    ev.time,
                    last.as_deref(),
                    &ev.behavior.to_string(),
                )?;
            }
            EventType::AlarmCleared | EventType::AlarmInvalidated => {
                if ev.event_type == EventType::AlarmCleared {
                    self.counters.cleared += 1;
                } else {
                    self.counters.invalidated += 1;
                }
                self.store.delete_active(&ev.violation_id)?;
            }
        }
        Ok(())
    }

    fn invalidate(
        &mut self,
        thing: &Arc<str>,
        slot: &Slot,
        a: &Active,
        now: Millis,
        why: &str,
        out: &mut Vec<ViolationEvent>,
    ) -> Result<(), FleetError> {
        let mut ev = self.event(
            thing,
            slot,
            EventType::AlarmInvalidated,
            a.id.clone(),
            a.start,
            now,
            None,
            why.to_string(),
            None,
        );
        self.record(&mut ev)?;
        out.push(ev);
        Ok(())
    }

    /// Things silent for longer than `invalidate_after`: alarms invalidated, state dropped.
    fn expire_silent(&mut self, out: &mut Vec<ViolationEvent>) -> Result<(), FleetError> {
        let cutoff = self.watermark - self.config.invalidate_after_ms;
        let silent: Vec<Arc<str>> = self
            .things
            .iter()
            .filter(|(_, t)| t.last_seen < cutoff)
            .map(|(n, _)| n.clone())
            .collect();
        let hours = self.config.invalidate_after_ms as f64 / HOUR as f64;
        for name in silent {
            let t = self.things.remove(&name).expect("listed");
            for (i, s) in t.slots.iter().enumerate() {
                if let Some(s) = s {
                    let slot = self.slots[i].clone();
                    self.discard(&name, &slot, s)?;
                }
                if let Some(a) = s.as_ref().and_then(|s| s.alarm.active.as_ref()) {
                    let slot = self.slots[i].clone();
                    self.invalidate(
                        &name,
                        &slot,
                        a,
                        self.watermark,
                        &format!("no metrics from the thing for more than {hours} h"),
                        out,
                    )?;
                }
            }
            self.removed.insert(name);
        }
        Ok(())
    }

    /// Commits the open transaction: everything ingested so far becomes durable, with
    /// `cursor` (the caller's position in its input, e.g. lines read) saved alongside. On a
    /// file store the state of every thing that changed is saved too.
    ///
    /// # Errors
    ///
    /// The store failed (the transaction is rolled back; the engine should be reopened).
    pub fn commit(&mut self, cursor: Option<&str>) -> Result<(), FleetError> {
        let r = self.commit_inner(cursor, false);
        if r.is_err() {
            self.store.rollback();
            // the rolled-back checkpoints and log entries are not in the store: write every
            // model in full next time (its older entries are left for the purge)
            for st in self
                .things
                .values_mut()
                .flat_map(|t| t.slots.iter_mut().flatten())
            {
                st.stored = false;
                st.logged = 0;
                st.pending = Vec::new();
            }
        }
        r
    }

    fn commit_inner(&mut self, cursor: Option<&str>, all: bool) -> Result<(), FleetError> {
        if self.store.is_durable() || all {
            // deletions first: a thing that went silent and came back is saved, not deleted
            for name in std::mem::take(&mut self.removed) {
                self.store.delete_thing(&name)?;
            }
            let mut names: Vec<Arc<str>> = if all {
                self.things.keys().cloned().collect()
            } else {
                std::mem::take(&mut self.dirty)
            };
            // a model with a log whose checkpoint is due is saved even if its thing is quiet,
            // so that its log's entries can go
            let now = self.watermark;
            names.extend(
                self.things
                    .iter()
                    .filter(|(_, t)| {
                        t.slots.iter().flatten().any(|st| {
                            st.detector.is_some() && st.logged > 0 && now >= st.checkpoint_due
                        })
                    })
                    .map(|(n, _)| n.clone()),
            );
            names.sort_unstable();
            names.dedup();
            // an in-memory store's models are saved in full (nothing replays a log there)
            let full = !self.store.is_durable();
            let seq = self.commits + 1;
            for name in names {
                if let Some(t) = self.things.get_mut(&name) {
                    t.dirty = false;
                    self.save_models(&name, seq, full)?;
                    let saved = self.save_thing(&self.things[&name], false);
                    self.store.put_thing(&name, &encode_thing(&saved))?;
                }
            }
            // the log entries every checkpoint is past
            let needed = self
                .things
                .values()
                .flat_map(|t| t.slots.iter().flatten())
                .filter(|st| st.stored && st.logged > 0)
                .map(|st| st.log_from)
                .min()
                .unwrap_or(seq);
            self.store.purge_model_logs(needed)?;
            self.store.put_meta("commits", &seq.to_le_bytes())?;
        } else {
            for name in std::mem::take(&mut self.dirty) {
                if let Some(t) = self.things.get_mut(&name) {
                    t.dirty = false;
                }
            }
            self.removed.clear();
        }
        // retention scans the history: once per 1/14 of the retention period (a day by default)
        let every = (self.config.retention_ms / 14).clamp(HOUR, 24 * HOUR);
        if self.max_ts.is_some() && self.watermark.saturating_sub(self.last_retention) >= every {
            self.store
                .retain(self.watermark - self.config.retention_ms)?;
            self.last_retention = self.watermark;
        }
        let clock = SavedClock {
            max_ts: self.max_ts,
            watermark: self.watermark,
            next_close: self.next_close().unwrap_or(i64::MAX),
            last_retention: self.last_retention,
            counters: self.counters.clone(),
        };
        self.store.put_meta("clock", &encode(&clock))?;
        if self.store.is_durable() || all {
            let groups: Vec<SavedGroupModel> = self
                .group_models
                .iter()
                .map(|((p, b), g)| SavedGroupModel {
                    profile: p.to_string(),
                    behavior: b.to_string(),
                    fingerprint: g.fingerprint.clone(),
                    detector: Bytes(g.detector.to_bytes()),
                })
                .collect();
            self.store.put_meta("group-models", &encode(&groups))?;
        }
        self.store
            .put_meta("setup", self.setup.to_string().as_bytes())?;
        self.settle_incidents()?;
        if let Some(c) = cursor {
            self.store.put_meta("cursor", c.as_bytes())?;
            self.cursor = Some(c.to_string());
        }
        self.store.commit()?;
        if self.store.is_durable() || all {
            self.commits += 1;
        }
        Ok(())
    }

    /// Saves the models of `thing` in memory, in commit `seq`: in full (`full`, or one not
    /// checkpointed yet, or due, see [`EngineConfig::model_checkpoint_ms`]), or as the rows
    /// each learned since the last commit.
    fn save_models(&mut self, thing: &Arc<str>, seq: u64, full: bool) -> Result<(), FleetError> {
        let now = self.watermark;
        let every = self.config.model_checkpoint_ms;
        let Some(t) = self.things.get_mut(thing) else {
            return Ok(());
        };
        for (i, s) in t.slots.iter_mut().enumerate() {
            let Some(st) = s.as_mut() else {
                continue;
            };
            let Some(d) = st.detector.as_deref() else {
                continue;
            };
            let slot = &self.slots[i];
            let key = (&**thing, &*slot.profile_name, &*slot.behavior_name);
            if full || !st.stored || now >= st.checkpoint_due {
                let learned = (st.usage.seen, st.usage.needed);
                self.store
                    .put_model(key.0, key.1, key.2, &d.to_bytes(), learned, seq)?;
                st.checkpoint_due = if st.stored {
                    now.saturating_add(every)
                } else {
                    staggered_due(thing, now, every)
                };
                st.stored = true;
                st.log_from = seq;
                st.logged = 0;
                st.pending.clear();
            } else if !st.pending.is_empty() {
                let mut rows = Vec::with_capacity(st.pending.len() * 4);
                for v in &st.pending {
                    rows.extend_from_slice(&v.to_le_bytes());
                }
                self.store.append_model_log(seq, key, st.logged, &rows)?;
                st.logged += (st.pending.len() / slot.features.len().max(1)) as u64;
                st.pending.clear();
            }
        }
        Ok(())
    }

    /// A thing's state to save: with its models' checkpoints inside (`embed_models`, a
    /// [`Shard`]'s state), or without (the engine's store keeps them in `models`).
    fn save_thing(&self, t: &ThingState, embed_models: bool) -> SavedThing {
        SavedThing {
            last_seen: t.last_seen,
            slots: t
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let s = s.as_ref()?;
                    let slot = &self.slots[i];
                    Some(SavedSlot {
                        profile: slot.profile_name.to_string(),
                        behavior: slot.behavior_name.to_string(),
                        fingerprint: slot.fingerprint.clone(),
                        windows: s.windows.clone(),
                        alarm: s.alarm.clone(),
                        since: s.since,
                        detector: s
                            .detector
                            .as_ref()
                            .filter(|_| embed_models)
                            .map(|d| Bytes(d.to_bytes())),
                    })
                })
                .collect(),
        }
    }

    /// The whole engine (store, configuration and state) as bytes, after committing; see
    /// [`from_bytes`](Self::from_bytes).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, FleetError> {
        let cursor = self.cursor.clone();
        self.commit_inner(cursor.as_deref(), true)?;
        Ok(self.store.to_bytes()?)
    }

    /// Active violations (Device Defender's `ListActiveViolations`), oldest first.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn list_active_violations(&self, filter: &Filter) -> Result<Vec<Value>, FleetError> {
        let (sql, args) = filter.sql(
            "SELECT violation_id, thing, profile, behavior_json, last_value, last_time, start_time, verification_state, suppressed \
             FROM active_violations WHERE 1 = 1",
            "start_time",
            None,
        );
        let rows = self
            .store
            .query(&format!("{sql} ORDER BY start_time, violation_id"), &args)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("violationId".into(), sql_json(&r[0]));
                o.insert("thingName".into(), sql_json(&r[1]));
                o.insert("securityProfileName".into(), sql_json(&r[2]));
                o.insert("behavior".into(), sql_text_json(&r[3]));
                if !matches!(r[4], rusqlite::types::Value::Null) {
                    o.insert("lastViolationValue".into(), sql_text_json(&r[4]));
                }
                o.insert("lastViolationTime".into(), ms_json(&r[5]));
                o.insert("violationStartTime".into(), ms_json(&r[6]));
                o.insert("verificationState".into(), sql_json(&r[7]));
                o.insert(
                    "suppressAlerts".into(),
                    json!(matches!(r[8], rusqlite::types::Value::Integer(1))),
                );
                Value::Object(o)
            })
            .collect())
    }

    /// Violation events from `start` to `end` (epoch ms, end exclusive), oldest first
    /// (Device Defender's `ListViolationEvents`), as their JSON.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn list_violation_events(
        &self,
        start: Millis,
        end: Millis,
        filter: &Filter,
    ) -> Result<Vec<Value>, FleetError> {
        let (sql, args) = filter.sql(
            "SELECT json FROM violation_events WHERE 1 = 1",
            "time",
            Some((start, end)),
        );
        let rows = self.store.query(&format!("{sql} ORDER BY seq"), &args)?;
        Ok(rows.iter().map(|r| sql_text_json(&r[0])).collect())
    }

    /// A thing's stored values of `metric` from `start` to `end` (epoch ms, end exclusive),
    /// oldest first (Device Defender's `ListMetricValues`): `{"timestamp", "value"}` objects.
    /// `dimension` (a dimension's name, `NOT_IN` with `not_in`) keeps only the values whose
    /// topic matches it.
    ///
    /// # Errors
    ///
    /// An unknown dimension; the store failed.
    pub fn list_metric_values(
        &mut self,
        thing: &str,
        metric: &str,
        dimension: Option<(&str, bool)>,
        start: Millis,
        end: Millis,
    ) -> Result<Vec<Value>, FleetError> {
        let dim = match dimension {
            None => None,
            Some((name, not_in)) => Some((
                self.dimensions
                    .get(name)
                    .ok_or_else(|| FleetError::InvalidParameter {
                        name: "dimension",
                        reason: format!("{} is not a defined dimension", quoted(name)),
                    })?,
                not_in,
            )),
        };
        let rows = self.store.metric_values(thing, metric, start, end)?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                dim.is_none_or(|(d, not_in)| {
                    r.topic.as_deref().is_some_and(|t| d.matches(t)) != not_in
                })
            })
            .map(|r| json!({"timestamp": time::to_json(r.ts), "value": r.value.to_json()}))
            .collect())
    }
}

/// Filters of the violation queries (Device Defender's `ListActiveViolations` and
/// `ListViolationEvents` parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filter {
    /// `thingName`.
    pub thing: Option<String>,
    /// `securityProfileName`.
    pub profile: Option<String>,
    /// `behaviorCriteriaType`: `STATIC`, `STATISTICAL` or `MACHINE_LEARNING`.
    pub criteria_type: Option<String>,
    /// `listSuppressedAlerts`: `Some(false)` leaves out behaviours with `suppressAlerts`.
    pub list_suppressed_alerts: Option<bool>,
    /// `verificationState`.
    pub verification_state: Option<String>,
}

impl Filter {
    fn sql(
        &self,
        base: &str,
        time_col: &str,
        range: Option<(Millis, Millis)>,
    ) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value as V;
        let mut sql = base.to_string();
        let mut args = Vec::new();
        let mut add = |col: &str, v: V| {
            args.push(v);
            sql.push_str(&format!(" AND {col} = ?{}", args.len()));
        };
        if let Some(t) = &self.thing {
            add("thing", V::Text(t.clone()));
        }
        if let Some(p) = &self.profile {
            add("profile", V::Text(p.clone()));
        }
        if let Some(c) = &self.criteria_type {
            add("criteria_type", V::Text(c.clone()));
        }
        if let Some(v) = &self.verification_state {
            add("verification_state", V::Text(v.clone()));
        }
        if self.list_suppressed_alerts == Some(false) {
            add("suppressed", V::Integer(0));
        }
        if let Some((s, e)) = range {
            args.push(V::Integer(s));
            sql.push_str(&format!(" AND {time_col} >= ?{}", args.len()));
            args.push(V::Integer(e));
            sql.push_str(&format!(" AND {time_col} < ?{}", args.len()));
        }
        (sql, args)
    }
}

fn sql_json(v: &rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => json!(i),
        V::Real(x) => json!(x),
        V::Text(t) => json!(t),
        V::Blob(_) => Value::Null,
    }
}

fn sql_text_json(v: &rusqlite::types::Value) -> Value {
    match v {
        rusqlite::types::Value::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn ms_json(v: &rusqlite::types::Value) -> Value {
    match v {
        rusqlite::types::Value::Integer(i) => time::to_json(*i),
        _ => Value::Null,
    }
}

/// The `p`-th percentile (0 to 100) of sorted values, interpolating linearly between the
/// closest ranks (NumPy's default).
pub(crate) fn percentile_of(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let rank = p / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn check_config(c: &EngineConfig) -> Result<(), FleetError> {
    let bad =
        |name: &'static str, reason: String| Err(FleetError::InvalidParameter { name, reason });
    if !(0..=24 * HOUR).contains(&c.grace_ms) {
        return bad(
            "grace_ms",
            format!("must be from 0 to a day, got {}", c.grace_ms),
        );
    }
    if c.invalidate_after_ms < 60_000 {
        return bad(
            "invalidate_after_ms",
            format!("must be at least a minute, got {}", c.invalidate_after_ms),
        );
    }
    if c.retention_ms < HOUR {
        return bad(
            "retention_ms",
            format!("must be at least an hour, got {}", c.retention_ms),
        );
    }
    if !(0..=366 * 24 * HOUR).contains(&c.model_checkpoint_ms) {
        return bad(
            "model_checkpoint_ms",
            format!("must be from 0 to a year, got {}", c.model_checkpoint_ms),
        );
    }
    if c.memory_budget == Some(0) {
        return bad("memory_budget", "must be at least 1 byte, got 0".into());
    }
    let m = &c.model;
    if let Err(e) = Detector::builder(["x"])
        .num_trees(m.num_trees)
        .sample_size(m.sample_size)
        .shingle_size(m.shingle_size)
        .box_cache_min_mass(m.box_cache_min_mass)
        .build()
    {
        return bad("model", e.to_string());
    }
    if c.max_future_ms.is_some_and(|f| f < 0) {
        return bad(
            "max_future_ms",
            format!("must not be negative, got {:?}", c.max_future_ms),
        );
    }
    Ok(())
}

impl SavedThing {
    /// Bytes of its models' checkpoints: nearly all of its encoding, the size to reserve.
    pub(super) fn model_bytes(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.detector.as_ref())
            .map(|d| d.0.len())
            .sum()
    }
}

/// [`encode`] of a saved thing into one buffer of about its final size.
fn encode_thing(saved: &SavedThing) -> Vec<u8> {
    let mut out = Vec::with_capacity(saved.model_bytes() + 4096);
    encode_into(saved, &mut out);
    out
}

/// Appends the encoding of `v` to `out` (no intermediate buffer).
pub(super) fn encode_into<T: Serialize>(v: &T, out: &mut Vec<u8>) {
    bincode::serde::encode_into_std_write(v, out, bincode::config::standard())
        .expect("engine state encodes");
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("engine state encodes")
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    let limit = bincode::config::standard().with_limit::<{ 1 << 30 }>();
    match bincode::serde::decode_from_slice(b, limit) {
        Ok((v, n)) if n == b.len() => Ok(v),
        Ok((_, n)) => Err(format!("{} trailing bytes", b.len() - n)),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saved models are written as raw bytes now; the encoding must be the one stores already
    /// hold (a sequence of `u8`s), both ways.
    #[test]
    fn model_bytes_keep_the_stored_encoding() {
        let model: Vec<u8> = (0..=255u8).cycle().take(70_001).collect();
        for v in [Some(model.clone()), None] {
            let old = encode(&v);
            let new = encode(&v.clone().map(Bytes));
            assert_eq!(old, new);
            let back: Option<Bytes> = decode(&old).unwrap();
            assert_eq!(back.map(|b| b.0), v);
        }
        assert_eq!(encode(&model), encode(&Bytes(model.clone())));
        let saved = SavedThing {
            last_seen: 5,
            slots: vec![SavedSlot {
                profile: "p".into(),
                behavior: "b".into(),
                fingerprint: "f".into(),
                windows: Vec::new(),
                alarm: Alarm::default(),
                since: 1,
                detector: Some(Bytes(model)),
            }],
        };
        assert_eq!(encode_thing(&saved), encode(&saved));
    }

    /// A store written by a build that mapped `MEDIUM` to another z-factor (z = 3 before
    /// [`FLEET_MEDIUM_Z`](super::profile::FLEET_MEDIUM_Z)) is judged at this build's once
    /// reopened, and models saved with p-values (before the fleet's models went without
    /// them) come back without: thing and group models alike.
    #[test]
    fn restored_models_take_this_builds_sensitivity() {
        use crate::Sensitivity;
        let profile = json!({"securityProfileName": "p", "behaviors": [
            {"name": "ml", "metric": "aws:num-messages-sent",
             "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}},
             "rcf": {"numTrees": 4, "sampleSize": 16, "shingleSize": 2, "scope": "hierarchical"}}]});
        let config = EngineConfig {
            max_future_ms: None,
            ..Default::default()
        };
        let mut e = Engine::open(config.clone(), None).unwrap();
        e.configure(&profile).unwrap();
        let t0 = 1_767_225_600_000;
        for w in 0..20 {
            for t in ["a", "b"] {
                let d = Datapoint::new(
                    t,
                    "aws:num-messages-sent",
                    MetricValue::Count(10 + w as u64 % 3),
                    t0 + w * 300_000 + 1,
                    None,
                )
                .unwrap();
                e.ingest(&d).unwrap();
            }
        }
        e.flush().unwrap();
        let medium = Sensitivity::ZFactor(super::super::profile::FLEET_MEDIUM_Z);
        // what every model (the things' and the group's) says to `f`
        fn models<T>(e: &Engine, f: impl Fn(&Detector) -> T) -> Vec<T> {
            let things = e.things.values().flat_map(|t| t.slots.iter().flatten());
            let mut v: Vec<T> = things
                .filter_map(|s| s.detector.as_deref().map(&f))
                .collect();
            v.extend(e.group_models.values().map(|g| f(&g.detector)));
            v
        }
        let sensitivities = |e: &Engine| models(e, |d| d.config().sensitivity);
        let p_values = |e: &Engine| models(e, Detector::p_values);
        let settle = |e: &Engine| models(e, Detector::settles);
        assert_eq!(
            sensitivities(&e),
            vec![medium; 3],
            "two things and the group"
        );
        // the fleet reads no p-values: its models keep no score distribution
        assert_eq!(p_values(&e), vec![false; 3]);
        // and their thresholds settle once their forests have filled, new or restored
        assert_eq!(settle(&e), vec![true; 3]);
        // as an older build would have saved them: another z-factor, and p-values (models
        // with the same settings that kept them, fed the same counts)
        let older = |d: &Detector| {
            let c = d.config();
            let mut o = Detector::builder(d.metrics().iter().map(|m| m.to_string()))
                .num_trees(c.forest.num_trees)
                .sample_size(c.forest.sample_size)
                .shingle_size(c.forest.shingle_size)
                .time_decay(c.forest.time_decay)
                .sensitivity(Sensitivity::Medium)
                .build()
                .unwrap();
            for w in 0..20 {
                o.process(&[10.0 + (w % 3) as f32]).unwrap();
            }
            Box::new(o)
        };
        let names: Vec<Arc<str>> = e.things.keys().cloned().collect();
        for t in e.things.values_mut() {
            for s in t.slots.iter_mut().flatten() {
                let d = s.detector.as_mut().unwrap();
                *d = older(d);
            }
        }
        for g in e.group_models.values_mut() {
            g.detector = older(&g.detector);
        }
        for n in &names {
            e.mark_dirty(n);
        }
        assert_eq!(sensitivities(&e), vec![Sensitivity::Medium; 3]);
        assert_eq!(p_values(&e), vec![true; 3]);
        assert_eq!(settle(&e), vec![false; 3]);
        let back = Engine::from_bytes(config, &e.to_bytes().unwrap()).unwrap();
        assert_eq!(sensitivities(&back), vec![medium; 3]);
        assert_eq!(p_values(&back), vec![false; 3]);
        assert_eq!(settle(&back), vec![true; 3]);
    }
}
