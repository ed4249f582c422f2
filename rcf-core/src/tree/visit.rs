//! Queries on one tree: score, attribution and imputation (rcf-reference §5–§7).
//!
//! All three descend to the query's leaf and walk back up the recorded path. At each ancestor
//! `v` the walk needs the box of `v`; it keeps a running box, starting at the leaf's point, and
//! either copies `v`'s cached box or grows the running box by the sibling subtree's box. It
//! stops once the query lies inside the box: every higher box contains it too, so every higher
//! separation probability is 0.

use crate::kernels::{
    fixed_len_f64_mut, gap_and_range, gap_and_range_unchecked, separation_probability,
};
use crate::point_store::PointStore;
use crate::tree::{NONE, Node, NodeRef, Tree, TreeScratch, by_dimension, fixed_len, is_leaf};

/// `damp(m, M_T) = 1 − m / (2 M_T)` of rcf-reference §5.
#[inline]
fn damp(leaf_mass: f64, tree_mass: f64) -> f64 {
    1.0 - leaf_mass / (2.0 * tree_mass)
}

/// The score of a query equal to the point of a leaf of mass `leaf_mass` at `depth` in a tree
/// of `tree_mass` points (the "seen" rule of rcf-reference §5), before the normaliser.
#[inline]
pub(super) fn seen_score(leaf_mass: u32, tree_mass: u32, depth: usize) -> f64 {
    let m = f64::from(leaf_mass);
    damp(m, f64::from(tree_mass)) / (depth as f64 + log2_1p(m))
}

/// The walk up's score recursion `s ← (1 − p)·s + p/(j + 1)`, `p = gap / (range + gap)`,
/// carried as a fraction `s = num / den`: `num ← range·num + gap·den/(j + 1)`,
/// `den ← den·(range + gap)`. That is the same value with no division per level (two
/// divisions per level were the walk's critical path); the fraction is renormalised if `den`
/// drifts toward the limits of `f64`. Every scorer folds levels through this one type, so
/// they agree bit for bit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fraction {
    num: f64,
    den: f64,
}

impl Fraction {
    /// The score at a leaf of `depth` the query is not equal to: `1 / (depth + 1)`.
    #[inline(always)]
    pub(super) fn at_leaf(depth: usize) -> Self {
        Self {
            num: 1.0,
            den: depth as f64 + 1.0,
        }
    }

    /// Folds in level `j`, where the query lies `gap > 0` outside a box of size `range`.
    #[inline(always)]
    pub(super) fn level(&mut self, j: usize, gap: f64, range: f64) {
        self.level_at(inverse_depth(j), gap, range);
    }

    /// [`level`](Self::level) given `1 / (j + 1)` (`inverse`), as
    /// [`inverse_depths`] gives it.
    #[inline(always)]
    pub(super) fn level_at(&mut self, inverse: f64, gap: f64, range: f64) {
        let grown = range + gap;
        self.num = range * self.num + gap * self.den * inverse;
        self.den *= grown;
        if !(1e-200..=1e200).contains(&self.den) {
            self.num /= self.den;
            self.den = 1.0;
        }
    }

    /// The score.
    #[inline(always)]
    pub(super) fn value(self) -> f64 {
        self.num / self.den
    }
}

/// A walk's running state: its score recursion and, unless `CHECKED`, the sum of every
/// level's gap and range, which is infinite iff a level's unchecked kernel overflowed.
struct Fold<const CHECKED: bool> {
    s: Fraction,
    overflow: f64,
}

impl<const CHECKED: bool> Fold<CHECKED> {
    /// The separation kernel of this walk: checked level by level, or unchecked (see
    /// [`gap_and_range_unchecked`]).
    #[inline(always)]
    fn kernel(&self, q: &[f32], lo: &[f32], hi: &[f32]) -> (f64, f64) {
        if CHECKED {
            gap_and_range(q, lo, hi)
        } else {
            gap_and_range_unchecked(q, lo, hi)
        }
    }

