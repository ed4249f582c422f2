//! [`Scratch`]: per-thread query buffers (regex-automata's `Cache` idea).

use crate::tree::TreeScratch;
use crate::tree::visit::LockstepPaths;

/// Reusable per-thread buffers for queries, so that [`RandomCutForest::score_with`](crate::RandomCutForest::score_with) allocates
/// nothing. Make one with [`RandomCutForest::scratch`](crate::RandomCutForest::scratch); it fits any forest of the same
/// dimension.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    pub(crate) tree: TreeScratch,
    pub(crate) query: Vec<f32>,
    /// Paths of the trees descended in lockstep.
    pub(crate) paths: LockstepPaths,
    capacity: usize,
}

impl Scratch {
    pub(crate) fn new(dims: usize, capacity: usize) -> Self {
        Self {
            tree: TreeScratch::new(dims),
            query: vec![0.0; dims],
            paths: LockstepPaths::new(capacity + 1),
            capacity,
        }
    }

    pub(crate) fn fit(&mut self, dims: usize, capacity: usize) {
        if self.query.len() != dims || self.capacity < capacity {
            *self = Self::new(dims, capacity);
        }
    }
}
