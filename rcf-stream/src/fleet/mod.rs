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
//! The semantics follow Device Defender's documentation; where it is silent, the engine's
//! docs say what rcf does.
pub mod datapoint;
pub mod dimension;
pub mod engine;
pub mod metric;
pub mod profile;
pub mod store;
pub mod time;
pub mod value;
pub mod violation;

pub use datapoint::Datapoint;
pub use dimension::Dimension;
pub use engine::{Counters, Engine, EngineConfig, Filter, FleetError, Ingested, Target};
pub use metric::{Aggregation, MetricCatalog, MetricKind, MetricType};
pub use profile::{
    Behavior, ComparisonOperator, ConfidenceLevel, CriteriaKind, MissingData, ProfileError,
    SecurityProfile,
};
pub use value::{Cidr, MetricValue};
pub use violation::{EventType, MlExplanation, ViolationEvent};
