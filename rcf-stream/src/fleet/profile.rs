//! Security profiles in Device Defender's `CreateSecurityProfile` JSON: read, validated by
//! Device Defender's rules, and written back unchanged (fields rcf does not interpret, such as
//! `alertTargets` or `tags`, are kept as they came).
//!
//! rcf's extensions live in one `rcf` object per behaviour, which Device Defender consumers
//! ignore: `metrics` (more metrics for one multivariate ML model), `missingData` (`ignore`, the
//! default, or `violate`: a window without data from a thing that has reported before counts
//! as a violating datapoint), ML model settings (`numTrees`, `sampleSize`, `shingleSize`,
//! `timeDecay`, `seed`), `scope` (`per-device`, the default, `group` or `hierarchical`: see
//! [`ModelScope`]), and `requires` (a composite behaviour: names of behaviours of the same
//! profile and window that must violate in the same window too, see [`Behavior::requires`]).

use serde_json::{Map, Value};

use super::metric::{Aggregation, MetricCatalog, MetricKind, MetricType, check_name};
use super::value::{MetricValue, json_kind, quoted};
use crate::Sensitivity;

/// A profile or behaviour field that is invalid, with its JSON path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct ProfileError {
    /// The JSON path of the field (`behaviors[1].criteria.durationSeconds`).
    pub field: String,
    /// What is wrong, with the value given.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ProfileError {
    ProfileError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Device Defender's `comparisonOperator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ComparisonOperator {
    /// `less-than`
    LessThan,
    /// `less-than-equals`
    LessThanEquals,
    /// `greater-than`
    GreaterThan,
    /// `greater-than-equals`
    GreaterThanEquals,
    /// `in-cidr-set`: every observed address is inside one of the blocks.
    InCidrSet,
    /// `not-in-cidr-set`: no observed address is inside any of the blocks.
    NotInCidrSet,
    /// `in-port-set`: every observed port is in the set.
    InPortSet,
    /// `not-in-port-set`: no observed port is in the set.
    NotInPortSet,
    /// `in-set`: every observed string or number is in the set.
    InSet,
    /// `not-in-set`: no observed string or number is in the set.
    NotInSet,
}

const OPERATORS: [(&str, ComparisonOperator); 10] = {
    use ComparisonOperator::*;
    [
        ("less-than", LessThan),
        ("less-than-equals", LessThanEquals),
        ("greater-than", GreaterThan),
        ("greater-than-equals", GreaterThanEquals),
        ("in-cidr-set", InCidrSet),
        ("not-in-cidr-set", NotInCidrSet),
        ("in-port-set", InPortSet),
        ("not-in-port-set", NotInPortSet),
        ("in-set", InSet),
        ("not-in-set", NotInSet),
    ]
};

impl ComparisonOperator {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, o)| *o == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    fn parse(s: &str) -> Option<Self> {
        OPERATORS.iter().find(|(n, _)| *n == s).map(|&(_, o)| o)
    }

    pub(crate) fn is_ordering(self) -> bool {
        use ComparisonOperator::*;
        matches!(
            self,
            LessThan | LessThanEquals | GreaterThan | GreaterThanEquals
        )
    }

    /// The metric types the operator applies to.
    fn types(self) -> &'static [MetricType] {
        use ComparisonOperator::*;
        match self {
            LessThan | LessThanEquals | GreaterThan | GreaterThanEquals => &[MetricType::Number],
            InCidrSet | NotInCidrSet => &[MetricType::IpAddressList],
            InPortSet | NotInPortSet => &[MetricType::PortList],
            InSet | NotInSet => &[MetricType::StringList, MetricType::NumberList],
        }
    }

    /// Whether `observed` conforms to `self value` (the behaviour describes normal). An empty
    /// observed list always conforms. `None` if the value types do not fit together.
    pub fn holds(self, observed: &MetricValue, value: &MetricValue) -> Option<bool> {
        use ComparisonOperator::*;
        use MetricValue as V;
        if self.is_ordering() {
            let (x, y) = (observed.as_number()?, value.as_number()?);
            return Some(match self {
                LessThan => x < y,
                LessThanEquals => x <= y,
                GreaterThan => x > y,
                _ => x >= y,
            });
        }
        let allow = matches!(self, InCidrSet | InPortSet | InSet);
        // every element in the set (allow-list) / none in it (deny-list)
        let judge = |mut members: Box<dyn Iterator<Item = bool> + '_>| {
            if allow {
                members.all(|m| m)
            } else {
                !members.any(|m| m)
            }
        };
        Some(match (self, observed, value) {
            (InCidrSet | NotInCidrSet, V::Cidrs(o), V::Cidrs(set)) => judge(Box::new(
                o.iter().map(|a| set.iter().any(|b| b.contains(a))),
            )),
            (InPortSet | NotInPortSet, V::Ports(o), V::Ports(set)) => {
                judge(Box::new(o.iter().map(|p| set.contains(p))))
            }
            (InSet | NotInSet, V::Strings(o), V::Strings(set)) => {
                judge(Box::new(o.iter().map(|s| set.contains(s))))
            }
            (InSet | NotInSet, V::Numbers(o), V::Numbers(set)) => {
                judge(Box::new(o.iter().map(|x| set.contains(x))))
            }
            _ => return None,
        })
    }
}

