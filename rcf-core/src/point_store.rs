//! The forest's shared point arena.
//!
//! Every input (`input_dims` floats, one *unit*) is appended to one flat `Vec<f32>`. A point of
//! the forest is `shingle_size` consecutive units, so consecutive shingled points share all but
//! one unit: a shingle-8 stream stores one float per point instead of eight. Leaves refer to a
//! point by the index of its first unit (`u32`).
//!
//! The arena only grows between compactions. When it reaches its capacity, [`compact`]
//! keeps the units that some leaf's point covers plus the newest `shingle_size - 1` units (the
//! start of the next shingle), in order, and rewrites the leaves' indices. Capacity is then set
//! to what is live plus the larger of an eighth of it ([`HEADROOM_EIGHTHS`]) and a quarter of
//! the leaves that were remapped, in floats (at least a small floor). A compaction costs
//! O(live floats + leaves), so the second term keeps its cost per update to a few operations
//! whatever the forest's shape (one-metric forests with many trees have more leaves than
//! live units), and the first keeps memory within about 1.125 × the live set otherwise. (It
//! was 1.5 × the live set until 2026-12-07: a long-running fleet model, whose live set
//! reaches about 6,600 three-metric units, held 30 KB of headroom; states saved with it still
//! load.)
//!
//! [`compact`]: PointStore::compact

/// Minimum growth room, in units, after a compaction.
const MIN_HEADROOM_UNITS: usize = 256;
/// Growth room after a compaction, in eighths of the live set, unless a quarter of the leaves
/// (in floats) is more (module docs; BENCHMARKS.md, "Fleet models in the long run").
const HEADROOM_EIGHTHS: usize = 1;

/// Shared, shingle-aware point storage.
#[derive(Debug, Clone)]
pub(crate) struct PointStore {
    /// Floats per unit (`input_dims`).
    unit: usize,
    /// Units per point (`shingle_size`).
    units_per_point: usize,
    /// The arena.
    values: Vec<f32>,
    /// Units appended since the last compaction that may be kept by the next one only if live.
    /// Compaction is due once `len_units() >= capacity_units`.
    capacity_units: usize,
}

impl PointStore {
    pub(crate) fn new(unit: usize, units_per_point: usize, initial_capacity_units: usize) -> Self {
        let capacity_units = initial_capacity_units.max(MIN_HEADROOM_UNITS);
        Self {
            unit,
            units_per_point,
            values: Vec::with_capacity(capacity_units * unit),
            capacity_units,
        }
    }

    /// Number of units stored.
    #[inline]
    pub(crate) fn len_units(&self) -> usize {
        self.values.len() / self.unit
    }

    /// Dimension of a point.
    #[inline]
    pub(crate) fn dimensions(&self) -> usize {
        self.unit * self.units_per_point
    }

    /// The point whose first unit is `start`.
    #[inline]
    pub(crate) fn point(&self, start: u32) -> &[f32] {
        let begin = start as usize * self.unit;
        &self.values[begin..begin + self.dimensions()]
    }

    /// The newest `n` units, oldest first (fewer if fewer are stored).
    pub(crate) fn tail(&self, n: usize) -> &[f32] {
        let n = n.min(self.len_units());
        &self.values[self.values.len() - n * self.unit..]
    }

    /// Appends one unit and returns its index.
    ///
    /// The caller (the forest) compacts when [`needs_compaction`](Self::needs_compaction) says
    /// so; until then this may grow the arena past its nominal capacity without harm.
    pub(crate) fn push_unit(&mut self, unit: &[f32]) -> u32 {
        debug_assert_eq!(unit.len(), self.unit);
        let index = self.len_units();
        self.values.extend_from_slice(unit);
        index as u32
    }

    /// The arena's values, for a caller that may have to put them back
    /// ([`restore_values`](Self::restore_values)).
    pub(crate) fn values(&self) -> &[f32] {
        &self.values
    }

    /// Puts back values taken with [`values`](Self::values) (same length).
    pub(crate) fn restore_values(&mut self, values: &[f32]) {
        self.values.copy_from_slice(values);
    }

    /// Replaces every stored value `v` of input dimension `j` (its position in its unit) by
    /// `f(j, v)`.
    pub(crate) fn map_values(&mut self, f: impl Fn(usize, f32) -> f32) {
        for unit in self.values.chunks_exact_mut(self.unit) {
            for (j, v) in unit.iter_mut().enumerate() {
                *v = f(j, *v);
            }
        }
    }

    /// Index of the point made of the newest `units_per_point` units.
    #[inline]
    pub(crate) fn newest_point(&self) -> u32 {
        (self.len_units() - self.units_per_point) as u32
    }

    pub(crate) fn needs_compaction(&self) -> bool {
        self.len_units() >= self.capacity_units
    }

