//! `rcf.Detector` and `rcf.Verdict`.

use std::sync::Mutex;

use numpy::{IntoPyArray, PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};
use rcf_stream::{Detector, DetectorState, Margin, Normalization, Sensitivity, Tolerance, Verdict};

use crate::arrays::{Array2, Point1, batch, point};
use crate::digest::PyStateDigest;
use crate::errors::{ConfigError, DimensionError, PyRcfError};
use crate::pickle::{self, Pickle};
use crate::run::{self, Guarded};

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

fn normalization(name: &str) -> PyResult<Normalization> {
    match name {
        "normalize" => Ok(Normalization::Normalize),
        "none" => Ok(Normalization::None),
        "difference" => Ok(Normalization::Difference),
        "normalize_difference" => Ok(Normalization::NormalizeDifference),
        other => Err(ConfigError::new_err(format!(
            "invalid `normalization`: expected \"normalize\", \"none\", \"difference\" or \"normalize_difference\", got {other:?}"
        ))),
    }
}

/// `{"above": {"amount": a} | {"ratio": r}, "below": ...}` → [`Tolerance`].
fn tolerance(d: &Bound<'_, PyDict>) -> PyResult<Tolerance> {
    let bad =
        |what: String| ConfigError::new_err(format!("invalid `ignore_near_expected`: {what}"));
    let mut t = Tolerance::default();
    for (key, value) in d.iter() {
        let side: String = key.extract()?;
        let margin = value
            .cast::<PyDict>()
            .ok()
            .filter(|m| m.len() == 1)
            .ok_or_else(|| {
                bad(format!(
                    "{side:?} must be {{\"amount\": a}} or {{\"ratio\": r}}"
                ))
            })?;
        let (kind, v) = margin.iter().next().expect("one item");
        let (kind, v): (String, f64) = (kind.extract()?, v.extract()?);
        let m = match kind.as_str() {
            "amount" => Margin::Amount(v),
            "ratio" => Margin::Ratio(v),
            other => {
                return Err(bad(format!(
                    "expected \"amount\" or \"ratio\", got {other:?}"
                )));
            }
        };
        match side.as_str() {
            "above" => t.above = Some(m),
            "below" => t.below = Some(m),
            other => {
                return Err(bad(format!(
                    "expected \"above\" or \"below\", got {other:?}"
                )));
            }
        }
    }
    Ok(t)
}

/// A streaming detector for one stream of named metrics.
///
/// Args:
///     input_dims: number of metrics per point.
///     metric_names: their names (default "m0", "m1", ...). A pandas DataFrame given to
///         `process_many` or `bootstrap` has its columns matched to them by name.
///     shingle_size, num_trees, sample_size, time_decay, output_after, seed,
///         box_cache_min_mass: forest settings (None: the Rust crate's defaults).
///     sensitivity: "low", "medium" (default) or "high" (Device Defender's confidence levels:
///         more to fewer alarms), a z-factor, or {"rate": r} for a target anomaly rate.
///     normalization: "normalize" (default), "none", "difference" or "normalize_difference".
///     normalize_after: inputs that initialise the normaliser (default 10).
///     ignore_near_expected: {"above": {"amount": a} | {"ratio": r}, "below": ...}: a
///         candidate whose attributed metrics lie within the band around their expected values
///         is not reported (suppressed "near_expected").
///     holdoff: points after an event during which a new alarm must score 1.2 times as high
///         (default 100; it ends early after a quarter of it with no point above the
///         threshold; 0 turns it off).
///     repeat_tolerance: how closely a candidate must repeat a recent event's pattern to be
///         recognised and not reported (default 0.1; 0 reports every repeat).
///     p_values: keep the distribution of recent scores that `Verdict.p_value` is read from
///         (default True). False saves 8 KiB per detector (and in its state) for many small
///         detectors; p-values are then NaN and everything else is the same. A target anomaly
///         rate needs them.
///
/// Raises:
///     ConfigError: a parameter is out of range (also a ValueError).
#[pyclass(module = "rcf._rcf", name = "Detector", frozen)]
pub(crate) struct PyDetector {
    inner: Mutex<Detector>,
}

