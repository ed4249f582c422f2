//! `rcf fleet` without input: a simulated fleet through the demo profile, its violations
//! timeline, what was found and missed, and false alarms per device-day.

use std::collections::BTreeMap;

use rcf_datasets::defender::{self, Incident, IncidentKind, Value};
use rcf_stream::fleet::{
    Datapoint, Engine, EngineConfig, EventType, MetricValue, ViolationEvent, time,
};

use crate::Failure;

/// After an incident ends, alarms this long after still belong to it (a clearing streak, a
/// model still in its event).
const AFTERMATH_MS: i64 = 2 * 3_600_000;

fn label(ms: i64) -> String {
    let s = time::format_rfc3339(ms);
    // 2026-01-03T10:05:00Z → Jan 03 10:05
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m: usize = s[5..7].parse().unwrap_or(1);
    format!("{} {} {}", month[m - 1], &s[8..10], &s[11..16])
}

fn span(ms: i64) -> String {
    let min = ms / 60_000;
    if min >= 60 {
        format!("{} h {:02} min", min / 60, min % 60)
    } else {
        format!("{min} min")
    }
}

/// The incident an alarm belongs to, if any.
fn incident_of<'a>(ev: &ViolationEvent, incidents: &'a [Incident]) -> Option<&'a Incident> {
    incidents.iter().find(|i| {
        i.things.iter().any(|t| **t == *ev.thing_name)
            && ev.time >= i.start
            && ev.time <= i.end.saturating_add(AFTERMATH_MS)
    })
}

