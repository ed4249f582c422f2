//! Alert sinks: where stored violation events (or incidents) are delivered.
//!
//! The engine never hands an event to a sink before it is committed: each event is written
//! to the store's outbox with one row per sink in the transaction that records it, and
//! [`Engine::respond`](super::Engine::respond) sends what is due after the commit, marking it
//! sent once the sink acknowledged it. Delivery is therefore at least once; a repeat happens
//! only if the process dies between a sink's acknowledgement and the store's record of it,
//! and then carries the same `violationId` (a consumer drops repeats on `(violationId,
//! violationEventType)`).
//!
//! Built-ins, by their spec strings (`rcf fleet --sink SPEC`, `rcf.Fleet.add_sink(SPEC)`):
//!
//! | spec | delivers |
//! |---|---|
//! | `jsonl=PATH` | one JSON object per line, appended and synced to disk |
//! | `webhook=http://HOST:PORT/PATH` | HTTP POST, `application/json`: one object, or a JSON array when a batch holds several |
//! | `mqtt=mqtt://HOST:PORT/TOPIC` | one MQTT message per object, QoS 1, acknowledged by the broker |
//!
//! Options follow the spec after commas: `batch=N` (most objects per delivery, default 100;
//! 1 sends every event on its own), `rate=N` (most deliveries per minute, default 60: a burst
//! across 10,000 devices becomes batches, not 10,000 pages; the rest wait in the outbox),
//! `timeout=SECONDS` (default 5), `retry=SECONDS` (first back-off after a failure, default 1;
//! doubling to at most 300) and `incidents` (deliver incidents instead of single violations).
//! E.g. `webhook=http://127.0.0.1:9000/hook,batch=1,rate=600`.
//! (A comma always starts an option: a URL or path with a comma in it needs
//! [`Engine::add_sink`](super::Engine::add_sink) with a sink built in code.)

use std::io::Write;
use std::path::PathBuf;
#[cfg(feature = "net")]
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::engine::FleetError;

/// Something that receives violation events (or incidents) as Device Defender's JSON.
///
/// `deliver` returns once the receiver has acknowledged the whole batch (a 2xx answer, a
/// broker's PUBACK, data synced to disk); an error leaves the batch in the outbox, to be
/// retried after a back-off.
pub trait Sink: Send {
    /// Delivers one batch of objects (one or more).
    ///
    /// # Errors
    ///
    /// The receiver did not acknowledge the batch (unreachable, timed out, refused): why.
    fn deliver(&mut self, batch: &[Value]) -> Result<(), String>;
}

/// What a sink receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    /// Each violation event (`in-alarm`, `alarm-cleared`, `alarm-invalidated`) on its own.
    #[default]
    Events,
    /// Incidents: violations that started together, grouped (see [`super::incident`]).
    Incidents,
}

/// How a sink is fed: batching, rate limit, retries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Events or incidents.
    pub payload: Payload,
    /// At most this many objects per delivery (1 to 1000).
    pub batch: usize,
    /// At most this many deliveries per minute (1 to 60,000).
    pub per_minute: u32,
    /// How long a delivery may take, in milliseconds (webhook and MQTT).
    pub timeout_ms: u64,
    /// The first back-off after a failed delivery, in milliseconds; it doubles with each
    /// failure in a row, up to [`RETRY_MAX_MS`].
    pub retry_ms: u64,
}

/// The longest back-off between two attempts of a failing sink: five minutes.
pub const RETRY_MAX_MS: u64 = 300_000;

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            payload: Payload::Events,
            batch: 100,
            per_minute: 60,
            timeout_ms: 5_000,
            retry_ms: 1_000,
        }
    }
}

