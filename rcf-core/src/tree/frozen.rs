//! A read-only copy of a tree laid out for scoring many points: the batch path of
//! [`RandomCutForest::score_many`](crate::RandomCutForest::score_many).
//!
//! A live tree is laid out for change: nodes and leaves in two pools with free lists, boxes
//! only where the box cache keeps them (found through a slot), leaves pointing into the
//! forest's point store. A batch of queries against a frozen forest pays for all of that at
//! every level of every walk. A [`FrozenTree`] is made once per batch, in one pass over the
//! tree, and answers the same scores bit for bit:
//!
//! * **One array of 8-byte entries in preorder**, internal nodes and leaves alike. An
//!   internal node's left child is the next entry and its right child `right` entries on,
//!   so an entry holds only its cut (value and dimension) and that offset. A leaf is an
//!   entry whose cut is `−∞` and whose offset is 0: every finite coordinate is above the cut,
//!   so a descent that reached it steps by 0 and stays. The lockstep descent therefore needs
//!   no branch per lane: every lane takes one step per round, and the round in which none
//!   was at an internal node ends it. The array is padded with leaves to a power of two, so
//!   that a lane reads `entries[cur & (len − 1)]`, in bounds without a test; for a
//!   power-of-two dimension a query is a `[f32; D]` and a cut's dimension is masked the same
//!   way. Neither mask changes an index.
//! * **Every entry's box**, `[min_0..min_d, max_0..max_d]` at `entry · 2d`: an internal
//!   node's is its subtree's bounding box, a leaf's is its point twice. A walk up reads the
//!   box of each ancestor in place, whatever the live tree caches, with no slot lookup, no
//!   rebuilding from leaves and no trip to the point store. Each box's `range` half of the
//!   separation kernel does not depend on the query and is computed once
//!   ([`gap_with_range`]).
//! * **Each entry's parent and depth**, so a lane's only state in the descent is its entry
//!   (no path recorded) and the walk up climbs from the leaf by parent links.
//!
//! The boxes are the exact bounding boxes the live walk uses or rebuilds (a min or max of
//! `f32`s is exact), the kernel's gap half is the full kernel's bit for bit, the walk folds its
//! levels through the same [`Fraction`], and a query equal to its leaf's point takes the same
//! "seen" score, so a frozen tree scores every query exactly as the live one does (tested
//! against the live walk, which is tested against the naive scorer, and through
//! `score_many` against point calls).

use super::visit::{Fraction, inverse_depths, seen_score, unless_overflowed};
use super::{NONE, Tree, fixed_len, fixed_len_mut, is_leaf};
use crate::kernels::{Avx, gap_with_range, gap_with_range_unchecked, range_f32};
use crate::point_store::PointStore;

/// One preorder entry: the cut of an internal node, or a leaf (`cut` −∞, `right` 0).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Entry {
    cut: f32,
    dim: u16,
    /// Entries from this one to its right child; 0 for a leaf.
    right: u16,
}

/// A leaf's entry: every finite coordinate is above its cut, and its offset is 0.
const LEAF: Entry = Entry {
    cut: f32::NEG_INFINITY,
    dim: 0,
    right: 0,
};

/// Where an entry hangs: its parent's entry and its depth (the root's: 0, 0).
#[derive(Debug, Clone, Copy)]
struct Up {
    parent: u16,
    depth: u16,
}

/// A tree's read-only scoring layout (module docs).
#[derive(Debug, Clone)]
pub(crate) struct FrozenTree {
    entries: Vec<Entry>,
    /// Each entry's box, `2 · dims` values.
    boxes: Vec<f32>,
    /// Each entry's box's size, the query-independent half of the separation kernel
    /// ([`range_f32`]).
    ranges: Vec<f64>,
    /// Each entry's mass (a leaf's: copies of its point).
    masses: Vec<u16>,
    /// Each entry's parent (the root's: itself) and depth, for the walk up.
    up: Vec<Up>,
    mass: u32,
    norm: f64,
}

impl FrozenTree {
    /// Bytes a frozen copy of a tree of `capacity` points in `dims` dimensions can take.
    pub(crate) fn bytes_for(capacity: usize, dims: usize) -> usize {
        let entries = 2 * capacity + 1;
        // the entries themselves padded to a power of two (see `new`), the rest not
        let padded = entries.next_power_of_two() * std::mem::size_of::<Entry>();
        let per_entry = std::mem::size_of::<Up>() + 2 + 8 + 2 * dims * 4;
        // saturating: the largest forest's copies pass a 32-bit usize
        entries.saturating_mul(per_entry).saturating_add(padded)
    }

