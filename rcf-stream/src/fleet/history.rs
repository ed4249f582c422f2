//! Metric history chunks: how the store keeps datapoints compactly.
//!
//! A fleet reports every few minutes per thing and metric, so a row per datapoint would make
//! the history B-tree the engine's main cost (measured: 6 µs of SQLite insert per datapoint
//! against 1 µs for everything else). The store therefore keeps one row per thing, metric,
//! hour of event time and write: the datapoints of that hour that arrived since the last
//! commit, packed into a blob. At five-minute datapoints that is twelve datapoints a row.
//!
//! Entry layout (all integers LEB128 varints):
//!
//! | field | bytes |
//! |---|---|
//! | tag: bits 0-2 the value's member (0 count, 1 number, 2 numbers, 3 strings, 4 cidrs, 5 ports), bit 3 a topic follows | 1 |
//! | milliseconds since the chunk's hour began | varint |
//! | sequence number minus the previous entry's (the first: minus the row's) | varint |
//! | value: a count (varint), a number (8 bytes, little-endian `f64`), or a list: its length, then each number (8 bytes), string or CIDR block (length + UTF-8), or port (varint) | |
//! | topic, if tagged: length + UTF-8 | |
//!
//! Decoding checks every length and kind: a corrupt or crafted blob is an error, never a
//! panic.

use super::value::MetricValue;

/// The span of event time one history row covers (an hour, epoch-aligned).
pub(crate) const CHUNK_MS: i64 = 3_600_000;

const KIND_COUNT: u8 = 0;
const KIND_NUMBER: u8 = 1;
const KIND_NUMBERS: u8 = 2;
const KIND_STRINGS: u8 = 3;
const KIND_CIDRS: u8 = 4;
const KIND_PORTS: u8 = 5;
const KIND_MASK: u8 = 7;
const HAS_TOPIC: u8 = 8;

/// A hasher for the store's own integer keys (ids it assigned, hours), never for text a
/// device sent: one multiply per word, where SipHash cost as much as the history write.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // the multiply mixes into the high bits; hash tables index by the low ones
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(SEED);
    }

    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
}

/// A hash map keyed by the store's own integers.
pub(crate) type IdMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// One datapoint read back from the history.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistoryRow {
    /// Event time, epoch ms.
    pub(crate) ts: i64,
    /// Arrival order (the engine's datapoint count when it was ingested).
    pub(crate) seq: i64,
    /// The MQTT topic, if the datapoint had one.
    pub(crate) topic: Option<String>,
    /// The value.
    pub(crate) value: MetricValue,
}

/// The datapoints of one thing, metric and hour not yet written: one row at the next commit.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    /// The first entry's sequence number (part of the row's key).
    pub(crate) first_seq: i64,
    last_seq: i64,
    /// How many entries.
    pub(crate) len: u32,
    /// The encoded entries.
    pub(crate) data: Vec<u8>,
}

impl Chunk {
    /// An empty chunk whose first entry will have sequence number `seq`.
    pub(crate) fn new(seq: i64) -> Self {
        Chunk {
            first_seq: seq,
            last_seq: seq,
            len: 0,
            data: Vec::with_capacity(64),
        }
    }

