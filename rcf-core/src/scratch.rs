//! [`Scratch`]: per-thread query buffers (regex-automata's `Cache` idea).

use crate::tree::visit::LockstepPaths;
use crate::tree::{NodeRef, TreeScratch};

/// Reusable per-thread buffers for queries, so that [`RandomCutForest::score_with`](crate::RandomCutForest::score_with) allocates
/// nothing. Make one with [`RandomCutForest::scratch`](crate::RandomCutForest::scratch); it fits any forest of the same
/// dimension.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    pub(crate) tree: TreeScratch,
    pub(crate) query: Vec<f32>,
    /// Paths of the trees descended in lockstep.
    pub(crate) paths: LockstepPaths,
    /// What the last scoring walk left for an update of the same point.
    pub(crate) staged: Staged,
    /// The leaves an update's admissions evicted, by tree, deleted together at its end.
    pub(crate) evicted: Vec<(u32, NodeRef)>,
    capacity: usize,
}

/// The per-tree results of a scoring walk, kept so that an update of the same point on the
/// same forest state ([`RandomCutForest::update_with`](crate::RandomCutForest::update_with))
/// inserts along them instead of descending and walking up again.
///
/// Tree `i`'s path (root first) is `paths[ends[i]..ends[i + 1]]`, the separation
/// probabilities of the query against those nodes' boxes are `probs` over the same range,
/// and its leaf is `leaves[i]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Staged {
    /// The forest state the walks were made on (the forest's generation); 0 for none.
    pub(crate) generation: u64,
    pub(crate) query: Vec<f32>,
    pub(crate) leaves: Vec<NodeRef>,
    pub(crate) ends: Vec<u32>,
    pub(crate) paths: Vec<NodeRef>,
    pub(crate) probs: Vec<f64>,
    /// Each tree's score (before its normaliser), as the walk found it.
    pub(crate) scores: Vec<f64>,
}

impl Staged {
    /// Forgets what was staged and starts over for `query` on the forest state `generation`.
    pub(crate) fn begin(&mut self, generation: u64, query: &[f32]) {
        self.generation = generation;
        self.query.clear();
        self.query.extend_from_slice(query);
        self.leaves.clear();
        self.ends.clear();
        self.ends.push(0);
        self.paths.clear();
        self.probs.clear();
        self.scores.clear();
    }

    /// Records the next tree's walk and its score (before the tree's normaliser).
    pub(crate) fn push(&mut self, leaf: NodeRef, path: &[NodeRef], probs: &[f64], score: f64) {
        self.leaves.push(leaf);
        self.paths.extend_from_slice(path);
        self.probs.extend_from_slice(probs);
        self.ends.push(self.paths.len() as u32);
        self.scores.push(score);
    }

    /// Whether the walks were made for `query` on the forest state `generation`, for all
    /// `trees` trees.
    pub(crate) fn matches(&self, generation: u64, query: &[f32], trees: usize) -> bool {
        self.generation != 0
            && self.generation == generation
            && self.leaves.len() == trees
            && self.query.len() == query.len()
            && self
                .query
                .iter()
                .zip(query)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// Tree `i`'s leaf, path and probabilities.
    #[inline]
    pub(crate) fn tree(&self, i: usize) -> (NodeRef, &[NodeRef], &[f64]) {
        let (a, b) = (self.ends[i] as usize, self.ends[i + 1] as usize);
        (self.leaves[i], &self.paths[a..b], &self.probs[a..b])
    }

    /// Tree `i`'s score, before its normaliser.
    #[inline]
    pub(crate) fn score(&self, i: usize) -> f64 {
        self.scores[i]
    }

    fn memory_bytes(&self) -> usize {
        self.query.capacity() * 4
            + self.leaves.capacity() * std::mem::size_of::<NodeRef>()
            + self.ends.capacity() * 4
            + self.paths.capacity() * std::mem::size_of::<NodeRef>()
            + self.probs.capacity() * 8
            + self.scores.capacity() * 8
    }
}

impl Scratch {
    pub(crate) fn new(dims: usize, capacity: usize) -> Self {
        Self {
            tree: TreeScratch::new(dims),
            query: vec![0.0; dims],
            paths: LockstepPaths::new(capacity + 1),
            staged: Staged::default(),
            evicted: Vec::new(),
            capacity,
        }
    }

    /// Bytes of heap memory the buffers hold, plus the struct itself.
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let forest = RandomCutForest::builder(3).sample_size(32).build()?;
    /// let scratch = forest.scratch();
    /// assert!(scratch.memory_usage() > std::mem::size_of_val(&scratch));
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn memory_usage(&self) -> usize {
        let t = &self.tree;
        std::mem::size_of::<Self>()
            + (t.path.capacity() + t.stack.capacity() + t.order.capacity())
                * std::mem::size_of::<crate::tree::NodeRef>()
            + (t.probs.capacity() + t.high.capacity() + t.low.capacity()) * 8
            + (t.min.capacity() + t.max.capacity() + t.candidate.capacity() + t.all.capacity()) * 4
            + t.marks.capacity() * 4
            + t.frames.capacity() * std::mem::size_of::<(crate::tree::NodeRef, u32, bool)>()
            + t.results.capacity() * std::mem::size_of::<(crate::tree::NodeRef, f64)>()
            + self.query.capacity() * 4
            + self.paths.memory_bytes()
            + self.staged.memory_bytes()
            + self.evicted.capacity() * std::mem::size_of::<(u32, NodeRef)>()
    }

    pub(crate) fn fit(&mut self, dims: usize, capacity: usize) {
        if self.query.len() != dims || self.capacity < capacity {
            *self = Self::new(dims, capacity);
        }
    }
}

/// Scratch kept per forest shape (dimensions), on each thread.
const LOCAL_SHAPES: usize = 4;

thread_local! {
    /// This thread's scratch for the calls that take none (`score`, `update`, `process` and
    /// their batch forms), most recently used last: a forest holds no buffers of its own, so a
    /// fleet of models costs one set per thread, not one per model.
    static LOCAL: std::cell::RefCell<Vec<Scratch>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch for a forest of `dims` dimensions and `capacity`
/// samples. A `score` followed by an `update` of the same point on the same thread thus
/// shares the score's [`Staged`] walk.
pub(crate) fn with_local<R>(dims: usize, capacity: usize, f: impl FnOnce(&mut Scratch) -> R) -> R {
    LOCAL.with(|cell| {
        let Ok(mut pool) = cell.try_borrow_mut() else {
            // re-entered from within `f` (the crate never does): buffers of its own
            return f(&mut Scratch::new(dims, capacity));
        };
        let found = pool
            .iter()
            .rposition(|s| s.query.len() == dims && s.capacity >= capacity);
        match found {
            Some(i) if i + 1 == pool.len() => {}
            Some(i) => {
                let s = pool.remove(i);
                pool.push(s);
            }
            None => {
                if pool.len() == LOCAL_SHAPES {
                    pool.remove(0);
                }
                pool.push(Scratch::new(dims, capacity));
            }
        }
        let last = pool.len() - 1;
        f(&mut pool[last])
    })
}