    /// Lays out `tree`, whose leaves' points are in `store` (`dims` values each).
    pub(crate) fn new(tree: &Tree, store: &PointStore, dims: usize) -> Self {
        // one body per common dimension (the dimensions of `by_dimension!`): the copies,
        // unions and sizes of every box are most of the work, and with a length known at
        // compile time they are a few vector moves instead of calls to memmove
        match dims {
            1 => Self::new_n::<1>(tree, store, dims),
            2 => Self::new_n::<2>(tree, store, dims),
            3 => Self::new_n::<3>(tree, store, dims),
            4 => Self::new_n::<4>(tree, store, dims),
            8 => Self::new_n::<8>(tree, store, dims),
            12 => Self::new_n::<12>(tree, store, dims),
            16 => Self::new_n::<16>(tree, store, dims),
            24 => Self::new_n::<24>(tree, store, dims),
            _ => Self::new_n::<0>(tree, store, dims),
        }
    }

    /// [`new`](Self::new) for dimension `D` (0: any).
    #[inline(always)]
    fn new_n<const D: usize>(tree: &Tree, store: &PointStore, dims: usize) -> Self {
        let mut f = Self {
            entries: Vec::new(),
            boxes: Vec::new(),
            ranges: Vec::new(),
            masses: Vec::new(),
            up: Vec::new(),
            mass: tree.mass(),
            norm: tree.normaliser(),
        };
        if tree.root() == NONE {
            return f;
        }
        let size = 2 * tree.nodes().len() + 1;
        f.entries.reserve_exact(size);
        f.masses.reserve_exact(size);
        f.up.reserve_exact(size);
        f.boxes.reserve_exact(size * 2 * dims);
        // preorder: a node's left subtree is laid out right after it, then its right one,
        // whose offset is set once it is reached (`of`: the entry waiting for it)
        // (at most 2 · 16,384 + 1 entries, MAX_SAMPLE_SIZE: indices and offsets fit 16 bits)
        let mut stack = vec![(tree.root(), usize::MAX, 0usize)];
        while let Some((r, of, parent)) = stack.pop() {
            let i = f.entries.len();
            if of != usize::MAX {
                f.entries[of].right = (i - of) as u16;
            }
            let depth = if i == 0 { 0 } else { f.up[parent].depth + 1 };
            f.up.push(Up {
                parent: parent as u16,
                depth,
            });
            if is_leaf(r) {
                let p = fixed_len::<D>(store.point(tree.leaf_point(r)));
                f.entries.push(LEAF);
                f.masses.push(tree.leaf_mass(r) as u16);
                f.boxes.extend_from_slice(p);
                f.boxes.extend_from_slice(p);
            } else {
                let n = tree.node(r);
                f.entries.push(Entry {
                    cut: n.cut_value,
                    dim: n.cut_dim,
                    right: 0,
                });
                f.masses.push(n.mass);
                f.boxes.resize(f.boxes.len() + 2 * dims, 0.0);
                stack.push((n.right, i, i));
                stack.push((n.left, usize::MAX, i));
            }
        }
        // boxes bottom up: an entry's children come after it
        let stride = 2 * dims;
        for i in (0..f.entries.len()).rev() {
            let right = usize::from(f.entries[i].right);
            if right == 0 {
                continue;
            }
            let (node, below) = f.boxes[i * stride..].split_at_mut(stride);
            let (lo, hi) = node.split_at_mut(dims);
            let (lo, hi) = (fixed_len_mut::<D>(lo), fixed_len_mut::<D>(hi));
            let (left_box, rest) = below.split_at(stride);
            let right_box = &rest[(right - 2) * stride..][..stride];
            let (a_lo, a_hi) = (
                fixed_len::<D>(&left_box[..dims]),
                fixed_len::<D>(&left_box[dims..]),
            );
            let (b_lo, b_hi) = (
                fixed_len::<D>(&right_box[..dims]),
                fixed_len::<D>(&right_box[dims..]),
            );
            for k in 0..lo.len() {
                // a min and a max of f32s: exact, the box the live tree keeps or rebuilds
                lo[k] = if b_lo[k] < a_lo[k] { b_lo[k] } else { a_lo[k] };
                hi[k] = if b_hi[k] > a_hi[k] { b_hi[k] } else { a_hi[k] };
            }
        }
        f.ranges = f
            .boxes
            .chunks_exact(stride)
            .map(|b| range_f32::<D>(&b[..dims], &b[dims..]))
            .collect();
        // entries padded with leaves up to a power of two (none reached: a descent stays in
        // its tree), so that a descent reads `entries[cur & (len − 1)]`, in bounds by
        // construction, without a bounds test; the mask changes no index (a full tree of 256
        // points has 511 entries: one of padding)
        let len = f.entries.len().next_power_of_two();
        f.entries.resize(len, LEAF);
        f
    }

