//! The engine's store: SQLite (bundled, nothing to install), a file or in memory. It holds
//! metric history, violation events, active violations, thing groups and the engine's own state
//! (windows, alarm streaks, detector checkpoints), written in one transaction per batch so a
//! process killed at any moment restarts from the last committed batch.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::history::{self, CHUNK_MS, Chunk, HistoryRow, IdMap};
use super::value::MetricValue;

/// `PRAGMA application_id` of an rcf fleet store (`rcf1`): a SQLite file without it is not ours.
const APPLICATION_ID: i32 = 0x7263_6631;
/// The schema version (`PRAGMA user_version`). Older stores are migrated when opened:
/// version 1 (a row per datapoint) to history chunks, version 2 gains the `models` table,
/// version 3 the response tables (outbox, adjustments, incidents, mitigation tasks), and the
/// `models` table of versions 3 and 4 is rebuilt as a rowid table (its key an index of its own),
/// and version 5 gains the `model_logs` table and, per checkpoint, what it had learned and
/// where its log starts.
pub const SCHEMA_VERSION: i32 = 6;

/// A store error: what failed, and SQLite's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {path}: {reason}")]
pub struct StoreError {
    /// The store's path (`:memory:` for an in-memory store).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE violation_events (
    seq INTEGER PRIMARY KEY, violation_id TEXT NOT NULL, event_type TEXT NOT NULL,
    thing TEXT NOT NULL, profile TEXT NOT NULL, behavior TEXT NOT NULL,
    criteria_type TEXT NOT NULL, time INTEGER NOT NULL, suppressed INTEGER NOT NULL,
    verification_state TEXT NOT NULL, json TEXT NOT NULL,
    UNIQUE (violation_id, event_type));
CREATE INDEX violation_events_by_id ON violation_events (violation_id);
CREATE INDEX violation_events_by_time ON violation_events (time);
CREATE TABLE active_violations (
    violation_id TEXT PRIMARY KEY, thing TEXT NOT NULL, profile TEXT NOT NULL,
    behavior TEXT NOT NULL, criteria_type TEXT NOT NULL, suppressed INTEGER NOT NULL,
    verification_state TEXT NOT NULL, start_time INTEGER NOT NULL, last_time INTEGER NOT NULL,
    last_value TEXT, behavior_json TEXT NOT NULL);
