//! `TOPIC_FILTER` dimensions (Device Defender's `CreateDimension`): MQTT topic filters with
//! `+` (one level) and `#` (the rest) wildcards.

use super::value::quoted;

/// A named set of 1 to 100 MQTT topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    /// `name`.
    pub name: String,
    /// `stringValues`: the topic filters.
    pub filters: Vec<String>,
}

impl Dimension {
    /// A `TOPIC_FILTER` dimension; the filters are checked.
    ///
    /// # Errors
    ///
    /// A bad name, no filters or more than 100, or a filter MQTT would reject (`#` not last,
    /// a wildcard inside a level).
    pub fn new(name: &str, filters: Vec<String>) -> Result<Self, String> {
        super::profile::check_identifier(name).map_err(|e| format!("dimension name {e}"))?;
        if filters.is_empty() || filters.len() > 100 {
            return Err(format!(
                "dimension {}: 1 to 100 topic filters, got {}",
                quoted(name),
                filters.len()
            ));
        }
        for f in &filters {
            check_filter(f).map_err(|e| format!("dimension {}: {e}", quoted(name)))?;
        }
        Ok(Dimension {
            name: name.to_string(),
            filters,
        })
    }

    /// Whether `topic` matches one of the filters.
    pub fn matches(&self, topic: &str) -> bool {
        self.filters.iter().any(|f| filter_matches(f, topic))
    }
}

fn check_filter(f: &str) -> Result<(), String> {
    if f.is_empty() || f.len() > 256 {
        return Err(format!("topic filter {} must be 1 to 256 bytes", quoted(f)));
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wild = level.contains('#') || level.contains('+');
        if wild && level.len() != 1 {
            return Err(format!(
                "topic filter {}: a wildcard must be a whole level",
                quoted(f)
            ));
        }
        if *level == "#" && i + 1 != levels.len() {
            return Err(format!(
                "topic filter {}: `#` must be the last level",
                quoted(f)
            ));
        }
    }
    Ok(())
}

/// MQTT topic matching: `+` matches one level, `#` the remaining levels (also none).
pub(crate) fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match f {
            "#" => return true,
            "+" => {
                if t.next().is_none() {
                    return false;
                }
            }
            level => {
                if t.next() != Some(level) {
                    return false;
                }
            }
        }
    }
    t.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_matching() {
        assert!(filter_matches("debug/#", "debug/trace/x"));
        assert!(filter_matches("debug/#", "debug"));
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(!filter_matches("a/+/c", "a/b/d"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(filter_matches("#", "anything/at/all"));
        assert!(!filter_matches("prod/telemetry", "prod/telemetry/x"));
        assert!(Dimension::new("d", vec!["a/#/b".into()]).is_err());
        assert!(Dimension::new("d", vec!["a/b#".into()]).is_err());
        assert!(Dimension::new("d", vec![]).is_err());
    }
}
