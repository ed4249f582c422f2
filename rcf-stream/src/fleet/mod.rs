//! The fleet layer: AWS IoT Device Defender's Rules and ML Detect for a whole fleet, with
//! alarms, violations and metric history in SQLite.
//!
//! * [`SecurityProfile`]: Device Defender's `CreateSecurityProfile` JSON, read, validated
//!   by Device Defender's rules (field and value named in every error) and written back
//!   unchanged; behaviours with `value` (static), `statisticalThreshold` (a fleet percentile)
//!   or `mlDetectionConfig` (an RCF [`Detector`](crate::Detector) per thing and behaviour,
//!   several metrics in one model as an extension).
//! * [`Datapoint`]: `(thing, metric, value, timestamp[, topic])`, from rcf's short JSON,
//!   Device Defender's metrics export records, or device metrics reports
//!   ([`datapoint::parse_line`]).
//! * [`Engine`]: tumbling, epoch-aligned windows in event time; alarms per (profile,
//!   behaviour, thing) going `in-alarm` after `consecutiveDatapointsToAlarm` violating
//!   datapoints, `alarm-cleared` after `...ToClear` conforming ones, and `alarm-invalidated`
//!   when the thing goes silent for 48 h, leaves the target, or the behaviour changes;
//!   [`ViolationEvent`]s in Device Defender's JSON with, for ML, score, grade, threshold,
//!   expected values and attribution; a [`store::Store`] (SQLite) with metric history,
//!   events, active violations, thing groups and the engine's state, committed in batches so
//!   a killed process restarts where its last commit ended.
//!
//! # Semantics
//!
//! Device Defender's documentation is followed where it speaks (`../shared/design/detect.md`
//! has the sources). Where it is silent, rcf does this:
//!
//! * **Set operators**: `in-*-set` is an allow-list (every observed element must be in the
//!   set), `not-in-*-set` a deny-list (none may be); CIDR membership is prefix containment
//!   (IPv4-mapped IPv6 addresses compare as IPv4). An empty observed list conforms.
//! * **Windows**: tumbling and epoch-aligned, per (profile, behaviour, thing); a window value
//!   exists only if the thing reported the metric in it (counts are summed, levels averaged).
//!   Per-message metrics, lists, and levels without `durationSeconds` are judged datapoint by
//!   datapoint. An event's time is its window's end (or the datapoint's time).
//! * **Statistical thresholds**: the percentile interpolates linearly between the closest
//!   ranks of the targeted things' values in the same window (NumPy's default); if any value
//!   is negative, the statistic is unavailable and nothing is judged in that window.
//! * **ML**: one [`Detector`](crate::Detector) per thing and behaviour, its window five minutes
//!   unless `durationSeconds` says otherwise (an extension), `confidenceLevel` mapped to a
//!   [`Sensitivity`](crate::Sensitivity): `LOW` z = [`FLEET_LOW_Z`] (5.5), `MEDIUM` z =
//!   [`FLEET_MEDIUM_Z`] (7), `HIGH` z = [`FLEET_HIGH_Z`] (8.5), calibrated for fleets' models
//!   in their steady state; `rcf.zFactor` sets another. A datapoint violates while the
//!   detector reports an anomaly or is inside the event one opened (until the thing conforms
//!   again to its model from before), so a lasting anomaly stays in alarm. Verdicts count once
//!   the detector's confidence reaches [`engine::ML_MIN_CONFIDENCE`]; before that a thing's ML
//!   alarm neither starts nor clears. A new detector trains at once from the store's history.
//!   Its settings are [`ModelSettings`] (the compact fleet model) unless the behaviour's `rcf`
//!   extension gives them; with [`EngineConfig::memory_budget`] the models in memory stay
//!   within a budget, the rest checkpointed in the store ([`models`] says which go). The
//!   `rcf.scope` extension picks whose data a model learns ([`ModelScope`]): the thing's own
//!   (default), the group's (one model per behaviour, Device Defender's way), or the group's
//!   until the thing's own is warm; [`Engine::model_training_summaries`] reports the warm-up.
//! * **Composite behaviours** (`rcf.requires`): a behaviour's datapoint violates only if the
//!   behaviours it names (same profile, same window) violate in the same window too, e.g. an ML
//!   anomaly gated by a static floor, or a fleet percentile gated by the thing's own model.
//! * **Time**: late data (its window closed) is stored and counted, not judged; datapoints
//!   more than [`EngineConfig::max_future_ms`] ahead of the wall clock are refused. Silence
//!   for [`EngineConfig::invalidate_after_ms`] invalidates the thing's alarms and drops its
//!   windows and models (it is trained again from history if it returns).
//! * **History**: every accepted datapoint of a built-in or declared metric is stored (late
//!   ones too), in rows of one thing, metric and hour of event time; retention deletes whole
//!   hours, so a value is kept at least [`EngineConfig::retention_ms`] and at most an hour
//!   longer.
//! * **Commits** to a file store save what changed. A thing's ML model is written in full
//!   every [`EngineConfig::model_checkpoint_ms`] (24 h of window time by default, staggered
//!   over the fleet); the commits in between write only the feature rows it learned, which
//!   are replayed onto the checkpoint when the model is read back (a reopened store, or a
//!   model evicted by the budget), giving the same model and the same verdicts.
//! * **Ids**: a `violationId` is a hash of profile, behaviour, thing and start time, so a
//!   replay gives the same ids and a consumer can drop repeats.
//! * **Response**: events reach [`sink`]s from the store's outbox (written with the event,
//!   marked sent after the sink's acknowledgement: at least once, deduplicated on
//!   `(violationId, violationEventType)`, batched and rate-limited per sink; `suppressAlerts`
//!   and mutes gate only the sinks) when [`Engine::respond`] runs after a commit; it also
//!   runs pending [`mitigation`] tasks (a behaviour's `rcf.mitigationActions` start one on
//!   `in-alarm`). [`incident`]s group violations that start together. Verification labels
//!   carry [`feedback`] (`learn`, `mute`, `exclude-from-training`) recorded as revertible
//!   adjustments; an engine takes in labels and thing-group changes that another process
//!   commits to its store at its next `respond`.
//! * **One thing at a time**: a [`Shard`] runs the engine's per-thing work with the thing's
//!   state passed in and out as bytes, for stream processors with keyed state (Spark, Flink;
//!   the Python `rcf.spark` module); it gives the engine's events when no datapoint is late to
//!   the fleet's clock, and refuses what needs the whole fleet.
//! * **Names**: behaviour names may have spaces (the documentation's own examples do);
//!   [`EngineConfig::strict`] applies the API's pattern and window list exactly.
pub mod datapoint;
pub mod dimension;
pub mod engine;
pub mod feedback;
mod history;
pub mod incident;
pub mod metric;
pub mod mitigation;
pub mod models;
pub mod profile;
pub mod sink;
pub mod store;
pub mod time;
pub mod value;
pub mod violation;

pub use datapoint::Datapoint;
pub use dimension::Dimension;
pub use engine::{
    Counters, Engine, EngineConfig, Filter, FleetError, Ingested, ResponseReport, Shard,
    ShardOutput, ShardVerdict, Target,
};
pub use feedback::{Feedback, Scope, VerificationState};
pub use incident::Incident;
pub use metric::{Aggregation, MetricCatalog, MetricKind, MetricType};
#[cfg(feature = "net")]
pub use mitigation::WebhookExecutor;
pub use mitigation::{ActionType, CommandExecutor, Executor, MitigationAction};
pub use models::{ModelSettings, ModelStats, parse_memory_size};
pub use profile::{
    Behavior, ComparisonOperator, ConfidenceLevel, CriteriaKind, FLEET_HIGH_Z, FLEET_LOW_Z,
    FLEET_MEDIUM_Z, MissingData, ModelScope, ProfileError, SecurityProfile,
};
pub use sink::{JsonlSink, Payload, Sink, SinkOptions, SinkSpec};
#[cfg(feature = "net")]
pub use sink::{MqttSink, WebhookSink};
pub use value::{Cidr, MetricValue};
pub use violation::{EventType, MlExplanation, ViolationEvent};
