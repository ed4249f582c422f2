//! Cached bounding boxes: the pool, filling, growing, shrinking and rebuilding them
//! (invariant 4 of the module docs), and moving cuts with their values.

use super::leaves::LeafPoints;
use super::{
    NONE, Node, NodeRef, Tree, TreeParams, TreeScratch, by_dimension, fixed_len, fixed_len_mut,
    is_leaf, leaf_index,
};
use crate::kernels::{extend_box, extend_box_many, strictly_inside, union_box};
use crate::point_store::PointStore;

impl Tree {
    /// Grows `[min, max]` by the bounding box of the subtree at `r`.
    pub(crate) fn union_subtree_box(
        &self,
        r: NodeRef,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
        stack: &mut Vec<NodeRef>,
    ) {
        // the per-point loop unrolled with no loop control: without a box cache (fleet
        // models) this is most of a walk
        by_dimension!(
            min.len(),
            self.union_subtree_box_n(r, store, min, max, stack)
        )
    }

    /// [`union_subtree_box`](Self::union_subtree_box) for dimension `D` (0: any).
    #[inline(always)]
    fn union_subtree_box_n<const D: usize>(
        &self,
        r: NodeRef,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
        stack: &mut Vec<NodeRef>,
    ) {
        // the leaves' index width decided once, not at every leaf of the subtree
        match &self.leaf_point {
            LeafPoints::Narrow(v) => {
                self.union_subtree_box_in::<D, u16>(v, r, store, min, max, stack)
            }
            LeafPoints::Wide(v) => {
                self.union_subtree_box_in::<D, u32>(v, r, store, min, max, stack)
            }
        }
    }

    /// [`union_subtree_box_n`](Self::union_subtree_box_n) with the leaves' point indices.
    #[inline(always)]
    fn union_subtree_box_in<const D: usize, I: Copy + Into<u32>>(
        &self,
        points: &[I],
        r: NodeRef,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
        stack: &mut Vec<NodeRef>,
    ) {
        let point = |r: NodeRef| store.point(points[leaf_index(r)].into());
        let min = fixed_len_mut::<D>(min);
        let max = fixed_len_mut::<D>(max);
        let dims = min.len();
        // a nested function, not a closure: closures cannot be marked `inline(always)`, and
        // this one was left a call per leaf
        #[inline(always)]
        fn extend_point<const D: usize>(min: &mut [f32], max: &mut [f32], p: &[f32]) {
            extend_box(min, max, fixed_len::<D>(p));
        }
        let extend_box = extend_point::<D>;
        // the common cases without the stack: a leaf (the sibling of a bottom node) or a cached box
        if is_leaf(r) {
            extend_box(min, max, point(r));
            return;
        }
        if let Some((lo, hi)) = self.cached_box(r, dims) {
            union_box(min, max, lo, hi);
            return;
        }
        stack.clear();
        stack.push(r);
        while let Some(n) = stack.pop() {
            if is_leaf(n) {
                extend_box(min, max, point(n));
            } else if let Some((lo, hi)) = self.cached_box(n, dims) {
                union_box(min, max, lo, hi);
            } else {
                let node = &self.nodes[n as usize];
                stack.push(node.right);
                stack.push(node.left);
            }
        }
    }

    /// Grows `[min, max]` by the points of the subtree at `r`, whose run in the leaf order
    /// begins at `start` (see [`Tree::path_starts`]): [`union_subtree_box`] with no
    /// traversal. A cached box is used where there is one; below it, no node has one.
    ///
    /// [`union_subtree_box`]: Self::union_subtree_box
    #[inline]
    pub(crate) fn union_run_box(
        &self,
        r: NodeRef,
        start: u32,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
    ) {
        if is_leaf(r) {
            extend_box(min, max, store.point(self.leaf_point(r)));
            return;
        }
        if let Some((lo, hi)) = self.cached_box(r, min.len()) {
            union_box(min, max, lo, hi);
            return;
        }
        let (a, b) = (start as usize, (start + self.mass_of(r)) as usize);
        by_dimension!(min.len(), self.union_run_n(a, b, store, min, max))
    }

    /// The points of `order[a..b]` into `[min, max]`, for dimension `D` (0: any).
    #[inline(always)]
    fn union_run_n<const D: usize>(
        &self,
        a: usize,
        b: usize,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
    ) {
        match &self.order {
            LeafPoints::Narrow(v) => {
                let points = v[a..b].iter().map(|&p| store.point(u32::from(p)));
                extend_box_many::<D>(min, max, points);
            }
            LeafPoints::Wide(v) => {
                extend_box_many::<D>(min, max, v[a..b].iter().map(|&p| store.point(p)));
            }
        }
    }