impl SinkOptions {
    /// The back-off after `failures` failed deliveries in a row.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        self.retry_ms
            .saturating_mul(1u64 << failures.saturating_sub(1).min(30))
            .min(RETRY_MAX_MS.max(self.retry_ms))
    }

    /// Checks every option's range.
    ///
    /// # Errors
    ///
    /// An option out of range, named with its value.
    pub fn check(&self) -> Result<(), FleetError> {
        let bad =
            |name: &'static str, reason: String| FleetError::InvalidParameter { name, reason };
        if !(1..=1000).contains(&self.batch) {
            return Err(bad(
                "batch",
                format!("must be 1 to 1000 objects per delivery, got {}", self.batch),
            ));
        }
        if !(1..=60_000).contains(&self.per_minute) {
            return Err(bad(
                "rate",
                format!(
                    "must be 1 to 60000 deliveries per minute, got {}",
                    self.per_minute
                ),
            ));
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            return Err(bad(
                "timeout",
                format!("must be 1 ms to 600 s, got {} ms", self.timeout_ms),
            ));
        }
        if !(1..=RETRY_MAX_MS).contains(&self.retry_ms) {
            return Err(bad(
                "retry",
                format!("must be 1 ms to 300 s, got {} ms", self.retry_ms),
            ));
        }
        Ok(())
    }
}

/// A built-in sink, parsed from its spec string.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SinkKind {
    /// `jsonl=PATH`.
    Jsonl(PathBuf),
    /// `webhook=http://HOST:PORT/PATH`.
    Webhook(String),
    /// `mqtt=mqtt://HOST:PORT/TOPIC`.
    Mqtt {
        /// Broker host.
        host: String,
        /// Broker port.
        port: u16,
        /// Topic published to.
        topic: String,
    },
}

/// A sink's spec: its kind, its options, and its name in the outbox (the spec without its
/// options, so changing a rate keeps the sink's undelivered events).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    /// The name the outbox knows the sink by.
    pub name: String,
    /// What it is.
    pub kind: SinkKind,
    /// How it is fed.
    pub options: SinkOptions,
}

impl SinkSpec {
    /// Parses `KIND=TARGET[,option ...]` (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// An unknown kind or option, a malformed URL, an option out of range: named, with the
    /// value.
    pub fn parse(spec: &str) -> Result<Self, FleetError> {
        let bad = |reason: String| FleetError::InvalidParameter {
            name: "sink",
            reason,
        };
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default().trim();
        let (kind, target) = head.split_once('=').ok_or_else(|| {
            bad(format!(
                "`{spec}` is not KIND=TARGET (jsonl=PATH, webhook=http://HOST:PORT/PATH, mqtt=mqtt://HOST:PORT/TOPIC)"
            ))
        })?;
        let kind = match kind {
            "jsonl" if !target.is_empty() => SinkKind::Jsonl(PathBuf::from(target)),
            "webhook" | "mqtt" if !cfg!(feature = "net") => {
                return Err(bad(format!(
                    "`{spec}`: this build of rcf-stream has no `net` feature (webhook and MQTT sinks)"
                )));
            }
            "webhook" => {
                let rest = target.strip_prefix("http://").ok_or_else(|| {
                    bad(format!(
                        "webhook `{target}` must start with http:// (rcf speaks plain HTTP; put a TLS proxy in front for https)"
                    ))
                })?;
                let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
                host_port(authority, 80).map_err(|e| bad(format!("webhook `{target}`: {e}")))?;
                SinkKind::Webhook(target.to_string())
            }
            "mqtt" => {
                let rest = target.strip_prefix("mqtt://").ok_or_else(|| {
                    bad(format!(
                        "mqtt `{target}` must look like mqtt://HOST:PORT/TOPIC"
                    ))
                })?;
                let (authority, topic) = rest.split_once('/').ok_or_else(|| {
                    bad(format!(
                        "mqtt `{target}` names no topic (mqtt://HOST:PORT/TOPIC)"
                    ))
                })?;
                if topic.is_empty() || topic.contains(['+', '#']) {
                    return Err(bad(format!(
                        "mqtt `{target}`: the topic must be a non-empty topic name without wildcards"
                    )));
                }
                let (host, port) =
                    host_port(authority, 1883).map_err(|e| bad(format!("mqtt `{target}`: {e}")))?;
                SinkKind::Mqtt {
                    host,
                    port,
                    topic: topic.to_string(),
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown sink kind `{other}` in `{spec}` (jsonl, webhook or mqtt)"
                )));
            }
        };
        let mut options = SinkOptions::default();
        for opt in parts {
            let opt = opt.trim();
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            let num = |v: &str| -> Result<f64, FleetError> {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad(format!("option `{opt}` needs a non-negative number")))
            };
            match k {
                "batch" => options.batch = num(v)? as usize,
                "rate" => options.per_minute = num(v)?.min(f64::from(u32::MAX)) as u32,
                "timeout" => options.timeout_ms = (num(v)? * 1000.0) as u64,
                "retry" => options.retry_ms = (num(v)? * 1000.0) as u64,
                "incidents" if v.is_empty() => options.payload = Payload::Incidents,
                _ => {
                    return Err(bad(format!(
                        "unknown option `{opt}` (batch=N, rate=N, timeout=S, retry=S, incidents)"
                    )));
                }
            }
        }
        options.check()?;
        Ok(SinkSpec {
            name: head.to_string(),
            kind,
            options,
        })
    }

    /// The sink itself (nothing is contacted until its first delivery).
    pub fn build(&self) -> Box<dyn Sink> {
        let timeout = Duration::from_millis(self.options.timeout_ms);
        match &self.kind {
            SinkKind::Jsonl(path) => Box::new(JsonlSink { path: path.clone() }),
            #[cfg(feature = "net")]
            SinkKind::Webhook(url) => Box::new(WebhookSink::new(url, timeout)),
            #[cfg(feature = "net")]
            SinkKind::Mqtt { host, port, topic } => Box::new(MqttSink {
                host: host.clone(),
                port: *port,
                topic: topic.clone(),
                timeout,
                conn: None,
            }),
            // `parse` makes no network sink without the feature
            #[cfg(not(feature = "net"))]
            _ => {
                let _ = timeout;
                unreachable!("network sinks need the `net` feature")
            }
        }
    }
}

