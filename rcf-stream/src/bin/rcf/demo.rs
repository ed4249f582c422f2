//! The built-in demo: the synthetic fleet of `rcf_datasets::fleet` (3 devices, labelled
//! anomalies), streamed through one detector per device, and a report of what was found.

use std::io::Write;

use rcf_datasets::fleet::{self, METRICS};
use rcf_stream::Detector;

use crate::{DetectArgs, Failure, build_detector, output_error};

/// Minutes of history each detector is bootstrapped with before the live stream.
const HISTORY: usize = 1_500;
/// An event counts as found if an alarm falls from its start to this many minutes after
/// (at most an hour into long events).
const SLACK: usize = 10;

/// Runs the demo and prints what it found. Output errors (a closed pipe, say) end the run with
/// an error instead of a panic.
pub(crate) fn run(args: &DetectArgs) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    macro_rules! say {
        ($($arg:tt)*) => {
            writeln!(out, $($arg)*).map_err(output_error)?
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
         {events} events are injected, one of them a benign change.\n"
    );
    let is_benign = |e: &fleet::Event| e.kind == fleet::AnomalyKind::FirmwareChange;
    let harmful = devices
        .iter()
        .flat_map(|d| &d.events)
        .filter(|e| !is_benign(e))
        .count();
    let (mut found, mut other, mut live, mut benign_alarms, mut benign) = (0, 0, 0, 0, 0);
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
            let alarm = alarms.iter().find(|(t, _)| window(e, *t));
            if is_benign(e) {
                // a benign change is not a finding: an alarm on it is one the user must learn
                // away (the fleet layer's feedback), and is counted as such
                benign += 1;
                match alarm {
                    Some((t, _)) => {
                        benign_alarms += 1;
                        say!(
                            "  benign  {} minute {:>4}: {:<50} alarmed at minute {t} (a false alarm to learn away)",
                            device.name,
                            e.start,
                            e.kind.describe()
                        );
                    }
                    None => say!(
                        "  benign  {} minute {:>4}: {:<50} no alarm",
                        device.name,
                        e.start,
                        e.kind.describe()
                    ),
                }
                continue;
            }
            match alarm {
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
        "\nfound {found} of {harmful} injected anomalies; {benign_alarms} alarms on the {benign} benign changes \
         and {other} other alarms in {live} live points ({:.2} % false alarms).",
        100.0 * (other + benign_alarms) as f64 / live as f64
    );
    say!(
        "grade: how anomalous an alarm is, comparable across devices: score / (score + the device's \
         typical high score), so 0.5 is an alarm at the level of its usual peaks and near 1 far above them."
    );
    say!(
        "run `rcf detect FILE` on your own CSV or JSON Lines telemetry (see `rcf detect --help`)."
    );
    Ok(())
}