    /// Sets `[min, max]` to the box of the subtree at `r`, whose run in the leaf order begins
    /// at `start`: [`subtree_box`](Self::subtree_box) with no traversal.
    #[inline]
    pub(crate) fn run_box(
        &self,
        r: NodeRef,
        start: u32,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
    ) {
        if !self.copy_cached_or_empty(r, min, max) {
            self.union_run_box(r, start, store, min, max);
        }
    }

    /// Sets `[min, max]` to the cached box of `r` and returns true if it has one; else
    /// empties `[min, max]` (for the caller to grow) and returns false.
    #[inline]
    fn copy_cached_or_empty(&self, r: NodeRef, min: &mut [f32], max: &mut [f32]) -> bool {
        if let Some((lo, hi)) = (!is_leaf(r))
            .then(|| self.cached_box(r, min.len()))
            .flatten()
        {
            min.copy_from_slice(lo);
            max.copy_from_slice(hi);
            return true;
        }
        min.fill(f32::INFINITY);
        max.fill(f32::NEG_INFINITY);
        false
    }

    /// Sets `[min, max]` to the bounding box of the subtree at `r`.
    pub(crate) fn subtree_box(
        &self,
        r: NodeRef,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
        stack: &mut Vec<NodeRef>,
    ) {
        if !self.copy_cached_or_empty(r, min, max) {
            self.union_subtree_box(r, store, min, max, stack);
        }
    }

    /// Gives node `r` a box slot (contents to be filled by the caller).
    pub(super) fn acquire_box(&mut self, r: NodeRef, dims: usize) -> usize {
        let slot = match self.free_boxes.pop() {
            Some(s) => s,
            None => {
                let len = self.boxes.len();
                if self.boxes.capacity() < len + 2 * dims {
                    // grow by an eighth (not the Vec's doubling): the pool's peak size is its
                    // steady-state size, and every slot of slack is resident memory
                    self.boxes.reserve_exact((len / 8).max(8 * 2 * dims));
                }
                self.boxes.resize(len + 2 * dims, 0.0);
                (len / (2 * dims)) as u16
            }
        };
        if self.box_slots.is_empty() {
            // the first cached box: slots for every node, up to the tree's capacity
            self.box_slots.reserve_exact(self.nodes.capacity());
            self.box_slots.resize(self.nodes.len(), NONE);
        }
        self.box_slots[r as usize] = slot;
        slot as usize
    }

    pub(super) fn release_box(&mut self, r: NodeRef) {
        if let Some(slot) = self.box_slots.get_mut(r as usize)
            && *slot != NONE
        {
            self.free_boxes.push(*slot);
            *slot = NONE;
        }
    }

