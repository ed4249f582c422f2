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
            + (t.path.capacity() + t.stack.capacity()) * std::mem::size_of::<crate::tree::NodeRef>()
            + (t.probs.capacity() + t.high.capacity() + t.low.capacity()) * 8
            + (t.min.capacity() + t.max.capacity() + t.candidate.capacity()) * 4
            + t.frames.capacity() * std::mem::size_of::<(crate::tree::NodeRef, u32, bool)>()
            + t.results.capacity() * std::mem::size_of::<(crate::tree::NodeRef, f64)>()
            + self.query.capacity() * 4
            + self.paths.memory_bytes()
    }

    pub(crate) fn fit(&mut self, dims: usize, capacity: usize) {
        if self.query.len() != dims || self.capacity < capacity {
            *self = Self::new(dims, capacity);
        }
    }
}
