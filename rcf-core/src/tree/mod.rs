//! One random cut tree over a sample of points held in the forest's [`PointStore`].
//!
//! # Layout
//!
//! * Internal nodes are 12-byte records ([`Node`]: cut value, cut dimension, children, mass) in
//!   one `Vec`, so a descent step touches one record. Children are 16-bit [`NodeRef`]s; the high
//!   bit marks a leaf. There are no parent pointers: every operation descends from the root and
//!   records its path in scratch space.
//! * Leaves are two parallel arrays: the point's index in the store (16 bits while every
//!   index fits, else 32: [`LeafPoints`]) and its mass (the number of sampled copies of that
//!   point, `u16`).
//! * Bounding boxes are cached, in one flat `Vec<f32>` of `[min_0..min_d, max_0..max_d]` slots,
//!   only for internal nodes whose subtree holds at least `box_cache_min_mass` points. Each
//!   node's slot is in a `Vec<u16>` beside the nodes, which exists only while some box is
//!   cached: a forest without a box cache pays nothing for it. A smaller
//!   box is rebuilt from its leaves when needed. Boxes are not part of the saved state: they are
//!   a function of the tree and are rebuilt on load.
//! * The leaf order: every unit of mass's point index, leaves left to right (a leaf of mass
//!   `m` appears `m` times), so that the points of any subtree are one contiguous run of it,
//!   `[start, start + mass)`, where a node's `start` follows from the masses on its path. The
//!   box of a subtree with no cached box (a walk's siblings, most of a walk without a box
//!   cache) is then a loop over a run of indices: no node visited, no branch on the tree's
//!   shape, loads that do not depend on one another. Derived data: not saved, rebuilt on
//!   load; an insert or delete moves at most a sample's worth of 2-byte entries.
//! * Free nodes and leaves are chained through their own fields (`left`, `leaf_point`), so free
//!   lists cost no memory.
//!
//! # Invariants (checked by [`Tree::check`], which restored states must pass)
//!
//! 1. Every node reachable from the root is in use; every slot not reachable is on a free list.
//! 2. An internal node's mass is the sum of its children's masses; a leaf's mass is ≥ 1; the
//!    tree's mass equals the number of points its sampler holds, and each leaf is referenced by
//!    exactly `mass` sampler entries.
//! 3. Descending with a leaf's point (`x[cut_dim] <= cut_value` → left) reaches that leaf. Inserts
//!    keep this by drawing cuts strictly between the box and the new point, on the right side of
//!    the `<=` convention.
//! 4. A cached box is exactly the bounding box of its subtree's points; a node has a cached box
//!    iff its mass ≥ `box_cache_min_mass`.
//! 5. The leaf order is the leaves' points, left to right, each repeated by its mass.

mod boxes;
mod check;
pub(crate) mod frozen;
mod leaves;
#[cfg(test)]
pub(crate) mod naive;
mod state;
pub(crate) mod visit;

use crate::kernels::extend_box;
use crate::point_store::PointStore;
use crate::rng::TreeRng;
use leaves::LeafPoints;

/// Reference to a node: an internal node index, or a leaf index with [`LEAF_BIT`] set.
pub(crate) type NodeRef = u16;
/// Marks a [`NodeRef`] as a leaf.
pub(crate) const LEAF_BIT: u16 = 0x8000;
/// No node (empty tree, end of a free list, no box slot).
pub(crate) const NONE: u16 = 0xFFFF;

#[inline]
pub(crate) fn is_leaf(r: NodeRef) -> bool {
    r & LEAF_BIT != 0
}

#[inline]
pub(crate) fn leaf_index(r: NodeRef) -> usize {
    (r & !LEAF_BIT) as usize
}

#[inline]
fn leaf_ref(index: usize) -> NodeRef {
    index as u16 | LEAF_BIT
}

/// Trees whose box cache starts at this mass or above keep a leaf order (module docs): their
/// uncached subtrees are large enough that unions over runs beat traversals. Below it (the
/// single-stream default caches every subtree of 4 points) the order would cost more to keep
/// than it saves, and the tree has none. Measured (callgrind, BENCHMARKS.md "Fleet models",
/// item 10): at 16 the order cost 6 to 8 % more instructions, at 32 about as much as it
/// saved, at 64 and without a box cache it saves 5 to 18 %.
pub(crate) const ORDER_MIN_MASS: u32 = 32;

/// An internal node: what a descent and a walk up read, and its mass. 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Node {
    pub(crate) cut_value: f32,
    pub(crate) cut_dim: u16,
    pub(crate) left: NodeRef,
    pub(crate) right: NodeRef,
    /// Points below this node (0 for a free node).
    pub(crate) mass: u16,
}