    /// Folds in level `j` (recording its separation probability in `probs`, if not empty);
    /// false where `q` lies in the box (`gap` 0), which ends the walk.
    #[inline(always)]
    fn level(&mut self, j: usize, gap: f64, range: f64, probs: &mut [f64]) -> bool {
        if !CHECKED {
            self.overflow += gap + range;
        }
        if gap <= 0.0 {
            return false;
        }
        if let Some(p) = probs.get_mut(j) {
            *p = gap / (range + gap);
        }
        self.s.level(j, gap, range);
        true
    }

    /// The score; infinite if an unchecked level overflowed (the walk must be made again,
    /// checked).
    #[inline(always)]
    fn score(&self) -> f64 {
        unless_overflowed(self.s, self.overflow)
    }
}

/// The score of a walk's recursion `s`, or infinity if its unchecked levels' gaps and ranges,
/// summed into `overflow`, were not all finite (the walk must be made again, checked).
#[inline(always)]
pub(super) fn unless_overflowed(s: Fraction, overflow: f64) -> f64 {
    if overflow.is_finite() {
        s.value()
    } else {
        f64::INFINITY
    }
}

/// The arguments of one [`Tree::attribution_walk`], so that the walk can be compiled once
/// for AVX ([`AvxBody`](crate::kernels::x86_64::AvxBody)) and once without (`run_portable`,
/// the twin the tests compare the AVX walk with).
pub(crate) struct AttributionWalk<'a> {
    pub(crate) tree: &'a Tree,
    pub(crate) q: &'a [f32],
    pub(crate) leaf: NodeRef,
    pub(crate) path: &'a [NodeRef],
    pub(crate) store: &'a PointStore,
    pub(crate) sc: &'a mut TreeScratch,
    pub(crate) weight: f64,
    pub(crate) high_out: &'a mut [f64],
    pub(crate) low_out: &'a mut [f64],
}

impl AttributionWalk<'_> {
    /// The walk, for the forest's dimension, never compiled for AVX.
    #[inline(always)]
    pub(crate) fn run_portable(self) -> f64 {
        let Self {
            tree,
            q,
            leaf,
            path,
            store,
            sc,
            weight,
            high_out,
            low_out,
        } = self;
        by_dimension!(
            q.len(),
            tree.attribution_walk_n(q, leaf, path, store, sc, weight, high_out, low_out)
        )
    }
}

#[cfg(target_arch = "x86_64")]
impl crate::kernels::x86_64::AvxBody for AttributionWalk<'_> {
    type Output = f64;

    #[inline(always)]
    fn run(self, _avx: crate::kernels::Avx) -> f64 {
        self.run_portable()
    }
}

/// `log2(1 + m)` (only on the rare "seen" path; the per-tree normaliser is cached in the tree).
#[inline]
fn log2_1p(m: f64) -> f64 {
    (1.0 + m).log2()
}

/// `1 / (j + 1)` for the depths walks usually visit.
const INVERSE_DEPTHS: [f64; 64] = {
    let mut t = [0.0; 64];
    let mut j = 0;
    while j < 64 {
        t[j] = 1.0 / (j as f64 + 1.0);
        j += 1;
    }
    t
};

/// `1 / (j + 1)`, from a table for the depths walks usually visit.
#[inline(always)]
fn inverse_depth(j: usize) -> f64 {
    if j < INVERSE_DEPTHS.len() {
        INVERSE_DEPTHS[j]
    } else {
        1.0 / (j as f64 + 1.0)
    }
}

/// `1 / (j + 1)` for every level `j < depth` of a walk, as [`inverse_depth`] gives them, if
/// the table holds them all: a walk that takes them from here indexes a slice of its depth,
/// with no test per level.
#[inline(always)]
pub(super) fn inverse_depths(depth: usize) -> Option<&'static [f64]> {
    INVERSE_DEPTHS.get(..depth)
}

/// `max(v, 0)` for a difference of finite values (never NaN): one `maxpd` lane, where the
/// NaN-aware `f64::max` costs a compare and a blend more.
#[inline(always)]
fn pos64(v: f64) -> f64 {
    if v > 0.0 { v } else { 0.0 }
}

