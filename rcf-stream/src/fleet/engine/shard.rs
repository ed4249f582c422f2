//! One thing at a time, its state in the caller's hands: the fleet engine's per-thing work
//! for stream processors that keep state per key (Spark's `transformWithStateInPandas`,
//! Flink's keyed state).
//!
//! A [`Shard`] holds a fleet configuration and no things. [`Shard::process`] takes a thing's
//! saved state (or none, for a new thing) and a batch of its datapoints, runs them through
//! the engine's windows, rules, ML models and alarm streaks exactly as [`Engine::ingest`]
//! does, and hands back the events and the thing's new state. The processor stores the
//! bytes with its key and checkpoints them; nothing stays in the shard between calls.
//!
//! See [`Shard`] for the clock and what needs the whole fleet.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Counters, Engine, EngineConfig, FleetError, Millis, SavedThing, decode, encode_into, quoted,
};
use crate::fleet::datapoint::{Datapoint, parse_line};
use crate::fleet::models::ModelStats;
use crate::fleet::profile::{CriteriaKind, MissingData, ModelScope};
use crate::fleet::value::MetricValue;
use crate::fleet::violation::ViolationEvent;

/// The first bytes of a shard's thing state.
const MAGIC: &[u8; 4] = b"RCFS";
/// The version of the thing state's format.
const VERSION: u8 = 1;

/// A thing's state between calls (after [`MAGIC`] and [`VERSION`]).
#[derive(Serialize, Deserialize)]
struct SavedShardThing {
    thing: String,
    max_ts: Option<Millis>,
    watermark: Millis,
    last_silence_check: Millis,
    state: SavedThing,
}

/// One observation of one behaviour (a window closed, or a datapoint judged), when asked for
/// with [`Shard::set_verdicts`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShardVerdict {
    /// The profile.
    pub profile_name: Arc<str>,
    /// The behaviour.
    pub behavior_name: Arc<str>,
    /// The observation's time (a window's end, a datapoint's timestamp), epoch ms.
    pub time: Millis,
    /// The value observed (a window's aggregate; none for a window without data).
    pub value: Option<MetricValue>,
    /// It violated the behaviour.
    pub violating: bool,
    /// An ML verdict's score.
    pub score: Option<f64>,
    /// An ML verdict's grade.
    pub grade: Option<f64>,
    /// The behaviour is in alarm for the thing after it.
    pub in_alarm: bool,
}

/// What one [`Shard::process`] call did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ShardOutput {
    /// The violation events, in the order the engine raised them.
    pub events: Vec<ViolationEvent>,
    /// The thing's new state.
    pub state: Vec<u8>,
    /// Observations (when [`Shard::set_verdicts`] asked for them).
    pub verdicts: Vec<ShardVerdict>,
    /// Lines refused (with `skip_invalid`): position in the batch and why.
    pub rejected: Vec<(usize, String)>,
    /// What the call counted (datapoints, late, windows, events).
    pub counters: Counters,
}

