"""rcf: fast, exactly defined Random Cut Forest anomaly detection for telemetry streams.

``RandomCutForest`` is the forest; ``Detector`` the streaming detector around it (normalisation,
calibrated thresholds, one alarm per event, explanations, bootstrap, checkpoints); ``Fleet`` the
fleet engine (AWS IoT Device Defender security profiles: rules, fleet percentiles and a per-thing
ML model; alarms, ``ViolationEvent``s and metric history in SQLite).
"""

from rcf._rcf import Detector, Fleet, RandomCutForest, Verdict, ViolationEvent, __version__
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
    "InputError",
    "NotFittedError",
    "RandomCutForest",
    "RcfError",
    "StateError",
    "Verdict",
    "ViolationEvent",
    "__version__",
]
