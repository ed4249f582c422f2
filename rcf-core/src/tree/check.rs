//! [`Tree::check`]: the invariants of the module docs, verified (tests, and every restore).

use super::{NONE, NodeRef, Tree, TreeParams, TreeScratch, is_leaf, leaf_index, leaf_ref};
use crate::kernels::extend_box;
use crate::point_store::PointStore;

impl Tree {
    /// Verifies the invariants in the module docs against `sampler_leaves` (one entry per
    /// sampled point). `check_boxes` also compares every cached box with its subtree.
    pub(crate) fn check(
        &self,
        params: &TreeParams,
        store: &PointStore,
        sampler_leaves: &[u16],
        thorough: bool,
        sc: &mut TreeScratch,
    ) -> Result<(), String> {
        let n_nodes = self.nodes.len();
        let n_leaves = self.leaf_point.len();
        if n_nodes > params.capacity || n_leaves > params.capacity + 1 {
            return Err(format!(
                "tree has {n_nodes} nodes and {n_leaves} leaves for a sample of {}",
                params.capacity
            ));
        }
        if self.leaf_mass.len() != n_leaves {
            return Err("leaf arrays differ in length".into());
        }
        if !self.box_slots.is_empty() && self.box_slots.len() != n_nodes {
            return Err("box slots and nodes differ in length".into());
        }
        // one buffer for the marks of nodes and leaves and the sampler's references to each
        // leaf (restores check every tree: no allocation per tree)
        let marks = &mut sc.marks;
        marks.clear();
        marks.resize(n_nodes + 2 * n_leaves, 0);
        let (seen_node, rest) = marks.split_at_mut(n_nodes);
        let (seen_leaf, refs) = rest.split_at_mut(n_leaves);
        let valid_ref = |r: NodeRef| {
            if is_leaf(r) {
                r != NONE && leaf_index(r) < n_leaves
            } else {
                (r as usize) < n_nodes
            }
        };
        // reachability, masses, cuts
        if self.root != NONE {
            if !valid_ref(self.root) {
                return Err("root reference out of range".into());
            }
            let stack = &mut sc.stack;
            stack.clear();
            stack.push(self.root);
            while let Some(r) = stack.pop() {
                if is_leaf(r) {
                    let i = leaf_index(r);
                    if std::mem::replace(&mut seen_leaf[i], 1) == 1 {
                        return Err(format!("leaf {i} reached twice"));
                    }
                    if self.leaf_mass[i] == 0 {
                        return Err(format!("reachable leaf {i} has mass 0"));
                    }
                    if !store.is_valid_start(self.leaf_point.get(i)) {
                        return Err(format!("leaf {i} points outside the point store"));
                    }
                    continue;
                }
                let i = r as usize;
                if std::mem::replace(&mut seen_node[i], 1) == 1 {
                    return Err(format!("node {i} reached twice"));
                }
                let n = &self.nodes[i];
                if !valid_ref(n.left) || !valid_ref(n.right) {
                    return Err(format!("node {i} has a child out of range"));
                }
                if n.cut_dim as usize >= params.dims || !n.cut_value.is_finite() {
                    return Err(format!("node {i} has an invalid cut"));
                }
                // masses of children must be known: compute recursively via an explicit sum
                stack.push(n.left);
                stack.push(n.right);
            }
            // mass sums (children were validated above)
            for (i, n) in self.nodes.iter().enumerate() {
                if seen_node[i] == 1 {
                    let sum = self.mass_of(n.left) + self.mass_of(n.right);
                    if u32::from(self.nodes[i].mass) != sum {
                        return Err(format!(
                            "node {i} has mass {} but its children hold {sum}",
                            self.nodes[i].mass
                        ));
                    }
                }
            }
            // routing: every leaf's point descends to that leaf (restores verify the equivalent
            // cut-separation property in `rebuild_boxes` instead, at a fraction of the cost)
            for (i, _) in seen_leaf
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == 1 && thorough)
            {
                if self.leaf_of(store.point(self.leaf_point.get(i))) != leaf_ref(i) {
                    return Err(format!("leaf {i}'s point does not descend to it"));
                }
            }
        }
        // free lists cover exactly the unreached slots
        let mut r = self.free_node;
        while r != NONE {
            let i = r as usize;
            if i >= n_nodes || seen_node[i] == 1 || self.nodes[i].mass != 0 {
                return Err("node free list is corrupt".into());
            }
            seen_node[i] = 1;
            r = self.nodes[i].left;
        }
        let mut r = self.free_leaf;
        while r != NONE {
            if !is_leaf(r) || leaf_index(r) >= n_leaves || seen_leaf[leaf_index(r)] == 1 {
                return Err("leaf free list is corrupt".into());
            }
            seen_leaf[leaf_index(r)] = 1;
            let next = self.leaf_point.get(leaf_index(r));
            if next > u32::from(u16::MAX) {
                return Err("leaf free list is corrupt".into());
            }
            r = next as NodeRef;
        }
        if seen_node.contains(&0) || seen_leaf.contains(&0) {
            return Err("some tree slots are neither reachable nor free".into());
        }
        let root_mass = if self.root == NONE {
            0
        } else {
            self.mass_of(self.root)
        };
        if root_mass != self.mass {
            return Err(format!(
                "tree mass {} differs from its root's {root_mass}",
                self.mass
            ));
        }
        // sampler ↔ leaves
        if sampler_leaves.len() != self.mass() as usize {
            return Err(format!(
                "sampler holds {} points but the tree {}",
                sampler_leaves.len(),
                self.mass()
            ));
        }
        for &l in sampler_leaves {
            if !is_leaf(l) || l == NONE || leaf_index(l) >= n_leaves {
                return Err("sampler refers to a leaf out of range".into());
            }
            refs[leaf_index(l)] += 1;
        }
        for (i, (&m, &c)) in self.leaf_mass.iter().zip(refs.iter()).enumerate() {
            if u32::from(m) != c {
                return Err(format!(
                    "leaf {i} has mass {m} but the sampler refers to it {c} times"
                ));
            }
        }
        if thorough {
            self.check_boxes(params, store)?;
            self.check_order()?;
        }
        Ok(())
    }

    /// Invariant 5: the leaf order is the leaves' points left to right, each repeated by
    /// its mass (restores rebuild it rather than read it, so only tests check it).
    fn check_order(&self) -> Result<(), String> {
        if !self.ordered {
            return if self.order.len() == 0 {
                Ok(())
            } else {
                Err("a tree without a leaf order holds one".into())
            };
        }
        let mut expected = Vec::with_capacity(self.mass as usize);
        let mut stack = Vec::new();
        if self.root != NONE {
            stack.push(self.root);
        }
        while let Some(r) = stack.pop() {
            if is_leaf(r) {
                for _ in 0..self.leaf_mass(r) {
                    expected.push(self.leaf_point(r));
                }
            } else {
                stack.push(self.nodes[r as usize].right);
                stack.push(self.nodes[r as usize].left);
            }
        }
        if !self.order.iter().eq(expected.iter().copied()) {
            return Err("the leaf order is not the leaves' points left to right".into());
        }
        Ok(())
    }

    pub(super) fn check_boxes(
        &self,
        params: &TreeParams,
        store: &PointStore,
    ) -> Result<(), String> {
        let dims = params.dims;
        let mut min = vec![0.0; dims];
        let mut max = vec![0.0; dims];
        let mut stack = Vec::new();
        for (i, mass) in self.nodes.iter().map(|n| n.mass).enumerate() {
            let cached = self.cached_box(i as NodeRef, dims);
            if mass == 0 {
                if cached.is_some() {
                    return Err(format!("free node {i} keeps a box"));
                }
                continue;
            }
            let should = u32::from(mass) >= params.box_cache_min_mass;
            match (cached, should) {
                (None, false) => {}
                (Some(_), false) => return Err(format!("node {i} caches a box below threshold")),
                (None, true) => return Err(format!("node {i} lacks a cached box")),
                (Some((lo, hi)), true) => {
                    // recompute from leaves only, ignoring caches
                    min.fill(f32::INFINITY);
                    max.fill(f32::NEG_INFINITY);
                    stack.clear();
                    stack.push(i as NodeRef);
                    while let Some(r) = stack.pop() {
                        if is_leaf(r) {
                            extend_box(&mut min, &mut max, store.point(self.leaf_point(r)));
                        } else {
                            stack.push(self.nodes[r as usize].left);
                            stack.push(self.nodes[r as usize].right);
                        }
                    }
                    if lo != &min[..] || hi != &max[..] {
                        return Err(format!("node {i}'s cached box is not its subtree's box"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The leaf `point` falls in (no path recorded). The structure must already be known to be
    /// acyclic (as in [`check`](Self::check), which calls it after the reachability pass).
    pub(super) fn leaf_of(&self, point: &[f32]) -> NodeRef {
        let mut r = self.root;
        while !is_leaf(r) {
            let n = &self.nodes[r as usize];
            r = if point[n.cut_dim as usize] <= n.cut_value {
                n.left
            } else {
                n.right
            };
        }
        r
    }
}
