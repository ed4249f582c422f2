//! The engine's store: SQLite (bundled, nothing to install), a file or in memory. It holds
//! metric history, violation events, active violations, thing groups and the engine's own state
//! (windows, alarm streaks, detector checkpoints), written in one transaction per batch so a
//! process killed at any moment restarts from the last committed batch.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// `PRAGMA application_id` of an rcf fleet store (`rcf1`): a SQLite file without it is not ours.
const APPLICATION_ID: i32 = 0x7263_6631;
/// The schema version (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i32 = 1;

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
CREATE TABLE metric_values (
    thing INTEGER NOT NULL, metric INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
    topic TEXT, num REAL, value TEXT,
    PRIMARY KEY (thing, metric, ts, seq)) WITHOUT ROWID;
CREATE TABLE violation_events (
    seq INTEGER PRIMARY KEY, violation_id TEXT NOT NULL, event_type TEXT NOT NULL,
    thing TEXT NOT NULL, profile TEXT NOT NULL, behavior TEXT NOT NULL,
    criteria_type TEXT NOT NULL, time INTEGER NOT NULL, suppressed INTEGER NOT NULL,
    verification_state TEXT NOT NULL, json TEXT NOT NULL,
    UNIQUE (violation_id, event_type));
CREATE INDEX violation_events_by_time ON violation_events (time);
CREATE TABLE active_violations (
    violation_id TEXT PRIMARY KEY, thing TEXT NOT NULL, profile TEXT NOT NULL,
    behavior TEXT NOT NULL, criteria_type TEXT NOT NULL, suppressed INTEGER NOT NULL,
    verification_state TEXT NOT NULL, start_time INTEGER NOT NULL, last_time INTEGER NOT NULL,
    last_value TEXT, behavior_json TEXT NOT NULL);
CREATE TABLE thing_state (thing TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE thing_groups (grp TEXT NOT NULL, thing TEXT NOT NULL, PRIMARY KEY (grp, thing));
";

/// The SQLite store.
pub struct Store {
    conn: Connection,
    /// Thing and metric names → their ids in `names` (metric history keys on integers: one
    /// B-tree of small keys instead of a table and an index of strings).
    ids: std::collections::HashMap<Box<str>, i64>,
    /// Metric history not yet written: inserted in key order at the next commit or read
    /// (sorted inserts touch each B-tree page once; one by one, in time order, they touched a
    /// page per thing: 3.5x the cost).
    pending: Vec<PendingValue>,
    path: String,
    in_tx: bool,
    durable: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// One metric value waiting to be written: (thing, metric, ts, seq, topic, num, value).
type PendingValue = (
    i64,
    i64,
    i64,
    i64,
    Option<Box<str>>,
    Option<f64>,
    Option<Box<str>>,
);

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
            pending: Vec::new(),
            conn,
            path: name.clone(),
            in_tx: false,
            durable: path.is_some(),
        };
        store.init().map_err(fail)?;
        Ok(store)
    }

    /// Restores an in-memory store from [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let fail = |reason: String| StoreError {
            path: ":memory:".into(),
            reason,
        };
        let mut conn = Connection::open_in_memory().map_err(|e| fail(e.to_string()))?;
        conn.deserialize_read_exact(rusqlite::MAIN_DB, bytes, bytes.len(), false)
            .map_err(|e| fail(format!("not a store: {e}")))?;
        let mut store = Store {
            ids: Default::default(),
            pending: Vec::new(),
            conn,
            path: ":memory:".into(),
            in_tx: false,
            durable: false,
        };
        store.init().map_err(fail)?;
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
            c.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| format!("cannot create the schema: {e}"))?;
        } else if app != APPLICATION_ID {
            return Err(format!(
                "is a SQLite database of another program (application_id {app:#x}, {tables} tables), not an rcf fleet store"
            ));
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
            self.conn
                .execute_batch("BEGIN")
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

    /// Stores one datapoint; `seq` orders datapoints of the same thing, metric and time.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_metric(
        &mut self,
        thing: &str,
        metric: &str,
        ts: i64,
        seq: u64,
        topic: Option<&str>,
        num: Option<f64>,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let (t, m) = (self.name_id(thing)?, self.name_id(metric)?);
        self.pending.push((
            t,
            m,
            ts,
            seq as i64,
            topic.map(Into::into),
            num,
            value.map(Into::into),
        ));
        Ok(())
    }

    /// Writes the pending metric history, in key order.
    pub(crate) fn flush_metrics(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let mut rows = std::mem::take(&mut self.pending);
        rows.sort_unstable_by_key(|r| (r.0, r.1, r.2, r.3));
        let fail = |e: rusqlite::Error| StoreError {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO metric_values (thing, metric, ts, seq, topic, num, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(fail)?;
        // (64-row statements measured no faster: the B-tree, not the statement, is the cost)
        for (t, m, ts, seq, topic, num, value) in &rows {
            st.execute(params![
                t,
                m,
                ts,
                seq,
                topic.as_deref(),
                num,
                value.as_deref()
            ])
            .map_err(fail)?;
        }
        Ok(())
    }

    /// Stored datapoints of `thing` and `metric` with `from <= ts < to`, in time order:
    /// `(ts, topic, number, json value)`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn metric_values(
        &mut self,
        thing: &str,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Option<String>, Option<f64>, Option<String>)>, StoreError> {
        self.flush_metrics()?;
        let (Some(t), Some(m)) = (self.known_id(thing)?, self.known_id(metric)?) else {
            return Ok(Vec::new());
        };
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT ts, topic, num, value FROM metric_values WHERE thing = ?1 AND metric = ?2 \
                 AND ts >= ?3 AND ts < ?4 ORDER BY ts, seq",
            )
            .map_err(|e| self.error(e))?;
        let rows = st
            .query_map(params![t, m, from, to], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    pub(crate) fn insert_event(&mut self, e: &EventRow<'_>) -> Result<(), StoreError> {
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
        .map(|_| ())
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

    /// Deletes metric values and violation events older than `cutoff`.
    pub(crate) fn retain(&mut self, cutoff: i64) -> Result<(usize, usize), StoreError> {
        self.flush_metrics()?;
        self.begin()?;
        let m = self
            .conn
            .execute("DELETE FROM metric_values WHERE ts < ?1", params![cutoff])
            .map_err(|e| self.error(e))?;
        let e = self
            .conn
            .execute(
                "DELETE FROM violation_events WHERE time < ?1",
                params![cutoff],
            )
            .map_err(|e| self.error(e))?;
        Ok((m, e))
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
