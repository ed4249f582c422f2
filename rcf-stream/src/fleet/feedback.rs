//! Verification states and the feedback they can carry.
//!
//! Device Defender's `PutVerificationStateOnViolation` labels a violation `TRUE_POSITIVE`,
//! `BENIGN_POSITIVE`, `FALSE_POSITIVE` or `UNKNOWN`, and a label changes nothing. rcf keeps
//! that as the default ([`Feedback::LabelOnly`]) and adds feedback that does change what
//! happens next, each an append-only, attributed adjustment record
//! ([`Engine::adjustments`](super::Engine::adjustments)) that can be reverted:
//!
//! * [`Feedback::Learn`] (for a false or benign positive): *similar deviations of that thing
//!   (or of a thing group) stop alarming*. Exactly what is learned, from the labelled
//!   violation's `in-alarm` event:
//!   - **ML behaviours**: for each metric, the labelled datapoint's deviation `L` from the
//!     thing's running normal in its model's normalised units (the z-score against the
//!     model's decayed mean and spread: `violationEventAdditionalInfo.deviations`;
//!     scale-free, so it carries over to the other things of a group). A later ML verdict of
//!     that behaviour counts as conforming when every metric's deviation `z` lies in
//!     `[min(0, 3·L) − 3, max(0, 3·L) + 3]` ([`LEARN_SPAN`], [`LEARN_SLACK`]): in the
//!     labelled direction up to three times as far, and otherwise within three spreads of
//!     normal, the range of ordinary values. Chosen on the demo fleet's benign rollout: with
//!     a span of 1.5 and one spread of slack the rollout's later points (further out as the
//!     shift persisted) and its ordinary battery noise fell outside, and alarmed again. A
//!     shift of bytes per message is learned; a ×6 message burst on the same thing still
//!     alarms (messages were not off before), as does a battery low beyond three spreads.
//!   - **Static and statistical comparisons** (`less-than` ...): the labelled value becomes
//!     the thing's bound (a value up to it, for `less-than*`, or down to it, for
//!     `greater-than*`, conforms).
//!   - **Set comparisons**: the labelled value's elements are allowed for the thing (added
//!     to an allow-list; taken out of what a deny-list checks).
//! * [`Feedback::Mute`]: no alerts for that signature (thing or group, profile, behaviour)
//!   until a time (event time); events are still stored (the outbox marks them `gated`).
//! * [`Feedback::ExcludeFromTraining`]: the violation's span, from its start to its clear
//!   (open while it is active), is kept out of the thing's model: the model is rebuilt from
//!   the stored history without it when labelled, and again when the alarm clears.

use std::sync::Arc;

use serde_json::{Value, json};

use super::engine::FleetError;
use super::profile::ComparisonOperator;
use super::time::Millis;
use super::value::MetricValue;

/// Device Defender's verification states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationState {
    /// `UNKNOWN` (every violation's state until someone labels it).
    Unknown,
    /// `TRUE_POSITIVE`.
    TruePositive,
    /// `BENIGN_POSITIVE`.
    BenignPositive,
    /// `FALSE_POSITIVE`.
    FalsePositive,
}

impl VerificationState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationState::Unknown => "UNKNOWN",
            VerificationState::TruePositive => "TRUE_POSITIVE",
            VerificationState::BenignPositive => "BENIGN_POSITIVE",
            VerificationState::FalsePositive => "FALSE_POSITIVE",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    ///
    /// Not one of the four, named.
    pub fn parse(s: &str) -> Result<Self, FleetError> {
        Ok(match s {
            "UNKNOWN" => VerificationState::Unknown,
            "TRUE_POSITIVE" => VerificationState::TruePositive,
            "BENIGN_POSITIVE" => VerificationState::BenignPositive,
            "FALSE_POSITIVE" => VerificationState::FalsePositive,
            other => {
                return Err(FleetError::InvalidParameter {
                    name: "verificationState",
                    reason: format!(
                        "`{other}` is not UNKNOWN, TRUE_POSITIVE, BENIGN_POSITIVE or FALSE_POSITIVE"
                    ),
                });
            }
        })
    }
}

/// Whom a learned tolerance or a mute covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The violation's thing.
    Thing,
    /// Every thing in this thing group (at the time each datapoint is judged).
    Group(String),
}

