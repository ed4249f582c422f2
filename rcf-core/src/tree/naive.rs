//! A deliberately naive reference implementation of the score (rcf-reference §5) and the
//! attribution (§6), for tests:
//! every box is recomputed from the subtree's leaf points, every level is evaluated (no early
//! stop), all arithmetic is in f64, and nothing is cached or reused.

use crate::point_store::PointStore;
use crate::tree::{NONE, NodeRef, Tree, is_leaf};

fn leaf_points(tree: &Tree, r: NodeRef, store: &PointStore, out: &mut Vec<Vec<f64>>) {
    if is_leaf(r) {
        out.push(
            store
                .point(tree.leaf_point(r))
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
        );
    } else {
        let n = tree.node(r);
        leaf_points(tree, n.left, store, out);
        leaf_points(tree, n.right, store, out);
    }
}

/// Probability that a random cut of `box(points) ∪ {q}` separates `q`: `1 − R(B) / R(B ∪ q)`.
fn separation(points: &[Vec<f64>], q: &[f64]) -> f64 {
    let d = q.len();
    let mut r_box = 0.0;
    let mut r_grown = 0.0;
    for i in 0..d {
        let lo = points.iter().map(|p| p[i]).fold(f64::INFINITY, f64::min);
        let hi = points
            .iter()
            .map(|p| p[i])
            .fold(f64::NEG_INFINITY, f64::max);
        r_box += hi - lo;
        r_grown += hi.max(q[i]) - lo.min(q[i]);
    }
    if r_grown == r_box {
        0.0
    } else {
        1.0 - r_box / r_grown
    }
}

/// The normalised score of `q` in `tree`, straight from the definition.
pub(crate) fn naive_score(tree: &Tree, store: &PointStore, q: &[f32]) -> f64 {
    if tree.root() == NONE {
        return 0.0;
    }
    let qd: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
    let mut path = Vec::new();
    let leaf = tree.descend(q, &mut path);
    let depth = path.len() as f64;
    let total = f64::from(tree.mass());
    let leaf_pt: Vec<f64> = store
        .point(tree.leaf_point(leaf))
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let mut s = if leaf_pt == qd {
        let m = f64::from(tree.leaf_mass(leaf));
        (1.0 - m / (2.0 * total)) / (depth + (1.0 + m).log2())
    } else {
        1.0 / (depth + 1.0)
    };
    for (j, &node) in path.iter().enumerate().rev() {
        let mut pts = Vec::new();
        leaf_points(tree, node, store, &mut pts);
        let p = separation(&pts, &qd);
        s = (1.0 - p) * s + p / (j as f64 + 1.0);
    }
    s * (1.0 + total).log2()
}

/// The normalised attribution of `q` in `tree` (`(high, low)`), straight from rcf-reference §6:
/// the score's recursion on a pair of vectors, every box recomputed from its points, every
/// level evaluated, f64 throughout, renormalised to the tree's score.
pub(crate) fn naive_attribution(
    tree: &Tree,
    store: &PointStore,
    q: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let d = q.len();
    if tree.root() == NONE {
        return (vec![0.0; d], vec![0.0; d]);
    }
    let qd: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
    let mut path = Vec::new();
    let leaf = tree.descend(q, &mut path);
    let depth = path.len() as f64;
    let leaf_pt: Vec<f64> = store
        .point(tree.leaf_point(leaf))
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let (mut high, mut low) = (vec![0.0; d], vec![0.0; d]);
    if leaf_pt != qd {
        // the leaf term split by each dimension's share of the separation from the leaf point
        let gap: f64 = (0..d).map(|i| (qd[i] - leaf_pt[i]).abs()).sum();
        for i in 0..d {
            high[i] = (qd[i] - leaf_pt[i]).max(0.0) / gap / (depth + 1.0);
            low[i] = (leaf_pt[i] - qd[i]).max(0.0) / gap / (depth + 1.0);
        }
    }
    for (j, &node) in path.iter().enumerate().rev() {
        let mut pts = Vec::new();
        leaf_points(tree, node, store, &mut pts);
        let lo: Vec<f64> = (0..d)
            .map(|i| pts.iter().map(|p| p[i]).fold(f64::INFINITY, f64::min))
            .collect();
        let hi: Vec<f64> = (0..d)
            .map(|i| pts.iter().map(|p| p[i]).fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let range: f64 = (0..d).map(|i| hi[i] - lo[i]).sum();
        let gap: f64 = (0..d)
            .map(|i| (qd[i] - hi[i]).max(0.0) + (lo[i] - qd[i]).max(0.0))
            .sum();
        let den = range + gap;
        let p = gap / den;
        for i in 0..d {
            high[i] = (1.0 - p) * high[i] + (qd[i] - hi[i]).max(0.0) / den / (j as f64 + 1.0);
            low[i] = (1.0 - p) * low[i] + (lo[i] - qd[i]).max(0.0) / den / (j as f64 + 1.0);
        }
    }
    let score = naive_score(tree, store, q);
    let total: f64 = high.iter().sum::<f64>() + low.iter().sum::<f64>();
    if total > 0.0 {
        for v in high.iter_mut().chain(low.iter_mut()) {
            *v *= score / total;
        }
    } else {
        let share = score / (2 * d) as f64;
        high.fill(share);
        low.fill(share);
    }
    (high, low)
}