/// `HOST:PORT` (or `HOST`, with the default port).
fn host_port(authority: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port `{p}` is not 1 to 65535"))?,
        ),
        None => (authority, default),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((host.to_string(), port))
}

/// `jsonl=PATH`: appends one line per object and syncs the file before acknowledging.
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
}

impl JsonlSink {
    /// A sink appending to `path` (created at the first delivery).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonlSink { path: path.into() }
    }
}

impl Sink for JsonlSink {
    fn deliver(&mut self, batch: &[Value]) -> Result<(), String> {
        let mut text = String::new();
        for v in batch {
            text.push_str(&v.to_string());
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(feature = "net")]
/// `webhook=http://...`: one HTTP POST per batch, `application/json`, acknowledged by a 2xx
/// status.
pub struct WebhookSink {
    url: String,
    agent: ureq::Agent,
}

#[cfg(feature = "net")]
impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &self.url)
            .finish()
    }
}

#[cfg(feature = "net")]
impl WebhookSink {
    /// A sink posting to `url` with a whole-request `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Self {
        WebhookSink {
            url: url.to_string(),
            agent: http_agent(timeout),
        }
    }
}

/// An HTTP client whose every request ends within `timeout`.
#[cfg(feature = "net")]
pub(crate) fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// POSTs `body` as JSON; `Ok` on a 2xx answer.
#[cfg(feature = "net")]
pub(crate) fn post_json(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(), String> {
    match agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
    {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url} answered {}", r.status())),
        Err(ureq::Error::StatusCode(code)) => Err(format!("{url} answered {code}")),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

#[cfg(feature = "net")]
impl Sink for WebhookSink {
    fn deliver(&mut self, batch: &[Value]) -> Result<(), String> {
        let body = match batch {
            [one] => one.clone(),
            many => Value::Array(many.to_vec()),
        };
        post_json(&self.agent, &self.url, &body)
    }
}

#[cfg(feature = "net")]
/// `mqtt=mqtt://HOST:PORT/TOPIC`: one QoS 1 message per object; the batch is acknowledged
/// when the broker has acknowledged every message of it.
pub struct MqttSink {
    host: String,
    port: u16,
    topic: String,
    timeout: Duration,
    conn: Option<MqttLink>,
}

#[cfg(feature = "net")]
impl std::fmt::Debug for MqttSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSink")
            .field("broker", &format!("{}:{}", self.host, self.port))
            .field("topic", &self.topic)
            .finish()
    }
}