/// Device Defender's `statisticalThreshold.statistic`: a percentile over the fleet.
pub const STATISTICS: [(&str, f64); 11] = [
    ("p0", 0.0),
    ("p0.1", 0.1),
    ("p0.01", 0.01),
    ("p1", 1.0),
    ("p10", 10.0),
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
    ("p100", 100.0),
];

/// The z-factor of the `MEDIUM` confidence level, the default: a thing's ML datapoint
/// violates when its score is 7 deviations above the mean of its recent scores.
///
/// Calibrated on the synthetic fleet for models in their steady state (BENCHMARKS.md, "False
/// alarms as models age"): the threshold's score statistics forget at the forest's rate, so
/// for the first weeks they still hold a young forest's high scores and the threshold is
/// higher than it will be; 4-day runs had set 3.5, which raises 0.11 false alarms per
/// device-day over 12 days and more as models age. Measured with the statistics restarted
/// once a model's samples are full (the steady state from the first day), 12 days: z = 6.5
/// 0.0156 per device-day with the last days near 0.03, z = 7 0.0073 on two seeded fleets and
/// 0.0059 on four held-out ones (the last days near 0.01), every incident found within 3
/// datapoints. The smallest step of 0.5 whose late days stay under one false alarm per 50
/// device-days. Fleet models now settle that way themselves (their warm-up's statistics keep
/// the weight of 8 scores once a sample size of scores is in): 0.0068 and 0.0049 over 12 days
/// (BENCHMARKS.md, "Thresholds that settle").
pub const FLEET_MEDIUM_Z: f64 = 7.0;

/// The z-factor of the `LOW` confidence level (more alarms): [`FLEET_MEDIUM_Z`] − 1.5, 0.051
/// false alarms per device-day in the steady state measured for it.
pub const FLEET_LOW_Z: f64 = 5.5;

/// The z-factor of the `HIGH` confidence level (fewer alarms): [`FLEET_MEDIUM_Z`] + 1.5,
/// 0.0006 false alarms per device-day in the steady state measured for it.
pub const FLEET_HIGH_Z: f64 = 8.5;

/// Device Defender's `mlDetectionConfig.confidenceLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfidenceLevel {
    /// The most alarms.
    Low,
    /// The default.
    Medium,
    /// The fewest alarms.
    High,
}

impl ConfidenceLevel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfidenceLevel::Low => "LOW",
            ConfidenceLevel::Medium => "MEDIUM",
            ConfidenceLevel::High => "HIGH",
        }
    }

    /// The detector sensitivity this level sets: a z-factor of [`FLEET_LOW_Z`],
    /// [`FLEET_MEDIUM_Z`] or [`FLEET_HIGH_Z`], calibrated for fleets (see there; the
    /// single-stream detector's levels, z = 2, 3 and 4, raise far more on a fleet's models).
    pub fn sensitivity(self) -> Sensitivity {
        Sensitivity::ZFactor(match self {
            ConfidenceLevel::Low => FLEET_LOW_Z,
            ConfidenceLevel::Medium => FLEET_MEDIUM_Z,
            ConfidenceLevel::High => FLEET_HIGH_Z,
        })
    }
}

/// What a behaviour's criteria compare.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CriteriaKind {
    /// `comparisonOperator` + `value`.
    Static {
        /// The operator.
        op: ComparisonOperator,
        /// The value compared with.
        value: MetricValue,
    },
    /// `comparisonOperator` + `statisticalThreshold`: each thing's window value against the
    /// percentile of all targeted things' values in the same window.
    Statistical {
        /// The operator.
        op: ComparisonOperator,
        /// The wire name (`p90`).
        statistic: String,
        /// The percentile, 0 to 100.
        percentile: f64,
    },
    /// `mlDetectionConfig`: an RCF detector per thing.
    Ml {
        /// The confidence level.
        confidence: ConfidenceLevel,
    },
}

impl CriteriaKind {
    /// Device Defender's criteria type name: `STATIC`, `STATISTICAL` or `MACHINE_LEARNING`.
    pub fn type_name(&self) -> &'static str {
        match self {
            CriteriaKind::Static { .. } => "STATIC",
            CriteriaKind::Statistical { .. } => "STATISTICAL",
            CriteriaKind::Ml { .. } => "MACHINE_LEARNING",
        }
    }
}

/// What a window without data from a thing means (extension `rcf.missingData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MissingData {
    /// Nothing: no datapoint (Device Defender's behaviour).
    #[default]
    Ignore,
    /// A violating datapoint: a thing that goes silent is a finding.
    Violate,
}

/// `metricDimension`: a named `TOPIC_FILTER` dimension, `IN` (default) or `NOT_IN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDimension {
    /// `dimensionName`.
    pub name: String,
    /// `operator == NOT_IN`.
    pub not_in: bool,
    /// Whether `operator` was written (so it is written back as it came).
    operator_given: bool,
}

