//! `rcf fleet serve`: live ingestion from an MQTT broker.
//!
//! Subscribes (QoS 1, a persistent session) to Device Defender's report topic
//! `$aws/things/+/defender/metrics/json` and to a telemetry topic whose payloads are rcf's
//! datapoint JSON; answers each report on `.../accepted` or `.../rejected`; commits in small
//! batches and acknowledges the broker's messages only after their commit, so a killed
//! process loses nothing (the broker redelivers what was not acknowledged). Messages are
//! deduplicated on their content (topic and payload): one redelivered after a reconnect, or
//! after a crash between a commit and its acknowledgements (the hashes of the last
//! [`REDELIVERY_WINDOW`] committed messages are saved with each commit), is not counted
//! twice. Replies: `{"thingName", "reportId", "timestamp", "status": "ACCEPTED" | "REJECTED",
//! "statusDetails": {"ErrorCode", "ErrorMessage"}}` with the categories `Malformed` (not
//! JSON), `MissingHeader` and `InvalidPayload` (too large, or a field the metrics document
//! does not allow), as Device Defender's documentation names them (recalled: the stored
//! reference here did not include its error table, so check them against a live account
//! before relying on the exact codes). A broker redelivers only messages in flight, so its per-client in-flight limit
//! (Mosquitto's `max_inflight_messages`, 20 by default) must stay below that window. SIGTERM or SIGINT stop it cleanly:
//! everything is committed, acknowledged and delivered first.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use rcf_stream::fleet::{Engine, EngineConfig, FleetError, datapoint, time};
use rumqttc::{Client, Event, MqttOptions, Packet, Publish, QoS};
use serde_json::{Value, json};

use crate::Failure;
use crate::respond::{ResponseArgs, respond};

/// The largest payload accepted (AWS IoT Core's MQTT message limit).
pub(crate) const MAX_PAYLOAD: usize = 128 * 1024;
/// Content hashes of recent messages remembered against redelivery.
const DEDUP_WINDOW: usize = 100_000;
/// Hashes of the latest messages saved with each commit, against redelivery after a crash.
pub(crate) const REDELIVERY_WINDOW: usize = 4096;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The broker, `HOST:PORT`.
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: String,
    /// The fleet configuration (as for `rcf fleet`). Omitted: the one saved in the store.
    #[arg(long, value_name = "PROFILE.json")]
    profile: Option<PathBuf>,
    /// The SQLite store.
    #[arg(long, value_name = "FILE.db")]
    store: PathBuf,
    /// The telemetry topic filter whose payloads are datapoint JSON (one object, or a
    /// metrics-export document).
    #[arg(long, default_value = "rcf/telemetry/+")]
    telemetry_topic: String,
    /// The MQTT client id (a persistent session: keep it stable across restarts).
    #[arg(long, default_value = "rcf-fleet-serve")]
    client_id: String,
    /// Commit at least this often (milliseconds) while messages arrive.
    #[arg(long, default_value_t = 200)]
    commit_ms: u64,
    /// Stop after this many messages (for tests and bounded runs).
    #[arg(long)]
    max_messages: Option<u64>,
    /// Seconds the watermark trails the latest timestamp.
    #[arg(long, default_value_t = 60)]
    grace: u64,
    /// Refuse datapoints more than this many seconds ahead of the wall clock (0: no check;
    /// a replayed or simulated fleet reports from another time).
    #[arg(long, default_value_t = 300)]
    max_future: u64,
    /// Seed of the ML models.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    response: ResponseArgs,
}

