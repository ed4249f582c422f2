//! Data for rcf's tests and benchmarks: seeded synthetic workloads and loaders for the
//! reference data sets, which live outside the repository.
//!
//! External data is found through [`data_root`]: `$RCF_DATA_DIR` if set, else
//! `../shared/datasets` next to the workspace (or the current directory) when it exists. Tests
//! that need it skip with a visible message when it is absent; nothing here is ever copied into
//! the repository (SKAB is GPL).

#![forbid(unsafe_code)]

pub mod defender;
pub mod fleet;
pub mod metrics;
pub mod nab;
pub mod skab;
pub mod synth;

use std::fmt;
use std::path::{Path, PathBuf};

/// Where [`skip`] records skipped tests, for `make test` to list after the run (cargo captures
/// a passing test's output, so a printed `SKIPPED` alone is invisible in the summary).
pub const SKIP_LOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/rcf-skipped.txt");

/// Records that `test` skipped (its data is absent): prints `SKIPPED test: reason` and appends
/// the same line to [`SKIP_LOG`], which `make test` prints at the end of the run.
pub fn skip(test: &str, reason: impl fmt::Display) {
    use std::io::Write;
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIP_LOG)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Why external data could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// No data directory was found.
    NoDataDir {
        /// The places looked at.
        tried: Vec<PathBuf>,
    },
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what the loader expects.
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::NoDataDir { tried } => {
                write!(f, "no data directory: set RCF_DATA_DIR (looked at")?;
                for t in tried {
                    write!(f, " {}", t.display())?;
                }
                write!(f, ")")
            }
            DataError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            DataError::Parse { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The directory holding the reference data sets.
///
/// # Errors
///
/// [`DataError::NoDataDir`] listing the places looked at.
pub fn data_root() -> Result<PathBuf, DataError> {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("RCF_DATA_DIR") {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return Ok(dir);
        }
        tried.push(dir);
    }
    let candidates = [
        PathBuf::from("../shared/datasets"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"),
    ];
    for c in candidates {
        if c.is_dir() {
            return Ok(c);
        }
        tried.push(c);
    }
    Err(DataError::NoDataDir { tried })
}

/// The RCF paper's example (Figure 3): 2,010 three-dimensional points, no header, no labels.
/// The lone point near the origin is the anomaly.
///
/// # Errors
///
/// [`DataError`] if the file is missing or malformed.
pub fn rcf_paper_example(root: &Path) -> Result<Vec<[f32; 3]>, DataError> {
    let path = root.join("rcf_paper_example/rcf-paper.csv");
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut row = [0.0f32; 3];
        let mut fields = line.split(',');
        for v in &mut row {
            let field = fields.next().ok_or_else(|| DataError::Parse {
                path: path.clone(),
                line: i + 1,
                reason: "fewer than 3 fields".into(),
            })?;
            *v = field.trim().parse().map_err(|e| DataError::Parse {
                path: path.clone(),
                line: i + 1,
                reason: format!("`{field}` is not a number: {e}"),
            })?;
        }
        rows.push(row);
    }
    Ok(rows)
}
