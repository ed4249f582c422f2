//! `rcf.Fleet` and `rcf.ViolationEvent`: the fleet detect engine of `rcf_stream::fleet`.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};
use rcf_stream::fleet::{
    CommandExecutor, Datapoint, Engine, EngineConfig, Feedback, Filter, FleetError, MetricValue,
    Payload, Scope, SinkOptions, VerificationState, ViolationEvent, WebhookExecutor,
};
use serde_json::Value;

use crate::errors::{ConfigError, InputError, RcfError, StateError};
use crate::pickle::{self, Pickle};

/// A fleet error as the Python exception for it.
pub(crate) fn fleet_error(e: FleetError) -> PyErr {
    let msg = e.to_string();
    match e {
        FleetError::Profile(_) | FleetError::InvalidParameter { .. } => ConfigError::new_err(msg),
        FleetError::Datapoint(_) => InputError::new_err(msg),
        FleetError::Store(_) | FleetError::State(_) => StateError::new_err(msg),
        _ => RcfError::new_err(msg),
    }
}

/// A Python object as JSON text (`json.dumps`), then parsed.
pub(crate) fn to_json(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str()?;
        return serde_json::from_str(text)
            .map_err(|e| ConfigError::new_err(format!("not JSON: {e}")));
    }
    let text: String = py
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| ConfigError::new_err(format!("not JSON: {e}")))
}

/// JSON text as a Python object (`json.loads`).
pub(crate) fn from_json<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}

/// Epoch milliseconds from a Python timestamp: epoch seconds (int or float), an RFC 3339
/// string, or a `datetime` / pandas `Timestamp` (anything with `.timestamp()`).
fn millis(t: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    let v = if let Ok(s) = t.extract::<String>() {
        Value::from(s)
    } else if let Ok(x) = t.extract::<f64>() {
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| InputError::new_err(format!("{what} {x} is not finite")))?
    } else if t.hasattr("timestamp")? {
        let x: f64 = t.call_method0("timestamp")?.extract()?;
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| InputError::new_err(format!("{what} is not finite")))?
    } else {
        return Err(InputError::new_err(format!(
            "{what} must be epoch seconds, an RFC 3339 string or a datetime, got {}",
            t.get_type().name()?
        )));
    };
    rcf_stream::fleet::time::parse_json(&v).map_err(|e| InputError::new_err(format!("{what} {e}")))
}

/// One datapoint from a dict `{thing, metric, value, timestamp[, topic]}`.
pub(crate) fn datapoint(py: Python<'_>, d: &Bound<'_, PyAny>, at: &str) -> PyResult<Datapoint> {
    let get = |k: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        match d.get_item(k) {
            Ok(v) if !v.is_none() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let need = |k: &str| -> PyResult<Bound<'_, PyAny>> {
        get(k)?.ok_or_else(|| InputError::new_err(format!("{at}: `{k}` is missing")))
    };
    let thing: String = need("thing")?
        .extract()
        .map_err(|_| InputError::new_err(format!("{at}: `thing` must be a string")))?;
    let metric: String = need("metric")?
        .extract()
        .map_err(|_| InputError::new_err(format!("{at}: `metric` must be a string")))?;
    let raw = need("value")?;
    let value = if raw.is_instance_of::<pyo3::types::PyBool>() {
        return Err(InputError::new_err(format!(
            "{at}: `value` must be a number or a MetricValue dict, got a bool"
        )));
    } else if let Ok(c) = raw.extract::<u64>() {
        MetricValue::Count(c)
    } else if let Ok(x) = raw.extract::<f64>() {
        MetricValue::Number(x)
    } else {
        MetricValue::from_json(
            &to_json(py, &raw).map_err(|e| InputError::new_err(format!("{at}: `value` {e}")))?,
        )
        .map_err(|e| InputError::new_err(format!("{at}: `value` {e}")))?
    };
    let ts = millis(&need("timestamp")?, &format!("{at}: `timestamp`"))?;
    let topic: Option<String> =
        match get("topic")? {
            None => None,
            Some(t) => {
                // pandas fills a missing topic with NaN
                if t.extract::<f64>().is_ok_and(f64::is_nan) {
                    None
                } else {
                    Some(t.extract().map_err(|_| {
                        InputError::new_err(format!("{at}: `topic` must be a string"))
                    })?)
                }
            }
        };
    Datapoint::new(&thing, &metric, value, ts, topic.as_deref())
        .map_err(|e| InputError::new_err(format!("{at}: {e}")))
}

/// The records of `datapoints`: a list (or iterable) of dicts, or a pandas DataFrame with
/// columns thing, metric, value, timestamp[, topic].
pub(crate) fn records<'py>(
    py: Python<'py>,
    datapoints: &Bound<'py, PyAny>,
) -> PyResult<Vec<Datapoint>> {
    let rows: Bound<'py, PyAny> =
        if datapoints.hasattr("to_dict")? && datapoints.hasattr("columns")? {
            datapoints.call_method1("to_dict", ("records",))?
        } else if datapoints.cast::<PyDict>().is_ok() {
            PyList::new(py, [datapoints])?.into_any()
        } else {
            datapoints.clone()
        };
    let mut out = Vec::new();
    for (i, r) in rows.try_iter()?.enumerate() {
        out.push(datapoint(py, &r?, &format!("datapoints[{i}]"))?);
    }
    Ok(out)
}