    /// The box of child `r` as slices, when it is free to get (a leaf's point or a cached
    /// box); `None` for an uncached internal node.
    #[inline(always)]
    pub(super) fn child_box<'a>(
        &'a self,
        r: NodeRef,
        store: &'a PointStore,
        dims: usize,
    ) -> Option<(&'a [f32], &'a [f32])> {
        if is_leaf(r) {
            let p = store.point(self.leaf_point(r));
            Some((p, p))
        } else {
            self.cached_box(r, dims)
        }
    }

    /// Leaves in `sc.min`/`sc.max` the box of `node`'s two subtrees, from their leaves where a
    /// subtree has no cached box.
    fn children_box(
        &self,
        node: Node,
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
        stack: &mut Vec<NodeRef>,
    ) {
        min.fill(f32::INFINITY);
        max.fill(f32::NEG_INFINITY);
        self.union_subtree_box(node.left, store, min, max, stack);
        self.union_subtree_box(node.right, store, min, max, stack);
    }

    /// Computes and caches the box of internal node `r` from its children.
    pub(super) fn fill_box(&mut self, r: NodeRef, store: &PointStore, sc: &mut TreeScratch) {
        let dims = sc.min.len();
        let node = self.nodes[r as usize];
        match (
            self.child_box(node.left, store, dims),
            self.child_box(node.right, store, dims),
        ) {
            // the common case: two boxes at hand, one pass
            (Some((al, ah)), Some((bl, bh))) => {
                for i in 0..dims {
                    sc.min[i] = al[i].min(bl[i]);
                    sc.max[i] = ah[i].max(bh[i]);
                }
            }
            _ => self.children_box(node, store, &mut sc.min, &mut sc.max, &mut sc.stack),
        }
        let slot = match self.box_slot(r) {
            NONE => self.acquire_box(r, dims),
            s => s as usize,
        };
        let b = &mut self.boxes[slot * 2 * dims..(slot + 1) * 2 * dims];
        let (lo, hi) = b.split_at_mut(dims);
        lo.copy_from_slice(&sc.min);
        hi.copy_from_slice(&sc.max);
    }

    /// Updates the cached box (in `slot`) of internal node `r` after `gone` left its subtree:
    /// only the bounds `gone` sat on are recomputed, from the children, for dimension `D` (0:
    /// any). Returns whether the box changed. `min`, `max` and `stack` are scratch.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn shrink_box<const D: usize>(
        &mut self,
        r: NodeRef,
        slot: usize,
        gone: &[f32],
        store: &PointStore,
        min: &mut [f32],
        max: &mut [f32],
        stack: &mut Vec<NodeRef>,
    ) -> bool {
        let gone = fixed_len::<D>(gone);
        let dims = gone.len();
        let span = slot * 2 * dims..(slot + 1) * 2 * dims;
        let (lo, hi) = self.boxes[span.clone()].split_at(dims);
        let (lo, hi) = (fixed_len::<D>(lo), fixed_len::<D>(hi));
        if strictly_inside(gone, lo, hi) {
            return false;
        }
        let min = fixed_len_mut::<D>(min);
        let max = fixed_len_mut::<D>(max);
        let node = self.nodes[r as usize];
        let (Some((al, ah)), Some((bl, bh))) = (
            self.child_box(node.left, store, dims),
            self.child_box(node.right, store, dims),
        ) else {
            // a child without a cached box: recompute the box from the children's subtrees
            // and compare, so that an unchanged box stops the shrinking here too
            self.children_box(node, store, min, max, stack);
            let (lo, hi) = self.boxes[span].split_at_mut(dims);
            let changed = *lo != *min || *hi != *max;
            if changed {
                lo.copy_from_slice(min);
                hi.copy_from_slice(max);
            }
            return changed;
        };
        let (mut new_lo, mut new_hi) = ([0.0f32; D], [0.0f32; D]);
        let (changed, new_lo, new_hi): (bool, &[f32], &[f32]) = if D > 0 {
            // the bounds in local arrays: the compiler keeps them in vector registers (through
            // `min`/`max` it did the dimensions one by one, scalar)
            let arr =
                |s: &[f32]| -> [f32; D] { s.try_into().expect("box of the forest's dimension") };
            let (g, lo, hi) = (arr(gone), arr(lo), arr(hi));
            let (al, ah, bl, bh) = (arr(al), arr(ah), arr(bl), arr(bh));
            shrunk_bounds(
                &g,
                &lo,
                &hi,
                (&al, &ah),
                (&bl, &bh),
                &mut new_lo,
                &mut new_hi,
            );
            let changed = bounds_differ(&new_lo, &lo) | bounds_differ(&new_hi, &hi);
            (changed, &new_lo, &new_hi)
        } else {
            shrunk_bounds(gone, lo, hi, (al, ah), (bl, bh), min, max);
            (bounds_differ(min, lo) | bounds_differ(max, hi), min, max)
        };
        // written either way (the same values if unchanged): one branch less
        let (lo, hi) = self.boxes[span].split_at_mut(dims);
        lo.copy_from_slice(new_lo);
        hi.copy_from_slice(new_hi);
        changed
    }

    /// Every internal node's subtree box, computed bottom-up in one pass (each box once, instead
    /// of re-walking uncached subtrees per cached node). Returns the internal nodes in
    /// pre-order (parents before children) and the boxes, node `r`'s at
    /// `all[r · 2d..(r + 1) · 2d]` as `[min_0..min_d, max_0..max_d]`.
    pub(super) fn subtree_boxes(
        &self,
        dims: usize,
        store: &PointStore,
    ) -> (Vec<NodeRef>, Vec<f32>) {
        let (mut order, mut all, mut stack) = (Vec::new(), Vec::new(), Vec::new());
        self.subtree_boxes_into(dims, store, &mut order, &mut all, &mut stack);
        (order, all)
    }

    /// [`subtree_boxes`](Self::subtree_boxes) into the caller's buffers (`stack`: room for
    /// the traversal), so that restoring many trees allocates them once.
    pub(super) fn subtree_boxes_into(
        &self,
        dims: usize,
        store: &PointStore,
        order: &mut Vec<NodeRef>,
        all: &mut Vec<f32>,
        stack: &mut Vec<NodeRef>,
    ) {
        order.clear();
        order.reserve(self.nodes.len());
        stack.clear();
        stack.push(self.root);
        while let Some(r) = stack.pop() {
            if r == NONE || is_leaf(r) {
                continue;
            }
            order.push(r);
            let n = &self.nodes[r as usize];
            stack.push(n.left);
            stack.push(n.right);
        }
        let stride = 2 * dims;
        all.clear();
        all.resize(self.nodes.len() * stride, 0.0);
        for &r in order.iter().rev() {
            let n = self.nodes[r as usize];
            let dst = r as usize * stride;
            // the parent's row starts as the left child's box ...
            if is_leaf(n.left) {
                let p = store.point(self.leaf_point(n.left));
                all[dst..dst + dims].copy_from_slice(p);
                all[dst + dims..dst + stride].copy_from_slice(p);
            } else {
                let src = n.left as usize * stride;
                all.copy_within(src..src + stride, dst);
            }
            // ... and grows by the right child's (a point, or another row of `all`)
            if is_leaf(n.right) {
                let p = store.point(self.leaf_point(n.right));
                let (lo, hi) = all[dst..dst + stride].split_at_mut(dims);
                union_box(lo, hi, p, p);
            } else {
                let src = n.right as usize * stride;
                let (row, other) = if src > dst {
                    let (a, b) = all.split_at_mut(src);
                    (&mut a[dst..dst + stride], &b[..stride])
                } else {
                    let (a, b) = all.split_at_mut(dst);
                    (&mut b[..stride], &a[src..src + stride])
                };
                let (lo, hi) = row.split_at_mut(dims);
                union_box(lo, hi, &other[..dims], &other[dims..]);
            }
        }
    }

    /// The range of child `c`'s subtree in dimension `i`: its point's value for a leaf, its
    /// row of [`subtree_boxes`](Self::subtree_boxes)' `all` otherwise.
    pub(super) fn extent(
        &self,
        c: NodeRef,
        i: usize,
        dims: usize,
        all: &[f32],
        store: &PointStore,
    ) -> (f32, f32) {
        if is_leaf(c) {
            let v = store.point(self.leaf_point(c))[i];
            (v, v)
        } else {
            let row = c as usize * 2 * dims;
            (all[row + i], all[row + dims + i])
        }
    }

    /// Rebuilds every cached box from scratch (after a restore, a parameter change, or to
    /// compact the box pool). Also verifies routing: every cut must send its whole left subtree
    /// left (`max ≤ cut`) and its whole right subtree right (`min > cut`), which is equivalent
    /// to every leaf's point descending to its leaf (invariant 3), at O(nodes · d) instead of a
    /// descent per leaf. Returns an error naming the first node that violates it.
    pub(crate) fn rebuild_boxes(
        &mut self,
        params: &TreeParams,
        store: &PointStore,
        sc: &mut TreeScratch,
    ) -> Result<(), String> {
        let mass = if self.root == NONE {
            0
        } else {
            self.mass_of(self.root)
        };
        self.set_mass(mass);
        self.box_slots = Vec::new();
        self.boxes.clear();
        self.free_boxes.clear();
        if self.root == NONE || is_leaf(self.root) {
            return Ok(());
        }
        self.subtree_boxes_into(
            params.dims,
            store,
            &mut sc.order,
            &mut sc.all,
            &mut sc.stack,
        );
        self.check_cuts_and_cache(params, store, &sc.order, &sc.all)
    }

    /// The rest of [`rebuild_boxes`](Self::rebuild_boxes), given the subtree boxes.
    fn check_cuts_and_cache(
        &mut self,
        params: &TreeParams,
        store: &PointStore,
        order: &[NodeRef],
        all: &[f32],
    ) -> Result<(), String> {
        let (dims, stride) = (params.dims, 2 * params.dims);
        let mut cached = 0;
        for &r in order.iter().rev() {
            let n = self.nodes[r as usize];
            let d = n.cut_dim as usize;
            let left_max = self.extent(n.left, d, dims, all, store).1;
            let right_min = self.extent(n.right, d, dims, all, store).0;
            if !(left_max <= n.cut_value && right_min > n.cut_value) {
                return Err(format!("node {r}'s cut does not separate its subtrees"));
            }
            if u32::from(self.nodes[r as usize].mass) >= params.box_cache_min_mass {
                cached += 1;
            }
        }
        self.boxes = Vec::with_capacity(cached * stride);
        self.free_boxes = Vec::new();
        for &r in order.iter().rev() {
            if u32::from(self.nodes[r as usize].mass) >= params.box_cache_min_mass {
                let slot = self.acquire_box(r, dims);
                self.boxes[slot * stride..(slot + 1) * stride]
                    .copy_from_slice(&all[r as usize * stride..(r as usize + 1) * stride]);
            }
        }
        Ok(())
    }

    /// The cuts that move with the points they separate, after the store's values have been
    /// mapped through `map(dimension, value)`, increasing in the value for every dimension:
    /// one value per node slot (the returned `[r]` for node `r`; slots not in use keep theirs).
    /// Each cut becomes `map` of itself, nudged down to its left subtree's new maximum where
    /// rounding would otherwise put it on its right subtree's new minimum, so every point still
    /// routes to its leaf. Fails, naming the node, where the map made a left and a right value
    /// equal (f32 precision lost): no cut can separate them any more. The tree is not changed;
    /// [`set_cuts`](Self::set_cuts) applies the result.
    pub(crate) fn mapped_cuts(
        &self,
        dims: usize,
        store: &PointStore,
        map: impl Fn(usize, f32) -> f32,
    ) -> Result<Vec<f32>, String> {
        let mut cuts: Vec<f32> = self.nodes.iter().map(|n| n.cut_value).collect();
        if self.root == NONE || is_leaf(self.root) {
            return Ok(cuts);
        }
        let (order, all) = self.subtree_boxes(dims, store);
        for &r in &order {
            let n = self.nodes[r as usize];
            let d = n.cut_dim as usize;
            let left_max = self.extent(n.left, d, dims, &all, store).1;
            let right_min = self.extent(n.right, d, dims, &all, store).0;
            if left_max >= right_min {
                return Err(format!(
                    "node {r}: values {left_max} and {right_min} of dimension {d} became equal"
                ));
            }
            let cut = map(d, n.cut_value);
            cuts[r as usize] = if left_max <= cut && cut < right_min {
                cut
            } else {
                left_max
            };
        }
        Ok(cuts)
    }

    /// Sets every node's cut value from [`mapped_cuts`](Self::mapped_cuts). Cached boxes are
    /// stale afterwards unless none is cached; [`refill_boxes`](Self::refill_boxes) follows.
    pub(crate) fn set_cuts(&mut self, cuts: &[f32]) {
        for (n, &c) in self.nodes.iter_mut().zip(cuts) {
            n.cut_value = c;
        }
    }

    /// [`rebuild_boxes`](Self::rebuild_boxes) where the tree is known to route (after
    /// [`set_cuts`](Self::set_cuts)): skips the work when no node holds enough points for a
    /// box (a fleet model without a box cache).
    pub(crate) fn refill_boxes(
        &mut self,
        params: &TreeParams,
        store: &PointStore,
        sc: &mut TreeScratch,
    ) -> Result<(), String> {
        if self.mass < params.box_cache_min_mass && self.boxes.is_empty() {
            return Ok(());
        }
        self.rebuild_boxes(params, store, sc)
    }

    /// Whether the box pool holds many more slots than boxes in use (after churn), so that
    /// [`rebuild_boxes`](Self::rebuild_boxes) would give memory back.
    pub(crate) fn box_pool_is_slack(&self, dims: usize) -> bool {
        let slots = self.boxes.capacity() / (2 * dims);
        let used = self.boxes.len() / (2 * dims) - self.free_boxes.len();
        slots > used + used / 8 + 8
    }
}

