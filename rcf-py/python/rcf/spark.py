"""Fleet detection on Apache Spark Structured Streaming, keyed by thing.

``detect(df, profile)`` turns a streaming DataFrame of datapoint JSON lines into a DataFrame of
violation events (and, optionally, per-datapoint verdicts) by running the fleet engine's
per-thing work (windows, rules, ML models, alarm streaks) in
``groupBy(thing).transformWithStateInPandas(...)``: each thing's state is one ``binary`` value in
Spark's state store, read and written once per thing per micro-batch, with one call into Rust
per thing per micro-batch. Spark's checkpoint holds the state; with a file sink (or any
idempotent sink) the output is exactly once across crashes. ``applyInPandasWithState`` (Spark
3.4/3.5) runs the same state with ``api="applyInPandasWithState"``.

The events are those ``rcf.Fleet`` raises on the same input, with one difference in the clock:
here each thing's clock is its own (its latest timestamp minus the grace period), in the engine
it is the fleet's. They agree when every thing's data arrives within the grace period of the
fleet's latest, as a fleet on one reporting grid does; a thing that lags is evaluated here
where the engine counts its datapoints late. What needs every thing at once (statistical
thresholds, ML scopes ``group`` and ``hierarchical``, ``rcf.missingData: violate``, behaviour
mitigation actions) is refused
with ``ConfigError``; see the "Running on Spark" page (``rcf-py/SPARK.md``).

Needs ``pip install 'rcf[spark]'`` (``pyspark[sql]>=4.0``, ``protobuf``, ``pandas<3``);
``import rcf`` never imports Spark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout
from pyspark.sql.streaming.stateful_processor import (
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)

from rcf._rcf import FleetShard, ShardResult

__all__ = [
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "STATE_SCHEMA",
    "FleetProcessor",
    "detect",
    "group_function",
    "thing_column",
]

#: The output's columns, in order, as a Spark DDL schema. ``record`` says what a row is:
#:
#: * ``event``: a violation event. ``thingName``, ``securityProfileName``, ``behaviorName``,
#:   ``violationId``, ``violationEventType``, ``criteriaType``, ``violationEventTime``,
#:   ``violationStartTime``, ``verificationState``, ``score`` and ``grade`` (ML) are its Device
#:   Defender fields; ``json`` is the whole event exactly as the engine writes it (one line);
#:   ``reason`` why it happened.
#: * ``verdict`` (with ``verdicts=True``): one observation of a behaviour (a window closed or a
#:   datapoint judged) at ``violationEventTime``: ``violating``, ``inAlarm`` after it, ``score``
#:   and ``grade`` (ML), the observed value as JSON in ``json``.
#: * ``rejected`` (with ``skip_invalid=True``, the default): an input line the engine refused,
#:   the line in ``json``, why in ``reason``.
OUTPUT_SCHEMA = (
    "record string, thingName string, securityProfileName string, behaviorName string, "
    "violationId string, violationEventType string, criteriaType string, "
    "violationEventTime timestamp, violationStartTime timestamp, verificationState string, "
    "score double, grade double, violating boolean, inAlarm boolean, json string, reason string"
)
#: The output's column names.
OUTPUT_COLUMNS = [c.split()[0] for c in OUTPUT_SCHEMA.split(", ")]
#: The schema of a thing's state in Spark's state store: the shard's versioned bytes.
STATE_SCHEMA = "state binary"
#: The state's name in ``transformWithStateInPandas``.
STATE_NAME = "rcf_thing"


def _profile_text(profile: Any) -> str:
    return profile if isinstance(profile, str) else json.dumps(profile)


def _shard(profile: str, verdicts: bool, settings: Mapping[str, Any]) -> FleetShard:
    return FleetShard(profile, verdicts=verdicts, **settings)


def _seconds(x: Any) -> Any:
    return pd.NaT if x is None else pd.Timestamp(float(x), unit="s", tz="UTC")


def _rows(thing: str | None, lines: list[Any], result: ShardResult | None, why: str | None):
    """The output rows of one thing's batch, as a pandas DataFrame in OUTPUT_SCHEMA."""
    rows: list[dict[str, Any]] = []
    if result is not None:
        for e in result.events:
            d = e.to_dict()
            info = d.get("violationEventAdditionalInfo") or {}
            ext = d.get("rcf") or {}
            rows.append(
                {
                    "record": "event",
                    "thingName": d["thingName"],
                    "securityProfileName": d["securityProfileName"],
                    "behaviorName": d["behavior"]["name"],
                    "violationId": d["violationId"],
                    "violationEventType": d["violationEventType"],
                    "criteriaType": ext.get("criteriaType"),
                    "violationEventTime": _seconds(d["violationEventTime"]),
                    "violationStartTime": _seconds(ext.get("violationStartTime")),
                    "verificationState": d.get("verificationState"),
                    "score": info.get("score"),
                    "grade": info.get("grade"),
                    "violating": None,
                    "inAlarm": d["violationEventType"] == "in-alarm",
                    "json": e.to_json(),
                    "reason": ext.get("reason"),
                }
            )
        for v in result.verdicts:
            rows.append(
                {
                    "record": "verdict",
                    "thingName": thing,
                    "securityProfileName": v["profile"],
                    "behaviorName": v["behavior"],
                    "violationEventTime": _seconds(v["time"]),
                    "score": v["score"],
                    "grade": v["grade"],
                    "violating": v["violating"],
                    "inAlarm": v["in_alarm"],
                    "json": json.dumps(v["value"]),
                }
            )
        for i, reason in result.rejected:
            rows.append(
                {"record": "rejected", "thingName": thing, "json": str(lines[i]), "reason": reason}
            )
    elif why is not None:
        for line in lines:
            rows.append({"record": "rejected", "thingName": thing, "json": str(line), "reason": why})
    frame = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    for c in ("violationEventTime", "violationStartTime"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    for c in ("score", "grade"):
        frame[c] = frame[c].astype("float64")
    for c in ("violating", "inAlarm"):
        frame[c] = frame[c].astype("object")
    return frame


def _ttl_ms(hours: float | None) -> int | None:
    """State TTL in milliseconds; None (no TTL) for None or 0."""
    return None if not hours else int(hours * 3_600_000)


def _lines(frames: Iterable[pd.DataFrame], column: str) -> list[Any]:
    """A thing's lines of one micro-batch, from all its pandas batches."""
    lines: list[Any] = []
    for pdf in frames:
        lines.extend(pdf[column].tolist())
    return lines


def _run(
    shard: FleetShard,
    thing: str | None,
    lines: list[Any],
    state: bytes | None,
    skip_invalid: bool,
) -> tuple[pd.DataFrame, bytes | None]:
    """One thing's micro-batch: (output rows, new state or None to keep the old)."""
    if thing is None:
        why = "no thing name in the line (`thing` or `thingName`)"
        if not skip_invalid:
            raise ValueError(f"{len(lines)} line(s): {why}")
        return _rows(None, lines, None, why), None
    result = shard.process(thing, state, lines, skip_invalid=skip_invalid)
    return _rows(thing, lines, result, None), result.state


class FleetProcessor(StatefulProcessor):
    """The fleet engine's per-thing work as a ``transformWithStateInPandas`` processor.

    Group by the thing (``detect`` does it for you): ``df.groupBy("thing").transformWithStateInPandas(
    FleetProcessor(profile), OUTPUT_SCHEMA, "Append", "ProcessingTime")`` (``"None"`` with
    ``ttl_hours=None``: Spark's TTL needs the processing-time mode). ``value_column`` holds the
    datapoint JSON lines (any form ``rcf fleet`` reads that names its thing). State TTL
    (``ttl_hours``, default 48 h: the engine's invalidation) drops the state of a thing that
    sent nothing for that long (processing time), so silent things do not pile up.
    ``settings`` are ``FleetShard``'s (``grace_seconds``, ``seed``, ``num_trees`` ...).
    """

    def __init__(
        self,
        profile: Any,
        *,
        value_column: str = "value",
        verdicts: bool = False,
        skip_invalid: bool = True,
        ttl_hours: float | None = 48.0,
        **settings: Any,
    ) -> None:
        self.profile = _profile_text(profile)
        self.value_column = value_column
        self.verdicts = verdicts
        self.skip_invalid = skip_invalid
        self.ttl_hours = ttl_hours
        self.settings = dict(settings)
        # fail on the driver, before the query starts, if the profile or settings are bad
        _shard(self.profile, verdicts, self.settings)

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.state = handle.getValueState(STATE_NAME, STATE_SCHEMA, _ttl_ms(self.ttl_hours))
        self.shard = _shard(self.profile, self.verdicts, self.settings)

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: TimerValues
    ) -> Iterator[pd.DataFrame]:
        lines = _lines(rows, self.value_column)
        saved = self.state.get() if self.state.exists() else None
        old = None if saved is None else saved[0]
        out, new = _run(self.shard, key[0], lines, old, self.skip_invalid)
        if new is not None:
            self.state.update((new,))
        if len(out):
            yield out

    def close(self) -> None:
        pass


