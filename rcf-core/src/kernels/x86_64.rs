//! SSE2 kernels (x86-64 baseline: always available, no run-time detection), and one AVX
//! kernel chosen at run time ([`extend_box_many`]).
//!
//! Each kernel computes exactly what its portable twin in `kernels/mod.rs` computes, in the same
//! lane order, so results are bit-identical; `tests` below check that on random inputs.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m128, _mm_add_pd, _mm_add_ps, _mm_add_sd, _mm_cvtps_pd, _mm_cvtsd_f64, _mm_loadu_ps,
    _mm_max_ps, _mm_movehl_ps, _mm_setzero_ps, _mm_storeu_ps, _mm_sub_ps, _mm_unpackhi_pd,
};

use super::{LANES, pos, reduce};

/// SSE2 twin of the portable `f32`-lane body (`super::gap_and_range_f32`); the caller applies
/// the same overflow fallback to both.
#[inline(always)]
pub(crate) fn gap_and_range(x: &[f32], min: &[f32], max: &[f32]) -> (f64, f64) {
    if x.len().is_multiple_of(LANES) && !x.is_empty() {
        let (gap, range) = registers::<true>(x, min, max);
        return (reduce_register(gap), reduce_register(range));
    }
    let (gap, range) = lanes::<true>(x, min, max);
    (reduce(&gap), reduce(&range))
}

/// [`super::reduce`] of the four lanes of `v`, in registers: `(v0 + v2) + (v1 + v3)` in
/// `f64`, the same operations in the same order (bit-identical, tested).
#[inline(always)]
fn reduce_register(v: __m128) -> f64 {
    // SAFETY: SSE2 is enabled on every x86-64 target, so the intrinsics are available; they
    // only move and add register values.
    unsafe {
        // [v0, v1] + [v2, v3] = [v0 + v2, v1 + v3], then the two halves added
        let pairs = _mm_add_pd(_mm_cvtps_pd(v), _mm_cvtps_pd(_mm_movehl_ps(v, v)));
        _mm_cvtsd_f64(_mm_add_sd(pairs, _mm_unpackhi_pd(pairs, pairs)))
    }
}

/// [`lanes`] for a length that is a positive multiple of [`LANES`], left in registers for
/// [`reduce_register`] (no trip through memory).
#[inline(always)]
fn registers<const RANGE: bool>(x: &[f32], min: &[f32], max: &[f32]) -> (__m128, __m128) {
    let n = x.len();
    assert!(
        n >= LANES && n.is_multiple_of(LANES) && min.len() == n && max.len() == n,
        "kernel slices must have equal length, a multiple of the lanes"
    );
    // SAFETY: SSE2 is enabled on every x86-64 target, so the intrinsics are available. Every
    // load reads LANES floats starting at index `c * LANES` with `c < n / LANES`, so it ends at
    // or before index `n`, within each of the three slices (all of length `n`, asserted).
    unsafe {
        let zero = _mm_setzero_ps();
        let terms = |i: usize| {
            let xv = _mm_loadu_ps(x.as_ptr().add(i));
            let lo = _mm_loadu_ps(min.as_ptr().add(i));
            let hi = _mm_loadu_ps(max.as_ptr().add(i));
            let below = _mm_max_ps(_mm_sub_ps(lo, xv), zero);
            let above = _mm_max_ps(_mm_sub_ps(xv, hi), zero);
            (_mm_add_ps(below, above), _mm_sub_ps(hi, lo))
        };
        let (mut gap, mut range) = (zero, zero);
        for c in 0..n / LANES {
            let (g, r) = terms(c * LANES);
            gap = _mm_add_ps(gap, g);
            if RANGE {
                range = _mm_add_ps(range, r);
            }
        }
        (gap, if RANGE { range } else { zero })
    }
}

/// SSE2 twin of the portable gap lanes of `super::gap_with_range` (the `gap` half of
/// [`gap_and_range`] alone): the same lanes in the same order, so bit-identical (tested).
#[inline(always)]
pub(crate) fn gap_lanes(x: &[f32], min: &[f32], max: &[f32]) -> f64 {
    if x.len().is_multiple_of(LANES) && !x.is_empty() {
        return reduce_register(registers::<false>(x, min, max).0);
    }
    reduce(&lanes::<false>(x, min, max).0)
}