impl Node {
    /// The child a descent by `point` goes to: left if the point's coordinate is at or below
    /// the cut.
    #[inline(always)]
    pub(crate) fn child_toward(&self, point: &[f32]) -> NodeRef {
        if point[self.cut_dim as usize] <= self.cut_value {
            self.left
        } else {
            self.right
        }
    }

    /// The child other than `child` (one of the two). Which side a path went is data, so a
    /// select, not a branch: as a branch it mispredicted about half the time.
    #[inline(always)]
    pub(crate) fn other_child(&self, child: NodeRef) -> NodeRef {
        std::hint::select_unpredictable(self.left == child, self.right, self.left)
    }

    /// Replaces the child `old` (one of the two) by `new`, with no branch on which side.
    #[inline(always)]
    pub(crate) fn replace_child(&mut self, old: NodeRef, new: NodeRef) {
        let left = self.left == old;
        self.left = std::hint::select_unpredictable(left, new, self.left);
        self.right = std::hint::select_unpredictable(left, self.right, new);
    }
}

// slices of a length known at compile time (the box loops' bodies per dimension)
pub(crate) use crate::kernels::{fixed_len, fixed_len_mut};

/// Calls `obj.method::<D>(args)` with `D` the forest's dimension `dims` when it is one of
/// the common ones (1, 2, 3, 4, 8, 12, 16, 24: shingles of 1 to 3 metrics), else with 0 (any
/// dimension): one body per common dimension, so that the box loops have lengths known at
/// compile time. The match is on the forest's dimension and predicts perfectly.
macro_rules! by_dimension {
    ($dims:expr, $obj:ident . $method:ident ( $($arg:expr),* $(,)? )) => {
        match $dims {
            1 => $obj.$method::<1>($($arg),*),
            2 => $obj.$method::<2>($($arg),*),
            3 => $obj.$method::<3>($($arg),*),
            4 => $obj.$method::<4>($($arg),*),
            8 => $obj.$method::<8>($($arg),*),
            12 => $obj.$method::<12>($($arg),*),
            16 => $obj.$method::<16>($($arg),*),
            24 => $obj.$method::<24>($($arg),*),
            _ => $obj.$method::<0>($($arg),*),
        }
    };
}
pub(crate) use by_dimension;

/// Parameters every tree of a forest shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeParams {
    pub(crate) dims: usize,
    pub(crate) capacity: usize,
    pub(crate) box_cache_min_mass: u32,
}

/// Reusable buffers for traversals (one set per thread).
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeScratch {
    pub(crate) path: Vec<NodeRef>,
    pub(crate) probs: Vec<f64>,
    pub(crate) min: Vec<f32>,
    pub(crate) max: Vec<f32>,
    pub(crate) stack: Vec<NodeRef>,
    /// Where each node of `path` (and, last, the leaf reached) starts in the leaf order.
    pub(crate) starts: Vec<u32>,
    pub(crate) high: Vec<f64>,
    pub(crate) low: Vec<f64>,
    pub(crate) candidate: Vec<f32>,
    pub(crate) frames: Vec<(NodeRef, u32, bool)>,
    pub(crate) results: Vec<(NodeRef, f64)>,
    /// Restores: the internal nodes in preorder and their subtree boxes
    /// ([`subtree_boxes_into`](Tree::subtree_boxes_into)), and the marks of `check`.
    pub(crate) order: Vec<NodeRef>,
    pub(crate) all: Vec<f32>,
    pub(crate) marks: Vec<u32>,
}

impl TreeScratch {
    pub(crate) fn new(dims: usize) -> Self {
        Self {
            path: Vec::with_capacity(64),
            probs: Vec::with_capacity(64),
            min: vec![0.0; dims],
            max: vec![0.0; dims],
            stack: Vec::with_capacity(64),
            starts: Vec::with_capacity(64),
            high: vec![0.0; dims],
            low: vec![0.0; dims],
            candidate: vec![0.0; dims],
            frames: Vec::new(),
            results: Vec::new(),
            order: Vec::new(),
            all: Vec::new(),
            marks: Vec::new(),
        }
    }
}