    /// The last entry's sequence number.
    pub(crate) fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// Appends a datapoint at `ts` (inside the chunk's hour) with a sequence number not
    /// below the last one's.
    pub(crate) fn push(&mut self, ts: i64, seq: i64, topic: Option<&str>, value: &MetricValue) {
        debug_assert!(seq >= self.last_seq, "sequence numbers only grow");
        let kind = match value {
            MetricValue::Count(_) => KIND_COUNT,
            MetricValue::Number(_) => KIND_NUMBER,
            MetricValue::Numbers(_) => KIND_NUMBERS,
            MetricValue::Strings(_) => KIND_STRINGS,
            MetricValue::Cidrs(_) => KIND_CIDRS,
            MetricValue::Ports(_) => KIND_PORTS,
        };
        let tag = kind | if topic.is_some() { HAS_TOPIC } else { 0 };
        let d = &mut self.data;
        d.push(tag);
        put_varint(d, ts.rem_euclid(CHUNK_MS) as u64);
        put_varint(d, (seq - self.last_seq) as u64);
        self.last_seq = seq;
        match value {
            MetricValue::Count(c) => put_varint(d, *c),
            MetricValue::Number(x) => d.extend_from_slice(&x.to_le_bytes()),
            MetricValue::Numbers(v) => {
                put_varint(d, v.len() as u64);
                for x in v {
                    d.extend_from_slice(&x.to_le_bytes());
                }
            }
            MetricValue::Strings(v) => {
                put_varint(d, v.len() as u64);
                for x in v {
                    put_bytes(d, x.as_bytes());
                }
            }
            MetricValue::Cidrs(v) => {
                put_varint(d, v.len() as u64);
                for x in v {
                    put_bytes(d, x.to_string().as_bytes());
                }
            }
            MetricValue::Ports(v) => {
                put_varint(d, v.len() as u64);
                for x in v {
                    put_varint(d, u64::from(*x));
                }
            }
        }
        if let Some(t) = topic {
            put_bytes(d, t.as_bytes());
        }
        self.len += 1;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads through an encoded chunk, failing on anything out of bounds.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .data
            .get(self.at)
            .ok_or_else(|| format!("history entry cut short at byte {}", self.at))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(format!("history varint too long at byte {}", self.at))
    }

