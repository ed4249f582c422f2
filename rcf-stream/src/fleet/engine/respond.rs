//! The engine's response side: sinks fed from the store's outbox, verification labels and
//! the feedback they carry, incidents, mitigation actions and tasks.
//!
//! Everything here is driven by the store: an event's outbox rows, an automatic mitigation
//! task and an incident's membership are written in the transaction that records the event,
//! and [`Engine::respond`] (deliveries, then task executions) acts only on what is committed,
//! recording each step in a transaction of its own. A process killed at any point restarts
//! with nothing lost; what was acknowledged but not yet recorded is sent again, with the same
//! ids.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::{Engine, FleetError, Millis, Observation, quoted};
use crate::fleet::feedback::{Feedback, Learned, Rule, RuleKind, Scope, VerificationState};
use crate::fleet::incident::{INCIDENT_GAP_MS, Incident};
use crate::fleet::mitigation::{ActionType, Executor, MitigationAction, TaskRequest};
use crate::fleet::profile::CriteriaKind;
use crate::fleet::sink::{Payload, Sink, SinkOptions, SinkSpec};
use crate::fleet::violation::{EventType, ViolationEvent};

/// One registered sink and its delivery state.
struct SinkSlot {
    name: String,
    options: SinkOptions,
    sink: Box<dyn Sink>,
    /// Failed deliveries in a row.
    failures: u32,
    /// No attempt before this wall-clock time (epoch ms): the back-off.
    next_attempt: u64,
    /// When the deliveries of the last minute happened (the rate limit).
    recent: VecDeque<u64>,
    last_error: Option<String>,
}

/// The engine's response state.
#[derive(Default)]
pub(crate) struct Response {
    sinks: Vec<SinkSlot>,
    /// Feedback rules in force (learned tolerances, mutes, exclusions), by adjustment id.
    rules: Vec<Rule>,
    /// Incidents still open for joining.
    incidents: Vec<Incident>,
    /// Open incidents joined since the last commit (by index).
    dirty_incidents: Vec<usize>,
    /// The configuration's mitigation actions, by name.
    pub(super) actions: BTreeMap<String, MitigationAction>,
    executor: Option<Box<dyn Executor>>,
    /// The newest adjustment id the rules were read at (another process, such as `rcf fleet
    /// verify` next to `rcf fleet serve`, may append adjustments to the store).
    rules_at: i64,
    /// The store's `data_version` when last looked at.
    data_version: i64,
    /// This engine's id as a task runner: it runs the tasks it started (and, adopted when it
    /// opened the store, the automatic ones: they belong to the ingesting engine), not those
    /// of another process sharing the store.
    runner: String,
    /// The datapoints counter when the store was opened, and whether this engine has
    /// adopted the automatic tasks yet (it does once it has ingested: then it is the store's
    /// ingesting engine).
    opened_at: Option<u64>,
    adopted: bool,
}

/// What one [`Engine::respond`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseReport {
    /// Objects acknowledged by sinks.
    pub delivered: usize,
    /// Deliveries (batches) acknowledged.
    pub batches: usize,
    /// Deliveries that failed (their objects stay in the outbox).
    pub failed: usize,
    /// Objects still owed to sinks (waiting for a rate limit, a back-off, or the next call).
    pub pending: usize,
    /// Mitigation actions run (successfully or not) and skipped.
    pub actions_run: usize,
}

/// The wall clock, epoch ms.
pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bad(name: &'static str, reason: String) -> FleetError {
    FleetError::InvalidParameter { name, reason }
}

/// The JSON documents a query of one text column returns (`null` for a row that is not
/// JSON: the store wrote them all, so only a damaged store has one).
fn json_rows(
    store: &crate::fleet::store::Store,
    sql: &str,
    args: &[rusqlite::types::Value],
) -> Result<Vec<Value>, FleetError> {
    Ok(store
        .query(sql, args)?
        .iter()
        .map(|r| serde_json::from_str(&text(&r[0])).unwrap_or(Value::Null))
        .collect())
}

fn text(v: &rusqlite::types::Value) -> String {
    match v {
        rusqlite::types::Value::Text(t) => t.clone(),
        rusqlite::types::Value::Integer(i) => i.to_string(),
        _ => String::new(),
    }
}

impl Engine {
    // ---- loading and the hooks the engine calls ----

    /// Reads the feedback rules in force and the open incidents.
    pub(super) fn load_response(&mut self) -> Result<(), FleetError> {
        let rows = self.store.query(
            "SELECT id, json FROM adjustments WHERE reverted_by IS NULL ORDER BY id",
            &[],
        )?;
        self.response.data_version = self.store.data_version()?;
        if self.response.runner.is_empty() {
            self.response.runner = format!(
                "{}-{}",
                std::process::id(),
                wall_ms() ^ (self as *const Self as u64).rotate_left(17)
            );
        }
        self.response.rules.clear();
        if self.response.opened_at.is_none() {
            self.response.opened_at = Some(self.counters.datapoints);
        }
        self.response.rules_at = self.newest_adjustment()?;
        for r in rows {
            let id = match r[0] {
                rusqlite::types::Value::Integer(i) => i,
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text(&r[1]))
                .map_err(|e| self.corrupt(&format!("adjustment {id}"), e))?;
            let kind = v.get("feedback").and_then(Value::as_str).unwrap_or("");
            if let Some(rule) = v.get("rule").and_then(|x| Rule::from_json(id, kind, x)) {
                self.response.rules.push(rule);
            }
        }
        self.response.incidents.clear();
        for r in self.store.query(
            "SELECT json FROM incidents WHERE open = 1 ORDER BY rowid",
            &[],
        )? {
            let v: Value = serde_json::from_str(&text(&r[0]))
                .map_err(|e| self.corrupt("an open incident", e))?;
            let inc = Incident::from_json(&v)
                .ok_or_else(|| self.corrupt("an open incident", "fields"))?;
            self.response.incidents.push(inc);
        }
        Ok(())
    }

