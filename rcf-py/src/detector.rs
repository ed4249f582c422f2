//! `rcf.Detector` and `rcf.Verdict`.

use std::sync::Mutex;

use numpy::{IntoPyArray, PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};
use rcf_stream::{Detector, DetectorState, Sensitivity, Verdict};

use crate::arrays::{Array1, Array2, batch, check_width, point};
use crate::errors::{ConfigError, PyRcfError};

fn sensitivity(s: &Bound<'_, PyAny>) -> PyResult<Sensitivity> {
    if let Ok(name) = s.extract::<String>() {
        return match name.to_ascii_lowercase().as_str() {
            "low" => Ok(Sensitivity::Low),
            "medium" => Ok(Sensitivity::Medium),
            "high" => Ok(Sensitivity::High),
            other => Err(ConfigError::new_err(format!(
                "invalid `sensitivity`: expected \"low\", \"medium\", \"high\", a z-factor (float) or {{\"rate\": r}}, got {other:?}"
            ))),
        };
    }
    if let Ok(z) = s.extract::<f64>() {
        return Ok(Sensitivity::ZFactor(z));
    }
    if let Ok(d) = s.cast::<PyDict>()
        && let Some(rate) = d.get_item("rate")?
    {
        return Ok(Sensitivity::AnomalyRate(rate.extract()?));
    }
    Err(ConfigError::new_err(
        "invalid `sensitivity`: expected a level name, a z-factor or {\"rate\": r}",
    ))
}

/// A streaming detector for one stream of named metrics.
///
/// Args:
///     input_dims: number of metrics per point.
///     metric_names: their names (default "m0", "m1", ...).
///     shingle_size, num_trees, sample_size, time_decay, output_after, seed: forest settings.
///     sensitivity: "low", "medium" (default) or "high" (Device Defender's confidence levels:
///         more to fewer alarms), a z-factor, or {"rate": r} for a target anomaly rate.
///     holdoff: points after an event during which a new alarm must score 1.2 times as high
///         (default 100; it ends early after a quarter of it with no point above the
///         threshold; 0 turns it off).
///     repeat_tolerance: how closely a candidate must repeat a recent event's pattern to be
///         recognised and not reported (default 0.1; 0 reports every repeat).
///
/// Raises:
///     ConfigError: a parameter is out of range (also a ValueError).
#[pyclass(module = "rcf._rcf", name = "Detector", frozen)]
pub(crate) struct PyDetector {
    inner: Mutex<Detector>,
}

