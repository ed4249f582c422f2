//! `rcf.FleetShard` and `rcf.ShardResult`: the fleet engine's per-thing work of
//! `rcf_stream::fleet::Shard`, for stream processors that keep state per key (`rcf.spark`).

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use rcf_stream::fleet::{Datapoint, EngineConfig, Shard, ShardOutput};
use serde_json::Value;

use crate::errors::InputError;
use crate::fleet::{
    PyViolationEvent, counters_dict, datapoint, events, fleet_error, from_json, seconds_ms, to_json,
};

/// The fleet engine's work for one thing at a time, the thing's state passed in and out as
/// bytes: what a Spark or Flink job runs per key (see `rcf.spark`).
#[pyclass(name = "FleetShard", module = "rcf", frozen)]
pub(crate) struct PyFleetShard {
    inner: Mutex<Shard>,
    /// The configuration as JSON text and the settings, for pickling.
    setup: String,
    settings: Settings,
}

#[derive(Clone, Copy)]
struct Settings {
    grace_seconds: f64,
    max_future_seconds: Option<f64>,
    strict: bool,
    seed: u64,
    num_trees: Option<usize>,
    sample_size: Option<usize>,
    shingle_size: Option<usize>,
    verdicts: bool,
}

impl Settings {
    fn config(&self) -> PyResult<EngineConfig> {
        let mut c = EngineConfig::default();
        c.grace_ms = seconds_ms("grace_seconds", self.grace_seconds)?;
        c.max_future_ms = self
            .max_future_seconds
            .map(|s| seconds_ms("max_future_seconds", s))
            .transpose()?;
        c.strict = self.strict;
        c.seed = self.seed;
        if let Some(n) = self.num_trees {
            c.model.num_trees = n;
        }
        if let Some(n) = self.sample_size {
            c.model.sample_size = n;
        }
        if let Some(n) = self.shingle_size {
            c.model.shingle_size = n;
        }
        Ok(c)
    }
}

/// A batch as the shard takes it: JSON lines (any datapoint form the CLI reads), or dicts /
/// a DataFrame as `Fleet.ingest` takes them.
enum Batch {
    Lines(Vec<String>),
    Datapoints(Vec<Datapoint>),
}

fn batch(py: Python<'_>, datapoints: &Bound<'_, PyAny>) -> PyResult<Batch> {
    if datapoints.hasattr("columns")? || datapoints.cast::<PyDict>().is_ok() {
        return Ok(Batch::Datapoints(crate::fleet::records(py, datapoints)?));
    }
    if datapoints.cast::<PyString>().is_ok() {
        return Err(InputError::new_err(
            "`datapoints` must be a list of JSON lines or dicts, got one str (wrap it in a list)",
        ));
    }
    let mut lines = Vec::new();
    let mut dps = Vec::new();
    for (i, item) in datapoints.try_iter()?.enumerate() {
        let item = item?;
        if let Ok(s) = item.cast::<PyString>() {
            lines.push(s.to_str()?.to_string());
        } else {
            dps.push(datapoint(py, &item, &format!("datapoints[{i}]"))?);
        }
        if !lines.is_empty() && !dps.is_empty() {
            return Err(InputError::new_err(format!(
                "datapoints[{i}]: a batch is JSON lines or dicts, not both"
            )));
        }
    }
    Ok(if dps.is_empty() {
        Batch::Lines(lines)
    } else {
        Batch::Datapoints(dps)
    })
}