    /// The id of the newest adjustment record (0: none).
    fn newest_adjustment(&self) -> Result<i64, FleetError> {
        let rows = self
            .store
            .query("SELECT coalesce(max(id), 0) FROM adjustments", &[])?;
        Ok(match rows.first().map(|r| &r[0]) {
            Some(rusqlite::types::Value::Integer(i)) => *i,
            _ => 0,
        })
    }

    /// Takes in what another process committed to the store since the last look: new
    /// adjustments (labels and feedback) and thing-group changes (a quarantine or release
    /// by hand; leaving a group's profiles invalidates their alarms as it does here).
    fn refresh_from_store(&mut self) -> Result<(), FleetError> {
        let version = self.store.data_version()?;
        if version == self.response.data_version {
            return Ok(());
        }
        self.response.data_version = version;
        if self.newest_adjustment()? != self.response.rules_at {
            let incidents = std::mem::take(&mut self.response.incidents);
            self.load_response()?;
            self.response.incidents = incidents;
        }
        let stored = self.store.groups()?;
        let mut want: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for (g, t) in stored {
            want.entry(g).or_default().insert(t);
        }
        let mut joins = Vec::new();
        let mut leaves = Vec::new();
        for (g, things) in &want {
            for t in things {
                if !self.in_group(g, t) {
                    joins.push((g.clone(), t.clone()));
                }
            }
        }
        for (g, things) in &self.groups {
            for t in things {
                if !want.get(g).is_some_and(|w| w.contains(&**t)) {
                    leaves.push((g.clone(), t.to_string()));
                }
            }
        }
        for (g, t) in joins {
            self.add_to_group(&g, &t)?;
        }
        for (g, t) in leaves {
            self.remove_from_group(&g, &t)?;
        }
        if self.store.in_transaction() {
            self.store.commit()?;
        }
        Ok(())
    }