/// A random cut tree.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    root: NodeRef,
    /// Points in the tree (with multiplicity); kept here, beside `root`, because every query
    /// needs it and the root's record would be a cache miss per tree.
    mass: u32,
    /// `log2(1 + mass)`, the score normaliser. Derived: rebuilt on load.
    norm: f64,
    /// The normaliser of the mass before the last change, and that mass: a full tree's
    /// update inserts a point and deletes one, so its mass goes to `m + 1` and back, and the
    /// second step finds its normaliser here instead of taking a logarithm.
    other_norm: (u32, f64),
    nodes: Vec<Node>,
    /// Each node's cached box slot or NONE; empty while no box is cached, else as long as
    /// `nodes`. Derived data: not saved, rebuilt on load.
    box_slots: Vec<u16>,
    free_node: NodeRef,
    leaf_point: LeafPoints,
    leaf_mass: Vec<u16>,
    free_leaf: NodeRef,
    /// The leaf order (module docs), kept iff `ordered`: derived, not saved, rebuilt on load.
    order: LeafPoints,
    /// Whether this tree keeps a leaf order (its box cache starts at [`ORDER_MIN_MASS`]).
    ordered: bool,
    /// Cached boxes (derived: not saved, rebuilt on load).
    boxes: Vec<f32>,
    free_boxes: Vec<u16>,
}

/// Bytes per saved node: cut value (f32), cut dimension, left, right, mass (u16 each).
const NODE_BYTES: usize = 12;
/// Bytes per saved leaf: point index (u32), mass (u16).
const LEAF_BYTES: usize = 6;

/// A tree's saved form: its arrays as little-endian byte blobs (see `state.rs`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct TreeState<'a> {
    root: u16,
    free_node: u16,
    free_leaf: u16,
    #[serde(borrow)]
    nodes: crate::bytes::Blob<'a>,
    #[serde(borrow)]
    leaves: crate::bytes::Blob<'a>,
}

impl TreeState<'_> {
    /// Bytes of its blobs.
    pub(crate) fn len(&self) -> usize {
        self.nodes.bytes().len() + self.leaves.bytes().len()
    }

    /// The packed node records, for tests that craft inconsistent states.
    #[cfg(test)]
    pub(crate) fn nodes_mut(&mut self) -> &mut [u8] {
        self.nodes.0.to_mut()
    }
}

impl Tree {
    /// An empty tree for a sample of `capacity`, keeping a leaf order if `ordered`.
    pub(crate) fn new(capacity: usize, ordered: bool) -> Self {
        // capacity + 1 leaves and capacity internal nodes: an admitted point is inserted before
        // the evicted one is deleted
        let mut nodes = Vec::new();
        nodes.reserve_exact(capacity);
        let leaf_point = LeafPoints::with_capacity(capacity + 1);
        let mut leaf_mass = Vec::new();
        leaf_mass.reserve_exact(capacity + 1);
        Self {
            root: NONE,
            mass: 0,
            norm: 0.0,
            other_norm: (0, 0.0),
            nodes,
            box_slots: Vec::new(),
            free_node: NONE,
            leaf_point,
            leaf_mass,
            free_leaf: NONE,
            order: LeafPoints::with_capacity(if ordered { capacity + 1 } else { 0 }),
            ordered,
            boxes: Vec::new(),
            free_boxes: Vec::new(),
        }
    }

    /// Points in the tree (with multiplicity).
    #[inline]
    pub(crate) fn mass(&self) -> u32 {
        self.mass
    }

    /// `log2(1 + mass)`: the normaliser of this tree's scores.
    #[inline]
    pub(crate) fn normaliser(&self) -> f64 {
        self.norm
    }

    fn set_mass(&mut self, mass: u32) {
        let norm = if self.other_norm.0 == mass {
            self.other_norm.1
        } else {
            (1.0 + f64::from(mass)).log2()
        };
        self.other_norm = (self.mass, self.norm);
        self.mass = mass;
        self.norm = norm;
    }

    #[inline]
    pub(crate) fn mass_of(&self, r: NodeRef) -> u32 {
        if is_leaf(r) {
            u32::from(self.leaf_mass[leaf_index(r)])
        } else {
            u32::from(self.nodes[r as usize].mass)
        }
    }

    #[inline]
    pub(crate) fn root(&self) -> NodeRef {
        self.root
    }

    #[inline]
    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    #[inline]
    pub(crate) fn boxes(&self) -> &[f32] {
        &self.boxes
    }

    #[inline]
    pub(crate) fn node(&self, r: NodeRef) -> &Node {
        &self.nodes[r as usize]
    }

    /// The store index of a leaf's point.
    #[inline]
    pub(crate) fn leaf_point(&self, r: NodeRef) -> u32 {
        self.leaf_point.get(leaf_index(r))
    }