/// What a verification label does besides labelling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Feedback {
    /// Nothing (Device Defender's behaviour).
    #[default]
    LabelOnly,
    /// Similar deviations stop alarming (false and benign positives only; see the module
    /// docs for what is learned).
    Learn(Scope),
    /// No alerts for the signature until `until` (event time, epoch ms); events still stored.
    Mute {
        /// Who is muted.
        scope: Scope,
        /// Until when (exclusive).
        until: Millis,
    },
    /// Keep the violation's span out of the thing's model.
    ExcludeFromTraining,
}

impl Feedback {
    /// Parses `label-only`, `learn`, `learn:group=G`, `mute:until=T`, `mute:until=T:group=G`
    /// or `exclude-from-training` (`T` epoch seconds or RFC 3339).
    ///
    /// # Errors
    ///
    /// Anything else, named.
    pub fn parse(s: &str) -> Result<Self, FleetError> {
        let bad = |reason: String| FleetError::InvalidParameter {
            name: "feedback",
            reason,
        };
        let mut parts = s.split(':');
        let head = parts.next().unwrap_or_default();
        let mut group = None;
        let mut until = None;
        for p in parts {
            match p.split_once('=') {
                Some(("group", g)) if !g.is_empty() => group = Some(g.to_string()),
                Some(("until", t)) => {
                    let v = t
                        .parse::<f64>()
                        .map(|x| json!(x))
                        .unwrap_or_else(|_| json!(t));
                    until = Some(
                        super::time::parse_json(&v)
                            .map_err(|e| bad(format!("`{s}`: until {e}")))?,
                    );
                }
                _ => return Err(bad(format!("`{s}`: unknown part `{p}` (group=G, until=T)"))),
            }
        }
        let scope = group.map_or(Scope::Thing, Scope::Group);
        Ok(match (head, until) {
            ("label-only", None) if scope == Scope::Thing => Feedback::LabelOnly,
            ("learn", None) => Feedback::Learn(scope),
            ("mute", Some(until)) => Feedback::Mute { scope, until },
            ("mute", None) => return Err(bad(format!("`{s}`: a mute needs until=TIME"))),
            ("exclude-from-training", None) if scope == Scope::Thing => {
                Feedback::ExcludeFromTraining
            }
            _ => {
                return Err(bad(format!(
                    "`{s}` is not label-only, learn[:group=G], mute:until=T[:group=G] or exclude-from-training"
                )));
            }
        })
    }
}

/// What a `learn` adjustment learned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Learned {
    /// ML: per metric, the relative deviation of the labelled verdict.
    Deviations(Vec<(Arc<str>, f64)>),
    /// A comparison: the labelled value.
    Value(MetricValue),
}

/// The slack around a learned ML deviation, in the model's normalised units (one spread).
pub const LEARN_SLACK: f64 = 3.0;
/// How much larger than the learned deviation a deviation may be and still be learned.
pub const LEARN_SPAN: f64 = 3.0;

impl Learned {
    /// What is learned from a labelled `in-alarm` event's JSON.
    pub(crate) fn from_event(event: &Value) -> Option<Self> {
        if let Some(devs) = event
            .pointer("/violationEventAdditionalInfo/deviations")
            .and_then(Value::as_array)
        {
            let devs: Vec<(Arc<str>, f64)> = devs
                .iter()
                .filter_map(|e| {
                    Some((
                        Arc::from(e.get("metric")?.as_str()?),
                        e.get("deviation")?.as_f64()?,
                    ))
                })
                .collect();
            return (!devs.is_empty()).then_some(Learned::Deviations(devs));
        }
        MetricValue::from_json(event.get("metricValue")?)
            .ok()
            .map(Learned::Value)
    }

    pub(crate) fn to_json(&self) -> Value {
        match self {
            Learned::Deviations(d) => json!({"deviations": d.iter()
                .map(|(m, x)| json!({"metric": &**m, "deviation": x})).collect::<Vec<_>>()}),
            Learned::Value(v) => json!({"value": v.to_json()}),
        }
    }

    pub(crate) fn from_json(v: &Value) -> Option<Self> {
        if let Some(d) = v.get("deviations").and_then(Value::as_array) {
            return Some(Learned::Deviations(
                d.iter()
                    .filter_map(|e| {
                        Some((
                            Arc::from(e.get("metric")?.as_str()?),
                            e.get("deviation")?.as_f64()?,
                        ))
                    })
                    .collect(),
            ));
        }
        MetricValue::from_json(v.get("value")?)
            .ok()
            .map(Learned::Value)
    }

