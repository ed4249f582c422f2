//! A tree's saved form, and restoring it.

use super::{LEAF_BYTES, NODE_BYTES, NONE, Node, NodeRef, Tree, TreeState, is_leaf, leaf_index};

impl Tree {
    /// The saved form of this tree (boxes are left out: they are rebuilt on load).
    pub(crate) fn to_state(&self) -> TreeState<'static> {
        // records written into buffers sized once (no growth check per field)
        let mut nodes = vec![0u8; self.nodes.len() * NODE_BYTES];
        for (r, n) in nodes.chunks_exact_mut(NODE_BYTES).zip(&self.nodes) {
            r[0..4].copy_from_slice(&n.cut_value.to_le_bytes());
            r[4..6].copy_from_slice(&n.cut_dim.to_le_bytes());
            r[6..8].copy_from_slice(&n.left.to_le_bytes());
            r[8..10].copy_from_slice(&n.right.to_le_bytes());
            r[10..12].copy_from_slice(&n.mass.to_le_bytes());
        }
        let mut leaves = vec![0u8; self.leaf_point.len() * LEAF_BYTES];
        for (r, (p, &m)) in leaves
            .chunks_exact_mut(LEAF_BYTES)
            .zip(self.leaf_point.iter().zip(&self.leaf_mass))
        {
            r[0..4].copy_from_slice(&p.to_le_bytes());
            r[4..6].copy_from_slice(&m.to_le_bytes());
        }
        TreeState {
            root: self.root,
            free_node: self.free_node,
            free_leaf: self.free_leaf,
            nodes: crate::bytes::Blob(nodes.into()),
            leaves: crate::bytes::Blob(leaves.into()),
        }
    }

    /// Rebuilds a tree from its saved form. Only the shape of the blobs is checked here;
    /// [`check`](Self::check) validates the structure before the tree is used.
    pub(crate) fn from_state(state: TreeState<'_>, capacity: usize) -> Result<Self, String> {
        let (nodes_raw, leaves_raw) = (state.nodes.bytes(), state.leaves.bytes());
        if nodes_raw.len() % NODE_BYTES != 0 || leaves_raw.len() % LEAF_BYTES != 0 {
            return Err("tree arrays are not whole records".into());
        }
        if nodes_raw.len() / NODE_BYTES > capacity || leaves_raw.len() / LEAF_BYTES > capacity + 1 {
            return Err(format!("tree arrays exceed the sample size {capacity}"));
        }
        let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        // the leaf order is rebuilt with the boxes, once the structure is checked
        let mut tree = Tree::new(capacity, false);
        for r in nodes_raw.chunks_exact(NODE_BYTES) {
            tree.nodes.push(Node {
                cut_value: f32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                cut_dim: u16_at(r, 4),
                left: u16_at(r, 6),
                right: u16_at(r, 8),
                mass: u16_at(r, 10),
            });
        }
        for r in leaves_raw.chunks_exact(LEAF_BYTES) {
            tree.leaf_point
                .push(u32::from_le_bytes([r[0], r[1], r[2], r[3]]));
            tree.leaf_mass.push(u16_at(r, 4));
        }
        tree.root = state.root;
        tree.free_node = state.free_node;
        tree.free_leaf = state.free_leaf;
        Ok(tree)
    }

    /// Sets the cached mass and normaliser from the root (after a restore). An invalid root
    /// counts as empty here; [`check`](Self::check) rejects it.
    pub(crate) fn recount(&mut self) {
        let mass = if self.root == NONE || !self.valid_ref(self.root) {
            0
        } else {
            self.mass_of(self.root)
        };
        self.set_mass(mass);
    }

    pub(super) fn valid_ref(&self, r: NodeRef) -> bool {
        if is_leaf(r) {
            r != NONE && leaf_index(r) < self.leaf_point.len()
        } else {
            (r as usize) < self.nodes.len()
        }
    }
}