/// Whose data an ML behaviour's model learns from (extension `rcf.scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModelScope {
    /// Each thing its own model, judged against its own normal (the default).
    #[default]
    PerDevice,
    /// One model per behaviour, fed by every targeted thing's windows (in thing-name order)
    /// and scoring each thing's window against the whole group: Device Defender's ML Detect.
    Group,
    /// The group model judges a thing until the thing's own model is warm (ready, and at
    /// [`ML_MIN_CONFIDENCE`](super::engine::ML_MIN_CONFIDENCE)), then the thing's model alone.
    Hierarchical,
}

impl ModelScope {
    /// The wire name: `per-device`, `group` or `hierarchical`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelScope::PerDevice => "per-device",
            ModelScope::Group => "group",
            ModelScope::Hierarchical => "hierarchical",
        }
    }

    /// The scope of a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "per-device" => Some(ModelScope::PerDevice),
            "group" => Some(ModelScope::Group),
            "hierarchical" => Some(ModelScope::Hierarchical),
            _ => None,
        }
    }

    /// Whether the thing's own model is kept.
    pub fn per_device(self) -> bool {
        self != ModelScope::Group
    }

    /// Whether the behaviour's group model is kept.
    pub fn group(self) -> bool {
        self != ModelScope::PerDevice
    }
}

/// ML model settings of a behaviour (extensions; the fleet defaults otherwise).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MlSettings {
    /// Trees in each thing's forest.
    pub num_trees: Option<usize>,
    /// Points sampled per tree.
    pub sample_size: Option<usize>,
    /// Datapoints per shingle.
    pub shingle_size: Option<usize>,
    /// `rcf.timeDecay`: how fast each thing's model forgets, per datapoint (0 to 1). A sample
    /// reaches back about `1 / timeDecay` datapoints, and so does the history a model keeps
    /// in memory for it (see [`ModelSettings`](super::ModelSettings)).
    pub time_decay: Option<f64>,
    /// Seed (each thing's detector mixes in its name).
    pub seed: Option<u64>,
    /// Whose data the model learns from.
    pub scope: ModelScope,
    /// `rcf.zFactor`: the threshold's z-factor (at least 1), in place of the one the
    /// confidence level sets ([`ConfidenceLevel::sensitivity`]).
    pub z_factor: Option<f64>,
}

/// A behaviour: what is normal for one metric (or, for ML, several).
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// `name`: unique in its profile.
    pub name: String,
    /// `metric`.
    pub metric: String,
    /// `metricDimension`.
    pub dimension: Option<MetricDimension>,
    /// The criteria.
    pub kind: CriteriaKind,
    /// `durationSeconds` as written.
    pub duration_seconds: Option<u64>,
    /// `consecutiveDatapointsToAlarm` as written (1 when absent).
    pub to_alarm: Option<u8>,
    /// `consecutiveDatapointsToClear` as written (1 when absent).
    pub to_clear: Option<u8>,
    /// `suppressAlerts` as written.
    pub suppress_alerts: Option<bool>,
    /// `rcf.metrics`: more metrics for a multivariate ML model (after `metric`).
    pub extra_metrics: Vec<String>,
    /// `rcf.missingData`.
    pub missing_data: MissingData,
    /// `rcf` ML settings.
    pub ml: MlSettings,
    /// `rcf.requires`: behaviours of the same profile (and window) that must violate in the
    /// same window for this one's datapoint to violate: a composite behaviour, e.g. an ML
    /// anomaly on bytes out only where bytes out are also above a static floor.
    pub requires: Vec<String>,
    /// `rcf.mitigationActions`: names of the fleet's mitigation actions to run, in order, as
    /// a task of their own whenever this behaviour goes `in-alarm` (Device Defender runs
    /// actions only when asked).
    pub mitigation_actions: Vec<String>,
    /// The behaviour's JSON as it came (for the snapshot in violation events and writing back).
    json: Value,
}

/// The ML window when a behaviour gives none: Device Defender's base datapoint, five minutes.
pub const DEFAULT_ML_WINDOW_SECONDS: u64 = 300;
/// `durationSeconds` Device Defender accepts.
pub const STRICT_DURATIONS: [u64; 5] = [300, 600, 900, 1800, 3600];
/// The longest window accepted outside strict mode: a day.
pub const MAX_DURATION_SECONDS: u64 = 86_400;

impl Behavior {
    /// The sensitivity of an ML behaviour's models: `rcf.zFactor` if given, else what its
    /// confidence level sets ([`ConfidenceLevel::sensitivity`]); `None` for a rule.
    pub fn ml_sensitivity(&self) -> Option<Sensitivity> {
        let CriteriaKind::Ml { confidence } = self.kind else {
            return None;
        };
        Some(
            self.ml
                .z_factor
                .map_or(confidence.sensitivity(), Sensitivity::ZFactor),
        )
    }

    /// `consecutiveDatapointsToAlarm` (default 1).
    pub fn consecutive_to_alarm(&self) -> u8 {
        self.to_alarm.unwrap_or(1)
    }

    /// `consecutiveDatapointsToClear` (default 1).
    pub fn consecutive_to_clear(&self) -> u8 {
        self.to_clear.unwrap_or(1)
    }

    /// Whether alerts are suppressed (violations are still recorded).
    pub fn suppresses_alerts(&self) -> bool {
        self.suppress_alerts.unwrap_or(false)
    }