impl PyDetector {
    /// The rows of `x` as row-major values, and the metric names. A DataFrame (anything with `columns`) whose
    /// column names are the metric names is reordered to the detector's order; other names
    /// are an error, so a frame with its columns in another order is never read silently.
    fn rows(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<(Vec<f32>, Vec<String>)> {
        let names = self.with(py, |d| {
            d.metrics()
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
        });
        let x = match x.getattr("columns") {
            Ok(columns) => {
                let given: Vec<String> = columns
                    .try_iter()?
                    .map(|c| c.and_then(|c| c.str()).map(|s| s.to_string()))
                    .collect::<PyResult<_>>()?;
                if given == names {
                    x.clone()
                } else {
                    let mut sorted_given = given.clone();
                    let mut sorted_names = names.clone();
                    sorted_given.sort();
                    sorted_names.sort();
                    if sorted_given != sorted_names {
                        return Err(DimensionError::new_err(format!(
                            "the DataFrame's columns {given:?} are not the detector's metric_names {names:?}"
                        )));
                    }
                    x.get_item(PyList::new(py, &names)?)?
                }
            }
            _ => x.clone(),
        };
        let array: Array2<'_> = x.extract()?;
        let (values, _) = batch(&array, names.len())?;
        Ok((values, names))
    }
}

/// The verdict on one point (attributes mirror the Rust `Verdict`). Verdicts pickle, so a
/// worker pool can return them.
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
    /// {metric: deviation from the stream's running normal, in its normalised units (a
    /// z-score)} for points above the threshold or inside an event, else empty.
    deviations: Py<PyDict>,
    /// When the anomaly started: 0 now, -k k points ago.
    relative_index: i32,
    /// "warming" or "ready".
    state: String,
    /// Why a point above the threshold was not reported, if it was not: "near_expected",
    /// "holdoff" or "repeat".
    suppressed: Option<String>,
    /// Values of this point that were missing and imputed.
    imputed: usize,
    /// Whether this point lies inside an anomalous event (from its alarm until the stream
    /// conforms again to the model from before it).
    in_event: bool,
}

/// A verdict's pickled state: its attributes in declaration order, in two groups (the
/// numbers, then the rest), and the deviations last (states pickled before they existed have
/// two items and load with none).
type VerdictState = (VerdictNumbers, VerdictRest, Py<PyDict>);
/// The numbers of a verdict's state.
type VerdictNumbers = (f64, f64, bool, f64, f64, f64);
/// The rest of a verdict's state (before the deviations).
type VerdictRest = (
    Py<PyDict>,
    Py<PyDict>,
    i32,
    String,
    Option<String>,
    usize,
    bool,
);

impl Pickle for PyVerdict {
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s: VerdictState = (
            (
                self.score,
                self.grade,
                self.is_anomaly,
                self.confidence,
                self.threshold,
                self.p_value,
            ),
            (
                self.attribution.bind(py).copy()?.unbind(),
                self.expected.bind(py).copy()?.unbind(),
                self.relative_index,
                self.state.clone(),
                self.suppressed.clone(),
                self.imputed,
                self.in_event,
            ),
            self.deviations.bind(py).copy()?.unbind(),
        );
        s.into_pyobject(py).map(|t| t.into_any())
    }

    fn from_state(py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<Self> {
        let ((score, grade, is_anomaly, confidence, threshold, p_value), rest, deviations): VerdictState =
            match state.extract() {
                Ok(s) => s,
                Err(_) => {
                    let (numbers, rest): (VerdictNumbers, VerdictRest) = state.extract()?;
                    (numbers, rest, PyDict::new(py).unbind())
                }
            };
        let (attribution, expected, relative_index, state, suppressed, imputed, in_event) = rest;
        Ok(PyVerdict {
            score,
            grade,
            is_anomaly,
            confidence,
            threshold,
            p_value,
            attribution,
            expected,
            deviations,
            relative_index,
            state,
            suppressed,
            imputed,
            in_event,
        })
    }
}

#[pymethods]
impl PyVerdict {
    /// Rebuilds a verdict from its pickled state.
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

    /// Verdicts are equal when every attribute is (NaN equal to NaN).
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<PyVerdict>() else {
            return Ok(false);
        };
        let o = other.get();
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        Ok(same(self.score, o.score)
            && same(self.grade, o.grade)
            && self.is_anomaly == o.is_anomaly
            && same(self.confidence, o.confidence)
            && same(self.threshold, o.threshold)
            && same(self.p_value, o.p_value)
            && self.attribution.bind(py).eq(o.attribution.bind(py))?
            && self.expected.bind(py).eq(o.expected.bind(py))?
            && self.deviations.bind(py).eq(o.deviations.bind(py))?
            && self.relative_index == o.relative_index
            && self.state == o.state
            && self.suppressed == o.suppressed
            && self.imputed == o.imputed
            && self.in_event == o.in_event)
    }

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