    /// Commits what the response calls wrote (labels, adjustments, tasks, thing groups)
    /// without saving the engine's stream state: for a process that shares the store with a
    /// running engine (`rcf fleet verify` beside `rcf fleet serve`), which takes the changes
    /// in at its next [`respond`](Self::respond).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn commit_response(&mut self) -> Result<(), FleetError> {
        self.store.commit()?;
        self.response.data_version = self.store.data_version()?;
        Ok(())
    }

    /// After an event is stored for the first time: its outbox rows, its incident, its
    /// automatic mitigation task, the end of an exclusion span.
    pub(super) fn on_recorded(
        &mut self,
        ev: &ViolationEvent,
        json: &str,
    ) -> Result<(), FleetError> {
        let gated = ev.suppressed || self.muted(ev);
        let key = format!("{}/{}", ev.violation_id, ev.event_type.as_str());
        for s in &self.response.sinks {
            if s.options.payload == Payload::Events {
                self.store.put_outbox(&s.name, &key, gated, json, ev.time)?;
            }
        }
        match ev.event_type {
            EventType::InAlarm => {
                self.join_incident(ev)?;
                let actions = self
                    .slot_def(&ev.security_profile_name, &ev.behavior_name)
                    .map(|b| b.mitigation_actions.clone())
                    .unwrap_or_default();
                if !actions.is_empty() {
                    let req = json!({
                        "taskId": format!("auto-{}", ev.violation_id),
                        "target": {"violationIds": [ev.violation_id]},
                        "actions": actions,
                    });
                    self.create_task(&req, true)?;
                }
            }
            EventType::AlarmCleared | EventType::AlarmInvalidated => {
                let open: Vec<usize> = self
                    .response
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| matches!(&r.kind, RuleKind::Exclude { end: None, violation_id, .. } if *violation_id == ev.violation_id))
                    .map(|(k, _)| k)
                    .collect();
                for k in open {
                    if let RuleKind::Exclude { end, .. } = &mut self.response.rules[k].kind {
                        *end = Some(ev.time);
                    }
                    let rule = self.response.rules[k].clone();
                    self.rewrite_rule(&rule)?;
                    self.retrain(&ev.thing_name, &ev.security_profile_name, &ev.behavior_name)?;
                }
            }
        }
        Ok(())
    }

    /// Copies the label of a violation's `in-alarm` event onto a later event of it.
    pub(super) fn stamp_label(&self, ev: &mut ViolationEvent) -> Result<(), FleetError> {
        let rows = self.store.query(
            "SELECT verification_state, json_extract(json, '$.verificationStateDescription') \
             FROM violation_events WHERE violation_id = ?1 AND event_type = 'in-alarm'",
            &[ev.violation_id.clone().into()],
        )?;
        if let Some(r) = rows.first() {
            ev.verification_state = text(&r[0]);
            if let rusqlite::types::Value::Text(d) = &r[1] {
                ev.verification_state_description = Some(d.clone());
            }
        }
        Ok(())
    }

    /// The behaviour of a live slot, by names.
    fn slot_def(&self, profile: &str, behavior: &str) -> Option<&crate::fleet::profile::Behavior> {
        self.slots
            .iter()
            .find(|s| &*s.profile_name == profile && &*s.behavior_name == behavior)
            .map(|s| &*s.def)
    }

    fn in_group(&self, group: &str, thing: &str) -> bool {
        self.groups.get(group).is_some_and(|g| g.contains(thing))
    }

    /// Whether a mute covers the event (event time before its end).
    fn muted(&self, ev: &ViolationEvent) -> bool {
        self.response.rules.iter().any(|r| {
            matches!(r.kind, RuleKind::Mute { until } if ev.time < until)
                && *r.profile == *ev.security_profile_name
                && *r.behavior == *ev.behavior_name
                && r.covers(&ev.thing_name, |g| self.in_group(g, &ev.thing_name))
        })
    }

    /// Whether a learned tolerance makes a violating observation of (thing, slot `i`)
    /// conforming.
    pub(super) fn forgiven(&self, thing: &str, i: usize, obs: &Observation) -> bool {
        if !obs.violating || self.response.rules.is_empty() {
            return false;
        }
        let slot = &self.slots[i];
        let b = &slot.def;
        self.response.rules.iter().any(|r| {
            let RuleKind::Learn(learned) = &r.kind else {
                return false;
            };
            if *r.profile != *slot.profile_name
                || *r.behavior != *slot.behavior_name
                || !r.covers(thing, |g| self.in_group(g, thing))
            {
                return false;
            }
            match (&b.kind, &obs.ml, &obs.value) {
                (CriteriaKind::Ml { .. }, Some(ml), _) => learned.forgives_ml(&ml.deviations),
                (CriteriaKind::Static { op, value: want }, _, Some(v)) => {
                    learned.forgives_value(*op, want, v)
                }
                // a fleet percentile is a number: the learned value is the thing's bound
                (CriteriaKind::Statistical { op, .. }, _, Some(v)) if op.is_ordering() => {
                    learned.forgives_value(*op, v, v)
                }
                _ => false,
            }
        })
    }

    /// Whether the datapoint of `thing` at `ts` is kept out of the model of (profile,
    /// behaviour) by an exclusion.
    pub(super) fn excluded(&self, thing: &str, profile: &str, behavior: &str, ts: Millis) -> bool {
        self.response.rules.iter().any(|r| {
            matches!(r.kind, RuleKind::Exclude { start, end, .. } if ts >= start && end.is_none_or(|e| ts < e))
                && &*r.thing == thing
                && &*r.profile == profile
                && &*r.behavior == behavior
        })
    }

    /// The exclusion spans `(start, end)` of (thing, profile, behaviour) (`end` `None`: open).
    pub(super) fn excluded_spans(
        &self,
        thing: &str,
        profile: &str,
        behavior: &str,
    ) -> Vec<(Millis, Option<Millis>)> {
        self.response
            .rules
            .iter()
            .filter(|r| &*r.thing == thing && &*r.profile == profile && &*r.behavior == behavior)
            .filter_map(|r| match r.kind {
                RuleKind::Exclude { start, end, .. } => Some((start, end)),
                _ => None,
            })
            .collect()
    }

    /// Drops the model of (thing, profile, behaviour) so that the next window trains a new
    /// one from the stored history (which the exclusions filter).
    fn retrain(&mut self, thing: &str, profile: &str, behavior: &str) -> Result<(), FleetError> {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| &*s.profile_name == profile && &*s.behavior_name == behavior)
        else {
            return Ok(());
        };
        let slot = self.slots[i].clone();
        let Some(t) = self.things.get_mut(thing) else {
            return Ok(());
        };
        let Some(st) = t.slots[i].as_mut() else {
            return Ok(());
        };
        let snapshot = st.clone();
        st.detector = None;
        st.evicted = false;
        st.digest = None;
        st.usage = Default::default();
        self.discard(thing, &slot, &snapshot)?;
        let name: std::sync::Arc<str> = thing.into();
        self.mark_dirty(&name);
        Ok(())
    }

    fn join_incident(&mut self, ev: &ViolationEvent) -> Result<(), FleetError> {
        let (thing, p, b) = (
            &*ev.thing_name,
            &*ev.security_profile_name,
            &*ev.behavior_name,
        );
        let start = ev.violation_start_time;
        let k = match self
            .response
            .incidents
            .iter()
            .position(|i| i.admits(thing, p, b, start))
        {
            Some(k) => k,
            None => {
                self.response.incidents.push(Incident::default());
                self.response.incidents.len() - 1
            }
        };
        self.response.incidents[k].join(&ev.violation_id, thing, p, b, ev.criteria_type, start);
        // written at the commit, once however many joined (a burst on 10,000 things is one
        // incident of 10,000 violations, not 10,000 rewrites of it)
        if !self.response.dirty_incidents.contains(&k) {
            self.response.dirty_incidents.push(k);
        }
        Ok(())
    }

    /// Closes the incidents nothing can join any more (the watermark passed their latest
    /// start by the gap) and queues them for the sinks fed incidents.
    pub(super) fn settle_incidents(&mut self) -> Result<(), FleetError> {
        for k in std::mem::take(&mut self.response.dirty_incidents) {
            let inc = &self.response.incidents[k];
            let (id, json) = (inc.id.clone(), inc.to_json().to_string());
            self.store.execute(
                "INSERT OR REPLACE INTO incidents (id, open, json) VALUES (?1, 1, ?2)",
                &[id.into(), json.into()],
            )?;
        }
        let now = self.now();
        let (done, open): (Vec<Incident>, Vec<Incident>) =
            std::mem::take(&mut self.response.incidents)
                .into_iter()
                .partition(|i| now.saturating_sub(i.last_start) > INCIDENT_GAP_MS);
        self.response.incidents = open;
        for mut inc in done {
            inc.closed = true;
            let json = inc.to_json().to_string();
            self.store.execute(
                "INSERT OR REPLACE INTO incidents (id, open, json) VALUES (?1, 0, ?2)",
                &[inc.id.clone().into(), json.clone().into()],
            )?;
            let key = format!("incident/{}", inc.id);
            for s in &self.response.sinks {
                if s.options.payload == Payload::Incidents {
                    self.store
                        .put_outbox(&s.name, &key, false, &json, inc.last_start)?;
                }
            }
        }
        Ok(())
    }

    // ---- sinks ----

    /// Adds a sink; events recorded from now on are queued for it (and, if the store knows
    /// the sink's name from an earlier run, what it was still owed is delivered too).
    ///
    /// # Errors
    ///
    /// A sink of that name is already added.
    pub fn add_sink(
        &mut self,
        name: &str,
        options: SinkOptions,
        sink: Box<dyn Sink>,
    ) -> Result<(), FleetError> {
        if name.is_empty() || self.response.sinks.iter().any(|s| s.name == name) {
            return Err(bad(
                "sink",
                format!("{} is empty or already added", quoted(name)),
            ));
        }
        self.response.sinks.push(SinkSlot {
            name: name.to_string(),
            options,
            sink,
            failures: 0,
            next_attempt: 0,
            recent: VecDeque::new(),
            last_error: None,
        });
        Ok(())
    }

    /// Adds a built-in sink from its spec (`webhook=http://...`, `jsonl=PATH`,
    /// `mqtt=mqtt://...`, with options; see [`sink`](crate::fleet::sink)).
    ///
    /// # Errors
    ///
    /// A malformed spec, or a sink of that name already added.
    pub fn add_sink_spec(&mut self, spec: &str) -> Result<(), FleetError> {
        let s = SinkSpec::parse(spec)?;
        let sink = s.build();
        self.add_sink(&s.name, s.options, sink)
    }

    /// Per sink: its name, objects `pending`, `sent` and `gated` (never sent: suppressed or
    /// muted), failures in a row and the last error.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn sink_status(&self) -> Result<Vec<Value>, FleetError> {
        let mut out = Vec::new();
        for s in &self.response.sinks {
            let rows = self.store.query(
                "SELECT state, count(*) FROM outbox WHERE sink = ?1 GROUP BY state",
                &[s.name.clone().into()],
            )?;
            let count = |state: &str| {
                rows.iter()
                    .find(|r| text(&r[0]) == state)
                    .map_or(0, |r| text(&r[1]).parse::<u64>().unwrap_or(0))
            };
            out.push(json!({
                "sink": s.name, "pending": count("pending"), "sent": count("sent"),
                "gated": count("gated"), "failures": s.failures, "lastError": s.last_error,
                "payload": match s.options.payload { Payload::Events => "events", Payload::Incidents => "incidents" },
            }));
        }
        Ok(out)
    }

    /// The response pump: delivers what the sinks are owed (batched, rate-limited, backing
    /// off from failing sinks), then runs pending mitigation actions. `now` is the wall clock
    /// in epoch ms (back-offs and rate limits are wall-clock; [`respond_now`](Self::respond_now)
    /// reads it). Only committed objects are delivered: call it after
    /// [`commit`](Self::commit). It never sleeps; a sink's timeout bounds each attempt.
    ///
    /// # Errors
    ///
    /// There are uncommitted changes; the store failed. A failing sink is not an error: its
    /// objects stay in the outbox ([`sink_status`](Self::sink_status) says why).
    pub fn respond(&mut self, now: u64) -> Result<ResponseReport, FleetError> {
        if self.store.in_transaction() {
            return Err(bad(
                "respond",
                "the engine has uncommitted changes: commit before delivering (only committed events are sent)".into(),
            ));
        }
        self.refresh_from_store()?;
        let opened = *self
            .response
            .opened_at
            .get_or_insert(self.counters.datapoints);
        if !self.response.adopted && self.counters.datapoints > opened {
            self.response.adopted = true;
            self.store.execute(
                "UPDATE mitigation_tasks SET json = json_set(json, '$.rcf.runner', ?1) \
                 WHERE state = 'IN_PROGRESS' AND json_extract(json, '$.rcf.automatic') = 1",
                &[self.response.runner.clone().into()],
            )?;
            self.store.commit()?;
        }
        let mut report = ResponseReport::default();
        for k in 0..self.response.sinks.len() {
            self.deliver_sink(k, now, &mut report)?;
        }
        report.actions_run = self.run_mitigation_tasks()?;
        // objects a finding action queued are delivered in the same call
        for k in 0..self.response.sinks.len() {
            self.deliver_sink(k, now, &mut report)?;
        }
        // per sink, on the (sink, state) index: the outbox keeps what was sent for the
        // retention period, and a scan of it at every commit would grow with it
        for k in 0..self.response.sinks.len() {
            let rows = self.store.query(
                "SELECT count(*) FROM outbox WHERE sink = ?1 AND state = 'pending'",
                &[self.response.sinks[k].name.clone().into()],
            )?;
            report.pending += rows
                .first()
                .map_or(0, |r| text(&r[0]).parse::<usize>().unwrap_or(0));
        }
        Ok(report)
    }

    /// [`respond`](Self::respond) at the wall clock's now.
    ///
    /// # Errors
    ///
    /// As [`respond`](Self::respond).
    pub fn respond_now(&mut self) -> Result<ResponseReport, FleetError> {
        self.respond(wall_ms())
    }

    fn deliver_sink(
        &mut self,
        k: usize,
        now: u64,
        report: &mut ResponseReport,
    ) -> Result<(), FleetError> {
        loop {
            let s = &mut self.response.sinks[k];
            if now < s.next_attempt {
                return Ok(());
            }
            while s
                .recent
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= 60_000)
            {
                s.recent.pop_front();
            }
            if s.recent.len() >= s.options.per_minute as usize {
                return Ok(());
            }
            let (name, batch) = (s.name.clone(), s.options.batch);
            let due = self.store.due(&name, batch)?;
            if due.is_empty() {
                return Ok(());
            }
            let ids: Vec<i64> = due.iter().map(|d| d.0).collect();
            let objects: Vec<Value> = due
                .iter()
                .map(|d| serde_json::from_str(&d.1).unwrap_or(Value::Null))
                .collect();
            let s = &mut self.response.sinks[k];
            s.recent.push_back(now);
            match s.sink.deliver(&objects) {
                Ok(()) => {
                    s.failures = 0;
                    s.last_error = None;
                    report.delivered += objects.len();
                    report.batches += 1;
                    self.store.mark_outbox(&ids, None)?;
                }
                Err(e) => {
                    s.failures = s.failures.saturating_add(1);
                    s.next_attempt = now.saturating_add(s.options.backoff_ms(s.failures));
                    s.last_error = Some(e.clone());
                    report.failed += 1;
                    self.store.mark_outbox(&ids, Some(&e))?;
                    return Ok(());
                }
            }
        }
    }

    // ---- verification and feedback ----

    /// Labels a violation (Device Defender's `PutVerificationStateOnViolation`), with optional
    /// feedback that changes what happens next ([`Feedback`]; the module
    /// [`feedback`](crate::fleet::feedback) says exactly what each does). Every call appends an
    /// attributed adjustment record (returned as JSON, with its `adjustmentId`); feedback can
    /// be reverted with [`revert_adjustment`](Self::revert_adjustment). The label is written on
    /// every stored event of the violation and on the active violation. Takes effect at once
    /// and is committed with the next [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// No such violation; `learn` with `TRUE_POSITIVE` or on a violation with nothing to
    /// learn from; a bad group name; the store failed. Nothing changes then.
    pub fn put_verification_state(
        &mut self,
        violation_id: &str,
        state: VerificationState,
        description: Option<&str>,
        feedback: &Feedback,
        actor: &str,
    ) -> Result<Value, FleetError> {
        if description.is_some_and(|d| d.len() > 1000) {
            return Err(bad(
                "verificationStateDescription",
                "must be at most 1000 characters".into(),
            ));
        }
        let rows = self.store.query(
            "SELECT json, thing, profile, behavior, time FROM violation_events \
             WHERE violation_id = ?1 ORDER BY seq",
            &[violation_id.to_string().into()],
        )?;
        let Some(first) = rows.first() else {
            return Err(bad(
                "violationId",
                format!("{} is not a violation in the store", quoted(violation_id)),
            ));
        };
        let event: Value = serde_json::from_str(&text(&first[0])).unwrap_or(Value::Null);
        let (thing, profile, behavior) = (text(&first[1]), text(&first[2]), text(&first[3]));
        let start = event
            .pointer("/rcf/violationStartTime")
            .and_then(|t| crate::fleet::time::parse_json(t).ok())
            .unwrap_or_default();
        // where the anomaly began: the alarming window's start, moved back by the verdict's
        // relative index (the shingle slot it came from)
        let window = self
            .slots
            .iter()
            .find(|s| *s.profile_name == *profile && *s.behavior_name == *behavior)
            .and_then(|s| s.window_ms)
            .unwrap_or(0);
        let rel = event
            .pointer("/violationEventAdditionalInfo/relativeIndex")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .min(0);
        let excluded_from = start - window + rel * window;
        let cleared = rows.iter().find_map(|r| {
            let v: Value = serde_json::from_str(&text(&r[0])).ok()?;
            (v.get("violationEventType")? != "in-alarm").then(|| match &r[4] {
                rusqlite::types::Value::Integer(t) => *t,
                _ => 0,
            })
        });
        let scope_of = |s: &Scope| -> Result<(), FleetError> {
            if let Scope::Group(g) = s {
                crate::fleet::profile::check_identifier(g).map_err(|r| bad("group", r))?;
            }
            Ok(())
        };
        let rule_kind = match feedback {
            Feedback::LabelOnly => None,
            Feedback::Learn(scope) => {
                scope_of(scope)?;
                if state == VerificationState::TruePositive {
                    return Err(bad(
                        "feedback",
                        "learn is for false and benign positives; a TRUE_POSITIVE is not normal"
                            .into(),
                    ));
                }
                let learned = Learned::from_event(&event).ok_or_else(|| {
                    bad(
                        "feedback",
                        format!(
                            "violation {} has no value to learn from",
                            quoted(violation_id)
                        ),
                    )
                })?;
                Some((scope.clone(), RuleKind::Learn(learned)))
            }
            Feedback::Mute { scope, until } => {
                scope_of(scope)?;
                Some((scope.clone(), RuleKind::Mute { until: *until }))
            }
            Feedback::ExcludeFromTraining => Some((
                Scope::Thing,
                RuleKind::Exclude {
                    start: excluded_from,
                    end: cleared,
                    violation_id: violation_id.to_string(),
                },
            )),
        };
        let feedback_name = match feedback {
            Feedback::LabelOnly => "label-only",
            Feedback::Learn(_) => "learn",
            Feedback::Mute { .. } => "mute",
            Feedback::ExcludeFromTraining => "exclude-from-training",
        };
        // the label, on the events and the active violation
        self.store.execute(
            "UPDATE violation_events SET verification_state = ?1, \
             json = json_set(json, '$.verificationState', ?1, '$.verificationStateDescription', ?2) \
             WHERE violation_id = ?3",
            &[
                state.as_str().to_string().into(),
                description.map_or(rusqlite::types::Value::Null, |d| d.to_string().into()),
                violation_id.to_string().into(),
            ],
        )?;
        self.store.execute(
            "UPDATE active_violations SET verification_state = ?1 WHERE violation_id = ?2",
            &[
                state.as_str().to_string().into(),
                violation_id.to_string().into(),
            ],
        )?;
        let mut record = json!({
            "time": wall_ms(), "eventTime": crate::fleet::time::to_json(self.now()),
            "actor": actor, "violationId": violation_id, "verificationState": state.as_str(),
            "verificationStateDescription": description, "feedback": feedback_name,
        });
        let rule = rule_kind.map(|(scope, kind)| Rule {
            id: 0,
            thing: thing.as_str().into(),
            scope,
            profile: profile.as_str().into(),
            behavior: behavior.as_str().into(),
            kind,
        });
        if let Some(r) = &rule {
            record["rule"] = r.to_json();
        }
        self.store.execute(
            "INSERT INTO adjustments (json) VALUES (?1)",
            &[record.to_string().into()],
        )?;
        let id = self.store.last_insert_rowid();
        record["adjustmentId"] = json!(id);
        self.response.rules_at = id;
        if let Some(mut r) = rule {
            r.id = id;
            let exclude = matches!(r.kind, RuleKind::Exclude { .. });
            self.response.rules.push(r);
            if exclude {
                self.retrain(&thing, &profile, &behavior)?;
            }
        }
        Ok(record)
    }

    /// Rewrites a rule's record (an exclusion span that closed).
    fn rewrite_rule(&mut self, rule: &Rule) -> Result<(), FleetError> {
        let rows = self.store.query(
            "SELECT json FROM adjustments WHERE id = ?1",
            &[rule.id.into()],
        )?;
        if let Some(r) = rows.first() {
            let mut v: Value = serde_json::from_str(&text(&r[0])).unwrap_or(Value::Null);
            v["rule"] = rule.to_json();
            self.store.execute(
                "UPDATE adjustments SET json = ?1 WHERE id = ?2",
                &[v.to_string().into(), rule.id.into()],
            )?;
        }
        Ok(())
    }

    /// Every adjustment record, oldest first (`adjustmentId`, who, when, the label, the
    /// feedback and its `rule`, `revertedBy` once reverted).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn adjustments(&self) -> Result<Vec<Value>, FleetError> {
        let rows = self.store.query(
            "SELECT id, json, reverted_by FROM adjustments ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let mut v: Value = serde_json::from_str(&text(&r[1])).unwrap_or(Value::Null);
                v["adjustmentId"] = json!(text(&r[0]).parse::<i64>().unwrap_or(0));
                if let rusqlite::types::Value::Integer(by) = r[2] {
                    v["revertedBy"] = json!(by);
                }
                v
            })
            .collect())
    }

    /// Reverts an adjustment's feedback: the rule stops applying (an exclusion's model is
    /// retrained with the span back in). Appends a `revert` record (returned) that names it.
    ///
    /// # Errors
    ///
    /// No such adjustment, or it was reverted already; the store failed.
    pub fn revert_adjustment(&mut self, id: i64, actor: &str) -> Result<Value, FleetError> {
        let rows = self.store.query(
            "SELECT json, reverted_by FROM adjustments WHERE id = ?1",
            &[id.into()],
        )?;
        let Some(r) = rows.first() else {
            return Err(bad("adjustmentId", format!("{id} is not an adjustment")));
        };
        if !matches!(r[1], rusqlite::types::Value::Null) {
            return Err(bad("adjustmentId", format!("{id} was reverted already")));
        }
        let original: Value = serde_json::from_str(&text(&r[0])).unwrap_or(Value::Null);
        if original.get("feedback").and_then(Value::as_str) == Some("revert") {
            return Err(bad("adjustmentId", format!("{id} is itself a revert")));
        }
        let mut record = json!({
            "time": wall_ms(), "eventTime": crate::fleet::time::to_json(self.now()),
            "actor": actor, "feedback": "revert", "reverts": id,
            "violationId": original.get("violationId"),
        });
        self.store.execute(
            "INSERT INTO adjustments (json) VALUES (?1)",
            &[record.to_string().into()],
        )?;
        let rid = self.store.last_insert_rowid();
        self.store.execute(
            "UPDATE adjustments SET reverted_by = ?1 WHERE id = ?2",
            &[rid.into(), id.into()],
        )?;
        record["adjustmentId"] = json!(rid);
        self.response.rules_at = rid;
        if let Some(k) = self.response.rules.iter().position(|r| r.id == id) {
            let rule = self.response.rules.remove(k);
            if matches!(rule.kind, RuleKind::Exclude { .. }) {
                self.retrain(&rule.thing, &rule.profile, &rule.behavior)?;
            }
        }
        Ok(record)
    }

    /// Incidents, oldest first: the closed ones from the store and those still open.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn incidents(&self) -> Result<Vec<Value>, FleetError> {
        json_rows(
            &self.store,
            "SELECT json FROM incidents ORDER BY rowid",
            &[],
        )
    }

    // ---- mitigation ----

    /// The configuration's mitigation actions (`DescribeMitigationAction` shapes).
    pub fn mitigation_actions(&self) -> Vec<Value> {
        self.response
            .actions
            .values()
            .map(MitigationAction::to_json)
            .collect()
    }

    /// Sets who runs the actions the engine does not run itself (policy, certificates,
    /// logging); without one those actions fail, naming what is missing.
    pub fn set_executor(&mut self, executor: Box<dyn Executor>) {
        self.response.executor = Some(executor);
    }

    /// Moves a thing into a quarantine thing group (Device Defender's
    /// `ADD_THINGS_TO_THING_GROUP` by hand). Profiles that target the group start judging it
    /// at its next datapoint; it stays in its other groups.
    ///
    /// # Errors
    ///
    /// A bad group or thing name; the store failed.
    pub fn quarantine(&mut self, thing: &str, group: &str) -> Result<(), FleetError> {
        self.add_to_group(group, thing)
    }

    /// Takes a thing out of a quarantine group; the alarms of profiles that no longer apply
    /// to it are invalidated (returned).
    ///
    /// # Errors
    ///
    /// The thing is not in that group; the store failed.
    pub fn release(&mut self, thing: &str, group: &str) -> Result<Vec<ViolationEvent>, FleetError> {
        if !self.in_group(group, thing) {
            return Err(bad(
                "thing",
                format!("{} is not in thing group {}", quoted(thing), quoted(group)),
            ));
        }
        self.remove_from_group(group, thing)
    }

    /// Starts a mitigation task (Device Defender's `StartDetectMitigationActionsTask` request
    /// JSON); its actions run at the next [`respond`](Self::respond). Returns the task
    /// ([`describe_mitigation_task`](Self::describe_mitigation_task)). A repeated start with
    /// the same `clientRequestToken` returns the first task.
    ///
    /// # Errors
    ///
    /// A malformed request; an unknown action or violation; a task id in use; the store
    /// failed.
    pub fn start_mitigation_task(&mut self, request: &Value) -> Result<Value, FleetError> {
        self.create_task(request, false)
    }

    fn create_task(&mut self, request: &Value, automatic: bool) -> Result<Value, FleetError> {
        let req = TaskRequest::from_json(request)?;
        if let Some(token) = &req.token
            && let Some(task) = json_rows(
                &self.store,
                "SELECT json FROM mitigation_tasks WHERE token = ?1",
                &[token.clone().into()],
            )?
            .pop()
        {
            return Ok(task);
        }
        let exists = !self
            .store
            .query(
                "SELECT 1 FROM mitigation_tasks WHERE task_id = ?1",
                &[req.task_id.clone().into()],
            )?
            .is_empty();
        if exists {
            if automatic {
                return Ok(Value::Null);
            }
            return Err(bad(
                "taskId",
                format!("{} is already a task", quoted(&req.task_id)),
            ));
        }
        let mut defs = Vec::new();
        for a in &req.actions {
            let def = self.response.actions.get(a).ok_or_else(|| {
                bad(
                    "actions",
                    format!("{} is not one of the fleet's mitigationActions", quoted(a)),
                )
            })?;
            defs.push(def.to_json());
        }
        // the targets: (violation id, thing)
        let mut targets: Vec<(String, String)> = Vec::new();
        let active_only = if req.only_active {
            " AND violation_id IN (SELECT violation_id FROM active_violations)"
        } else {
            ""
        };
        let suppressed = if req.include_suppressed {
            ""
        } else {
            " AND suppressed = 0"
        };
        if req.profile_behavior.is_none() {
            for id in &req.violation_ids {
                let rows = self.store.query(
                    &format!(
                        "SELECT violation_id, thing FROM violation_events WHERE violation_id = ?1 \
                         AND event_type = 'in-alarm'{active_only}"
                    ),
                    &[id.clone().into()],
                )?;
                let Some(r) = rows.first() else {
                    if req.only_active {
                        continue;
                    }
                    return Err(bad(
                        "target.violationIds",
                        format!("{} is not a violation in the store", quoted(id)),
                    ));
                };
                targets.push((text(&r[0]), text(&r[1])));
            }
        } else if let Some((p, b)) = &req.profile_behavior {
            let mut sql = format!(
                "SELECT violation_id, thing FROM violation_events WHERE event_type = 'in-alarm' \
                 AND profile = ?1{active_only}{suppressed}"
            );
            let mut args: Vec<rusqlite::types::Value> = vec![p.clone().into()];
            if let Some(b) = b {
                args.push(b.clone().into());
                sql.push_str(&format!(" AND behavior = ?{}", args.len()));
            }
            if let Some((s, e)) = req.range {
                args.push(s.into());
                sql.push_str(&format!(" AND time >= ?{}", args.len()));
                args.push(e.into());
                sql.push_str(&format!(" AND time < ?{}", args.len()));
            }
            sql.push_str(" ORDER BY seq");
            for r in self.store.query(&sql, &args)? {
                targets.push((text(&r[0]), text(&r[1])));
            }
        }
        let executions: Vec<Value> = targets
            .iter()
            .flat_map(|(id, thing)| {
                req.actions.iter().map(move |a| {
                    json!({"violationId": id, "thingName": thing, "actionName": a,
                           "status": "IN_PROGRESS"})
                })
            })
            .collect();
        let mut target = json!({});
        if req.profile_behavior.is_none() {
            target["violationIds"] = json!(req.violation_ids);
        } else if let Some((p, b)) = &req.profile_behavior {
            target["securityProfileName"] = json!(p);
            if let Some(b) = b {
                target["behaviorName"] = json!(b);
            }
        }
        let status = if executions.is_empty() {
            "SUCCESSFUL"
        } else {
            "IN_PROGRESS"
        };
        let task = json!({
            "taskId": req.task_id, "taskStatus": status, "taskStartTime": wall_ms() / 1000,
            "taskEndTime": if executions.is_empty() { json!(wall_ms() / 1000) } else { Value::Null },
            "target": target,
            "violationEventOccurrenceRange": req.range.map(|(s, e)| json!({
                "startTime": crate::fleet::time::to_json(s), "endTime": crate::fleet::time::to_json(e)})),
            "onlyActiveViolationsIncluded": req.only_active,
            "suppressedAlertsIncluded": req.include_suppressed,
            "actionsDefinition": defs,
            "taskStatistics": {"actionsExecuted": 0, "actionsSkipped": 0, "actionsFailed": 0},
            "executions": executions,
            "rcf": {"automatic": automatic, "runner": self.response.runner},
        });
        self.store.execute(
            "INSERT INTO mitigation_tasks (task_id, token, state, json) VALUES (?1, ?2, ?3, ?4)",
            &[
                req.task_id.clone().into(),
                req.token
                    .clone()
                    .map_or(rusqlite::types::Value::Null, Into::into),
                status.to_string().into(),
                task.to_string().into(),
            ],
        )?;
        Ok(task)
    }

    /// A task's status (`DescribeDetectMitigationActionsTask`'s summary plus its
    /// `executions`, as `ListDetectMitigationActionsExecutions` lists them).
    ///
    /// # Errors
    ///
    /// No such task; the store failed.
    pub fn describe_mitigation_task(&self, task_id: &str) -> Result<Value, FleetError> {
        json_rows(
            &self.store,
            "SELECT json FROM mitigation_tasks WHERE task_id = ?1",
            &[task_id.to_string().into()],
        )?
        .pop()
        .ok_or_else(|| bad("taskId", format!("{} is not a task", quoted(task_id))))
    }

    /// Every task, oldest first.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub fn list_mitigation_tasks(&self) -> Result<Vec<Value>, FleetError> {
        json_rows(
            &self.store,
            "SELECT json FROM mitigation_tasks ORDER BY rowid",
            &[],
        )
    }

    /// Cancels a task: actions not yet run are `SKIPPED`; those run stay applied (no
    /// rollback). Returns the task.
    ///
    /// # Errors
    ///
    /// No such task, or it is not in progress; the store failed.
    pub fn cancel_mitigation_task(&mut self, task_id: &str) -> Result<Value, FleetError> {
        let mut task = self.describe_mitigation_task(task_id)?;
        if task["taskStatus"] != "IN_PROGRESS" {
            return Err(bad(
                "taskId",
                format!(
                    "{} is {}, not IN_PROGRESS",
                    quoted(task_id),
                    task["taskStatus"]
                ),
            ));
        }
        let mut skipped = 0;
        if let Some(ex) = task["executions"].as_array_mut() {
            for e in ex.iter_mut().filter(|e| e["status"] == "IN_PROGRESS") {
                e["status"] = json!("SKIPPED");
                e["message"] = json!("the task was canceled");
                skipped += 1;
            }
        }
        add_stat(&mut task, "actionsSkipped", skipped);
        task["taskStatus"] = json!("CANCELED");
        task["taskEndTime"] = json!(wall_ms() / 1000);
        self.save_task(&task)?;
        self.store.commit()?;
        Ok(task)
    }

    fn save_task(&mut self, task: &Value) -> Result<(), FleetError> {
        self.store.execute(
            "UPDATE mitigation_tasks SET state = ?1, json = ?2 WHERE task_id = ?3",
            &[
                task["taskStatus"].as_str().unwrap_or("").to_string().into(),
                task.to_string().into(),
                task["taskId"].as_str().unwrap_or("").to_string().into(),
            ],
        )?;
        Ok(())
    }

    /// Runs the actions of tasks in progress, one violation at a time (each violation's
    /// actions in order; after a failure the rest are skipped), committing after each
    /// violation. Returns the actions run or skipped.
    fn run_mitigation_tasks(&mut self) -> Result<usize, FleetError> {
        let tasks = json_rows(
            &self.store,
            "SELECT json FROM mitigation_tasks WHERE state = 'IN_PROGRESS' ORDER BY rowid",
            &[],
        )?;
        let mut ran = 0;
        for mut task in tasks {
            if task["rcf"]["runner"] != self.response.runner.as_str() {
                continue;
            }
            let n = task["executions"].as_array().map_or(0, Vec::len);
            let mut k = 0;
            while k < n {
                let id = task["executions"][k]["violationId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let mut failed = false;
                while k < n && task["executions"][k]["violationId"] == id.as_str() {
                    if task["executions"][k]["status"] != "IN_PROGRESS" {
                        failed |= task["executions"][k]["status"] == "FAILED";
                        k += 1;
                        continue;
                    }
                    ran += 1;
                    let (status, message, stat) = if failed {
                        (
                            "SKIPPED",
                            Some("an earlier action for this violation failed".to_string()),
                            "actionsSkipped",
                        )
                    } else {
                        let action = task["executions"][k]["actionName"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        let thing = task["executions"][k]["thingName"]
                            .as_str()
                            .unwrap_or("")
                            .to_string();
                        match self.run_action(
                            &action,
                            &id,
                            &thing,
                            task["taskId"].as_str().unwrap_or(""),
                        ) {
                            Ok(()) => ("SUCCESSFUL", None, "actionsExecuted"),
                            Err(e) => {
                                failed = true;
                                ("FAILED", Some(e), "actionsFailed")
                            }
                        }
                    };
                    let e = &mut task["executions"][k];
                    e["status"] = json!(status);
                    e["executionEndDate"] = json!(wall_ms() / 1000);
                    if let Some(m) = message {
                        e["message"] = json!(m);
                    }
                    add_stat(&mut task, stat, 1);
                    k += 1;
                }
                if k == n {
                    let failed_any = task["taskStatistics"]["actionsFailed"]
                        .as_u64()
                        .unwrap_or(0)
                        > 0;
                    task["taskStatus"] = json!(if failed_any { "FAILED" } else { "SUCCESSFUL" });
                    task["taskEndTime"] = json!(wall_ms() / 1000);
                }
                self.save_task(&task)?;
                self.store.commit()?;
            }
        }
        Ok(ran)
    }

    fn run_action(
        &mut self,
        name: &str,
        violation_id: &str,
        thing: &str,
        task_id: &str,
    ) -> Result<(), String> {
        let action = self
            .response
            .actions
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the action {} is no longer defined", quoted(name)))?;
        let violation = json_rows(
            &self.store,
            "SELECT json FROM violation_events WHERE violation_id = ?1 AND event_type = 'in-alarm'",
            &[violation_id.to_string().into()],
        )
        .map_err(|e| e.to_string())?
        .pop()
        .unwrap_or(Value::Null);
        match action.action_type {
            ActionType::AddThingsToThingGroup => {
                let groups = action.params["thingGroupNames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for g in groups {
                    self.add_to_group(g.as_str().unwrap_or(""), thing)
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            ActionType::PublishFindingToSns => {
                let sink = action.params["topicArn"].as_str().unwrap_or("");
                if !self.response.sinks.iter().any(|s| s.name == sink) {
                    return Err(format!("no sink named {} is added", quoted(sink)));
                }
                let finding = json!({"finding": violation, "taskId": task_id, "actionName": name});
                self.store
                    .put_outbox(
                        sink,
                        &format!("finding/{task_id}/{violation_id}"),
                        false,
                        &finding.to_string(),
                        self.now(),
                    )
                    .map_err(|e| e.to_string())
            }
            other => match self.response.executor.as_mut() {
                Some(x) => x.execute(&action, &violation),
                None => Err(format!(
                    "{} needs an executor (a webhook, command or callback): none is set",
                    other.as_str()
                )),
            },
        }
    }
}

fn add_stat(task: &mut Value, stat: &str, n: u64) {
    let s = &mut task["taskStatistics"][stat];
    *s = json!(s.as_u64().unwrap_or(0) + n);
}
