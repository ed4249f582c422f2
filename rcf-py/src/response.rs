//! Python callables as the fleet's alert sinks and mitigation executors.
//!
//! The engine calls them from its delivery pump with the interpreter re-acquired; an
//! exception is a failed delivery (the batch stays in the outbox and is retried after a
//! back-off) or a failed action (the task records its message). A callable must not call
//! back into the same `rcf.Fleet` (its lock is held while it runs).

use pyo3::prelude::*;
use rcf_stream::fleet::{Executor, MitigationAction, Sink};
use serde_json::Value;

/// JSON as a Python object, via `json.loads`.
fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}

/// An exception as a one-line message: `TypeName: text`.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let name = e
        .get_type(py)
        .name()
        .map_or_else(|_| "Exception".to_string(), |n| n.to_string());
    format!("{name}: {}", e.value(py))
}

/// A callable `f(batch: list[dict]) -> None` as a sink.
pub(crate) struct CallbackSink(pub(crate) Py<PyAny>);

impl Sink for CallbackSink {
    fn deliver(&mut self, batch: &[Value]) -> Result<(), String> {
        Python::attach(|py| {
            let list = to_py(py, &Value::Array(batch.to_vec())).map_err(|e| describe(py, &e))?;
            self.0
                .call1(py, (list,))
                .map(|_| ())
                .map_err(|e| describe(py, &e))
        })
    }
}

/// A callable `f(action: dict, violation: dict) -> None` as a mitigation executor.
pub(crate) struct CallbackExecutor(pub(crate) Py<PyAny>);

impl Executor for CallbackExecutor {
    fn execute(&mut self, action: &MitigationAction, violation: &Value) -> Result<(), String> {
        Python::attach(|py| {
            let a = to_py(py, &action.to_json()).map_err(|e| describe(py, &e))?;
            let v = to_py(py, violation).map_err(|e| describe(py, &e))?;
            self.0
                .call1(py, (a, v))
                .map(|_| ())
                .map_err(|e| describe(py, &e))
        })
    }
}