    /// Whether an ML verdict with these per-metric deviations is like the learned one.
    pub(crate) fn forgives_ml(&self, deviations: &[(Arc<str>, f64)]) -> bool {
        let Learned::Deviations(learned) = self else {
            return false;
        };
        !deviations.is_empty()
            && deviations.iter().all(|(m, z)| {
                let l = learned
                    .iter()
                    .find(|(n, _)| n == m)
                    .map_or(0.0, |(_, l)| *l);
                let lo = (LEARN_SPAN * l).min(0.0) - LEARN_SLACK;
                let hi = (LEARN_SPAN * l).max(0.0) + LEARN_SLACK;
                (lo..=hi).contains(z)
            })
    }

    /// Whether a comparison's `observed` value conforms once the learned value is allowed.
    pub(crate) fn forgives_value(
        &self,
        op: ComparisonOperator,
        want: &MetricValue,
        observed: &MetricValue,
    ) -> bool {
        use ComparisonOperator::*;
        let Learned::Value(learned) = self else {
            return false;
        };
        if op.is_ordering() {
            let (Some(x), Some(l)) = (observed.as_number(), learned.as_number()) else {
                return false;
            };
            return match op {
                LessThan | LessThanEquals => x <= l,
                _ => x >= l,
            };
        }
        let allow = matches!(op, InCidrSet | InPortSet | InSet);
        let widened = if allow { union(want, learned) } else { None };
        match widened {
            Some(set) => op.holds(observed, &set).unwrap_or(false),
            None if !allow => difference(observed, learned)
                .and_then(|rest| op.holds(&rest, want))
                .unwrap_or(false),
            None => false,
        }
    }
}

/// The elements of two lists of the same kind together.
fn union(a: &MetricValue, b: &MetricValue) -> Option<MetricValue> {
    use MetricValue as V;
    Some(match (a, b) {
        (V::Ports(x), V::Ports(y)) => V::Ports(x.iter().chain(y).copied().collect()),
        (V::Strings(x), V::Strings(y)) => V::Strings(x.iter().chain(y).cloned().collect()),
        (V::Numbers(x), V::Numbers(y)) => V::Numbers(x.iter().chain(y).copied().collect()),
        (V::Cidrs(x), V::Cidrs(y)) => V::Cidrs(x.iter().chain(y).copied().collect()),
        _ => return None,
    })
}

/// The elements of `a` not in `b`.
fn difference(a: &MetricValue, b: &MetricValue) -> Option<MetricValue> {
    use MetricValue as V;
    Some(match (a, b) {
        (V::Ports(x), V::Ports(y)) => {
            V::Ports(x.iter().filter(|p| !y.contains(p)).copied().collect())
        }
        (V::Strings(x), V::Strings(y)) => {
            V::Strings(x.iter().filter(|p| !y.contains(p)).cloned().collect())
        }
        (V::Numbers(x), V::Numbers(y)) => {
            V::Numbers(x.iter().filter(|p| !y.contains(p)).copied().collect())
        }
        (V::Cidrs(x), V::Cidrs(y)) => {
            V::Cidrs(x.iter().filter(|p| !y.contains(p)).copied().collect())
        }
        _ => return None,
    })
}

/// An active (not reverted) feedback rule, as the engine applies it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    /// The adjustment's id.
    pub(crate) id: i64,
    pub(crate) thing: Arc<str>,
    pub(crate) scope: Scope,
    pub(crate) profile: Arc<str>,
    pub(crate) behavior: Arc<str>,
    pub(crate) kind: RuleKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RuleKind {
    Learn(Learned),
    Mute {
        until: Millis,
    },
    Exclude {
        start: Millis,
        end: Option<Millis>,
        violation_id: String,
    },
}

impl Rule {
    /// Whether the rule covers `thing` (`in_group` says whether it is in a group).
    pub(crate) fn covers(&self, thing: &str, in_group: impl Fn(&str) -> bool) -> bool {
        match &self.scope {
            Scope::Thing => &*self.thing == thing,
            Scope::Group(g) => in_group(g),
        }
    }

    /// The rule as the JSON of its adjustment record's `rule` member.
    pub(crate) fn to_json(&self) -> Value {
        let scope = match &self.scope {
            Scope::Thing => json!({"thing": &*self.thing}),
            Scope::Group(g) => json!({"thingGroup": g}),
        };
        let mut o = json!({
            "scope": scope, "thingName": &*self.thing,
            "securityProfileName": &*self.profile, "behaviorName": &*self.behavior,
        });
        match &self.kind {
            RuleKind::Learn(l) => o["learned"] = l.to_json(),
            RuleKind::Mute { until } => o["until"] = super::time::to_json(*until),
            RuleKind::Exclude {
                start,
                end,
                violation_id,
            } => {
                o["excluded"] = json!({"violationId": violation_id, "start": start, "end": end});
            }
        }
        o
    }