pub(crate) fn run(
    config: &EngineConfig,
    things: usize,
    days: usize,
    seed: u64,
    response: &crate::respond::ResponseArgs,
) -> Result<(), Failure> {
    let fleet = defender::fleet(things, days, seed);
    let mut engine = Engine::open(config.clone(), None).map_err(|e| e.to_string())?;
    let setup: serde_json::Value =
        serde_json::from_str(defender::demo_profile()).expect("the demo profile is JSON");
    engine.configure(&setup).map_err(|e| e.to_string())?;
    // `--sink`: the demo's alerts go out too
    response.apply(&mut engine)?;
    println!(
        "rcf fleet demo: {} things reporting every 5 minutes for {} days ({} datapoints), one \
         security profile with static rules, a topic-filter dimension, a fleet percentile, a \
         missing-data rule and a per-thing ML model on messages, bytes out and battery together.",
        fleet.things.len(),
        fleet.days,
        fleet.reports.len()
    );
    println!("Profile: `rcf fleet --write-demo DIR` writes it (and the datapoints) as files.\n");
    let started = std::time::Instant::now();
    let mut events = Vec::new();
    for r in &fleet.reports {
        let value = match &r.value {
            Value::Count(c) => MetricValue::Count(*c),
            Value::Number(x) => MetricValue::Number(*x),
            Value::Ports(p) => MetricValue::Ports(p.clone()),
        };
        let dp = Datapoint::new(&r.thing, r.metric, value, r.timestamp, r.topic)
            .map_err(|e| e.to_string())?;
        engine
            .ingest_into(&dp, &mut events)
            .map_err(|e| e.to_string())?;
    }
    events.extend(engine.flush().map_err(|e| e.to_string())?);
    engine.commit(None).map_err(|e| e.to_string())?;
    crate::respond::respond(&mut engine, false)?;
    let elapsed = started.elapsed().as_secs_f64();

    // alarms: in-alarm joined with how it ended
    let mut ended: BTreeMap<&str, &ViolationEvent> = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_type != EventType::InAlarm) {
        ended.insert(&e.violation_id, e);
    }
    let alarms: Vec<&ViolationEvent> = events
        .iter()
        .filter(|e| e.event_type == EventType::InAlarm)
        .collect();
    // the timeline: alarms of one behaviour starting in the same window, grouped
    println!("Violations timeline (in-alarm → how it ended):");
    let mut groups: BTreeMap<(i64, String), Vec<&ViolationEvent>> = BTreeMap::new();
    for a in &alarms {
        groups
            .entry((a.time, a.behavior_name.to_string()))
            .or_default()
            .push(a);
    }
    let mut false_alarms = 0usize;
    for ((t, behavior), group) in &groups {
        let incident = incident_of(group[0], &fleet.incidents);
        let benign = incident.is_some_and(|i| i.kind == IncidentKind::BenignRollout);
        if incident.is_none() {
            false_alarms += group.len();
        }
        let who = if group.len() == 1 {
            group[0].thing_name.to_string()
        } else {
            format!(
                "{} things ({} … {})",
                group.len(),
                group[0].thing_name,
                group[group.len() - 1].thing_name
            )
        };
        let end = group
            .iter()
            .filter_map(|a| ended.get(a.violation_id.as_str()))
            .max_by_key(|e| e.time)
            .map_or("still in alarm".to_string(), |e| {
                format!(
                    "{} {} ({} later)",
                    e.event_type.as_str(),
                    label(e.time),
                    span(e.time - t)
                )
            });
        let tag = match incident {
            Some(i) if benign => format!("  [{}: expected, benign]", i.kind.describe()),
            Some(i) => format!("  [{}]", i.kind.describe()),
            None => "  [false alarm]".to_string(),
        };
        println!("  {}  {:<20} {:<22} → {end}{tag}", label(*t), behavior, who);
        if let Some(ml) = group[0].ml.as_ref().filter(|_| group.len() == 1) {
            let parts: Vec<String> = ml
                .attribution
                .iter()
                .map(|(m, h, l)| {
                    format!(
                        "{m} {:.0}% {}",
                        100.0 * (h + l) / ml.score.max(1e-9),
                        if h >= l { "high" } else { "low" }
                    )
                })
                .collect();
            println!(
                "      ML: score {:.2} > threshold {:.2}, grade {:.2}; {}",
                ml.score,
                ml.threshold,
                ml.grade,
                parts.join(", ")
            );
        }
    }

    println!("\nIncidents:");
    let mut found = 0;
    let mut real = 0;
    for i in &fleet.incidents {
        let hits: Vec<&&ViolationEvent> = alarms
            .iter()
            .filter(|a| incident_of(a, std::slice::from_ref(i)).is_some())
            .collect();
        let things_hit: std::collections::BTreeSet<&str> =
            hits.iter().map(|a| &*a.thing_name).collect();
        let behaviors: std::collections::BTreeSet<&str> =
            hits.iter().map(|a| &*a.behavior_name).collect();
        if i.kind != IncidentKind::BenignRollout {
            real += 1;
        }
        if hits.is_empty() {
            println!(
                "  MISSED  {} ({} things from {})",
                i.kind.describe(),
                i.things.len(),
                label(i.start)
            );
            continue;
        }
        if i.kind != IncidentKind::BenignRollout {
            found += 1;
        }
        let first = hits.iter().map(|a| a.time).min().unwrap_or(i.start);
        let cleared = hits
            .iter()
            .filter(|a| ended.contains_key(a.violation_id.as_str()))
            .count();
        println!(
            "  {}  {}: {} of {} things, first alarm {} after it began, by {}{}",
            if i.kind == IncidentKind::BenignRollout {
                "ALARMED"
            } else {
                "FOUND "
            },
            i.kind.describe(),
            things_hit.len(),
            i.things.len(),
            span(first - i.start),
            behaviors.into_iter().collect::<Vec<_>>().join(", "),
            if i.kind == IncidentKind::BenignRollout {
                format!(
                    "; {cleared} of {} alarms cleared as the models learned the new normal",
                    hits.len()
                )
            } else {
                String::new()
            }
        );
    }
    let device_days = (fleet.things.len() * fleet.days) as f64;
    println!(
        "\nFound {found} of {real} incidents. False alarms: {false_alarms} ({:.4} per device-day over {} device-days).",
        false_alarms as f64 / device_days,
        device_days
    );
    let c = engine.counters();
    println!(
        "Engine: {} datapoints, {} windows evaluated, {} in-alarm, {} alarm-cleared, {} alarm-invalidated, in {:.1} s.",
        c.datapoints, c.windows, c.in_alarm, c.cleared, c.invalidated, elapsed
    );
    Ok(())
}
