//! The time-decayed reservoir each tree samples its points with (rcf-reference §4).
//!
//! The arrival with sequence number `t` gets the priority key `ln(E) − λ·t` with `E ~ Exp(1)`
//! (equivalently `ln(−ln u)`); a sample keeps the `capacity` lowest keys, in a max-heap. This is
//! Efraimidis–Spirakis weighted sampling with weights `e^{λt}`: recent points win, and a point
//! stays about `1/λ` arrivals.
//!
//! **Skip-ahead.** Once the sample is full its maximum key `H` only changes when a point is
//! admitted, and arrival `s` is admitted iff `E_s < c_s = exp(H + λ s)`, independently across
//! arrivals. So the gap to the next admission has a closed-form distribution:
//! `P(no admission in s₀ … s₀+n−1) = exp(−e^{H+λ s₀} · Σ_{i<n} e^{λ i})`, which we invert with
//! one uniform draw. At the admitted arrival the key is drawn from `E` conditioned on `E < c_s`.
//! The result is exactly the distribution of drawing every arrival, but a tree that will not
//! admit a point does one integer comparison instead of two logarithms: at the default
//! λ = 1/(10·capacity) about 90 % of trees skip each arrival.
//!
//! **Keys are relative to an epoch** shared by the forest, `key = ln(E) − λ·(t − epoch)`, so they
//! stay small enough for `f32`; the forest re-bases all samplers now and then (`rebase`), which
//! adds the same constant to every key and changes no decision.

use crate::rng::TreeRng;

/// Parameters shared by all samplers of a forest.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SamplerParams {
    pub(crate) capacity: usize,
    pub(crate) time_decay: f64,
    /// `time_decay.exp_m1()`, computed once per forest (the skip-ahead draw takes it).
    pub(crate) time_decay_exp_m1: f64,
    pub(crate) initial_accept_fraction: f64,
}

/// A sampler's saved form (see `state.rs`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SamplerState<'a> {
    #[serde(borrow)]
    keys: crate::bytes::Blob<'a>,
    #[serde(borrow)]
    leaves: crate::bytes::Blob<'a>,
    next_accept: u64,
}

impl SamplerState<'_> {
    /// Bytes of its blobs.
    pub(crate) fn len(&self) -> usize {
        self.keys.bytes().len() + self.leaves.bytes().len()
    }
}

/// What a sampler decided about one arrival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Offer {
    /// Not admitted: nothing to do for this tree.
    Reject,
    /// Admitted with this key; if `evict`, the current maximum leaves the sample.
    Admit { key: f32, evict: bool },
}

/// One tree's sample: keys and the tree leaves they refer to, as a max-heap on the key.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    keys: Vec<f32>,
    leaves: Vec<u16>,
    /// When full: the sequence number of the next arrival to admit.
    next_accept: u64,
}

impl Sampler {
    pub(crate) fn new(capacity: usize) -> Self {
        let mut keys = Vec::new();
        keys.reserve_exact(capacity);
        let mut leaves = Vec::new();
        leaves.reserve_exact(capacity);
        Self {
            keys,
            leaves,
            next_accept: u64::MAX,
        }
    }

    /// Points held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Leaves referenced, one per sampled point (duplicates share a leaf).
    pub(crate) fn leaves(&self) -> &[u16] {
        &self.leaves
    }

