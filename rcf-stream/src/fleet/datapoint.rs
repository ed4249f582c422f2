//! Datapoints and the JSON they come in: rcf's short form, Device Defender's metrics export
//! records, and Device Defender device metrics reports (long or short keys).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::metric::check_name;
use super::profile::check_thing;
use super::time::{self, Millis};
use super::value::{Cidr, MetricValue, json_kind, quoted};

/// One reported value of one metric of one thing.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// The thing (1 to 128 bytes).
    pub thing: Arc<str>,
    /// The metric.
    pub metric: Arc<str>,
    /// The value.
    pub value: MetricValue,
    /// Event time, milliseconds since the epoch.
    pub timestamp: Millis,
    /// The MQTT topic the value is about, for `TOPIC_FILTER` dimensions.
    pub topic: Option<Arc<str>>,
}

impl Datapoint {
    /// A datapoint; the names are checked.
    ///
    /// # Errors
    ///
    /// A thing name that is empty, over 128 bytes or has control characters; a metric name
    /// Device Defender would reject; a timestamp outside 2000 .. 9999.
    pub fn new(
        thing: &str,
        metric: &str,
        value: MetricValue,
        timestamp: Millis,
        topic: Option<&str>,
    ) -> Result<Self, String> {
        check_thing(thing)?;
        check_name(metric).map_err(|e| format!("metric {e}"))?;
        if !(time::MIN_TIMESTAMP..=time::MAX_TIMESTAMP).contains(&timestamp) {
            return Err(format!(
                "timestamp {timestamp} ms is outside 2000-01-01 .. 9999-12-31"
            ));
        }
        if let MetricValue::Number(x) = value
            && !x.is_finite()
        {
            return Err(format!("value {x} is not finite"));
        }
        Ok(Datapoint {
            thing: thing.into(),
            metric: metric.into(),
            value,
            timestamp,
            topic: topic.map(Into::into),
        })
    }

    /// The datapoint in rcf's short JSON form.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("thing".into(), Value::from(&*self.thing));
        o.insert("metric".into(), Value::from(&*self.metric));
        o.insert("value".into(), self.value.to_json());
        o.insert("timestamp".into(), time::to_json(self.timestamp));
        if let Some(t) = &self.topic {
            o.insert("topic".into(), Value::from(&**t));
        }
        Value::Object(o)
    }
}

/// Reads the datapoints of one JSON Lines line: a short-form datapoint
/// (`{"thing", "metric", "value", "timestamp"[, "topic"]}`), a metrics export record
/// (`{"name", "thing", "value", "timestamp", ...}`) or a whole export (`{"metrics": [...]}`),
/// or a device metrics report with a `thing` field (and `timestamp`, else its `report_id` as
/// epoch seconds).
///
/// # Errors
///
/// What is wrong with the line, naming the key.
///
/// ```
/// use rcf_stream::fleet::datapoint::parse_line;
/// let dps = parse_line(r#"{"thing": "dev-17", "metric": "aws:num-messages-sent", "value": 1,
///                          "timestamp": 1767225600}"#)?;
/// assert_eq!(&*dps[0].thing, "dev-17");
/// # Ok::<(), String>(())
/// ```
pub fn parse_line(line: &str) -> Result<Vec<Datapoint>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    parse_value(&v)
}

/// [`parse_line`] on parsed JSON.
pub fn parse_value(v: &Value) -> Result<Vec<Datapoint>, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("a datapoint must be a JSON object, got {}", json_kind(v)))?;
    if o.contains_key("header") || o.contains_key("hed") {
        return device_report(o);
    }
    if let Some(Value::Array(records)) = o.get("metrics") {
        return records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.as_object()
                    .ok_or_else(|| format!("metrics[{i}] must be an object"))
                    .and_then(short_form)
                    .map_err(|e| format!("metrics[{i}]: {e}"))
            })
            .collect();
    }
    Ok(vec![short_form(o)?])
}

fn short_form(o: &Map<String, Value>) -> Result<Datapoint, String> {
    let thing = text(o, &["thing", "thingName"])?;
    let metric = text(o, &["metric", "name"])?;
    let value = MetricValue::from_json(o.get("value").ok_or("`value` is missing")?)
        .map_err(|e| format!("`value` {e}"))?;
    let ts = time::parse_json(o.get("timestamp").ok_or("`timestamp` is missing")?)
        .map_err(|e| format!("`timestamp` {e}"))?;
    let topic = match o.get("topic") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(format!(
                "`topic` must be a string, got {}",
                json_kind(other)
            ));
        }
    };
    Datapoint::new(thing, metric, value, ts, topic)
}