    #[inline]
    pub(crate) fn leaf_mass(&self, r: NodeRef) -> u32 {
        u32::from(self.leaf_mass[leaf_index(r)])
    }

    /// The cached box of internal node `r`, if it has one.
    #[inline]
    pub(crate) fn cached_box(&self, r: NodeRef, dims: usize) -> Option<(&[f32], &[f32])> {
        if self.boxes.is_empty() {
            return None;
        }
        let slot = self.box_slot(r);
        if slot == NONE {
            return None;
        }
        let begin = slot as usize * 2 * dims;
        let b = &self.boxes[begin..begin + 2 * dims];
        Some(b.split_at(dims))
    }

    /// Descends to the leaf `point` falls in, recording the internal nodes on the way
    /// (root first) in `path`. Returns [`NONE`] for an empty tree. (The forest descends
    /// several trees at once; this one-tree form serves the tests.)
    #[cfg(test)]
    pub(crate) fn descend(&self, point: &[f32], path: &mut Vec<NodeRef>) -> NodeRef {
        path.clear();
        let mut r = self.root;
        while r != NONE && !is_leaf(r) {
            path.push(r);
            r = self.nodes[r as usize].child_toward(point);
        }
        r
    }

    /// Sets `starts` to where each node of `path` (a descent's, root first) and, last, the
    /// `leaf` it reached begin in the leaf order: `depth + 1` entries. Reads only the masses
    /// of the path's own nodes and leaf (a right child starts where its parent's run ends,
    /// less its own mass).
    #[inline]
    pub(crate) fn path_starts(&self, path: &[NodeRef], leaf: NodeRef, starts: &mut Vec<u32>) {
        starts.clear();
        let mut start = 0u32;
        for (j, &r) in path.iter().enumerate() {
            starts.push(start);
            let n = &self.nodes[r as usize];
            let child = path.get(j + 1).copied().unwrap_or(leaf);
            // a right child starts where its parent's run ends, less its own mass
            let skip = u32::from(n.mass) - self.mass_of(child);
            start += std::hint::select_unpredictable(n.right == child, skip, 0);
        }
        starts.push(start);
    }

    /// Rebuilds the leaf order from the tree if `ordered`, else drops it (after a restore or
    /// a change of the box cache; the structure must hold: passed [`check`](Self::check), or
    /// restored from bytes this process saved, vouched for by their digest).
    /// `stack` is room for the traversal (restores pass one for every tree).
    pub(crate) fn rebuild_order(
        &mut self,
        ordered: bool,
        capacity: usize,
        stack: &mut Vec<NodeRef>,
    ) {
        self.ordered = ordered;
        if !ordered {
            self.order = LeafPoints::with_capacity(0);
            return;
        }
        if self.order.capacity() < capacity + 1 {
            self.order = LeafPoints::with_capacity(capacity + 1);
        }
        self.order.clear();
        if self.root == NONE {
            return;
        }
        // 16-bit indices both sides (every fleet model, W1): pushed straight into the vector;
        // otherwise through `LeafPoints::push`, which widens where a value needs it
        match (&self.leaf_point, &mut self.order) {
            (LeafPoints::Narrow(points), LeafPoints::Narrow(out)) => {
                leaf_order(&self.nodes, &self.leaf_mass, self.root, stack, |i| {
                    out.push(points[i])
                });
            }
            (points, out) => leaf_order(&self.nodes, &self.leaf_mass, self.root, stack, |i| {
                out.push(points.get(i))
            }),
        }
    }

    /// Whether this tree keeps a leaf order.
    #[inline]
    pub(crate) fn ordered(&self) -> bool {
        self.ordered
    }

    /// The cached box slot of internal node `r`, or NONE.
    #[inline]
    pub(crate) fn box_slot(&self, r: NodeRef) -> u16 {
        self.box_slots.get(r as usize).copied().unwrap_or(NONE)
    }

    fn alloc_node(&mut self, node: Node) -> NodeRef {
        if self.free_node != NONE {
            let r = self.free_node;
            debug_assert_eq!(self.box_slot(r), NONE);
            self.free_node = self.nodes[r as usize].left;
            self.nodes[r as usize] = node;
            r
        } else {
            self.nodes.push(node);
            if !self.box_slots.is_empty() {
                self.box_slots.push(NONE);
            }
            (self.nodes.len() - 1) as NodeRef
        }
    }

    fn free_node(&mut self, r: NodeRef) {
        self.release_box(r);
        let n = &mut self.nodes[r as usize];
        n.mass = 0;
        n.left = self.free_node;
        n.right = NONE;
        self.free_node = r;
    }