impl PyDetector {
    fn with<T>(&self, f: impl FnOnce(&mut Detector) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// The verdict on one point (attributes mirror the Rust `Verdict`).
#[pyclass(module = "rcf._rcf", name = "Verdict", frozen, get_all)]
pub(crate) struct PyVerdict {
    /// The forest's score.
    score: f64,
    /// How anomalous, in [0, 1].
    grade: f64,
    /// Whether this point is reported as an anomaly.
    is_anomaly: bool,
    /// Trust in the verdict, in [0, 1].
    confidence: f64,
    /// The threshold the score was compared with.
    threshold: f64,
    /// Tail probability of the score among recent scores.
    p_value: f64,
    /// {metric: (high, low)} for points above the threshold, else empty.
    attribution: Py<PyDict>,
    /// {metric: expected value} for the attributed metrics.
    expected: Py<PyDict>,
    /// When the anomaly started: 0 now, -k k points ago.
    relative_index: i32,
    /// "warming" or "ready".
    state: String,
    /// Why a point above the threshold was not reported, if it was not.
    suppressed: Option<String>,
    /// Values of this point that were missing and imputed.
    imputed: usize,
    /// Whether this point lies inside an anomalous event (from its alarm until the stream
    /// conforms again to the model from before it).
    in_event: bool,
}

#[pymethods]
impl PyVerdict {
    fn __repr__(&self) -> String {
        format!(
            "Verdict(score={:.4}, grade={:.3}, is_anomaly={}, confidence={:.3}, threshold={:.4}, state={:?})",
            self.score,
            self.grade,
            if self.is_anomaly { "True" } else { "False" },
            self.confidence,
            self.threshold,
            self.state
        )
    }
}

fn to_py_verdict(py: Python<'_>, v: &Verdict) -> PyResult<PyVerdict> {
    let attribution = PyDict::new(py);
    for a in &v.attribution {
        attribution.set_item(&*a.metric, (a.high, a.low))?;
    }
    let expected = PyDict::new(py);
    for e in &v.expected {
        expected.set_item(&*e.metric, e.expected)?;
    }
    Ok(PyVerdict {
        score: v.score,
        grade: v.grade,
        is_anomaly: v.is_anomaly,
        confidence: v.confidence,
        threshold: v.threshold,
        p_value: v.p_value,
        attribution: attribution.unbind(),
        expected: expected.unbind(),
        relative_index: v.relative_index,
        state: match v.state {
            DetectorState::Ready => "ready".into(),
            _ => "warming".into(),
        },
        suppressed: v.suppressed.map(|s| format!("{s:?}")),
        imputed: v.imputed,
        in_event: v.in_event,
    })
}

#[pymethods]
impl PyDetector {
    #[new]
    #[pyo3(signature = (input_dims, *, metric_names=None, shingle_size=None, num_trees=None,
        sample_size=None, time_decay=None, output_after=None, sensitivity=None, holdoff=None,
        repeat_tolerance=None, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        input_dims: usize,
        metric_names: Option<Vec<String>>,
        shingle_size: Option<usize>,
        num_trees: Option<usize>,
        sample_size: Option<usize>,
        time_decay: Option<f64>,
        output_after: Option<usize>,
        sensitivity: Option<&Bound<'_, PyAny>>,
        holdoff: Option<usize>,
        repeat_tolerance: Option<f64>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let names =
            metric_names.unwrap_or_else(|| (0..input_dims).map(|i| format!("m{i}")).collect());
        if names.len() != input_dims {
            return Err(ConfigError::new_err(format!(
                "invalid `metric_names`: {} names for input_dims={input_dims}",
                names.len()
            )));
        }
        let mut b = Detector::builder(names);
        if let Some(v) = shingle_size {
            b = b.shingle_size(v);
        }
        if let Some(v) = num_trees {
            b = b.num_trees(v);
        }
        if let Some(v) = sample_size {
            b = b.sample_size(v);
        }
        if let Some(v) = time_decay {
            b = b.time_decay(v);
        }
        if let Some(v) = output_after {
            b = b.output_after(v);
        }
        if let Some(s) = sensitivity {
            b = b.sensitivity(self::sensitivity(s)?);
        }
        if let Some(v) = holdoff {
            b = b.holdoff(v);
        }
        if let Some(v) = repeat_tolerance {
            b = b.repeat_tolerance(v);
        }
        if let Some(v) = seed {
            b = b.seed(v);
        }
        let detector = b.build().map_err(PyRcfError::from)?;
        Ok(Self {
            inner: Mutex::new(detector),
        })
    }

    /// Processes one point (NaN marks a missing value) and returns its Verdict.
    fn process(&self, py: Python<'_>, x: Array1<'_>) -> PyResult<PyVerdict> {
        let x = point(&x)?;
        let v = py
            .detach(|| self.with(|d| d.process(&x)))
            .map_err(PyRcfError::from)?;
        to_py_verdict(py, &v)
    }

    /// Processes every row of a 2-D array in order; returns a dict of arrays: score, grade,
    /// is_anomaly, in_event, confidence, threshold, p_value, and attribution (n × metrics × 2: high, low;
    /// zero for points at or below the threshold).
    fn process_many<'py>(&self, py: Python<'py>, x: Array2<'_>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.with(|d| d.metrics().len());
        let (values, rows, cols) = batch(&x)?;
        check_width(cols, m)?;
        // all or nothing: a bad row anywhere leaves the detector as it was
        let verdicts = py
            .detach(|| self.with(|d| d.process_many(&values)))
            .map_err(PyRcfError::from)?;
        let col = |f: &dyn Fn(&Verdict) -> f64| verdicts.iter().map(f).collect::<Vec<f64>>();
        let out = PyDict::new(py);
        out.set_item("score", col(&|v| v.score).into_pyarray(py))?;
        out.set_item("grade", col(&|v| v.grade).into_pyarray(py))?;
        out.set_item("confidence", col(&|v| v.confidence).into_pyarray(py))?;
        out.set_item("threshold", col(&|v| v.threshold).into_pyarray(py))?;
        out.set_item("p_value", col(&|v| v.p_value).into_pyarray(py))?;
        for (name, flag) in [
            (
                "is_anomaly",
                (|v: &Verdict| v.is_anomaly) as fn(&Verdict) -> bool,
            ),
            ("in_event", |v: &Verdict| v.in_event),
        ] {
            let flags: Vec<bool> = verdicts.iter().map(flag).collect();
            out.set_item(name, flags.into_pyarray(py))?;
        }
        let mut attribution = vec![0.0f64; rows * m * 2];
        for (i, v) in verdicts.iter().enumerate() {
            for (j, a) in v.attribution.iter().enumerate() {
                attribution[(i * m + j) * 2] = a.high;
                attribution[(i * m + j) * 2 + 1] = a.low;
            }
        }
        let flat: Bound<'py, PyArray1<f64>> = attribution.into_pyarray(py);
        out.set_item("attribution", flat.reshape([rows, m, 2])?)?;
        Ok(out)
    }