CREATE TABLE thing_state (thing TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE thing_groups (grp TEXT NOT NULL, thing TEXT NOT NULL, PRIMARY KEY (grp, thing));
";

/// The history table (schema 2; also what a version 1 store is migrated to).
const METRIC_CHUNKS: &str = "
CREATE TABLE metric_chunks (
    thing INTEGER NOT NULL, metric INTEGER NOT NULL, hour INTEGER NOT NULL, seq INTEGER NOT NULL,
    len INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (hour, thing, metric, seq)) WITHOUT ROWID;
";

/// Checkpoints of ML models (schema 3), one per (thing, profile, behaviour): written when the
/// engine's memory budget evicts a model, and by commits (every `model_checkpoint_ms`; the
/// rows learned in between go to `model_logs`); read back at the model's next use, replaced at
/// its next eviction or checkpoint, deleted with its slot.
///
/// A rowid table (schema 5; schemas 3 and 4 made it `WITHOUT ROWID`): its key is an index of
/// its own, apart from the checkpoints. In a `WITHOUT ROWID` table each key lives in the same
/// record as its checkpoint (about 72 KB, spilling onto overflow pages), and SQLite reads a
/// whole overflowing record to compare its key while it seeks: a lookup read several
/// checkpoints to find one (a fifth of a budgeted fleet's time, BENCHMARKS.md).
const MODELS: &str = "
CREATE TABLE models (
    thing TEXT NOT NULL, profile TEXT NOT NULL, behavior TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (thing, profile, behavior));
";

/// Schema 6, per checkpoint: what it had learned (`seen` datapoints of the `needed` to be
/// warm), for training summaries of models not in memory, and `log_from`, the engine's commit
/// it belongs to (its log is the entries of later commits).
const MODELS_LEARNED: &str = "
ALTER TABLE models ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN needed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN log_from INTEGER NOT NULL DEFAULT 0;
";

/// What checkpointed models learned after their checkpoints (schema 6): per engine commit
/// `seq`, one entry per model that learned something since the commit before, `rows` the
/// feature rows it processed (little-endian `f32`s), `first` how many rows of its log come
/// before them. A model is its checkpoint in `models` with the entries of the commits after
/// its `log_from` replayed in order. Keyed by commit first, so that a commit's entries are
/// appended together rather than spread over the table; entries no checkpoint needs are
/// deleted in bulk. A commit then writes a few bytes per window for most models instead of
/// the whole checkpoint (the engine's `model_checkpoint_ms`).
const MODEL_LOGS: &str = "
CREATE TABLE model_logs (
    seq INTEGER NOT NULL, thing TEXT NOT NULL, profile TEXT NOT NULL, behavior TEXT NOT NULL,
    first INTEGER NOT NULL, rows BLOB NOT NULL,
    PRIMARY KEY (seq, thing, profile, behavior)) WITHOUT ROWID;
";

/// A model log entry as stored: (commit, thing, profile, behaviour, rows before it, rows).
pub(crate) type LogEntry = (i64, String, String, String, i64, Vec<u8>);

/// A model checkpoint's key (thing, profile, behaviour), what it had learned (datapoints
/// seen, needed to be warm) and the commit it belongs to.
pub(crate) type ModelKey = (String, String, String, (u64, u64), i64);

/// A count as SQLite's integer (saturating).
fn sql_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The response side (schema 4). `outbox`: what each sink is owed, one row per (sink,
/// object), written in the transaction that records the object and marked `sent` once the
/// sink acknowledged it (`gated`: stored, never sent: `suppressAlerts` or a mute).
/// `adjustments`: the append-only record of verification labels and the feedback they
/// caused. `incidents` and `mitigation_tasks`: their JSON documents.
const RESPONSE: &str = "
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, sink TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL,
    json TEXT NOT NULL, time INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    UNIQUE (sink, key));
CREATE INDEX outbox_due ON outbox (sink, state, id);
CREATE TABLE adjustments (
    id INTEGER PRIMARY KEY, json TEXT NOT NULL, reverted_by INTEGER);
CREATE TABLE incidents (id TEXT PRIMARY KEY, open INTEGER NOT NULL, json TEXT NOT NULL);
CREATE TABLE mitigation_tasks (
    task_id TEXT PRIMARY KEY, token TEXT, state TEXT NOT NULL, json TEXT NOT NULL);
CREATE INDEX mitigation_tasks_by_state ON mitigation_tasks (state);
CREATE INDEX mitigation_tasks_by_token ON mitigation_tasks (token);
";

/// Writes one history row.
const INSERT_CHUNK: &str = "INSERT INTO metric_chunks (thing, metric, hour, seq, len, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The SQLite store.
pub struct Store {
    conn: Connection,
    /// Thing and metric names → their ids in `names` (metric history keys on integers: one
    /// B-tree of small keys instead of a table and an index of strings).
    ids: std::collections::HashMap<Box<str>, i64, foldhash::fast::RandomState>,
    /// Metric history not yet written, one chunk per (thing id, metric id, hour): written in
    /// key order at the next commit or read (sorted inserts touch each B-tree page once).
    pending: IdMap<(i64, i64, i64), Chunk>,
    path: String,
    in_tx: bool,
    durable: bool,
    /// No metric history is older than this (a lower bound; `None`: none at all), so that a
    /// read of a range before it (every new thing's training at the start of a fleet) costs
    /// no query.
    history_from: Option<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// One stored violation event row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRow<'a> {
    pub(crate) violation_id: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) thing: &'a str,
    pub(crate) profile: &'a str,
    pub(crate) behavior: &'a str,
    pub(crate) criteria_type: &'a str,
    pub(crate) time: i64,
    pub(crate) suppressed: bool,
    pub(crate) json: &'a str,
}

/// Moves a version 1 store's history (a row per datapoint) into chunks, in one transaction.
fn migrate_v1(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(&format!("BEGIN; {METRIC_CHUNKS}"))?;
    let result = (|| {
        let mut chunks: Vec<((i64, i64, i64), Chunk)> = Vec::new();
        {
            let mut st = c.prepare(
                "SELECT thing, metric, ts, seq, topic, num, value FROM metric_values \
                 ORDER BY thing, metric, ts, seq",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let (t, m, ts, seq): (i64, i64, i64, i64) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                let topic: Option<String> = r.get(4)?;
                let num: Option<f64> = r.get(5)?;
                let text: Option<String> = r.get(6)?;
                // version 1: a count had no text, a number the text "n", a list its JSON
                let value = match (num, text.as_deref()) {
                    (Some(x), None) => MetricValue::Count(x as u64),
                    (Some(x), Some(_)) => MetricValue::Number(x),
                    (None, Some(t)) => serde_json::from_str(t)
                        .ok()
                        .and_then(|v| MetricValue::from_json(&v).ok())
                        .unwrap_or(MetricValue::Strings(Vec::new())),
                    (None, None) => continue,
                };
                let key = (t, m, ts.div_euclid(CHUNK_MS));
                // rows come in time order; a chunk's sequence numbers must grow
                match chunks.last_mut() {
                    Some((k, ch)) if *k == key && seq >= ch.last_seq() => {
                        ch.push(ts, seq, topic.as_deref(), &value)
                    }
                    _ => {
                        let mut ch = Chunk::new(seq);
                        ch.push(ts, seq, topic.as_deref(), &value);
                        chunks.push((key, ch));
                    }
                }
            }
        }
        let mut st = c.prepare(INSERT_CHUNK)?;
        for ((t, m, hour), ch) in &chunks {
            st.execute(params![t, m, hour, ch.first_seq, ch.len, ch.data])?;
        }
        c.execute_batch("DROP TABLE metric_values; PRAGMA user_version = 2; COMMIT;")
    })();
    if result.is_err() {
        let _ = c.execute_batch("ROLLBACK");
    }
    result
}

