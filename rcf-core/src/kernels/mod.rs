//! The few arithmetic kernels every traversal is built from.
//!
//! `portable` code is written over fixed-width lanes so that LLVM can vectorise it for the
//! baseline target without `unsafe` or `-C target-cpu`. On x86-64 the separation kernel, which
//! every level of every walk calls, has an SSE2 twin in [`x86_64`] (SSE2 is part of the x86-64
//! baseline, so no run-time detection is needed), used from 4 dimensions up, and so has its
//! gap half alone (`gap_with_range`, the frozen trees' kernel: LLVM had vectorised the portable
//! body two floats at a time; the twin took W4 from 3.3 to 3.1 µs per point). `benches/kernels.rs`
//! measured it 2.4× faster than the portable body at 8 dimensions, 4.1× at 12 and 4.3× at 40,
//! and slower below one register's width. The twin keeps the portable lane order, so the two
//! agree bit for bit (checked by a differential test), and results do not depend on which one
//! ran.
//!
//! Two walks run compiled for AVX where the processor has it (`x86_64::with_avx`, checked at
//! run time): an attribution walk (its per-dimension updates four `f64` at a time, the rest in
//! three-operand VEX forms; W2 with attribution −11.9 % instructions, about −10 % wall clock)
//! and a frozen tree's batch scoring (W4 −6.8 % instructions, −4 %). Their code is the
//! portable code; Rust never fuses a multiply and an add, so the results are the same bit for
//! bit (tested against the same walks compiled without AVX). The live scoring walk gained
//! 1 % of instructions that way and nothing measurable in time, so it stays as it is.
//!
//! In the frozen walk, from 8 dimensions (a multiple of 4), the gap lanes take 256-bit
//! registers: [`x86_64::Avx::gap_lanes`], intrinsics behind an [`Avx`] token that only
//! run-time detection makes, tested bit for bit against [`gap_lanes_portable`] (W4:
//! 548 → 505 M instructions, −7.9 %). The live walk measured −3.8 % instructions with the
//! same kernel (its range too) and no gain in time (−1.3 % at a box cache of 2, +1.3 % at the
//! default 4: its levels wait on loads and on the walk's last branch, not on arithmetic), so
//! it was not kept.
//!
//! One kernel is chosen at run time: [`extend_box_many`], the union of a run of points into a
//! box (a walk's rebuild of the boxes it does not cache), above 12 dimensions takes an AVX
//! body where the processor has AVX (`is_x86_feature_detected!`). That body is the portable
//! one compiled for 256-bit registers, not intrinsics; a min or max is exact, so it too agrees
//! bit for bit (tested). On a fleet model (24 dimensions, no box cache) it took the unions from
//! half of a `process` call's instructions to under a third (callgrind: 1.00 of 1.99 G, then
//! 0.45 of 1.44 G) and the call from 8.9 to 7.5 µs.

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::Avx;

/// Proof that the processor has AVX, which no other architecture has: no value exists.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Avx {}

/// Asks the CPU to bring `s`'s memory into cache (one hint per 64-byte line), with no effect on
/// any result.
///
/// A fleet touches each model once per window, so a model is usually cold when its datapoint
/// arrives, and its walks chase node links whose loads depend on one another. Hinting the
/// whole of a model's arrays before (or while) working on it lets those misses overlap.
/// On x86-64 this is `prefetcht0` (part of the baseline); elsewhere it does nothing.
#[inline(always)]
pub(crate) fn prefetch<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    x86_64::prefetch(s);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}

/// SSE width: per-dimension terms are accumulated in this many `f32` lanes.
pub(crate) const LANES: usize = 4;

/// `max(v, 0)` written so that it compiles to one `maxps` lane (the inputs are finite; the
/// NaN-aware `f32::max` costs a compare and blend more per lane).
#[inline(always)]
pub(crate) fn pos(v: f32) -> f32 {
    if v > 0.0 { v } else { 0.0 }
}

