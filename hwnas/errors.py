"""The one exception family of hwnas.

Every error hwnas raises on purpose derives from :class:`HwnasError`. Errors
caused by what the user asked for (a bad architecture, an unknown device, a
corrupt file) carry ``exit_code = 2``; failures while doing valid work carry
``exit_code = 1``. The CLI prints ``str(error)`` as one line and exits with
that code; tracebacks only appear with ``hwnas --debug``.
"""

from __future__ import annotations

import numbers

__all__ = [
    "check_int",
    "HwnasError",
    "InvalidArchitecture",
    "InvalidSpace",
    "InvalidConfig",
    "InvalidData",
    "UnknownDevice",
    "DeviceUnavailable",
    "ProfilingError",
    "ProfileStoreError",
    "PredictorMismatch",
    "BundleError",
    "NotFittedError",  # noqa: F822  (built on first use by __getattr__ below)
    "ClusterError",
    "TrainingDiverged",
]


class HwnasError(Exception):
    """Base class of all hwnas errors."""

    exit_code = 1


class _UsageError(HwnasError):
    """Errors caused by input the user gave; the CLI exits with code 2."""

    exit_code = 2


class InvalidArchitecture(_UsageError, ValueError):
    """An architecture is malformed or outside the space it is checked against."""


class InvalidSpace(_UsageError, ValueError):
    """A search space definition (built-in name or file) is invalid."""


class InvalidConfig(_UsageError, ValueError):
    """A configuration value is out of range or of the wrong type."""


class InvalidData(_UsageError, ValueError):
    """An input data file is missing, empty or malformed."""


class UnknownDevice(_UsageError, ValueError):
    """A device name is not registered."""


class DeviceUnavailable(_UsageError, RuntimeError):
    """A registered device cannot run here (missing package, missing hardware)."""


class ProfilingError(HwnasError, RuntimeError):
    """Profiling an architecture failed (export, verification, runtime error)."""


class ProfileStoreError(_UsageError, ValueError):
    """A profile file cannot be read, or cannot be resumed with these settings."""


class PredictorMismatch(_UsageError, ValueError):
    """A predictor is asked about a device, space or feature set it was not made for."""


class BundleError(_UsageError, ValueError):
    """A predictor bundle is corrupt, truncated, tampered with or of an unknown format."""


class ClusterError(_UsageError, RuntimeError):
    """A Ray cluster cannot be used as asked: Ray missing, address unreachable,
    no node offering the device resource, or nodes of different kinds mixed."""


class TrainingDiverged(HwnasError, RuntimeError):
    """Training produced a non-finite loss; it stopped before the weights were updated (exit code 1)."""


def __getattr__(name: str) -> type:
    # NotFittedError is scikit-learn's own (so sklearn's checks and callers catching
    # sklearn.exceptions.NotFittedError see it) and an HwnasError. It is built on first use:
    # importing scikit-learn here would slow every ``hwnas`` command down.
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError as SklearnNotFittedError

        class NotFittedError(HwnasError, SklearnNotFittedError):
            """An estimator was used before ``fit`` (scikit-learn's ``NotFittedError``: a ValueError and AttributeError)."""

        NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"
        globals()[name] = NotFittedError
        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_int(name: str, value: object, minimum: int = 1, *, none_ok: bool = False,
              error: type[HwnasError] = InvalidConfig) -> int | None:
    """``value`` as an ``int``; raises ``error`` ("NAME must be an integer >= MINIMUM; got VALUE") unless it is an
    integer (a numpy integer too, never a bool) of at least ``minimum``, or ``None`` when ``none_ok``."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}{' or None' if none_ok else ''}; got {value!r}")
    return int(value)