def group_function(
    profile: Any,
    *,
    value_column: str = "value",
    verdicts: bool = False,
    skip_invalid: bool = True,
    ttl_hours: float | None = 48.0,
    **settings: Any,
) -> Callable[[Any, Iterable[pd.DataFrame], GroupState], Iterator[pd.DataFrame]]:
    """The same work as a function for ``applyInPandasWithState`` (Spark 3.4 and 3.5), with
    state schema ``STATE_SCHEMA`` and, when ``ttl_hours`` is set,
    ``GroupStateTimeout.ProcessingTimeTimeout`` (a silent thing's state is removed)."""
    text = _profile_text(profile)
    _shard(text, verdicts, settings)
    ttl = _ttl_ms(ttl_hours)
    cache: dict[str, FleetShard] = {}

    def fn(key: Any, pdfs: Iterable[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        if state.hasTimedOut:
            state.remove()
            return
        shard = cache.get("shard")
        if shard is None:
            shard = cache["shard"] = _shard(text, verdicts, settings)
        lines = _lines(pdfs, value_column)
        old = state.get[0] if state.exists else None
        out, new = _run(shard, key[0], lines, old, skip_invalid)
        if new is not None:
            state.update((new,))
        if ttl is not None:
            state.setTimeoutDuration(ttl)
        if len(out):
            yield out

    return fn


def thing_column(value_column: str = "value") -> Column:
    """The thing of a datapoint JSON line: its ``thing`` or ``thingName`` member."""
    v = F.col(value_column)
    return F.coalesce(F.get_json_object(v, "$.thing"), F.get_json_object(v, "$.thingName"))


def detect(
    df: DataFrame,
    profile: Any,
    *,
    thing: str | Column | None = None,
    value_column: str = "value",
    api: str = "transformWithState",
    verdicts: bool = False,
    skip_invalid: bool = True,
    ttl_hours: float | None = 48.0,
    **settings: Any,
) -> DataFrame:
    """Fleet detection on a streaming DataFrame of datapoint JSON lines; returns a streaming
    DataFrame in ``OUTPUT_SCHEMA`` (filter ``record == "event"`` for the events).

    ``df`` has the lines in ``value_column`` (what ``spark.readStream.text(dir)`` gives, or a
    Kafka source's ``CAST(value AS STRING)``); the thing comes from each line (``thing`` or
    ``thingName``) unless ``thing`` names a column (a Kafka key, say). The query needs the
    RocksDB state store (``spark.sql.streaming.stateStore.providerClass`` =
    ``org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider``) for
    ``transformWithState``. Keep each thing's data in order from the source to here (partition
    by thing); within a micro-batch the shard sorts a thing's datapoints by timestamp.
    ``settings`` are ``FleetShard``'s.
    """
    if api not in ("transformWithState", "applyInPandasWithState"):
        raise ValueError(
            f"invalid `api`: {api!r}, expected 'transformWithState' or 'applyInPandasWithState'"
        )
    if value_column not in df.columns:
        raise ValueError(f"invalid `value_column`: {value_column!r} is not a column of {df.columns}")
    key = thing_column(value_column) if thing is None else F.col(thing) if isinstance(thing, str) else thing
    keyed = df.select(key.alias("_rcf_thing"), F.col(value_column).cast("string").alias(value_column))
    grouped = keyed.groupBy("_rcf_thing")
    options = dict(
        value_column=value_column,
        verdicts=verdicts,
        skip_invalid=skip_invalid,
        ttl_hours=ttl_hours,
        **settings,
    )
    if api == "transformWithState":
        # state TTL counts processing time, which needs the processing-time mode
        mode = "ProcessingTime" if ttl_hours else "None"
        return grouped.transformWithStateInPandas(
            FleetProcessor(profile, **options), OUTPUT_SCHEMA, "Append", mode
        )
    timeout = GroupStateTimeout.ProcessingTimeTimeout if ttl_hours else GroupStateTimeout.NoTimeout
    return grouped.applyInPandasWithState(
        group_function(profile, **options), OUTPUT_SCHEMA, STATE_SCHEMA, "append", timeout
    )