fn to_py_verdict(
    py: Python<'_>,
    v: &Verdict,
    names: &[std::sync::Arc<str>],
) -> PyResult<PyVerdict> {
    let attribution = PyDict::new(py);
    for a in &v.attribution {
        attribution.set_item(&*a.metric, (a.high, a.low))?;
    }
    let expected = PyDict::new(py);
    for e in &v.expected {
        expected.set_item(&*e.metric, e.expected)?;
    }
    let deviations = PyDict::new(py);
    for (m, z) in names.iter().zip(&v.deviations) {
        deviations.set_item(&**m, *z)?;
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
        deviations: deviations.unbind(),
        relative_index: v.relative_index,
        state: match v.state {
            DetectorState::Ready => "ready".into(),
            _ => "warming".into(),
        },
        suppressed: v.suppressed.map(|s| s.as_str().to_string()),
        imputed: v.imputed,
        in_event: v.in_event,
    })
}

impl Pickle for PyDetector {
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let bytes = self.with(py, |d| d.to_bytes());
        Ok(PyBytes::new(py, &bytes).into_any())
    }

    fn from_state(py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<Self> {
        let bytes: Vec<u8> = state.extract()?;
        let d = py
            .detach(|| Detector::from_bytes(&bytes))
            .map_err(PyRcfError::from)?;
        Ok(Self {
            inner: Mutex::new(d),
        })
    }
}

impl run::Guarded for PyDetector {
    type Inner = Detector;

    fn lock(&self) -> &Mutex<Detector> {
        &self.inner
    }
}