/// The box `[lo, hi]` after the point `gone` left it, into `[new_lo, new_hi]`: each bound
/// `gone` sat on becomes the union of the children's boxes `a` and `b` in that dimension, the
/// others stay. Selects, not branches: whether the removed point held a bound is data, and as
/// branches these tests mispredicted about 1.5 times a level (callgrind's model). Both
/// children's union is computed either way (finite values: a compare and select is
/// `f32::min`/`max` without its NaN case).
#[inline(always)]
fn shrunk_bounds(
    gone: &[f32],
    lo: &[f32],
    hi: &[f32],
    (al, ah): (&[f32], &[f32]),
    (bl, bh): (&[f32], &[f32]),
    new_lo: &mut [f32],
    new_hi: &mut [f32],
) {
    for i in 0..gone.len() {
        let union_lo = if bl[i] < al[i] { bl[i] } else { al[i] };
        let union_hi = if bh[i] > ah[i] { bh[i] } else { ah[i] };
        new_lo[i] = if gone[i] == lo[i] { union_lo } else { lo[i] };
        new_hi[i] = if gone[i] == hi[i] { union_hi } else { hi[i] };
    }
}

/// Whether two bounds differ in some dimension (`!=` on every one, no early exit).
#[inline(always)]
fn bounds_differ(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).fold(false, |d, (x, y)| d | (x != y))
}
