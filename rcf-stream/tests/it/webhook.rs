//! A local webhook receiver for the response tests: HTTP/1.1 on 127.0.0.1, keep-alive, records
//! every JSON body it accepts; it can answer an error status or hold requests past a client's
//! timeout, to play an endpoint that is down or slow.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The receiver; dropped, it stops accepting.
pub(crate) struct Webhook {
    pub(crate) url: String,
    state: Arc<State>,
}

struct State {
    /// The status answered (200 accepts and records the body).
    status: AtomicU16,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
    bodies: Mutex<Vec<Value>>,
    content_types: Mutex<Vec<String>>,
    requests: AtomicU64,
    stop: AtomicBool,
}

impl Webhook {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(State {
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            bodies: Mutex::new(Vec::new()),
            content_types: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || serve(conn, &s));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
        });
        Webhook {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    /// Answer with this status from now on (200: accept).
    pub(crate) fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::Relaxed);
    }

    /// Wait this long before answering.
    pub(crate) fn delay(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// The bodies accepted (a JSON array body counts as its elements).
    pub(crate) fn received(&self) -> Vec<Value> {
        self.state
            .bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| match b {
                Value::Array(a) => a.clone(),
                one => vec![one.clone()],
            })
            .collect()
    }

    /// The bodies accepted, as they came (one per POST).
    pub(crate) fn posts(&self) -> Vec<Value> {
        self.state.bodies.lock().unwrap().clone()
    }

    pub(crate) fn content_types(&self) -> Vec<String> {
        self.state.content_types.lock().unwrap().clone()
    }

    /// Requests seen, accepted or not.
    pub(crate) fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(conn: TcpStream, s: &State) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        let mut ctype = String::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "content-type" => ctype = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        s.requests.fetch_add(1, Ordering::Relaxed);
        let delay = s.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let status = s.status.load(Ordering::Relaxed);
        if status == 200 {
            s.bodies
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            s.content_types.lock().unwrap().push(ctype);
        }
        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
