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

/// Deterministic noise in [−0.5, 0.5) from two integers (a multiplicative hash), for the
/// generated fleets of the tests.
pub(crate) fn hash_noise(a: i64, b: i64) -> f64 {
    let h = (a as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    ((h >> 40) as f64 / (1u64 << 24) as f64) - 0.5
}