/// How far `x` lies outside the box `[min, max]` and how large the box is.
///
/// Returns `(gap, range)` where `gap = Σ_i max(0, min_i − x_i) + max(0, x_i − max_i)` and
/// `range = Σ_i (max_i − min_i)`. The probability that a random cut of the box grown to include
/// `x` separates `x` from the box is `gap / (range + gap)` (rcf-reference §2).
///
/// Per-dimension terms are computed in `f32` (the precision of the data) and accumulated in
/// four lanes (one SSE register each for gap and range), which are reduced in `f64` in a fixed
/// order. `gap` is 0 exactly when `x` lies in the box, since every term is non-negative. Common
/// dimensions (multiples of 4 up to 16, and 1–3) get a fixed-length body with no remainder
/// loop; the match is on the forest's dimension, so it predicts perfectly.
///
/// **Any finite input.** A difference of two finite `f32`s, or a lane's running sum, can
/// overflow to infinity (a box from −3e38 to 3e38 has range 6e38 > `f32::MAX`), and an
/// infinite gap or range would make the separation probability NaN. The fast body's result is
/// therefore checked: if it is not finite (which only values beyond about ±1e38 can cause),
/// the terms are recomputed in `f64`, where every such sum is exact enough and finite. The
/// check is one predictable branch; both bodies give the same result for the same input, so
/// determinism is kept.
#[inline(always)]
pub(crate) fn gap_and_range(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    finite_or_wide(gap_and_range_unchecked(x, min, max), x, min, max)
}

/// [`gap_and_range`] without its overflow check: the `f32`-lane body's result, which is
/// infinite (never NaN: every term and sum is non-negative) where a value beyond about
/// ±1e38 overflowed, and otherwise equal to [`gap_and_range`]'s bit for bit.
///
/// For a walk that checks once at its end whether any level overflowed (one addition per
/// level instead of a test and branch), and walks again with [`gap_and_range`] if one did.
#[inline(always)]
pub(crate) fn gap_and_range_unchecked(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    // below one register's width the SSE2 body would only run its scalar tail, and the
    // portable fixed-length bodies are faster (benches/kernels.rs: 6.1 vs 11.0 µs per 1,024
    // calls at 3 dimensions)
    #[cfg(target_arch = "x86_64")]
    if x.len() >= LANES {
        return x86_64::gap_and_range(x, min, max);
    }
    gap_and_range_f32(x, min, max)
}

/// The portable [`gap_and_range`], the reference the arch kernels are tested against (and the
/// kernel itself on other architectures).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(crate) fn gap_and_range_portable(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    finite_or_wide(gap_and_range_f32(x, min, max), x, min, max)
}

/// `fast` if both sums are finite, else [`gap_and_range_wide`] (see [`gap_and_range`]).
#[inline(always)]
fn finite_or_wide(fast: (f64, f64), x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    if (fast.0 + fast.1).is_finite() {
        fast
    } else {
        gap_and_range_wide(x, min, max)
    }
}

/// The `gap` half of [`gap_and_range`], for a box whose `range` half (`range_fast`, the
/// [`range_f32`] of the box) was computed once: the same lanes in the same order, so
/// `gap_with_range(x, min, max, range_f32(min, max))` equals
/// `gap_and_range(x, min, max)` bit for bit, the overflow fallback included (tested). `D` is
/// the length when known at compile time (0: any).
///
/// Used by the frozen trees of batch scoring, whose boxes never change: half the kernel's
/// work. On x86-64 from 4 dimensions up the lanes are summed by an SSE2 twin
/// ([`x86_64::gap_lanes`]), below and elsewhere by [`gap_lanes_portable`].
#[inline(always)]
pub(crate) fn gap_with_range<const D: usize>(
    avx: Option<Avx>,
    x: &[f32],
    min: &[f32],
    max: &[f32],
    range_fast: f64,
) -> (f64, f64) {
    finite_or_wide(
        gap_with_range_unchecked::<D>(avx, x, min, max, range_fast),
        x,
        min,
        max,
    )
}