    /// Keeps only the units covered by the points in `live_starts` (which it sorts) and the
    /// newest `units_per_point - 1` units; returns a function mapping an old point index to the
    /// new one through `remap`, which the caller applies to every leaf.
    ///
    /// Allocates two temporary buffers; called rarely (amortised over `capacity / 3` updates).
    pub(crate) fn compact(&mut self, live_starts: &mut Vec<u32>) -> Remap {
        let len = self.len_units();
        let k = self.units_per_point;
        let mut keep = vec![false; len];
        for &s in live_starts.iter() {
            let s = s as usize;
            keep[s..s + k].iter_mut().for_each(|b| *b = true);
        }
        let tail = (k - 1).min(len);
        keep[len - tail..].iter_mut().for_each(|b| *b = true);

        let mut new_index = Vec::with_capacity(len);
        let mut next = 0u32;
        let mut write = 0usize;
        for (old, &kept) in keep.iter().enumerate() {
            new_index.push(next);
            if kept {
                if write != old {
                    let (src, dst) = (old * self.unit, write * self.unit);
                    self.values.copy_within(src..src + self.unit, dst);
                }
                write += 1;
                next += 1;
            }
        }
        self.values.truncate(write * self.unit);
        let live = write;
        let headroom = (live * HEADROOM_EIGHTHS / 8)
            .max(live_starts.len() / (4 * self.unit))
            .max(MIN_HEADROOM_UNITS);
        self.capacity_units = live + headroom;
        self.values.shrink_to(self.capacity_units * self.unit);
        let room = self.capacity_units * self.unit - self.values.len();
        self.values.reserve_exact(room);
        live_starts.clear();
        Remap { new_index }
    }

    /// Hints the cache to load the stored points (see `kernels::prefetch`).
    #[inline]
    pub(crate) fn prefetch(&self) {
        crate::kernels::prefetch(&self.values);
    }

    /// Bytes held (capacity, not length).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<f32>()
    }

    /// Checks the invariants a restored state must satisfy for `point` never to go out of
    /// bounds.
    pub(crate) fn check(&self, unit: usize, units_per_point: usize) -> Result<(), String> {
        if self.unit != unit || self.units_per_point != units_per_point {
            return Err(format!(
                "point store shape {}x{} does not match the configuration {}x{}",
                self.unit, self.units_per_point, unit, units_per_point
            ));
        }
        if !self.values.len().is_multiple_of(unit) {
            return Err("point store length is not a whole number of units".into());
        }
        if self.values.iter().any(|v| !v.is_finite()) {
            return Err("point store holds a non-finite value".into());
        }
        Ok(())
    }

    /// The saved form: the used part of the arena as a little-endian blob, and the capacity.
    pub(crate) fn to_state(&self) -> PointStoreState<'static> {
        PointStoreState {
            values: crate::bytes::Blob::packed(&self.values, f32::to_le_bytes),
            capacity_units: self.capacity_units as u64,
        }
    }

    /// The largest capacity (in units) a forest with `points` sampled points at most (all
    /// trees' samples plus the one an insert adds before its delete) can ever give its store:
    /// the initial capacity, or 1.5 × the largest live set after a compaction (each point
    /// covers `units_per_point` units, plus the tail of the next shingle). Builds before
    /// 2026-12-07 gave 1.5 × the live set; this one's headroom, an eighth of the live set or
    /// a quarter of the leaves, is never more (there are no more leaves than sampled points,
    /// and each covers at least one unit). A saved capacity above it did not come from this
    /// crate.
    pub(crate) fn max_capacity_units(units_per_point: usize, points: usize) -> usize {
        let k = units_per_point;
        let live = points.saturating_mul(k).saturating_add(k);
        let initial = (2 * points).saturating_add(k).max(MIN_HEADROOM_UNITS);
        live.saturating_add((live / 2).max(MIN_HEADROOM_UNITS))
            .max(initial)
    }

    /// Restores a store of the given shape, holding at most `max_points` sampled points;
    /// [`check`](Self::check) validates the values before use.
    ///
    /// Everything is checked before anything is allocated: the blob must be whole units, and
    /// the saved capacity at most [`max_capacity_units`](Self::max_capacity_units), so crafted
    /// lengths cannot exhaust memory, overflow, or underflow.
    pub(crate) fn from_state(
        state: PointStoreState<'_>,
        unit: usize,
        units_per_point: usize,
        max_points: usize,
    ) -> Result<Self, String> {
        let raw = state.values.bytes();
        let unit_bytes = unit * 4;
        if !raw.len().is_multiple_of(unit_bytes) {
            return Err(format!(
                "point store of {} bytes is not a whole number of {unit}-value units",
                raw.len()
            ));
        }
        let len_units = raw.len() / unit_bytes;
        let limit = Self::max_capacity_units(units_per_point, max_points);
        let capacity_units = usize::try_from(state.capacity_units)
            .ok()
            .filter(|&c| c <= limit)
            .ok_or_else(|| {
                format!(
                    "point store capacity {} units is more than this configuration can use ({limit})",
                    state.capacity_units
                )
            })?;
        if len_units > limit {
            return Err(format!(
                "point store holds {len_units} units, more than this configuration can use ({limit})"
            ));
        }
        let capacity_units = capacity_units.max(len_units).max(MIN_HEADROOM_UNITS);
        let mut values = Vec::new();
        values
            .try_reserve_exact(capacity_units * unit)
            .map_err(|_| {
                format!("cannot reserve a point store capacity of {capacity_units} units")
            })?;
        values.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        Ok(Self {
            unit,
            units_per_point,
            values,
            capacity_units,
        })
    }

    /// Whether `start` names a whole point inside the arena.
    pub(crate) fn is_valid_start(&self, start: u32) -> bool {
        (start as usize) + self.units_per_point <= self.len_units()
    }
}