impl Store {
    /// Opens (creating if needed) the store at `path`, or an in-memory store.
    ///
    /// # Errors
    ///
    /// The file is not SQLite, is another program's database, or has a newer schema.
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let name = path.map_or(":memory:".to_string(), |p| p.display().to_string());
        let fail = |reason: String| StoreError {
            path: name.clone(),
            reason,
        };
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut store = Store {
            ids: Default::default(),
            pending: IdMap::default(),
            conn,
            path: name.clone(),
            in_tx: false,
            durable: path.is_some(),
            history_from: None,
        };
        store.init().map_err(fail)?;
        store.history_from = store.first_hour().map_err(|e| fail(e.to_string()))?;
        Ok(store)
    }

    /// Restores an in-memory store from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let fail = |reason: String| StoreError {
            path: ":memory:".into(),
            reason,
        };
        let mut conn = Connection::open_in_memory().map_err(|e| fail(e.to_string()))?;
        // a file store's bytes say WAL mode (header bytes 18 and 19 are 2), which an
        // in-memory database cannot open: they become the rollback journal's 1
        let mut owned;
        let bytes = if bytes.len() >= 100 && bytes[18] == 2 && bytes[19] == 2 {
            owned = bytes.to_vec();
            owned[18] = 1;
            owned[19] = 1;
            &owned[..]
        } else {
            bytes
        };
        conn.deserialize_read_exact(rusqlite::MAIN_DB, bytes, bytes.len(), false)
            .map_err(|e| fail(format!("not a store: {e}")))?;
        let mut store = Store {
            ids: Default::default(),
            pending: IdMap::default(),
            conn,
            path: ":memory:".into(),
            in_tx: false,
            durable: false,
            history_from: None,
        };
        store.init().map_err(fail)?;
        store.history_from = store.first_hour().map_err(|e| fail(e.to_string()))?;
        Ok(store)
    }

    /// The whole database as bytes (SQLite's own file format).
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        match self.conn.serialize(rusqlite::MAIN_DB) {
            Ok(d) => Ok(d.to_vec()),
            Err(e) => Err(StoreError {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn init(&mut self) -> Result<(), String> {
        let c = &self.conn;
        let app: i32 = c
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| format!("not a SQLite database ({e})"))?;
        let version: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        let tables: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| format!("not a SQLite database ({e})"))?;
        if app == 0 && tables == 0 {
            // 16 KiB pages (set before the first table): a model's checkpoint, about 72 KB,
            // then spans 5 overflow pages instead of 18
            c.execute_batch(&format!(
                "PRAGMA page_size = 16384; BEGIN; {SCHEMA} {METRIC_CHUNKS} {MODELS} {MODELS_LEARNED} {MODEL_LOGS} {RESPONSE} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| format!("cannot create the schema: {e}"))?;
        } else if app != APPLICATION_ID {
            return Err(format!(
                "is a SQLite database of another program (application_id {app:#x}, {tables} tables), not an rcf fleet store"
            ));
        } else if (1..SCHEMA_VERSION).contains(&version) {
            if version == 1 {
                migrate_v1(c).map_err(|e| format!("cannot migrate schema version 1: {e}"))?;
            }
            if version <= 2 {
                // today's definition: nothing to rebuild below
                c.execute_batch(&format!("BEGIN; {MODELS} PRAGMA user_version = 3; COMMIT;"))
                    .map_err(|e| format!("cannot migrate schema version 2: {e}"))?;
            }
            if version <= 3 {
                c.execute_batch(&format!(
                    "BEGIN; {RESPONSE} CREATE INDEX violation_events_by_id ON violation_events (violation_id); \
                     PRAGMA user_version = 4; COMMIT;"
                ))
                .map_err(|e| format!("cannot migrate schema version 3: {e}"))?;
            }
            if (3..=4).contains(&version) {
                // the checkpoints move to a rowid table of the same name and columns
                c.execute_batch(&format!(
                    "BEGIN; ALTER TABLE models RENAME TO models_v4; {MODELS} \
                     INSERT INTO models (thing, profile, behavior, state) \
                     SELECT thing, profile, behavior, state FROM models_v4; DROP TABLE models_v4; \
                     PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(|e| format!("cannot migrate schema version 4: {e}"))?;
            }
            // (stores that were at 2 or below already have schema 5's `models` table)
            c.execute_batch(&format!(
                "BEGIN; {MODELS_LEARNED} {MODEL_LOGS} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| format!("cannot migrate schema version 5: {e}"))?;
            c.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
                .map_err(|e| format!("cannot set the schema version: {e}"))?;
        } else if version != SCHEMA_VERSION {
            return Err(format!(
                "has schema version {version}; this rcf reads version {SCHEMA_VERSION}"
            ));
        }
        if self.durable {
            // WAL: a killed process loses at most its open transaction; NORMAL sync is safe
            // against process crashes (an OS crash may lose the last commits, never corrupt)
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .map_err(|e| format!("cannot set the journal mode: {e}"))?;
        }
        Ok(())
    }

    /// The start of the first hour of stored history.
    fn first_hour(&self) -> rusqlite::Result<Option<i64>> {
        let hour: Option<i64> =
            self.conn
                .query_row("SELECT min(hour) FROM metric_chunks", [], |r| r.get(0))?;
        Ok(hour.map(|h| h.saturating_mul(CHUNK_MS)))
    }

    fn error(&self, e: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// The store's path, or `:memory:`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the store is a file (engine state is saved at each commit only then).
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Opens the batch's transaction if none is open.
    pub(crate) fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_tx {
            // IMMEDIATE: the write lock now (waiting up to the busy timeout for another
            // process, e.g. `rcf fleet verify` beside `rcf fleet serve`), so that a
            // transaction that reads first never fails to upgrade on a stale snapshot
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| self.error(e))?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Commits the open transaction.
    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        self.flush_metrics()?;
        if self.in_tx {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| self.error(e))?;
            self.in_tx = false;
        }
        Ok(())
    }

    /// Rolls the open transaction back.
    pub(crate) fn rollback(&mut self) {
        if self.in_tx {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.in_tx = false;
            // names added in the transaction are gone
            self.ids.clear();
            self.pending.clear();
        }
    }

    /// The id of a thing or metric name, added if new.
    fn name_id(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        self.begin()?;
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO names (name) VALUES (?1)")
            .and_then(|mut st| st.execute(params![name]))
            .map_err(|e| self.error(e))?;
        let id = self.known_id(name)?.expect("inserted");
        self.ids.insert(name.into(), id);
        Ok(id)
    }

    /// The id of a name already stored.
    fn known_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(Some(id));
        }
        self.conn
            .prepare_cached("SELECT id FROM names WHERE name = ?1")
            .and_then(|mut st| st.query_row(params![name], |r| r.get(0)).optional())
            .map_err(|e| self.error(e))
    }

    /// Stores one datapoint; `seq` orders datapoints (it only grows).
    pub(crate) fn insert_metric(
        &mut self,
        thing: &str,
        metric: &str,
        ts: i64,
        seq: u64,
        topic: Option<&str>,
        value: &MetricValue,
    ) -> Result<(), StoreError> {
        let (t, m) = (self.name_id(thing)?, self.name_id(metric)?);
        self.history_from = Some(self.history_from.map_or(ts, |f| f.min(ts)));
        let seq = seq as i64;
        self.pending
            .entry((t, m, ts.div_euclid(CHUNK_MS)))
            .or_insert_with(|| Chunk::new(seq))
            .push(ts, seq, topic, value);
        Ok(())
    }

    /// Writes the pending metric history, in key order.
    pub(crate) fn flush_metrics(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let mut rows: Vec<_> = self.pending.drain().collect();
        // time-major keys: a commit's rows go to the right end of the B-tree (the hours just
        // seen), so it touches few pages (thing-major keys touched every page of the history
        // at every commit, and the journal copied them)
        rows.sort_unstable_by_key(|((t, m, hour), _)| (*hour, *t, *m));
        let fail = |e: rusqlite::Error| StoreError {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut st = self.conn.prepare_cached(INSERT_CHUNK).map_err(fail)?;
        for ((t, m, hour), c) in &rows {
            st.execute(params![t, m, hour, c.first_seq, c.len, c.data])
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Stored datapoints of `thing` and `metric` with `from <= ts < to`, in time order (then
    /// arrival order).
    pub(crate) fn metric_values(
        &mut self,
        thing: &str,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        if self.history_from.is_none_or(|first| first >= to) {
            return Ok(Vec::new());
        }
        self.flush_metrics()?;
        let (Some(t), Some(m)) = (self.known_id(thing)?, self.known_id(metric)?) else {
            return Ok(Vec::new());
        };
        if from >= to {
            return Ok(Vec::new());
        }
        // one seek per hour of the range that holds any history
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            .query_row("SELECT min(hour), max(hour) FROM metric_chunks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.error(e))?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(Vec::new());
        };
        let h0 = from.div_euclid(CHUNK_MS).max(lo);
        let h1 = (to - 1).div_euclid(CHUNK_MS).min(hi);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, len, data FROM metric_chunks WHERE hour = ?1 AND thing = ?2 AND metric = ?3",
            )
            .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for hour in h0..=h1 {
            let mut rows = st.query(params![hour, t, m]).map_err(|e| self.error(e))?;
            while let Some(r) = rows.next().map_err(|e| self.error(e))? {
                let (seq, len) = (
                    r.get(0).map_err(|e| self.error(e))?,
                    r.get(1).map_err(|e| self.error(e))?,
                );
                let data = r.get_ref(2).map_err(|e| self.error(e))?;
                let data = data.as_blob().map_err(|e| self.error(e.into()))?;
                history::decode(hour, seq, len, data, &mut out).map_err(|reason| StoreError {
                    path: self.path.clone(),
                    reason: format!("metric history of {thing} / {metric}: {reason}"),
                })?;
            }
        }
        out.retain(|r| (from..to).contains(&r.ts));
        out.sort_by_key(|r| (r.ts, r.seq));
        Ok(out)
    }

    /// Stores an event; `false` if it was stored before (a replay: same id and type).
    pub(crate) fn insert_event(&mut self, e: &EventRow<'_>) -> Result<bool, StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO violation_events (violation_id, event_type, thing, profile, behavior, \
                 criteria_type, time, suppressed, verification_state, json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'UNKNOWN', ?9)",
            )
            .map_err(|e| self.error(e))?;
        st.execute(params![
            e.violation_id,
            e.event_type,
            e.thing,
            e.profile,
            e.behavior,
            e.criteria_type,
            e.time,
            e.suppressed,
            e.json
        ])
        .map(|n| n > 0)
        .map_err(|e| self.error(e))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_active(
        &mut self,
        id: &str,
        thing: &str,
        profile: &str,
        behavior: &str,
        criteria_type: &str,
        suppressed: bool,
        start: i64,
        last: i64,
        last_value: Option<&str>,
        behavior_json: &str,
    ) -> Result<(), StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO active_violations (violation_id, thing, profile, behavior, criteria_type, \
                 suppressed, verification_state, start_time, last_time, last_value, behavior_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'UNKNOWN', ?7, ?8, ?9, ?10) \
                 ON CONFLICT (violation_id) DO UPDATE SET last_time = ?8, last_value = ?9",
            )
            .map_err(|e| self.error(e))?;
        st.execute(params![
            id,
            thing,
            profile,
            behavior,
            criteria_type,
            suppressed,
            start,
            last,
            last_value,
            behavior_json
        ])
        .map(|_| ())
        .map_err(|e| self.error(e))
    }

    pub(crate) fn delete_active(&mut self, id: &str) -> Result<(), StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached("DELETE FROM active_violations WHERE violation_id = ?1")
            .map_err(|e| self.error(e))?;
        st.execute(params![id])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub(crate) fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.error(e))
    }

    pub(crate) fn put_thing(&mut self, thing: &str, state: &[u8]) -> Result<(), StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO thing_state (thing, state) VALUES (?1, ?2)")
            .map_err(|e| self.error(e))?;
        st.execute(params![thing, state])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub(crate) fn delete_thing(&mut self, thing: &str) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .execute("DELETE FROM thing_state WHERE thing = ?1", params![thing])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub(crate) fn things(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT thing, state FROM thing_state ORDER BY thing")
            .map_err(|e| self.error(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Checkpoints a model (replacing an older checkpoint of the same slot, whose log entries
    /// it leaves behind: `log_from` says which apply). `learned`: the datapoints it has seen and
    /// needs to be warm; `log_from`: the engine's commit it belongs to.
    pub(crate) fn put_model(
        &mut self,
        thing: &str,
        profile: &str,
        behavior: &str,
        state: &[u8],
        learned: (u64, u64),
        log_from: u64,
    ) -> Result<(), StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO models (thing, profile, behavior, state, seen, needed, log_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(|e| self.error(e))?;
        let (seen, needed, from) = (
            sql_count(learned.0),
            sql_count(learned.1),
            sql_count(log_from),
        );
        st.execute(params![thing, profile, behavior, state, seen, needed, from])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Reads an evicted model's checkpoint (`None`: there is none). The row stays (a delete
    /// per restore cost a write; the next eviction replaces it, and the engine deletes rows
    /// its slots no longer refer to when it loads).
    pub(crate) fn read_model(
        &mut self,
        thing: &str,
        profile: &str,
        behavior: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.begin()?;
        let state: Option<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT state FROM models WHERE thing = ?1 AND profile = ?2 AND behavior = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![thing, profile, behavior], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.error(e))?;
        Ok(state)
    }

    /// Deletes an evicted model's checkpoint, if there is one.
    pub(crate) fn delete_model(
        &mut self,
        thing: &str,
        profile: &str,
        behavior: &str,
    ) -> Result<(), StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached(
                "DELETE FROM models WHERE thing = ?1 AND profile = ?2 AND behavior = ?3",
            )
            .map_err(|e| self.error(e))?;
        st.execute(params![thing, profile, behavior])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Appends the entry of commit `seq` to the log of a checkpointed model: `rows`
    /// (little-endian `f32`s) after `first` rows logged before.
    pub(crate) fn append_model_log(
        &mut self,
        seq: u64,
        key: (&str, &str, &str),
        first: u64,
        rows: &[u8],
    ) -> Result<(), StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO model_logs (seq, thing, profile, behavior, first, rows) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(|e| self.error(e))?;
        let (thing, profile, behavior) = key;
        let (seq, first) = (sql_count(seq), sql_count(first));
        st.execute(params![seq, thing, profile, behavior, first, rows])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Every model log entry, in commit order.
    pub(crate) fn model_logs(&self) -> Result<Vec<LogEntry>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT seq, thing, profile, behavior, first, rows FROM model_logs ORDER BY seq",
            )
            .map_err(|e| self.error(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Deletes the log entries of commits up to `seq` (no checkpoint needs them).
    pub(crate) fn purge_model_logs(&mut self, seq: u64) -> Result<(), StoreError> {
        self.begin()?;
        let mut st = self
            .conn
            .prepare_cached("DELETE FROM model_logs WHERE seq <= ?1")
            .map_err(|e| self.error(e))?;
        st.execute(params![sql_count(seq)])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The key of every model checkpoint, with what it had learned and its commit.
    pub(crate) fn model_keys(&self) -> Result<Vec<ModelKey>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT thing, profile, behavior, seen, needed, log_from FROM models ORDER BY thing, profile, behavior",
            )
            .map_err(|e| self.error(e))?;
        let rows = st
            .query_map([], |r| {
                let (seen, needed): (i64, i64) = (r.get(3)?, r.get(4)?);
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    (seen.max(0) as u64, needed.max(0) as u64),
                    r.get(5)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    pub(crate) fn set_group(
        &mut self,
        group: &str,
        thing: &str,
        member: bool,
    ) -> Result<(), StoreError> {
        self.begin()?;
        let sql = if member {
            "INSERT OR IGNORE INTO thing_groups (grp, thing) VALUES (?1, ?2)"
        } else {
            "DELETE FROM thing_groups WHERE grp = ?1 AND thing = ?2"
        };
        self.conn
            .execute(sql, params![group, thing])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    pub(crate) fn groups(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT grp, thing FROM thing_groups ORDER BY grp, thing")
            .map_err(|e| self.error(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Deletes violation events older than `cutoff`, and metric history of the hours that
    /// ended by `cutoff` (history goes in whole hours: a value is kept at least the retention
    /// period, at most an hour more). Returns the history rows and events deleted.
    pub(crate) fn retain(&mut self, cutoff: i64) -> Result<(usize, usize), StoreError> {
        self.flush_metrics()?;
        self.begin()?;
        let m = self
            .conn
            .execute(
                "DELETE FROM metric_chunks WHERE hour < ?1",
                params![cutoff.div_euclid(CHUNK_MS)],
            )
            .map_err(|e| self.error(e))?;
        let e = self
            .conn
            .execute(
                "DELETE FROM violation_events WHERE time < ?1",
                params![cutoff],
            )
            .map_err(|e| self.error(e))?;
        // what sinks were given (or never owed) goes with the events; what is still owed stays
        self.conn
            .execute(
                "DELETE FROM outbox WHERE state != 'pending' AND time < ?1",
                params![cutoff],
            )
            .map_err(|e| self.error(e))?;
        Ok((m, e))
    }

    /// Queues `json` for `sink` under `key` (`pending`, or `gated`: recorded, never sent),
    /// of event time `time`; nothing if the sink already has that key (delivery is
    /// deduplicated on it).
    pub(crate) fn put_outbox(
        &mut self,
        sink: &str,
        key: &str,
        gated: bool,
        json: &str,
        time: i64,
    ) -> Result<(), StoreError> {
        self.begin()?;
        let state = if gated { "gated" } else { "pending" };
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO outbox (sink, key, state, json, time) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![sink, key, state, json, time]))
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The oldest `limit` pending objects of `sink`: (row id, JSON).
    pub(crate) fn due(&self, sink: &str, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, json FROM outbox WHERE sink = ?1 AND state = 'pending' ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let rows = st
            .query_map(params![sink, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Marks outbox rows sent (`error` `None`) or records a failed attempt on them, in a
    /// transaction of its own (the caller has none open).
    pub(crate) fn mark_outbox(
        &mut self,
        ids: &[i64],
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.begin()?;
        {
            let sql = if error.is_none() {
                "UPDATE outbox SET state = 'sent', attempts = attempts + 1, error = NULL WHERE id = ?1"
            } else {
                "UPDATE outbox SET attempts = attempts + 1, error = ?2 WHERE id = ?1"
            };
            let mut st = self.conn.prepare_cached(sql).map_err(|e| self.error(e))?;
            for id in ids {
                match error {
                    None => st.execute(params![id]),
                    Some(msg) => st.execute(params![id, msg]),
                }
                .map_err(|e| self.error(e))?;
            }
        }
        self.commit()
    }

    /// SQLite's `data_version`: it changes when another connection commits to the database.
    pub(crate) fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.error(e))
    }

    /// Whether a transaction is open (objects recorded in it are not yet committed).
    pub(crate) fn in_transaction(&self) -> bool {
        self.in_tx || !self.pending.is_empty()
    }

    /// Runs one statement (with positional parameters) in the open transaction; returns the
    /// rows changed.
    pub(crate) fn execute(
        &mut self,
        sql: &str,
        args: &[rusqlite::types::Value],
    ) -> Result<usize, StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(rusqlite::params_from_iter(args.iter())))
            .map_err(|e| self.error(e))
    }

    /// The id of the last row inserted.
    pub(crate) fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    /// Runs a query with positional parameters, returning each row's columns as JSON values.
    pub(crate) fn query(
        &self,
        sql: &str,
        args: &[rusqlite::types::Value],
    ) -> Result<Vec<Vec<rusqlite::types::Value>>, StoreError> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.error(e))?;
        let n = st.column_count();
        let rows = st
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                (0..n)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect()
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes a fresh store back to before schema 4.
    const DROP_RESPONSE: &str = "DROP TABLE outbox; DROP TABLE adjustments; DROP TABLE incidents; \
        DROP TABLE mitigation_tasks; DROP INDEX violation_events_by_id;";

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rcf-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("fleet.db")
    }

    /// New stores use 16 KiB pages: a saved thing is mostly its model's checkpoint (about
    /// 72 KB), which then spans 5 overflow pages instead of 18 (commits 24 % faster on the
    /// fleet bench, BENCHMARKS.md).
    #[test]
    fn new_stores_use_16_kib_pages() {
        let path = temp("pages");
        let s = Store::open(Some(&path)).unwrap();
        let size: i64 = s
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(size, 16_384);
        drop(s);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn history_reads_back_in_time_order_across_hours_and_commits() {
        let mut s = Store::open(None).unwrap();
        let t0 = 1_700_000_000_000 / CHUNK_MS * CHUNK_MS;
        // arrival order differs from time order; two commits split an hour's values
        let times = [
            t0 + 10,
            t0 + CHUNK_MS + 5,
            t0 + 3,
            t0 + 2 * CHUNK_MS,
            t0 + 3,
        ];
        for (seq, ts) in times.iter().enumerate() {
            s.insert_metric(
                "a",
                "m",
                *ts,
                seq as u64 + 1,
                None,
                &MetricValue::Count(seq as u64),
            )
            .unwrap();
            s.insert_metric(
                "b",
                "m",
                *ts,
                seq as u64 + 100,
                Some("x"),
                &MetricValue::Number(0.5),
            )
            .unwrap();
            if seq == 1 {
                s.commit().unwrap();
            }
        }
        s.commit().unwrap();
        let got: Vec<(i64, i64)> = s
            .metric_values("a", "m", t0, t0 + 3 * CHUNK_MS)
            .unwrap()
            .iter()
            .map(|r| (r.ts, r.seq))
            .collect();
        assert_eq!(
            got,
            vec![
                (t0 + 3, 3),
                (t0 + 3, 5),
                (t0 + 10, 1),
                (t0 + CHUNK_MS + 5, 2),
                (t0 + 2 * CHUNK_MS, 4)
            ]
        );
        // the range is half open, to the millisecond
        assert_eq!(
            s.metric_values("a", "m", t0 + 4, t0 + CHUNK_MS + 5)
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.metric_values("a", "other", t0, t0 + CHUNK_MS)
                .unwrap()
                .is_empty()
        );
        assert!(
            s.metric_values("a", "m", t0 + 5, t0 + 5)
                .unwrap()
                .is_empty()
        );
        // retention goes by whole hours
        s.retain(t0 + CHUNK_MS + 1).unwrap();
        s.commit().unwrap();
        assert_eq!(s.metric_values("a", "m", 0, i64::MAX).unwrap().len(), 2);
    }

    #[test]
    fn a_version_1_store_is_migrated_and_a_corrupt_chunk_is_an_error() {
        let path = temp("v1");
        let t0 = 1_700_000_000_000 / CHUNK_MS * CHUNK_MS;
        drop(Store::open(Some(&path)).unwrap());
        {
            // turn it into a version 1 store: a row per datapoint
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "DROP TABLE metric_chunks;
                 DROP TABLE models; DROP TABLE model_logs;
                 {DROP_RESPONSE}
                 CREATE TABLE metric_values (
                     thing INTEGER NOT NULL, metric INTEGER NOT NULL, ts INTEGER NOT NULL,
                     seq INTEGER NOT NULL, topic TEXT, num REAL, value TEXT,
                     PRIMARY KEY (thing, metric, ts, seq)) WITHOUT ROWID;
                 INSERT INTO names (id, name) VALUES (1, 'dev'), (2, 'm');
                 INSERT INTO metric_values VALUES
                     (1, 2, {t0}, 1, NULL, 7.0, NULL),
                     (1, 2, {t0} + 300000, 2, 'a/b', 2.5, 'n'),
                     (1, 2, {t0} + 3600000, 3, NULL, NULL, '{{\"ports\":[22]}}');
                 PRAGMA user_version = 1;"
            ))
            .unwrap();
        }
        let mut s = Store::open(Some(&path)).unwrap();
        let rows = s.metric_values("dev", "m", t0, t0 + 2 * CHUNK_MS).unwrap();
        let values: Vec<_> = rows.iter().map(|r| r.value.to_json()).collect();
        assert_eq!(
            values,
            vec![
                serde_json::json!({"count": 7}),
                serde_json::json!({"number": 2.5}),
                serde_json::json!({"ports": [22]})
            ]
        );
        assert_eq!(rows[1].topic.as_deref(), Some("a/b"));
        // and on to version 3: the models table is there
        s.put_model("dev", "p", "b", b"state", (1, 2), 3).unwrap();
        assert_eq!(s.model_keys().unwrap().len(), 1);
        s.rollback();
        drop(s);
        // a chunk damaged on disk: the read fails with the series named, nothing panics
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("UPDATE metric_chunks SET data = x'ff00'")
                .unwrap();
        }
        let mut s = Store::open(Some(&path)).unwrap();
        let e = s
            .metric_values("dev", "m", t0, t0 + 2 * CHUNK_MS)
            .unwrap_err();
        assert!(e.reason.contains("metric history of dev / m"), "{e}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
    /// The store's schema version.
    fn user_version(s: &Store) -> i32 {
        s.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    /// The `models` table's definition as SQLite keeps it.
    fn models_sql(s: &Store) -> String {
        s.conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'models'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_version_4_store_moves_its_checkpoints_to_a_rowid_table() {
        let path = temp("v4");
        drop(Store::open(Some(&path)).unwrap());
        let big = vec![7u8; 100_000];
        {
            // schema 4's table, with a checkpoint larger than a page and a small one
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE models; DROP TABLE model_logs; CREATE TABLE models (thing TEXT NOT NULL, \
                 profile TEXT NOT NULL, behavior TEXT NOT NULL, state BLOB NOT NULL, \
                 PRIMARY KEY (thing, profile, behavior)) WITHOUT ROWID; PRAGMA user_version = 4;",
            )
            .unwrap();
            c.execute(
                "INSERT INTO models VALUES ('dev', 'p', 'b', ?1), ('other', 'p', 'b', x'0102')",
                [&big],
            )
            .unwrap();
        }
        let mut s = Store::open(Some(&path)).unwrap();
        assert_eq!(user_version(&s), SCHEMA_VERSION);
        assert!(!models_sql(&s).to_uppercase().contains("WITHOUT ROWID"));
        assert_eq!(s.read_model("dev", "p", "b").unwrap(), Some(big));
        assert_eq!(
            s.read_model("other", "p", "b").unwrap().as_deref(),
            Some(&[1u8, 2][..])
        );
        assert_eq!(s.model_keys().unwrap().len(), 2);
        // the key is still unique: a checkpoint replaces the one before it
        s.put_model("dev", "p", "b", b"new", (1, 2), 3).unwrap();
        s.commit().unwrap();
        assert_eq!(s.model_keys().unwrap().len(), 2);
        assert_eq!(
            s.read_model("dev", "p", "b").unwrap().as_deref(),
            Some(&b"new"[..])
        );
        drop(s);
        // and a store opened again is not migrated again
        let s = Store::open(Some(&path)).unwrap();
        assert!(!models_sql(&s).to_uppercase().contains("WITHOUT ROWID"));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_version_5_store_gains_the_model_logs() {
        let path = temp("v5");
        drop(Store::open(Some(&path)).unwrap());
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "DROP TABLE model_logs; DROP TABLE models; {MODELS} \
                 INSERT INTO models VALUES ('old', 'p', 'b', x'01'); PRAGMA user_version = 5;"
            ))
            .unwrap();
        }
        let mut s = Store::open(Some(&path)).unwrap();
        assert_eq!(user_version(&s), SCHEMA_VERSION);
        // a checkpoint of version 5 learned nothing it says, and has no log
        assert_eq!(
            s.model_keys().unwrap(),
            vec![("old".into(), "p".into(), "b".into(), (0, 0), 0)]
        );
        s.append_model_log(4, ("dev", "p", "b"), 2, b"later")
            .unwrap();
        s.append_model_log(3, ("dev", "p", "b"), 0, b"first")
            .unwrap();
        s.append_model_log(3, ("other", "p", "b"), 0, b"x").unwrap();
        s.commit().unwrap();
        let key = |t: &str| (t.to_string(), "p".to_string(), "b".to_string());
        let entries: Vec<_> = s
            .model_logs()
            .unwrap()
            .into_iter()
            .map(|(seq, t, p, b, first, rows)| (seq, (t, p, b), first, rows))
            .collect();
        assert_eq!(
            entries,
            vec![
                (3, key("dev"), 0, b"first".to_vec()),
                (3, key("other"), 0, b"x".to_vec()),
                (4, key("dev"), 2, b"later".to_vec()),
            ]
        );
        s.purge_model_logs(3).unwrap();
        s.commit().unwrap();
        assert_eq!(s.model_logs().unwrap().len(), 1);
        drop(s);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn new_stores_keep_checkpoints_apart_from_their_keys() {
        let path = temp("rowid");
        let s = Store::open(Some(&path)).unwrap();
        let sql = models_sql(&s).to_uppercase();
        assert!(
            sql.contains("PRIMARY KEY") && !sql.contains("WITHOUT ROWID"),
            "{sql}"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_version_2_store_gains_the_models_table_and_checkpoints_round_trip() {
        let path = temp("v2");
        drop(Store::open(Some(&path)).unwrap());
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "DROP TABLE models; DROP TABLE model_logs; {DROP_RESPONSE} PRAGMA user_version = 2;"
            ))
            .unwrap();
        }
        let mut s = Store::open(Some(&path)).unwrap();
        assert_eq!(user_version(&s), SCHEMA_VERSION);
        s.put_model("dev", "p", "b", b"one", (1, 2), 3).unwrap();
        s.put_model("dev", "p", "b", b"two", (5, 7), 9).unwrap();
        s.commit().unwrap();
        assert_eq!(
            s.model_keys().unwrap(),
            vec![(
                "dev".to_string(),
                "p".to_string(),
                "b".to_string(),
                (5, 7),
                9
            )]
        );
        assert_eq!(
            s.read_model("dev", "p", "b").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            s.read_model("dev", "p", "b").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        s.delete_model("dev", "p", "b").unwrap();
        assert_eq!(s.read_model("dev", "p", "b").unwrap(), None);
        s.commit().unwrap();
        assert!(s.model_keys().unwrap().is_empty());
        let _ = std::fs::remove_file(&path);
    }
}
