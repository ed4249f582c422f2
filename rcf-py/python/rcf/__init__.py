"""rcf: fast, exactly defined Random Cut Forest anomaly detection for telemetry streams.

``RandomCutForest`` is the forest; ``Detector`` the streaming detector around it (normalisation,
calibrated thresholds, one alarm per event, explanations, bootstrap, checkpoints); ``Fleet`` the
fleet engine (AWS IoT Device Defender security profiles: rules, fleet percentiles and a per-thing
ML model; alarms, ``ViolationEvent``s and metric history in SQLite); ``FleetShard`` its per-thing
work with the state as bytes, for stream processors (``rcf.spark`` runs it on Apache Spark).
"""

from rcf._rcf import (
    Detector,
    Fleet,
    FleetShard,
    RandomCutForest,
    ShardResult,
    StateDigest,
    Verdict,
    ViolationEvent,
    __version__,
)
from rcf.exceptions import (
    ConfigError,
    DimensionError,
    InputError,
    NotFittedError,
    RcfError,
    StateError,
)

__all__ = [
    "ConfigError",
    "Detector",
    "DimensionError",
    "Fleet",
    "FleetShard",
    "InputError",
    "NotFittedError",
    "RandomCutForest",
    "RcfError",
    "ShardResult",
    "StateDigest",
    "StateError",
    "Verdict",
    "ViolationEvent",
    "__version__",
]