    /// Adds each point's score in this tree, times the tree's normaliser, to its entry of
    /// `acc` (`points` row-major, `dims` values each, one row per entry of `acc`), as the live
    /// tree's walk would.
    pub(crate) fn add_scores(&self, points: &[f32], dims: usize, acc: &mut [f64]) {
        if self.entries.is_empty() {
            // an empty tree scores 0 (as the live walk does)
            acc.iter_mut().for_each(|a| *a += 0.0 * self.norm);
            return;
        }
        let scores = Scores {
            tree: self,
            points,
            dims,
            acc,
        };
        #[cfg(target_arch = "x86_64")]
        let scores = match crate::kernels::x86_64::with_avx(scores) {
            Ok(()) => return,
            Err(scores) => scores,
        };
        scores.run_portable(None);
    }

    /// [`add_scores`](Self::add_scores) for a tree with entries, never compiled for AVX.
    #[inline(always)]
    fn add_scores_portable(&self, points: &[f32], dims: usize, acc: &mut [f64], avx: Option<Avx>) {
        // the dimensions of `by_dimension!`, each with its box's length `S = 2 · D`, so that
        // the walk reads a box as one array (one bounds test, shared with the entry's other
        // arrays)
        match dims {
            1 => self.add_scores_n::<1, 2>(points, dims, acc, avx),
            2 => self.add_scores_n::<2, 4>(points, dims, acc, avx),
            3 => self.add_scores_n::<3, 6>(points, dims, acc, avx),
            4 => self.add_scores_n::<4, 8>(points, dims, acc, avx),
            8 => self.add_scores_n::<8, 16>(points, dims, acc, avx),
            12 => self.add_scores_n::<12, 24>(points, dims, acc, avx),
            16 => self.add_scores_n::<16, 32>(points, dims, acc, avx),
            24 => self.add_scores_n::<24, 48>(points, dims, acc, avx),
            _ => self.add_scores_n::<0, 0>(points, dims, acc, avx),
        }
    }

    /// [`add_scores`](Self::add_scores) for dimension `D` (0: any) and boxes of `S = 2 · D`
    /// values (0: any).
    #[inline(always)]
    fn add_scores_n<const D: usize, const S: usize>(
        &self,
        points: &[f32],
        dims: usize,
        acc: &mut [f64],
        avx: Option<Avx>,
    ) {
        for (group, acc) in points.chunks(LANES * dims).zip(acc.chunks_mut(LANES)) {
            let full: Option<&[[f32; D]; LANES]> = if D > 0 && D.is_power_of_two() {
                group.as_chunks::<D>().0.try_into().ok()
            } else {
                None
            };
            let leaf = match full {
                Some(rows) => self.descend_rows(rows),
                None if acc.len() == LANES => self.descend(group, dims, LANES),
                None => self.descend(group, dims, acc.len()),
            };
            for (k, (q, a)) in group.chunks_exact(dims).zip(acc.iter_mut()).enumerate() {
                let mut score = self.walk_up::<D, S, false>(avx, q, leaf[k]);
                if !score.is_finite() {
                    // a level overflowed (values beyond about ±1e38): each level checked
                    score = self.walk_up::<D, S, true>(avx, q, leaf[k]);
                }
                *a += score * self.norm;
            }
        }
    }

    /// Descends `lanes` queries (`points` row-major) in lockstep, one level of each per
    /// round, so that their dependent load chains overlap; returns each lane's leaf entry.
    #[inline(always)]
    fn descend(&self, points: &[f32], dims: usize, lanes: usize) -> [usize; LANES] {
        self.descend_by(lanes, |k, dim| points[k * dims + dim])
    }

    /// [`descend`](Self::descend) for a full group of queries of a power-of-two dimension `D`:
    /// each query a `[f32; D]` and a cut's dimension masked to `D − 1`, so that reading the
    /// coordinate needs no bounds test (every cut's dimension is below `D`: the tree was
    /// checked, and a frozen tree copies its cuts; the mask changes no index).
    #[inline(always)]
    fn descend_rows<const D: usize>(&self, rows: &[[f32; D]; LANES]) -> [usize; LANES] {
        debug_assert!(D.is_power_of_two());
        self.descend_by(LANES, |k, dim| rows[k][dim & (D - 1)])
    }