    pub(crate) fn from_json(id: i64, kind: &str, v: &Value) -> Option<Self> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(Arc::<str>::from);
        let scope = match v.pointer("/scope/thingGroup").and_then(Value::as_str) {
            Some(g) => Scope::Group(g.to_string()),
            None => Scope::Thing,
        };
        let kind = match kind {
            "learn" => RuleKind::Learn(Learned::from_json(v.get("learned")?)?),
            "mute" => RuleKind::Mute {
                until: super::time::parse_json(v.get("until")?).ok()?,
            },
            "exclude-from-training" => {
                let x = v.get("excluded")?;
                RuleKind::Exclude {
                    start: x.get("start")?.as_i64()?,
                    end: x.get("end").and_then(Value::as_i64),
                    violation_id: x.get("violationId")?.as_str()?.to_string(),
                }
            }
            _ => return None,
        };
        Some(Rule {
            id,
            thing: text("thingName")?,
            scope,
            profile: text("securityProfileName")?,
            behavior: text("behaviorName")?,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learned_shift_forgives_its_like_and_not_a_burst() {
        // learned: bytes 4 spreads high, messages as usual
        let l = Learned::Deviations(vec![("bytes".into(), 4.0), ("msgs".into(), 0.2)]);
        let v = |b: f64, m: f64| vec![(Arc::from("bytes"), b), (Arc::from("msgs"), m)];
        assert!(l.forgives_ml(&v(4.0, 0.0)));
        assert!(
            l.forgives_ml(&v(10.0, 1.0)),
            "further in the same direction, up to 3x"
        );
        assert!(
            l.forgives_ml(&v(0.5, -0.8)),
            "ordinary values are like it too"
        );
        assert!(!l.forgives_ml(&v(30.0, 0.0)), "bytes far beyond");
        assert!(!l.forgives_ml(&v(4.0, 12.0)), "a message burst");
        assert!(
            !l.forgives_ml(&v(-5.0, 0.0)),
            "the other direction, beyond 3 spreads"
        );
        assert!(
            !l.forgives_ml(&v(4.0, -4.0)),
            "another metric beyond 3 spreads"
        );
        assert!(!l.forgives_ml(&[]), "nothing to compare");
    }

    #[test]
    fn learned_values_widen_bounds_and_sets() {
        use ComparisonOperator::*;
        let l = Learned::Value(MetricValue::Count(5000));
        let want = MetricValue::Count(4096);
        assert!(l.forgives_value(LessThanEquals, &want, &MetricValue::Count(4500)));
        assert!(!l.forgives_value(LessThanEquals, &want, &MetricValue::Count(9000)));
        let ports = Learned::Value(MetricValue::Ports(vec![8080]));
        let allow = MetricValue::Ports(vec![443]);
        assert!(ports.forgives_value(InPortSet, &allow, &MetricValue::Ports(vec![443, 8080])));
        assert!(!ports.forgives_value(InPortSet, &allow, &MetricValue::Ports(vec![23])));
        let deny = MetricValue::Ports(vec![23, 8080]);
        assert!(ports.forgives_value(NotInPortSet, &deny, &MetricValue::Ports(vec![8080, 22])));
        assert!(!ports.forgives_value(NotInPortSet, &deny, &MetricValue::Ports(vec![23])));
    }

    #[test]
    fn feedback_strings_parse_and_bad_ones_are_named() {
        assert_eq!(
            Feedback::parse("learn").unwrap(),
            Feedback::Learn(Scope::Thing)
        );
        assert_eq!(
            Feedback::parse("learn:group=lights").unwrap(),
            Feedback::Learn(Scope::Group("lights".into()))
        );
        assert_eq!(
            Feedback::parse("mute:until=1767225600").unwrap(),
            Feedback::Mute {
                scope: Scope::Thing,
                until: 1_767_225_600_000
            }
        );
        for bad in [
            "mute",
            "forget",
            "learn:colour=red",
            "exclude-from-training:group=g",
        ] {
            let e = Feedback::parse(bad).unwrap_err().to_string();
            assert!(e.contains("feedback"), "{bad}: {e}");
        }
        assert!(
            VerificationState::parse("MAYBE")
                .unwrap_err()
                .to_string()
                .contains("MAYBE")
        );
    }
}
