//! Violation events in Device Defender's `ViolationEvent` JSON, with rcf's explanation of ML
//! violations in `violationEventAdditionalInfo`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::profile::ConfidenceLevel;
use super::time::{self, Millis};
use super::value::MetricValue;
use crate::Verdict;

/// `violationEventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// The alarm went off: `consecutiveDatapointsToAlarm` violating datapoints.
    InAlarm,
    /// The alarm cleared: `consecutiveDatapointsToClear` conforming datapoints.
    AlarmCleared,
    /// The alarm no longer means anything: the thing went silent, left the target, or the
    /// behaviour was removed or changed.
    AlarmInvalidated,
}

impl EventType {
    /// The wire name (`in-alarm`, `alarm-cleared`, `alarm-invalidated`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::InAlarm => "in-alarm",
            EventType::AlarmCleared => "alarm-cleared",
            EventType::AlarmInvalidated => "alarm-invalidated",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in-alarm" => Some(EventType::InAlarm),
            "alarm-cleared" => Some(EventType::AlarmCleared),
            "alarm-invalidated" => Some(EventType::AlarmInvalidated),
            _ => None,
        }
    }
}

/// What an ML verdict adds to an event: the score and why.
#[derive(Debug, Clone, PartialEq)]
pub struct MlExplanation {
    /// Device Defender's confidence level of the behaviour.
    pub confidence_level: ConfidenceLevel,
    /// The RCF score of the datapoint.
    pub score: f64,
    /// How anomalous, in (0, 1), comparable across things.
    pub grade: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// Per metric: the value that arrived and the value expected.
    pub expected: Vec<(Arc<str>, f64, f64)>,
    /// Per metric: attribution `(metric, high, low)`, summing to the score.
    pub attribution: Vec<(Arc<str>, f64, f64)>,
    /// Per metric: how far the window's value is from the thing's running normal, in its
    /// model's normalised units (z-scores; see [`Verdict::deviations`]).
    pub deviations: Vec<(Arc<str>, f64)>,
    /// When the anomaly began, in datapoints relative to this one (0 now, −k k datapoints ago).
    pub relative_index: i32,
    /// The verdict came from the behaviour's group model (scopes `group`, and `hierarchical`
    /// while the thing's own model warms up), not the thing's own.
    pub group_model: bool,
}

impl MlExplanation {
    pub(crate) fn from_verdict(
        confidence_level: ConfidenceLevel,
        v: &Verdict,
        names: &[Arc<str>],
    ) -> Self {
        MlExplanation {
            confidence_level,
            score: v.score,
            grade: v.grade,
            threshold: v.threshold,
            expected: v
                .expected
                .iter()
                .map(|e| (e.metric.clone(), e.actual, e.expected))
                .collect(),
            attribution: v
                .attribution
                .iter()
                .map(|a| (a.metric.clone(), a.high, a.low))
                .collect(),
            deviations: names
                .iter()
                .cloned()
                .zip(v.deviations.iter().copied())
                .collect(),
            relative_index: v.relative_index,
            group_model: false,
        }
    }

    fn to_json(&self) -> Value {
        let num = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
        json!({
            "confidenceLevel": self.confidence_level.as_str(),
            "score": num(self.score),
            "grade": num(self.grade),
            "threshold": num(self.threshold),
            "expected": self.expected.iter().map(|(m, a, e)| json!({
                "metric": &**m, "actual": num(*a), "expected": num(*e)})).collect::<Vec<_>>(),
            "attribution": self.attribution.iter().map(|(m, h, l)| json!({
                "metric": &**m, "high": num(*h), "low": num(*l),
                "direction": if h >= l { "HIGH" } else { "LOW" }})).collect::<Vec<_>>(),
            "deviations": self.deviations.iter().map(|(m, z)| json!({
                "metric": &**m, "deviation": num(*z)})).collect::<Vec<_>>(),
            "relativeIndex": self.relative_index,
            "model": if self.group_model { "group" } else { "device" },
        })
    }
}