    fn alloc_leaf(&mut self, point: u32) -> NodeRef {
        if self.free_leaf != NONE {
            let i = leaf_index(self.free_leaf);
            self.free_leaf = self.leaf_point.get(i) as NodeRef;
            self.leaf_point.set(i, point);
            self.leaf_mass[i] = 1;
            leaf_ref(i)
        } else {
            self.leaf_point.push(point);
            self.leaf_mass.push(1);
            leaf_ref(self.leaf_point.len() - 1)
        }
    }

    fn free_leaf(&mut self, r: NodeRef) {
        let i = leaf_index(r);
        self.leaf_mass[i] = 0;
        self.leaf_point.set(i, u32::from(self.free_leaf));
        self.free_leaf = r;
    }

    /// What one tree does with a point offered to the forest, in one pass: walks up from the
    /// `leaf` that `q`'s descent `path` reached, scoring `q` (the unnormalised score), and,
    /// if the sampler admitted it (`insert` holds its store index `start` and the tree's
    /// generator), inserts it along that same walk, reusing the separation probabilities the
    /// walk just computed. Returns the score and, when inserted, the leaf now holding `q`.
    ///
    /// The probabilities go from the walk to the insert inside this one call, so no caller
    /// can insert along a walk that did not record them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn walk_and_insert(
        &mut self,
        q: &[f32],
        leaf: NodeRef,
        path: &[NodeRef],
        params: &TreeParams,
        store: &PointStore,
        sc: &mut TreeScratch,
        insert: Option<(u32, &mut TreeRng)>,
    ) -> (f64, Option<NodeRef>) {
        let walk = self.walk_up(q, leaf, path, store, sc, insert.is_some());
        let held = insert.map(|(start, rng)| {
            self.insert_along(q, start, walk.leaf, path, params, store, rng, sc)
        });
        (walk.score, held)
    }

    /// [`walk_and_insert`](Self::walk_and_insert) for an admitting tree whose scoring walk
    /// was already made on this very tree state (by a score of the same point): inserts along
    /// the walk's `path`, `leaf` and separation probabilities `probs`, with no second walk.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_walked(
        &mut self,
        q: &[f32],
        leaf: NodeRef,
        path: &[NodeRef],
        probs: &[f64],
        params: &TreeParams,
        store: &PointStore,
        sc: &mut TreeScratch,
        start: u32,
        rng: &mut TreeRng,
    ) -> NodeRef {
        sc.probs.clear();
        sc.probs.extend_from_slice(probs);
        self.insert_along(q, start, leaf, path, params, store, rng, sc)
    }

    /// Inserts the point at store index `start` (coordinates `q`), given the descent `path`
    /// and reached `leaf` of `q`, and the separation probabilities `probs[j]` of `q` against
    /// the box of `path[j]` (0 where `q` lies inside, as recorded by the scoring walk).
    ///
    /// This is the top-down insert of rcf-reference §3: at each node from the root down, a
    /// random cut of `box ∪ {q}` separates `q` with probability `probs[j]`; the first level
    /// where it does gets a new parent above it. Reusing the walk's probabilities, the insert
    /// costs one uniform per level instead of a cut per level. Returns the leaf now holding
    /// `q`.
    #[allow(clippy::too_many_arguments)]
    fn insert_along(
        &mut self,
        q: &[f32],
        start: u32,
        leaf: NodeRef,
        path: &[NodeRef],
        params: &TreeParams,
        store: &PointStore,
        rng: &mut TreeRng,
        sc: &mut TreeScratch,
    ) -> NodeRef {
        self.set_mass(self.mass + 1);
        if self.root == NONE {
            let l = self.alloc_leaf(start);
            self.root = l;
            if self.ordered {
                self.order.push(start);
            }
            return l;
        }
        let depth = path.len();
        debug_assert_eq!(
            sc.probs.len(),
            depth,
            "insert needs the walk's probabilities"
        );
        if self.ordered {
            // where the path's subtrees begin in the leaf order, before any mass changes
            self.path_starts(path, leaf, &mut sc.starts);
        }
        // duplicate of the reached leaf's point: one more copy
        if store.point(self.leaf_point(leaf)) == q {
            self.leaf_mass[leaf_index(leaf)] += 1;
            if self.ordered {
                // the leaf's own point (the new copy's store index is not kept)
                let p = self.leaf_point(leaf);
                self.order.insert(sc.starts[depth] as usize, p);
            }
            self.add_mass_on_path(path, false, store, sc, params);
            return leaf;
        }
        let mut level = depth; // depth = split at the leaf
        for j in 0..depth {
            let p = sc.probs[j];
            if p > 0.0 && rng.uniform() < p {
                level = j;
                break;
            }
        }
        let sibling = if level == depth { leaf } else { path[level] };
        if self.ordered {
            self.run_box(sibling, sc.starts[level], store, &mut sc.min, &mut sc.max);
        } else {
            self.subtree_box(sibling, store, &mut sc.min, &mut sc.max, &mut sc.stack);
        }
        let (cut_dim, cut_value, q_left) = draw_separating_cut(q, &sc.min, &sc.max, rng);
        let new_leaf = self.alloc_leaf(start);
        let mass = self.mass_of(sibling) + 1;
        if self.ordered {
            // the new leaf goes just before or just after its sibling's run
            let run = sc.starts[level];
            let at = if q_left { run } else { run + mass - 1 };
            self.order.insert(at as usize, start);
        }
        let (left, right) = if q_left {
            (new_leaf, sibling)
        } else {
            (sibling, new_leaf)
        };
        let u = self.alloc_node(Node {
            cut_value,
            cut_dim: cut_dim as u16,
            left,
            right,
            mass: mass as u16,
        });
        if level == 0 {
            self.root = u;
        } else {
            let parent = path[level - 1];
            self.nodes[parent as usize].replace_child(sibling, u);
        }
        if mass >= params.box_cache_min_mass {
            let dims = params.dims;
            let slot = self.acquire_box(u, dims);
            extend_box(&mut sc.min, &mut sc.max, q);
            let b = &mut self.boxes[slot * 2 * dims..(slot + 1) * 2 * dims];
            b[..dims].copy_from_slice(&sc.min);
            b[dims..].copy_from_slice(&sc.max);
        }
        sc.candidate.copy_from_slice(q);
        self.add_mass_on_path(&path[..level], true, store, sc, params);
        new_leaf
    }

    /// Adds 1 to the masses of the nodes on `path` (nearest first) and caches boxes of nodes
    /// that reach the threshold. With `grow`, also grows cached boxes by the new point (in
    /// `sc.candidate`) where the walk found it outside them (`sc.probs[j] > 0`; where the
    /// probability was 0 the point is already inside).
    fn add_mass_on_path(
        &mut self,
        path: &[NodeRef],
        grow: bool,
        store: &PointStore,
        sc: &mut TreeScratch,
        params: &TreeParams,
    ) {
        // one body per common dimension: the growth of each cached box unrolls
        by_dimension!(
            params.dims,
            self.add_mass_on_path_n(path, grow, store, sc, params)
        )
    }

    /// [`add_mass_on_path`](Self::add_mass_on_path) for dimension `D` (0: any).
    #[inline(always)]
    fn add_mass_on_path_n<const D: usize>(
        &mut self,
        path: &[NodeRef],
        grow: bool,
        store: &PointStore,
        sc: &mut TreeScratch,
        params: &TreeParams,
    ) {
        let dims = params.dims;
        for (j, &r) in path.iter().enumerate().rev() {
            let node = &mut self.nodes[r as usize];
            node.mass += 1;
            let mass = u32::from(node.mass);
            let slot = self.box_slot(r);
            if slot != NONE {
                if grow && sc.probs[j] > 0.0 {
                    let b =
                        &mut self.boxes[slot as usize * 2 * dims..(slot as usize + 1) * 2 * dims];
                    let (lo, hi) = b.split_at_mut(dims);
                    extend_box(
                        fixed_len_mut::<D>(lo),
                        fixed_len_mut::<D>(hi),
                        fixed_len::<D>(&sc.candidate),
                    );
                }
            } else if mass >= params.box_cache_min_mass {
                self.fill_box(r, store, sc);
            }
        }
    }

    /// Removes one copy of the point held by `leaf`, descending to it first. (The forest
    /// descends to several trees' evicted leaves at once and calls
    /// [`delete_along`](Self::delete_along); this form serves the tests.)
    #[cfg(test)]
    pub(crate) fn delete(
        &mut self,
        leaf: NodeRef,
        params: &TreeParams,
        store: &PointStore,
        sc: &mut TreeScratch,
    ) {
        let point = store.point(self.leaf_point(leaf));
        let mut path = std::mem::take(&mut sc.path);
        let reached = self.descend(point, &mut path);
        debug_assert_eq!(
            reached, leaf,
            "descent by a leaf's point must reach that leaf"
        );
        self.delete_along(leaf, &path, params, store, sc);
        sc.path = path;
    }

    /// [`delete`](Self::delete) given the `path` to `leaf` (root first, e.g. from
    /// [`descend_to_leaves`](visit::descend_to_leaves)).
    pub(crate) fn delete_along(
        &mut self,
        leaf: NodeRef,
        path: &[NodeRef],
        params: &TreeParams,
        store: &PointStore,
        sc: &mut TreeScratch,
    ) {
        self.set_mass(self.mass - 1);
        // the store does not change here: the shrink compares against the point in place
        let point = store.point(self.leaf_point(leaf));
        let i = leaf_index(leaf);
        let depth = path.len();
        if self.ordered {
            self.path_starts(path, leaf, &mut sc.starts);
            self.order.remove(sc.starts[depth] as usize);
        }
        if self.leaf_mass[i] > 1 {
            self.leaf_mass[i] -= 1;
            // boxes unchanged: another copy of the point stays
            self.remove_mass_on_path(path, None, store, sc, params);
            return;
        }
        self.free_leaf(leaf);
        if depth == 0 {
            self.root = NONE;
            return;
        }
        let parent = path[depth - 1];
        let pn = self.nodes[parent as usize];
        let sibling = pn.other_child(leaf);
        if depth == 1 {
            self.root = sibling;
        } else {
            let grand = path[depth - 2];
            self.nodes[grand as usize].replace_child(parent, sibling);
        }
        self.free_node(parent);
        self.remove_mass_on_path(&path[..depth - 1], Some(point), store, sc, params);
    }

    /// Subtracts 1 from the masses of `path`'s nodes (nearest first), releasing boxes that
    /// fall below the threshold and shrinking cached boxes the removed point `gone` touched.
    fn remove_mass_on_path(
        &mut self,
        path: &[NodeRef],
        gone: Option<&[f32]>,
        store: &PointStore,
        sc: &mut TreeScratch,
        params: &TreeParams,
    ) {
        // one body per common dimension: the shrink's per-dimension loops unroll
        by_dimension!(
            params.dims,
            self.remove_mass_on_path_n(path, gone, store, sc, params)
        )
    }

    /// [`remove_mass_on_path`](Self::remove_mass_on_path) for dimension `D` (0: any).
    #[inline(always)]
    fn remove_mass_on_path_n<const D: usize>(
        &mut self,
        path: &[NodeRef],
        gone: Option<&[f32]>,
        store: &PointStore,
        sc: &mut TreeScratch,
        params: &TreeParams,
    ) {
        // a countdown, not `path.iter().rev()`: the iterator measured 0.3 % more W1
        // instructions (callgrind, 2.904 → 2.911 G)
        let mut j = path.len();
        // every mass on the path goes down; the boxes shrink up to the first that stays as it
        // was, since then every box above is unchanged too: the removed point was either
        // strictly inside, or another point still holds each bound it touched
        let mut shrinking = gone;
        while j > 0 {
            j -= 1;
            let r = path[j];
            let node = &mut self.nodes[r as usize];
            node.mass -= 1;
            let mass = u32::from(node.mass);
            let slot = self.box_slot(r);
            if slot == NONE {
                continue;
            }
            if mass < params.box_cache_min_mass {
                self.release_box(r);
                continue;
            }
            if let Some(g) = shrinking
                && !self.shrink_box::<D>(
                    r,
                    slot as usize,
                    g,
                    store,
                    &mut sc.min,
                    &mut sc.max,
                    &mut sc.stack,
                )
            {
                shrinking = None;
            }
        }
    }

    /// Rewrites every leaf's store index (after the store compacted).
    pub(crate) fn remap_points(&mut self, f: impl Fn(u32) -> u32) {
        for (i, &m) in self.leaf_mass.iter().enumerate() {
            if m > 0 {
                self.leaf_point.set(i, f(self.leaf_point.get(i)));
            }
        }
        for i in 0..self.order.len() {
            self.order.set(i, f(self.order.get(i)));
        }
    }

    /// Store indices of the points held (one per leaf).
    pub(crate) fn live_points(&self) -> impl Iterator<Item = u32> + '_ {
        self.leaf_point
            .iter()
            .zip(&self.leaf_mass)
            .filter(|&(_, &m)| m > 0)
            .map(|(p, _)| p)
    }

    /// Hints the cache to load what a walk of this tree reads: its nodes and leaves (and cached
    /// boxes, if any). No effect on any result.
    #[inline]
    pub(crate) fn prefetch(&self) {
        crate::kernels::prefetch(&self.nodes);
        self.leaf_point.prefetch();
        self.order.prefetch();
        crate::kernels::prefetch(&self.leaf_mass);
        crate::kernels::prefetch(&self.box_slots);
        crate::kernels::prefetch(&self.boxes);
    }

    /// Bytes held by this tree.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.box_slots.capacity() * 2
            + self.leaf_point.memory_bytes()
            + self.leaf_mass.capacity() * 2
            + self.order.memory_bytes()
            + self.boxes.capacity() * 4
            + self.free_boxes.capacity() * 2
    }

    /// Bytes of (nodes, leaves with the leaf order, boxes).
    pub(crate) fn memory_parts(&self) -> (usize, usize, usize) {
        (
            self.nodes.capacity() * std::mem::size_of::<Node>(),
            self.leaf_point.memory_bytes()
                + self.leaf_mass.capacity() * 2
                + self.order.memory_bytes(),
            self.boxes.capacity() * 4
                + self.free_boxes.capacity() * 2
                + self.box_slots.capacity() * 2,
        )
    }

    /// Whether the leaves' point indices are stored in 16 bits.
    #[cfg(test)]
    pub(crate) fn leaf_points_narrow(&self) -> bool {
        self.leaf_point.is_narrow()
    }

    /// Depth of every point (with multiplicity), for diagnostics and tests.
    #[cfg(test)]
    pub(crate) fn average_depth(&self) -> f64 {
        let mut total = 0.0;
        let mut stack = vec![(self.root, 0u32)];
        if self.root == NONE {
            return 0.0;
        }
        while let Some((r, d)) = stack.pop() {
            if is_leaf(r) {
                total += f64::from(d) * f64::from(self.leaf_mass(r));
            } else {
                let n = &self.nodes[r as usize];
                stack.push((n.left, d + 1));
                stack.push((n.right, d + 1));
            }
        }
        total / f64::from(self.mass())
    }
}

