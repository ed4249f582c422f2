//! rcf-stream integration tests: one binary.

mod cli;
mod detector;
mod fleet;
mod fleet_cli;
mod fleet_models;
mod fleet_serve;
mod fuzz_findings;
mod hostile;
mod response;
mod shard;
mod webhook;

/// An event's time member (epoch seconds or RFC 3339) in epoch ms.
pub(crate) fn fleet_time(v: &serde_json::Value) -> i64 {
    rcf_stream::fleet::time::parse_json(v).unwrap()
}