fn text<'a>(o: &'a Map<String, Value>, keys: &[&str]) -> Result<&'a str, String> {
    for k in keys {
        match o.get(*k) {
            Some(Value::String(s)) => return Ok(s),
            Some(other) => return Err(format!("`{k}` must be a string, got {}", json_kind(other))),
            None => {}
        }
    }
    Err(format!("`{}` is missing", keys[0]))
}

/// A member by its long or short key.
fn get<'a>(o: &'a Map<String, Value>, long: &str, short: &str) -> Option<&'a Value> {
    o.get(long).or_else(|| o.get(short))
}

/// A Device Defender device metrics report: header, metrics and custom metrics.
fn device_report(o: &Map<String, Value>) -> Result<Vec<Datapoint>, String> {
    let thing = text(o, &["thing", "thingName"])?;
    let header = get(o, "header", "hed")
        .and_then(Value::as_object)
        .ok_or("`header` must be an object")?;
    match get(header, "version", "v") {
        Some(Value::String(v)) if v == "1.0" => {}
        other => {
            return Err(format!(
                "`header.version` must be \"1.0\", got {}",
                other.map_or("nothing".into(), json_kind)
            ));
        }
    }
    let ts = match o.get("timestamp") {
        Some(t) => time::parse_json(t).map_err(|e| format!("`timestamp` {e}"))?,
        None => time::parse_json(
            get(header, "report_id", "rid").ok_or("`header.report_id` is missing")?,
        )
        .map_err(|e| format!("no `timestamp`, and `header.report_id` as epoch seconds {e}"))?,
    };
    let mut out = Vec::new();
    let mut push = |metric: &str, value: MetricValue| -> Result<(), String> {
        out.push(Datapoint::new(thing, metric, value, ts, None)?);
        Ok(())
    };
    if let Some(m) = get(o, "metrics", "met") {
        let m = m.as_object().ok_or("`metrics` must be an object")?;
        for (long, short, list, count) in [
            (
                "listening_tcp_ports",
                "tp",
                "aws:listening-tcp-ports",
                "aws:num-listening-tcp-ports",
            ),
            (
                "listening_udp_ports",
                "up",
                "aws:listening-udp-ports",
                "aws:num-listening-udp-ports",
            ),
        ] {
            if let Some(p) = get(m, long, short) {
                let p = p
                    .as_object()
                    .ok_or(format!("`metrics.{long}` must be an object"))?;
                let mut ports = Vec::new();
                if let Some(items) = get(p, "ports", "pts") {
                    let items = items
                        .as_array()
                        .ok_or(format!("`metrics.{long}.ports` must be a list"))?;
                    for (i, item) in items.iter().enumerate() {
                        let port = item
                            .as_object()
                            .and_then(|x| get(x, "port", "pt"))
                            .and_then(Value::as_u64);
                        match port {
                            Some(pt) if pt <= 65_535 => ports.push(pt as u16),
                            _ => {
                                return Err(format!(
                                    "`metrics.{long}.ports[{i}].port` must be a port from 0 to 65535"
                                ));
                            }
                        }
                    }
                }
                let total = match get(p, "total", "t") {
                    Some(t) => t
                        .as_u64()
                        .ok_or(format!("`metrics.{long}.total` must be a count"))?,
                    None => ports.len() as u64,
                };
                push(list, MetricValue::Ports(ports))?;
                push(count, MetricValue::Count(total))?;
            }
        }
        if let Some(ns) = get(m, "network_stats", "ns") {
            let ns = ns
                .as_object()
                .ok_or("`metrics.network_stats` must be an object")?;
            for (long, short, metric) in [
                ("bytes_in", "bi", "aws:all-bytes-in"),
                ("bytes_out", "bo", "aws:all-bytes-out"),
                ("packets_in", "pi", "aws:all-packets-in"),
                ("packets_out", "po", "aws:all-packets-out"),
            ] {
                if let Some(x) = get(ns, long, short) {
                    let c = x.as_u64().ok_or(format!(
                        "`metrics.network_stats.{long}` must be a count, got {x}"
                    ))?;
                    push(metric, MetricValue::Count(c))?;
                }
            }
        }
        if let Some(tc) = get(m, "tcp_connections", "tc") {
            let ec = tc
                .as_object()
                .and_then(|t| get(t, "established_connections", "ec"))
                .and_then(Value::as_object)
                .ok_or("`metrics.tcp_connections.established_connections` must be an object")?;
            let mut addrs = Vec::new();
            if let Some(cs) = get(ec, "connections", "cs") {
                let cs = cs.as_array().ok_or(
                    "`metrics.tcp_connections.established_connections.connections` must be a list",
                )?;
                for (i, c) in cs.iter().enumerate() {
                    if let Some(Value::String(ra)) =
                        c.as_object().and_then(|c| get(c, "remote_addr", "rad"))
                    {
                        // "host:port" or "[v6]:port"
                        let host = ra.rsplit_once(':').map_or(ra.as_str(), |(h, _)| h);
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        let cidr: Cidr = host
                            .parse()
                            .map_err(|e| format!("`...connections[{i}].remote_addr` {e}"))?;
                        addrs.push(cidr);
                    }
                }
            }
            let total = match get(ec, "total", "t") {
                Some(t) => t
                    .as_u64()
                    .ok_or("`established_connections.total` must be a count")?,
                None => addrs.len() as u64,
            };
            push(
                "aws:num-established-tcp-connections",
                MetricValue::Count(total),
            )?;
            push("aws:destination-ip-addresses", MetricValue::Cidrs(addrs))?;
        }
    }
    if let Some(c) = get(o, "custom_metrics", "cmet") {
        let c = c.as_object().ok_or("`custom_metrics` must be an object")?;
        for (name, v) in c {
            let item = v
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_object)
                .ok_or(format!(
                    "`custom_metrics.{name}` must be a one-element list such as [{{\"number\": 5}}]"
                ))?;
            let value = if let Some(x) = item.get("number") {
                MetricValue::from_json(&serde_json::json!({ "number": x }))
            } else if let Some(x) = item.get("number_list") {
                MetricValue::from_json(&serde_json::json!({ "numbers": x }))
            } else if let Some(x) = item.get("string_list") {
                MetricValue::from_json(&serde_json::json!({ "strings": x }))
            } else if let Some(x) = item.get("ip_list") {
                MetricValue::from_json(&serde_json::json!({ "cidrs": x }))
            } else {
                Err("has none of number, number_list, string_list, ip_list".to_string())
            }
            .map_err(|e| format!("`custom_metrics.{}` {e}", name))?;
            if name.starts_with("aws:") {
                return Err(format!(
                    "custom metric {} must not start with `aws:`",
                    quoted(name)
                ));
            }
            push(name, value)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        let a = parse_line(r#"{"thing": "dev-17", "metric": "aws:listening-tcp-ports", "value": {"ports": [22, 443]}, "timestamp": "2026-01-01T00:05:00Z", "topic": "debug/trace"}"#).unwrap();
        assert_eq!(a[0].value, MetricValue::Ports(vec![22, 443]));
        assert_eq!(a[0].timestamp, 1_767_225_900_000);
        assert_eq!(a[0].topic.as_deref(), Some("debug/trace"));
        let export = parse_line(r#"{"version": "1.0", "metrics": [{"name": "aws:num-messages-sent", "thing": "t1", "value": {"count": 3}, "version": 1, "timestamp": 1767225600}]}"#).unwrap();
        assert_eq!(export[0].value, MetricValue::Count(3));
        let short = parse_line(r#"{"thing": "t1", "hed": {"rid": 1767225600, "v": "1.0"}, "met": {"tp": {"pts": [{"if": "eth0", "pt": 23}], "t": 1}, "ns": {"bi": 10, "bo": 20, "pi": 1, "po": 2}, "tc": {"ec": {"cs": [{"li": "eth0", "lp": 80, "rad": "192.168.0.1:8000"}], "t": 1}}}, "cmet": {"battery": [{"number": 55.5}]}}"#).unwrap();
        let names: Vec<&str> = short.iter().map(|d| &*d.metric).collect();
        assert_eq!(
            names,
            [
                "aws:listening-tcp-ports",
                "aws:num-listening-tcp-ports",
                "aws:all-bytes-in",
                "aws:all-bytes-out",
                "aws:all-packets-in",
                "aws:all-packets-out",
                "aws:num-established-tcp-connections",
                "aws:destination-ip-addresses",
                "battery"
            ]
        );
        assert_eq!(short[0].value, MetricValue::Ports(vec![23]));
        assert_eq!(short[8].value, MetricValue::Number(55.5));
    }

    #[test]
    fn bad_lines_name_the_key() {
        let e = |s: &str| parse_line(s).unwrap_err();
        assert!(e(r#"{"metric": "m", "value": 1, "timestamp": 1767225600}"#).contains("`thing`"));
        assert!(
            e(r#"{"thing": "t", "metric": "m", "value": "x", "timestamp": 1767225600}"#)
                .contains("`value`")
        );
        assert!(e(r#"{"thing": "t", "metric": "m", "value": 1}"#).contains("`timestamp`"));
        assert!(
            e(&format!(
                r#"{{"thing": "{}", "metric": "m", "value": 1, "timestamp": 1767225600}}"#,
                "x".repeat(129)
            ))
            .contains("128")
        );
        assert!(
            e(r#"{"thing": "t", "metric": "bad metric", "value": 1, "timestamp": 1767225600}"#)
                .contains("metric")
        );
        assert!(e("[1]").contains("object"));
        assert!(e("{nope").contains("not JSON"));
    }
}