/// The per-lane sums of both kernels: the gap terms, and with `RANGE` the box's size terms
/// (else zeros), in the portable lane order.
#[inline(always)]
fn lanes<const RANGE: bool>(x: &[f32], min: &[f32], max: &[f32]) -> ([f32; LANES], [f32; LANES]) {
    let n = x.len();
    assert!(
        min.len() == n && max.len() == n,
        "kernel slices must have equal length"
    );
    let chunks = n / LANES;
    let mut gap_lanes = [0.0f32; LANES];
    let mut range_lanes = [0.0f32; LANES];
    // SAFETY: SSE2 is enabled on every x86-64 target, so the intrinsics are available. Every
    // load reads LANES floats starting at index `c * LANES` with `c < n / LANES`, so it ends at or
    // before index `n`, within each of the three slices (all of length `n`, asserted above).
    // `_mm_loadu_ps`/`_mm_storeu_ps` have no alignment requirement; the stores write exactly
    // LANES floats into the local arrays.
    unsafe {
        let zero = _mm_setzero_ps();
        let mut gap: __m128 = zero;
        let mut range: __m128 = zero;
        for c in 0..chunks {
            let i = c * LANES;
            let xv = _mm_loadu_ps(x.as_ptr().add(i));
            let lo = _mm_loadu_ps(min.as_ptr().add(i));
            let hi = _mm_loadu_ps(max.as_ptr().add(i));
            // max(v, 0) as `pos`: maxps returns its second operand, 0, when v is not greater
            let below = _mm_max_ps(_mm_sub_ps(lo, xv), zero);
            let above = _mm_max_ps(_mm_sub_ps(xv, hi), zero);
            gap = _mm_add_ps(gap, _mm_add_ps(below, above));
            if RANGE {
                range = _mm_add_ps(range, _mm_sub_ps(hi, lo));
            }
        }
        _mm_storeu_ps(gap_lanes.as_mut_ptr(), gap);
        _mm_storeu_ps(range_lanes.as_mut_ptr(), range);
    }
    let tail = chunks * LANES;
    for k in 0..n - tail {
        let i = tail + k;
        gap_lanes[k] += pos(min[i] - x[i]) + pos(x[i] - max[i]);
        if RANGE {
            range_lanes[k] += max[i] - min[i];
        }
    }
    (gap_lanes, range_lanes)
}

/// [`super::extend_box_many`] with AVX, if this processor has it (checked at run time; the
/// answer is cached by the standard library): returns false, touching nothing, if not.
///
/// The body is the portable [`super::extend_box_blocks`] with one block of all `D`
/// dimensions, compiled for 256-bit registers: 24 dimensions' bounds are 6 AVX registers,
/// one pass over the points instead of two. A min or max of `f32`s is exact and the
/// comparisons are the portable ones, so the result is the same bit for bit (tested).
#[inline]
pub(crate) fn extend_box_many<'a, const D: usize>(
    min: &mut [f32],
    max: &mut [f32],
    points: impl Iterator<Item = &'a [f32]> + Clone,
) -> bool {
    if !std::arch::is_x86_feature_detected!("avx") {
        return false;
    }
    // SAFETY: the only requirement of a `target_feature` function is that the processor has
    // the feature, checked just above; the body is safe code.
    unsafe { extend_box_many_avx::<D>(min, max, points) };
    true
}

/// [`extend_box_many`]'s body, compiled with AVX.
#[target_feature(enable = "avx")]
fn extend_box_many_avx<'a, const D: usize>(
    min: &mut [f32],
    max: &mut [f32],
    points: impl Iterator<Item = &'a [f32]> + Clone,
) {
    super::extend_box_blocks::<D, D>(min, max, points);
}

/// A computation that [`with_avx`] compiles for AVX. Its [`run`](AvxBody::run) must be
/// `#[inline(always)]`, so that it and what it inlines are compiled into [`run_avx`].
pub(crate) trait AvxBody {
    /// What it computes.
    type Output;
    /// Computes it, with the proof that the processor has AVX (for the AVX kernels).
    fn run(self, avx: Avx) -> Self::Output;
}

/// Proof that this processor has AVX: made only by [`Avx::detect`], after checking, so that
/// the AVX kernels that take one are safe to call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx(());