/// A point store's saved form (see `state.rs`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PointStoreState<'a> {
    #[serde(borrow)]
    values: crate::bytes::Blob<'a>,
    capacity_units: u64,
}

impl PointStoreState<'_> {
    /// Bytes of its blob.
    pub(crate) fn len(&self) -> usize {
        self.values.bytes().len()
    }

    /// Sets the saved capacity, for tests that craft states.
    #[cfg(test)]
    pub(crate) fn set_capacity_units(&mut self, capacity_units: u64) {
        self.capacity_units = capacity_units;
    }
}

/// Old → new point index after a compaction.
pub(crate) struct Remap {
    new_index: Vec<u32>,
}

impl Remap {
    #[inline]
    pub(crate) fn apply(&self, start: u32) -> u32 {
        self.new_index[start as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(values: &[f32], capacity_units: u64) -> PointStoreState<'static> {
        PointStoreState {
            values: crate::bytes::Blob::packed(values, f32::to_le_bytes),
            capacity_units,
        }
    }

    #[test]
    fn restore_refuses_capacities_and_lengths_no_forest_could_save() {
        let limit = PointStore::max_capacity_units(2, 100);
        assert!(PointStore::from_state(saved(&[1.0; 8], limit as u64), 2, 2, 100).is_ok());
        for capacity in [limit as u64 + 1, 1 << 34, 1 << 61, u64::MAX] {
            let e = PointStore::from_state(saved(&[1.0; 8], capacity), 2, 2, 100).unwrap_err();
            assert!(e.contains("capacity"), "{e}");
        }
        // a blob that is not whole units (the underflow of `capacity * unit - len`)
        let e = PointStore::from_state(saved(&[1.0; 7], 300), 2, 2, 100).unwrap_err();
        assert!(e.contains("whole number"), "{e}");
        // more units than any sample could hold
        let e =
            PointStore::from_state(saved(&vec![0.0; 2 * (limit + 1)], 0), 2, 2, 100).unwrap_err();
        assert!(e.contains("holds"), "{e}");
    }

    #[test]
    fn shingled_points_share_units() {
        let mut s = PointStore::new(1, 3, 16);
        for v in 0..5 {
            s.push_unit(&[v as f32]);
        }
        assert_eq!(s.newest_point(), 2);
        assert_eq!(s.point(2), &[2.0, 3.0, 4.0]);
        assert_eq!(s.point(0), &[0.0, 1.0, 2.0]);
        assert_eq!(s.tail(2), &[3.0, 4.0]);
    }

    #[test]
    fn compaction_keeps_live_points_and_tail() {
        let mut s = PointStore::new(2, 2, 4);
        for v in 0..10 {
            s.push_unit(&[v as f32, -(v as f32)]);
        }
        let before_1 = s.point(1).to_vec();
        let before_6 = s.point(6).to_vec();
        let mut live = vec![6, 1];
        let remap = s.compact(&mut live);
        // units 1,2 and 6,7 kept, plus the newest unit 9
        assert_eq!(s.len_units(), 5);
        assert_eq!(s.point(remap.apply(1)), &before_1[..]);
        assert_eq!(s.point(remap.apply(6)), &before_6[..]);
        assert_eq!(s.tail(1), &[9.0, -9.0]);
        assert!(s.memory_bytes() >= s.len_units() * 2 * 4);
    }

    #[test]
    fn overlapping_live_points_are_stored_once() {
        let mut s = PointStore::new(1, 4, 4);
        for v in 0..20 {
            s.push_unit(&[v as f32]);
        }
        let mut live = vec![3, 4, 5];
        let remap = s.compact(&mut live);
        // units 3..=8 (6 units) + newest 3 units 17..=19
        assert_eq!(s.len_units(), 9);
        assert_eq!(s.point(remap.apply(5)), &[5.0, 6.0, 7.0, 8.0]);
    }
}