/// [`gap_with_range`] without its overflow check: infinite (never NaN) where a value beyond
/// about ±1e38 overflowed, else equal to it bit for bit. For a walk that checks once at its
/// end (as [`gap_and_range_unchecked`]).
///
/// With `avx` (a walk compiled for AVX), a multiple of 4 dimensions from 8 up takes 256-bit
/// registers ([`Avx::gap_lanes`](x86_64::Avx::gap_lanes), the same lanes bit for bit).
#[inline(always)]
pub(crate) fn gap_with_range_unchecked<const D: usize>(
    avx: Option<Avx>,
    x: &[f32],
    min: &[f32],
    max: &[f32],
    range_fast: f64,
) -> (f64, f64) {
    let n = if D > 0 { D } else { x.len() };
    assert!(
        x.len() == n && min.len() == n && max.len() == n,
        "kernel slices must have equal length"
    );
    #[cfg(target_arch = "x86_64")]
    if x86_64::avx_takes(D)
        && let Some(avx) = avx
    {
        return (avx.gap_lanes::<D>(x, min, max), range_fast);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx;
    #[cfg(target_arch = "x86_64")]
    let gap = if n < LANES {
        gap_lanes_portable::<D>(x, min, max)
    } else {
        x86_64::gap_lanes(fixed_len::<D>(x), fixed_len::<D>(min), fixed_len::<D>(max))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let gap = gap_lanes_portable::<D>(x, min, max);
    (gap, range_fast)
}

/// The portable gap lanes of [`gap_with_range`] (the reference its SSE2 twin is tested
/// against, and the kernel below 4 dimensions and on other architectures).
#[inline(always)]
pub(crate) fn gap_lanes_portable<const D: usize>(x: &[f32], min: &[f32], max: &[f32]) -> f64 {
    let n = if D > 0 { D } else { x.len() };
    let mut lanes = [0.0f32; LANES];
    for i in 0..n {
        lanes[i % LANES] += pos(min[i] - x[i]) + pos(x[i] - max[i]);
    }
    reduce(&lanes)
}

/// `s` with its length known to the compiler to be `D` when `D > 0` (checked once here), so
/// that loops over it unroll; `D` = 0 leaves it as it is (any length).
#[inline(always)]
pub(crate) fn fixed_len<const D: usize>(s: &[f32]) -> &[f32] {
    if D > 0 {
        let a: &[f32; D] = s.try_into().expect("slice of the forest's dimension");
        a
    } else {
        s
    }
}

/// [`fixed_len`] for a mutable slice.
#[inline(always)]
pub(crate) fn fixed_len_mut<const D: usize>(s: &mut [f32]) -> &mut [f32] {
    if D > 0 {
        let a: &mut [f32; D] = s.try_into().expect("slice of the forest's dimension");
        a
    } else {
        s
    }
}

/// [`fixed_len_mut`] for `f64` accumulators (attribution's per-dimension vectors).
#[inline(always)]
pub(crate) fn fixed_len_f64_mut<const D: usize>(s: &mut [f64]) -> &mut [f64] {
    if D > 0 {
        let a: &mut [f64; D] = s.try_into().expect("slice of the forest's dimension");
        a
    } else {
        s
    }
}

/// The `range` half of the `f32`-lane kernel before its overflow check (see
/// [`gap_with_range`]); `D` as there.
#[inline(always)]
pub(crate) fn range_f32<const D: usize>(min: &[f32], max: &[f32]) -> f64 {
    let (min, max) = (fixed_len::<D>(min), fixed_len::<D>(max));
    let mut lanes = [0.0f32; LANES];
    for i in 0..min.len().min(max.len()) {
        lanes[i % LANES] += max[i] - min[i];
    }
    reduce(&lanes)
}

/// [`gap_and_range`] with every term in `f64`: finite for any finite inputs (each term is at
/// most `2 · f32::MAX`, and a sum of at most 16,384 of them stays far below `f64::MAX`).
/// The cold path, taken only when the `f32` lanes overflowed.
#[cold]
#[inline(never)]
fn gap_and_range_wide(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    let mut gap = 0.0f64;
    let mut range = 0.0f64;
    for ((&x, &lo), &hi) in x.iter().zip(min).zip(max) {
        let (x, lo, hi) = (f64::from(x), f64::from(lo), f64::from(hi));
        gap += (lo - x).max(0.0) + (x - hi).max(0.0);
        range += hi - lo;
    }
    (gap, range)
}

/// The `f32`-lane body of the portable kernel (may overflow for values beyond ±1e38; callers
/// go through [`finite_or_wide`]).
#[inline(always)]
pub(crate) fn gap_and_range_f32(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    let n = x.len();
    assert!(
        min.len() == n && max.len() == n,
        "kernel slices must have equal length"
    );
    match n {
        1 => fixed::<1>(x, min, max),
        2 => fixed::<2>(x, min, max),
        3 => fixed::<3>(x, min, max),
        4 => fixed::<4>(x, min, max),
        8 => fixed::<8>(x, min, max),
        12 => fixed::<12>(x, min, max),
        16 => fixed::<16>(x, min, max),
        _ => any_length(x, min, max),
    }
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn fixed<const N: usize>(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    let (x, lo, hi): (&[f32; N], &[f32; N], &[f32; N]) = (
        x.try_into().expect("length checked"),
        min.try_into().expect("length checked"),
        max.try_into().expect("length checked"),
    );
    let mut gap = [0.0f32; LANES];
    let mut range = [0.0f32; LANES];
    for i in 0..N {
        gap[i % LANES] += pos(lo[i] - x[i]) + pos(x[i] - hi[i]);
        range[i % LANES] += hi[i] - lo[i];
    }
    (reduce(&gap), reduce(&range))
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
fn any_length(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    let mut gap = [0.0f32; LANES];
    let mut range = [0.0f32; LANES];
    let xs = x.chunks_exact(LANES);
    let lo = min.chunks_exact(LANES);
    let hi = max.chunks_exact(LANES);
    let (xr, lr, hr) = (xs.remainder(), lo.remainder(), hi.remainder());
    for ((xc, lc), hc) in xs.zip(lo).zip(hi) {
        for k in 0..LANES {
            gap[k] += pos(lc[k] - xc[k]) + pos(xc[k] - hc[k]);
            range[k] += hc[k] - lc[k];
        }
    }
    for k in 0..xr.len() {
        gap[k] += pos(lr[k] - xr[k]) + pos(xr[k] - hr[k]);
        range[k] += hr[k] - lr[k];
    }
    (reduce(&gap), reduce(&range))
}

/// Sum of the lanes in `f64`, pairwise in a fixed order.
#[inline(always)]
pub(crate) fn reduce(v: &[f32; LANES]) -> f64 {
    (f64::from(v[0]) + f64::from(v[2])) + (f64::from(v[1]) + f64::from(v[3]))
}

/// Probability that a random cut of `box ∪ {x}` separates `x` from the box; 0 when `x` is inside.
#[inline]
pub(crate) fn separation_probability(x: &[f32], min: &[f32], max: &[f32]) -> f64 {
    let (gap, range) = gap_and_range(x, min, max);
    if gap > 0.0 { gap / (range + gap) } else { 0.0 }
}

/// Grows the box `[min, max]` to contain the box `[other_min, other_max]`.
///
/// Written as compare-and-select rather than `f32::min`/`max` (which handle NaN and do not
/// vectorise): every value here is finite, and this form compiles to `minps`/`maxps`.
#[inline]
pub(crate) fn union_box(min: &mut [f32], max: &mut [f32], other_min: &[f32], other_max: &[f32]) {
    let n = min.len();
    assert!(max.len() == n && other_min.len() == n && other_max.len() == n);
    for i in 0..n {
        let (lo, hi) = (other_min[i], other_max[i]);
        min[i] = if lo < min[i] { lo } else { min[i] };
        max[i] = if hi > max[i] { hi } else { max[i] };
    }
}

/// Grows the box `[min, max]` to contain the point `x`.
#[inline]
pub(crate) fn extend_box(min: &mut [f32], max: &mut [f32], x: &[f32]) {
    union_box(min, max, x, x);
}

/// Grows the box `[min, max]` to contain every point of `points` (`D` values each; `D` 0:
/// any length), as [`extend_box`] point by point, with the same result bit for bit.
///
/// For a length known at compile time the bounds are held in local arrays, which the
/// compiler keeps in registers for the whole run (written through `min` and `max` instead,
/// every point loaded, compared and stored the bounds back to memory: perf showed the
/// subtree unions of a fleet model's walk, half its instructions, waiting on those stores).
/// Above [`UNION_BLOCK`] dimensions, on x86-64 with AVX (checked at run time), the same body
/// compiled for 256-bit registers takes all the dimensions in one pass
/// ([`x86_64::extend_box_many`]); elsewhere a pass per [`UNION_BLOCK`] dimensions.
#[inline(always)]
pub(crate) fn extend_box_many<'a, const D: usize>(
    min: &mut [f32],
    max: &mut [f32],
    points: impl Iterator<Item = &'a [f32]> + Clone,
) {
    if D == 0 {
        for x in points {
            extend_box(min, max, x);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if D > UNION_BLOCK && x86_64::extend_box_many::<D>(min, max, points.clone()) {
        return;
    }
    extend_box_blocks::<D, UNION_BLOCK>(min, max, points);
}

/// The body of [`extend_box_many`] for `D > 0`: the bounds of `B` dimensions at a time in
/// local arrays, a pass over the points per block (the portable twin of the AVX kernel, which
/// is this body with `B` = `D`).
#[inline(always)]
pub(crate) fn extend_box_blocks<'a, const D: usize, const B: usize>(
    min: &mut [f32],
    max: &mut [f32],
    points: impl Iterator<Item = &'a [f32]> + Clone,
) {
    assert!(D > 0 && min.len() == D && max.len() == D);
    let mut s = 0;
    while s < D {
        let w = B.min(D - s);
        let mut lo = [0.0f32; B];
        let mut hi = [0.0f32; B];
        lo[..w].copy_from_slice(&min[s..s + w]);
        hi[..w].copy_from_slice(&max[s..s + w]);
        for x in points.clone() {
            let x: &[f32; D] = x.try_into().expect("point of the box's dimension");
            let x = &x[s..s + w];
            for k in 0..w {
                // union_box's comparisons, in its order
                lo[k] = if x[k] < lo[k] { x[k] } else { lo[k] };
                hi[k] = if x[k] > hi[k] { x[k] } else { hi[k] };
            }
        }
        min[s..s + w].copy_from_slice(&lo[..w]);
        max[s..s + w].copy_from_slice(&hi[..w]);
        s += w;
    }
}

/// Dimensions [`extend_box_blocks`] bounds per pass with 128-bit registers: 3 of minima and
/// 3 of maxima, with room for a point's 3 and their copies (24 at once spilled to the stack).
pub(crate) const UNION_BLOCK: usize = 12;

/// Whether `x` lies strictly inside `[min, max]` in every dimension (so that removing `x` from
/// the box's point set cannot shrink it).
#[inline]
pub(crate) fn strictly_inside(x: &[f32], min: &[f32], max: &[f32]) -> bool {
    // every dimension compared, no early exit: with a length known at compile time the
    // comparisons are a few vector instructions instead of a branch per bound
    x.iter()
        .zip(min)
        .zip(max)
        .fold(true, |inside, ((&v, &lo), &hi)| {
            inside & (lo < v) & (v < hi)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious one-pass definition, in f64 throughout, the chunked kernel must agree with
    /// to f32 precision.
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
        // covers every fixed-length body and the any-length fallback on both sides of them
        for n in 0..35 {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let min: Vec<f32> = (0..n).map(|i| -1.0 + i as f32 * 0.01).collect();
            let max: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.02).collect();
            let (g, r) = gap_and_range_portable(&x, &min, &max);
            // the fallback must agree with the fixed bodies to f32 precision too
            let (ag, ar) = any_length(&x, &min, &max);
            assert!(
                (g - ag).abs() <= 1e-6 * ag.abs().max(1.0)
                    && (r - ar).abs() <= 1e-6 * ar.abs().max(1.0)
            );
            let (ng, nr) = naive(&x, &min, &max);
            // f32 terms: relative error within a few f32 ulps of the total
            assert!(
                (g - ng).abs() <= 1e-6 * ng.abs().max(1.0),
                "n={n}: {g} vs {ng}"
            );
            assert!(
                (r - nr).abs() <= 1e-6 * nr.abs().max(1.0),
                "n={n}: {r} vs {nr}"
            );
            assert_eq!(g == 0.0, ng == 0.0, "inside-ness must be exact");
        }
    }

    #[test]
    fn overflowing_lanes_fall_back_to_wide_arithmetic() {
        for n in [1usize, 2, 3, 4, 7, 8, 12, 16, 33] {
            let x: Vec<f32> = (0..n)
                .map(|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX })
                .collect();
            let min = vec![-f32::MAX; n];
            let max: Vec<f32> = (0..n)
                .map(|i| if i == 0 { -1e38 } else { f32::MAX })
                .collect();
            let (g, r) = gap_and_range(&x, &min, &max);
            let (ng, nr) = naive(&x, &min, &max);
            assert!(g.is_finite() && r.is_finite(), "n={n}: {g} {r}");
            assert_eq!((g, r), (ng, nr), "n={n}: the wide path is the naive sum");
            assert_eq!(gap_and_range_portable(&x, &min, &max), (g, r));
            let p = separation_probability(&x, &min, &max);
            assert!((0.0..=1.0).contains(&p), "n={n}: {p}");
        }
    }

    #[test]
    fn point_inside_box_has_zero_separation() {
        let p = separation_probability(&[0.5, 0.5], &[0.0, 0.0], &[1.0, 1.0]);
        assert_eq!(p, 0.0);
        // on the boundary is inside too
        assert_eq!(
            separation_probability(&[1.0, 0.0], &[0.0, 0.0], &[1.0, 1.0]),
            0.0
        );
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

    /// `gap_with_range` with the box's `range_f32` must be `gap_and_range` bit for bit, for
    /// any finite values of any magnitude (overflowing lanes and the wide fallback included),
    /// at every length and through each fixed-length body the frozen trees use.
    #[test]
    fn gap_with_range_is_gap_and_range_bit_for_bit() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || xorshift(&mut state);
        let scales = [1.0f32, 1e3, 1e30, 1e38, f32::MAX];
        for case in 0..4_000 {
            let n = case % 41;
            let scale = scales[(case / 41) % scales.len()];
            let mut value = || {
                let u = (next() >> 40) as f32 / (1u64 << 24) as f32;
                ((2.0 * u - 1.0) * scale).clamp(-f32::MAX, f32::MAX)
            };
            let x: Vec<f32> = (0..n).map(|_| value()).collect();
            let (min, max): (Vec<f32>, Vec<f32>) = (0..n)
                .map(|_| {
                    let (a, b) = (value(), value());
                    (a.min(b), a.max(b))
                })
                .unzip();
            let expect = gap_and_range(&x, &min, &max);
            let range = range_f32::<0>(&min, &max);
            let got = match n {
                1 => gap_with_range::<1>(None, &x, &min, &max, range),
                3 => gap_with_range::<3>(None, &x, &min, &max, range),
                8 => gap_with_range::<8>(None, &x, &min, &max, range),
                12 => gap_with_range::<12>(None, &x, &min, &max, range),
                24 => gap_with_range::<24>(None, &x, &min, &max, range),
                _ => gap_with_range::<0>(None, &x, &min, &max, range),
            };
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits()),
                (expect.0.to_bits(), expect.1.to_bits()),
                "n={n}, scale={scale}"
            );
            assert!(got.0.is_finite() && got.1.is_finite());
        }
    }

    /// The next value of a xorshift64 generator (the tests' fixed-seed inputs).
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Random points of `dims` values for the box-union tests: small integers (so that
    /// values repeat and ties between a point and a bound are common), with signed zeros.
    pub(super) fn union_points(dims: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed | 1;
        let mut next = move || xorshift(&mut state);
        (0..n)
            .map(|_| {
                (0..dims)
                    .map(|_| match next() % 8 {
                        0 => 0.0,
                        1 => -0.0,
                        r => (r as f32 - 4.0) * 1.5e3 + (next() % 3) as f32,
                    })
                    .collect()
            })
            .collect()
    }

    /// `extend_box_many` (whichever body it takes: blocks, AVX on x86-64 with AVX, any
    /// length) grows a box exactly as `extend_box` point by point, bit for bit (signed zeros
    /// and ties included), from an empty box and from a box that already holds values.
    #[test]
    fn extend_box_many_is_extend_box_point_by_point() {
        fn check<const D: usize>(dims: usize, seed: u64) {
            for n in [0, 1, 2, 7, 64] {
                let pts = union_points(dims, n + 1, seed ^ n as u64);
                let (first, rest) = pts.split_first().unwrap();
                for start_empty in [true, false] {
                    let (mut lo, mut hi) = if start_empty {
                        (vec![f32::INFINITY; dims], vec![f32::NEG_INFINITY; dims])
                    } else {
                        (first.clone(), first.clone())
                    };
                    let (mut lo2, mut hi2) = (lo.clone(), hi.clone());
                    for p in rest {
                        extend_box(&mut lo, &mut hi, p);
                    }
                    extend_box_many::<D>(&mut lo2, &mut hi2, rest.iter().map(Vec::as_slice));
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&lo2), bits(&lo), "min, dims {dims}, {n} points");
                    assert_eq!(bits(&hi2), bits(&hi), "max, dims {dims}, {n} points");
                }
            }
        }
        check::<1>(1, 1);
        check::<3>(3, 2);
        check::<8>(8, 3);
        check::<12>(12, 4);
        check::<16>(16, 5);
        check::<24>(24, 6);
        check::<0>(5, 7);
        check::<0>(30, 8);
    }
}
