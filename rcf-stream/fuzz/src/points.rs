//! Inputs built from fuzz bytes; shared by the fuzz targets and the replay of their findings
//! (`rcf-stream/tests/it/fuzz_findings.rs` includes this file), so both feed the same points.

/// Up to `n` points of `dims` finite values made from `bytes` (non-finite bit patterns become
/// 0; every finite magnitude is kept).
pub(crate) fn points(bytes: &[u8], dims: usize, n: usize) -> Vec<Vec<f32>> {
    let mut values = bytes.chunks_exact(4).map(|b| {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if v.is_finite() { v } else { 0.0 }
    });
    (0..n)
        .map(|i| {
            (0..dims)
                .map(|j| {
                    values
                        .next()
                        .unwrap_or(((i * dims + j) as f32 * 0.37).sin())
                })
                .collect()
        })
        .collect()
}