/// 64-bit FNV-1a of topic and payload.
fn content_hash(topic: &str, payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes().chain([0u8]).chain(payload.iter().copied()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The thing of a Device Defender report topic.
fn report_thing(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, tail) = rest.split_once('/')?;
    (tail == "defender/metrics/json").then_some(thing)
}

/// Parses one message into datapoints, or a Device Defender error category and reason.
fn parse(
    topic: &str,
    payload: &[u8],
) -> Result<Vec<rcf_stream::fleet::Datapoint>, (&'static str, String)> {
    if payload.len() > MAX_PAYLOAD {
        return Err((
            "InvalidPayload",
            format!(
                "payload of {} bytes is over the {MAX_PAYLOAD}-byte limit",
                payload.len()
            ),
        ));
    }
    let mut v: Value =
        serde_json::from_slice(payload).map_err(|e| ("Malformed", format!("not JSON: {e}")))?;
    if let Some(thing) = report_thing(topic) {
        let o = v
            .as_object_mut()
            .ok_or(("Malformed", "a report must be a JSON object".to_string()))?;
        if !o.contains_key("header") && !o.contains_key("hed") {
            return Err(("MissingHeader", "the report has no header (hed)".into()));
        }
        o.insert("thing".into(), json!(thing));
    }
    datapoint::parse_value(&v).map_err(|e| ("InvalidPayload", e))
}

/// Messages taken from the broker and what their acknowledgement waits for.
struct Inbox {
    /// Ingested, not yet committed.
    unacked: Vec<Publish>,
    /// Committed; their acknowledgements not yet handed to the client (its request queue
    /// was full).
    to_ack: Vec<Publish>,
    /// Hashes of the latest [`REDELIVERY_WINDOW`] messages, saved with each commit.
    recent: VecDeque<u64>,
    /// Messages not yet committed.
    fresh: usize,
}

impl Inbox {
    /// A message to acknowledge after the next commit; `hash` if it was taken in (not a
    /// duplicate).
    fn take(&mut self, p: Publish, hash: Option<u64>) {
        if let Some(h) = hash {
            self.recent.push_back(h);
            if self.recent.len() > REDELIVERY_WINDOW {
                self.recent.pop_front();
            }
            self.fresh += 1;
        }
        self.unacked.push(p);
    }

    /// Whether anything waits for a commit.
    fn pending(&self) -> bool {
        !self.unacked.is_empty() || self.fresh > 0
    }

    /// Commits the engine with the recent hashes as its cursor, queues the acknowledgements
    /// (after the commit, never before: the broker redelivers what is not acknowledged) and
    /// delivers what the sinks are owed.
    fn commit(&mut self, engine: &mut Engine) -> Result<(), Failure> {
        let hashes: Vec<String> = self.recent.iter().map(|h| format!("{h:016x}")).collect();
        engine
            .commit(Some(&format!("mqtt:{}", hashes.join(","))))
            .map_err(|e| e.to_string())?;
        self.to_ack.append(&mut self.unacked);
        self.fresh = 0;
        respond(engine, true)
    }

    /// Hands acknowledgements to the client while its queue has room (the rest wait for the
    /// next turn: the queue drains as the connection is polled).
    fn flush_acks(&mut self, client: &Client) {
        let sent = self
            .to_ack
            .iter()
            .take_while(|p| client.try_ack(p).is_ok())
            .count();
        self.to_ack.drain(..sent);
    }
}

pub(crate) fn serve(a: &ServeArgs) -> Result<(), Failure> {
    let (host, port) = a
        .mqtt
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("--mqtt {}: not HOST:PORT", a.mqtt))?;
    let mut c = EngineConfig::default();
    c.grace_ms = a.grace as i64 * 1000;
    c.max_future_ms = (a.max_future > 0).then_some(a.max_future as i64 * 1000);
    c.seed = a.seed;
    let mut engine = Engine::open(c, Some(&a.store)).map_err(|e| e.to_string())?;
    if let Some(p) = &a.profile {
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
        engine
            .configure(&v)
            .map_err(|e| format!("{}: {e}", p.display()))?;
    } else if engine.profiles().is_empty() {
        return Err("no --profile given and the store holds no configuration"
            .to_string()
            .into());
    }
    a.response.apply(&mut engine)?;
    engine.commit(None).map_err(|e| e.to_string())?;
    respond(&mut engine, true)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    let mut o = MqttOptions::new(a.client_id.clone(), host.clone(), port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    // take any packet the broker sends (its own limit applies) and refuse oversized payloads
    // with a reply: a client-side limit would drop the connection, and the broker would
    // redeliver the same message for ever
    o.set_max_packet_size(256 * 1024 * 1024, MAX_PAYLOAD + 4096);
    let (client, mut conn) = Client::new(o, 4096);

    // content hashes: those saved with the last commit (the latest REDELIVERY_WINDOW
    // messages, which a crash may have left unacknowledged) come from the store, the rest
    // from this run
    let mut seen: HashSet<u64> = HashSet::new();
    let mut order: VecDeque<u64> = VecDeque::new();
    if let Some(cursor) = engine.cursor().and_then(|c| c.strip_prefix("mqtt:")) {
        for h in cursor
            .split(',')
            .filter_map(|h| u64::from_str_radix(h, 16).ok())
        {
            if seen.insert(h) {
                order.push_back(h);
            }
        }
    }
    // replies go out on a connection of their own, so that a burst of them never stands
    // in the way of the acknowledgements the broker waits for
    let mut ro = MqttOptions::new(format!("{}-replies", a.client_id), host.clone(), port);
    ro.set_keep_alive(Duration::from_secs(30));
    let (replies, mut reply_conn) = Client::new(ro, 16_384);
    std::thread::Builder::new()
        .name("rcf-serve-replies".into())
        .spawn(move || {
            for ev in reply_conn.iter() {
                if ev.is_err() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
        .map_err(|e| format!("cannot start the reply thread: {e}"))?;
    let mut replies_dropped = 0u64;
    let mut inbox = Inbox {
        unacked: Vec::new(),
        to_ack: Vec::new(),
        recent: order.iter().copied().collect(),
        fresh: 0,
    };
    let mut last_commit = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut subacks = 0;
    let (mut messages, mut accepted, mut rejected, mut duplicates) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    eprintln!(
        "rcf: serving $aws/things/+/defender/metrics/json and {} from {host}:{port}",
        a.telemetry_topic
    );
    loop {
        inbox.flush_acks(&client);
        if stop.load(Ordering::Relaxed) || a.max_messages.is_some_and(|m| messages >= m) {
            break;
        }
        let ev = match conn.recv_timeout(Duration::from_millis(50)) {
            Err(_) => {
                // quiet: commit what is pending; else look for what another process put in
                // the store (labels, quarantines) and retry undelivered alerts
                if inbox.pending() {
                    inbox.commit(&mut engine)?;
                    last_commit = Instant::now();
                } else if last_commit.elapsed() >= Duration::from_millis(a.commit_ms) {
                    respond(&mut engine, true)?;
                    last_commit = Instant::now();
                }
                continue;
            }
            Ok(ev) => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                if ack.session_present {
                    eprintln!("rcf: subscribed (session resumed)");
                } else {
                    client
                        .try_subscribe("$aws/things/+/defender/metrics/json", QoS::AtLeastOnce)
                        .and_then(|()| {
                            client.try_subscribe(a.telemetry_topic.clone(), QoS::AtLeastOnce)
                        })
                        .map_err(|e| format!("subscribe: {e}"))?;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                subacks += 1;
                if subacks == 2 {
                    eprintln!("rcf: subscribed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                messages += 1;
                let h = content_hash(&p.topic, &p.payload);
                if !seen.insert(h) {
                    duplicates += 1;
                    inbox.take(p, None);
                    continue;
                }
                order.push_back(h);
                if order.len() > DEDUP_WINDOW
                    && let Some(old) = order.pop_front()
                {
                    seen.remove(&old);
                }
                let report = report_thing(&p.topic).map(str::to_string);
                let outcome = match parse(&p.topic, &p.payload) {
                    Err(e) => Err(e),
                    Ok(dps) => {
                        let mut result = Ok(());
                        let mut events = Vec::new();
                        for dp in &dps {
                            match engine.ingest_into(dp, &mut events) {
                                Ok(_) => {}
                                Err(FleetError::Datapoint(reason)) => {
                                    result = Err(("InvalidPayload", reason));
                                }
                                Err(e) => return Err(e.to_string().into()),
                            }
                        }
                        for ev in events {
                            println!("{}", ev.to_json());
                        }
                        result
                    }
                };
                match &outcome {
                    Ok(()) => accepted += 1,
                    Err((code, reason)) => {
                        rejected += 1;
                        eprintln!("rcf: {}: rejected ({code}): {reason}", p.topic);
                    }
                }
                if let Some(thing) = report {
                    let report_id = serde_json::from_slice::<Value>(&p.payload)
                        .ok()
                        .and_then(|v| {
                            v.pointer("/header/report_id")
                                .or_else(|| v.pointer("/hed/rid"))
                                .cloned()
                        })
                        .unwrap_or(Value::Null);
                    let mut reply = json!({"thingName": thing, "reportId": report_id,
                        "timestamp": rcf_stream::fleet::time::format_rfc3339(
                            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as i64))});
                    let suffix = match &outcome {
                        Ok(()) => {
                            reply["status"] = json!("ACCEPTED");
                            "accepted"
                        }
                        Err((code, reason)) => {
                            reply["status"] = json!("REJECTED");
                            reply["statusDetails"] =
                                json!({"ErrorCode": code, "ErrorMessage": reason});
                            "rejected"
                        }
                    };
                    if replies
                        .try_publish(
                            format!("{}/{suffix}", p.topic),
                            QoS::AtMostOnce,
                            false,
                            reply.to_string().into_bytes(),
                        )
                        .is_err()
                    {
                        replies_dropped += 1;
                    }
                }
                inbox.take(p, Some(h));
                if last_commit.elapsed() >= Duration::from_millis(a.commit_ms)
                    || inbox.unacked.len() >= 1000
                {
                    inbox.commit(&mut engine)?;
                    last_commit = Instant::now();
                }
            }
            Ok(_) => {}
            Err(e) => {
                // disconnected: what is not acknowledged will come again; commit what we have
                if inbox.pending() {
                    inbox.commit(&mut engine)?;
                }
                eprintln!("rcf: broker {host}:{port}: {e}; reconnecting in {backoff:?}");
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    inbox.commit(&mut engine)?;
    // hand over and send the last acknowledgements before disconnecting
    let until = Instant::now() + Duration::from_secs(2);
    let quiet_from = Instant::now() + Duration::from_millis(200);
    loop {
        inbox.flush_acks(&client);
        let _ = conn.recv_timeout(Duration::from_millis(20));
        let now = Instant::now();
        if (inbox.to_ack.is_empty() && now >= quiet_from) || now >= until {
            break;
        }
    }
    let _ = client.try_disconnect();
    let _ = replies.try_disconnect();
    if replies_dropped > 0 {
        eprintln!("rcf: {replies_dropped} report replies dropped (their queue was full)");
    }
    let c = engine.counters();
    eprintln!(
        "rcf: stopped after {messages} messages ({accepted} accepted, {rejected} rejected, {duplicates} duplicates dropped) in {:.1} s; {} datapoints from {} things; events: {} in-alarm, {} alarm-cleared; watermark {}",
        started.elapsed().as_secs_f64(),
        c.datapoints,
        engine.things(),
        c.in_alarm,
        c.cleared,
        engine.watermark().map_or("-".into(), time::format_rfc3339)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_payloads_map_to_device_defenders_error_categories() {
        assert_eq!(
            report_thing("$aws/things/dev-1/defender/metrics/json"),
            Some("dev-1")
        );
        assert_eq!(
            report_thing("$aws/things/dev-1/defender/metrics/cbor"),
            None
        );
        let t = "$aws/things/dev-1/defender/metrics/json";
        assert_eq!(parse(t, b"{nope").unwrap_err().0, "Malformed");
        assert_eq!(
            parse(t, b"{\"metrics\": {}}").unwrap_err().0,
            "MissingHeader"
        );
        assert_eq!(
            parse(t, &vec![b' '; MAX_PAYLOAD + 1]).unwrap_err().0,
            "InvalidPayload"
        );
        let ok = br#"{"header": {"report_id": 1767225600, "version": "1.0"},
                     "metrics": {"network_stats": {"bytes_out": 10}}}"#;
        let dps = parse(t, ok).unwrap();
        assert_eq!(&*dps[0].thing, "dev-1");
        assert_eq!(content_hash("a", b"x"), content_hash("a", b"x"));
        assert_ne!(content_hash("a", b"x"), content_hash("ax", b""));
    }
}