#[pymethods]
impl PyFleetShard {
    #[new]
    #[pyo3(signature = (profile, *, grace_seconds=60.0, max_future_seconds=86400.0, strict=false,
        seed=0, num_trees=None, sample_size=None, shingle_size=None, verdicts=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        profile: &Bound<'_, PyAny>,
        grace_seconds: f64,
        max_future_seconds: Option<f64>,
        strict: bool,
        seed: u64,
        num_trees: Option<usize>,
        sample_size: Option<usize>,
        shingle_size: Option<usize>,
        verdicts: bool,
    ) -> PyResult<Self> {
        let settings = Settings {
            grace_seconds,
            max_future_seconds,
            strict,
            seed,
            num_trees,
            sample_size,
            shingle_size,
            verdicts,
        };
        let setup: Value = to_json(py, profile)?;
        let config = settings.config()?;
        let text = setup.to_string();
        let mut shard = py
            .detach(move || Shard::new(config, &setup))
            .map_err(fleet_error)?;
        shard.set_verdicts(verdicts);
        Ok(Self {
            inner: Mutex::new(shard),
            setup: text,
            settings,
        })
    }

    /// Runs one thing's batch (JSON lines, dicts or a DataFrame) from its `state` (`None`
    /// for a new thing), in timestamp order; returns a `ShardResult` with the events and the
    /// new state. Everything is checked before anything is applied; with `skip_invalid` a
    /// line that does not parse, or a datapoint the engine refuses (another thing's, a value
    /// that does not fit its metric), is listed in `rejected` and the rest go on; else it
    /// raises InputError naming it (a dict missing a key always raises). Bad state bytes
    /// raise StateError (keep the old state).
    #[pyo3(signature = (thing, state, datapoints, *, skip_invalid=false))]
    fn process(
        &self,
        py: Python<'_>,
        thing: String,
        state: Option<Vec<u8>>,
        datapoints: &Bound<'_, PyAny>,
        skip_invalid: bool,
    ) -> PyResult<PyShardResult> {
        let b = batch(py, datapoints)?;
        let out = crate::run::locked(py, &self.inner, move |s| match b {
            Batch::Lines(lines) => s.process_lines(&thing, state.as_deref(), &lines, skip_invalid),
            Batch::Datapoints(dps) if skip_invalid => {
                s.process_valid(&thing, state.as_deref(), dps)
            }
            Batch::Datapoints(dps) => s.process(&thing, state.as_deref(), dps),
        })
        .map_err(fleet_error)?;
        PyShardResult::new(py, out)
    }

    fn __repr__(&self) -> String {
        format!(
            "FleetShard(profiles={}, verdicts={})",
            self.inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .profiles()
                .len(),
            self.settings.verdicts
        )
    }

    /// Pickles as its configuration and settings (a shard holds no things):
    /// `functools.partial(FleetShard, **settings)` called with the configuration's JSON.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let s = me.settings;
        let kwargs = PyDict::new(py);
        kwargs.set_item("grace_seconds", s.grace_seconds)?;
        kwargs.set_item("max_future_seconds", s.max_future_seconds)?;
        kwargs.set_item("strict", s.strict)?;
        kwargs.set_item("seed", s.seed)?;
        kwargs.set_item("num_trees", s.num_trees)?;
        kwargs.set_item("sample_size", s.sample_size)?;
        kwargs.set_item("shingle_size", s.shingle_size)?;
        kwargs.set_item("verdicts", s.verdicts)?;
        let make = py
            .import("functools")?
            .getattr("partial")?
            .call((slf.get_type(),), Some(&kwargs))?;
        let args = PyTuple::new(py, [PyString::new(py, &me.setup)])?;
        PyTuple::new(py, [make, args.into_any()])
    }
}

/// What one `FleetShard.process` call did.
#[pyclass(name = "ShardResult", module = "rcf", frozen)]
pub(crate) struct PyShardResult {
    /// The violation events, in the order raised.
    #[pyo3(get)]
    events: Py<PyList>,
    /// The thing's new state (store it with the key).
    #[pyo3(get)]
    state: Py<PyBytes>,
    /// `(position, reason)` of each datapoint refused with `skip_invalid`.
    #[pyo3(get)]
    rejected: Py<PyList>,
    /// Every observation when the shard was made with `verdicts=True`: dicts with profile,
    /// behavior, time (epoch seconds), value, violating, score, grade, in_alarm.
    #[pyo3(get)]
    verdicts: Py<PyList>,
    /// What the call counted: datapoints, late, unmonitored, windows, in_alarm, cleared,
    /// invalidated.
    #[pyo3(get)]
    counters: Py<PyDict>,
}

impl PyShardResult {
    fn new(py: Python<'_>, out: ShardOutput) -> PyResult<Self> {
        let evs: Vec<PyViolationEvent> = events(out.events);
        let verdicts = PyList::empty(py);
        for v in &out.verdicts {
            let d = PyDict::new(py);
            d.set_item("profile", &*v.profile_name)?;
            d.set_item("behavior", &*v.behavior_name)?;
            d.set_item("time", v.time as f64 / 1000.0)?;
            match &v.value {
                Some(x) => d.set_item("value", from_json(py, &x.to_json())?)?,
                None => d.set_item("value", py.None())?,
            }
            d.set_item("violating", v.violating)?;
            d.set_item("score", v.score)?;
            d.set_item("grade", v.grade)?;
            d.set_item("in_alarm", v.in_alarm)?;
            verdicts.append(d)?;
        }
        Ok(Self {
            events: PyList::new(py, evs)?.unbind(),
            state: PyBytes::new(py, &out.state).unbind(),
            rejected: PyList::new(py, out.rejected)?.unbind(),
            verdicts: verdicts.unbind(),
            counters: counters_dict(py, &out.counters)?.unbind(),
        })
    }
}

#[pymethods]
impl PyShardResult {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "ShardResult(events={}, state={} bytes, rejected={})",
            self.events.bind(py).len(),
            self.state.bind(py).as_bytes().len(),
            self.rejected.bind(py).len()
        )
    }
}
