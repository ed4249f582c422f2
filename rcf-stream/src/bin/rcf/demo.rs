//! The built-in demo: a small synthetic fleet with labelled anomalies, streamed through one
//! detector per device, and a report of what was found.

use std::io::Write;

use rcf_stream::Detector;

use crate::{DetectArgs, build_detector};

/// Metrics every simulated device reports once a minute.
const METRICS: [&str; 5] = ["torque", "battery", "msg_rate", "msg_size", "auth_failures"];
/// Minutes simulated per device.
const MINUTES: usize = 4_000;
/// Minutes of history each detector is bootstrapped with before the live stream.
const HISTORY: usize = 1_500;

/// An injected anomaly.
struct Event {
    device: usize,
    start: usize,
    len: usize,
    kind: &'static str,
}

const EVENTS: [Event; 6] = [
    Event {
        device: 0,
        start: 2_400,
        len: 1,
        kind: "torque spike",
    },
    Event {
        device: 0,
        start: 3_300,
        len: 60,
        kind: "variance burst on torque",
    },
    Event {
        device: 1,
        start: 2_600,
        len: 30,
        kind: "message-rate burst (rogue agent)",
    },
    Event {
        device: 1,
        start: 3_400,
        len: 10,
        kind: "authentication failures",
    },
    Event {
        device: 2,
        start: 2_800,
        len: 100,
        kind: "battery sensor stuck",
    },
    Event {
        device: 2,
        start: 3_200,
        len: MINUTES - 3_200,
        kind: "firmware update: messages 30 % larger (benign, permanent)",
    },
];

/// SplitMix64 with normal draws. The same generator as `rcf_datasets::synth::Rng`, repeated
/// here because the published `rcf` binary cannot depend on the unpublished datasets crate.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// One device's telemetry, minute by minute, with its events applied.
fn device(d: usize) -> Vec<[f32; 5]> {
    let mut rng = Rng(1_000 + d as u64);
    let phase = d as f64 * 1.7;
    let mut rows = Vec::with_capacity(MINUTES);
    let mut stuck_battery = 0.0;
    for t in 0..MINUTES {
        let tf = t as f64;
        let day = (std::f64::consts::TAU * tf / 1_440.0 + phase).sin();
        let mut torque = 20.0 + 4.0 * (tf / 30.0 + phase).sin() + 0.4 * rng.normal();
        let mut battery = 100.0 - (t % 720) as f64 / 9.0 + 0.3 * rng.normal();
        let mut msg_rate = 60.0 + 15.0 * day + 2.0 * rng.normal();
        let mut msg_size = 512.0 + 20.0 * rng.normal();
        // a few failed logins a minute are ordinary (binomial, mean 1)
        let mut auth = (0..5).filter(|_| rng.uniform() < 0.2).count() as f64;
        for e in EVENTS
            .iter()
            .filter(|e| e.device == d && (e.start..e.start + e.len).contains(&t))
        {
            match e.kind {
                "torque spike" => torque += 25.0,
                "variance burst on torque" => torque += 8.0 * rng.normal(),
                "message-rate burst (rogue agent)" => {
                    msg_rate *= 4.0;
                    msg_size *= 0.4;
                }
                "authentication failures" => auth = 12.0 + 3.0 * rng.uniform(),
                "battery sensor stuck" => {
                    if t == e.start {
                        stuck_battery = battery;
                    }
                    battery = stuck_battery;
                }
                _ => msg_size *= 1.3,
            }
        }
        rows.push([
            torque as f32,
            battery as f32,
            msg_rate as f32,
            msg_size as f32,
            auth as f32,
        ]);
    }
    rows
}

/// Runs the demo and prints what it found. Output errors (a closed pipe, say) end the run with
/// an error instead of a panic.
pub(crate) fn run(args: &DetectArgs) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    macro_rules! say {
        ($($arg:tt)*) => {
            writeln!(out, $($arg)*).map_err(|e| format!("cannot write output: {e}"))?
        };
    }
    let metrics: Vec<String> = METRICS.iter().map(|m| m.to_string()).collect();
    say!(
        "rcf detect: built-in demo. 3 simulated devices report {} once a minute for {MINUTES} \
         minutes;",
        METRICS.join(", ")
    );
    say!(
        "each device's detector is bootstrapped from its first {HISTORY} minutes, then streams \
         the rest. {} anomalies are injected.\n",
        EVENTS.len()
    );
    let mut found = 0;
    let mut false_alarms = 0;
    let mut live_points = 0;
    for d in 0..3 {
        let rows = device(d);
        let mut detector: Detector = build_detector(args, &metrics)?;
        let history: Vec<f32> = rows[..HISTORY].iter().flatten().copied().collect();
        detector.bootstrap(&history).map_err(|e| e.to_string())?;
        let mut alarms = Vec::new();
        for (t, row) in rows.iter().enumerate().skip(HISTORY) {
            let v = detector.process(row).map_err(|e| e.to_string())?;
            live_points += 1;
            if v.is_anomaly {
                alarms.push((t, v));
            }
        }
        for e in EVENTS.iter().filter(|e| e.device == d) {
            // found: an alarm from the event's start to 10 minutes after its end
            let hit = alarms
                .iter()
                .find(|(t, _)| (e.start..e.start + e.len.min(60) + 10).contains(t));
            match hit {
                Some((t, v)) => {
                    found += 1;
                    let top = v.top_metric().expect("anomalies carry an attribution");
                    let expected = v.expected.iter().find(|x| x.metric == top.metric).map_or(
                        String::new(),
                        |x| {
                            format!(
                                ", read {:.1} where {:.1} was expected",
                                x.actual, x.expected
                            )
                        },
                    );
                    say!(
                        "  found   device-{d} minute {:>4}: {:<58} alarm at minute {t} ({} {}{expected}; grade {:.2})",
                        e.start,
                        e.kind,
                        top.metric,
                        top.direction(),
                        v.grade
                    );
                }
                None => say!("  MISSED  device-{d} minute {:>4}: {}", e.start, e.kind),
            }
        }
        let unexplained = alarms
            .iter()
            .filter(|(t, _)| {
                !EVENTS
                    .iter()
                    .any(|e| e.device == d && (e.start..e.start + e.len.min(60) + 10).contains(t))
            })
            .count();
        false_alarms += unexplained;
    }
    say!(
        "\nfound {found} of {} injected anomalies; {false_alarms} other alarms in {live_points} live points ({:.2} %).",
        EVENTS.len(),
        100.0 * false_alarms as f64 / live_points as f64
    );
    say!(
        "run `rcf detect FILE` on your own CSV or JSON Lines telemetry (see `rcf detect --help`)."
    );
    Ok(())
}