/// One level of an attribution walk: `h[i] ← keep·h[i] + max(x − hi, 0)·part` and
/// `l[i] ← keep·l[i] + max(lo − x, 0)·part` for every dimension, in `f64`. Two dimensions
/// per step, each an array of two the compiler turns into one two-lane instruction: written
/// as one loop over the dimensions, LLVM kept it scalar at 12 dimensions (its trip count is
/// too short for the loop vectoriser), and this loop is most of an attribution walk. The
/// same operations in the same order per dimension: the same values, bit for bit.
#[inline(always)]
fn attribute_level(
    q: &[f32],
    lo: &[f32],
    hi: &[f32],
    h: &mut [f64],
    l: &mut [f64],
    keep: f64,
    part: f64,
) {
    let n = q.len();
    let pairs = n / 2;
    for c in 0..pairs {
        let i = 2 * c;
        let x = [f64::from(q[i]), f64::from(q[i + 1])];
        let b = [f64::from(lo[i]), f64::from(lo[i + 1])];
        let t = [f64::from(hi[i]), f64::from(hi[i + 1])];
        let (hh, ll) = (&mut h[i..i + 2], &mut l[i..i + 2]);
        for k in 0..2 {
            hh[k] = keep * hh[k] + pos64(x[k] - t[k]) * part;
            ll[k] = keep * ll[k] + pos64(b[k] - x[k]) * part;
        }
    }
    if n % 2 == 1 {
        let i = n - 1;
        let (x, b, t) = (f64::from(q[i]), f64::from(lo[i]), f64::from(hi[i]));
        h[i] = keep * h[i] + pos64(x - t) * part;
        l[i] = keep * l[i] + pos64(b - x) * part;
    }
}

/// The leaf's part of an attribution walk: `h[i] = max(x − y, 0)·share` and `l[i] =
/// max(y − x, 0)·share` for the query `x` and the leaf's point `y`, two dimensions per step
/// as in [`attribute_level`] (the same values).
#[inline(always)]
fn leaf_share(q: &[f32], y: &[f32], h: &mut [f64], l: &mut [f64], share: f64) {
    let n = q.len();
    let (y, h, l) = (&y[..n], &mut h[..n], &mut l[..n]);
    for c in 0..n / 2 {
        let i = 2 * c;
        let x = [f64::from(q[i]), f64::from(q[i + 1])];
        let p = [f64::from(y[i]), f64::from(y[i + 1])];
        let (hh, ll) = (&mut h[i..i + 2], &mut l[i..i + 2]);
        for k in 0..2 {
            hh[k] = (x[k] - p[k]).max(0.0) * share;
            ll[k] = (p[k] - x[k]).max(0.0) * share;
        }
    }
    if n % 2 == 1 {
        let i = n - 1;
        let (x, p) = (f64::from(q[i]), f64::from(y[i]));
        h[i] = (x - p).max(0.0) * share;
        l[i] = (p - x).max(0.0) * share;
    }
}

/// `out[i] += v[i]·k` for every `i` (`out` at least as long as `v`), two at a time as in
/// [`attribute_level`] (the same values).
#[inline(always)]
fn add_scaled(out: &mut [f64], v: &[f64], k: f64) {
    let n = v.len();
    let out = &mut out[..n];
    for c in 0..n / 2 {
        let i = 2 * c;
        let (o, w) = (&mut out[i..i + 2], &v[i..i + 2]);
        for j in 0..2 {
            o[j] += w[j] * k;
        }
    }
    if n % 2 == 1 {
        out[n - 1] += v[n - 1] * k;
    }
}

/// Sets `[min, max]` to the single point `p`.
#[inline]
fn set_to_point(min: &mut [f32], max: &mut [f32], p: &[f32]) {
    for ((lo, hi), &v) in min.iter_mut().zip(max.iter_mut()).zip(p) {
        *lo = v;
        *hi = v;
    }
}

/// Paths of up to [`LOCKSTEP`] trees, in one flat buffer.
#[derive(Debug, Clone, Default)]
pub(crate) struct LockstepPaths {
    buf: Vec<NodeRef>,
    stride: usize,
    len: [usize; LOCKSTEP],
}