/// The fleet engine's per-thing work, with the thing's state passed in and out as bytes.
///
/// # Time
///
/// Each thing's clock is its own: the watermark is the thing's latest timestamp minus the
/// grace period (the engine's clock is the fleet's). Both give the same events when no
/// datapoint is late to the fleet's clock, that is, when every thing's data arrives within
/// the grace period of the fleet's latest, as a fleet reporting on the same five-minute grid
/// does. Where a thing lags the fleet, its datapoints are evaluated here where the engine
/// would count them late. Within a batch, datapoints are taken in timestamp order (then metric
/// name; a stable sort, so the caller's order otherwise), as stream processors do not keep
/// the order of rows within a key.
///
/// # What needs the whole fleet
///
/// Statistical thresholds (a percentile of all things' values in a window), ML models of
/// scope `group` or `hierarchical`, `rcf.missingData: violate` (a window without data is a
/// finding when the fleet's clock passes it) and mitigation actions started by a behaviour
/// need every thing, the fleet's clock or the response side in one place; [`Shard::new`]
/// refuses a configuration that uses them, naming the behaviour. Silence is the processor's job: a thing that sends nothing
/// raises no call, so its state is dropped by the processor's state TTL (set it to the
/// engine's `invalidate_after`), without an `alarm-invalidated` event.
///
/// # Example
///
/// ```
/// use rcf_stream::fleet::{EngineConfig, Shard};
/// use serde_json::json;
///
/// let mut shard = Shard::new(EngineConfig::default(), &json!({
///     "securityProfileName": "lights",
///     "behaviors": [{"name": "no-telnet", "metric": "aws:listening-tcp-ports",
///                    "criteria": {"comparisonOperator": "not-in-port-set",
///                                 "value": {"ports": [23, 2323]}}}]
/// }))?;
/// let line = r#"{"thing": "bulb-1", "metric": "aws:listening-tcp-ports",
///               "value": {"ports": [80, 23]}, "timestamp": 1767225600}"#;
/// let out = shard.process_lines("bulb-1", None, &[line], false)?;
/// assert_eq!(out.events[0].event_type.as_str(), "in-alarm");
/// // the next batch of the same thing starts from the state the first left
/// let line = r#"{"thing": "bulb-1", "metric": "aws:listening-tcp-ports",
///               "value": {"ports": [80]}, "timestamp": 1767225900}"#;
/// let out = shard.process_lines("bulb-1", Some(&out.state), &[line], false)?;
/// assert_eq!(out.events[0].event_type.as_str(), "alarm-cleared");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shard {
    engine: Engine,
    verdicts: bool,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("profiles", &self.engine.profiles.len())
            .field("verdicts", &self.verdicts)
            .finish()
    }
}

impl Shard {
    /// A shard for the fleet configuration `setup` (as [`Engine::configure`] takes it). The
    /// engine settings apply as in an engine, except that a shard keeps no metric history and
    /// no memory budget (each call holds one thing's models).
    ///
    /// # Errors
    ///
    /// [`FleetError::Profile`] for an invalid configuration or one that needs the whole
    /// fleet (see [`Shard`]); [`FleetError::InvalidParameter`] for a setting out
    /// of range or a memory budget.
    pub fn new(mut config: EngineConfig, setup: &Value) -> Result<Self, FleetError> {
        if config.memory_budget.is_some() {
            return Err(FleetError::InvalidParameter {
                name: "memory_budget",
                reason: "a shard holds one thing's models at a time; a budget does not apply"
                    .into(),
            });
        }
        config.history = false;
        let mut engine = Engine::open(config, None)?;
        engine.configure(setup)?;
        engine.commit(None)?;
        for p in &engine.profiles {
            for (bi, b) in p.behaviors.iter().enumerate() {
                let at = format!("{}.behaviors[{bi}]", quoted(&p.name));
                let refuse = |field: &str, why: &str| {
                    Err(FleetError::Profile(crate::fleet::profile::ProfileError {
                        field: format!("{at}{field}"),
                        reason: format!(
                            "behaviour {} {why}, which needs the whole fleet in one engine: \
                             not supported one thing at a time",
                            quoted(&b.name)
                        ),
                    }))
                };
                match &b.kind {
                    CriteriaKind::Statistical { .. } => {
                        return refuse(
                            ".criteria.statisticalThreshold",
                            "compares with a percentile of all things",
                        );
                    }
                    CriteriaKind::Ml { .. } if b.ml.scope != ModelScope::PerDevice => {
                        return refuse(".rcf.scope", "learns a group model");
                    }
                    _ => {}
                }
                if b.missing_data == MissingData::Violate {
                    return refuse(
                        ".rcf.missingData",
                        "treats a window without data as violating, which the fleet's clock \
                         decides (a silent thing makes no call here)",
                    );
                }
                if !b.mitigation_actions.is_empty() {
                    return refuse(
                        ".rcf.mitigationActions",
                        "starts mitigation actions (act on the output stream instead)",
                    );
                }
            }
        }
        Ok(Shard {
            engine,
            verdicts: false,
        })
    }