/// A connected client and the acknowledgements its event loop thread reports.
#[cfg(feature = "net")]
struct MqttLink {
    client: rumqttc::Client,
    acks: mpsc::Receiver<Result<(), String>>,
}

#[cfg(feature = "net")]
impl MqttSink {
    fn connect(&self) -> MqttLink {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!(
            "rcf-sink-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut o = rumqttc::MqttOptions::new(id, self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = rumqttc::Client::new(o, 64);
        let (tx, acks) = mpsc::channel();
        std::thread::Builder::new()
            .name("rcf-mqtt-sink".into())
            .spawn(move || {
                for ev in connection.iter() {
                    let msg = match ev {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => Ok(()),
                        Ok(_) => continue,
                        Err(e) => Err(format!("broker: {e}")),
                    };
                    let failed = msg.is_err();
                    if tx.send(msg).is_err() {
                        break; // the sink is gone
                    }
                    if failed {
                        // let the sink reconnect on its next delivery
                        break;
                    }
                }
            })
            .expect("spawn the MQTT sink's event loop");
        MqttLink { client, acks }
    }
}

#[cfg(feature = "net")]
impl Sink for MqttSink {
    fn deliver(&mut self, batch: &[Value]) -> Result<(), String> {
        let link = match self.conn.take() {
            Some(l) => l,
            None => self.connect(),
        };
        let result = (|| {
            for v in batch {
                link.client
                    .publish(
                        self.topic.clone(),
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        v.to_string().into_bytes(),
                    )
                    .map_err(|e| format!("publish: {e}"))?;
            }
            let deadline = std::time::Instant::now() + self.timeout;
            let mut acked = 0;
            while acked < batch.len() {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match link.acks.recv_timeout(left) {
                    Ok(Ok(())) => acked += 1,
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(format!(
                            "broker {}:{} acknowledged {acked} of {} messages in {:?}",
                            self.host,
                            self.port,
                            batch.len(),
                            self.timeout
                        ));
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.conn = Some(link);
                Ok(())
            }
            Err(e) => {
                let _ = link.client.disconnect();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "net")]
    fn specs_parse_with_options_and_bad_ones_name_the_problem() {
        let s = SinkSpec::parse("webhook=http://127.0.0.1:9000/hook,batch=1,rate=600,timeout=2")
            .unwrap();
        assert_eq!(s.name, "webhook=http://127.0.0.1:9000/hook");
        assert_eq!(
            s.kind,
            SinkKind::Webhook("http://127.0.0.1:9000/hook".into())
        );
        assert_eq!(
            (s.options.batch, s.options.per_minute, s.options.timeout_ms),
            (1, 600, 2000)
        );
        let m = SinkSpec::parse("mqtt=mqtt://localhost:1884/alerts/rcf,incidents").unwrap();
        assert_eq!(
            m.kind,
            SinkKind::Mqtt {
                host: "localhost".into(),
                port: 1884,
                topic: "alerts/rcf".into()
            }
        );
        assert_eq!(m.options.payload, Payload::Incidents);
        for (spec, needle) in [
            ("pager", "KIND=TARGET"),
            ("sms=123", "unknown sink kind"),
            ("webhook=https://x/y", "http://"),
            ("webhook=http://h:0/", "port"),
            ("mqtt=mqtt://h:1883", "no topic"),
            ("mqtt=mqtt://h:1883/a/#", "wildcards"),
            ("jsonl=out.jsonl,batch=0", "batch"),
            ("jsonl=out.jsonl,rate=-1", "rate=-1"),
            ("jsonl=out.jsonl,colour=red", "unknown option"),
        ] {
            let e = SinkSpec::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let o = SinkOptions::default();
        let b: Vec<u64> = (1..=12).map(|f| o.backoff_ms(f)).collect();
        assert_eq!(&b[..4], &[1000, 2000, 4000, 8000]);
        assert_eq!(b[11], RETRY_MAX_MS);
    }
}
