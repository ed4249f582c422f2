//! [`RandomCutForest`]: the public face of the crate.

use crate::config::{ForestBuilder, ForestConfig};
use crate::error::{Error, Result, check_finite, check_len};
use crate::point_store::PointStore;
use crate::rng::TreeRng;
use crate::sampler::{Offer, Sampler, SamplerParams};
use crate::scratch::{self, Scratch};
use crate::tree::frozen::FrozenTree;
use crate::tree::visit::{
    LOCKSTEP, LockstepPaths, descend_lockstep, descend_points_lockstep, descend_to_leaves,
};
use crate::tree::{NONE, NodeRef, ORDER_MIN_MASS, Tree, TreeParams, TreeScratch};

/// Re-base sampler keys once `λ·(t − epoch)` exceeds this (keeps `f32` keys precise).
const REBASE_AFTER: f64 = 32.0;

/// How often (in points) trees check whether their box pool should be compacted: churn leaves
/// the pool at its high-water mark, about a quarter above what is in use.
const BOX_POOL_CHECK_EVERY: u64 = 4_096;

/// Points per parallel work item in [`RandomCutForest::score_many`]: small enough that the
/// chunk's points and accumulators stay in L1 while one tree scores them all.
const SCORE_CHUNK: usize = 512;

/// Batches of at least this many points are scored through frozen copies of the trees
/// ([`FrozenTree`]): making them costs about as much as scoring a few dozen points.
const FROZEN_MIN_POINTS: usize = 256;

/// Largest total size of a batch's frozen trees; a larger forest scores its batches live.
const FROZEN_MAX_BYTES: usize = 256 << 20;

/// Points per parallel work item on the frozen path, at least and at most: one frozen tree
/// (about 43 KiB at 8 dimensions and 256 samples) and a chunk's points stay in L1/L2 while
/// the tree scores them, and each chunk brings every tree of the forest in again (50 of them
/// are more than this machine's 2 MiB of L2), so chunks are as large as still gives every
/// thread several (`frozen_chunk`).
const FROZEN_CHUNK: (usize, usize) = (256, 2048);

/// Points per work item for a frozen batch of `n` points on `threads` threads: about four
/// items a thread, within [`FROZEN_CHUNK`]. Scores do not depend on it (each point adds its
/// trees' scores in tree order whatever the chunk it is in).
fn frozen_chunk(n: usize, threads: usize) -> usize {
    (n / threads.max(1) / 4).clamp(FROZEN_CHUNK.0, FROZEN_CHUNK.1)
}

/// A Random Cut Forest over a stream of points (see the [crate docs](crate)).
///
/// # Example
///
/// ```
/// use rcf_core::RandomCutForest;
///
/// let mut forest = RandomCutForest::builder(1).shingle_size(4).seed(1).build()?;
/// for t in 0..2_000 {
///     let x = (t as f32 * 0.1).sin();
///     forest.update(&[x])?;
/// }
/// let typical = forest.score(&[(2_000f32 * 0.1).sin()])?;
/// let spike = forest.score(&[8.0])?;
/// assert!(spike > 2.0 * typical);
/// # Ok::<(), rcf_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RandomCutForest {
    pub(crate) config: ForestConfig,
    pub(crate) trees: Vec<Tree>,
    pub(crate) samplers: Vec<Sampler>,
    pub(crate) rngs: Vec<TreeRng>,
    pub(crate) store: PointStore,
    /// Inputs given to `update`/`process`.
    pub(crate) entries_seen: u64,
    /// Shingled points offered to the samplers (the sequence number of the next one).
    pub(crate) shingles_offered: u64,
    /// Sampler key epoch (see `sampler.rs`).
    pub(crate) epoch: u64,
    /// `e^λ − 1` for the configured time decay λ, which every sampler's skip-ahead draw
    /// takes (derived from the configuration once, not per admission). Not saved.
    pub(crate) decay_exp_m1: f64,
    /// Names this state of the forest for [`Staged`](crate::scratch::Staged) walks: a fresh
    /// number from a process-wide counter at construction and after every change, so that a
    /// scratch filled by one state is never taken for another (a clone shares the number
    /// only while it is identical). Not saved.
    pub(crate) generation: u64,
}

