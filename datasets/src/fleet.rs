//! A seeded synthetic fleet: devices reporting telemetry once a minute, with labelled
//! anomalies of the kinds device fleets show. Used by tests, examples and the `rcf detect`
//! demo.

use crate::synth::Rng;

/// The metrics every simulated device reports, in column order.
pub const METRICS: [&str; 5] = ["torque", "battery", "msg_rate", "msg_size", "auth_failures"];

/// Kinds of injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnomalyKind {
    /// One reading far off (torque +25).
    Spike,
    /// A metric jumps to a new level and stays there for the event (battery −25).
    LevelShift,
    /// A metric drifts away linearly over the event (torque +0.15 a minute).
    Drift,
    /// A sensor repeats its last reading (battery).
    StuckSensor,
    /// A metric's noise grows eightfold (torque).
    VarianceBurst,
    /// A rogue agent: message rate ×4 with messages 60 % smaller.
    MessageRateBurst,
    /// Authentication failures jump to a dozen a minute.
    AuthFailureBurst,
    /// A benign firmware change: messages 30 % larger from then on (to be alarmed once, then
    /// learned).
    FirmwareChange,
}

impl AnomalyKind {
    /// The metric the anomaly shows in first.
    pub fn metric(self) -> &'static str {
        match self {
            AnomalyKind::Spike | AnomalyKind::Drift | AnomalyKind::VarianceBurst => "torque",
            AnomalyKind::LevelShift | AnomalyKind::StuckSensor => "battery",
            AnomalyKind::MessageRateBurst => "msg_rate",
            AnomalyKind::AuthFailureBurst => "auth_failures",
            AnomalyKind::FirmwareChange => "msg_size",
        }
    }

    /// Every metric the anomaly changes ([`metric`](Self::metric) first).
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            AnomalyKind::MessageRateBurst => &["msg_rate", "msg_size"],
            AnomalyKind::Spike | AnomalyKind::Drift | AnomalyKind::VarianceBurst => &["torque"],
            AnomalyKind::LevelShift | AnomalyKind::StuckSensor => &["battery"],
            AnomalyKind::AuthFailureBurst => &["auth_failures"],
            AnomalyKind::FirmwareChange => &["msg_size"],
        }
    }

    /// A short description.
    pub fn describe(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "torque spike",
            AnomalyKind::LevelShift => "battery level shift",
            AnomalyKind::Drift => "torque drift",
            AnomalyKind::StuckSensor => "battery sensor stuck",
            AnomalyKind::VarianceBurst => "variance burst on torque",
            AnomalyKind::MessageRateBurst => "message-rate burst (rogue agent)",
            AnomalyKind::AuthFailureBurst => "authentication failures",
            AnomalyKind::FirmwareChange => "firmware update: messages 30 % larger (benign)",
        }
    }
}

/// One injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// What it is.
    pub kind: AnomalyKind,
    /// First minute.
    pub start: usize,
    /// Minutes it lasts (to the end of the series for a firmware change).
    pub len: usize,
}

impl Event {
    /// Whether minute `t` is inside the event.
    pub fn contains(&self, t: usize) -> bool {
        (self.start..self.start + self.len).contains(&t)
    }
}

/// One device's series.
#[derive(Debug, Clone)]
pub struct Device {
    /// `device-<i>`.
    pub name: String,
    /// Row-major readings, one row a minute, [`METRICS`] order.
    pub values: Vec<f32>,
    /// Its injected anomalies, by start.
    pub events: Vec<Event>,
}

impl Device {
    /// Minutes.
    pub fn len(&self) -> usize {
        self.values.len() / METRICS.len()
    }

    /// Whether the series is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Minute `t`'s readings.
    pub fn row(&self, t: usize) -> &[f32] {
        &self.values[t * METRICS.len()..(t + 1) * METRICS.len()]
    }

    /// Whether minute `t` lies inside an injected anomaly.
    pub fn is_anomalous(&self, t: usize) -> bool {
        self.events.iter().any(|e| e.contains(t))
    }
}

/// The schedule of the standard demo fleet: 3 devices, events after minute 2,000.
pub fn demo_events(device: usize, minutes: usize) -> Vec<Event> {
    let e = |kind, start, len| Event { kind, start, len };
    match device % 3 {
        0 => vec![
            e(AnomalyKind::Spike, 2_400, 1),
            e(AnomalyKind::VarianceBurst, 3_300, 60),
        ],
        1 => vec![
            e(AnomalyKind::MessageRateBurst, 2_600, 30),
            e(AnomalyKind::AuthFailureBurst, 3_400, 10),
        ],
        _ => vec![
            e(AnomalyKind::StuckSensor, 2_800, 100),
            e(
                AnomalyKind::FirmwareChange,
                3_200,
                minutes.saturating_sub(3_200),
            ),
        ],
    }
}

