//! A seeded simulated IoT fleet in Device Defender's terms: things reporting cloud-side and
//! device-side metrics every five minutes, with the incidents of our design notes labelled.
//! Used by the `rcf fleet` demo, the fleet tests and the fleet benchmark.
//!
//! Each thing has its own daily rhythm (message rate peaking at a thing-specific hour), noise,
//! and battery cycle. The incidents:
//!
//! | incident | things | what changes |
//! |---|---|---|
//! | rogue agent | 1 | messages ×6 and bytes out ×10 for 4 h |
//! | debug firmware | 4 | messages published to `debug/trace` for 6 h |
//! | auth-failure spike | 50 at once | 40 authorization failures per 5 min for 30 min |
//! | telnet | 1 | port 23 opens and stays open for 3 h |
//! | silent | 1 | stops reporting for good |
//! | benign rollout | 8 | bytes per message +60 % from then on (a new normal) |

use crate::synth::Rng;

/// Five minutes in milliseconds: the reporting period.
pub const PERIOD_MS: i64 = 300_000;
/// 2026-01-01T00:00:00Z, the simulation's start.
pub const START_MS: i64 = 1_767_225_600_000;

/// A reported value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count.
    Count(u64),
    /// A number.
    Number(f64),
    /// A port list.
    Ports(Vec<u16>),
}

/// One datapoint of the simulated fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The thing.
    pub thing: String,
    /// The Device Defender metric (or `battery`, a custom metric).
    pub metric: &'static str,
    /// The value.
    pub value: Value,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// The MQTT topic, for message counts.
    pub topic: Option<&'static str>,
}

impl Report {
    /// The datapoint as one line of rcf's JSON Lines (`{"thing", "metric", "value",
    /// "timestamp"[, "topic"]}`).
    pub fn to_json_line(&self) -> String {
        let value = match &self.value {
            Value::Count(c) => serde_json::json!(c),
            Value::Number(x) => serde_json::json!({ "number": x }),
            Value::Ports(p) => serde_json::json!({ "ports": p }),
        };
        let mut o = serde_json::json!({
            "thing": self.thing, "metric": self.metric, "value": value,
            "timestamp": self.timestamp / 1000,
        });
        if let Some(t) = self.topic {
            o["topic"] = serde_json::json!(t);
        }
        o.to_string()
    }
}

/// Kinds of incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncidentKind {
    /// Message and byte rate burst.
    RogueAgent,
    /// A firmware build that publishes to debug topics in production.
    DebugFirmware,
    /// Authorization failures on many things at once.
    AuthFailureSpike,
    /// A thing opens telnet.
    Telnet,
    /// A thing stops reporting.
    Silent,
    /// A benign firmware rollout that shifts bytes per message (to be alarmed, then learned).
    BenignRollout,
}

impl IncidentKind {
    /// A short description.
    pub fn describe(self) -> &'static str {
        match self {
            IncidentKind::RogueAgent => "rogue agent (message and byte burst)",
            IncidentKind::DebugFirmware => "firmware publishing to debug topics",
            IncidentKind::AuthFailureSpike => "authorization-failure spike",
            IncidentKind::Telnet => "telnet port opened",
            IncidentKind::Silent => "thing went silent",
            IncidentKind::BenignRollout => "benign firmware rollout",
        }
    }
}

/// A labelled incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// What happens.
    pub kind: IncidentKind,
    /// The things it happens to.
    pub things: Vec<String>,
    /// Start, epoch ms.
    pub start: i64,
    /// End, epoch ms (exclusive; `i64::MAX` for changes that stay).
    pub end: i64,
}

/// A simulated fleet: its datapoints in time order, and its incidents.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Thing names (`thing-000` ...).
    pub things: Vec<String>,
    /// Days simulated.
    pub days: usize,
    /// Datapoints, in time order (within a period, by thing).
    pub reports: Vec<Report>,
    /// The incidents.
    pub incidents: Vec<Incident>,
}