/// One violation event.
#[derive(Debug, Clone, PartialEq)]
pub struct ViolationEvent {
    /// `violationId`: one id follows one alarm from in-alarm to cleared or invalidated.
    pub violation_id: String,
    /// `thingName`.
    pub thing_name: Arc<str>,
    /// `securityProfileName`.
    pub security_profile_name: Arc<str>,
    /// `behavior`: the behaviour's JSON when the event happened.
    pub behavior: Value,
    /// The behaviour's name.
    pub behavior_name: Arc<str>,
    /// `STATIC`, `STATISTICAL` or `MACHINE_LEARNING`.
    pub criteria_type: &'static str,
    /// `metricValue`: the datapoint that made the event (none for invalidations and for
    /// missing-data violations).
    pub metric_value: Option<MetricValue>,
    /// `violationEventType`.
    pub event_type: EventType,
    /// `violationEventTime`.
    pub time: Millis,
    /// When the alarm went off.
    pub violation_start_time: Millis,
    /// `verificationState` (`UNKNOWN` until someone labels it).
    pub verification_state: String,
    /// `verificationStateDescription`, once labelled with one.
    pub verification_state_description: Option<String>,
    /// The behaviour's `suppressAlerts` (the event is recorded; alerts are not sent).
    pub suppressed: bool,
    /// Why the event happened, in words (an rcf extension: "3 datapoints violated ...").
    pub reason: String,
    /// For ML behaviours, the verdict's explanation.
    pub ml: Option<MlExplanation>,
}

impl ViolationEvent {
    /// The event in Device Defender's `ViolationEvent` JSON (camelCase), with rcf's additions in
    /// `violationEventAdditionalInfo` (ML: `score`, `grade`, `threshold`, `expected`,
    /// `attribution`, `relativeIndex`) and `rcf` (`violationStartTime`, `reason`,
    /// `suppressAlerts`).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("violationId".into(), json!(self.violation_id));
        o.insert("thingName".into(), json!(&*self.thing_name));
        o.insert(
            "securityProfileName".into(),
            json!(&*self.security_profile_name),
        );
        o.insert("behavior".into(), self.behavior.clone());
        if let Some(v) = &self.metric_value {
            o.insert("metricValue".into(), v.to_json());
        }
        if let Some(ml) = &self.ml {
            o.insert("violationEventAdditionalInfo".into(), ml.to_json());
        }
        o.insert("violationEventType".into(), json!(self.event_type.as_str()));
        o.insert("verificationState".into(), json!(self.verification_state));
        if let Some(d) = &self.verification_state_description {
            o.insert("verificationStateDescription".into(), json!(d));
        }
        o.insert("violationEventTime".into(), time::to_json(self.time));
        o.insert(
            "rcf".into(),
            json!({
                "violationStartTime": time::to_json(self.violation_start_time),
                "criteriaType": self.criteria_type,
                "suppressAlerts": self.suppressed,
                "reason": self.reason,
            }),
        );
        Value::Object(o)
    }
}

/// A deterministic violation id: the same alarm on a replay of the same input gets the same
/// id (a UUID-shaped hash of profile, behaviour, thing and start time).
pub(crate) fn violation_id(profile: &str, behavior: &str, thing: &str, start: Millis) -> String {
    let a = fnv(0xcbf2_9ce4_8422_2325, &[profile, behavior, thing], start);
    let b = fnv(
        0x8422_2325_cbf2_9ce4 ^ a,
        &[thing, behavior, profile],
        start,
    );
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn fnv(seed: u64, parts: &[&str], n: i64) -> u64 {
    let mut h = seed;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for p in parts {
        eat(p.as_bytes());
        eat(&[0xff]);
    }
    eat(&n.to_le_bytes());
    // final avalanche (splitmix64)
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = violation_id("p", "b", "t", 1);
        assert_eq!(a, violation_id("p", "b", "t", 1));
        assert_ne!(a, violation_id("p", "b", "t", 2));
        assert_ne!(a, violation_id("p", "bt", "", 1));
        assert_eq!(a.len(), 36);
    }
}