/// Simulates device `index` for `minutes` with the given events (seeded by `seed` and the index).
pub fn device(index: usize, minutes: usize, events: Vec<Event>, seed: u64) -> Device {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(index as u64));
    let phase = index as f64 * 1.7;
    let mut values = Vec::with_capacity(minutes * METRICS.len());
    let mut stuck = 0.0;
    for t in 0..minutes {
        let tf = t as f64;
        let day = (std::f64::consts::TAU * tf / 1_440.0 + phase).sin();
        let mut torque = 20.0 + 4.0 * (tf / 30.0 + phase).sin() + 0.4 * rng.normal();
        let mut battery = 100.0 - (t % 720) as f64 / 9.0 + 0.3 * rng.normal();
        let mut msg_rate = 60.0 + 15.0 * day + 2.0 * rng.normal();
        let mut msg_size = 512.0 + 20.0 * rng.normal();
        // a few failed logins a minute are ordinary (binomial, mean 1)
        let mut auth = (0..5).filter(|_| rng.uniform() < 0.2).count() as f64;
        for e in events.iter().filter(|e| e.contains(t)) {
            match e.kind {
                AnomalyKind::Spike => torque += 25.0,
                AnomalyKind::LevelShift => battery -= 25.0,
                AnomalyKind::Drift => torque += 0.15 * (t - e.start) as f64,
                AnomalyKind::StuckSensor => {
                    if t == e.start {
                        stuck = battery;
                    }
                    battery = stuck;
                }
                AnomalyKind::VarianceBurst => torque += 8.0 * rng.normal(),
                AnomalyKind::MessageRateBurst => {
                    msg_rate *= 4.0;
                    msg_size *= 0.4;
                }
                AnomalyKind::AuthFailureBurst => auth = 12.0 + 3.0 * rng.uniform(),
                AnomalyKind::FirmwareChange => msg_size *= 1.3,
            }
        }
        values.extend([torque, battery, msg_rate, msg_size, auth].map(|v| v as f32));
    }
    Device {
        name: format!("device-{index}"),
        values,
        events,
    }
}

/// The standard demo fleet: 3 devices, 4,000 minutes, [`demo_events`], seed 1.
pub fn demo_fleet() -> Vec<Device> {
    (0..3)
        .map(|i| device(i, 4_000, demo_events(i, 4_000), 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(d: &Device, metric: &str, t: usize) -> f32 {
        d.row(t)[METRICS.iter().position(|m| *m == metric).unwrap()]
    }

    #[test]
    fn events_change_what_their_labels_say() {
        let minutes = 600;
        let clean = device(0, minutes, Vec::new(), 7);
        let mk = |kind, start, len| device(0, minutes, vec![Event { kind, start, len }], 7);
        // same seed, same noise: differences come from the event only (variance burst draws
        // extra noise, so it is checked separately)
        let spike = mk(AnomalyKind::Spike, 300, 1);
        assert!((col(&spike, "torque", 300) - col(&clean, "torque", 300) - 25.0).abs() < 1e-3);
        assert_eq!(col(&spike, "torque", 301), col(&clean, "torque", 301));
        let shift = mk(AnomalyKind::LevelShift, 300, 50);
        assert!((col(&clean, "battery", 320) - col(&shift, "battery", 320) - 25.0).abs() < 1e-3);
        let drift = mk(AnomalyKind::Drift, 300, 100);
        assert!((col(&drift, "torque", 399) - col(&clean, "torque", 399) - 14.85).abs() < 1e-2);
        let stuck = mk(AnomalyKind::StuckSensor, 300, 40);
        assert!((300..340).all(|t| col(&stuck, "battery", t) == col(&stuck, "battery", 300)));
        let burst = mk(AnomalyKind::MessageRateBurst, 300, 10);
        assert!((col(&burst, "msg_rate", 305) / col(&clean, "msg_rate", 305) - 4.0).abs() < 1e-3);
        let auth = mk(AnomalyKind::AuthFailureBurst, 300, 10);
        assert!(col(&auth, "auth_failures", 305) >= 12.0);
        let fw = mk(AnomalyKind::FirmwareChange, 300, 300);
        assert!((col(&fw, "msg_size", 599) / col(&clean, "msg_size", 599) - 1.3).abs() < 1e-3);
        let var = mk(AnomalyKind::VarianceBurst, 300, 100);
        let spread = |d: &Device| {
            let xs: Vec<f64> = (300..400).map(|t| f64::from(col(d, "torque", t))).collect();
            let m = xs.iter().sum::<f64>() / 100.0;
            (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 100.0).sqrt()
        };
        assert!(spread(&var) > 2.0 * spread(&clean));
        // labels
        assert!(burst.is_anomalous(305) && !burst.is_anomalous(310) && !burst.is_anomalous(299));
    }

    #[test]
    fn fleets_are_reproducible_and_devices_differ() {
        let a = demo_fleet();
        let b = demo_fleet();
        assert_eq!(a[0].values, b[0].values);
        assert_ne!(a[0].values, a[1].values);
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|d| d.len() == 4_000 && d.events.len() == 2));
        for d in &a {
            for e in &d.events {
                assert!(METRICS.contains(&e.kind.metric()));
                assert_eq!(e.kind.metrics()[0], e.kind.metric());
                assert!(e.kind.metrics().iter().all(|m| METRICS.contains(m)));
            }
        }
    }
}