/// The next forest [`generation`](RandomCutForest::generation) (never 0: 0 is "nothing staged").
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl RandomCutForest {
    /// Starts building a forest over points of `input_dims` values.
    pub fn builder(input_dims: usize) -> ForestBuilder {
        ForestBuilder::new(input_dims)
    }

    pub(crate) fn from_config(config: ForestConfig) -> Self {
        let n = config.num_trees;
        let capacity = config.sample_size;
        Self {
            trees: (0..n)
                .map(|_| Tree::new(capacity, config.box_cache_min_mass >= ORDER_MIN_MASS))
                .collect(),
            samplers: (0..n).map(|_| Sampler::new(capacity)).collect(),
            rngs: (0..n).map(|i| TreeRng::for_tree(config.seed, i)).collect(),
            store: PointStore::new(
                config.input_dims,
                config.shingle_size,
                2 * capacity + config.shingle_size,
            ),
            entries_seen: 0,
            shingles_offered: 0,
            epoch: 0,
            generation: next_generation(),
            decay_exp_m1: config.time_decay.exp_m1(),
            config,
        }
    }

    /// The validated parameters.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// assert_eq!(forest.config().sample_size, 64);
    /// assert_eq!(forest.config().output_after, 16); // derived: sample_size / 4
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn config(&self) -> &ForestConfig {
        &self.config
    }

    /// Dimension of the forest's points (`input_dims * shingle_size`).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let forest = RandomCutForest::builder(3).shingle_size(4).build()?;
    /// assert_eq!((forest.input_dims(), forest.dimensions()), (3, 12));
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn dimensions(&self) -> usize {
        self.config.dimensions
    }

    /// Values per `update`/`score` call.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let forest = RandomCutForest::builder(3).shingle_size(4).build()?;
    /// assert_eq!(forest.input_dims(), 3);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn input_dims(&self) -> usize {
        self.config.input_dims
    }

    /// Inputs given to [`update`](Self::update) / [`process`](Self::process) so far.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// forest.update(&[1.0, 2.0])?;
    /// assert_eq!(forest.entries_seen(), 1);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn entries_seen(&self) -> u64 {
        self.entries_seen
    }

    /// Whether scores are being produced: at least `output_after` points have been offered.
    /// Before that, scores are 0.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// assert!(!forest.is_ready());
    /// for t in 0..16 { forest.update(&[t as f32, 0.0])?; }
    /// assert!(forest.is_ready()); // output_after = 16 points
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.shingles_offered >= self.config.output_after
    }

    /// New scratch buffers for [`score_with`](Self::score_with).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// for t in 0..200 { forest.update(&[(t % 5) as f32, 1.0])?; }
    /// let mut scratch = forest.scratch(); // reuse it for many queries: no allocation per call
    /// let a = forest.score_with(&mut scratch, &[2.0, 1.0])?;
    /// let b = forest.score_with(&mut scratch, &[9.0, 1.0])?;
    /// assert!(b > a);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn scratch(&self) -> Scratch {
        Scratch::new(self.dimensions(), self.config.sample_size)
    }

    pub(crate) fn tree_params(&self) -> TreeParams {
        TreeParams {
            dims: self.config.dimensions,
            capacity: self.config.sample_size,
            box_cache_min_mass: self.config.box_cache_min_mass,
        }
    }

    fn sampler_params(&self) -> SamplerParams {
        SamplerParams {
            capacity: self.config.sample_size,
            time_decay: self.config.time_decay,
            time_decay_exp_m1: self.decay_exp_m1,
            initial_accept_fraction: self.config.initial_accept_fraction,
        }
    }

    /// The forest point that input `x` would be scored as: the newest `shingle_size - 1`
    /// inputs, then `x` (`dimensions()` values; `x` itself without shingling). `None` until
    /// `shingle_size - 1` inputs have been seen.
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    ///
    /// let mut forest = RandomCutForest::builder(1).shingle_size(3).build()?;
    /// assert_eq!(forest.shingled(&[9.0])?, None);
    /// forest.update(&[1.0])?;
    /// forest.update(&[2.0])?;
    /// assert_eq!(forest.shingled(&[9.0])?, Some(vec![1.0, 2.0, 9.0]));
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x.len()` is not `input_dims`.
    pub fn shingled(&self, x: &[f32]) -> Result<Option<Vec<f32>>> {
        check_len(x, self.config.input_dims)?;
        let mut out = vec![0.0; self.config.dimensions];
        Ok(self.build_query(x, &mut out).then_some(out))
    }

    /// Writes the forest point for input `x` (the newest `shingle_size - 1` inputs, then `x`)
    /// into `out`; false if fewer than `shingle_size - 1` inputs have been seen.
    pub(crate) fn build_query(&self, x: &[f32], out: &mut [f32]) -> bool {
        let k = self.config.shingle_size;
        if self.entries_seen + 1 < k as u64 {
            return false;
        }
        let head = self.config.dimensions - x.len();
        out[..head].copy_from_slice(self.store.tail(k - 1));
        out[head..].copy_from_slice(x);
        true
    }

    /// Adds `x` (the newest `input_dims` values) to the stream: with shingling, the forest point
    /// is the last `shingle_size` inputs; each tree's sampler decides whether to keep it.
    ///
    /// Right after [`score`](Self::score) of the same `x` on this thread, with the forest
    /// unchanged, the trees that admit the point insert it along that score's walk (kept in
    /// the thread's scratch, see [`update_with`](Self::update_with)): score, decide, then
    /// update costs about what [`process`](Self::process) does. A forest holds no query
    /// buffers of its own; each thread keeps one set per forest shape.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x.len()` is not `input_dims`; [`Error::NonFinite`] if a
    /// value is NaN or infinite. The forest is unchanged on error.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// forest.update(&[1.0, 2.0])?;
    /// assert!(forest.update(&[1.0]).is_err()); // wrong length: nothing changes
    /// assert_eq!(forest.entries_seen(), 1);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn update(&mut self, x: &[f32]) -> Result<()> {
        self.process_inner(x, false).map(|_| ())
    }

    /// [`update`](Self::update) with caller-provided scratch. When the scratch's last use was
    /// [`score_with`](Self::score_with) of the same `x` on this forest, unchanged since, the
    /// trees that admit the point insert it along that scoring walk instead of walking again:
    /// score, then decide (attribution, a copy of the forest, ...), then update, at about the
    /// cost of [`process`](Self::process). The result is the same forest as `update(x)` in
    /// every case (the scratch only saves work; a stale one is recognised and ignored).
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let build = || RandomCutForest::builder(2).sample_size(64).seed(1).build();
    /// let (mut a, mut b) = (build()?, build()?);
    /// let mut scratch = a.scratch();
    /// for t in 0..500 {
    ///     let x = [(t % 10) as f32, 5.0];
    ///     let score = a.score_with(&mut scratch, &x)?;
    ///     if score > 3.0 {
    ///         let _why = a.attribution(&x)?; // read-only: the staged walk stays valid
    ///     }
    ///     a.update_with(&mut scratch, &x)?;
    ///     b.update(&x)?;
    /// }
    /// assert_eq!(a.to_bytes(), b.to_bytes());
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn update_with(&mut self, scratch: &mut Scratch, x: &[f32]) -> Result<()> {
        check_len(x, self.config.input_dims)?;
        check_finite(x)?;
        self.process_in(scratch, x, false);
        Ok(())
    }

    /// Scores `x` as [`score`](Self::score) would, then adds it as [`update`](Self::update)
    /// would, in one pass: trees that admit the point reuse the scoring walk to insert it.
    /// This is the streaming fast path.
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(1).shingle_size(8).build()?;
    /// let mut last = 0.0;
    /// for t in 0..1_000 {
    ///     last = forest.process(&[(t as f32 / 10.0).sin()])?;
    /// }
    /// assert!(last > 0.0 && last < 3.0);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn process(&mut self, x: &[f32]) -> Result<f64> {
        self.process_inner(x, true)
    }

    /// Adds every row of `inputs` (row-major, `input_dims` values each, oldest first) as
    /// [`update`](Self::update) would, in order.
    ///
    /// All or nothing: the whole batch is checked before the first row is learned, so a
    /// rejected batch leaves the forest as it was.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] for an empty batch, [`Error::BatchShape`] if the length is not a
    /// multiple of `input_dims`, [`Error::NonFinite`] (with the index into `inputs`) for a NaN
    /// or infinite value.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).seed(1).build()?;
    /// let rows: Vec<f32> = (0..1_000).flat_map(|t| [(t % 7) as f32, 1.0]).collect();
    /// forest.update_many(&rows)?;
    /// assert_eq!(forest.entries_seen(), 1_000);
    /// assert!(forest.update_many(&[1.0, f32::NAN]).is_err()); // nothing learned
    /// assert_eq!(forest.entries_seen(), 1_000);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn update_many(&mut self, inputs: &[f32]) -> Result<()> {
        self.check_batch(inputs, self.config.input_dims)?;
        for row in inputs.chunks_exact(self.config.input_dims) {
            self.process_checked(row, false);
        }
        Ok(())
    }

    /// Scores then adds every row of `inputs` (row-major, `input_dims` values each, oldest
    /// first) as [`process`](Self::process) would, in order; returns one score per row.
    ///
    /// All or nothing, as [`update_many`](Self::update_many).
    ///
    /// # Errors
    ///
    /// As [`update_many`](Self::update_many).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(1).shingle_size(4).seed(1).build()?;
    /// let rows: Vec<f32> = (0..2_000).map(|t| (t as f32 / 9.0).sin()).collect();
    /// let scores = forest.process_many(&rows)?;
    /// assert_eq!(scores.len(), 2_000);
    /// assert!(scores[1_999] > 0.0);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn process_many(&mut self, inputs: &[f32]) -> Result<Vec<f64>> {
        self.check_batch(inputs, self.config.input_dims)?;
        Ok(inputs
            .chunks_exact(self.config.input_dims)
            .map(|row| self.process_checked(row, true))
            .collect())
    }

    /// The checks every batch call makes before touching anything: not empty, whole rows of
    /// `width` values, all finite.
    fn check_batch(&self, values: &[f32], width: usize) -> Result<()> {
        if values.is_empty() {
            return Err(Error::EmptyInput { name: "points" });
        }
        if !values.len().is_multiple_of(width) {
            return Err(Error::BatchShape {
                len: values.len(),
                dimensions: width,
            });
        }
        check_finite(values)
    }

    fn process_inner(&mut self, x: &[f32], want_score: bool) -> Result<f64> {
        check_len(x, self.config.input_dims)?;
        check_finite(x)?;
        Ok(self.process_checked(x, want_score))
    }

    /// [`process`](Self::process) on an input already checked (length and finiteness).
    fn process_checked(&mut self, x: &[f32], want_score: bool) -> f64 {
        let (dims, capacity) = (self.config.dimensions, self.config.sample_size);
        scratch::with_local(dims, capacity, |sc| self.process_in(sc, x, want_score))
    }

    /// [`process_checked`](Self::process_checked) with the caller's scratch, whose staged
    /// walks (from a score of the same point on this state) an update reuses.
    fn process_in(&mut self, sc: &mut Scratch, x: &[f32], want_score: bool) -> f64 {
        sc.fit(self.config.dimensions, self.config.sample_size);
        let has_point = self.build_query(x, &mut sc.query);
        let staged = has_point
            && sc
                .staged
                .matches(self.generation, &sc.query, self.trees.len());
        self.store.push_unit(x);
        self.entries_seen += 1;
        self.generation = next_generation();
        let mut score = 0.0;
        if has_point {
            score = self.offer_point(sc, want_score, staged);
        }
        sc.staged.generation = 0;
        self.maintain();
        score
    }

    /// Offers the point in `sc.query` (already appended to the store) to every tree, scoring
    /// it first when asked and ready.
    ///
    /// Trees go in groups of [`LOCKSTEP`]: the group's samplers decide first, then the trees
    /// that must be walked (all when scoring, else only admitting ones) descend in lockstep,
    /// then each walks up, scores, and, if admitting, inserts along its walk. The points the
    /// admissions evicted are deleted last, together ([`delete_evicted`](Self::delete_evicted)).
    /// Trees are independent, so this order gives the same result as one tree after another.
    ///
    /// With `staged`, `sc.staged` holds every tree's scoring walk of this point on the state
    /// before it was appended, by a [`score`](Self::score) or an
    /// [`attribution`](Self::attribution) of it (see [`update_with`](Self::update_with)):
    /// admitting trees insert along it, the score is summed from its scores, and nothing
    /// descends.
    fn offer_point(&mut self, sc: &mut Scratch, want_score: bool, staged: bool) -> f64 {
        let t = self.shingles_offered;
        let score_it = want_score && self.is_ready();
        let start = self.store.newest_point();
        let params = self.tree_params();
        let sp = self.sampler_params();
        let epoch = self.epoch;
        let Scratch {
            tree: tsc,
            query,
            paths,
            staged: walks,
            evicted,
            ..
        } = sc;
        let q: &[f32] = query;
        let n = self.trees.len();
        evicted.clear();
        let mut total = 0.0;
        let mut offers = [Offer::Reject; LOCKSTEP];
        let mut active = [false; LOCKSTEP];
        let mut leaves = [NONE; LOCKSTEP];
        for base in (0..n).step_by(LOCKSTEP) {
            let g = LOCKSTEP.min(n - base);
            let mut any = false;
            for k in 0..g {
                offers[k] = self.samplers[base + k].offer(t, epoch, &mut self.rngs[base + k], &sp);
                active[k] = score_it || offers[k] != Offer::Reject;
                any |= active[k];
            }
            if !any {
                continue;
            }
            if staged {
                for (k, offer) in offers[..g].iter().enumerate() {
                    let i = base + k;
                    if score_it {
                        // the walk's score, with the normaliser of the tree as scored, in
                        // tree order: the sum a walk here would make, bit for bit
                        total += walks.score(i) * self.trees[i].normaliser();
                    }
                    let &Offer::Admit { key, evict } = offer else {
                        continue;
                    };
                    let (leaf, path, probs) = walks.tree(i);
                    let tree = &mut self.trees[i];
                    let rng = &mut self.rngs[i];
                    let held = tree.insert_walked(
                        q,
                        leaf,
                        path,
                        probs,
                        &params,
                        &self.store,
                        tsc,
                        start,
                        rng,
                    );
                    if let Some(gone) =
                        self.samplers[i].commit(held, key, evict, t, epoch, rng, &sp)
                    {
                        evicted.push((i as u32, gone));
                    }
                }
                continue;
            }
            descend_lockstep(
                &self.trees[base..base + g],
                &active[..g],
                q,
                paths,
                &mut leaves,
            );
            for k in 0..g {
                if !active[k] {
                    continue;
                }
                let i = base + k;
                let tree = &mut self.trees[i];
                let admitted = match offers[k] {
                    Offer::Admit { key, evict } => Some((key, evict)),
                    Offer::Reject => None,
                };
                let rng = &mut self.rngs[i];
                // the normaliser of the tree as scored, before this point joins it
                let norm = tree.normaliser();
                let (score, held) = tree.walk_and_insert(
                    q,
                    leaves[k],
                    paths.path(k),
                    &params,
                    &self.store,
                    tsc,
                    admitted.map(|_| (start, &mut *rng)),
                );
                if score_it {
                    total += score * norm;
                }
                if let (Some((key, evict)), Some(held)) = (admitted, held)
                    && let Some(gone) =
                        self.samplers[i].commit(held, key, evict, t, epoch, rng, &sp)
                {
                    evicted.push((i as u32, gone));
                }
            }
        }
        self.delete_evicted(evicted, paths, tsc, &params);
        self.shingles_offered += 1;
        total / n as f64
    }

    /// Deletes the leaves an update's admissions evicted (`evicted`: tree, leaf), after every
    /// tree took the point. A delete first finds its leaf's path by descending with the
    /// leaf's point: one chain of dependent loads per delete, which in turn held up the next
    /// tree's walk. Descending up to [`LOCKSTEP`] of them at once (each in its own tree)
    /// overlaps those chains. Trees are independent, so the forest is the same as with each
    /// delete right after its tree's insert.
    fn delete_evicted(
        &mut self,
        evicted: &[(u32, NodeRef)],
        paths: &mut LockstepPaths,
        tsc: &mut TreeScratch,
        params: &TreeParams,
    ) {
        for batch in evicted.chunks(LOCKSTEP) {
            let mut leaves = [NONE; LOCKSTEP];
            descend_to_leaves(&self.trees, batch, &self.store, paths, &mut leaves);
            for (k, &(i, gone)) in batch.iter().enumerate() {
                debug_assert_eq!(
                    leaves[k], gone,
                    "descent by a leaf's point must reach that leaf"
                );
                self.trees[i as usize].delete_along(gone, paths.path(k), params, &self.store, tsc);
            }
        }
    }

    /// Re-bases sampler keys and compacts the point store when due.
    fn maintain(&mut self) {
        let lambda = self.config.time_decay;
        let shift = lambda * (self.shingles_offered - self.epoch) as f64;
        if shift > REBASE_AFTER {
            for s in &mut self.samplers {
                s.rebase(shift);
            }
            self.epoch = self.shingles_offered;
        }
        if self.shingles_offered.is_multiple_of(BOX_POOL_CHECK_EVERY) && self.shingles_offered > 0 {
            let params = self.tree_params();
            let mut sc = None;
            for tree in &mut self.trees {
                if tree.box_pool_is_slack(params.dims) {
                    let sc = sc.get_or_insert_with(|| TreeScratch::new(params.dims));
                    let routed = tree.rebuild_boxes(&params, &self.store, sc);
                    debug_assert!(routed.is_ok(), "{routed:?}");
                }
            }
        }
        if self.store.needs_compaction() {
            let mut live: Vec<u32> = self.trees.iter().flat_map(Tree::live_points).collect();
            let remap = self.store.compact(&mut live);
            for tree in &mut self.trees {
                tree.remap_points(|p| remap.apply(p));
            }
        }
    }

    /// Scores `x` (the newest `input_dims` values; with shingling, combined with the newest
    /// `shingle_size - 1` inputs already seen) without changing the forest.
    ///
    /// Higher means more anomalous: points like the sample score about 1, points isolated at
    /// the root up to `log2(1 + sample_size)`. The score is exactly the reference's (expected
    /// inverse depth with the seen/unseen/damp rules and the `log2(1 + mass)` normaliser,
    /// rcf-reference §5), averaged over trees. 0 until [`is_ready`](Self::is_ready).
    ///
    /// Allocates scratch space per call; [`score_with`](Self::score_with) does not.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x.len()` is not `input_dims`; [`Error::NonFinite`] if
    /// a value is NaN or infinite.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// for t in 0..500 { forest.update(&[(t % 10) as f32, 5.0])?; }
    /// let typical = forest.score(&[3.0, 5.0])?;
    /// let outlier = forest.score(&[3.0, 50.0])?;
    /// assert!(outlier > 2.0 * typical);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn score(&self, x: &[f32]) -> Result<f64> {
        let (dims, capacity) = (self.config.dimensions, self.config.sample_size);
        scratch::with_local(dims, capacity, |sc| self.score_with(sc, x))
    }

    /// [`score`](Self::score) with caller-provided scratch buffers (no allocation).
    ///
    /// # Errors
    ///
    /// As [`score`](Self::score).
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// for t in 0..500 { forest.update(&[(t % 10) as f32, 5.0])?; }
    /// let mut scratch = forest.scratch();
    /// assert_eq!(forest.score_with(&mut scratch, &[3.0, 5.0])?, forest.score(&[3.0, 5.0])?);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn score_with(&self, scratch: &mut Scratch, x: &[f32]) -> Result<f64> {
        check_len(x, self.config.input_dims)?;
        check_finite(x)?;
        scratch.fit(self.config.dimensions, self.config.sample_size);
        if !self.is_ready() || !self.build_query(x, &mut scratch.query) {
            return Ok(0.0);
        }
        Ok(self.score_query(scratch))
    }

    /// The score of a whole forest point (`dimensions()` values, oldest shingle slot first),
    /// as [`shingled`](Self::shingled) builds it, without the forest's own recent inputs: for
    /// scoring a stream against a forest that no longer follows it. No allocation.
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    ///
    /// let mut forest = RandomCutForest::builder(1).shingle_size(2).seed(4).build()?;
    /// for t in 0..500 {
    ///     forest.update(&[(t as f32 / 9.0).sin()])?;
    /// }
    /// let mut scratch = forest.scratch();
    /// let point = forest.shingled(&[3.0])?.expect("a full shingle");
    /// assert_eq!(forest.score_point_with(&mut scratch, &point)?, forest.score(&[3.0])?);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `point.len()` is not `dimensions()`;
    /// [`Error::NonFinite`] if a value is NaN or infinite.
    pub fn score_point_with(&self, scratch: &mut Scratch, point: &[f32]) -> Result<f64> {
        check_len(point, self.config.dimensions)?;
        check_finite(point)?;
        scratch.fit(self.config.dimensions, self.config.sample_size);
        if !self.is_ready() {
            return Ok(0.0);
        }
        scratch.query.copy_from_slice(point);
        Ok(self.score_query(scratch))
    }

    /// The score of the point in `scratch.query` (fitted to this forest).
    fn score_query(&self, scratch: &mut Scratch) -> f64 {
        self.walk_staged(scratch, |tree, query, leaf, path, store, tsc| {
            tree.walk_up(query, leaf, path, store, tsc, true).score
        })
    }

    /// Walks every tree with the point in `scratch.query` (fitted to this forest): the trees
    /// descend eight at a time, then `walk` walks each up from its leaf, leaving its
    /// separation probabilities in `tsc.probs` and returning its score before the
    /// normaliser. The walks stay in the scratch for a `process` or `update` of this point
    /// (see [`update_with`](Self::update_with)). Returns the forest's score.
    pub(crate) fn walk_staged(
        &self,
        scratch: &mut Scratch,
        mut walk: impl FnMut(&Tree, &[f32], NodeRef, &[NodeRef], &PointStore, &mut TreeScratch) -> f64,
    ) -> f64 {
        let Scratch {
            tree: tsc,
            query,
            paths,
            staged,
            ..
        } = scratch;
        let active = [true; LOCKSTEP];
        let mut leaves = [NONE; LOCKSTEP];
        let mut total = 0.0;
        staged.begin(self.generation, query);
        for group in self.trees.chunks(LOCKSTEP) {
            descend_lockstep(group, &active, query, paths, &mut leaves);
            for (k, tree) in group.iter().enumerate() {
                let path = paths.path(k);
                let score = walk(tree, query, leaves[k], path, &self.store, tsc);
                total += score * tree.normaliser();
                staged.push(leaves[k], path, &tsc.probs[..path.len()], score);
            }
        }
        total / self.config.num_trees as f64
    }

    /// Scores a batch of full-dimension points (row-major, `dimensions()` values each) against
    /// the forest as it is, without changing it. No shingling is applied: each row is a forest
    /// point. Uses all cores with the `parallel` feature; results are bit-identical with any
    /// number of threads (each point's tree scores are summed in tree order).
    ///
    /// Work is tree-major: one tree scores a chunk of points before the next tree is touched, so
    /// the tree stays in cache. A batch of 256 points or more first makes a read-only copy of
    /// each tree laid out for scoring (every bounding box in place, whatever the box cache
    /// keeps; compact preorder nodes descended eight points at a time), about as costly as
    /// scoring a few dozen points and freed when the call returns; the scores are the same
    /// bit for bit either way (W4 in BENCHMARKS.md: about 3.1 µs per point on one thread,
    /// against 5.5 – 6.2 through the live trees at the default box cache).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] for an empty batch, [`Error::BatchShape`] if the length is not a
    /// multiple of `dimensions()`, [`Error::NonFinite`] (with the index into `points`) for NaN
    /// or infinite values.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// for t in 0..500 { forest.update(&[(t % 10) as f32, 5.0])?; }
    /// let scores = forest.score_many(&[3.0, 5.0, 3.0, 50.0])?; // two points, row-major
    /// assert_eq!(scores.len(), 2);
    /// assert_eq!(scores[0], forest.score(&[3.0, 5.0])?); // bit-identical to one at a time
    /// assert!(scores[1] > scores[0]);
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn score_many(&self, points: &[f32]) -> Result<Vec<f64>> {
        let dims = self.config.dimensions;
        self.check_batch(points, dims)?;
        let n = points.len() / dims;
        let mut out = vec![0.0; n];
        if !self.is_ready() {
            return Ok(out);
        }
        let capacity = self.config.sample_size;
        let frozen_bytes = FrozenTree::bytes_for(capacity, dims).saturating_mul(self.trees.len());
        if n >= FROZEN_MIN_POINTS && frozen_bytes <= FROZEN_MAX_BYTES {
            self.score_many_frozen(points, &mut out);
            return Ok(out);
        }
        let run = |sc: &mut Scratch, pts: &[f32], acc: &mut [f64]| {
            let Scratch {
                tree: tsc, paths, ..
            } = sc;
            let mut leaves = [NONE; LOCKSTEP];
            for tree in &self.trees {
                let norm = tree.normaliser();
                for (group, acc) in pts.chunks(LOCKSTEP * dims).zip(acc.chunks_mut(LOCKSTEP)) {
                    descend_points_lockstep(tree, group, dims, paths, &mut leaves);
                    for (k, (p, a)) in group.chunks_exact(dims).zip(acc.iter_mut()).enumerate() {
                        *a += tree
                            .walk_up(p, leaves[k], paths.path(k), &self.store, tsc, false)
                            .score
                            * norm;
                    }
                }
            }
            let k = self.config.num_trees as f64;
            acc.iter_mut().for_each(|a| *a /= k);
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(SCORE_CHUNK)
                .zip(points.par_chunks(SCORE_CHUNK * dims))
                .for_each_init(
                    || Scratch::new(dims, capacity),
                    |sc, (acc, pts)| run(sc, pts, acc),
                );
        }
        #[cfg(not(feature = "parallel"))]
        {
            let mut sc = Scratch::new(dims, capacity);
            for (acc, pts) in out
                .chunks_mut(SCORE_CHUNK)
                .zip(points.chunks(SCORE_CHUNK * dims))
            {
                run(&mut sc, pts, acc);
            }
        }
        Ok(out)
    }

    /// [`score_many`](Self::score_many) through a [`FrozenTree`] of every tree, made once for
    /// the batch (in parallel with the `parallel` feature): each chunk of points goes through
    /// one frozen tree after another, adding each tree's score in tree order, exactly as the
    /// live path does.
    fn score_many_frozen(&self, points: &[f32], out: &mut [f64]) {
        let dims = self.config.dimensions;
        let freeze = |tree: &Tree| FrozenTree::new(tree, &self.store, dims);
        let run = |pts: &[f32], acc: &mut [f64], frozen: &[FrozenTree]| {
            for tree in frozen {
                tree.add_scores(pts, dims, acc);
            }
            let k = self.config.num_trees as f64;
            acc.iter_mut().for_each(|a| *a /= k);
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            let frozen: Vec<FrozenTree> = self.trees.par_iter().map(freeze).collect();
            let chunk = frozen_chunk(out.len(), rayon::current_num_threads());
            out.par_chunks_mut(chunk)
                .zip(points.par_chunks(chunk * dims))
                .for_each(|(acc, pts)| run(pts, acc, &frozen));
        }
        #[cfg(not(feature = "parallel"))]
        {
            let frozen: Vec<FrozenTree> = self.trees.iter().map(freeze).collect();
            let chunk = frozen_chunk(out.len(), 1);
            for (acc, pts) in out.chunks_mut(chunk).zip(points.chunks(chunk * dims)) {
                run(pts, acc, &frozen);
            }
        }
    }

    /// Points each tree currently holds (with multiplicity), in tree order.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(1).num_trees(3).sample_size(8).build()?;
    /// for t in 0..100 { forest.update(&[t as f32])?; }
    /// assert_eq!(forest.tree_masses(), vec![8, 8, 8]); // every sample is full
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn tree_masses(&self) -> Vec<u32> {
        self.trees.iter().map(Tree::mass).collect()
    }

    /// Verifies every internal invariant (tree structure, masses, routing, cached boxes,
    /// sampler/tree agreement, point store bounds). Cheap enough for tests, not for hot loops.
    ///
    /// # Errors
    ///
    /// [`Error::State`] with [`StateError::Inconsistent`](crate::StateError::Inconsistent)
    /// describing the first violation; a forest built and updated through this API always
    /// passes.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(2).sample_size(64).seed(1).build()?;
    /// for t in 0..300 { forest.update(&[(t % 7) as f32, (t % 3) as f32])?; }
    /// forest.check_invariants()?;
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn check_invariants(&self) -> Result<()> {
        self.check(true)
            .map_err(|e| Error::State(crate::StateError::Inconsistent(e)))
    }

    /// `thorough` adds the per-leaf routing descent and the exact comparison of every cached
    /// box (tests); restores skip both and verify routing while rebuilding boxes instead.
    pub(crate) fn check(&self, thorough: bool) -> std::result::Result<(), String> {
        self.check_with(thorough, &mut TreeScratch::new(self.config.dimensions))
    }

    /// [`check`](Self::check) with the trees' traversal buffers in `sc`.
    pub(crate) fn check_with(
        &self,
        thorough: bool,
        sc: &mut TreeScratch,
    ) -> std::result::Result<(), String> {
        let c = &self.config;
        if self.trees.len() != c.num_trees
            || self.samplers.len() != c.num_trees
            || self.rngs.len() != c.num_trees
        {
            return Err("number of trees, samplers and generators differs from num_trees".into());
        }
        self.store.check(c.input_dims, c.shingle_size)?;
        if self.shingles_offered > self.entries_seen || self.epoch > self.shingles_offered {
            return Err("counters are inconsistent".into());
        }
        let expected_points = self.entries_seen.saturating_sub(c.shingle_size as u64 - 1);
        if self.shingles_offered != expected_points {
            return Err("points seen does not match inputs seen and shingle size".into());
        }
        if (self.store.len_units() as u64) < self.entries_seen.min(c.shingle_size as u64 - 1) {
            return Err("point store lost the current shingle".into());
        }
        let params = self.tree_params();
        for (i, (tree, sampler)) in self.trees.iter().zip(&self.samplers).enumerate() {
            sampler
                .check(c.sample_size)
                .map_err(|e| format!("tree {i}: {e}"))?;
            if sampler.len() >= c.sample_size && sampler.next_accept() < self.shingles_offered {
                return Err(format!("tree {i}: sampler schedule is in the past"));
            }
            tree.check(&params, &self.store, sampler.leaves(), thorough, sc)
                .map_err(|e| format!("tree {i}: {e}"))?;
        }
        Ok(())
    }

    /// Marks the forest as changed for staged walks (see the `generation` field).
    pub(crate) fn new_generation(&mut self) {
        self.generation = next_generation();
    }

    /// Rebuilds all cached boxes and leaf orders (after restoring a state), verifying that
    /// every cut separates its subtrees.
    pub(crate) fn rebuild_boxes(&mut self) -> std::result::Result<(), String> {
        self.rebuild_boxes_with(&mut TreeScratch::new(self.config.dimensions), true)
    }

    /// [`rebuild_boxes`](Self::rebuild_boxes) with the trees' traversal buffers in `sc`.
    /// Without `check_cuts` (a structure known to hold: bytes this process saved, vouched
    /// for by their digest) boxes are built only where the cache wants some (which checks
    /// those cuts still), skipping the subtree boxes of a tree that caches none; the leaf
    /// orders are rebuilt either way.
    pub(crate) fn rebuild_boxes_with(
        &mut self,
        sc: &mut TreeScratch,
        check_cuts: bool,
    ) -> std::result::Result<(), String> {
        let params = self.tree_params();
        for (i, tree) in self.trees.iter_mut().enumerate() {
            if check_cuts {
                tree.rebuild_boxes(&params, &self.store, sc)
            } else {
                tree.refill_boxes(&params, &self.store, sc)
            }
            .map_err(|e| format!("tree {i}: {e}"))?;
            tree.rebuild_order(
                params.box_cache_min_mass >= ORDER_MIN_MASS,
                params.capacity,
                &mut sc.stack,
            );
        }
        Ok(())
    }

    /// Reassembles a forest from restored parts (scratch is rebuilt).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        config: ForestConfig,
        trees: Vec<Tree>,
        samplers: Vec<Sampler>,
        rngs: Vec<TreeRng>,
        store: PointStore,
        entries_seen: u64,
        shingles_offered: u64,
        epoch: u64,
    ) -> Self {
        Self {
            trees,
            samplers,
            rngs,
            store,
            entries_seen,
            shingles_offered,
            epoch,
            generation: next_generation(),
            decay_exp_m1: config.time_decay.exp_m1(),
            config,
        }
    }

    /// Average depth of the sampled points over all trees (a diagnostic).
    #[cfg(test)]
    pub(crate) fn average_depth(&self) -> f64 {
        self.trees.iter().map(Tree::average_depth).sum::<f64>() / self.trees.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::naive::naive_score;

    fn wave(t: usize, k: f32) -> f32 {
        (t as f32 * k).sin() + 0.1 * ((t * 7919 % 101) as f32 / 101.0 - 0.5)
    }

    fn trained(min_mass: usize, dims: usize, shingle: usize, seed: u64) -> RandomCutForest {
        let mut f = RandomCutForest::builder(dims)
            .shingle_size(shingle)
            .num_trees(12)
            .sample_size(64)
            .box_cache_min_mass(min_mass)
            .seed(seed)
            .build()
            .unwrap();
        for t in 0..1_500 {
            let x: Vec<f32> = (0..dims).map(|j| wave(t, 0.05 + 0.03 * j as f32)).collect();
            f.update(&x).unwrap();
        }
        f
    }

    /// Queries for the comparisons with the naive reference: a point like the stream, one far
    /// out in the first dimension, one off in every dimension, and an exact sample point (the
    /// "seen" rule, and the attribution's even spread).
    fn probes(f: &RandomCutForest) -> Vec<Vec<f32>> {
        let d = f.dimensions();
        let sampled = f.trees[0].leaf_point(f.trees[0].descend(&vec![0.0; d], &mut Vec::new()));
        vec![
            (0..d).map(|i| wave(1_500 + i, 0.05)).collect(),
            (0..d).map(|i| if i == 0 { 6.0 } else { 0.1 }).collect(),
            (0..d).map(|i| -3.0 + i as f32).collect(),
            f.store.point(sampled).to_vec(),
        ]
    }

    /// Values beyond about ±1e38 overflow the `f32` separation kernel. A walk checks for that
    /// once, at its end, and walks again with every level checked: every walk whose unchecked
    /// levels overflowed must be caught (its unchecked score is not finite), and the score
    /// given must still be the definition's, and the frozen copy's bit for bit.
    #[test]
    fn walks_that_overflow_are_walked_again_checked() {
        for min_mass in [2, 4, 1_000] {
            let mut f = RandomCutForest::builder(2)
                .num_trees(12)
                .sample_size(64)
                .box_cache_min_mass(min_mass)
                .seed(3)
                .build()
                .unwrap();
            for t in 0..1_500 {
                f.update(&[wave(t, 0.05) * 3.2e38, wave(t, 0.08)]).unwrap();
            }
            let mut sc = f.scratch();
            let (mut overflowed, mut finite) = (0, 0);
            for q in [
                [3.0e38, 0.5],
                [-3.3e38, -1.0],
                [0.0, 0.0],
                [1.0, 9.0],
                [2e38, 2.0],
            ] {
                for tree in &f.trees {
                    let unchecked = tree.score_walk_unchecked(&q, &f.store, &mut sc.tree);
                    if unchecked.is_finite() {
                        finite += 1;
                    } else {
                        overflowed += 1;
                    }
                    let walk = tree.score_walk(&q, &f.store, &mut sc.tree, false).score;
                    assert!(walk.is_finite(), "min_mass {min_mass}, {q:?}: {walk}");
                    if unchecked.is_finite() {
                        assert_eq!(unchecked.to_bits(), walk.to_bits());
                    }
                    let fast = walk * tree.normaliser();
                    let naive = naive_score(tree, &f.store, &q);
                    assert!(
                        (fast - naive).abs() <= 1e-5 * naive.max(1.0),
                        "min_mass {min_mass}, {q:?}: fast {fast} vs naive {naive}"
                    );
                    let frozen = FrozenTree::new(tree, &f.store, f.dimensions());
                    let mut acc = [0.0];
                    frozen.add_scores(&q, f.dimensions(), &mut acc);
                    assert_eq!(acc[0].to_bits(), fast.to_bits(), "min_mass {min_mass}");
                }
            }
            // both kinds of walk were made
            assert!(overflowed > 0 && finite > 0, "{overflowed} {finite}");
        }
    }

    /// An attribution stages its walks in the thread's scratch, with every tree's score as
    /// the scoring walk computes it, so that a `process` of the same point next does not walk
    /// again.
    #[test]
    fn attribution_stages_the_walks_a_score_would() {
        // shingle 1: the probes are queries as they are, a sampled point among them
        for (min_mass, dims, shingle) in [(2, 1, 4), (16, 3, 4), (1_000, 3, 8), (8, 3, 1)] {
            let f = trained(min_mass, dims, shingle, 7);
            let (d, cap) = (f.dimensions(), f.config.sample_size);
            for q in probes(&f) {
                // an input: the forest shingles it with its own recent inputs
                let input = &q[d - dims..];
                f.attribution(input).unwrap();
                let staged = scratch::with_local(d, cap, |sc| {
                    let mut query = vec![0.0; d];
                    assert!(f.build_query(input, &mut query));
                    assert!(sc.staged.matches(f.generation, &query, f.trees.len()));
                    let leaves = sc.staged.leaves.clone();
                    let (scores, probs) = (sc.staged.scores.clone(), sc.staged.probs.clone());
                    (query, leaves, scores, probs)
                });
                f.score(input).unwrap();
                scratch::with_local(d, cap, |sc| {
                    assert_eq!(sc.staged.query, staged.0);
                    assert_eq!(sc.staged.leaves, staged.1);
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&sc.staged.scores),
                        bits(&staged.2),
                        "{min_mass} {dims}"
                    );
                    assert_eq!(bits(&sc.staged.probs), bits(&staged.3), "{min_mass} {dims}");
                });
            }
        }
    }

    /// Scores of every tree, by the fast walk and by the naive definition, must agree to f32
    /// precision (the fast kernel sums f32 terms; the naive one works in f64 throughout).
    #[test]
    fn fast_scorer_matches_naive_reference_on_the_same_trees() {
        for (min_mass, dims, shingle) in [
            (2, 1, 4),
            (4, 2, 3),
            (8, 3, 1),
            (1_000, 5, 2),
            (1_000, 3, 8),
            (16, 3, 8),
        ] {
            let f = trained(min_mass, dims, shingle, 5);
            let mut sc = f.scratch();
            for q in &probes(&f) {
                let mut total_fast = 0.0;
                let mut total_naive = 0.0;
                for tree in &f.trees {
                    let fast =
                        tree.score_walk(q, &f.store, &mut sc.tree, false).score * tree.normaliser();
                    let naive = naive_score(tree, &f.store, q);
                    assert!(
                        (fast - naive).abs() <= 1e-5 * naive.max(1.0),
                        "min_mass {min_mass}: fast {fast} vs naive {naive}"
                    );
                    // the batch path's frozen copy scores as the live walk, bit for bit
                    let frozen = FrozenTree::new(tree, &f.store, f.dimensions());
                    let mut acc = [0.0];
                    frozen.add_scores(q, f.dimensions(), &mut acc);
                    assert_eq!(acc[0].to_bits(), fast.to_bits(), "min_mass {min_mass}");
                    total_fast += fast;
                    total_naive += naive;
                }
                assert!(total_fast > 0.0 && total_naive > 0.0);
            }
        }
    }

    /// The attribution walk (lockstep descent, cached boxes in place, running boxes below
    /// them) matches the definition (rcf-reference §6, `naive_attribution`) in every
    /// dimension and direction, tree by tree, whatever the box cache and dimension.
    #[test]
    fn attribution_matches_naive_reference_per_dimension() {
        use crate::tree::naive::naive_attribution;
        for (min_mass, dims, shingle) in [
            (2, 1, 4),
            (4, 3, 4),
            (8, 3, 1),
            (1_000, 5, 2),
            (1_000, 3, 8),
            (16, 3, 8),
        ] {
            let f = trained(min_mass, dims, shingle, 6);
            let d = f.dimensions();
            for q in &probes(&f) {
                let (mut high, mut low) = (vec![0.0; d], vec![0.0; d]);
                let mut sc = f.scratch();
                let mut path = Vec::new();
                for tree in &f.trees {
                    let leaf = tree.descend(q, &mut path);
                    tree.attribution_walk(
                        q,
                        leaf,
                        &path,
                        &f.store,
                        &mut sc.tree,
                        1.0,
                        &mut high,
                        &mut low,
                    );
                    let (nh, nl) = naive_attribution(tree, &f.store, q);
                    for i in 0..d {
                        for (fast, naive) in [(high[i], nh[i]), (low[i], nl[i])] {
                            assert!(
                                (fast - naive).abs() <= 1e-5 * naive.abs().max(1e-3),
                                "min_mass {min_mass}, dims {d}, dimension {i}: {fast} vs {naive}"
                            );
                        }
                    }
                    high.fill(0.0);
                    low.fill(0.0);
                }
            }
        }
    }

    /// Where the processor has AVX an attribution walk runs compiled for it (256-bit
    /// registers for its per-dimension updates): it must give the portable walk's vectors,
    /// score and separation probabilities bit for bit, at every dimension the walks are
    /// specialised for and one they are not, with and without cached boxes.
    #[test]
    fn attribution_walks_with_and_without_avx_agree_bit_for_bit() {
        use crate::tree::visit::AttributionWalk;
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("no AVX here: the two walks are the same code");
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (min_mass, dims, shingle) in [
            (2, 1, 4),
            (4, 3, 4),
            (4, 1, 8),
            (1_000, 5, 2),
            (16, 3, 8),
            (2, 2, 1),
        ] {
            let f = trained(min_mass, dims, shingle, 11);
            let d = f.dimensions();
            for q in &probes(&f) {
                let (mut high, mut low) = (vec![0.0; d], vec![0.0; d]);
                let (mut high2, mut low2) = (vec![0.0; d], vec![0.0; d]);
                let (mut sc, mut sc2) = (f.scratch(), f.scratch());
                let mut path = Vec::new();
                for tree in &f.trees {
                    let leaf = tree.descend(q, &mut path);
                    let (store, w) = (&f.store, 0.75);
                    let a = tree.attribution_walk(
                        q,
                        leaf,
                        &path,
                        store,
                        &mut sc.tree,
                        w,
                        &mut high,
                        &mut low,
                    );
                    let b = AttributionWalk {
                        tree,
                        q,
                        leaf,
                        path: &path,
                        store,
                        sc: &mut sc2.tree,
                        weight: w,
                        high_out: &mut high2,
                        low_out: &mut low2,
                    }
                    .run_portable();
                    assert_eq!(a.to_bits(), b.to_bits(), "min_mass {min_mass}, dims {d}");
                    assert_eq!(bits(&high), bits(&high2), "min_mass {min_mass}, dims {d}");
                    assert_eq!(bits(&low), bits(&low2), "min_mass {min_mass}, dims {d}");
                    assert_eq!(bits(&sc.tree.probs), bits(&sc2.tree.probs));
                }
                assert!(high.iter().chain(&low).any(|&v| v > 0.0));
            }
        }
    }

    /// A store that outgrows 16-bit point indices widens the leaves' indices: scores still
    /// match the naive definition, invariants hold, and the state round-trips exactly.
    #[test]
    fn leaf_indices_widen_when_the_store_outgrows_16_bits() {
        let mut f = RandomCutForest::builder(1)
            .num_trees(12)
            .sample_size(16_384)
            .time_decay(0.0)
            .seed(3)
            .build()
            .unwrap();
        assert!(f.trees.iter().all(|t| t.leaf_points_narrow()));
        for t in 0..80_000 {
            f.update(&[wave(t, 0.001)]).unwrap();
        }
        assert!(f.store.len_units() > 65_536, "{}", f.store.len_units());
        assert!(f.trees.iter().any(|t| !t.leaf_points_narrow()));
        f.check(true).unwrap();
        let q = [3.0f32];
        let mut sc = f.scratch();
        for tree in &f.trees {
            let fast = tree.score_walk(&q, &f.store, &mut sc.tree, false).score * tree.normaliser();
            let naive = naive_score(tree, &f.store, &q);
            assert!(
                (fast - naive).abs() <= 1e-5 * naive.max(1.0),
                "{fast} vs {naive}"
            );
        }
        let back = RandomCutForest::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(back.to_bytes(), f.to_bytes());
        assert_eq!(back.score(&q).unwrap(), f.score(&q).unwrap());
    }

    /// A canonical, slot-independent description of a tree: its shape, cuts, masses and points.
    fn canonical(tree: &Tree, store: &PointStore) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(tree.root(), 0)];
        while let Some((r, depth)) = stack.pop() {
            if r == NONE {
                out.push("empty".into());
            } else if crate::tree::is_leaf(r) {
                out.push(format!(
                    "{depth} leaf {:?} x{}",
                    store.point(tree.leaf_point(r)),
                    tree.leaf_mass(r)
                ));
            } else {
                let n = tree.node(r);
                out.push(format!(
                    "{depth} cut {} <= {} mass {}",
                    n.cut_dim,
                    n.cut_value,
                    tree.mass_of(r)
                ));
                stack.push((n.right, depth + 1));
                stack.push((n.left, depth + 1));
            }
        }
        out
    }

    #[test]
    fn delete_undoes_insert() {
        for min_mass in [2, 3, 5, 1_000] {
            let mut f = trained(min_mass, 2, 2, 9);
            let params = f.tree_params();
            let mut sc = f.scratch();
            let probes: [[f32; 2]; 4] = [[0.3, -0.2], [5.0, 5.0], [-4.0, 0.0], [0.0, 0.0]];
            for (i, probe) in probes.iter().enumerate() {
                // an arbitrary new 4-dimensional point (shingle 2 of 2 inputs)
                f.store.push_unit(probe);
                let start = f.store.newest_point();
                let q = f.store.point(start).to_vec();
                let tree_index = i % f.trees.len();
                let before = canonical(&f.trees[tree_index], &f.store);
                let tree = &mut f.trees[tree_index];
                let leaf = tree.descend(&q, &mut sc.tree.path);
                let path = sc.tree.path.clone();
                let (_, held) = tree.walk_and_insert(
                    &q,
                    leaf,
                    &path,
                    &params,
                    &f.store,
                    &mut sc.tree,
                    Some((start, &mut f.rngs[tree_index])),
                );
                let leaf = held.expect("an admitted point is inserted");
                assert_eq!(tree.mass() as usize, f.samplers[tree_index].len() + 1);
                tree.delete(leaf, &params, &f.store, &mut sc.tree);
                assert_eq!(
                    canonical(tree, &f.store),
                    before,
                    "min_mass {min_mass}, probe {i}"
                );
                tree.check(
                    &params,
                    &f.store,
                    f.samplers[tree_index].leaves(),
                    true,
                    &mut sc.tree,
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn inserts_keep_the_tree_distribution() {
        // A tree grown by streaming inserts and deletes is distributed like one built from its
        // sample (rcf-reference §1): compare the average leaf depth with the expected depth of a
        // random cut tree on well-spread 1-d data, ≈ 2 ln n for n points (random BST).
        let mut f = RandomCutForest::builder(1)
            .num_trees(40)
            .sample_size(128)
            .seed(3)
            .build()
            .unwrap();
        for t in 0..6_000u64 {
            // a pseudo-random uniform stream
            let x = ((t.wrapping_mul(2654435761) % 100_003) as f32) / 100_003.0;
            f.update(&[x]).unwrap();
        }
        let depth = f.average_depth();
        // On uniform 1-d data a range-proportional cut splits the points at a uniformly random
        // rank, as a random BST does; the n points are the leaves, so their average depth is
        // the random BST's average external depth 2(H_n − 1) ≈ 8.86 for n = 128. The 40 trees
        // average 5,120 depths; margin 5 %.
        let h: f64 = (1..=128).map(|i| 1.0 / f64::from(i)).sum();
        let expected = 2.0 * (h - 1.0);
        assert!(
            (depth - expected).abs() < 0.05 * expected,
            "depth {depth} vs {expected}"
        );
    }
}
#[cfg(test)]
mod leaf_order_tests {
    use super::*;
    use crate::tree::naive::naive_score;

    /// The leaf order (tree invariant 5) survives every kind of update, with scores still
    /// the naive definition's: duplicates (values
    /// on a coarse grid repeat), evictions under time decay and without it, and the store's
    /// compactions, which renumber points. A duplicate's run once held the new copy's store
    /// index instead of the leaf's, which a later compaction left pointing at a freed slot.
    #[test]
    fn leaf_order_holds_through_duplicates_evictions_and_compactions() {
        // box caches from 32 (the least that keeps an order) to none at all
        for (sample_size, decay, min_mass) in [(64, 0.01, 1000), (64, 0.0, 32), (256, 0.001, 48)] {
            let mut f = RandomCutForest::builder(2)
                .num_trees(3)
                .sample_size(sample_size)
                .time_decay(decay)
                .box_cache_min_mass(min_mass)
                .seed(5)
                .build()
                .unwrap();
            assert!(f.trees.iter().all(Tree::ordered));
            for t in 0..10_000u64 {
                let a = ((t as f64) * 0.01).sin() * 10.0;
                // a grid of 0.5: many exact repeats
                let x = [(a * 2.0).round() as f32 / 2.0, (t % 5) as f32];
                f.update(&x).unwrap();
                if t % 10 == 0 {
                    let checked = f.check(true);
                    assert!(checked.is_ok(), "{sample_size}/{decay} at {t}: {checked:?}");
                }
            }
            let mut sc = f.scratch();
            for q in [[0.0f32, 2.0], [10.0, 4.0], [-3.5, 0.0], [40.0, -7.0]] {
                for tree in &f.trees {
                    let fast = tree.score_walk(&q, &f.store, &mut sc.tree, false).score
                        * tree.normaliser();
                    let naive = naive_score(tree, &f.store, &q);
                    assert!(
                        (fast - naive).abs() <= 1e-5 * naive.max(1.0),
                        "{fast} vs {naive}"
                    );
                }
            }
            // restored, the order is rebuilt (it is not saved) and the forest is the same
            let back = RandomCutForest::from_bytes(&f.to_bytes()).unwrap();
            back.check(true).unwrap();
            assert_eq!(back.to_bytes(), f.to_bytes());
            // a smaller box cache drops the order, a larger one builds it again
            f.set_box_cache_min_mass(4).unwrap();
            assert!(f.trees.iter().all(|t| !t.ordered()));
            f.check(true).unwrap();
            f.set_box_cache_min_mass(min_mass).unwrap();
            assert!(f.trees.iter().all(Tree::ordered));
            f.check(true).unwrap();
        }
    }
}