impl Avx {
    /// The proof, if this processor has AVX (checked at run time; the answer is cached by the
    /// standard library).
    #[inline]
    pub(crate) fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx").then_some(Self(()))
    }

    /// [`super::gap_lanes_portable`] for `D` dimensions, a multiple of 4 from 8 up, reduced
    /// as [`super::reduce`], with 256-bit registers: eight dimensions' terms at once, each
    /// register's upper four added to its lower four in the order the four `f32` lanes add
    /// them, and the reduction to `f64` four lanes at a time. The same operations in the
    /// same order, so the same result bit for bit (tested).
    #[inline(always)]
    pub(crate) fn gap_lanes<const D: usize>(self, x: &[f32], min: &[f32], max: &[f32]) -> f64 {
        let (x, min, max): (&[f32; D], &[f32; D], &[f32; D]) = (
            x.try_into().expect("slice of the kernel's dimension"),
            min.try_into().expect("slice of the kernel's dimension"),
            max.try_into().expect("slice of the kernel's dimension"),
        );
        // SAFETY: an `Avx` exists only where the processor was found to have AVX.
        unsafe { gap_lanes_avx::<D>(x, min, max) }
    }
}

/// Whether [`Avx::gap_lanes`] takes `d` dimensions (a multiple of 4, at least 8).
pub(crate) const fn avx_takes(d: usize) -> bool {
    d >= 2 * LANES && d.is_multiple_of(LANES)
}

/// The body of [`Avx::gap_lanes`].
#[target_feature(enable = "avx")]
#[inline]
fn gap_lanes_avx<const D: usize>(x: &[f32; D], min: &[f32; D], max: &[f32; D]) -> f64 {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_castpd256_pd128, _mm256_castps256_ps128, _mm256_cvtps_pd,
        _mm256_extractf128_pd, _mm256_extractf128_ps, _mm256_loadu_ps, _mm256_max_ps,
        _mm256_setzero_ps, _mm256_sub_ps,
    };
    assert!(avx_takes(D), "AVX kernel dimension");
    let zero4 = _mm_setzero_ps();
    let zero8 = _mm256_setzero_ps();
    // the four lanes, chunk of four after chunk of four, as `registers` adds them, starting
    // at the first chunk's terms (`0 + t = t`: a term is `+0` or positive, never −0)
    let mut gap = zero4;
    let mut i = 0;
    while i + 2 * LANES <= D {
        // SAFETY: AVX is enabled in this function; the loads read floats `i..i + 8`, within
        // the arrays since `i + 8 <= D`.
        let (xv, lo, hi) = unsafe {
            (
                _mm256_loadu_ps(x.as_ptr().add(i)),
                _mm256_loadu_ps(min.as_ptr().add(i)),
                _mm256_loadu_ps(max.as_ptr().add(i)),
            )
        };
        // max(v, 0) as `pos`: the second operand, 0, where v is not greater
        let below = _mm256_max_ps(_mm256_sub_ps(lo, xv), zero8);
        let above = _mm256_max_ps(_mm256_sub_ps(xv, hi), zero8);
        let terms = _mm256_add_ps(below, above);
        let low = _mm256_castps256_ps128(terms);
        gap = if i == 0 { low } else { _mm_add_ps(gap, low) };
        gap = _mm_add_ps(gap, _mm256_extractf128_ps::<1>(terms));
        i += 2 * LANES;
    }
    if i < D {
        // SAFETY: D is a multiple of 4, so four floats remain: `i + 4 == D`.
        let (xv, lo, hi) = unsafe {
            (
                _mm_loadu_ps(x.as_ptr().add(i)),
                _mm_loadu_ps(min.as_ptr().add(i)),
                _mm_loadu_ps(max.as_ptr().add(i)),
            )
        };
        let below = _mm_max_ps(_mm_sub_ps(lo, xv), zero4);
        let above = _mm_max_ps(_mm_sub_ps(xv, hi), zero4);
        gap = _mm_add_ps(gap, _mm_add_ps(below, above));
    }
    // (v0 + v2) + (v1 + v3) in f64, as `reduce`
    let v = _mm256_cvtps_pd(gap);
    let pairs = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    _mm_cvtsd_f64(_mm_add_sd(pairs, _mm_unpackhi_pd(pairs, pairs)))
}

/// Runs `body` compiled for AVX, if this processor has it (checked at run time; the answer
/// is cached by the standard library); gives it back, unrun, if not.
///
/// The body is compiled into [`run_avx`], a function with AVX enabled, so LLVM may use
/// 256-bit registers and the three-operand VEX forms for it. Rust never fuses a multiply and
/// an add, and vectorised `f64` operations are the scalar ones side by side in the same
/// order, so what the body computes is the same bit for bit with or without AVX (each
/// caller tests its body both ways).
#[inline]
pub(crate) fn with_avx<B: AvxBody>(body: B) -> Result<B::Output, B> {
    let Some(avx) = Avx::detect() else {
        return Err(body);
    };
    // SAFETY: the only requirement of a `target_feature` function is that the processor has
    // the feature, which `avx` proves; the body is safe code.
    Ok(unsafe { run_avx(body, avx) })
}

