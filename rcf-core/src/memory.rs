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
    /// Leaves (point references and duplicate counts) and each tree's leaf order (a point
    /// reference per sampled point, leaves left to right: what a walk without cached boxes reads).
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
    /// Hints the CPU to bring this forest's memory into cache, ahead of a call that will use
    /// it. Changes nothing and returns at once (on x86-64 it issues `prefetcht0` hints; on
    /// other targets it does nothing).
    ///
    /// For code that works through many forests in turn, as a fleet does (one model per
    /// device, each touched once per window and so usually cold): calling it on the next
    /// forest before working on the current one lets the next one's cache misses overlap the
    /// current one's work instead of each walk waiting on its own dependent loads.
    ///
    /// # Example
    ///
    /// ```
    /// use rcf_core::RandomCutForest;
    /// let mut forests: Vec<RandomCutForest> = (0..3)
    ///     .map(|s| RandomCutForest::builder(1).seed(s).build())
    ///     .collect::<Result<_, _>>()?;
    /// for i in 0..forests.len() {
    ///     if let Some(next) = forests.get(i + 1) {
    ///         next.prefetch();
    ///     }
    ///     forests[i].update(&[1.0])?;
    /// }
    /// # Ok::<(), rcf_core::Error>(())
    /// ```
    pub fn prefetch(&self) {
        for (tree, sampler) in self.trees.iter().zip(&self.samplers) {
            tree.prefetch();
            sampler.prefetch();
        }
        self.store.prefetch();
    }

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