/// Draws a cut of `box ∪ {q}` conditioned on separating `q` from the box: the dimension with
/// probability proportional to `q`'s distance outside the box in it, the value uniformly in
/// that gap. Returns `(dimension, value, q goes left)`. The value is kept strictly on the box's
/// side of `q` so that the `<=` descent rule sends the box's points and `q` apart (f32 rounding
/// could otherwise land it on `q`; the reference panics in that case).
fn draw_separating_cut(
    q: &[f32],
    min: &[f32],
    max: &[f32],
    rng: &mut TreeRng,
) -> (usize, f32, bool) {
    let gap_of = |i: usize| {
        let (x, lo, hi) = (f64::from(q[i]), f64::from(min[i]), f64::from(max[i]));
        (lo - x).max(0.0) + (x - hi).max(0.0)
    };
    let total: f64 = (0..q.len()).map(gap_of).sum();
    debug_assert!(total > 0.0, "a separating cut needs q outside the box");
    let mut r = rng.uniform() * total;
    let mut dim = usize::MAX;
    for i in 0..q.len() {
        let g = gap_of(i);
        if g > 0.0 {
            dim = i;
            if r < g {
                break;
            }
            r -= g;
        }
    }
    let u = rng.uniform();
    let (x, lo, hi) = (q[dim], min[dim], max[dim]);
    if x > hi {
        // cut in [hi, x): box left (<= cut), q right
        let c = (f64::from(hi) + u * (f64::from(x) - f64::from(hi))) as f32;
        let c = if c >= x || c < hi { hi } else { c };
        (dim, c, false)
    } else {
        // x < lo: cut in [x, lo): q left, box right
        let c = (f64::from(x) + u * (f64::from(lo) - f64::from(x))) as f32;
        let c = if c >= lo || c < x { x } else { c };
        (dim, c, true)
    }
}

/// Calls `emit` with the index of each leaf below `root`, left to right, `mass` times each
/// (the leaf order). Goes down each left spine keeping the right children for later: one
/// stack operation per leaf. The structure must hold (no cycles): checked, or vouched for by
/// a digest.
fn leaf_order(
    nodes: &[Node],
    leaf_mass: &[u16],
    root: NodeRef,
    stack: &mut Vec<NodeRef>,
    mut emit: impl FnMut(usize),
) {
    stack.clear();
    let mut r = root;
    loop {
        while !is_leaf(r) {
            let n = &nodes[r as usize];
            stack.push(n.right);
            r = n.left;
        }
        let i = leaf_index(r);
        for _ in 0..leaf_mass[i] {
            emit(i);
        }
        match stack.pop() {
            Some(next) => r = next,
            None => break,
        }
    }
}