/// The demo fleet: `things` things (at least 60) over `days` days (at least 4), seeded.
///
/// # Panics
///
/// With fewer than 60 things or 4 days (the incidents need them).
pub fn fleet(things: usize, days: usize, seed: u64) -> Fleet {
    assert!(
        things >= 60 && days >= 4,
        "the demo fleet needs at least 60 things and 4 days"
    );
    let names: Vec<String> = (0..things).map(|i| format!("thing-{i:03}")).collect();
    let hour = 12 * PERIOD_MS;
    let day = 24 * hour;
    let at = |d: i64, h: i64| START_MS + d * day + h * hour;
    let incidents = vec![
        Incident {
            kind: IncidentKind::RogueAgent,
            things: vec![names[7].clone()],
            start: at(2, 10),
            end: at(2, 14),
        },
        Incident {
            kind: IncidentKind::DebugFirmware,
            things: names[20..24].to_vec(),
            start: at(3, 6),
            end: at(3, 12),
        },
        Incident {
            kind: IncidentKind::AuthFailureSpike,
            things: names[things - 50..].to_vec(),
            start: at(2, 20),
            end: at(2, 20) + 6 * PERIOD_MS,
        },
        Incident {
            kind: IncidentKind::Telnet,
            things: vec![names[31].clone()],
            start: at(3, 13),
            end: at(3, 16),
        },
        Incident {
            kind: IncidentKind::Silent,
            things: vec![names[42].clone()],
            start: at(1, 18),
            end: i64::MAX,
        },
        Incident {
            kind: IncidentKind::BenignRollout,
            things: names[50..58].to_vec(),
            start: at(2, 3),
            end: i64::MAX,
        },
    ];
    let involved = |kind: IncidentKind, i: usize, t: i64| {
        incidents
            .iter()
            .any(|x| x.kind == kind && x.start <= t && t < x.end && x.things.contains(&names[i]))
    };
    let mut rng = Rng::new(seed);
    // per-thing character
    let profile: Vec<(f64, f64, f64, f64)> = (0..things)
        .map(|_| {
            // a homogeneous fleet (one product line), as Device Defender advised for
            // statistical and ML behaviours: similar rates, a common daily rhythm
            let base = 50.0 + 20.0 * rng.uniform(); // messages per 5 min
            let peak = 13.0 + 3.0 * rng.uniform(); // hour of the daily peak
            let size = 180.0 + 40.0 * rng.uniform(); // bytes per message
            let battery = 0.6 + 0.3 * rng.uniform();
            (base, peak, size, battery)
        })
        .collect();
    let periods = days as i64 * 288;
    let mut reports = Vec::with_capacity(things * periods as usize * 5);
    for p in 0..periods {
        let t = START_MS + p * PERIOD_MS;
        let hour_of_day = (p % 288) as f64 / 12.0;
        for (i, name) in names.iter().enumerate() {
            if involved(IncidentKind::Silent, i, t) {
                continue;
            }
            // reports arrive a few seconds into the period, in thing order
            let ts = t + 1_000 + (i as i64 % 50) * 100;
            let (base, peak, size, battery) = profile[i];
            let daily = 1.0 + 0.5 * (std::f64::consts::TAU * (hour_of_day - peak) / 24.0).cos();
            let mut msgs = (base * daily * (1.0 + 0.08 * rng.normal())).max(0.0);
            let mut bytes_per = size * (1.0 + 0.05 * rng.normal());
            if involved(IncidentKind::RogueAgent, i, t) {
                msgs *= 6.0;
                bytes_per *= 10.0 / 6.0;
            }
            if involved(IncidentKind::BenignRollout, i, t) {
                bytes_per *= 1.6;
            }
            let msgs = msgs.round() as u64;
            let debug = involved(IncidentKind::DebugFirmware, i, t);
            let debug_msgs = if debug { (msgs / 4).max(1) } else { 0 };
            let push = |reports: &mut Vec<Report>, metric, value, topic| {
                reports.push(Report {
                    thing: name.clone(),
                    metric,
                    value,
                    timestamp: ts,
                    topic,
                });
            };
            push(
                &mut reports,
                "aws:num-messages-sent",
                Value::Count(msgs - debug_msgs.min(msgs)),
                Some("prod/telemetry"),
            );
            if debug {
                push(
                    &mut reports,
                    "aws:num-messages-sent",
                    Value::Count(debug_msgs),
                    Some("debug/trace"),
                );
            }
            push(
                &mut reports,
                "aws:all-bytes-out",
                Value::Count((msgs as f64 * bytes_per).round() as u64),
                None,
            );
            let auth = if involved(IncidentKind::AuthFailureSpike, i, t) {
                40 + (rng.uniform() * 10.0) as u64
            } else {
                u64::from(rng.uniform() < 0.01)
            };
            push(
                &mut reports,
                "aws:num-authorization-failures",
                Value::Count(auth),
                None,
            );
            let mut ports = vec![443, 8883];
            if involved(IncidentKind::Telnet, i, t) {
                ports.push(23);
            }
            push(
                &mut reports,
                "aws:listening-tcp-ports",
                Value::Ports(ports),
                None,
            );
            // battery: a daily charge cycle
            let level = battery
                + 0.08 * (std::f64::consts::TAU * hour_of_day / 24.0).sin()
                + 0.005 * rng.normal();
            push(
                &mut reports,
                "battery",
                Value::Number((level * 1000.0).round() / 10.0),
                None,
            );
        }
    }
    Fleet {
        things: names,
        days,
        reports,
        incidents,
    }
}

