//! The few arithmetic kernels every traversal is built from.
//!
//! They are written over `chunks_exact(LANES)` with independent accumulators so that LLVM
//! vectorises them for the baseline target (SSE2 on x86-64) without `unsafe` or
//! `-C target-cpu`. No architecture-specific variant exists yet: the perf notes found that memory
//! latency, not arithmetic, bounds the hot path at the dimensions this crate is tuned for, and
//! the style guide asks for a bench-proven win before intrinsics are added.
//!
//! Accumulation is in `f64` in a fixed order, so results are bit-identical on every machine and
//! for every thread count.

const LANES: usize = 4;

/// How far `x` lies outside the box `[min, max]` and how large the box is.
///
/// Returns `(gap, range)` where `gap = Σ_i max(0, min_i − x_i) + max(0, x_i − max_i)` and
/// `range = Σ_i (max_i − min_i)`, both accumulated in `f64`. The probability that a random cut
/// of the box grown to include `x` separates `x` from the box is `gap / (range + gap)`
/// (rcf-reference §2).
#[inline]
pub(crate) fn gap_and_range(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    let n = x.len();
    assert!(min.len() == n && max.len() == n, "kernel slices must have equal length");
    let mut gap = [0.0f64; LANES];
    let mut range = [0.0f64; LANES];
    let xs = x.chunks_exact(LANES);
    let lo = min.chunks_exact(LANES);
    let hi = max.chunks_exact(LANES);
    let (xr, lr, hr) = (xs.remainder(), lo.remainder(), hi.remainder());
    for ((xc, lc), hc) in xs.zip(lo).zip(hi) {
        for k in 0..LANES {
            let (xv, lv, hv) = (f64::from(xc[k]), f64::from(lc[k]), f64::from(hc[k]));
            gap[k] += (lv - xv).max(0.0) + (xv - hv).max(0.0);
            range[k] += hv - lv;
        }
    }
    for k in 0..xr.len() {
        let (xv, lv, hv) = (f64::from(xr[k]), f64::from(lr[k]), f64::from(hr[k]));
        gap[k] += (lv - xv).max(0.0) + (xv - hv).max(0.0);
        range[k] += hv - lv;
    }
    (
        (gap[0] + gap[1]) + (gap[2] + gap[3]),
        (range[0] + range[1]) + (range[2] + range[3]),
    )
}

/// Probability that a random cut of `box ∪ {x}` separates `x` from the box; 0 when `x` is inside.
#[inline]
pub(crate) fn separation_probability(x: &[f32], min: &[f32], max: &[f32]) -> f64 {
    let (gap, range) = gap_and_range(x, min, max);
    if gap > 0.0 { gap / (range + gap) } else { 0.0 }
}

/// Grows the box `[min, max]` to contain the box `[other_min, other_max]`.
#[inline]
pub(crate) fn union_box(min: &mut [f32], max: &mut [f32], other_min: &[f32], other_max: &[f32]) {
    let n = min.len();
    assert!(max.len() == n && other_min.len() == n && other_max.len() == n);
    for i in 0..n {
        min[i] = min[i].min(other_min[i]);
        max[i] = max[i].max(other_max[i]);
    }
}

/// Grows the box `[min, max]` to contain the point `x`.
#[inline]
pub(crate) fn extend_box(min: &mut [f32], max: &mut [f32], x: &[f32]) {
    union_box(min, max, x, x);
}

/// Whether `x` lies strictly inside `[min, max]` in every dimension (so that removing `x` from
/// the box's point set cannot shrink it).
#[inline]
pub(crate) fn strictly_inside(x: &[f32], min: &[f32], max: &[f32]) -> bool {
    x.iter().zip(min).zip(max).all(|((&v, &lo), &hi)| lo < v && v < hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious one-pass definition the chunked kernel must agree with.
    fn naive(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
        let mut gap = 0.0;
        let mut range = 0.0;
        for i in 0..x.len() {
            let (xv, lv, hv) = (f64::from(x[i]), f64::from(min[i]), f64::from(max[i]));
            gap += (lv - xv).max(0.0) + (xv - hv).max(0.0);
            range += hv - lv;
        }
        (gap, range)
    }

    #[test]
    fn gap_and_range_matches_naive_for_every_length() {
        for n in 0..19 {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let min: Vec<f32> = (0..n).map(|i| -1.0 + i as f32 * 0.01).collect();
            let max: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.02).collect();
            let (g, r) = gap_and_range(&x, &min, &max);
            let (ng, nr) = naive(&x, &min, &max);
            assert!((g - ng).abs() <= 1e-12 * ng.abs().max(1.0), "n={n}: {g} vs {ng}");
            assert!((r - nr).abs() <= 1e-12 * nr.abs().max(1.0), "n={n}: {r} vs {nr}");
        }
    }

    #[test]
    fn point_inside_box_has_zero_separation() {
        let p = separation_probability(&[0.5, 0.5], &[0.0, 0.0], &[1.0, 1.0]);
        assert_eq!(p, 0.0);
        // on the boundary is inside too
        assert_eq!(separation_probability(&[1.0, 0.0], &[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn separation_probability_is_gap_over_grown_range() {
        // box [0,1]x[0,1], x = (3, 0.5): gap 2, range 2, grown range 4
        let p = separation_probability(&[3.0, 0.5], &[0.0, 0.0], &[1.0, 1.0]);
        assert!((p - 0.5).abs() < 1e-15);
    }

    #[test]
    fn strictly_inside_excludes_boundary() {
        assert!(strictly_inside(&[0.5], &[0.0], &[1.0]));
        assert!(!strictly_inside(&[0.0], &[0.0], &[1.0]));
        assert!(!strictly_inside(&[1.0], &[0.0], &[1.0]));
    }
}