    /// Keys, parallel to [`leaves`](Self::leaves).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> &[f32] {
        &self.keys
    }

    /// Decides about arrival `t`. Does not change the sample: call [`commit`](Self::commit)
    /// with the leaf the tree stored the point in.
    #[inline]
    pub(crate) fn offer(
        &mut self,
        t: u64,
        epoch: u64,
        rng: &mut TreeRng,
        params: &SamplerParams,
    ) -> Offer {
        let len = self.keys.len();
        if len >= params.capacity {
            // the cheap path: most trees stop here
            if t < self.next_accept {
                return Offer::Reject;
            }
            debug_assert_eq!(t, self.next_accept, "skip-ahead overshot an arrival");
            let max = f64::from(self.keys[0]);
            let key = admitted_key(max, t, epoch, rng, params.time_decay);
            return Offer::Admit { key, evict: true };
        }
        let key = fresh_key(t, epoch, rng, params.time_decay);
        if rng.uniform() < initial_accept_probability(len, params) {
            Offer::Admit { key, evict: false }
        } else if len > 0 && key < self.keys[0] {
            Offer::Admit { key, evict: true }
        } else {
            Offer::Reject
        }
    }

    /// Records an admission decided by [`offer`](Self::offer) for arrival `t`; returns the
    /// evicted leaf, if any, which the caller must delete from the tree.
    // The arrival's clock (`t`, `epoch`), the tree's generator and the shared parameters are all
    // inputs of the next skip-ahead draw; bundling them would only move the list elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit(
        &mut self,
        leaf: u16,
        key: f32,
        evict: bool,
        t: u64,
        epoch: u64,
        rng: &mut TreeRng,
        params: &SamplerParams,
    ) -> Option<u16> {
        let evicted = if evict {
            let old = self.leaves[0];
            self.keys[0] = key;
            self.leaves[0] = leaf;
            self.sift_down(0);
            Some(old)
        } else {
            self.keys.push(key);
            self.leaves.push(leaf);
            self.sift_up(self.keys.len() - 1);
            None
        };
        if self.keys.len() >= params.capacity {
            self.schedule(t + 1, epoch, rng, params);
        }
        evicted
    }

    /// Draws the first arrival `≥ from` that will be admitted (see the module docs).
    fn schedule(&mut self, from: u64, epoch: u64, rng: &mut TreeRng, params: &SamplerParams) {
        let lambda = params.time_decay;
        let max = f64::from(self.keys[0]);
        // A = e^{H + λ(from − epoch)}: the admission hazard scale at `from`
        let log_a = max + lambda * (from - epoch) as f64;
        let g = -rng.uniform_open0().ln(); // Exp(1)
        let ratio = g * (-log_a).exp(); // G / A
        let n_plus_1 = if lambda > 0.0 {
            (ratio * params.time_decay_exp_m1).ln_1p() / lambda
        } else {
            ratio
        };
        let gap = n_plus_1.ceil() - 1.0;
        self.next_accept = if gap.is_finite() && gap < 1e18 {
            from + gap.max(0.0) as u64
        } else {
            u64::MAX
        };
    }

    /// The saved form: keys (f32) and leaves (u16) as little-endian blobs, and the schedule.
    pub(crate) fn to_state(&self) -> SamplerState<'static> {
        SamplerState {
            keys: crate::bytes::Blob::packed(&self.keys, f32::to_le_bytes),
            leaves: crate::bytes::Blob::packed(&self.leaves, u16::to_le_bytes),
            next_accept: self.next_accept,
        }
    }

    /// Restores a sampler; [`check`](Self::check) validates it before use.
    pub(crate) fn from_state(state: SamplerState<'_>, capacity: usize) -> Result<Self, String> {
        let (keys, leaves) = (state.keys.bytes(), state.leaves.bytes());
        if keys.len() % 4 != 0 || leaves.len() % 2 != 0 || keys.len() / 4 != leaves.len() / 2 {
            return Err("sampler arrays are malformed".into());
        }
        if keys.len() / 4 > capacity {
            return Err(format!("sampler holds more than its capacity {capacity}"));
        }
        let mut s = Sampler::new(capacity);
        s.keys.extend(
            keys.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        s.leaves.extend(
            leaves
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
        s.next_accept = state.next_accept;
        Ok(s)
    }

    /// Adds `shift` to every key (the forest moved its epoch forward by `shift / λ`).
    pub(crate) fn rebase(&mut self, shift: f64) {
        for k in &mut self.keys {
            *k = (f64::from(*k) + shift) as f32;
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.keys[parent] >= self.keys[i] {
                break;
            }
            self.keys.swap(parent, i);
            self.leaves.swap(parent, i);
            i = parent;
        }
    }

    /// Moves the entry at `i` down to its place: the same heap, entry for entry, as swapping
    /// it with its larger child (the left one on a tie) while that child's key is larger.
    /// Which child is larger is a coin toss, so it is chosen by arithmetic, not a branch (a
    /// mispredicted branch per level, about 8 per admission, was a tenth of an update's
    /// mispredictions); the entry is held aside and written once, at its place.
    fn sift_down(&mut self, mut i: usize) {
        let n = self.keys.len();
        let (key, leaf) = (self.keys[i], self.leaves[i]);
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            // keys are finite (`check`), so a missing right child never wins
            let right = self.keys.get(l + 1).copied().unwrap_or(f32::NEG_INFINITY);
            let c = l + usize::from(right > self.keys[l]);
            // the entry sinks below every key it passes: predictable
            if self.keys[c] <= key {
                break;
            }
            self.keys[i] = self.keys[c];
            self.leaves[i] = self.leaves[c];
            i = c;
        }
        self.keys[i] = key;
        self.leaves[i] = leaf;
    }

    /// Hints the cache to load the sample (see `kernels::prefetch`).
    #[inline]
    pub(crate) fn prefetch(&self) {
        crate::kernels::prefetch(&self.keys);
        crate::kernels::prefetch(&self.leaves);
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.keys.capacity() * 4 + self.leaves.capacity() * 2
    }

    /// Structural checks for a restored state.
    pub(crate) fn check(&self, capacity: usize) -> Result<(), String> {
        if self.keys.len() != self.leaves.len() {
            return Err("sampler keys and leaves differ in length".into());
        }
        if self.keys.len() > capacity {
            return Err(format!(
                "sampler holds {} points, more than its capacity {capacity}",
                self.keys.len()
            ));
        }
        if self.keys.iter().any(|k| !k.is_finite()) {
            return Err("sampler holds a non-finite key".into());
        }
        for i in 1..self.keys.len() {
            if self.keys[(i - 1) / 2] < self.keys[i] {
                return Err("sampler keys are not a max-heap".into());
            }
        }
        Ok(())
    }

    /// Makes sure the skip-ahead schedule exists (used after restoring a state).
    pub(crate) fn next_accept(&self) -> u64 {
        self.next_accept
    }
}