    /// Also report every observation ([`ShardOutput::verdicts`]), not only events.
    pub fn set_verdicts(&mut self, on: bool) {
        self.verdicts = on;
    }

    /// The configuration's profiles.
    pub fn profiles(&self) -> &[crate::fleet::SecurityProfile] {
        self.engine.profiles()
    }

    /// Parses datapoint lines (any form [`parse_line`] reads) and [`process`](Self::process)es
    /// them. With `skip_invalid`, a line that does not parse, is of another thing or is
    /// refused by the engine's checks is listed in [`ShardOutput::rejected`] and the rest go
    /// on; without it the first such line is the error.
    ///
    /// # Errors
    ///
    /// As [`process`](Self::process); a bad line (without `skip_invalid`) as
    /// [`FleetError::Datapoint`] naming its position.
    pub fn process_lines<S: AsRef<str>>(
        &mut self,
        thing: &str,
        state: Option<&[u8]>,
        lines: &[S],
        skip_invalid: bool,
    ) -> Result<ShardOutput, FleetError> {
        let mut dps = Vec::with_capacity(lines.len());
        let mut rejected = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let parsed = parse_line(line.as_ref()).and_then(|ds| {
                for d in &ds {
                    self.admissible(thing, d)?;
                }
                Ok(ds)
            });
            match parsed {
                Ok(ds) => dps.extend(ds),
                Err(why) if skip_invalid => rejected.push((i, why)),
                Err(why) => return Err(FleetError::Datapoint(format!("lines[{i}]: {why}"))),
            }
        }
        let mut out = self.process(thing, state, dps)?;
        out.rejected = rejected;
        Ok(out)
    }

    /// [`process`](Self::process), with the datapoints the engine would refuse (of another
    /// thing, or failing its checks) listed in [`ShardOutput::rejected`] instead of failing
    /// the call.
    ///
    /// # Errors
    ///
    /// As [`process`](Self::process), for the state.
    pub fn process_valid(
        &mut self,
        thing: &str,
        state: Option<&[u8]>,
        datapoints: Vec<Datapoint>,
    ) -> Result<ShardOutput, FleetError> {
        let mut rejected = Vec::new();
        let mut keep = Vec::with_capacity(datapoints.len());
        for (i, d) in datapoints.into_iter().enumerate() {
            match self.admissible(thing, &d) {
                Ok(()) => keep.push(d),
                Err(why) => rejected.push((i, why)),
            }
        }
        let mut out = self.process(thing, state, keep)?;
        out.rejected = rejected;
        Ok(out)
    }

    /// Why the engine would refuse `d` for `thing`, if it would.
    fn admissible(&self, thing: &str, d: &Datapoint) -> Result<(), String> {
        if &*d.thing != thing {
            return Err(format!(
                "the datapoint is of thing {}, not {}",
                quoted(&d.thing),
                quoted(thing)
            ));
        }
        self.engine.check(d).map(|_| ()).map_err(|e| match e {
            FleetError::Datapoint(m) => m,
            other => other.to_string(),
        })
    }

    /// Runs one thing's batch of datapoints from its saved `state` (`None` for a thing not
    /// seen before, or whose state was dropped), in timestamp order; returns the events and
    /// the new state. Every datapoint is checked, and the state decoded, before any is
    /// applied; the caller's state is never changed (on an error, keep the old bytes).
    ///
    /// # Errors
    ///
    /// [`FleetError::Datapoint`] for a datapoint of another thing or one the engine refuses
    /// (naming its position); [`FleetError::State`] for state bytes that are not a shard's
    /// thing state, of another thing, or corrupt.
    pub fn process(
        &mut self,
        thing: &str,
        state: Option<&[u8]>,
        mut datapoints: Vec<Datapoint>,
    ) -> Result<ShardOutput, FleetError> {
        crate::fleet::profile::check_thing(thing).map_err(FleetError::Datapoint)?;
        for (i, d) in datapoints.iter().enumerate() {
            self.admissible(thing, d)
                .map_err(|why| FleetError::Datapoint(format!("datapoints[{i}]: {why}")))?;
        }
        let saved = state.map(|b| decode_state(thing, b)).transpose()?;
        let e = &mut self.engine;
        let name: Arc<str> = Arc::from(thing);
        match saved {
            Some(s) => {
                let index = e.slot_index();
                let t = e
                    .restore_thing(thing, s.state, &index)
                    .map_err(|err| FleetError::State(err.to_string()))?;
                e.things.insert(name.clone(), t);
                e.max_ts = s.max_ts;
                e.watermark = s.watermark;
                e.last_silence_check = s.last_silence_check;
            }
            None => {
                e.max_ts = None;
                e.watermark = i64::MIN;
                e.last_silence_check = i64::MIN;
            }
        }
        e.index_windows();
        e.ranks_stale = true;
        e.counters = Counters::default();
        e.observed = self.verdicts.then(Vec::new);
        datapoints.sort_by(|a, b| {
            a.timestamp
                .cmp(&b.timestamp)
                .then_with(|| a.metric.cmp(&b.metric))
        });
        let mut events = Vec::new();
        let mut result = Ok(());
        for d in &datapoints {
            if let Err(err) = e.ingest_into(d, &mut events) {
                result = Err(err);
                break;
            }
        }
        let out = result.map(|()| {
            let state = e
                .things
                .get(&name)
                .map(|t| e.save_thing(t, true))
                .unwrap_or(SavedThing {
                    last_seen: e.max_ts.unwrap_or(0),
                    slots: Vec::new(),
                });
            let saved = SavedShardThing {
                thing: thing.to_string(),
                max_ts: e.max_ts,
                watermark: e.watermark,
                last_silence_check: e.last_silence_check,
                state,
            };
            // one buffer of about the final size, the state encoded straight into it
            let mut bytes = Vec::with_capacity(MAGIC.len() + 1 + saved.state.model_bytes() + 4096);
            bytes.extend_from_slice(MAGIC);
            bytes.push(VERSION);
            encode_into(&saved, &mut bytes);
            ShardOutput {
                events,
                state: bytes,
                verdicts: e.observed.take().unwrap_or_default(),
                rejected: Vec::new(),
                counters: e.counters.clone(),
            }
        });
        // nothing stays: the thing, its windows, the store's writes (events, active
        // violations) of this call
        e.store.rollback();
        e.things.clear();
        e.open_windows.clear();
        e.dirty.clear();
        e.removed.clear();
        e.observed = None;
        e.models = ModelStats::default();
        out
    }
}

/// A thing's state from its bytes, checked to be `thing`'s.
fn decode_state(thing: &str, b: &[u8]) -> Result<SavedShardThing, FleetError> {
    let bad =
        |why: String| FleetError::State(format!("the state of thing {}: {why}", quoted(thing)));
    let Some(rest) = b.strip_prefix(MAGIC) else {
        return Err(bad(format!(
            "not a shard's thing state ({} bytes without the `RCFS` header)",
            b.len()
        )));
    };
    match rest.first() {
        Some(&VERSION) => {}
        Some(v) => {
            return Err(bad(format!(
                "format version {v}, this build reads {VERSION}"
            )));
        }
        None => return Err(bad("truncated after the header".into())),
    }
    let s: SavedShardThing = decode(&rest[1..]).map_err(|e| bad(format!("corrupt: {e}")))?;
    if s.thing != thing {
        return Err(bad(format!(
            "it is the state of thing {}",
            quoted(&s.thing)
        )));
    }
    Ok(s)
}
