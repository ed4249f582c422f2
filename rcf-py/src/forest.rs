//! `rcf.RandomCutForest`.

use std::sync::Mutex;

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use rcf_core::RandomCutForest;

use crate::arrays::{Array2, Point1, batch, check_finite, point};
use crate::digest::PyStateDigest;
use crate::errors::{ConfigError, NotFittedError, PyRcfError};
use crate::pickle::{self, Pickle};
use crate::run::{self, Guarded};

/// `(high, low)` attribution arrays.
type HighLow<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// A Random Cut Forest over a stream of points.
///
/// Args:
///     input_dims: values per point given to `update`/`score`.
///     shingle_size: internal shingling; the forest works on the last `shingle_size` inputs.
///     num_trees, sample_size, time_decay, output_after, initial_accept_fraction,
///     box_cache_min_mass, seed: as in the Rust crate `rcf-core` (None: its default).
///
/// Raises:
///     ConfigError: a parameter is out of range (also a ValueError).
#[pyclass(module = "rcf._rcf", name = "RandomCutForest", frozen)]
pub(crate) struct PyRandomCutForest {
    inner: Mutex<RandomCutForest>,
    /// The anomaly-score threshold set by `fit` (scikit-learn surface).
    threshold: Mutex<Option<f64>>,
}

impl PyRandomCutForest {
    fn wrap(forest: RandomCutForest) -> Self {
        Self {
            inner: Mutex::new(forest),
            threshold: Mutex::new(None),
        }
    }

    fn fitted_threshold(&self) -> PyResult<f64> {
        self.threshold
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| {
                NotFittedError::new_err("this RandomCutForest is not fitted: call fit(X) first")
            })
    }

    /// Anomaly scores of the rows of `x` (inputs, `input_dims` each): with shingling, row `i`
    /// is scored as the window of the `shingle_size` rows ending at it; the first
    /// `shingle_size − 1` rows have no window and score NaN.
    fn row_scores(&self, py: Python<'_>, x: &Array2<'_>) -> PyResult<Vec<f64>> {
        let (dims, k) = self.with(py, |f| (f.input_dims(), f.config().shingle_size));
        let (values, rows) = batch(x, dims)?;
        check_finite(&values, dims)?;
        if rows < k {
            return Ok(vec![f64::NAN; rows]);
        }
        let mut points = Vec::with_capacity((rows - k + 1) * dims * k);
        for end in k - 1..rows {
            points.extend_from_slice(&values[(end + 1 - k) * dims..(end + 1) * dims]);
        }
        let scores = self.run(py, |f| f.score_many(&points))?;
        let mut out = vec![f64::NAN; k - 1];
        out.extend(scores);
        Ok(out)
    }
}

impl Pickle for PyRandomCutForest {
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let bytes = self.with(py, |f| f.to_bytes());
        (PyBytes::new(py, &bytes), self.threshold_())
            .into_pyobject(py)
            .map(|t| t.into_any())
    }

    fn from_state(py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (bytes, threshold): (Vec<u8>, Option<f64>) = state.extract()?;
        let forest = py
            .detach(|| RandomCutForest::from_bytes(&bytes))
            .map_err(PyRcfError::from)?;
        let this = Self::wrap(forest);
        *this.threshold.lock().unwrap_or_else(|p| p.into_inner()) = threshold;
        Ok(this)
    }
}

impl run::Guarded for PyRandomCutForest {
    type Inner = RandomCutForest;

    fn lock(&self) -> &Mutex<RandomCutForest> {
        &self.inner
    }
}

