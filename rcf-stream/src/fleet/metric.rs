//! What a metric is: its value type, how a window reduces it, and what Device Defender allows
//! on it (dimensions, ML). Built-in `aws:*` metrics have their known kinds; custom metrics are
//! declared (Device Defender's `CreateCustomMetric`: `metricName`, `metricType`).

use std::collections::BTreeMap;

use super::value::{MetricValue, quoted};

/// A metric's value type: Device Defender's custom `metricType` names, plus the port lists
/// that only built-ins have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricType {
    /// One number per datapoint (`count` or `number`).
    Number,
    /// `numbers`.
    NumberList,
    /// `strings`.
    StringList,
    /// `cidrs`.
    IpAddressList,
    /// `ports`.
    PortList,
}

impl MetricType {
    /// Device Defender's name (`number`, `number-list`, `string-list`, `ip-address-list`,
    /// `port-list`).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Number => "number",
            MetricType::NumberList => "number-list",
            MetricType::StringList => "string-list",
            MetricType::IpAddressList => "ip-address-list",
            MetricType::PortList => "port-list",
        }
    }

    /// Parses a Device Defender `metricType`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "number" => MetricType::Number,
            "number-list" => MetricType::NumberList,
            "string-list" => MetricType::StringList,
            "ip-address-list" => MetricType::IpAddressList,
            "port-list" => MetricType::PortList,
            other => {
                return Err(format!(
                    "{} is not a metric type: number, number-list, string-list, ip-address-list \
                     or port-list",
                    quoted(other)
                ));
            }
        })
    }

    /// Whether a reported value fits this type.
    pub fn accepts(self, v: &MetricValue) -> bool {
        matches!(
            (self, v),
            (
                MetricType::Number,
                MetricValue::Count(_) | MetricValue::Number(_)
            ) | (MetricType::NumberList, MetricValue::Numbers(_))
                | (MetricType::StringList, MetricValue::Strings(_))
                | (MetricType::IpAddressList, MetricValue::Cidrs(_))
                | (MetricType::PortList, MetricValue::Ports(_))
        )
    }

    /// The value member this type is reported in, for error messages.
    pub(crate) fn members(self) -> &'static str {
        match self {
            MetricType::Number => "a number (`count` or `number`)",
            MetricType::NumberList => "`numbers`",
            MetricType::StringList => "`strings`",
            MetricType::IpAddressList => "`cidrs`",
            MetricType::PortList => "`ports`",
        }
    }
}

/// How the datapoints of one window are reduced to the window's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Aggregation {
    /// Per-period counts and byte totals (messages sent, bytes out ...): summed; a report's
    /// figure is a delta since the previous one.
    Sum,
    /// Evaluated message by message (`aws:message-byte-size`), never windowed.
    PerMessage,
    /// A level (listening ports, battery): evaluated report by report; a window (ML, or a
    /// `durationSeconds` given as an extension) takes the mean.
    Gauge,
    /// A list (ports, addresses, strings): evaluated report by report, as a set.
    Set,
}

/// What is known about a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricKind {
    /// Its value type.
    pub metric_type: MetricType,
    /// How a window reduces it.
    pub aggregation: Aggregation,
    /// Whether Device Defender allows a `TOPIC_FILTER` dimension on it.
    pub dimensions: bool,
    /// Whether ML Detect accepts it.
    pub ml: bool,
    /// Whether it is built in (`aws:*`).
    pub builtin: bool,
}

const fn kind(
    metric_type: MetricType,
    aggregation: Aggregation,
    dimensions: bool,
    ml: bool,
) -> MetricKind {
    MetricKind {
        metric_type,
        aggregation,
        dimensions,
        ml,
        builtin: true,
    }
}

/// Device Defender's built-in metrics (cloud-side, then device-side) and their kinds.
pub const BUILTIN_METRICS: [(&str, MetricKind); 17] = {
    use Aggregation::*;
    use MetricType::*;
    [
        (
            "aws:message-byte-size",
            kind(Number, PerMessage, true, true),
        ),
        ("aws:num-messages-sent", kind(Number, Sum, true, true)),
        ("aws:num-messages-received", kind(Number, Sum, true, true)),
        (
            "aws:num-authorization-failures",
            kind(Number, Sum, true, true),
        ),
        (
            "aws:num-connection-attempts",
            kind(Number, Sum, false, true),
        ),
        ("aws:num-disconnects", kind(Number, Sum, false, true)),
        (
            "aws:source-ip-address",
            kind(IpAddressList, Set, true, false),
        ),
        ("aws:all-bytes-in", kind(Number, Sum, false, true)),
        ("aws:all-bytes-out", kind(Number, Sum, false, true)),
        ("aws:all-packets-in", kind(Number, Sum, false, true)),
        ("aws:all-packets-out", kind(Number, Sum, false, true)),
        (
            "aws:num-listening-tcp-ports",
            kind(Number, Gauge, false, true),
        ),
        (
            "aws:num-listening-udp-ports",
            kind(Number, Gauge, false, true),
        ),
        (
            "aws:num-established-tcp-connections",
            kind(Number, Gauge, false, true),
        ),
        (
            "aws:destination-ip-addresses",
            kind(IpAddressList, Set, false, false),
        ),
        ("aws:listening-tcp-ports", kind(PortList, Set, false, false)),
        ("aws:listening-udp-ports", kind(PortList, Set, false, false)),
    ]
};

