from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "Detector",
    "Fleet",
    "FleetShard",
    "RandomCutForest",
    "ShardResult",
    "StateDigest",
    "Verdict",
    "ViolationEvent",
    "__version__",
]

_Suppression = Literal["near_expected", "holdoff", "repeat"]
"""Why a point above the threshold was not reported."""

@final
class RandomCutForest:
    """A Random Cut Forest over a stream of points (the Rust crate `rcf-core`)."""

    def __new__(
        cls,
        input_dims: int,
        *,
        shingle_size: int = 1,
        num_trees: int | None = None,
        sample_size: int | None = None,
        time_decay: float | None = None,
        output_after: int | None = None,
        initial_accept_fraction: float | None = None,
        box_cache_min_mass: int | None = None,
        seed: int | None = None,
    ) -> RandomCutForest: ...
    @classmethod
    def _from_state(cls, state: tuple[bytes, float | None]) -> RandomCutForest: ...
    def __reduce__(self) -> tuple[Any, tuple[tuple[bytes, float | None]]]: ...
    def __copy__(self) -> RandomCutForest: ...
    def __deepcopy__(self, memo: object) -> RandomCutForest: ...
    def update(self, x: npt.ArrayLike) -> None:
        """Adds one point (`input_dims` values).

        Right after `score(x)` of the same point on the unchanged forest (from the same
        thread), the trees that take the point insert it along that score's walk: `score`
        then `update` costs about what `process` does, and leaves the same forest as
        `update` alone.
        """
    def score(self, x: npt.ArrayLike) -> float:
        """Scores one point without learning it (about 1 is typical; higher is more anomalous)."""
    def process(self, x: npt.ArrayLike) -> float:
        """Scores one point, then learns it (the streaming fast path)."""
    def attribution(self, x: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def impute(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]: ...
    def update_many(self, x: npt.ArrayLike) -> None:
        """Learns every row (n x input_dims) in order; all or nothing."""
    def score_many(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Scores rows of full forest points (n x dimensions) on all cores, learning nothing.

        From 256 rows on, through read-only copies of the trees laid out for scoring: the
        same scores, bit for bit, about twice as fast."""
    def process_many(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Scores then learns every row in order; all or nothing."""
    @property
    def entries_seen(self) -> int:
        """Inputs learned so far."""
    @property
    def is_ready(self) -> bool:
        """Whether scores are produced yet (after `output_after` points)."""
    @property
    def input_dims(self) -> int:
        """Values per `update` / `score` call."""
    @property
    def dimensions(self) -> int:
        """Dimension of the forest's points (`input_dims * shingle_size`)."""
    @property
    def memory_usage(self) -> int:
        """Bytes of memory the forest holds."""
    def to_bytes(self) -> bytes:
        """The versioned, checksummed state."""
    def to_bytes_with_digest(self) -> tuple[bytes, StateDigest]:
        """`to_bytes`, with a digest that lets this process restore the bytes unchecked."""
    @classmethod
    def from_bytes(cls, data: bytes, digest: StateDigest | None = None) -> RandomCutForest:
        """Restores a forest saved by `to_bytes`; raises StateError for invalid bytes. With
        this process's `digest` of the bytes (`to_bytes_with_digest`), unchanged bytes skip
        the structural checks; TypeError for a Detector's digest."""
    def fit(self, x: npt.ArrayLike, *, contamination: float = 0.01) -> RandomCutForest:
        """Learns `x`, then sets `threshold_` at its `1 - contamination` score quantile."""
    def score_samples(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]: ...
    def decision_function(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]: ...
    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.int64]: ...
    @property
    def threshold_(self) -> float | None:
        """The anomaly-score threshold `fit` set, or None."""

@final
class Verdict:
    """The verdict on one point. Verdicts compare equal attribute by attribute, and pickle."""

    @classmethod
    def _from_state(cls, state: tuple[Any, Any]) -> Verdict: ...
    def __reduce__(self) -> tuple[Any, tuple[tuple[Any, Any]]]: ...
    def __copy__(self) -> Verdict: ...
    def __deepcopy__(self, memo: object) -> Verdict: ...
    def __eq__(self, value: object, /) -> bool: ...
    @property
    def score(self) -> float:
        """The forest's score (about 1 for typical points; 0 while warming)."""
    @property
    def grade(self) -> float:
        """How anomalous a reported anomaly is, in (0, 1), comparable across streams; 0 if not reported."""
    @property
    def is_anomaly(self) -> bool:
        """Whether this point is reported as an anomaly."""
    @property
    def confidence(self) -> float:
        """Trust in the verdict, in [0, 1]."""
    @property
    def threshold(self) -> float:
        """The threshold the score was compared with."""
    @property
    def p_value(self) -> float:
        """Share of the detector's recent scores that were higher (NaN without p-values)."""
    @property
    def attribution(self) -> dict[str, tuple[float, float]]:
        """{metric: (high, low)} for points above the threshold, summing to the score."""
    @property
    def expected(self) -> dict[str, float]:
        """{metric: expected value} for the attributed metrics, in input units."""
    @property
    def deviations(self) -> dict[str, float]:
        """{metric: z-score against the stream's running normal} for points above the
        threshold or inside an event; empty otherwise."""
    @property
    def relative_index(self) -> int:
        """When the anomaly started: 0 now, -k k points ago."""
    @property
    def state(self) -> Literal["warming", "ready"]:
        """"warming" or "ready"."""
    @property
    def suppressed(self) -> _Suppression | None:
        """Why a point above the threshold was not reported, if it was not."""
    @property
    def imputed(self) -> int:
        """Values of this point that were missing (NaN) and imputed."""
    @property
    def in_event(self) -> bool:
        """Whether this point lies inside an anomalous event."""

@final
class Detector:
    """A streaming detector for one stream of named metrics (the Rust `rcf_stream::Detector`)."""

    def __new__(
        cls,
        input_dims: int,
        *,
        metric_names: list[str] | None = None,
        shingle_size: int | None = None,
        num_trees: int | None = None,
        sample_size: int | None = None,
        time_decay: float | None = None,
        output_after: int | None = None,
        sensitivity: str | float | dict[str, float] | None = None,
        holdoff: int | None = None,
        repeat_tolerance: float | None = None,
        normalization: Literal["normalize", "none", "difference", "normalize_difference"] | None = None,
        normalize_after: int | None = None,
        ignore_near_expected: dict[Literal["above", "below"], dict[Literal["amount", "ratio"], float]] | None = None,
        box_cache_min_mass: int | None = None,
        seed: int | None = None,
        p_values: bool = True,
    ) -> Detector: ...
    @classmethod
    def _from_state(cls, state: bytes) -> Detector: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def __copy__(self) -> Detector: ...
    def __deepcopy__(self, memo: object) -> Detector: ...
    def process(self, x: npt.ArrayLike) -> Verdict:
        """Processes one point (NaN marks a missing value)."""
    def process_many(
        self, x: npt.ArrayLike, *, flat: bool = False
    ) -> dict[str, npt.NDArray[np.float64] | npt.NDArray[np.bool_]]:
        """Processes every row (or DataFrame, columns by name), all or nothing; `flat=True`
        gives 1-D columns only (`attribution_<metric>_high/low`), ready for pandas."""
    def bootstrap(self, x: npt.ArrayLike) -> None:
        """Warms the detector from history in one call, all or nothing."""
    def set_sensitivity(self, sensitivity: str | float | dict[str, float]) -> None:
        """Changes the sensitivity, keeping everything learned (from the next point on)."""
    @property
    def metric_names(self) -> list[str]:
        """The metric names, in input order."""
    @property
    def points_seen(self) -> int:
        """Points processed so far (including bootstrap history)."""
    @property
    def points_needed(self) -> int:
        """Points a fresh detector needs before its first verdict."""
    def points_to_confidence(self, confidence: float = 0.5) -> int:
        """Points a fresh detector consumes, with complete data, until its verdicts are ready
        at `confidence` (the fleet engine counts ML verdicts from 0.5)."""
    @property
    def memory_usage(self) -> int:
        """Bytes of memory the detector holds."""
    @property
    def p_values(self) -> bool:
        """Whether it keeps the score distribution that p-values are read from (False: 8 KiB
        less, NaN p-values, the same verdicts otherwise)."""
    def to_bytes(self) -> bytes:
        """The versioned, checksummed state."""
    def to_bytes_with_digest(self) -> tuple[bytes, StateDigest]:
        """`to_bytes`, with a digest that lets this process restore its forests unchecked."""
    @classmethod
    def from_bytes(cls, data: bytes, digest: StateDigest | None = None) -> Detector:
        """Restores a detector saved by `to_bytes`; raises StateError for invalid bytes. With
        this process's `digest` of the bytes (`to_bytes_with_digest`), unchanged bytes skip
        the forests' structural checks; TypeError for a RandomCutForest's digest."""

@final
class StateDigest:
    """A keyed digest of state bytes this process saved (`to_bytes_with_digest`): passed to
    `from_bytes`, unchanged bytes skip the structural checks (about two thirds of restoring a
    small model); changed bytes, or another process's digest, take the full check. Not
    picklable: meaningless in another process."""
    def __eq__(self, value: object, /) -> bool: ...

_Time = int | float | str | datetime
"""Epoch seconds, an RFC 3339 string, or a datetime (a pandas Timestamp works too)."""

@final
class ViolationEvent:
    """One violation event: Device Defender's `ViolationEvent` fields as attributes."""

    @property
    def violation_id(self) -> str:
        """`violationId`: one id follows one alarm from in-alarm to cleared or invalidated."""
    @property
    def thing_name(self) -> str:
        """`thingName`."""
    @property
    def security_profile_name(self) -> str:
        """`securityProfileName`."""
    @property
    def behavior_name(self) -> str:
        """The behaviour's name."""
    @property
    def violation_event_type(self) -> Literal["in-alarm", "alarm-cleared", "alarm-invalidated"]:
        """`violationEventType`."""
    @property
    def violation_event_time(self) -> float:
        """`violationEventTime`, epoch seconds."""
    @property
    def criteria_type(self) -> Literal["STATIC", "STATISTICAL", "MACHINE_LEARNING"]:
        """The behaviour's criteria type."""
    @property
    def reason(self) -> str:
        """Why the event happened, in words."""
    @property
    def score(self) -> float | None:
        """The RCF score (ML behaviours)."""
    @property
    def grade(self) -> float | None:
        """The grade in (0, 1) (ML behaviours)."""
    @property
    def attribution(self) -> list[dict[str, Any]]:
        """Per metric `{"metric", "high", "low", "direction"}`, summing to the score (ML)."""
    def to_json(self) -> str:
        """The event as Device Defender's `ViolationEvent` JSON text, one line, exactly as the
        engine writes it."""
    def to_dict(self) -> dict[str, Any]:
        """The event as Device Defender's `ViolationEvent` JSON."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    @classmethod
    def _from_state(cls, state: str) -> ViolationEvent: ...
    def __reduce__(self) -> tuple[Any, tuple[str]]: ...

@final
class Fleet:
    """The fleet detect engine: Device Defender security profiles (rules, fleet percentiles,
    a per-thing ML model), alarms, violation events and metric history in SQLite."""

    def __new__(
        cls,
        profile: Mapping[str, Any] | str | None = None,
        *,
        store: str | None = None,
        grace_seconds: float = 60.0,
        invalidate_after_hours: float = 48.0,
        retention_days: float = 14.0,
        max_future_seconds: float | None = 86400.0,
        strict: bool = False,
        history: bool = True,
        seed: int = 0,
        memory_budget: int | str | None = None,
        num_trees: int | None = None,
        sample_size: int | None = None,
        shingle_size: int | None = None,
        model_checkpoint_hours: float = 24.0,
    ) -> Fleet:
        """`memory_budget` (bytes, or a size such as "2GiB") keeps the ML models in memory
        within it, checkpointing the rest to the store; `num_trees`, `sample_size` and
        `shingle_size` set the fleet model of ML behaviours whose profile gives none
        (default: 10 trees, 256 samples, shingle 8). With a file `store`, a commit writes a
        model in full every `model_checkpoint_hours` (of window time; 0: at every commit)
        and in between only the rows it learned, replayed onto its checkpoint when the store
        is opened again (the same model either way)."""
    def configure(self, profile: Mapping[str, Any] | str) -> list[ViolationEvent]:
        """Sets the configuration (a CreateSecurityProfile dict or a bundle); returns the
        invalidations of changed or removed behaviours."""
    def ingest(self, datapoints: Iterable[Mapping[str, Any]] | Mapping[str, Any] | Any) -> list[ViolationEvent]:
        """Ingests datapoints (dicts or a DataFrame: thing, metric, value, timestamp[, topic])
        and commits, all or nothing."""
    def tick(self, now: _Time) -> list[ViolationEvent]:
        """Advances the clock without data."""
    def flush(self) -> list[ViolationEvent]:
        """Closes every open window."""
    def list_active_violations(
        self,
        *,
        thing: str | None = None,
        profile: str | None = None,
        criteria_type: str | None = None,
        list_suppressed_alerts: bool | None = None,
        verification_state: str | None = None,
    ) -> list[dict[str, Any]]:
        """Active violations (ListActiveViolations)."""
    def list_violation_events(
        self,
        start: _Time | None = None,
        end: _Time | None = None,
        *,
        thing: str | None = None,
        profile: str | None = None,
        criteria_type: str | None = None,
        list_suppressed_alerts: bool | None = None,
        verification_state: str | None = None,
    ) -> list[dict[str, Any]]:
        """Violation events in [start, end) (ListViolationEvents)."""
    def list_metric_values(
        self,
        thing: str,
        metric: str,
        start: _Time | None = None,
        end: _Time | None = None,
        *,
        dimension: str | None = None,
        not_in: bool = False,
    ) -> list[dict[str, Any]]:
        """A thing's stored values of a metric (ListMetricValues)."""
    def model_training_summaries(
        self, profile: str | None = None, *, per_thing: bool = False
    ) -> list[dict[str, Any]]:
        """GetBehaviorModelTrainingSummaries: modelStatus PENDING_BUILD / ACTIVE / EXPIRED,
        datapointsCollectedPercentage, dates in epoch seconds, and an "rcf" dict (scope,
        warming / active / evicted things, datapointsNeeded, the group model, perThing)."""
    @property
    def model_stats(self) -> dict[str, int]:
        """The model registry: resident, evicted, resident_bytes, peak_bytes, evictions,
        restores."""
    def add_to_group(self, group: str, thing: str) -> None:
        """Adds a thing to a thing group."""
    def remove_from_group(self, group: str, thing: str) -> list[ViolationEvent]:
        """Removes a thing from a group; returns the invalidations this causes."""
    def group(self, name: str) -> list[str]:
        """The things in a thing group."""
    @property
    def setup(self) -> dict[str, Any]:
        """The configuration as a bundle."""
    @property
    def counters(self) -> dict[str, int]:
        """Counts since the store was created."""
    @property
    def watermark(self) -> float | None:
        """The watermark, epoch seconds."""
    @property
    def things(self) -> int:
        """Things tracked."""
    @property
    def store(self) -> str:
        """The store's path, or ":memory:"."""
    def add_sink(
        self,
        sink: str | Callable[[list[dict[str, Any]]], object],
        *,
        name: str | None = None,
        batch: int = 100,
        rate_per_minute: int = 60,
        timeout_seconds: float = 5.0,
        retry_seconds: float = 1.0,
        incidents: bool = False,
    ) -> None:
        """Adds an alert sink: a spec ("webhook=http://HOST:PORT/PATH", "jsonl=PATH",
        "mqtt=mqtt://HOST:PORT/TOPIC", options after commas) or a callable given each batch
        of event dicts (incident dicts with incidents=True). Delivery is at least once from
        the store's outbox; an exception is a failed delivery, retried after a back-off."""
    def sink_status(self) -> list[dict[str, Any]]:
        """Per sink: pending, sent, gated, failures and the last error."""
    def respond(self) -> dict[str, int]:
        """Delivers what sinks are owed and runs pending mitigation actions now:
        delivered, batches, failed, pending, actions_run."""
    def put_verification_state(
        self,
        violation_id: str,
        state: str,
        description: str | None = None,
        feedback: str = "label-only",
        *,
        group: str | None = None,
        until: _Time | None = None,
        actor: str = "python",
    ) -> dict[str, Any]:
        """Labels a violation; feedback "label-only", "learn" (group=), "mute" (until=,
        group=) or "exclude-from-training". Returns the adjustment record."""
    def adjustments(self) -> list[dict[str, Any]]:
        """Every adjustment record, oldest first."""
    def revert_adjustment(self, adjustment_id: int, *, actor: str = "python") -> dict[str, Any]:
        """Reverts an adjustment's feedback; returns the revert record."""
    def incidents(self) -> list[dict[str, Any]]:
        """Incidents: violations that started together, grouped."""
    def mitigation_actions(self) -> list[dict[str, Any]]:
        """The configuration's mitigation actions."""
    def set_executor(
        self, executor: str | Callable[[dict[str, Any], dict[str, Any]], object]
    ) -> None:
        """Who runs policy, certificate and logging actions: a callable f(action, violation),
        "webhook=http://..." or "command=SHELL COMMAND"."""
    def start_mitigation_task(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """StartDetectMitigationActionsTask; its actions run at once. Returns the task."""
    def describe_mitigation_task(self, task_id: str) -> dict[str, Any]:
        """A task's status, statistics and executions."""
    def list_mitigation_tasks(self) -> list[dict[str, Any]]:
        """Every task, oldest first."""
    def cancel_mitigation_task(self, task_id: str) -> dict[str, Any]:
        """Cancels a task in progress (no rollback)."""
    def quarantine(self, thing: str, group: str = "quarantine") -> None:
        """Moves a thing into a quarantine thing group."""
    def release(self, thing: str, group: str = "quarantine") -> list[ViolationEvent]:
        """Takes a thing out of a quarantine group; returns the invalidations."""
    @classmethod
    def _from_state(cls, state: tuple[Any, ...]) -> Fleet: ...
    def __reduce__(self) -> tuple[Any, tuple[tuple[Any, ...]]]: ...
    def __copy__(self) -> Fleet: ...
    def __deepcopy__(self, memo: object) -> Fleet: ...

@final
class ShardResult:
    """What one `FleetShard.process` call did."""

    @property
    def events(self) -> list[ViolationEvent]:
        """The violation events, in the order raised."""
    @property
    def state(self) -> bytes:
        """The thing's new state (store it with the key)."""
    @property
    def rejected(self) -> list[tuple[int, str]]:
        """`(position, reason)` of each datapoint refused with `skip_invalid`."""
    @property
    def verdicts(self) -> list[dict[str, Any]]:
        """Every observation (with `verdicts=True`): profile, behavior, time, value, violating,
        score, grade, in_alarm."""
    @property
    def counters(self) -> dict[str, int]:
        """What the call counted: datapoints, late, unmonitored, windows, in_alarm, cleared,
        invalidated."""

@final
class FleetShard:
    """The fleet engine's work for one thing at a time, the thing's state passed in and out
    as bytes: what a Spark or Flink job runs per key (see `rcf.spark`).

    Refuses (ConfigError) what needs the whole fleet: statistical thresholds, ML scopes
    `group`/`hierarchical`, `rcf.missingData: violate`, behaviour mitigation actions.
    """

    def __new__(
        cls,
        profile: Mapping[str, Any] | str,
        *,
        grace_seconds: float = 60.0,
        max_future_seconds: float | None = 86400.0,
        strict: bool = False,
        seed: int = 0,
        num_trees: int | None = None,
        sample_size: int | None = None,
        shingle_size: int | None = None,
        verdicts: bool = False,
    ) -> FleetShard: ...
    def process(
        self,
        thing: str,
        state: bytes | None,
        datapoints: Sequence[str] | Sequence[Mapping[str, Any]] | Any,
        *,
        skip_invalid: bool = False,
    ) -> ShardResult:
        """Runs one thing's batch (JSON lines, dicts or a DataFrame) from its `state` (None
        for a new thing), in timestamp order. Raises InputError for a bad datapoint (or lists
        it in `rejected` with `skip_invalid`), StateError for bad state bytes; nothing is
        applied then."""
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]: ...
