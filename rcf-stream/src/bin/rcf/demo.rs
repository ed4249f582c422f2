//! The built-in demo: the synthetic fleet of `rcf_datasets::fleet` (3 devices, labelled
//! anomalies), streamed through one detector per device, and a report of what was found.

use std::io::Write;

use rcf_datasets::fleet::{self, METRICS};
use rcf_stream::Detector;

use crate::{DetectArgs, build_detector};

/// Minutes of history each detector is bootstrapped with before the live stream.
const HISTORY: usize = 1_500;
/// An event counts as found if an alarm falls from its start to this many minutes after
/// (at most an hour into long events).
const SLACK: usize = 10;

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
    let devices = fleet::demo_fleet();
    let metrics: Vec<String> = METRICS.iter().map(|m| m.to_string()).collect();
    let minutes = devices[0].len();
    let events: usize = devices.iter().map(|d| d.events.len()).sum();
    say!(
        "rcf detect: built-in demo. {} simulated devices report {} once a minute for {minutes} minutes;",
        devices.len(),
        METRICS.join(", ")
    );
    say!(
        "each device's detector is bootstrapped from its first {HISTORY} minutes, then streams the rest. \
         {events} anomalies are injected.\n"
    );
    let (mut found, mut other, mut live) = (0, 0, 0);
    for device in &devices {
        let mut detector: Detector = build_detector(args, &metrics)?;
        detector
            .bootstrap(&device.values[..HISTORY * METRICS.len()])
            .map_err(|e| e.to_string())?;
        let mut alarms = Vec::new();
        for t in HISTORY..device.len() {
            let v = detector.process(device.row(t)).map_err(|e| e.to_string())?;
            live += 1;
            if v.is_anomaly {
                alarms.push((t, v));
            }
        }
        let window =
            |e: &fleet::Event, t: usize| (e.start..e.start + e.len.min(60) + SLACK).contains(&t);
        for e in &device.events {
            match alarms.iter().find(|(t, _)| window(e, *t)) {
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
                        "  found   {} minute {:>4}: {:<50} alarm at minute {t} ({} {}{expected}; grade {:.2})",
                        device.name,
                        e.start,
                        e.kind.describe(),
                        top.metric,
                        top.direction(),
                        v.grade
                    );
                }
                None => say!(
                    "  MISSED  {} minute {:>4}: {}",
                    device.name,
                    e.start,
                    e.kind.describe()
                ),
            }
        }
        other += alarms
            .iter()
            .filter(|(t, _)| !device.events.iter().any(|e| window(e, *t)))
            .count();
    }
    say!(
        "\nfound {found} of {events} injected anomalies; {other} other alarms in {live} live points ({:.2} %).",
        100.0 * other as f64 / live as f64
    );
    say!(
        "run `rcf detect FILE` on your own CSV or JSON Lines telemetry (see `rcf detect --help`)."
    );
    Ok(())
}