/// One violation event: Device Defender's `ViolationEvent` fields as attributes, and
/// `to_dict()` for the JSON (camelCase).
#[pyclass(name = "ViolationEvent", module = "rcf", frozen)]
pub(crate) struct PyViolationEvent {
    json: Value,
}

impl PyViolationEvent {
    fn new(e: &ViolationEvent) -> Self {
        Self { json: e.to_json() }
    }

    fn text(&self, key: &str) -> String {
        self.json[key].as_str().unwrap_or_default().to_string()
    }

    fn info(&self, key: &str) -> Option<f64> {
        self.json["violationEventAdditionalInfo"][key].as_f64()
    }
}

#[pymethods]
impl PyViolationEvent {
    /// `violationId`: one id follows one alarm from in-alarm to cleared or invalidated.
    #[getter]
    fn violation_id(&self) -> String {
        self.text("violationId")
    }
    /// `thingName`.
    #[getter]
    fn thing_name(&self) -> String {
        self.text("thingName")
    }
    /// `securityProfileName`.
    #[getter]
    fn security_profile_name(&self) -> String {
        self.text("securityProfileName")
    }
    /// The behaviour's name.
    #[getter]
    fn behavior_name(&self) -> String {
        self.json["behavior"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// `violationEventType`: "in-alarm", "alarm-cleared" or "alarm-invalidated".
    #[getter]
    fn violation_event_type(&self) -> String {
        self.text("violationEventType")
    }
    /// `violationEventTime`, epoch seconds.
    #[getter]
    fn violation_event_time(&self) -> f64 {
        self.json["violationEventTime"].as_f64().unwrap_or(f64::NAN)
    }
    /// "STATIC", "STATISTICAL" or "MACHINE_LEARNING".
    #[getter]
    fn criteria_type(&self) -> String {
        self.json["rcf"]["criteriaType"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// Why the event happened, in words.
    #[getter]
    fn reason(&self) -> String {
        self.json["rcf"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// The RCF score (ML behaviours), else None.
    #[getter]
    fn score(&self) -> Option<f64> {
        self.info("score")
    }
    /// The grade in (0, 1) (ML behaviours), else None.
    #[getter]
    fn grade(&self) -> Option<f64> {
        self.info("grade")
    }
    /// Per-metric attribution `[{"metric", "high", "low", "direction"}]` (ML), else [].
    #[getter]
    fn attribution<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(
            py,
            self.json["violationEventAdditionalInfo"]
                .get("attribution")
                .unwrap_or(&Value::Array(Vec::new())),
        )
    }
    /// The event as Device Defender's `ViolationEvent` JSON text, one line, exactly as the
    /// engine writes it (to its store, sinks and the CLI's output).
    fn to_json(&self) -> String {
        self.json.to_string()
    }
    /// The event as Device Defender's `ViolationEvent` JSON (a dict).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.json)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Self>()
            .is_ok_and(|o| o.get().json == self.json)
    }
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.json.to_string().hash(&mut h);
        h.finish()
    }
    fn __repr__(&self) -> String {
        format!(
            "ViolationEvent({} {} {} {} at {})",
            self.violation_event_type(),
            self.thing_name(),
            self.behavior_name(),
            self.violation_id(),
            rcf_stream::fleet::time::format_rfc3339((self.violation_event_time() * 1000.0) as i64)
        )
    }
    #[classmethod]
    fn _from_state(_cls: &Bound<'_, PyType>, state: &Bound<'_, PyAny>) -> PyResult<Self> {
        <Self as Pickle>::from_state(state.py(), state)
    }
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        pickle::reduce(slf)
    }
}

impl Pickle for PyViolationEvent {
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyString::new(py, &self.json.to_string()).into_any())
    }
    fn from_state(_py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<Self> {
        let text: String = state.extract()?;
        let json = serde_json::from_str(&text)
            .map_err(|e| StateError::new_err(format!("not a violation event: {e}")))?;
        Ok(Self { json })
    }
}

pub(crate) fn events(list: Vec<ViolationEvent>) -> Vec<PyViolationEvent> {
    list.iter().map(PyViolationEvent::new).collect()
}

/// The fleet detect engine: Device Defender security profiles (rules, fleet percentiles and a
/// per-thing ML model), alarms, violation events and metric history in SQLite.
#[pyclass(name = "Fleet", module = "rcf", frozen)]
pub(crate) struct PyFleet {
    inner: Mutex<Engine>,
    config: EngineConfig,
}

fn lock<R: Send>(py: Python<'_>, f: &Mutex<Engine>, g: impl FnOnce(&mut Engine) -> R + Send) -> R {
    crate::run::locked(py, f, g)
}

/// Runs `f` on the engine (interpreter released), commits, and returns its events.
fn committed(
    py: Python<'_>,
    engine: &Mutex<Engine>,
    f: impl FnOnce(&mut Engine) -> Result<Vec<ViolationEvent>, FleetError> + Send,
) -> PyResult<Vec<PyViolationEvent>> {
    let evs = lock(py, engine, |e| {
        let r = f(e)?;
        e.commit(None)?;
        e.respond_now()?;
        Ok::<_, FleetError>(r)
    })
    .map_err(fleet_error)?;
    Ok(events(evs))
}

/// `model_checkpoint_hours` in ms: from 0 to a year (the engine's range).
fn checkpoint_ms(hours: f64) -> PyResult<i64> {
    if (0.0..=366.0 * 24.0).contains(&hours) {
        Ok((hours * 3_600_000.0).round() as i64)
    } else {
        Err(ConfigError::new_err(format!(
            "invalid `model_checkpoint_hours`: must be from 0 to a year (8784), got {hours}"
        )))
    }
}

/// Seconds from Python as milliseconds, refused (naming the setting) unless non-negative and
/// below 10^12.
pub(crate) fn seconds_ms(name: &str, x: f64) -> PyResult<i64> {
    if (0.0..1e12).contains(&x) {
        Ok((x * 1000.0) as i64)
    } else {
        Err(ConfigError::new_err(format!(
            "invalid `{name}`: must be a non-negative number, got {x}"
        )))
    }
}

/// The engine's counters as a dict: datapoints, late, unmonitored, windows, in_alarm,
/// cleared, invalidated.
pub(crate) fn counters_dict<'py>(
    py: Python<'py>,
    c: &rcf_stream::fleet::Counters,
) -> PyResult<Bound<'py, PyDict>> {
    counts(
        py,
        &[
            ("datapoints", c.datapoints),
            ("late", c.late),
            ("unmonitored", c.unmonitored),
            ("windows", c.windows),
            ("in_alarm", c.in_alarm),
            ("cleared", c.cleared),
            ("invalidated", c.invalidated),
        ],
    )
}

