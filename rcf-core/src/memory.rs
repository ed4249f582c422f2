//! What a forest's memory goes to: [`RandomCutForest::memory_usage`] and its breakdown.

use crate::forest::RandomCutForest;
use crate::rng::TreeRng;
use crate::sampler::Sampler;
use crate::tree::Tree;

/// Bytes held by each part of a forest (see [`RandomCutForest::memory_breakdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryBreakdown {
    /// Internal nodes (cuts, children, masses).
    pub nodes: usize,
    /// Leaves (point references and duplicate counts).
    pub leaves: usize,
    /// Cached bounding boxes, with each node's slot among them (none without a cache).
    pub boxes: usize,
    /// Samplers (priority keys and leaf references).
    pub samplers: usize,
    /// The shared point store.
    pub points: usize,
    /// Everything else (per-tree headers, generators). Query buffers are per thread, not
    /// per forest, and not counted.
    pub other: usize,
}

impl RandomCutForest {
    /// Bytes of heap memory this forest holds (capacities, not lengths), plus the struct itself.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(1).shingle_size(8).build()?;
    /// for t in 0..5_000 { forest.update(&[(t as f32 / 20.0).sin()])?; }
    /// assert!(forest.memory_usage() < 1_000_000); // the W1 forest, trained
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.trees.iter().map(Tree::memory_bytes).sum::<usize>()
            + self.trees.capacity() * std::mem::size_of::<Tree>()
            + self
                .samplers
                .iter()
                .map(Sampler::memory_bytes)
                .sum::<usize>()
            + self.samplers.capacity() * std::mem::size_of::<Sampler>()
            + self.rngs.capacity() * std::mem::size_of::<TreeRng>()
            + self.store.memory_bytes()
    }

    /// Where [`memory_usage`](Self::memory_usage) goes, in bytes.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forest = RandomCutForest::builder(1).shingle_size(8).build()?;
    /// for t in 0..5_000 { forest.update(&[(t as f32 / 20.0).sin()])?; }
    /// let b = forest.memory_breakdown();
    /// assert_eq!(b.nodes + b.leaves + b.boxes + b.samplers + b.points + b.other, forest.memory_usage());
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn memory_breakdown(&self) -> MemoryBreakdown {
        let (mut nodes, mut leaves, mut boxes) = (0, 0, 0);
        for t in &self.trees {
            let (n, l, b) = t.memory_parts();
            nodes += n;
            leaves += l;
            boxes += b;
        }
        let samplers = self
            .samplers
            .iter()
            .map(Sampler::memory_bytes)
            .sum::<usize>();
        let points = self.store.memory_bytes();
        let total = self.memory_usage();
        MemoryBreakdown {
            nodes,
            leaves,
            boxes,
            samplers,
            points,
            other: total - nodes - leaves - boxes - samplers - points,
        }
    }
}