impl LockstepPaths {
    /// Room for paths of up to `max_depth` internal nodes (a tree of `capacity` points has at
    /// most `capacity` internal nodes, counting the one an insert adds before a delete).
    pub(crate) fn new(max_depth: usize) -> Self {
        Self {
            buf: vec![NONE; max_depth * LOCKSTEP],
            stride: max_depth,
            len: [0; LOCKSTEP],
        }
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<NodeRef>()
    }

    /// The path of tree `k` of the last descent (root first).
    #[inline]
    pub(crate) fn path(&self, k: usize) -> &[NodeRef] {
        &self.buf[k * self.stride..k * self.stride + self.len[k]]
    }
}

/// Descends up to [`LOCKSTEP`] trees at once with the same query, one level of every tree per
/// round, so that their node loads (each a likely cache miss) overlap instead of queueing.
/// Trees with `active[k] == false` are skipped (their leaf is NONE).
#[inline]
pub(crate) fn descend_lockstep(
    trees: &[Tree],
    active: &[bool],
    q: &[f32],
    paths: &mut LockstepPaths,
    leaves: &mut [NodeRef; LOCKSTEP],
) {
    let g = trees.len();
    debug_assert!(g <= LOCKSTEP && active.len() >= g);
    let mut nodes: [&[Node]; LOCKSTEP] = [&[]; LOCKSTEP];
    let mut start = [NONE; LOCKSTEP];
    for k in 0..g {
        nodes[k] = trees[k].nodes();
        start[k] = if active[k] { trees[k].root() } else { NONE };
    }
    lockstep(g, start, paths, leaves, |k, r| {
        nodes[k][r as usize].child_toward(q)
    });
}

/// Descends up to [`LOCKSTEP`] trees at once, each with the point of one of its own leaves
/// (`batch`: tree index, leaf), one level of every tree per round, as [`descend_lockstep`]:
/// the paths to those leaves (a delete's). `leaves` gets the leaves reached.
#[inline]
pub(crate) fn descend_to_leaves(
    trees: &[Tree],
    batch: &[(u32, NodeRef)],
    store: &PointStore,
    paths: &mut LockstepPaths,
    leaves: &mut [NodeRef; LOCKSTEP],
) {
    let g = batch.len();
    debug_assert!(g <= LOCKSTEP);
    let mut nodes: [&[Node]; LOCKSTEP] = [&[]; LOCKSTEP];
    let mut points: [&[f32]; LOCKSTEP] = [&[]; LOCKSTEP];
    let mut start = [NONE; LOCKSTEP];
    for (k, &(i, leaf)) in batch.iter().enumerate() {
        let tree = &trees[i as usize];
        nodes[k] = tree.nodes();
        points[k] = store.point(tree.leaf_point(leaf));
        start[k] = tree.root();
    }
    lockstep(g, start, paths, leaves, |k, r| {
        nodes[k][r as usize].child_toward(points[k])
    });
}

/// Descends one tree with up to [`LOCKSTEP`] queries at once (`points` holds them row-major,
/// `dims` values each), one level of every query per round, so that their dependent load
/// chains (node → query value → compare → child) overlap. The batch path's counterpart of
/// [`descend_lockstep`].
#[inline]
pub(crate) fn descend_points_lockstep(
    tree: &Tree,
    points: &[f32],
    dims: usize,
    paths: &mut LockstepPaths,
    leaves: &mut [NodeRef; LOCKSTEP],
) {
    let g = points.len() / dims;
    debug_assert!(g <= LOCKSTEP);
    let nodes = tree.nodes();
    let mut start = [NONE; LOCKSTEP];
    start[..g].fill(tree.root());
    lockstep(g, start, paths, leaves, |k, r| {
        let n = &nodes[r as usize];
        if points[k * dims + n.cut_dim as usize] <= n.cut_value {
            n.left
        } else {
            n.right
        }
    });
}