/// [`with_avx`]'s frame, compiled with AVX.
#[target_feature(enable = "avx")]
fn run_avx<B: AvxBody>(body: B, avx: Avx) -> B::Output {
    body.run(avx)
}

/// Bytes between two prefetch hints: a cache line.
const LINE: usize = 64;

/// `prefetcht0` of every cache line of `s` (see `super::prefetch`).
#[inline(always)]
pub(crate) fn prefetch<T>(s: &[T]) {
    use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    let base = s.as_ptr().cast::<i8>();
    let bytes = std::mem::size_of_val(s);
    let mut off = 0;
    while off < bytes {
        // SAFETY: SSE is enabled on every x86-64 target, so the intrinsic is available. A
        // prefetch is a hint: it never faults and reads nothing into the program, and the
        // address `base + off` (off < bytes) lies within the slice's allocation.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(base.add(off)) };
        off += LINE;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{gap_and_range, gap_and_range_f32, gap_and_range_portable};
    use super::Avx;

    /// [`Avx::gap_lanes`] at the length of `x`, if this processor has AVX and the kernel
    /// takes that length (the ones instantiated here: 8 to 32 by 4).
    fn avx_gap_lanes(x: &[f32], min: &[f32], max: &[f32]) -> Option<f64> {
        let avx = Avx::detect()?;
        Some(match x.len() {
            8 => avx.gap_lanes::<8>(x, min, max),
            12 => avx.gap_lanes::<12>(x, min, max),
            16 => avx.gap_lanes::<16>(x, min, max),
            20 => avx.gap_lanes::<20>(x, min, max),
            24 => avx.gap_lanes::<24>(x, min, max),
            28 => avx.gap_lanes::<28>(x, min, max),
            32 => avx.gap_lanes::<32>(x, min, max),
            _ => return None,
        })
    }

    /// The prefetch kernel has no result to compare with a twin (its portable form does
    /// nothing); what it must do is stay inside the slice whatever its length and alignment
    /// (empty, shorter than a line, a line plus one byte, unaligned starts) and leave every
    /// value as it was.
    #[test]
    fn prefetch_reads_nothing_and_keeps_within_the_slice() {
        let data: Vec<u8> = (0..=255).collect();
        for start in [0, 1, 3, 63] {
            for len in [0, 1, 63, 64, 65, 128, 129, 192] {
                super::prefetch(&data[start..start + len]);
            }
        }
        super::prefetch::<f32>(&[]);
        super::prefetch(&[0u64; 3]);
        assert!(data.iter().enumerate().all(|(i, &b)| b as usize == i));
    }

    /// The AVX union kernel against its portable twin (the blocks of 128-bit width), bit
    /// for bit, at the dimensions that take it; says so if this processor has no AVX.
    #[test]
    fn avx_union_matches_portable_blocks() {
        fn check<const D: usize>(seed: u64) -> bool {
            let pts = super::super::tests::union_points(D, 200, seed);
            let (first, rest) = pts.split_first().unwrap();
            let (mut lo, mut hi) = (first.clone(), first.clone());
            let (mut lo2, mut hi2) = (first.clone(), first.clone());
            let points = rest.iter().map(Vec::as_slice);
            super::super::extend_box_blocks::<D, { super::super::UNION_BLOCK }>(
                &mut lo,
                &mut hi,
                points.clone(),
            );
            if !super::extend_box_many::<D>(&mut lo2, &mut hi2, points) {
                return false;
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&lo2), bits(&lo), "min, {D} dimensions");
            assert_eq!(bits(&hi2), bits(&hi), "max, {D} dimensions");
            true
        }
        let ran = [check::<16>(1), check::<24>(2), check::<13>(3)];
        if !ran.iter().all(|&r| r) {
            eprintln!("no AVX on this processor: the AVX union kernel was not compared");
        }
    }

    /// The in-register reduction (lengths that are multiples of 4), and the AVX gap lanes
    /// (from 8 up), against the portable lanes, with signed zeros, boxes of one point, and
    /// values near `f32::MAX`.
    #[test]
    fn register_reduction_matches_portable_at_every_multiple_of_four() {
        let specials = [
            0.0f32,
            -0.0,
            1.5,
            -2.25,
            3e38,
            -3e38,
            1e-40,
            f32::MAX,
            f32::MIN,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut compared = 0;
        for n in [4usize, 8, 12, 16, 24, 32] {
            for _ in 0..500 {
                let mut pick = || specials[(next() % specials.len() as u64) as usize];
                let x: Vec<f32> = (0..n).map(|_| pick()).collect();
                let (min, max): (Vec<f32>, Vec<f32>) = (0..n)
                    .map(|_| {
                        let (a, c) = (pick(), pick());
                        if c < a { (c, a) } else { (a, c) }
                    })
                    .unzip();
                let fast = super::gap_and_range(&x, &min, &max);
                let portable = gap_and_range_f32(&x, &min, &max);
                assert_eq!(fast.0.to_bits(), portable.0.to_bits(), "gap, n = {n}");
                assert_eq!(fast.1.to_bits(), portable.1.to_bits(), "range, n = {n}");
                let gap = super::gap_lanes(&x, &min, &max);
                let gap_portable = super::super::gap_lanes_portable::<0>(&x, &min, &max);
                assert_eq!(gap.to_bits(), gap_portable.to_bits(), "gap lanes, n = {n}");
                if let Some(avx) = avx_gap_lanes(&x, &min, &max) {
                    assert_eq!(
                        avx.to_bits(),
                        gap_portable.to_bits(),
                        "AVX gap lanes, n = {n}"
                    );
                    compared += 1;
                }
            }
        }
        if Avx::detect().is_none() {
            eprintln!("no AVX on this processor: the AVX gap lanes were not compared");
        } else {
            assert_eq!(
                compared,
                5 * 500,
                "every length from 8 up took the AVX kernel"
            );
        }
    }

    proptest! {
        // a fixed seed: the same inputs on every run (PROPTEST_RNG_SEED overrides it)
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_2026),
            ..ProptestConfig::default()
        })]

        #[test]
        fn sse2_gap_and_range_matches_portable(
            values in prop::collection::vec((-1e6f32..1e6, -1e3f32..1e3, 0f32..1e3), 0..40),
        ) {
            // box [c - w, c + w] and a point anywhere
            let x: Vec<f32> = values.iter().map(|v| v.0).collect();
            let min: Vec<f32> = values.iter().map(|v| v.1 - v.2).collect();
            let max: Vec<f32> = values.iter().map(|v| v.1 + v.2).collect();
            let fast = super::gap_and_range(&x, &min, &max);
            let portable = gap_and_range_f32(&x, &min, &max);
            prop_assert_eq!(fast.0.to_bits(), portable.0.to_bits());
            prop_assert_eq!(fast.1.to_bits(), portable.1.to_bits());
        }

        /// Over the whole finite range (overflowing lanes included) the dispatched kernel and
        /// the portable one agree bit for bit and stay finite, and so do the SSE2 gap lanes
        /// and theirs.
        #[test]
        fn dispatched_kernel_matches_portable_for_any_finite_values(
            bits in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..40),
        ) {
            let finite = |b: u32| {
                let v = f32::from_bits(b);
                if v.is_finite() { v } else { f32::MAX }
            };
            let x: Vec<f32> = bits.iter().map(|b| finite(b.0)).collect();
            let (min, max): (Vec<f32>, Vec<f32>) = bits
                .iter()
                .map(|b| {
                    let (a, c) = (finite(b.1), finite(b.2));
                    (a.min(c), a.max(c))
                })
                .unzip();
            let fast = gap_and_range(&x, &min, &max);
            let portable = gap_and_range_portable(&x, &min, &max);
            prop_assert!(fast.0.is_finite() && fast.1.is_finite());
            prop_assert_eq!(fast.0.to_bits(), portable.0.to_bits());
            // the gap half alone (the frozen trees' kernel) and its portable twin
            let gap = super::gap_lanes(&x, &min, &max);
            let gap_portable = super::super::gap_lanes_portable::<0>(&x, &min, &max);
            prop_assert_eq!(gap.to_bits(), gap_portable.to_bits());
            prop_assert_eq!(fast.1.to_bits(), portable.1.to_bits());
            // and the AVX gap lanes where they apply
            if let Some(avx) = avx_gap_lanes(&x, &min, &max) {
                prop_assert_eq!(avx.to_bits(), gap_portable.to_bits());
            }
        }
    }
}