/// The kind of a built-in metric, if `name` is one.
pub fn builtin(name: &str) -> Option<MetricKind> {
    BUILTIN_METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, k)| k)
}

/// The kind a custom metric of `metric_type` has.
pub fn custom(metric_type: MetricType) -> MetricKind {
    MetricKind {
        metric_type,
        aggregation: if metric_type == MetricType::Number {
            Aggregation::Gauge
        } else {
            Aggregation::Set
        },
        dimensions: false,
        ml: metric_type == MetricType::Number,
        builtin: false,
    }
}

/// Checks a metric name: 1 to 128 characters of `[a-zA-Z0-9:_-]`; custom ones must not start
/// with `aws:`, and names starting with `aws:` must be built-ins.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!(
            "{} must be 1 to 128 characters, got {}",
            quoted(name),
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')))
    {
        return Err(format!(
            "{} has {c:?}: names use [a-zA-Z0-9:_-]",
            quoted(name)
        ));
    }
    if name.starts_with("aws:") && builtin(name).is_none() {
        return Err(format!(
            "{} is not a Device Defender built-in metric",
            quoted(name)
        ));
    }
    Ok(())
}

/// The metrics an engine knows: the built-ins and the declared custom ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricCatalog {
    custom: BTreeMap<String, MetricType>,
}

impl MetricCatalog {
    /// Declares a custom metric (Device Defender's `CreateCustomMetric`). Declaring a name again
    /// with the same type is a no-op; a metric's type cannot change.
    ///
    /// # Errors
    ///
    /// A bad name, a built-in name, or a type change.
    pub fn declare(&mut self, name: &str, metric_type: MetricType) -> Result<(), String> {
        check_name(name)?;
        if name.starts_with("aws:") {
            return Err(format!(
                "{}: custom metric names must not start with `aws:`",
                quoted(name)
            ));
        }
        match self.custom.get(name) {
            Some(&t) if t != metric_type => Err(format!(
                "custom metric {} is a {}; a metric's type cannot change (to {})",
                quoted(name),
                t.as_str(),
                metric_type.as_str()
            )),
            _ => {
                self.custom.insert(name.to_string(), metric_type);
                Ok(())
            }
        }
    }

    /// What is known about `name`.
    pub fn get(&self, name: &str) -> Option<MetricKind> {
        builtin(name).or_else(|| self.custom.get(name).map(|&t| custom(t)))
    }

    /// The declared custom metrics, by name.
    pub fn custom_metrics(&self) -> impl Iterator<Item = (&str, MetricType)> {
        self.custom.iter().map(|(n, &t)| (n.as_str(), t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_match_device_defender() {
        // Rules Detect: 7 cloud-side and 10 device-side metrics; ML Detect 6 and 7
        let cloud = BUILTIN_METRICS.iter().filter(|(n, _)| {
            matches!(*n, "aws:message-byte-size" | "aws:source-ip-address")
                || n.starts_with("aws:num-")
                    && !n.contains("listening")
                    && !n.contains("established")
        });
        let (c, m): (Vec<_>, Vec<_>) = (
            cloud.clone().collect(),
            cloud.filter(|(_, k)| k.ml).collect(),
        );
        assert_eq!((c.len(), m.len()), (7, 6));
        assert_eq!(BUILTIN_METRICS.iter().filter(|(_, k)| k.ml).count(), 13);
    }

    #[test]
    fn names_and_declarations() {
        assert!(check_name("battery_level").is_ok());
        assert!(check_name("aws:num-messages-sent").is_ok());
        assert!(check_name("aws:made-up").unwrap_err().contains("built-in"));
        assert!(check_name("bad name").unwrap_err().contains("' '"));
        assert!(check_name(&"x".repeat(129)).is_err());
        let mut c = MetricCatalog::default();
        c.declare("battery", MetricType::Number).unwrap();
        c.declare("battery", MetricType::Number).unwrap();
        assert!(
            c.declare("battery", MetricType::StringList)
                .unwrap_err()
                .contains("cannot change")
        );
        assert!(c.declare("aws:all-bytes-in", MetricType::Number).is_err());
        assert_eq!(c.get("battery").unwrap().aggregation, Aggregation::Gauge);
    }
}