#[pymethods]
impl PyRandomCutForest {
    #[new]
    #[pyo3(signature = (input_dims, *, shingle_size=1, num_trees=None, sample_size=None,
        time_decay=None, output_after=None, initial_accept_fraction=None,
        box_cache_min_mass=None, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        input_dims: usize,
        shingle_size: usize,
        num_trees: Option<usize>,
        sample_size: Option<usize>,
        time_decay: Option<f64>,
        output_after: Option<usize>,
        initial_accept_fraction: Option<f64>,
        box_cache_min_mass: Option<usize>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let mut b = RandomCutForest::builder(input_dims).shingle_size(shingle_size);
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
        if let Some(v) = initial_accept_fraction {
            b = b.initial_accept_fraction(v);
        }
        if let Some(v) = box_cache_min_mass {
            b = b.box_cache_min_mass(v);
        }
        if let Some(v) = seed {
            b = b.seed(v);
        }
        let forest = b.build().map_err(PyRcfError::from)?;
        Ok(Self::wrap(forest))
    }

    /// Adds one point (`input_dims` values). Right after `score(x)` of the same point (on
    /// the same thread) it inserts along that score's walk: the same forest as `update`
    /// alone, at about `process`'s cost.
    fn update(&self, py: Python<'_>, x: Point1<'_>) -> PyResult<()> {
        let x = point(&x)?;
        self.run(py, |f| f.update(&x))
    }

    /// Scores one point without learning it (higher = more anomalous; about 1 is typical).
    fn score(&self, py: Python<'_>, x: Point1<'_>) -> PyResult<f64> {
        let x = point(&x)?;
        self.run(py, |f| f.score(&x))
    }

    /// Scores one point, then learns it (the streaming fast path).
    fn process(&self, py: Python<'_>, x: Point1<'_>) -> PyResult<f64> {
        let x = point(&x)?;
        self.run(py, |f| f.process(&x))
    }

    /// Per-dimension attribution of the score: `(high, low)` arrays that sum to the score.
    fn attribution<'py>(&self, py: Python<'py>, x: Point1<'_>) -> PyResult<HighLow<'py>> {
        let x = point(&x)?;
        let a = self.run(py, |f| f.attribution(&x))?;
        Ok((
            a.highs().to_vec().into_pyarray(py),
            a.lows().to_vec().into_pyarray(py),
        ))
    }

    /// Fills the NaN values of one point from the forest; returns the completed point.
    fn impute<'py>(&self, py: Python<'py>, x: Point1<'_>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let x = point(&x)?;
        let out = self.run(py, |f| f.impute(&x))?;
        Ok(out.into_pyarray(py))
    }

    /// Learns every row of a 2-D array (n × input_dims), in order.
    fn update_many(&self, py: Python<'_>, x: Array2<'_>) -> PyResult<()> {
        let dims = self.with(py, |f| f.input_dims());
        let (values, _) = batch(&x, dims)?;
        check_finite(&values, dims)?;
        self.run(py, |f| f.update_many(&values))
    }

    /// Scores every row of a 2-D array of full forest points (n × dimensions) against the
    /// forest as it is, on all cores; returns a float64 array.
    fn score_many<'py>(
        &self,
        py: Python<'py>,
        x: Array2<'_>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let dims = self.with(py, |f| f.dimensions());
        let (values, _) = batch(&x, dims)?;
        let scores = self.run(py, |f| f.score_many(&values))?;
        Ok(scores.into_pyarray(py))
    }

    /// Scores then learns every row of a 2-D array (n × input_dims), in order; returns the
    /// scores.
    fn process_many<'py>(
        &self,
        py: Python<'py>,
        x: Array2<'_>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let dims = self.with(py, |f| f.input_dims());
        let (values, _) = batch(&x, dims)?;
        check_finite(&values, dims)?;
        let scores = self.run(py, |f| f.process_many(&values))?;
        Ok(scores.into_pyarray(py))
    }

    /// Inputs learned so far.
    #[getter]
    fn entries_seen(&self, py: Python<'_>) -> u64 {
        self.with(py, |f| f.entries_seen())
    }

    /// Whether scores are produced yet.
    #[getter]
    fn is_ready(&self, py: Python<'_>) -> bool {
        self.with(py, |f| f.is_ready())
    }

    /// Values per `update`/`score` call.
    #[getter]
    fn input_dims(&self, py: Python<'_>) -> usize {
        self.with(py, |f| f.input_dims())
    }

    /// Dimension of the forest's points (`input_dims * shingle_size`).
    #[getter]
    fn dimensions(&self, py: Python<'_>) -> usize {
        self.with(py, |f| f.dimensions())
    }

    /// Bytes of memory the forest holds.
    #[getter]
    fn memory_usage(&self, py: Python<'_>) -> usize {
        self.with(py, |f| f.memory_usage())
    }

    /// The forest's versioned, checksummed state.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = self.with(py, |f| f.to_bytes());
        PyBytes::new(py, &bytes)
    }

    /// `to_bytes`, with a `StateDigest` that lets this process restore the bytes without
    /// checking them again: `(bytes, digest)`.
    fn to_bytes_with_digest<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, PyStateDigest) {
        let (bytes, digest) = self.with(py, |f| f.to_bytes_with_digest());
        (PyBytes::new(py, &bytes), PyStateDigest::forest(digest))
    }

    /// Restores a forest saved by `to_bytes`. With the `digest` that `to_bytes_with_digest`
    /// gave in this process, unchanged bytes skip the structural checks.
    ///
    /// Raises:
    ///     StateError: the bytes are not a valid forest state.
    ///     TypeError: `digest` is a Detector's.
    #[classmethod]
    #[pyo3(signature = (data, digest=None))]
    fn from_bytes(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        data: &[u8],
        digest: Option<&PyStateDigest>,
    ) -> PyResult<Self> {
        let digest = digest.map(PyStateDigest::as_forest).transpose()?.copied();
        let data = data.to_vec();
        let forest = py
            .detach(|| match digest {
                Some(d) => RandomCutForest::from_bytes_with_digest(&data, &d),
                None => RandomCutForest::from_bytes(&data),
            })
            .map_err(PyRcfError::from)?;
        Ok(Self::wrap(forest))
    }

    /// Rebuilds a forest from its pickled state (`(forest bytes, threshold_)`).
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

    /// scikit-learn style: learns every row of `X` (n × input_dims), then sets the anomaly
    /// threshold at the `1 − contamination` quantile of the training rows' scores (like
    /// BigQuery ML's `contamination`). Returns the forest.
    ///
    /// Raises:
    ///     ConfigError: contamination is not in (0, 0.5).
    #[pyo3(signature = (x, *, contamination=0.01))]
    fn fit<'py>(
        slf: &Bound<'py, Self>,
        x: Array2<'_>,
        contamination: f64,
    ) -> PyResult<Bound<'py, Self>> {
        if !(contamination > 0.0 && contamination < 0.5) {
            return Err(ConfigError::new_err(format!(
                "invalid `contamination`: must be in (0, 0.5), got {contamination}"
            )));
        }
        let py = slf.py();
        let this = slf.get();
        let dims = this.with(py, |f| f.input_dims());
        let (values, _) = batch(&x, dims)?;
        check_finite(&values, dims)?;
        this.run(py, |f| f.update_many(&values))?;
        let mut scores: Vec<f64> = this
            .row_scores(py, &x)?
            .into_iter()
            .filter(|s| !s.is_nan())
            .collect();
        let threshold = if scores.is_empty() {
            f64::INFINITY
        } else {
            scores.sort_by(f64::total_cmp);
            let i = (((1.0 - contamination) * scores.len() as f64).ceil() as usize)
                .clamp(1, scores.len())
                - 1;
            scores[i]
        };
        *this.threshold.lock().unwrap_or_else(|p| p.into_inner()) = Some(threshold);
        Ok(slf.clone())
    }

    /// scikit-learn style: the opposite of the anomaly score of each row (higher = more
    /// normal), float64; NaN for the first `shingle_size − 1` rows.
    fn score_samples<'py>(
        &self,
        py: Python<'py>,
        x: Array2<'_>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let scores = self.row_scores(py, &x)?;
        Ok(scores
            .into_iter()
            .map(|s| -s)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    /// scikit-learn style: `score_samples(X)` shifted so that negative means an outlier (its
    /// anomaly score is above the threshold `fit` set).
    ///
    /// Raises:
    ///     NotFittedError: `fit` was not called.
    fn decision_function<'py>(
        &self,
        py: Python<'py>,
        x: Array2<'_>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let threshold = self.fitted_threshold()?;
        let scores = self.row_scores(py, &x)?;
        Ok(scores
            .into_iter()
            .map(|s| threshold - s)
            .collect::<Vec<_>>()
            .into_pyarray(py))
    }

    /// scikit-learn style: −1 for outliers, +1 for inliers (and for rows without a full
    /// shingle), int64.
    ///
    /// Raises:
    ///     NotFittedError: `fit` was not called.
    fn predict<'py>(&self, py: Python<'py>, x: Array2<'_>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let threshold = self.fitted_threshold()?;
        let scores = self.row_scores(py, &x)?;
        Ok(scores
            .into_iter()
            .map(|s| if s > threshold { -1 } else { 1 })
            .collect::<Vec<i64>>()
            .into_pyarray(py))
    }

    /// The anomaly-score threshold `fit` set, or None.
    #[getter]
    fn threshold_(&self) -> Option<f64> {
        *self.threshold.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> PyResult<Self> {
        pickle::copy(py, self)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        self.with(py, |f| {
            let c = f.config();
            format!(
                "RandomCutForest(input_dims={}, shingle_size={}, num_trees={}, sample_size={}, \
                 time_decay={}, seed={}, entries_seen={})",
                c.input_dims,
                c.shingle_size,
                c.num_trees,
                c.sample_size,
                c.time_decay,
                c.seed,
                f.entries_seen()
            )
        })
    }
}
