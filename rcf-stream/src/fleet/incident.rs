//! Incidents: violations that start together, grouped.
//!
//! An `in-alarm` violation joins an open incident when it started within the incident gap
//! ([`INCIDENT_GAP_MS`], ten minutes of event time) of the incident's latest start **and**
//! shares its behaviour (profile and behaviour: the authorization-failure spike on 50 devices
//! at once) or its thing (one thing's rogue agent tripping three behaviours) with one of the
//! incident's violations; otherwise it opens an incident of its own. An incident closes once
//! the watermark has passed its latest start by the gap: nothing more can join, and sinks
//! fed incidents ([`Payload::Incidents`](super::sink::Payload)) receive it then, one object
//! however many violations it holds.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::time::{self, Millis};

/// How close in event time violations must start to be one incident.
pub const INCIDENT_GAP_MS: Millis = 10 * 60_000;

/// An incident: its violations, things, behaviours and time span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Incident {
    /// `incidentId`: the first violation's id (stable across replays).
    pub id: String,
    /// The earliest violation start.
    pub start: Millis,
    /// The latest violation start.
    pub last_start: Millis,
    /// The things.
    pub things: BTreeSet<String>,
    /// The behaviours, as `(profile, behaviour)`.
    pub behaviors: BTreeSet<(String, String)>,
    /// The violations, as `(violationId, thing, profile, behaviour)` in joining order.
    pub violations: Vec<(String, String, String, String)>,
    /// The violations' criteria types.
    pub criteria: BTreeSet<String>,
    /// Closed: nothing more can join.
    pub closed: bool,
}

impl Incident {
    /// Whether a violation of `thing` and `(profile, behaviour)` starting at `start` joins.
    pub fn admits(&self, thing: &str, profile: &str, behavior: &str, start: Millis) -> bool {
        !self.closed
            && start >= self.start
            && start - self.last_start <= INCIDENT_GAP_MS
            && (self.things.contains(thing)
                || self
                    .behaviors
                    .contains(&(profile.to_string(), behavior.to_string())))
    }

    /// Adds a violation.
    pub fn join(
        &mut self,
        violation_id: &str,
        thing: &str,
        profile: &str,
        behavior: &str,
        criteria: &str,
        start: Millis,
    ) {
        if self.violations.is_empty() {
            self.id = violation_id.to_string();
            self.start = start;
        }
        self.last_start = self.last_start.max(start);
        self.things.insert(thing.to_string());
        self.behaviors
            .insert((profile.to_string(), behavior.to_string()));
        self.criteria.insert(criteria.to_string());
        self.violations.push((
            violation_id.to_string(),
            thing.to_string(),
            profile.to_string(),
            behavior.to_string(),
        ));
    }

    /// The incident as JSON (camelCase, like the violation events).
    pub fn to_json(&self) -> Value {
        json!({
            "incidentId": self.id,
            "startTime": time::to_json(self.start),
            "lastViolationStartTime": time::to_json(self.last_start),
            "thingNames": self.things,
            "behaviors": self.behaviors.iter().map(|(p, b)| json!({
                "securityProfileName": p, "behaviorName": b})).collect::<Vec<_>>(),
            "criteriaTypes": self.criteria,
            "violations": self.violations.iter().map(|(id, t, p, b)| json!({
                "violationId": id, "thingName": t, "securityProfileName": p,
                "behaviorName": b})).collect::<Vec<_>>(),
            "violationCount": self.violations.len(),
            "closed": self.closed,
        })
    }

    /// Reads [`to_json`](Self::to_json) back.
    pub fn from_json(v: &Value) -> Option<Self> {
        let strings = |k: &str| -> Option<BTreeSet<String>> {
            v.get(k)?
                .as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Incident {
            id: text(v, "incidentId")?,
            start: time::parse_json(v.get("startTime")?).ok()?,
            last_start: time::parse_json(v.get("lastViolationStartTime")?).ok()?,
            things: strings("thingNames")?,
            behaviors: v
                .get("behaviors")?
                .as_array()?
                .iter()
                .map(|b| Some((text(b, "securityProfileName")?, text(b, "behaviorName")?)))
                .collect::<Option<_>>()?,
            criteria: strings("criteriaTypes")?,
            violations: v
                .get("violations")?
                .as_array()?
                .iter()
                .map(|x| {
                    Some((
                        text(x, "violationId")?,
                        text(x, "thingName")?,
                        text(x, "securityProfileName")?,
                        text(x, "behaviorName")?,
                    ))
                })
                .collect::<Option<_>>()?,
            closed: v.get("closed")?.as_bool()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_across_things_is_one_incident_and_round_trips() {
        let t0 = 1_767_225_600_000;
        let mut inc = Incident::default();
        inc.join("v0", "t0", "p", "auth", "STATIC", t0);
        for k in 1..50 {
            let thing = format!("t{k}");
            assert!(inc.admits(&thing, "p", "auth", t0 + 300_000));
            inc.join(
                &format!("v{k}"),
                &thing,
                "p",
                "auth",
                "STATIC",
                t0 + 300_000,
            );
        }
        // another behaviour of a thing already in it joins; a stranger's other behaviour not
        assert!(inc.admits("t3", "p", "bytes", t0 + 600_000));
        assert!(!inc.admits("t99", "p", "bytes", t0 + 600_000));
        // too late
        assert!(!inc.admits("t1", "p", "auth", t0 + 300_000 + INCIDENT_GAP_MS + 1));
        assert_eq!(inc.things.len(), 50);
        let back = Incident::from_json(&inc.to_json()).unwrap();
        assert_eq!(back, inc);
    }
}