/// A dict of counts, in the order given.
fn counts<'py>(py: Python<'py>, pairs: &[(&str, u64)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in pairs {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// A memory budget from Python: bytes (an int) or a size string (`"2GiB"`).
fn budget_bytes(b: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(s) = b.extract::<String>() {
        return rcf_stream::fleet::parse_memory_size(&s)
            .map_err(|e| ConfigError::new_err(format!("invalid `memory_budget`: {e}")));
    }
    match b.extract::<i64>() {
        Ok(n) if n >= 1 => Ok(n as u64),
        _ => Err(ConfigError::new_err(format!(
            "invalid `memory_budget`: must be a positive number of bytes or a size such as \"2GiB\", got {}",
            b.repr()?
        ))),
    }
}

fn filter(
    thing: Option<String>,
    profile: Option<String>,
    criteria_type: Option<String>,
    list_suppressed_alerts: Option<bool>,
    verification_state: Option<String>,
) -> Filter {
    let mut f = Filter::default();
    f.thing = thing;
    f.profile = profile;
    f.criteria_type = criteria_type;
    f.list_suppressed_alerts = list_suppressed_alerts;
    f.verification_state = verification_state;
    f
}

#[pymethods]
impl PyFleet {
    #[new]
    #[pyo3(signature = (profile=None, *, store=None, grace_seconds=60.0, invalidate_after_hours=48.0,
        retention_days=14.0, max_future_seconds=86400.0, strict=false, history=true, seed=0,
        memory_budget=None, num_trees=None, sample_size=None, shingle_size=None,
        model_checkpoint_hours=24.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        profile: Option<&Bound<'_, PyAny>>,
        store: Option<PathBuf>,
        grace_seconds: f64,
        invalidate_after_hours: f64,
        retention_days: f64,
        max_future_seconds: Option<f64>,
        strict: bool,
        history: bool,
        seed: u64,
        memory_budget: Option<&Bound<'_, PyAny>>,
        num_trees: Option<usize>,
        sample_size: Option<usize>,
        shingle_size: Option<usize>,
        model_checkpoint_hours: f64,
    ) -> PyResult<Self> {
        let mut c = EngineConfig::default();
        c.model_checkpoint_ms = checkpoint_ms(model_checkpoint_hours)?;
        c.grace_ms = seconds_ms("grace_seconds", grace_seconds)?;
        c.invalidate_after_ms =
            seconds_ms("invalidate_after_hours", invalidate_after_hours * 3600.0)?;
        c.retention_ms = seconds_ms("retention_days", retention_days * 86_400.0)?;
        c.max_future_ms = max_future_seconds
            .map(|s| seconds_ms("max_future_seconds", s))
            .transpose()?;
        c.strict = strict;
        c.history = history;
        c.seed = seed;
        c.memory_budget = memory_budget.map(budget_bytes).transpose()?;
        if let Some(n) = num_trees {
            c.model.num_trees = n;
        }
        if let Some(n) = sample_size {
            c.model.sample_size = n;
        }
        if let Some(n) = shingle_size {
            c.model.shingle_size = n;
        }
        let setup = profile.map(|p| to_json(py, p)).transpose()?;
        let cfg = c.clone();
        let engine = py
            .detach(move || -> Result<Engine, FleetError> {
                let mut e = Engine::open(cfg, store.as_deref())?;
                if let Some(s) = setup {
                    e.configure(&s)?;
                    e.commit(None)?;
                }
                Ok(e)
            })
            .map_err(fleet_error)?;
        Ok(Self {
            inner: Mutex::new(engine),
            config: c,
        })
    }

    /// Sets the configuration: a CreateSecurityProfile dict, or a bundle with
    /// securityProfiles, dimensions, customMetrics, thingGroups and targets. Returns the
    /// alarm-invalidated events of changed or removed behaviours.
    fn configure(
        &self,
        py: Python<'_>,
        profile: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<PyViolationEvent>> {
        let setup = to_json(py, profile)?;
        committed(py, &self.inner, |e| e.configure(&setup))
    }

    /// Ingests datapoints (dicts `{thing, metric, value, timestamp[, topic]}`, or a pandas
    /// DataFrame with those columns) in order and commits; returns the violation events.
    /// Every datapoint is checked first: if one is invalid, InputError names it and nothing
    /// is applied.
    fn ingest(
        &self,
        py: Python<'_>,
        datapoints: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<PyViolationEvent>> {
        let dps = records(py, datapoints)?;
        let evs = lock(py, &self.inner, |e| {
            for (i, d) in dps.iter().enumerate() {
                e.check(d).map_err(|err| match err {
                    FleetError::Datapoint(m) => {
                        FleetError::Datapoint(format!("datapoints[{i}]: {m}"))
                    }
                    other => other,
                })?;
            }
            let mut out = Vec::new();
            for d in &dps {
                e.ingest_into(d, &mut out)?;
            }
            e.commit(None)?;
            // committed: the sinks get what they are owed, automatic actions run
            e.respond_now()?;
            Ok::<_, FleetError>(out)
        })
        .map_err(fleet_error)?;
        py.check_signals()?;
        Ok(events(evs))
    }

    /// Advances the clock to `now` without data (closing windows, invalidating silent things).
    fn tick(&self, py: Python<'_>, now: &Bound<'_, PyAny>) -> PyResult<Vec<PyViolationEvent>> {
        let ms = millis(now, "`now`")?;
        committed(py, &self.inner, |e| e.tick(ms))
    }

    /// Closes every open window now (the end of a finite input).
    fn flush(&self, py: Python<'_>) -> PyResult<Vec<PyViolationEvent>> {
        committed(py, &self.inner, |e| e.flush())
    }

    /// Active violations (ListActiveViolations), as dicts.
    #[pyo3(signature = (*, thing=None, profile=None, criteria_type=None, list_suppressed_alerts=None, verification_state=None))]
    fn list_active_violations<'py>(
        &self,
        py: Python<'py>,
        thing: Option<String>,
        profile: Option<String>,
        criteria_type: Option<String>,
        list_suppressed_alerts: Option<bool>,
        verification_state: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = filter(
            thing,
            profile,
            criteria_type,
            list_suppressed_alerts,
            verification_state,
        );
        let rows = lock(py, &self.inner, |e| e.list_active_violations(&f)).map_err(fleet_error)?;
        from_json(py, &Value::Array(rows))
    }

    /// Violation events from `start` to `end` (exclusive; epoch seconds, RFC 3339 or
    /// datetime; default all), as dicts (ListViolationEvents).
    #[pyo3(signature = (start=None, end=None, *, thing=None, profile=None, criteria_type=None, list_suppressed_alerts=None, verification_state=None))]
    #[allow(clippy::too_many_arguments)]
    fn list_violation_events<'py>(
        &self,
        py: Python<'py>,
        start: Option<&Bound<'py, PyAny>>,
        end: Option<&Bound<'py, PyAny>>,
        thing: Option<String>,
        profile: Option<String>,
        criteria_type: Option<String>,
        list_suppressed_alerts: Option<bool>,
        verification_state: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = start
            .map(|t| millis(t, "`start`"))
            .transpose()?
            .unwrap_or(0);
        let en = end
            .map(|t| millis(t, "`end`"))
            .transpose()?
            .unwrap_or(i64::MAX);
        let f = filter(
            thing,
            profile,
            criteria_type,
            list_suppressed_alerts,
            verification_state,
        );
        let rows =
            lock(py, &self.inner, |e| e.list_violation_events(s, en, &f)).map_err(fleet_error)?;
        from_json(py, &Value::Array(rows))
    }

    /// A thing's stored values of a metric (ListMetricValues): dicts `{timestamp, value}`.
    #[pyo3(signature = (thing, metric, start=None, end=None, *, dimension=None, not_in=false))]
    #[allow(clippy::too_many_arguments)]
    fn list_metric_values<'py>(
        &self,
        py: Python<'py>,
        thing: String,
        metric: String,
        start: Option<&Bound<'py, PyAny>>,
        end: Option<&Bound<'py, PyAny>>,
        dimension: Option<String>,
        not_in: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = start
            .map(|t| millis(t, "`start`"))
            .transpose()?
            .unwrap_or(0);
        let en = end
            .map(|t| millis(t, "`end`"))
            .transpose()?
            .unwrap_or(i64::MAX);
        let rows = lock(py, &self.inner, |e| {
            e.list_metric_values(
                &thing,
                &metric,
                dimension.as_deref().map(|d| (d, not_in)),
                s,
                en,
            )
        })
        .map_err(fleet_error)?;
        from_json(py, &Value::Array(rows))
    }

    /// Adds a thing to a thing group.
    fn add_to_group(&self, py: Python<'_>, group: String, thing: String) -> PyResult<()> {
        lock(py, &self.inner, |e| {
            e.add_to_group(&group, &thing)?;
            e.commit(None)
        })
        .map_err(fleet_error)
    }

    /// Removes a thing from a thing group; returns the invalidations of profiles that no
    /// longer apply to it.
    fn remove_from_group(
        &self,
        py: Python<'_>,
        group: String,
        thing: String,
    ) -> PyResult<Vec<PyViolationEvent>> {
        committed(py, &self.inner, |e| e.remove_from_group(&group, &thing))
    }

    /// The things in a thing group.
    fn group(&self, py: Python<'_>, name: String) -> Vec<String> {
        lock(py, &self.inner, |e| e.group(&name))
    }

    /// The configuration as a bundle dict.
    #[getter]
    fn setup<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = lock(py, &self.inner, |e| e.setup_json());
        from_json(py, &v)
    }

    /// Counts since the store was created: datapoints, late, unmonitored, windows, in_alarm,
    /// cleared, invalidated.
    #[getter]
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = lock(py, &self.inner, |e| e.counters().clone());
        counters_dict(py, &c)
    }

    /// The watermark (epoch seconds), or None before any data.
    #[getter]
    fn watermark(&self, py: Python<'_>) -> Option<f64> {
        lock(py, &self.inner, |e| e.watermark()).map(|w| w as f64 / 1000.0)
    }

    /// Things tracked.
    #[getter]
    fn things(&self, py: Python<'_>) -> usize {
        lock(py, &self.inner, |e| e.things())
    }

    /// The store's path, or ":memory:".
    #[getter]
    fn store(&self, py: Python<'_>) -> String {
        lock(py, &self.inner, |e| e.store_path().to_string())
    }

    /// Device Defender's GetBehaviorModelTrainingSummaries for the ML behaviours (of
    /// `profile`, or all): modelStatus PENDING_BUILD / ACTIVE / EXPIRED,
    /// datapointsCollectedPercentage, trainingDataCollectionStartDate and
    /// lastModelRefreshDate (epoch seconds), and an "rcf" dict (scope, warming / active /
    /// evicted things, datapointsNeeded, the group model, and with `per_thing` each thing).
    #[pyo3(signature = (profile=None, *, per_thing=false))]
    fn model_training_summaries<'py>(
        &self,
        py: Python<'py>,
        profile: Option<String>,
        per_thing: bool,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let rows = lock(py, &self.inner, |e| {
            e.model_training_summaries(profile.as_deref(), per_thing)
        })
        .map_err(fleet_error)?;
        rows.iter().map(|r| from_json(py, r)).collect()
    }

    /// The model registry: resident, evicted, resident_bytes, peak_bytes, evictions,
    /// restores (since the fleet was opened).
    #[getter]
    fn model_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = lock(py, &self.inner, |e| e.model_stats());
        counts(
            py,
            &[
                ("resident", s.resident as u64),
                ("evicted", s.evicted as u64),
                ("resident_bytes", s.resident_bytes as u64),
                ("peak_bytes", s.peak_bytes as u64),
                ("evictions", s.evictions),
                ("restores", s.restores),
            ],
        )
    }

    /// Adds an alert sink: a built-in by its spec (`"webhook=http://HOST:PORT/PATH"`,
    /// `"jsonl=PATH"`, `"mqtt=mqtt://HOST:PORT/TOPIC"`, options after commas: `batch=N`,
    /// `rate=N`, `timeout=S`, `retry=S`, `incidents`), or a callable `f(batch)` given a list
    /// of event dicts (Device Defender's ViolationEvent JSON; incident dicts with
    /// `incidents=True`), with the options as keywords. Events are committed before they are
    /// delivered and marked sent once `f` returns; an exception leaves them in the outbox,
    /// retried after a back-off (`sink_status()` shows the error). Delivery runs after each
    /// committing call and `respond()`. A callable must not call back into this Fleet. Sinks
    /// are not pickled: add them again to a restored Fleet (it delivers what they are owed).
    #[pyo3(signature = (sink, *, name=None, batch=100, rate_per_minute=60, timeout_seconds=5.0,
        retry_seconds=1.0, incidents=false))]
    #[allow(clippy::too_many_arguments)]
    fn add_sink(
        &self,
        py: Python<'_>,
        sink: &Bound<'_, PyAny>,
        name: Option<String>,
        batch: usize,
        rate_per_minute: u32,
        timeout_seconds: f64,
        retry_seconds: f64,
        incidents: bool,
    ) -> PyResult<()> {
        if let Ok(spec) = sink.extract::<String>() {
            return lock(py, &self.inner, |e| e.add_sink_spec(&spec)).map_err(fleet_error);
        }
        if !sink.is_callable() {
            return Err(ConfigError::new_err(format!(
                "invalid `sink`: must be a spec string or a callable, got {}",
                sink.repr()?
            )));
        }
        let seconds = |name: &str, x: f64| -> PyResult<u64> {
            if x.is_finite() && x > 0.0 && x <= 600.0 {
                Ok((x * 1000.0).round().max(1.0) as u64)
            } else {
                Err(ConfigError::new_err(format!(
                    "invalid `{name}`: must be more than 0 and at most 600 seconds, got {x}"
                )))
            }
        };
        let mut o = SinkOptions::default();
        o.batch = batch;
        o.per_minute = rate_per_minute;
        o.timeout_ms = seconds("timeout_seconds", timeout_seconds)?;
        o.retry_ms =
            seconds("retry_seconds", retry_seconds)?.min(rcf_stream::fleet::sink::RETRY_MAX_MS);
        if incidents {
            o.payload = Payload::Incidents;
        }
        o.check().map_err(fleet_error)?;
        let name = match name {
            Some(n) => n,
            None => format!(
                "python:{}",
                sink.getattr("__qualname__")
                    .and_then(|q| q.extract::<String>())
                    .unwrap_or_else(|_| "callback".into())
            ),
        };
        let cb = crate::response::CallbackSink(sink.clone().unbind());
        lock(py, &self.inner, move |e| e.add_sink(&name, o, Box::new(cb))).map_err(fleet_error)
    }

    /// Per sink: its name, objects pending, sent and gated (stored, never sent: suppressAlerts
    /// or a mute), failures in a row and the last error.
    fn sink_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = lock(py, &self.inner, |e| e.sink_status()).map_err(fleet_error)?;
        from_json(py, &Value::Array(rows))
    }

    /// Delivers what the sinks are owed and runs pending mitigation actions now (also done
    /// after every committing call). Returns {delivered, batches, failed, pending,
    /// actions_run}.
    fn respond<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = lock(py, &self.inner, |e| e.respond_now()).map_err(fleet_error)?;
        counts(
            py,
            &[
                ("delivered", r.delivered as u64),
                ("batches", r.batches as u64),
                ("failed", r.failed as u64),
                ("pending", r.pending as u64),
                ("actions_run", r.actions_run as u64),
            ],
        )
    }

    /// Labels a violation (PutVerificationStateOnViolation): `state` TRUE_POSITIVE,
    /// BENIGN_POSITIVE, FALSE_POSITIVE or UNKNOWN. `feedback`: "label-only" (Device
    /// Defender's behaviour), "learn" (similar deviations of the thing, or of thing group
    /// `group`, stop alarming), "mute" (no alerts for the thing, or `group`, until `until`;
    /// events still stored) or "exclude-from-training" (the violation's span stays out of the
    /// thing's model). Returns the appended adjustment record (with its adjustmentId).
    #[pyo3(signature = (violation_id, state, description=None, feedback="label-only", *, group=None, until=None, actor="python"))]
    #[allow(clippy::too_many_arguments)]
    fn put_verification_state<'py>(
        &self,
        py: Python<'py>,
        violation_id: String,
        state: String,
        description: Option<String>,
        feedback: &str,
        group: Option<String>,
        until: Option<&Bound<'py, PyAny>>,
        actor: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let state = VerificationState::parse(&state).map_err(fleet_error)?;
        let scope = group.clone().map_or(Scope::Thing, Scope::Group);
        let fb = match (feedback, until) {
            ("label-only", None) if group.is_none() => Feedback::LabelOnly,
            ("learn", None) => Feedback::Learn(scope),
            ("mute", Some(t)) => Feedback::Mute {
                scope,
                until: millis(t, "`until`")?,
            },
            ("mute", None) => {
                return Err(ConfigError::new_err(
                    "invalid `feedback`: \"mute\" needs `until`",
                ));
            }
            ("exclude-from-training", None) if group.is_none() => Feedback::ExcludeFromTraining,
            (other, _) => {
                return Err(ConfigError::new_err(format!(
                    "invalid `feedback`: {other:?} with these arguments; use \"label-only\", \"learn\" (group=), \"mute\" (until=, group=) or \"exclude-from-training\""
                )));
            }
        };
        let actor = actor.to_string();
        let rec = lock(py, &self.inner, move |e| {
            let r = e.put_verification_state(
                &violation_id,
                state,
                description.as_deref(),
                &fb,
                &actor,
            )?;
            e.commit(None)?;
            Ok::<_, FleetError>(r)
        })
        .map_err(fleet_error)?;
        from_json(py, &rec)
    }

    /// Every adjustment record (labels and the feedback they caused), oldest first.
    fn adjustments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = lock(py, &self.inner, |e| e.adjustments()).map_err(fleet_error)?;
        from_json(py, &Value::Array(rows))
    }

    /// Reverts an adjustment's feedback; returns the appended revert record.
    #[pyo3(signature = (adjustment_id, *, actor="python"))]
    fn revert_adjustment<'py>(
        &self,
        py: Python<'py>,
        adjustment_id: i64,
        actor: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let actor = actor.to_string();
        let rec = lock(py, &self.inner, move |e| {
            let r = e.revert_adjustment(adjustment_id, &actor)?;
            e.commit(None)?;
            Ok::<_, FleetError>(r)
        })
        .map_err(fleet_error)?;
        from_json(py, &rec)
    }

    /// Incidents (violations that started together, grouped), oldest first.
    fn incidents<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = lock(py, &self.inner, |e| e.incidents()).map_err(fleet_error)?;
        from_json(py, &Value::Array(rows))
    }

    /// The configuration's mitigation actions (DescribeMitigationAction shapes).
    fn mitigation_actions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = lock(py, &self.inner, |e| e.mitigation_actions());
        from_json(py, &Value::Array(rows))
    }

    /// Sets who runs the actions rcf does not run itself (REPLACE_DEFAULT_POLICY_VERSION,
    /// UPDATE_DEVICE_CERTIFICATE, UPDATE_CA_CERTIFICATE, ENABLE_IOT_LOGGING): a callable
    /// `f(action, violation)` (an exception fails the action), `"webhook=http://..."` (a POST
    /// of {actionName, actionType, actionParams, violation}) or `"command=SHELL COMMAND"`
    /// (that JSON on its standard input; exit 0 succeeds).
    fn set_executor(&self, py: Python<'_>, executor: &Bound<'_, PyAny>) -> PyResult<()> {
        let x: Box<dyn rcf_stream::fleet::Executor> = if let Ok(s) = executor.extract::<String>() {
            if let Some(url) = s
                .strip_prefix("webhook=")
                .filter(|u| u.starts_with("http://"))
            {
                Box::new(WebhookExecutor::new(
                    url,
                    std::time::Duration::from_secs(10),
                ))
            } else if let Some(cmd) = s.strip_prefix("command=").filter(|c| !c.is_empty()) {
                Box::new(CommandExecutor::new(
                    "sh",
                    &["-c".to_string(), cmd.to_string()],
                    std::time::Duration::from_secs(60),
                ))
            } else {
                return Err(ConfigError::new_err(format!(
                    "invalid `executor`: {s:?} is not webhook=http://... or command=..."
                )));
            }
        } else if executor.is_callable() {
            Box::new(crate::response::CallbackExecutor(executor.clone().unbind()))
        } else {
            return Err(ConfigError::new_err(format!(
                "invalid `executor`: must be a callable or a string, got {}",
                executor.repr()?
            )));
        };
        lock(py, &self.inner, move |e| e.set_executor(x));
        Ok(())
    }

    /// Starts a mitigation task (a StartDetectMitigationActionsTask request dict: taskId,
    /// target {violationIds | securityProfileName[, behaviorName]}, actions (1 to 5 names),
    /// optional violationEventOccurrenceRange, includeOnlyActiveViolations,
    /// includeSuppressedAlerts, clientRequestToken); its actions run at once. Returns the task.
    fn start_mitigation_task<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = to_json(py, request)?;
        let task = lock(py, &self.inner, move |e| {
            let t = e.start_mitigation_task(&req)?;
            e.commit(None)?;
            e.respond_now()?;
            let id = t["taskId"].as_str().unwrap_or_default().to_string();
            e.describe_mitigation_task(&id)
        })
        .map_err(fleet_error)?;
        from_json(py, &task)
    }

    /// A task: its status, statistics and executions.
    fn describe_mitigation_task<'py>(
        &self,
        py: Python<'py>,
        task_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = lock(py, &self.inner, move |e| {
            e.describe_mitigation_task(&task_id)
        })
        .map_err(fleet_error)?;
        from_json(py, &t)
    }

    /// Every task, oldest first.
    fn list_mitigation_tasks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = lock(py, &self.inner, |e| e.list_mitigation_tasks()).map_err(fleet_error)?;
        from_json(py, &Value::Array(rows))
    }

    /// Cancels a task in progress: actions not yet run are SKIPPED, none is rolled back.
    fn cancel_mitigation_task<'py>(
        &self,
        py: Python<'py>,
        task_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = lock(py, &self.inner, move |e| e.cancel_mitigation_task(&task_id))
            .map_err(fleet_error)?;
        from_json(py, &t)
    }

    /// Moves a thing into a quarantine thing group.
    #[pyo3(signature = (thing, group="quarantine"))]
    fn quarantine(&self, py: Python<'_>, thing: String, group: &str) -> PyResult<()> {
        let group = group.to_string();
        lock(py, &self.inner, move |e| {
            e.quarantine(&thing, &group)?;
            e.commit(None)
        })
        .map_err(fleet_error)
    }

    /// Takes a thing out of a quarantine thing group; returns the invalidations of profiles
    /// that no longer apply to it.
    #[pyo3(signature = (thing, group="quarantine"))]
    fn release(
        &self,
        py: Python<'_>,
        thing: String,
        group: &str,
    ) -> PyResult<Vec<PyViolationEvent>> {
        let group = group.to_string();
        committed(py, &self.inner, move |e| e.release(&thing, &group))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        lock(py, &self.inner, |e| {
            format!(
                "Fleet(store={:?}, profiles={}, things={})",
                e.store_path(),
                e.profiles().len(),
                e.things()
            )
        })
    }

    #[classmethod]
    fn _from_state(_cls: &Bound<'_, PyType>, state: &Bound<'_, PyAny>) -> PyResult<Self> {
        <Self as Pickle>::from_state(state.py(), state)
    }
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        pickle::reduce(slf)
    }
    fn __copy__(&self, py: Python<'_>) -> PyResult<Self> {
        pickle::copy(py, self)
    }
    fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> PyResult<Self> {
        pickle::copy(py, self)
    }
}