/// The shared loop of the lockstep descents: `g` lanes start at `start[k]` and, round after
/// round, each lane still at an internal node `r` records it and moves to `child(k, r)`.
#[inline(always)]
fn lockstep(
    g: usize,
    start: [NodeRef; LOCKSTEP],
    paths: &mut LockstepPaths,
    leaves: &mut [NodeRef; LOCKSTEP],
    child: impl Fn(usize, NodeRef) -> NodeRef,
) {
    let mut cur = start;
    let mut len = [0usize; LOCKSTEP];
    let stride = paths.stride;
    let buf = &mut paths.buf[..];
    loop {
        let mut moved = false;
        for k in 0..g {
            let r = cur[k];
            // NONE carries the leaf bit, so empty and finished lanes both stop here
            if !is_leaf(r) {
                buf[k * stride + len[k]] = r;
                len[k] += 1;
                cur[k] = child(k, r);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    paths.len = len;
    *leaves = cur;
}

/// Trees descended together by [`descend_lockstep`].
pub(crate) const LOCKSTEP: usize = 8;

/// The result of a scoring walk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    /// Unnormalised score `s` (the soft inverse depth).
    pub(crate) score: f64,
    /// Leaf reached (NONE for an empty tree).
    pub(crate) leaf: NodeRef,
}

impl Tree {
    /// Scores `q` (rcf-reference §5, before the normaliser). With `record`, also leaves in
    /// `sc.probs[j]` the separation probability of `q` against the box of `sc.path[j]` (0 above
    /// the convergence level), which [`Tree::insert_along`] consumes. (The forest descends
    /// several trees at once and calls [`walk_up`](Self::walk_up); this one-tree form serves
    /// the tests.)
    #[cfg(test)]
    pub(crate) fn score_walk(
        &self,
        q: &[f32],
        store: &PointStore,
        sc: &mut TreeScratch,
        record: bool,
    ) -> Walk {
        let mut path = std::mem::take(&mut sc.path);
        let leaf = self.descend(q, &mut path);
        let walk = self.walk_up(q, leaf, &path, store, sc, record);
        sc.path = path;
        walk
    }

    /// [`score_walk`](Self::score_walk)'s walk without the end-of-walk check for overflow:
    /// the score of the unchecked kernels, infinite where one of them overflowed (what the
    /// walk's caller then walks again checked).
    #[cfg(test)]
    pub(crate) fn score_walk_unchecked(
        &self,
        q: &[f32],
        store: &PointStore,
        sc: &mut TreeScratch,
    ) -> f64 {
        let mut path = std::mem::take(&mut sc.path);
        let leaf = self.descend(q, &mut path);
        let walk = if self.ordered() {
            self.walk_up_in::<0, true, false>(q, leaf, &path, store, sc, false)
        } else {
            self.walk_up_in::<0, false, false>(q, leaf, &path, store, sc, false)
        };
        sc.path = path;
        walk.score
    }

    /// The upward half of [`score_walk`](Self::score_walk), for a `leaf` and `sc.path` already
    /// found (e.g. by [`descend_lockstep`]).
    ///
    /// Below the first node with a cached box the walk keeps a running box in scratch, growing
    /// it by each sibling subtree; from that node up it reads cached boxes in place (a node's
    /// ancestors hold more points, so they are cached too) and copies nothing.
    #[inline]
    pub(crate) fn walk_up(
        &self,
        q: &[f32],
        leaf: NodeRef,
        path: &[NodeRef],
        store: &PointStore,
        sc: &mut TreeScratch,
        record: bool,
    ) -> Walk {
        // callgrind: the per-level work is loop control and bounds checks as much as
        // arithmetic without a length known at compile time
        by_dimension!(q.len(), self.walk_up_n(q, leaf, path, store, sc, record))
    }

    /// [`walk_up`](Self::walk_up) for dimension `D` (0: any dimension).
    #[inline(always)]
    fn walk_up_n<const D: usize>(
        &self,
        q: &[f32],
        leaf: NodeRef,
        path: &[NodeRef],
        store: &PointStore,
        sc: &mut TreeScratch,
        record: bool,
    ) -> Walk {
        // one body each way: the choice is the forest's, not the level's
        let walk = if self.ordered() {
            self.walk_up_in::<D, true, false>(q, leaf, path, store, sc, record)
        } else {
            self.walk_up_in::<D, false, false>(q, leaf, path, store, sc, record)
        };
        if walk.score.is_finite() {
            return walk;
        }
        // a level's kernel overflowed (values beyond about ±1e38): the walk again, each level
        // checked and recomputed wide where needed, as `gap_and_range` does
        if self.ordered() {
            self.walk_up_in::<D, true, true>(q, leaf, path, store, sc, record)
        } else {
            self.walk_up_in::<D, false, true>(q, leaf, path, store, sc, record)
        }
    }

    /// [`walk_up_n`](Self::walk_up_n) for a tree with (`ORDERED`) or without a leaf order.
    ///
    /// Without `CHECKED` the levels take the kernel without its overflow check
    /// ([`gap_and_range_unchecked`]) and only the walk's end looks whether any of them
    /// overflowed: the score is then not finite (an overflowed level's gap or range is
    /// infinite, and every level's terms are summed into it), and the caller walks again
    /// `CHECKED`. A score that is finite is the checked walk's, bit for bit.
    #[inline(always)]
    fn walk_up_in<const D: usize, const ORDERED: bool, const CHECKED: bool>(
        &self,
        q: &[f32],
        leaf: NodeRef,
        path: &[NodeRef],
        store: &PointStore,
        sc: &mut TreeScratch,
        record: bool,
    ) -> Walk {
        let q = fixed_len::<D>(q);
        if leaf == NONE {
            return Walk { score: 0.0, leaf };
        }
        let depth = path.len();
        if record {
            sc.probs.clear();
            sc.probs.resize(depth, 0.0);
        }
        let leaf_pt = store.point(self.leaf_point(leaf));
        if leaf_pt == q {
            let score = seen_score(self.leaf_mass(leaf), self.mass(), depth);
            return Walk { score, leaf };
        }
        let dims = q.len();
        let stride = 2 * dims;
        let TreeScratch {
            min,
            max,
            starts,
            stack,
            probs,
            ..
        } = sc;
        let probs = if record { &mut probs[..depth] } else { &mut [] };
        let mut fold = Fold::<CHECKED> {
            s: Fraction::at_leaf(depth),
            overflow: 0.0,
        };
        // levels `j` not yet walked are `..j`
        let mut j = depth;
        let mut child = leaf;
        'walk: while j > 0 {
            // the uncached bottom levels: a running box in scratch, grown by each sibling
            // subtree (the box of `child` once the first level set it)
            let mut running = false;
            while j > 0 {
                let node = path[j - 1];
                if self.box_slot(node) != NONE {
                    break;
                }
                j -= 1;
                if !running {
                    if ORDERED {
                        // the uncached levels are the bottom ones (a node's ancestors hold
                        // more points): the runs of the path's subtrees in the leaf order, once
                        self.path_starts(path, leaf, starts);
                    }
                    if child == leaf {
                        set_to_point(min, max, leaf_pt);
                    } else if ORDERED {
                        self.run_box(child, starts[j + 1], store, min, max);
                    } else {
                        self.subtree_box(child, store, min, max, stack);
                    }
                    running = true;
                }
                let n = self.node(node);
                if ORDERED {
                    // the sibling's run: after the child's if the child is on the left
                    let came_left = n.left == child;
                    let after = std::hint::select_unpredictable(came_left, self.mass_of(child), 0);
                    let at = starts[j] + after;
                    self.union_run_box(n.other_child(child), at, store, min, max);
                } else {
                    self.union_subtree_box(n.other_child(child), store, min, max, stack);
                }
                let (gap, range) = fold.kernel(q, fixed_len::<D>(min), fixed_len::<D>(max));
                if !fold.level(j, gap, range, probs) {
                    break 'walk;
                }
                child = node;
            }
            // the cached levels, read in place (a node's ancestors hold more points, so from
            // the first cached node up every box is cached; the loop above takes any that
            // is not)
            let boxes = self.boxes();
            while j > 0 {
                let node = path[j - 1];
                let slot = self.box_slot(node);
                if slot == NONE {
                    continue 'walk;
                }
                j -= 1;
                let b = &boxes[slot as usize * stride..][..stride];
                let (lo, hi) = b.split_at(dims);
                let (gap, range) = fold.kernel(q, fixed_len::<D>(lo), fixed_len::<D>(hi));
                if !fold.level(j, gap, range, probs) {
                    break 'walk;
                }
                child = node;
            }
        }
        Walk {
            score: fold.score(),
            leaf,
        }
    }

    /// Attribution of `q` (rcf-reference §6), before the normaliser, given the `leaf` it
    /// descends to and the `path` there (root first, e.g. from [`descend_lockstep`]): adds
    /// this tree's `high`/`low` vectors, scaled by `weight`, into `high_out`/`low_out`. The
    /// tree's vectors sum to its score: if the walk converged at a duplicate (no separation
    /// anywhere), the score is spread evenly over all 2d entries.
    ///
    /// Returns the (unnormalised) score as [`walk_up`](Self::walk_up) computes it, bit for
    /// bit, and leaves in `sc.probs` the separation probabilities it records: a walk an
    /// insert of the same point can follow (the forest stages it, as a score's).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attribution_walk(
        &self,
        q: &[f32],
        leaf: NodeRef,
        path: &[NodeRef],
        store: &PointStore,
        sc: &mut TreeScratch,
        weight: f64,
        high_out: &mut [f64],
        low_out: &mut [f64],
    ) -> f64 {
        let walk = AttributionWalk {
            tree: self,
            q,
            leaf,
            path,
            store,
            sc,
            weight,
            high_out,
            low_out,
        };
        // the walk's per-dimension updates compiled for 256-bit registers where the processor
        // has AVX: the same operations in the same order, bit for bit, four `f64` at a time
        // (W2 with attribution: −11.9 % instructions)
        #[cfg(target_arch = "x86_64")]
        let walk = match crate::kernels::x86_64::with_avx(walk) {
            Ok(score) => return score,
            Err(walk) => walk,
        };
        walk.run_portable()
    }

    /// [`attribution_walk`](Self::attribution_walk) for dimension `D` (0: any).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn attribution_walk_n<const D: usize>(
        &self,
        q: &[f32],
        leaf: NodeRef,
        path: &[NodeRef],
        store: &PointStore,
        sc: &mut TreeScratch,
        weight: f64,
        high_out: &mut [f64],
        low_out: &mut [f64],
    ) -> f64 {
        if leaf == NONE {
            return 0.0;
        }
        let q = fixed_len::<D>(q);
        let dims = q.len();
        let depth = path.len();
        let leaf_pt = store.point(self.leaf_point(leaf));
        let TreeScratch {
            min,
            max,
            stack,
            high,
            low,
            probs,
            ..
        } = sc;
        probs.clear();
        probs.resize(depth, 0.0);
        let (high, low) = (&mut high[..dims], &mut low[..dims]);
        // the score as the scoring walk folds it (`s` below is the reference's recursion, which
        // the attribution is renormalised to; the two differ in their last bits)
        let mut exact = Fraction::at_leaf(depth);
        let s = if leaf_pt == q {
            high.fill(0.0);
            low.fill(0.0);
            let seen = seen_score(self.leaf_mass(leaf), self.mass(), depth);
            exact = Fraction {
                num: seen,
                den: 1.0,
            };
            seen
        } else {
            // the leaf's share, split by each dimension's part of the separation
            let base = 1.0 / (depth as f64 + 1.0);
            let (gap, _) = gap_and_range(q, leaf_pt, leaf_pt);
            let share = base / gap;
            leaf_share(q, leaf_pt, high, low, share);
            let mut s = base;
            // whether min/max hold the box of `child` (below the first cached box the walk
            // grows a running box by each sibling subtree; cached boxes are read in place)
            let mut running = false;
            let mut child = leaf;
            for j in (0..depth).rev() {
                let node = path[j];
                let (lo, hi): (&[f32], &[f32]) = match self.cached_box(node, dims) {
                    Some(b) => {
                        running = false;
                        b
                    }
                    None => {
                        if !running {
                            if child == leaf {
                                set_to_point(min, max, leaf_pt);
                            } else {
                                self.subtree_box(child, store, min, max, stack);
                            }
                            running = true;
                        }
                        let n = self.node(node);
                        self.union_subtree_box(n.other_child(child), store, min, max, stack);
                        (min, max)
                    }
                };
                let (lo, hi) = (fixed_len::<D>(lo), fixed_len::<D>(hi));
                let (gap, range) = gap_and_range(q, lo, hi);
                if gap <= 0.0 {
                    break;
                }
                let grown = range + gap;
                let p = gap / grown;
                probs[j] = p;
                exact.level(j, gap, range);
                let keep = 1.0 - p;
                let level = inverse_depth(j);
                // each dimension's part of this level's separation, weighted by its depth
                let part = level / grown;
                let (h, l) = (fixed_len_f64_mut::<D>(high), fixed_len_f64_mut::<D>(low));
                attribute_level(q, lo, hi, h, l, keep, part);
                s = keep * s + p * level;
                child = node;
            }
            s
        };
        // renormalise so this tree's entries sum to its score exactly (as the reference does)
        let total: f64 = high.iter().sum::<f64>() + low.iter().sum::<f64>();
        let norm = self.normaliser() * weight;
        if total > 0.0 {
            let k = s / total * norm;
            add_scaled(high_out, high, k);
            add_scaled(low_out, low, k);
        } else {
            let share = s * norm / (2 * dims) as f64;
            for (h, l) in high_out.iter_mut().zip(low_out.iter_mut()) {
                *h += share;
                *l += share;
            }
        }
        exact.value()
    }

    /// Imputation (rcf-reference §7): descends with `q`, whose missing coordinates are NaN,
    /// following both children wherever a cut is on a missing coordinate. Each leaf reached
    /// proposes `q` completed with its own values; walking up, each proposal is scored like a
    /// query, and where two proposals meet the lower-scoring (more typical) one is kept.
    /// Returns the winning leaf, or NONE for an empty tree.
    pub(crate) fn impute_walk(
        &self,
        q: &[f32],
        store: &PointStore,
        sc: &mut TreeScratch,
    ) -> NodeRef {
        if self.root == NONE {
            return NONE;
        }
        sc.frames.clear();
        sc.results.clear();
        sc.frames.push((self.root, 0, false));
        while let Some((r, depth, expanded)) = sc.frames.pop() {
            if is_leaf(r) {
                complete(q, store.point(self.leaf_point(r)), &mut sc.candidate);
                let leaf_pt = store.point(self.leaf_point(r));
                let s = if leaf_pt == &sc.candidate[..] {
                    seen_score(self.leaf_mass(r), self.mass(), depth as usize)
                } else {
                    1.0 / (f64::from(depth) + 1.0)
                };
                sc.results.push((r, s));
                continue;
            }
            let n = *self.node(r);
            let x = q[n.cut_dim as usize];
            if !expanded {
                sc.frames.push((r, depth, true));
                if x.is_nan() {
                    sc.frames.push((n.right, depth + 1, false));
                    sc.frames.push((n.left, depth + 1, false));
                } else if x <= n.cut_value {
                    sc.frames.push((n.left, depth + 1, false));
                } else {
                    sc.frames.push((n.right, depth + 1, false));
                }
                continue;
            }
            // both children done: pick the lower score (ties: the left one, evaluated first)
            let (leaf, s) = if x.is_nan() {
                let b = sc.results.pop().expect("right result");
                let a = sc.results.pop().expect("left result");
                if b.1 < a.1 { b } else { a }
            } else {
                sc.results.pop().expect("child result")
            };
            complete(q, store.point(self.leaf_point(leaf)), &mut sc.candidate);
            let TreeScratch {
                min,
                max,
                stack,
                candidate,
                ..
            } = sc;
            self.subtree_box(r, store, min, max, stack);
            let p = separation_probability(candidate, min, max);
            let s = (1.0 - p) * s + p / (f64::from(depth) + 1.0);
            sc.results.push((leaf, s));
        }
        debug_assert_eq!(sc.results.len(), 1);
        sc.results.pop().map_or(NONE, |(leaf, _)| leaf)
    }
}

/// `q` with its NaN coordinates taken from `fill`.
#[inline]
pub(crate) fn complete(q: &[f32], fill: &[f32], out: &mut [f32]) {
    for ((o, &x), &f) in out.iter_mut().zip(q).zip(fill) {
        *o = if x.is_nan() { f } else { x };
    }
}
