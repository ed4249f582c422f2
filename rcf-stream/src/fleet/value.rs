//! Device Defender's `MetricValue`: what a datapoint reports and what a criterion compares
//! it with, in its JSON form (`{"count": 3}`, `{"ports": [22, 443]}` ...).

use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

/// A metric value, as Device Defender's `MetricValue` (exactly one member set).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MetricValue {
    /// `count`: a non-negative integer.
    Count(u64),
    /// `number`: a finite number.
    Number(f64),
    /// `numbers`: a list of finite numbers.
    Numbers(Vec<f64>),
    /// `strings`: a list of strings.
    Strings(Vec<String>),
    /// `cidrs`: a list of IP addresses or CIDR blocks.
    Cidrs(Vec<Cidr>),
    /// `ports`: a list of ports (0 to 65535).
    Ports(Vec<u16>),
}

/// The JSON member names of [`MetricValue`], in Device Defender's order.
pub const MEMBERS: [&str; 6] = ["count", "number", "numbers", "strings", "cidrs", "ports"];

impl MetricValue {
    /// The Device Defender member name of this value (`"count"`, `"ports"` ...).
    pub fn member(&self) -> &'static str {
        match self {
            MetricValue::Count(_) => "count",
            MetricValue::Number(_) => "number",
            MetricValue::Numbers(_) => "numbers",
            MetricValue::Strings(_) => "strings",
            MetricValue::Cidrs(_) => "cidrs",
            MetricValue::Ports(_) => "ports",
        }
    }

    /// The value as one number, for `count` and `number`.
    pub fn as_number(&self) -> Option<f64> {
        match *self {
            MetricValue::Count(c) => Some(c as f64),
            MetricValue::Number(x) => Some(x),
            _ => None,
        }
    }

    /// Whether this is a list value (`numbers`, `strings`, `cidrs`, `ports`).
    pub fn is_list(&self) -> bool {
        self.as_number().is_none()
    }

    /// Reads a value from its JSON form: an object with one member of [`MEMBERS`], or (for
    /// datapoints) a bare number. A custom metric's one-element list (`[{"number": 5}]`, as
    /// device metrics reports send it) is accepted too.
    ///
    /// # Errors
    ///
    /// What is wrong, naming the member and the value.
    ///
    /// ```
    /// use rcf_stream::fleet::MetricValue;
    /// use serde_json::json;
    /// assert_eq!(MetricValue::from_json(&json!({"ports": [22, 443]})),
    ///            Ok(MetricValue::Ports(vec![22, 443])));
    /// assert_eq!(MetricValue::from_json(&json!(7)), Ok(MetricValue::Count(7)));
    /// assert!(MetricValue::from_json(&json!({"ports": [70000]})).unwrap_err().contains("65535"));
    /// ```
    pub fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => number_value(n),
            Value::Object(map) => Self::from_object(map),
            Value::Array(items) if items.len() == 1 && items[0].is_object() => {
                Self::from_json(&items[0])
            }
            other => Err(format!(
                "must be a number or an object with one of {}, got {}",
                MEMBERS.join(", "),
                json_kind(other)
            )),
        }
    }

    fn from_object(map: &Map<String, Value>) -> Result<Self, String> {
        let present: Vec<&String> = map.keys().collect();
        let [key] = present[..] else {
            return Err(if present.is_empty() {
                format!("has no member: give one of {}", MEMBERS.join(", "))
            } else {
                format!(
                    "has {} members ({}): give exactly one",
                    present.len(),
                    present
                        .iter()
                        .map(|k| quoted(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        };
        let v = &map[key];
        let list = |what: &str| -> Result<&Vec<Value>, String> {
            v.as_array()
                .ok_or_else(|| format!("`{key}` must be a list of {what}, got {}", json_kind(v)))
        };
        Ok(match key.as_str() {
            "count" => match v.as_u64() {
                Some(c) => MetricValue::Count(c),
                None => return Err(format!("`count` must be a non-negative integer, got {v}")),
            },
            "number" => MetricValue::Number(finite(v).map_err(|e| format!("`number` {e}"))?),
            "numbers" => MetricValue::Numbers(
                list("numbers")?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| finite(x).map_err(|e| format!("`numbers[{i}]` {e}")))
                    .collect::<Result<_, _>>()?,
            ),
            "strings" => MetricValue::Strings(
                list("strings")?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| match x.as_str() {
                        Some(s) => Ok(s.to_string()),
                        None => Err(format!(
                            "`strings[{i}]` must be a string, got {}",
                            json_kind(x)
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "cidrs" => MetricValue::Cidrs(
                list("IP addresses or CIDR blocks")?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| match x.as_str() {
                        Some(s) => s.parse::<Cidr>().map_err(|e| format!("`cidrs[{i}]` {e}")),
                        None => Err(format!(
                            "`cidrs[{i}]` must be a string, got {}",
                            json_kind(x)
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "ports" => MetricValue::Ports(
                list("ports")?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| match x.as_u64() {
                        Some(p) if p <= 65_535 => Ok(p as u16),
                        _ => Err(format!(
                            "`ports[{i}]` must be a port from 0 to 65535, got {x}"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => {
                return Err(format!(
                    "unknown member {}: give one of {}",
                    quoted(other),
                    MEMBERS.join(", ")
                ));
            }
        })
    }

    /// The value's JSON form (`{"count": 3}` ...).
    pub fn to_json(&self) -> Value {
        match self {
            MetricValue::Count(c) => json!({ "count": c }),
            MetricValue::Number(x) => json!({ "number": x }),
            MetricValue::Numbers(v) => json!({ "numbers": v }),
            MetricValue::Strings(v) => json!({ "strings": v }),
            MetricValue::Cidrs(v) => {
                json!({ "cidrs": v.iter().map(Cidr::to_string).collect::<Vec<_>>() })
            }
            MetricValue::Ports(v) => json!({ "ports": v }),
        }
    }
}

impl fmt::Display for MetricValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// A bare JSON number as a datapoint value: `count` if it is a non-negative integer, else
/// `number`.
fn number_value(n: &serde_json::Number) -> Result<MetricValue, String> {
    if let Some(c) = n.as_u64() {
        return Ok(MetricValue::Count(c));
    }
    match n.as_f64() {
        Some(x) if x.is_finite() => Ok(MetricValue::Number(x)),
        _ => Err(format!("{n} is not a finite number")),
    }
}

fn finite(v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(format!("must be a finite number, got {}", shown_json(v))),
    }
}

/// A JSON value's kind, for error messages.
pub(crate) fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", quoted(s)),
        Value::Array(a) => format!("a list of {}", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// `s` in backquotes, cut to 60 characters (a malformed megabyte must not reach a terminal).
pub(crate) fn quoted(s: &str) -> String {
    const SHOWN: usize = 60;
    if s.chars().count() <= SHOWN {
        format!("`{s}`")
    } else {
        let head: String = s.chars().take(SHOWN).collect();
        format!("`{head}…` ({} bytes)", s.len())
    }
}

fn shown_json(v: &Value) -> String {
    match v {
        Value::String(s) => quoted(s),
        other => {
            let t = other.to_string();
            if t.len() > 60 { json_kind(other) } else { t }
        }
    }
}

/// An IP address block: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`; a bare
/// address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The block's address, with the bits beyond the prefix cleared.
    pub fn network(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `other` lies wholly inside this block (prefix containment; IPv4 and IPv6 never
    /// contain each other, except IPv4-mapped IPv6 addresses, which are compared as IPv4).
    pub fn contains(&self, other: &Cidr) -> bool {
        if other.prefix < self.prefix {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => mask32(u32::from(b), self.prefix) == u32::from(a),
            (IpAddr::V6(a), IpAddr::V6(b)) => mask128(u128::from(b), self.prefix) == u128::from(a),
            _ => false,
        }
    }
}

fn mask32(x: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        x & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask128(x: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        x & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{} is not an IP address or CIDR block", quoted(s));
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip.trim().parse().map_err(|_| bad())?;
        // IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address
        let (addr, max, shift) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), 32u8, 96u8),
                None => (addr, 128, 0),
            },
            IpAddr::V4(_) => (addr, 32, 0),
        };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let p: u8 = p.trim().parse().map_err(|_| bad())?;
                if p < shift || p - shift > max {
                    return Err(format!(
                        "{}: prefix /{p} is longer than the address",
                        quoted(s)
                    ));
                }
                p - shift
            }
        };
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask32(u32::from(a), prefix).into()),
            IpAddr::V6(a) => IpAddr::V6(mask128(u128::from(a), prefix).into()),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_round_trips() {
        for v in [
            json!({"count": 3}),
            json!({"number": 2.5}),
            json!({"numbers": [1.0, 2.0]}),
            json!({"strings": ["a", "b"]}),
            json!({"cidrs": ["10.0.0.0/8", "2001:db8::/32"]}),
            json!({"ports": [22, 443]}),
        ] {
            assert_eq!(MetricValue::from_json(&v).unwrap().to_json(), v);
        }
    }

    #[test]
    fn malformed_values_name_the_member() {
        let e = |v: Value| MetricValue::from_json(&v).unwrap_err();
        assert!(e(json!({"count": -1})).contains("`count`"));
        assert!(e(json!({"count": 1, "number": 2})).contains("exactly one"));
        assert!(e(json!({})).contains("no member"));
        assert!(e(json!({"portz": [1]})).contains("`portz`"));
        assert!(e(json!({"cidrs": ["10.0.0.0/33"]})).contains("prefix"));
        assert!(e(json!({"cidrs": ["banana"]})).contains("`banana`"));
        assert!(e(json!({"strings": [1]})).contains("strings[0]"));
        assert!(e(json!("7")).contains("string"));
    }

    #[test]
    fn cidr_containment() {
        let c = |s: &str| s.parse::<Cidr>().unwrap();
        assert!(c("10.0.0.0/8").contains(&c("10.1.2.3")));
        assert!(c("10.0.0.0/8").contains(&c("10.128.0.0/9")));
        assert!(!c("10.0.0.0/8").contains(&c("11.0.0.1")));
        assert!(!c("10.0.0.0/16").contains(&c("10.0.0.0/8")));
        assert!(c("0.0.0.0/0").contains(&c("192.168.1.1")));
        assert!(c("2001:db8::/32").contains(&c("2001:db8:1::5")));
        assert!(!c("2001:db8::/32").contains(&c("10.0.0.1")));
        assert!(c("10.0.0.0/8").contains(&c("::ffff:10.9.9.9")));
        assert_eq!(c("10.1.2.3/8").to_string(), "10.0.0.0/8");
    }
}