    /// The lockstep of [`descend`](Self::descend), lane `k` reading coordinate `dim` of its
    /// query as `coordinate(k, dim)`.
    #[inline(always)]
    fn descend_by(&self, lanes: usize, coordinate: impl Fn(usize, usize) -> f32) -> [usize; LANES] {
        let entries = &self.entries[..];
        // the entries are a power of two (padded): in bounds without a test
        let mask = entries.len() - 1;
        let mut cur = [0usize; LANES];
        loop {
            let mut internal_any = false;
            for (k, cur) in cur.iter_mut().enumerate().take(lanes) {
                let e = entries[*cur & mask];
                let x = coordinate(k, usize::from(e.dim));
                // a leaf stays where it is: its cut is −∞ and its offset 0
                internal_any |= e.right != 0;
                // which child is data, not pattern: a branch here mispredicts half the time
                *cur += std::hint::select_unpredictable(x <= e.cut, 1, usize::from(e.right));
            }
            if !internal_any {
                return cur;
            }
        }
    }

    /// The score of `q`, before the normaliser, given the `leaf` entry it reached: the live
    /// walk up (`Tree::walk_up`) with every box in place.
    ///
    /// Without `CHECKED` the levels skip the kernel's overflow check and the walk's end looks
    /// whether any level overflowed, as the live walk does: the score is then infinite, and
    /// the caller walks again `CHECKED`. A finite score is the checked walk's, bit for bit.
    #[inline(always)]
    fn walk_up<const D: usize, const S: usize, const CHECKED: bool>(
        &self,
        avx: Option<Avx>,
        q: &[f32],
        leaf: usize,
    ) -> f64 {
        let q = fixed_len::<D>(q);
        let dims = q.len();
        let stride = 2 * dims;
        let Up { parent, depth } = self.up[leaf];
        let depth = usize::from(depth);
        if &self.boxes[leaf * stride..][..dims] == q {
            return seen_score(u32::from(self.masses[leaf]), self.mass, depth);
        }
        match inverse_depths(depth) {
            Some(inverse) => {
                self.walk_from::<D, S, CHECKED>(avx, q, usize::from(parent), depth, |j| inverse[j])
            }
            None => self.walk_from::<D, S, CHECKED>(avx, q, usize::from(parent), depth, |j| {
                1.0 / (j as f64 + 1.0)
            }),
        }
    }

    /// The levels of [`walk_up`](Self::walk_up) from the leaf's `parent` at `depth - 1` up,
    /// with `1 / (j + 1)` from `inverse(j)` (a table of the walk's depth, or computed).
    #[inline(always)]
    fn walk_from<const D: usize, const S: usize, const CHECKED: bool>(
        &self,
        avx: Option<Avx>,
        q: &[f32],
        parent: usize,
        depth: usize,
        inverse: impl Fn(usize) -> f64,
    ) -> f64 {
        let dims = q.len();
        let stride = 2 * dims;
        let mut s = Fraction::at_leaf(depth);
        // unchecked: the sum of every level's gap and range, infinite iff one was
        let mut overflow = 0.0;
        // the per-entry arrays at one length, so that one test of an entry covers them all
        let n = self.ranges.len();
        let (ranges, up) = (&self.ranges[..n], &self.up[..n]);
        let boxes = if S > 0 {
            &self.boxes.as_chunks::<S>().0[..n]
        } else {
            &[]
        };
        let mut node = parent;
        for j in (0..depth).rev() {
            let b: &[f32] = if S > 0 {
                &boxes[node]
            } else {
                &self.boxes[node * stride..][..stride]
            };
            let (lo, hi) = b.split_at(dims);
            let range = ranges[node];
            let (gap, range) = if CHECKED {
                gap_with_range::<D>(avx, q, lo, hi, range)
            } else {
                gap_with_range_unchecked::<D>(avx, q, lo, hi, range)
            };
            if !CHECKED {
                overflow += gap + range;
            }
            if gap <= 0.0 {
                break;
            }
            s.level_at(inverse(j), gap, range);
            node = usize::from(up[node].parent);
        }
        unless_overflowed(s, overflow)
    }
}

/// The arguments of one [`FrozenTree::add_scores`], so that it can be compiled for AVX.
struct Scores<'a> {
    tree: &'a FrozenTree,
    points: &'a [f32],
    dims: usize,
    acc: &'a mut [f64],
}

impl Scores<'_> {
    #[inline(always)]
    fn run_portable(self, avx: Option<Avx>) {
        self.tree
            .add_scores_portable(self.points, self.dims, self.acc, avx);
    }
}

#[cfg(target_arch = "x86_64")]
impl crate::kernels::x86_64::AvxBody for Scores<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self, avx: Avx) {
        self.run_portable(Some(avx));
    }
}

/// Queries descended together by [`FrozenTree::descend`].
const LANES: usize = 8;