#[pymethods]
impl PyDetector {
    #[new]
    #[pyo3(signature = (input_dims, *, metric_names=None, shingle_size=None, num_trees=None,
        sample_size=None, time_decay=None, output_after=None, sensitivity=None, holdoff=None,
        repeat_tolerance=None, normalization=None, normalize_after=None,
        ignore_near_expected=None, box_cache_min_mass=None, seed=None, p_values=true))]
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
        normalization: Option<&str>,
        normalize_after: Option<usize>,
        ignore_near_expected: Option<&Bound<'_, PyDict>>,
        box_cache_min_mass: Option<usize>,
        seed: Option<u64>,
        p_values: bool,
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
        if let Some(v) = normalization {
            b = b.normalization(self::normalization(v)?);
        }
        if let Some(v) = normalize_after {
            b = b.normalize_after(v);
        }
        if let Some(t) = ignore_near_expected {
            b = b.ignore_near_expected(tolerance(t)?);
        }
        if let Some(v) = box_cache_min_mass {
            b = b.box_cache_min_mass(v);
        }
        if let Some(v) = seed {
            b = b.seed(v);
        }
        let detector = b.p_values(p_values).build().map_err(PyRcfError::from)?;
        Ok(Self {
            inner: Mutex::new(detector),
        })
    }

    /// Processes one point (NaN marks a missing value) and returns its Verdict.
    fn process(&self, py: Python<'_>, x: Point1<'_>) -> PyResult<PyVerdict> {
        let x = point(&x)?;
        let (v, names) = self.run(py, |d| d.process(&x).map(|v| (v, d.metrics().to_vec())))?;
        to_py_verdict(py, &v, &names)
    }

    /// Processes every row of a 2-D array (or a DataFrame, columns matched by name) in order,
    /// all or nothing: a bad row anywhere raises and nothing is learned.
    ///
    /// Returns a dict of arrays: score, grade, is_anomaly, in_event, confidence, threshold,
    /// p_value, and attribution (n × metrics × 2: high, low; zero for points at or below the
    /// threshold). With `flat=True` every value is a 1-D column, the attribution as
    /// `attribution_<metric>_high` / `_low`, so `pandas.DataFrame(out)` takes it as it is.
    #[pyo3(signature = (x, *, flat=false))]
    fn process_many<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        flat: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (values, names) = self.rows(py, x)?;
        let m = names.len();
        let verdicts = self.run(py, |d| d.process_many(&values))?;
        let rows = verdicts.len();
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
        if flat {
            for (j, name) in names.iter().enumerate() {
                for (k, side) in ["high", "low"].into_iter().enumerate() {
                    let column: Vec<f64> = (0..rows)
                        .map(|i| attribution[(i * m + j) * 2 + k])
                        .collect();
                    out.set_item(
                        format!("attribution_{name}_{side}"),
                        column.into_pyarray(py),
                    )?;
                }
            }
        } else {
            let cube: Bound<'py, PyArray1<f64>> = attribution.into_pyarray(py);
            out.set_item("attribution", cube.reshape([rows, m, 2])?)?;
        }
        Ok(out)
    }

    /// Warms the detector from history (a 2-D array or a DataFrame, oldest row first) in one
    /// call, all or nothing.
    fn bootstrap(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let (values, _) = self.rows(py, x)?;
        self.run(py, |d| d.bootstrap(&values))
    }

    /// Changes the sensitivity ("low", "medium", "high", a z-factor, or {"rate": r}) and keeps
    /// everything learned; the new threshold applies from the next point.
    ///
    /// Raises:
    ///     ConfigError: an invalid sensitivity (the detector is unchanged).
    fn set_sensitivity(&self, py: Python<'_>, sensitivity: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = self::sensitivity(sensitivity)?;
        self.run(py, |d| d.set_sensitivity(s))
    }

    /// The metric names.
    #[getter]
    fn metric_names(&self, py: Python<'_>) -> Vec<String> {
        self.with(py, |d| d.metrics().iter().map(|m| m.to_string()).collect())
    }

    /// Points processed so far (including bootstrap history).
    #[getter]
    fn points_seen(&self, py: Python<'_>) -> u64 {
        self.with(py, |d| d.points_seen())
    }

    /// Points a fresh detector needs before its first verdict.
    #[getter]
    fn points_needed(&self, py: Python<'_>) -> u64 {
        self.with(py, |d| d.points_needed())
    }

    /// Points a fresh detector consumes in all, with complete data, until its verdicts are
    /// ready at `confidence` (the fleet engine counts ML verdicts from 0.5).
    #[pyo3(signature = (confidence=0.5))]
    fn points_to_confidence(&self, py: Python<'_>, confidence: f64) -> PyResult<u64> {
        if !(confidence > 0.0 && confidence < 1.0) {
            return Err(crate::errors::ConfigError::new_err(format!(
                "invalid `confidence`: must be between 0 and 1 (exclusive), got {confidence}"
            )));
        }
        Ok(self.with(py, |d| d.points_to_confidence(confidence)))
    }

    /// Bytes of memory the detector holds (its forest, an open event's reference model, the
    /// threshold's score distribution, buffers).
    #[getter]
    fn memory_usage(&self, py: Python<'_>) -> usize {
        self.with(py, |d| d.memory_usage())
    }

    /// Whether the detector keeps the score distribution that p-values are read from.
    #[getter]
    fn p_values(&self, py: Python<'_>) -> bool {
        self.with(py, |d| d.p_values())
    }

    /// The detector's versioned, checksummed checkpoint.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = self.with(py, |d| d.to_bytes());
        PyBytes::new(py, &bytes)
    }

    /// `to_bytes`, with a `StateDigest` that lets this process restore the checkpoint
    /// without checking its forests again: `(bytes, digest)`.
    fn to_bytes_with_digest<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, PyStateDigest) {
        let (bytes, digest) = self.with(py, |d| d.to_bytes_with_digest());
        (PyBytes::new(py, &bytes), PyStateDigest::detector(digest))
    }

    /// Restores a detector saved by `to_bytes`. With the `digest` that `to_bytes_with_digest`
    /// gave in this process, unchanged bytes skip the forests' structural checks.
    ///
    /// Raises:
    ///     StateError: the bytes are not a valid checkpoint.
    ///     TypeError: `digest` is a RandomCutForest's.
    #[classmethod]
    #[pyo3(signature = (data, digest=None))]
    fn from_bytes(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        data: &[u8],
        digest: Option<&PyStateDigest>,
    ) -> PyResult<Self> {
        let digest = digest.map(PyStateDigest::as_detector).transpose()?.copied();
        let data = data.to_vec();
        let d = py
            .detach(|| match digest {
                Some(digest) => Detector::from_bytes_with_digest(&data, &digest),
                None => Detector::from_bytes(&data),
            })
            .map_err(PyRcfError::from)?;
        Ok(Self {
            inner: Mutex::new(d),
        })
    }

    /// Rebuilds a detector from its pickled state (its checkpoint bytes).
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

    fn __repr__(&self, py: Python<'_>) -> String {
        self.with(py, |d| {
            let c = d.config();
            format!(
                "Detector(metric_names={:?}, shingle_size={}, num_trees={}, sample_size={}, sensitivity={:?}, points_seen={})",
                c.metrics, c.forest.shingle_size, c.forest.num_trees, c.forest.sample_size, c.sensitivity, d.points_seen()
            )
        })
    }
}