/// `p_init(s)` of rcf-reference §4.
#[inline]
fn initial_accept_probability(len: usize, params: &SamplerParams) -> f64 {
    let f = params.initial_accept_fraction;
    let fill = len as f64 / params.capacity as f64;
    if fill < f {
        1.0
    } else if f >= 1.0 {
        0.0
    } else {
        1.0 - (fill - f) / (1.0 - f)
    }
}

/// An unconditional key for arrival `t`.
#[inline]
fn fresh_key(t: u64, epoch: u64, rng: &mut TreeRng, lambda: f64) -> f32 {
    let e = -rng.uniform_open0().ln(); // Exp(1), > 0 except when u = 1 exactly
    let e = e.max(f64::MIN_POSITIVE);
    (e.ln() - lambda * (t - epoch) as f64) as f32
}

/// The key of arrival `t`, known to be admitted against maximum key `max`: `ln E − λ(t − epoch)`
/// with `E ~ Exp(1)` conditioned on `E < e^{max + λ(t − epoch)}`.
#[inline]
fn admitted_key(max: f64, t: u64, epoch: u64, rng: &mut TreeRng, lambda: f64) -> f32 {
    let shift = lambda * (t - epoch) as f64;
    let c = (max + shift).exp();
    // inverse CDF of Exp(1) truncated to (0, c): E = −ln(1 − U(1 − e^{−c}))
    let u = rng.uniform_open0();
    let e = (-(u * -(-c).exp_m1())).ln_1p().abs();
    let e = e.max(f64::MIN_POSITIVE);
    let key = (e.ln() - shift) as f32;
    let max32 = max as f32;
    if key < max32 { key } else { max32.next_down() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(capacity: usize, lambda: f64) -> SamplerParams {
        SamplerParams {
            capacity,
            time_decay: lambda,
            time_decay_exp_m1: lambda.exp_m1(),
            initial_accept_fraction: 1.0,
        }
    }

    /// Run a sampler over `n` arrivals, using the arrival index as "leaf", returning how many
    /// admissions happened.
    fn run(s: &mut Sampler, rng: &mut TreeRng, p: &SamplerParams, n: u64) -> u64 {
        let mut admitted = 0;
        for t in 0..n {
            if let Offer::Admit { key, evict } = s.offer(t, 0, rng, p) {
                admitted += 1;
                s.commit((t % 60_000) as u16, key, evict, t, 0, rng, p);
            }
        }
        admitted
    }

    #[test]
    fn never_exceeds_capacity_and_stays_a_heap() {
        let p = params(32, 0.01);
        let mut s = Sampler::new(32);
        let mut rng = TreeRng::for_tree(1, 0);
        for t in 0..5_000u64 {
            if let Offer::Admit { key, evict } = s.offer(t, 0, &mut rng, &p) {
                s.commit(t as u16, key, evict, t, 0, &mut rng, &p);
            }
            assert!(s.len() <= 32);
        }
        s.check(32).unwrap();
    }

    /// The textbook sift-down the branch-free one replaces: swap with the larger child (the
    /// left on a tie) while it is larger.
    fn sift_down_by_swaps(keys: &mut [f32], leaves: &mut [u16], mut i: usize) {
        let n = keys.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut largest = i;
            if l < n && keys[l] > keys[largest] {
                largest = l;
            }
            if r < n && keys[r] > keys[largest] {
                largest = r;
            }
            if largest == i {
                break;
            }
            keys.swap(largest, i);
            leaves.swap(largest, i);
            i = largest;
        }
    }

    #[test]
    fn sift_down_leaves_the_heap_the_swapping_one_leaves() {
        // keys from a handful of values (ties everywhere) and from a continuum, heaps of every
        // size up to 40 (a missing right child at each parity), the new root anywhere in rank
        let mut rng = TreeRng::for_tree(3, 0);
        for n in 1..=40usize {
            for rep in 0..50 {
                let coarse = rep % 2 == 0;
                let draw = |rng: &mut TreeRng| {
                    let u = rng.uniform() as f32;
                    if coarse { (u * 4.0).floor() } else { u }
                };
                let mut s = Sampler::new(n);
                for j in 0..n {
                    s.keys.push(draw(&mut rng));
                    s.leaves.push(j as u16);
                    s.sift_up(j);
                }
                s.keys[0] = draw(&mut rng);
                s.leaves[0] = 999;
                let (mut keys, mut leaves) = (s.keys.clone(), s.leaves.clone());
                s.sift_down(0);
                sift_down_by_swaps(&mut keys, &mut leaves, 0);
                assert_eq!((&s.keys, &s.leaves), (&keys, &leaves), "n {n} rep {rep}");
            }
        }
    }

    #[test]
    fn steady_state_admission_rate_matches_theory() {
        // Each arrival enters a full sample of M with probability ≈ λM/(1 − e^{−λM}) · e^{−λM}…
        // simpler: in steady state the expected rate is the fraction of the last ~1/λ window
        // that a sample of M can hold, ≈ λM for λM ≪ 1. With M = 64, λ = 1/640: ≈ 0.1.
        let p = params(64, 1.0 / 640.0);
        let mut total = 0;
        for tree in 0..20 {
            let mut s = Sampler::new(64);
            let mut rng = TreeRng::for_tree(11, tree);
            run(&mut s, &mut rng, &p, 5_000);
            // count admissions over the next 20k arrivals
            let mut admitted = 0;
            for t in 5_000..25_000u64 {
                if let Offer::Admit { key, evict } = s.offer(t, 0, &mut rng, &p) {
                    admitted += 1;
                    s.commit(0, key, evict, t, 0, &mut rng, &p);
                }
            }
            total += admitted;
        }
        let rate = total as f64 / (20.0 * 20_000.0);
        // theory: λM / (1 − e^{−λM})·… ≈ 0.1 (the perf notes measured 9.75 % at λM = 0.1);
        // 400k Bernoulli-ish trials → sd ≈ 0.0005; margin 0.01 covers the approximation
        assert!((rate - 0.0975).abs() < 0.01, "rate {rate}");
    }

    #[test]
    fn skip_ahead_matches_per_arrival_draws_in_distribution() {
        // Compare the mean age of the sample under skip-ahead with a brute-force sampler that
        // draws every arrival's key and keeps the lowest M.
        let (m, lambda, n) = (32usize, 1.0 / 320.0, 6_000u64);
        let p = params(m, lambda);
        let mut mean_age_skip = 0.0;
        let mut mean_age_brute = 0.0;
        let reps = 40;
        for rep in 0..reps {
            let mut s = Sampler::new(m);
            let mut rng = TreeRng::for_tree(5, rep);
            let mut times = vec![0u64; 0];
            for t in 0..n {
                if let Offer::Admit { key, evict } = s.offer(t, 0, &mut rng, &p) {
                    // leaf = index into `times`
                    let leaf = times.len() as u16;
                    times.push(t);
                    s.commit(leaf, key, evict, t, 0, &mut rng, &p);
                }
            }
            mean_age_skip += s
                .leaves()
                .iter()
                .map(|&l| (n - times[l as usize]) as f64)
                .sum::<f64>()
                / m as f64;

            let mut rng = TreeRng::for_tree(6, rep);
            let mut keys: Vec<(f64, u64)> = (0..n)
                .map(|t| ((-rng.uniform_open0().ln()).ln() - lambda * t as f64, t))
                .collect();
            keys.sort_by(|a, b| a.0.total_cmp(&b.0));
            mean_age_brute +=
                keys[..m].iter().map(|&(_, t)| (n - t) as f64).sum::<f64>() / m as f64;
        }
        mean_age_skip /= reps as f64;
        mean_age_brute /= reps as f64;
        // both ≈ 1/λ = 320 (exponential ages); the average over 40×32 ages has sd ≈ 9;
        // 15 % margin
        assert!(
            (mean_age_skip - mean_age_brute).abs() < 0.15 * mean_age_brute,
            "skip {mean_age_skip} vs brute {mean_age_brute}"
        );
        assert!((mean_age_brute - 320.0).abs() < 0.2 * 320.0);
    }

    #[test]
    fn rebase_keeps_decisions() {
        let p = params(16, 0.05);
        let mut a = Sampler::new(16);
        let mut ra = TreeRng::for_tree(3, 0);
        run(&mut a, &mut ra, &p, 1_000);
        let before: Vec<f32> = a.keys().to_vec();
        a.rebase(50.0);
        a.check(16).unwrap();
        for (x, y) in before.iter().zip(a.keys()) {
            assert!((f64::from(*y) - f64::from(*x) - 50.0).abs() < 1e-3);
        }
    }

    #[test]
    fn initial_accept_probability_follows_the_reference() {
        let p = SamplerParams {
            capacity: 100,
            time_decay: 0.0,
            time_decay_exp_m1: 0.0,
            initial_accept_fraction: 0.25,
        };
        assert_eq!(initial_accept_probability(0, &p), 1.0);
        assert_eq!(initial_accept_probability(24, &p), 1.0);
        assert!((initial_accept_probability(50, &p) - (1.0 - 0.25 / 0.75)).abs() < 1e-12);
        let full = SamplerParams {
            initial_accept_fraction: 1.0,
            ..p
        };
        assert_eq!(initial_accept_probability(99, &full), 1.0);
    }

    #[test]
    fn zero_decay_is_a_uniform_reservoir() {
        // with λ = 0 every arrival is equally likely to be in the sample: mean arrival time of
        // the sample ≈ n/2
        let p = params(50, 0.0);
        let mut mean_t = 0.0;
        for rep in 0..20 {
            let mut s = Sampler::new(50);
            let mut rng = TreeRng::for_tree(8, rep);
            let mut times = Vec::new();
            for t in 0..4_000u64 {
                if let Offer::Admit { key, evict } = s.offer(t, 0, &mut rng, &p) {
                    let leaf = times.len() as u16;
                    times.push(t);
                    s.commit(leaf, key, evict, t, 0, &mut rng, &p);
                }
            }
            mean_t += s
                .leaves()
                .iter()
                .map(|&l| times[l as usize] as f64)
                .sum::<f64>()
                / 50.0;
        }
        mean_t /= 20.0;
        // uniform on [0, 4000): mean 2000, sd of a 1000-sample mean ≈ 37; margin 150
        assert!((mean_t - 2000.0).abs() < 150.0, "mean arrival {mean_t}");
    }
}
