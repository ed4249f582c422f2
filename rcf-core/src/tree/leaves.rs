//! The store index of each leaf's point, in 16 bits while every index fits (also the type of
//! a tree's leaf order, `Tree::order`).
//!
//! A forest's point store holds at most about 1.5 × its live units (see `point_store.rs`);
//! for most forests (the fleet model, W1's) that is far below 65,536, so two bytes a leaf
//! suffice. The first index that does not fit widens the array to 32 bits for good. Values
//! are the same either way: the width changes memory, not results, nor the saved form.

/// Leaf point indices (or, for a free leaf, the next free leaf), narrow or wide.
#[derive(Debug, Clone)]
pub(crate) enum LeafPoints {
    /// Every value fits in 16 bits.
    Narrow(Vec<u16>),
    /// Some value did not, once.
    Wide(Vec<u32>),
}

impl LeafPoints {
    /// An empty, narrow array with room for `capacity` leaves.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut v = Vec::new();
        v.reserve_exact(capacity);
        LeafPoints::Narrow(v)
    }

    /// The value of leaf `i`.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> u32 {
        match self {
            LeafPoints::Narrow(v) => u32::from(v[i]),
            LeafPoints::Wide(v) => v[i],
        }
    }

    /// Sets the value of leaf `i`.
    #[inline]
    pub(crate) fn set(&mut self, i: usize, value: u32) {
        if let (LeafPoints::Narrow(v), Ok(x)) = (&mut *self, u16::try_from(value)) {
            v[i] = x;
            return;
        }
        self.widen()[i] = value;
    }

    /// Appends a leaf's value.
    #[inline]
    pub(crate) fn push(&mut self, value: u32) {
        if let (LeafPoints::Narrow(v), Ok(x)) = (&mut *self, u16::try_from(value)) {
            v.push(x);
            return;
        }
        self.widen().push(value);
    }

    /// Inserts `value` at position `i`, moving the values from `i` on up by one.
    #[inline]
    pub(crate) fn insert(&mut self, i: usize, value: u32) {
        if let (LeafPoints::Narrow(v), Ok(x)) = (&mut *self, u16::try_from(value)) {
            v.insert(i, x);
            return;
        }
        self.widen().insert(i, value);
    }

    /// Removes the value at position `i`, moving the values after it down by one.
    #[inline]
    pub(crate) fn remove(&mut self, i: usize) {
        match self {
            LeafPoints::Narrow(v) => {
                v.remove(i);
            }
            LeafPoints::Wide(v) => {
                v.remove(i);
            }
        }
    }

    /// Removes every value (keeping the capacity and the width).
    pub(crate) fn clear(&mut self) {
        match self {
            LeafPoints::Narrow(v) => v.clear(),
            LeafPoints::Wide(v) => v.clear(),
        }
    }

    /// Values there is room for without reallocating.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            LeafPoints::Narrow(v) => v.capacity(),
            LeafPoints::Wide(v) => v.capacity(),
        }
    }

    /// Leaves held.
    pub(crate) fn len(&self) -> usize {
        match self {
            LeafPoints::Narrow(v) => v.len(),
            LeafPoints::Wide(v) => v.len(),
        }
    }

    /// Hints the cache to load the values (see `kernels::prefetch`).
    #[inline]
    pub(crate) fn prefetch(&self) {
        match self {
            LeafPoints::Narrow(v) => crate::kernels::prefetch(v),
            LeafPoints::Wide(v) => crate::kernels::prefetch(v),
        }
    }

    /// Heap bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            LeafPoints::Narrow(v) => v.capacity() * 2,
            LeafPoints::Wide(v) => v.capacity() * 4,
        }
    }

    /// Every value, in leaf order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Whether the values are stored in 16 bits.
    #[cfg(test)]
    pub(crate) fn is_narrow(&self) -> bool {
        matches!(self, LeafPoints::Narrow(_))
    }

    /// The 32-bit array, converting a narrow one (keeping its capacity).
    fn widen(&mut self) -> &mut Vec<u32> {
        if let LeafPoints::Narrow(v) = self {
            let mut wide = Vec::new();
            wide.reserve_exact(v.capacity().max(v.len() + 1));
            wide.extend(v.iter().map(|&x| u32::from(x)));
            *self = LeafPoints::Wide(wide);
        }
        match self {
            LeafPoints::Wide(v) => v,
            LeafPoints::Narrow(_) => unreachable!("widened above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_widening_and_narrow_arrays_take_two_bytes() {
        let mut a = LeafPoints::with_capacity(8);
        assert_eq!(a.memory_bytes(), 16);
        for x in [0, 7, u32::from(u16::MAX)] {
            a.push(x);
        }
        a.set(1, 9);
        assert!(a.is_narrow());
        a.set(0, 70_000);
        assert!(!a.is_narrow());
        a.push(5);
        assert_eq!(a.iter().collect::<Vec<_>>(), [70_000, 9, 65_535, 5]);
        assert_eq!(a.memory_bytes(), 32);
        a.insert(1, 3);
        a.remove(0);
        assert_eq!(a.iter().collect::<Vec<_>>(), [3, 9, 65_535, 5]);
        let mut c = LeafPoints::with_capacity(4);
        c.push(1);
        c.push(2);
        c.insert(0, 0);
        assert!(c.is_narrow());
        c.insert(3, 1 << 17);
        c.remove(1);
        assert!(!c.is_narrow());
        assert_eq!(c.iter().collect::<Vec<_>>(), [0, 2, 1 << 17]);
        let mut b = LeafPoints::with_capacity(2);
        b.push(1 << 20);
        assert_eq!((b.len(), b.get(0)), (1, 1 << 20));
    }
}