    /// Every metric the behaviour reads: `metric`, then `rcf.metrics`.
    pub fn metrics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.metric.as_str()).chain(self.extra_metrics.iter().map(String::as_str))
    }

    /// The window length in milliseconds, if the behaviour is evaluated per window (else each
    /// datapoint is evaluated as it arrives).
    pub fn window_ms(&self) -> Option<i64> {
        match (&self.kind, self.duration_seconds) {
            (_, Some(d)) => Some(d as i64 * 1000),
            (CriteriaKind::Ml { .. }, None) => Some(DEFAULT_ML_WINDOW_SECONDS as i64 * 1000),
            _ => None,
        }
    }

    /// The behaviour as Device Defender JSON (as it came in).
    pub fn to_json(&self) -> &Value {
        &self.json
    }

    /// Parses one behaviour. `at` is its JSON path, for errors.
    fn from_json(
        v: &Value,
        at: &str,
        strict: bool,
        catalog: &MetricCatalog,
    ) -> Result<Self, ProfileError> {
        let o = v
            .as_object()
            .ok_or_else(|| err(at, format!("must be an object, got {}", json_kind(v))))?;
        let name =
            string(o, "name", at)?.ok_or_else(|| err(format!("{at}.name"), "is required"))?;
        if strict {
            check_identifier(&name).map_err(|r| {
                err(
                    format!("{at}.name"),
                    format!("{r} (Device Defender's API pattern; strict mode)"),
                )
            })?;
        } else {
            check_label(&name).map_err(|r| err(format!("{at}.name"), r))?;
        }
        let metric =
            string(o, "metric", at)?.ok_or_else(|| err(format!("{at}.metric"), "is required"))?;
        check_name(&metric).map_err(|r| err(format!("{at}.metric"), r))?;
        let c_at = format!("{at}.criteria");
        let c = match o.get("criteria") {
            Some(Value::Object(c)) => c,
            Some(other) => {
                return Err(err(
                    &c_at,
                    format!("must be an object, got {}", json_kind(other)),
                ));
            }
            None => {
                return Err(err(
                    &c_at,
                    "is required (rcf does not keep metrics without a behaviour)",
                ));
            }
        };
        for key in c.keys() {
            if !matches!(
                key.as_str(),
                "comparisonOperator"
                    | "value"
                    | "durationSeconds"
                    | "consecutiveDatapointsToAlarm"
                    | "consecutiveDatapointsToClear"
                    | "statisticalThreshold"
                    | "mlDetectionConfig"
            ) {
                return Err(err(
                    format!("{c_at}.{key}"),
                    "is not a BehaviorCriteria field",
                ));
            }
        }
        let op = match c.get("comparisonOperator") {
            None => None,
            Some(Value::String(s)) => Some(ComparisonOperator::parse(s).ok_or_else(|| {
                err(
                    format!("{c_at}.comparisonOperator"),
                    format!(
                        "{} is not an operator: {}",
                        quoted(s),
                        OPERATORS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?),
            Some(other) => {
                return Err(err(
                    format!("{c_at}.comparisonOperator"),
                    format!("must be a string, got {}", json_kind(other)),
                ));
            }
        };
        let given = ["value", "statisticalThreshold", "mlDetectionConfig"]
            .into_iter()
            .filter(|k| c.contains_key(*k))
            .collect::<Vec<_>>();
        let [which] = given[..] else {
            return Err(err(
                &c_at,
                if given.is_empty() {
                    "needs one of `value`, `statisticalThreshold` or `mlDetectionConfig`"
                        .to_string()
                } else {
                    format!("has {}: give exactly one", given.join(" and "))
                },
            ));
        };
        let kind = match which {
            "value" => {
                let op = op.ok_or_else(|| {
                    err(
                        format!("{c_at}.comparisonOperator"),
                        "is required with `value`",
                    )
                })?;
                let value = MetricValue::from_json(&c["value"])
                    .map_err(|r| err(format!("{c_at}.value"), r))?;
                CriteriaKind::Static { op, value }
            }
            "statisticalThreshold" => {
                let op = op.ok_or_else(|| {
                    err(
                        format!("{c_at}.comparisonOperator"),
                        "is required with `statisticalThreshold`",
                    )
                })?;
                let s_at = format!("{c_at}.statisticalThreshold.statistic");
                let s = c["statisticalThreshold"]
                    .get("statistic")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(&s_at, "is required (a string such as \"p90\")"))?;
                let percentile = STATISTICS
                    .iter()
                    .find(|(n, _)| *n == s)
                    .map(|&(_, p)| p)
                    .ok_or_else(|| {
                        err(
                            &s_at,
                            format!(
                                "{} is not a statistic: {}",
                                quoted(s),
                                STATISTICS
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })?;
                if !op.is_ordering() {
                    return Err(err(
                        format!("{c_at}.comparisonOperator"),
                        format!(
                            "`{}` cannot compare with a statistic: use an ordering operator",
                            op.as_str()
                        ),
                    ));
                }
                CriteriaKind::Statistical {
                    op,
                    statistic: s.to_string(),
                    percentile,
                }
            }
            _ => {
                let m_at = format!("{c_at}.mlDetectionConfig");
                let ml = c["mlDetectionConfig"]
                    .as_object()
                    .ok_or_else(|| err(&m_at, "must be an object"))?;
                let confidence = match ml.get("confidenceLevel").and_then(Value::as_str) {
                    Some("LOW") => ConfidenceLevel::Low,
                    Some("MEDIUM") => ConfidenceLevel::Medium,
                    Some("HIGH") => ConfidenceLevel::High,
                    _ => {
                        return Err(err(
                            format!("{m_at}.confidenceLevel"),
                            format!(
                                "must be LOW, MEDIUM or HIGH, got {}",
                                ml.get("confidenceLevel")
                                    .map_or("nothing".into(), json_kind)
                            ),
                        ));
                    }
                };
                if op.is_some() {
                    return Err(err(
                        format!("{c_at}.comparisonOperator"),
                        "is not allowed with `mlDetectionConfig`",
                    ));
                }
                CriteriaKind::Ml { confidence }
            }
        };
        let count = |key: &str| -> Result<Option<u8>, ProfileError> {
            match c.get(key) {
                None => Ok(None),
                Some(x) => match x.as_u64() {
                    Some(n @ 1..=10) => Ok(Some(n as u8)),
                    _ => Err(err(
                        format!("{c_at}.{key}"),
                        format!("must be 1 to 10, got {x}"),
                    )),
                },
            }
        };
        let to_alarm = count("consecutiveDatapointsToAlarm")?;
        let to_clear = count("consecutiveDatapointsToClear")?;
        let d_at = format!("{c_at}.durationSeconds");
        let duration_seconds = match c.get("durationSeconds") {
            None => None,
            Some(x) => match x.as_u64() {
                Some(d) if d >= 1 => Some(d),
                _ => {
                    return Err(err(
                        &d_at,
                        format!("must be a whole number of seconds, got {x}"),
                    ));
                }
            },
        };
        let suppress_alerts = match o.get("suppressAlerts") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(err(
                    format!("{at}.suppressAlerts"),
                    format!("must be true or false, got {}", json_kind(other)),
                ));
            }
        };
        let dimension = match o.get("metricDimension") {
            None | Some(Value::Null) => None,
            Some(Value::Object(d)) => {
                let dn = d
                    .get("dimensionName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        err(format!("{at}.metricDimension.dimensionName"), "is required")
                    })?;
                check_identifier(dn)
                    .map_err(|r| err(format!("{at}.metricDimension.dimensionName"), r))?;
                let not_in = match d.get("operator") {
                    None | Some(Value::Null) => false,
                    Some(Value::String(s)) if s == "IN" => false,
                    Some(Value::String(s)) if s == "NOT_IN" => true,
                    Some(other) => {
                        return Err(err(
                            format!("{at}.metricDimension.operator"),
                            format!("must be IN or NOT_IN, got {other}"),
                        ));
                    }
                };
                Some(MetricDimension {
                    name: dn.to_string(),
                    not_in,
                    operator_given: d.get("operator").is_some_and(|v| !v.is_null()),
                })
            }
            Some(other) => {
                return Err(err(
                    format!("{at}.metricDimension"),
                    format!("must be an object, got {}", json_kind(other)),
                ));
            }
        };
        // rcf extensions
        let mut extra_metrics = Vec::new();
        let mut missing_data = MissingData::Ignore;
        let mut ml = MlSettings::default();
        let mut requires = Vec::new();
        let mut mitigation_actions = Vec::new();
        if let Some(ext) = o.get("rcf") {
            let e_at = format!("{at}.rcf");
            let ext = ext
                .as_object()
                .ok_or_else(|| err(&e_at, "must be an object"))?;
            for (key, x) in ext {
                let k_at = format!("{e_at}.{key}");
                let positive = |max: u64| match x.as_u64() {
                    Some(n) if (1..=max).contains(&n) => Ok(n as usize),
                    _ => Err(err(
                        &k_at,
                        format!("must be a whole number from 1 to {max}, got {x}"),
                    )),
                };
                match key.as_str() {
                    "metrics" => {
                        extra_metrics =
                            distinct_names(x, &k_at, "metric name", Some(&metric), check_name)?;
                    }
                    "missingData" => {
                        missing_data = match x.as_str() {
                            Some("ignore") => MissingData::Ignore,
                            Some("violate") => MissingData::Violate,
                            _ => {
                                return Err(err(
                                    &k_at,
                                    format!("must be \"ignore\" or \"violate\", got {x}"),
                                ));
                            }
                        }
                    }
                    "numTrees" => ml.num_trees = Some(positive(1_000)?),
                    "sampleSize" => ml.sample_size = Some(positive(8_192)?),
                    "shingleSize" => ml.shingle_size = Some(positive(64)?),
                    "timeDecay" => {
                        ml.time_decay =
                            Some(x.as_f64().filter(|d| (0.0..=1.0).contains(d)).ok_or_else(
                                || err(&k_at, format!("must be a number from 0 to 1, got {x}")),
                            )?)
                    }
                    "requires" => {
                        requires = distinct_names(x, &k_at, "behaviour name", None, |_| Ok(()))?;
                    }
                    "mitigationActions" => {
                        mitigation_actions =
                            distinct_names(x, &k_at, "action name", None, check_identifier)?;
                        if mitigation_actions.len() > 5 {
                            return Err(err(
                                &k_at,
                                format!(
                                    "must name 1 to 5 actions, names {}",
                                    mitigation_actions.len()
                                ),
                            ));
                        }
                    }
                    "scope" => {
                        ml.scope = x.as_str().and_then(ModelScope::parse).ok_or_else(|| {
                            err(
                                &k_at,
                                format!(
                                    "must be \"per-device\", \"group\" or \"hierarchical\", got {x}"
                                ),
                            )
                        })?
                    }
                    "zFactor" => {
                        ml.z_factor = Some(
                            x.as_f64()
                                .filter(|z| z.is_finite() && (1.0..=100.0).contains(z))
                                .ok_or_else(|| {
                                    err(&k_at, format!("must be a number from 1 to 100, got {x}"))
                                })?,
                        )
                    }
                    "seed" => {
                        ml.seed = Some(x.as_u64().ok_or_else(|| {
                            err(&k_at, format!("must be a non-negative integer, got {x}"))
                        })?)
                    }
                    _ => {
                        return Err(err(
                            &k_at,
                            "is not an rcf extension: metrics, missingData, numTrees, sampleSize, shingleSize, timeDecay, zFactor, scope, requires, mitigationActions or seed",
                        ));
                    }
                }
            }
        }
        let b = Behavior {
            name,
            metric,
            dimension,
            kind,
            duration_seconds,
            to_alarm,
            to_clear,
            suppress_alerts,
            extra_metrics,
            missing_data,
            ml,
            requires,
            mitigation_actions,
            json: v.clone(),
        };
        b.check(at, strict, catalog)?;
        Ok(b)
    }

    /// Device Defender's rules that relate fields to each other and to the metric's kind.
    fn check(&self, at: &str, strict: bool, catalog: &MetricCatalog) -> Result<(), ProfileError> {
        let c_at = format!("{at}.criteria");
        let kind = self
            .kind_of(&self.metric, catalog)
            .map_err(|r| err(format!("{at}.metric"), r))?;
        match &self.kind {
            CriteriaKind::Static { op, value } => {
                if !op.types().contains(&kind.metric_type) {
                    return Err(err(
                        format!("{c_at}.comparisonOperator"),
                        format!(
                            "`{}` does not apply to {} (a {} metric)",
                            op.as_str(),
                            quoted(&self.metric),
                            kind.metric_type.as_str()
                        ),
                    ));
                }
                let fits = match kind.metric_type {
                    MetricType::Number => value.as_number().is_some(),
                    t => t.accepts(value),
                };
                if !fits {
                    return Err(err(
                        format!("{c_at}.value"),
                        format!(
                            "`{}` does not fit {} ({} metric): give {}",
                            value.member(),
                            quoted(&self.metric),
                            kind.metric_type.as_str(),
                            kind.metric_type.members()
                        ),
                    ));
                }
            }
            CriteriaKind::Statistical { .. } => {
                if kind.metric_type != MetricType::Number {
                    return Err(err(
                        format!("{c_at}.statisticalThreshold"),
                        format!("cannot be used on {} (a list metric)", quoted(&self.metric)),
                    ));
                }
                if self.duration_seconds.is_none() {
                    return Err(err(
                        format!("{c_at}.durationSeconds"),
                        "is required with `statisticalThreshold` (the window the fleet's values are pooled over)",
                    ));
                }
            }
            CriteriaKind::Ml { .. } => {
                for (i, m) in self.metrics().enumerate() {
                    let k = self
                        .kind_of(m, catalog)
                        .map_err(|r| err(format!("{at}.metric"), r))?;
                    if !k.ml {
                        let field = if i == 0 {
                            format!("{at}.metric")
                        } else {
                            format!("{at}.rcf.metrics[{}]", i - 1)
                        };
                        return Err(err(
                            field,
                            format!(
                                "ML Detect accepts only numeric metrics; {} is a {}",
                                quoted(m),
                                k.metric_type.as_str()
                            ),
                        ));
                    }
                }
                if strict && self.duration_seconds.is_some() {
                    return Err(err(
                        format!("{c_at}.durationSeconds"),
                        "Device Defender does not accept durationSeconds with mlDetectionConfig (strict mode)",
                    ));
                }
            }
        }
        if !matches!(self.kind, CriteriaKind::Ml { .. }) {
            // the ML model's own settings, in the order they are reported
            let ml_only = [
                ("scope", self.ml.scope != ModelScope::PerDevice),
                ("zFactor", self.ml.z_factor.is_some()),
                ("timeDecay", self.ml.time_decay.is_some()),
            ];
            if let Some((field, _)) = ml_only.iter().find(|(_, set)| *set) {
                return Err(err(
                    format!("{at}.rcf.{field}"),
                    "applies only to behaviours with mlDetectionConfig",
                ));
            }
        }
        if !self.extra_metrics.is_empty() && !matches!(self.kind, CriteriaKind::Ml { .. }) {
            return Err(err(
                format!("{at}.rcf.metrics"),
                "only ML behaviours take several metrics",
            ));
        }
        let d_at = format!("{c_at}.durationSeconds");
        match (kind.aggregation, self.duration_seconds) {
            (Aggregation::Set, Some(_)) => {
                return Err(err(
                    &d_at,
                    format!(
                        "is not allowed on list metrics such as {}",
                        quoted(&self.metric)
                    ),
                ));
            }
            (Aggregation::PerMessage, Some(_)) if !matches!(self.kind, CriteriaKind::Ml { .. }) => {
                return Err(err(
                    &d_at,
                    format!(
                        "is not allowed on {}: it is evaluated message by message",
                        quoted(&self.metric)
                    ),
                ));
            }
            (Aggregation::Sum, None) if !matches!(self.kind, CriteriaKind::Ml { .. }) => {
                return Err(err(
                    &d_at,
                    format!(
                        "is required for {} (a count per period): one of 300, 600, 900, 1800, 3600",
                        quoted(&self.metric)
                    ),
                ));
            }
            (Aggregation::Gauge, Some(_))
                if strict && !matches!(self.kind, CriteriaKind::Ml { .. }) =>
            {
                return Err(err(
                    &d_at,
                    format!(
                        "Device Defender does not window {} (strict mode)",
                        quoted(&self.metric)
                    ),
                ));
            }
            _ => {}
        }
        if let Some(d) = self.duration_seconds {
            if strict && !STRICT_DURATIONS.contains(&d) {
                return Err(err(
                    &d_at,
                    format!(
                        "{d} is not a window Device Defender accepts (300, 600, 900, 1800 or 3600 s); \
                     without strict mode rcf accepts any window from 1 s to a day"
                    ),
                ));
            }
            if d > MAX_DURATION_SECONDS {
                return Err(err(
                    &d_at,
                    format!("{d} is longer than a day ({MAX_DURATION_SECONDS} s)"),
                ));
            }
        }
        if let Some(dim) = &self.dimension {
            if !kind.dimensions {
                return Err(err(
                    format!("{at}.metricDimension"),
                    format!(
                        "{} takes no dimension (TOPIC_FILTER dimensions apply to messages sent and received, message size, authorization failures and source IP)",
                        quoted(&self.metric)
                    ),
                ));
            }
            let _ = dim;
        }
        Ok(())
    }

    /// The kind of `metric`: declared, built in, or (for an undeclared custom metric) implied
    /// by the criteria.
    fn kind_of(&self, metric: &str, catalog: &MetricCatalog) -> Result<MetricKind, String> {
        if let Some(k) = catalog.get(metric) {
            return Ok(k);
        }
        Ok(super::metric::custom(self.implied_type(metric)?))
    }

    /// The type an undeclared custom metric must have for these criteria.
    pub(crate) fn implied_type(&self, metric: &str) -> Result<MetricType, String> {
        Ok(match &self.kind {
            CriteriaKind::Static { value, .. } => match value {
                MetricValue::Count(_) | MetricValue::Number(_) => MetricType::Number,
                MetricValue::Numbers(_) => MetricType::NumberList,
                MetricValue::Strings(_) => MetricType::StringList,
                MetricValue::Cidrs(_) => MetricType::IpAddressList,
                MetricValue::Ports(_) => {
                    return Err(format!(
                        "{}: custom metrics cannot be port lists (declare it as number-list)",
                        quoted(metric)
                    ));
                }
            },
            _ => MetricType::Number,
        })
    }
}

/// A security profile: behaviours, and the Device Defender fields rcf keeps but does not
/// interpret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityProfile {
    /// `securityProfileName`.
    pub name: String,
    /// The behaviours.
    pub behaviors: Vec<Behavior>,
    /// The profile's JSON as it came.
    json: Value,
}

