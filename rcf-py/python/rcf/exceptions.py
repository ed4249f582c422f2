"""Exceptions raised by rcf. Invalid parameters and bad input are also ``ValueError``s."""


class RcfError(Exception):
    """Base class of every rcf error."""


class ConfigError(RcfError, ValueError):
    """A parameter is out of range; the message names it and the value given."""


class DimensionError(RcfError, ValueError):
    """An array has the wrong shape or is empty."""


class InputError(RcfError, ValueError):
    """A value is not acceptable here (NaN or infinite where only finite values make sense)."""


class StateError(RcfError):
    """Saved bytes are not a valid state: corrupt, truncated, foreign or from another version."""


class NotFittedError(RcfError, ValueError, AttributeError):
    """A scikit-learn style method needs ``fit`` first (like scikit-learn's own)."""