    fn bytes(&mut self) -> Result<&[u8], String> {
        let n = self.varint()?;
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("history length {n} at byte {} is past the end", self.at))?;
        let b = &self.data[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn f64(&mut self) -> Result<f64, String> {
        let end = self.at + 8;
        let b = self
            .data
            .get(self.at..end)
            .ok_or_else(|| format!("history number cut short at byte {}", self.at))?;
        self.at = end;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A length, then that many items; the length is checked against the bytes left (each
    /// item takes at least one) before anything is allocated.
    fn list<T>(&mut self, item: impl Fn(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        let n = self.varint()?;
        let left = (self.data.len() - self.at) as u64;
        if n > left {
            return Err(format!(
                "history list of {n} items at byte {} is past the end",
                self.at
            ));
        }
        (0..n).map(|_| item(self)).collect()
    }

    fn text(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| "history text is not UTF-8".to_string())
    }
}

/// Decodes a row of `len` entries for the hour `hour` (a multiple of [`CHUNK_MS`] divided by
/// it) whose first sequence number is `first_seq`, appending to `out`.
///
/// # Errors
///
/// The blob does not hold `len` well-formed entries.
pub(crate) fn decode(
    hour: i64,
    first_seq: i64,
    len: i64,
    data: &[u8],
    out: &mut Vec<HistoryRow>,
) -> Result<(), String> {
    let base = hour
        .checked_mul(CHUNK_MS)
        .ok_or_else(|| format!("history hour {hour} is out of range"))?;
    let mut r = Reader { data, at: 0 };
    let mut seq = first_seq;
    for _ in 0..len {
        let tag = r.byte()?;
        if tag & !(HAS_TOPIC | KIND_MASK) != 0 {
            return Err(format!("history tag {tag:#x} is not one this rcf writes"));
        }
        let offset = r.varint()?;
        if offset >= CHUNK_MS as u64 {
            return Err(format!("history offset {offset} ms is past its hour"));
        }
        let step = r.varint()?;
        seq = i64::try_from(step)
            .ok()
            .and_then(|s| seq.checked_add(s))
            .ok_or_else(|| format!("history sequence step {step} overflows"))?;
        let value = match tag & KIND_MASK {
            KIND_COUNT => MetricValue::Count(r.varint()?),
            KIND_NUMBER => MetricValue::Number(r.f64()?),
            KIND_NUMBERS => MetricValue::Numbers(r.list(|r| r.f64())?),
            KIND_STRINGS => MetricValue::Strings(r.list(|r| r.text())?),
            KIND_CIDRS => MetricValue::Cidrs(r.list(|r| {
                let t = r.text()?;
                t.parse()
                    .map_err(|_| format!("history CIDR block {t:?} does not parse"))
            })?),
            KIND_PORTS => MetricValue::Ports(r.list(|r| {
                let p = r.varint()?;
                u16::try_from(p).map_err(|_| format!("history port {p} is out of range"))
            })?),
            k => return Err(format!("history value kind {k} is not one this rcf writes")),
        };
        let topic = if tag & HAS_TOPIC != 0 {
            Some(r.text()?)
        } else {
            None
        };
        let ts = base
            .checked_add(offset as i64)
            .ok_or_else(|| format!("history hour {hour} is out of range"))?;
        out.push(HistoryRow {
            ts,
            seq,
            topic,
            value,
        });
    }
    if r.at != data.len() {
        return Err(format!(
            "history row has {} bytes after its {len} entries",
            data.len() - r.at
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let hour = 490_000;
        let t0 = hour * CHUNK_MS;
        let mut c = Chunk::new(7);
        let values = [
            (t0, 7, None, MetricValue::Count(u64::MAX)),
            (t0 + 299_999, 9, Some("a/b"), MetricValue::Number(-0.5)),
            (
                t0 + CHUNK_MS - 1,
                1_000_000,
                Some(""),
                MetricValue::Ports(vec![22, 443]),
            ),
        ];
        for (ts, seq, topic, v) in &values {
            c.push(*ts, *seq, *topic, v);
        }
        let mut out = Vec::new();
        decode(hour, c.first_seq, i64::from(c.len), &c.data, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].value, MetricValue::Count(u64::MAX));
        assert_eq!((out[1].ts, out[1].seq), (t0 + 299_999, 9));
        assert_eq!(out[1].topic.as_deref(), Some("a/b"));
        assert_eq!(out[1].value, MetricValue::Number(-0.5));
        assert_eq!(out[2].seq, 1_000_000);
        assert_eq!(out[2].value, MetricValue::Ports(vec![22, 443]));
        assert_eq!(out[2].topic.as_deref(), Some(""));
        // every member
        let lists = [
            MetricValue::Numbers(vec![1.5, f64::MIN_POSITIVE]),
            MetricValue::Strings(vec!["a".into(), "".into(), "é".into()]),
            MetricValue::Cidrs(vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()]),
            MetricValue::Ports(vec![]),
        ];
        let mut c = Chunk::new(1);
        for (i, v) in lists.iter().enumerate() {
            c.push(t0 + i as i64, 1 + i as i64, None, v);
        }
        let mut out = Vec::new();
        decode(hour, 1, 4, &c.data, &mut out).unwrap();
        let got: Vec<_> = out.into_iter().map(|r| r.value).collect();
        assert_eq!(got, lists);
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() {
        let mut c = Chunk::new(1);
        c.push(5, 1, Some("t"), &MetricValue::Strings(vec!["x".into()]));
        c.push(6, 2, None, &MetricValue::Number(1.0));
        let good = c.data.clone();
        let mut out = Vec::new();
        // every truncation, every single-byte change, and a wrong count: no panic
        for cut in 0..good.len() {
            assert!(
                decode(0, 1, 2, &good[..cut], &mut out).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..good.len() {
            for b in [0u8, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = decode(0, 1, 2, &bad, &mut out);
            }
        }
        assert!(decode(0, 1, 3, &good, &mut out).is_err());
        assert!(decode(0, 1, 1, &good, &mut out).is_err());
        assert!(decode(i64::MAX, 1, 2, &good, &mut out).is_err());
        assert!(decode(0, i64::MAX, 2, &good, &mut out).is_err());
        assert!(decode(0, 1, 0, &[], &mut out).is_ok());
    }
}