/// The demo's security profile bundle (Device Defender's `CreateSecurityProfile` plus a
/// dimension), as JSON text.
pub fn demo_profile() -> &'static str {
    r#"{
  "dimensions": [
    {"name": "debug-topics", "type": "TOPIC_FILTER", "stringValues": ["debug/#", "+/debug/#"]}
  ],
  "customMetrics": [{"metricName": "battery", "metricType": "number"}],
  "securityProfiles": [{
    "securityProfileName": "fleet-baseline",
    "securityProfileDescription": "Rules, a fleet percentile and a per-thing model for the demo fleet",
    "behaviors": [
      {"name": "message-burst", "metric": "aws:num-messages-sent",
       "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 300},
                    "durationSeconds": 300, "consecutiveDatapointsToAlarm": 2,
                    "consecutiveDatapointsToClear": 2}},
      {"name": "no-debug-topics", "metric": "aws:num-messages-sent",
       "metricDimension": {"dimensionName": "debug-topics", "operator": "IN"},
       "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 0},
                    "durationSeconds": 300}},
      {"name": "auth-failures", "metric": "aws:num-authorization-failures",
       "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": 5},
                    "durationSeconds": 300}},
      {"name": "no-telnet", "metric": "aws:listening-tcp-ports",
       "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23, 2323]}}},
      {"name": "bytes-out-fleet-p99", "metric": "aws:all-bytes-out",
       "criteria": {"comparisonOperator": "less-than-equals",
                    "statisticalThreshold": {"statistic": "p99"}, "durationSeconds": 300,
                    "consecutiveDatapointsToAlarm": 3, "consecutiveDatapointsToClear": 3},
       "rcf": {"requires": ["traffic-ml"]}},
      {"name": "reporting", "metric": "aws:num-messages-sent",
       "criteria": {"comparisonOperator": "greater-than-equals", "value": {"count": 0},
                    "durationSeconds": 300, "consecutiveDatapointsToAlarm": 3},
       "rcf": {"missingData": "violate"}},
      {"name": "traffic-ml", "metric": "aws:num-messages-sent",
       "criteria": {"mlDetectionConfig": {"confidenceLevel": "HIGH"},
                    "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 3},
       "rcf": {"metrics": ["aws:all-bytes-out", "battery"]}}
    ]
  }]
}"#
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_is_seeded_and_labelled() {
        let a = fleet(60, 4, 1);
        let b = fleet(60, 4, 1);
        assert_eq!(a.reports, b.reports);
        assert_eq!(a.incidents.len(), 6);
        // the silent thing stops
        let silent = &a
            .incidents
            .iter()
            .find(|i| i.kind == IncidentKind::Silent)
            .unwrap()
            .things[0];
        let last = a
            .reports
            .iter()
            .filter(|r| &r.thing == silent)
            .map(|r| r.timestamp)
            .max()
            .unwrap();
        assert!(last < START_MS + 42 * 3_600_000);
        assert!(
            a.reports
                .windows(2)
                .all(|w| w[0].timestamp / PERIOD_MS <= w[1].timestamp / PERIOD_MS)
        );
        assert!(serde_json::from_str::<serde_json::Value>(demo_profile()).is_ok());
    }
}
