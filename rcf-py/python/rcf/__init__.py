"""rcf: fast, exactly defined Random Cut Forest anomaly detection for telemetry streams.

``RandomCutForest`` is the forest; ``Detector`` the streaming detector around it (normalisation,
calibrated thresholds, one alarm per event, explanations, bootstrap, checkpoints).
"""

from rcf._rcf import Detector, RandomCutForest, Verdict, __version__
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
    "InputError",
    "NotFittedError",
    "RandomCutForest",
    "RcfError",
    "StateError",
    "Verdict",
    "__version__",
]
