//! SKAB (Skoltech Anomaly Benchmark v0.9): water-pump telemetry, 8 sensors at 1 Hz, with
//! anomaly and changepoint labels. GPL-3.0: read from the data directory at run time, never
//! copied into this repository.

use std::path::Path;

use crate::DataError;

/// The 8 sensors, in file order.
pub const SENSORS: [&str; 8] = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
];

/// Rows at the start of each labelled file that SKAB treats as the training part.
pub const TRAINING_ROWS: usize = 400;

/// One labelled SKAB experiment.
#[derive(Debug, Clone)]
pub struct SkabFile {
    /// `"<folder>/<file>.csv"`, e.g. `"valve1/13.csv"`.
    pub name: String,
    /// Row-major sensor values, 8 per row.
    pub values: Vec<f32>,
    /// Anomaly label per row.
    pub anomaly: Vec<bool>,
    /// Changepoint label per row.
    pub changepoint: Vec<bool>,
}

impl SkabFile {
    /// Rows.
    pub fn len(&self) -> usize {
        self.anomaly.len()
    }

    /// Whether the file has no rows.
    pub fn is_empty(&self) -> bool {
        self.anomaly.is_empty()
    }

    /// Row `t`'s 8 sensor values.
    pub fn row(&self, t: usize) -> &[f32] {
        &self.values[t * 8..(t + 1) * 8]
    }
}

/// Loads the 34 labelled SKAB files (`valve1`, `valve2`, `other`) from `root/skab/data`,
/// sorted by name.
///
/// # Errors
///
/// [`DataError`] naming the missing or malformed file.
pub fn load(root: &Path) -> Result<Vec<SkabFile>, DataError> {
    let data = root.join("skab/data");
    let mut files = Vec::new();
    for folder in ["other", "valve1", "valve2"] {
        let dir = data.join(folder);
        let entries = std::fs::read_dir(&dir).map_err(|source| DataError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?;
            let mut lines = text.lines();
            let header: Vec<&str> = lines
                .next()
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .collect();
            let col = |name: &str| {
                header
                    .iter()
                    .position(|h| *h == name)
                    .ok_or_else(|| DataError::Parse {
                        path: path.clone(),
                        line: 1,
                        reason: format!("no column `{name}`"),
                    })
            };
            let sensors: Vec<usize> = SENSORS.iter().map(|s| col(s)).collect::<Result<_, _>>()?;
            let (a, c) = (col("anomaly")?, col("changepoint")?);
            let mut f = SkabFile {
                name: format!(
                    "{folder}/{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
                values: Vec::new(),
                anomaly: Vec::new(),
                changepoint: Vec::new(),
            };
            for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let fields: Vec<&str> = line.split(';').collect();
                let num = |j: usize| -> Result<f64, DataError> {
                    fields
                        .get(j)
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| DataError::Parse {
                            path: path.clone(),
                            line: i + 2,
                            reason: format!("field {j} is not a number"),
                        })
                };
                for &j in &sensors {
                    f.values.push(num(j)? as f32);
                }
                f.anomaly.push(num(a)? > 0.5);
                f.changepoint.push(num(c)? > 0.5);
            }
            files.push(f);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_labelled_files_when_present() {
        let Ok(root) = crate::data_root() else {
            crate::skip("skab loader test", "no data directory (set RCF_DATA_DIR)");
            return;
        };
        let files = load(&root).unwrap();
        assert_eq!(files.len(), 34);
        let rows: usize = files.iter().map(SkabFile::len).sum();
        assert_eq!(rows, 37_401);
        let anomalous = files
            .iter()
            .flat_map(|f| &f.anomaly)
            .filter(|a| **a)
            .count();
        // benchmarks.md: anomaly ratio 0.349
        assert!((anomalous as f64 / rows as f64 - 0.349).abs() < 0.001);
        assert_eq!(
            files
                .iter()
                .flat_map(|f| &f.changepoint)
                .filter(|c| **c)
                .count(),
            129
        );
    }
}