impl Pickle for PyFleet {
    /// `(store bytes, grace_ms, invalidate_after_ms, retention_ms, max_future_ms, strict,
    /// history, seed, (memory_budget, num_trees, sample_size, shingle_size,
    /// box_cache_min_mass), model_checkpoint_ms)`: a pickled fleet is an in-memory copy of
    /// the store (states without the last items, from before those settings, take the
    /// defaults).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let bytes = lock(py, &self.inner, |e| e.to_bytes()).map_err(fleet_error)?;
        let c = &self.config;
        Ok(PyTuple::new(
            py,
            [
                PyBytes::new(py, &bytes).into_any(),
                c.grace_ms.into_pyobject(py)?.into_any(),
                c.invalidate_after_ms.into_pyobject(py)?.into_any(),
                c.retention_ms.into_pyobject(py)?.into_any(),
                c.max_future_ms.into_pyobject(py)?.into_any(),
                pyo3::types::PyBool::new(py, c.strict).to_owned().into_any(),
                pyo3::types::PyBool::new(py, c.history)
                    .to_owned()
                    .into_any(),
                c.seed.into_pyobject(py)?.into_any(),
                (
                    c.memory_budget,
                    c.model.num_trees,
                    c.model.sample_size,
                    c.model.shingle_size,
                    c.model.box_cache_min_mass,
                )
                    .into_pyobject(py)?
                    .into_any(),
                c.model_checkpoint_ms.into_pyobject(py)?.into_any(),
            ],
        )?
        .into_any())
    }

    fn from_state(py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<Self> {
        #[allow(clippy::type_complexity)]
        let bad = || StateError::new_err("not a Fleet state");
        let items: Vec<Bound<'_, PyAny>> = state.extract().map_err(|_| bad())?;
        if !(8..=10).contains(&items.len()) {
            return Err(bad());
        }
        let head = PyTuple::new(py, &items[..8])?;
        let (bytes, grace, inval, retention, future, strict, history, seed): (
            Vec<u8>,
            i64,
            i64,
            i64,
            Option<i64>,
            bool,
            bool,
            u64,
        ) = head.extract().map_err(|_| bad())?;
        let model: Option<(Option<u64>, usize, usize, usize, usize)> = items
            .get(8)
            .map(|m| m.extract())
            .transpose()
            .map_err(|_| bad())?;
        let checkpoint: Option<i64> = items
            .get(9)
            .map(|m| m.extract())
            .transpose()
            .map_err(|_| bad())?;
        let mut c = EngineConfig::default();
        if let Some(ms) = checkpoint {
            c.model_checkpoint_ms = ms;
        }
        c.grace_ms = grace;
        c.invalidate_after_ms = inval;
        c.retention_ms = retention;
        c.max_future_ms = future;
        c.strict = strict;
        c.history = history;
        c.seed = seed;
        if let Some((budget, trees, samples, shingle, cache)) = model {
            c.memory_budget = budget;
            c.model.num_trees = trees;
            c.model.sample_size = samples;
            c.model.shingle_size = shingle;
            c.model.box_cache_min_mass = cache;
        }
        let cfg = c.clone();
        let engine = py
            .detach(move || Engine::from_bytes(cfg, &bytes))
            .map_err(fleet_error)?;
        Ok(Self {
            inner: Mutex::new(engine),
            config: c,
        })
    }
}