/// Most behaviours in one profile (Device Defender's limit).
pub const MAX_BEHAVIORS: usize = 100;

impl SecurityProfile {
    /// Reads a `CreateSecurityProfile` request body. Undeclared custom metrics take the type
    /// their criteria imply.
    ///
    /// # Errors
    ///
    /// The first field Device Defender would reject (plus rcf's own checks), by JSON path.
    ///
    /// ```
    /// use rcf_stream::fleet::SecurityProfile;
    /// let p = SecurityProfile::from_json(&serde_json::json!({
    ///     "securityProfileName": "smart-lights",
    ///     "behaviors": [{
    ///         "name": "msgs", "metric": "aws:num-messages-sent",
    ///         "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 1000},
    ///                      "durationSeconds": 300, "consecutiveDatapointsToAlarm": 2}
    ///     }]
    /// }), false)?;
    /// assert_eq!(p.behaviors[0].consecutive_to_alarm(), 2);
    /// # Ok::<(), rcf_stream::fleet::ProfileError>(())
    /// ```
    pub fn from_json(v: &Value, strict: bool) -> Result<Self, ProfileError> {
        Self::from_json_with(v, strict, &MetricCatalog::default())
    }

    /// [`from_json`](Self::from_json) with declared custom metrics.
    pub fn from_json_with(
        v: &Value,
        strict: bool,
        catalog: &MetricCatalog,
    ) -> Result<Self, ProfileError> {
        let o = v.as_object().ok_or_else(|| {
            err(
                "",
                format!(
                    "a security profile must be a JSON object, got {}",
                    json_kind(v)
                ),
            )
        })?;
        let name = string(o, "securityProfileName", "")?
            .ok_or_else(|| err("securityProfileName", "is required"))?;
        check_identifier(&name).map_err(|r| err("securityProfileName", r))?;
        if let Some(d) = string(o, "securityProfileDescription", "")?
            && d.chars().count() > 1000
        {
            return Err(err(
                "securityProfileDescription",
                format!("must be at most 1000 characters, got {}", d.chars().count()),
            ));
        }
        let list = match o.get("behaviors") {
            None => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(err(
                    "behaviors",
                    format!("must be a list, got {}", json_kind(other)),
                ));
            }
        };
        if list.len() > MAX_BEHAVIORS {
            return Err(err(
                "behaviors",
                format!(
                    "has {} behaviours; a profile holds at most {MAX_BEHAVIORS}",
                    list.len()
                ),
            ));
        }
        let mut behaviors: Vec<Behavior> = Vec::with_capacity(list.len());
        for (i, b) in list.iter().enumerate() {
            let b = Behavior::from_json(b, &format!("behaviors[{i}]"), strict, catalog)?;
            if let Some(j) = behaviors.iter().position(|x| x.name == b.name) {
                return Err(err(
                    format!("behaviors[{i}].name"),
                    format!("{} is already the name of behaviors[{j}]", quoted(&b.name)),
                ));
            }
            behaviors.push(b);
        }
        // composite behaviours: what they require is a windowed behaviour of the profile with
        // the same window, and not themselves
        for (i, b) in behaviors.iter().enumerate() {
            for (k, r) in b.requires.iter().enumerate() {
                let at = format!("behaviors[{i}].rcf.requires[{k}]");
                let Some(other) = behaviors.iter().find(|x| x.name == *r) else {
                    return Err(err(
                        at,
                        format!("no behaviour of the profile is named {}", quoted(r)),
                    ));
                };
                if other.name == b.name {
                    return Err(err(at, "a behaviour cannot require itself"));
                }
                match (b.window_ms(), other.window_ms()) {
                    (Some(w), Some(v)) if w == v => {}
                    (None, _) => {
                        return Err(err(
                            at,
                            "only windowed behaviours (durationSeconds, or ML) can require others",
                        ));
                    }
                    _ => {
                        return Err(err(
                            at,
                            format!(
                                "{} must be evaluated over the same window ({} s)",
                                quoted(r),
                                b.window_ms().unwrap_or(0) / 1000
                            ),
                        ));
                    }
                }
            }
        }
        Ok(SecurityProfile {
            name,
            behaviors,
            json: v.clone(),
        })
    }

    /// The profile as `CreateSecurityProfile` JSON: what was read, unchanged.
    pub fn to_json(&self) -> &Value {
        &self.json
    }

    /// A behaviour by name.
    pub fn behavior(&self, name: &str) -> Option<&Behavior> {
        self.behaviors.iter().find(|b| b.name == name)
    }
}