    /// Warms the detector from history (a 2-D array, oldest row first) in one call.
    fn bootstrap(&self, py: Python<'_>, x: Array2<'_>) -> PyResult<()> {
        let m = self.with(|d| d.metrics().len());
        let (values, _, cols) = batch(&x)?;
        check_width(cols, m)?;
        py.detach(|| self.with(|d| d.bootstrap(&values)))
            .map_err(|e| PyRcfError::from(e).into())
    }

    /// The metric names.
    #[getter]
    fn metric_names(&self) -> Vec<String> {
        self.with(|d| d.metrics().iter().map(|m| m.to_string()).collect())
    }

    /// Points processed so far (including bootstrap history).
    #[getter]
    fn points_seen(&self) -> u64 {
        self.with(|d| d.points_seen())
    }

    /// Points a fresh detector needs before its first verdict.
    #[getter]
    fn points_needed(&self) -> u64 {
        self.with(|d| d.points_needed())
    }

    /// The detector's versioned, checksummed checkpoint.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = py.detach(|| self.with(|d| d.to_bytes()));
        PyBytes::new(py, &bytes)
    }

    /// Restores a detector saved by `to_bytes`.
    ///
    /// Raises:
    ///     StateError: the bytes are not a valid checkpoint.
    #[classmethod]
    fn from_bytes(_cls: &Bound<'_, PyType>, py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let data = data.to_vec();
        let d = py
            .detach(|| Detector::from_bytes(&data))
            .map_err(PyRcfError::from)?;
        Ok(Self {
            inner: Mutex::new(d),
        })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        let state = slf.get().to_bytes(py);
        PyTuple::new(py, [from_bytes, PyTuple::new(py, [state])?.into_any()])
    }

    fn __copy__(&self) -> Self {
        Self {
            inner: Mutex::new(self.with(|d| d.clone())),
        }
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Self {
        self.__copy__()
    }

    fn __repr__(&self) -> String {
        self.with(|d| {
            let c = d.config();
            format!(
                "Detector(metric_names={:?}, shingle_size={}, num_trees={}, sample_size={}, sensitivity={:?}, points_seen={})",
                c.metrics, c.shingle_size, c.num_trees, c.sample_size, c.sensitivity, d.points_seen()
            )
        })
    }
}