/// The list of distinct names at `at` (each a `what`, checked by `check`), none of them
/// `taken` (the name the list extends).
fn distinct_names(
    x: &Value,
    at: &str,
    what: &str,
    taken: Option<&str>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, ProfileError> {
    let list = x
        .as_array()
        .ok_or_else(|| err(at, format!("must be a list of {what}s")))?;
    let mut names: Vec<String> = Vec::with_capacity(list.len());
    for (i, n) in list.iter().enumerate() {
        let n = n
            .as_str()
            .ok_or_else(|| err(format!("{at}[{i}]"), format!("must be a {what}")))?;
        check(n).map_err(|r| err(format!("{at}[{i}]"), r))?;
        if taken == Some(n) || names.iter().any(|e| e == n) {
            return Err(err(
                format!("{at}[{i}]"),
                format!("{} is named twice", quoted(n)),
            ));
        }
        names.push(n.to_string());
    }
    Ok(names)
}

/// A string field of `o`, if present.
fn string(o: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, ProfileError> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(err(
            if at.is_empty() {
                key.to_string()
            } else {
                format!("{at}.{key}")
            },
            format!("must be a string, got {}", json_kind(other)),
        )),
    }
}

/// Device Defender names: 1 to 128 characters of `[a-zA-Z0-9:_-]`.
pub(crate) fn check_identifier(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 128 {
        return Err(format!("must be 1 to 128 characters, got {}", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')))
    {
        return Err(format!("{} has {c:?}: names use [a-zA-Z0-9:_-]", quoted(s)));
    }
    Ok(())
}

/// A behaviour name outside strict mode: 1 to 128 characters without control characters
/// (Device Defender's own documentation writes `"TCP outbound traffic"`, which its API pattern
/// `[a-zA-Z0-9:_-]+` refuses; strict mode applies the pattern).
pub(crate) fn check_label(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 || n > 128 {
        return Err(format!("must be 1 to 128 characters, got {n}"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!(
            "{} has a control character",
            quoted(&s.escape_debug().to_string())
        ));
    }
    Ok(())
}

/// A thing name: 1 to 128 bytes of UTF-8 without control characters.
pub(crate) fn check_thing(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("thing name is empty".into());
    }
    if s.len() > 128 {
        return Err(format!(
            "thing name {} is {} bytes; at most 128",
            quoted(s),
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(format!(
            "thing name {} has a control character",
            quoted(&s.escape_debug().to_string())
        ));
    }
    Ok(())
}
