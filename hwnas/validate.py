"""Semantic checks of what hwnas loads: bundles, profiles, tensors, and limits of this machine.

Format checks (a zip with the right members, JSON that parses, checksums that
match) live with each format. These checks are about meaning: a manifest can be
well-formed, correctly checksummed and still describe a predictor that cannot
be right (NaN coefficients, a negative margin that puts the upper bound below
the prediction, a device label that disagrees with the recorded fingerprint).
Each failure is one line naming the file and the field.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import BundleError

__all__ = ["check_bundle_manifest", "check_predictor_runs", "ProfileQuality", "check_profile_quality", "DataQualityWarning",
           "check_finite_tensors", "estimate_memory_bytes", "available_memory_bytes", "OUTLIER_RATIO",
           "PHYSICS_OUTLIER_RATIO", "PHYSICS_EXCLUDE_SHARE", "PHYSICS_MIN_RECORDS", "physics_outliers"]

#: A record this many times slower (or faster) than a twin of the same architecture and shape is flagged.
OUTLIER_RATIO = 10.0

#: A record this many times slower (or faster) than the physical cost model fitted on its own profile predicts
#: is flagged as a gross outlier.
PHYSICS_OUTLIER_RATIO = 5.0

#: ``predictor fit`` leaves physics outliers out only while they are at most this share of the records; more
#: than that says the cost model does not describe the device, and every record is kept.
PHYSICS_EXCLUDE_SHARE = 0.10

#: Fewest records (of one device and settings) the physics check fits its cost model on: four per coefficient
#: of the 11-term model and its intercept. Smaller profiles are checked against twins only.
PHYSICS_MIN_RECORDS = 48

#: Predictions inside a bundle's training domain must lie within this factor of its measured latency range.
PREDICTION_SLACK = 20.0

#: Fingerprint keys only one family of devices records -> the prefix of that family's device names.
_FINGERPRINT_FAMILIES = (("execution_provider", "onnxruntime"), ("torch_config", "cpu"))


class DataQualityWarning(UserWarning):
    """Input data that loads but looks wrong (duplicates merged, outliers flagged)."""


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_bundle_manifest(path: str | Path, manifest: Mapping[str, Any]) -> None:
    """Refuse a verified-but-meaningless manifest.

    Checks: the physical model's intercept and coefficients are finite and
    non-negative (a latency is a sum of non-negative costs); every physics term
    and tree feature is a feature hwnas knows (or, for a table predictor, one of
    its inputs); the upper-bound margin is finite and >= 0 and the coverage in
    (0, 1); transfer corrections are finite; the device name agrees with the
    device the fingerprint was taken on, when it records one.

    Raises:
        BundleError: the first meaningless field, named.
    """
    from hwnas.predictors.features import FEATURE_NAMES, INPUTS

    where = str(path)
    phys = manifest.get("physics")
    if not isinstance(phys, Mapping):
        raise BundleError(f"{where}: manifest 'physics' must be a mapping")
    terms = phys.get("terms")
    coef = phys.get("coef")
    if not isinstance(terms, list) or not isinstance(coef, Mapping):
        raise BundleError(f"{where}: manifest physics needs a list of terms and a mapping of coefficients")
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise BundleError(f"{where}: manifest 'inputs' must be a list of column names")
    known = set(FEATURE_NAMES) | set(INPUTS) | set(inputs)
    for name in terms:
        if not isinstance(name, str) or name not in known:
            raise BundleError(f"{where}: physics term {name!r} is not a feature hwnas knows")
        if name not in coef:
            raise BundleError(f"{where}: physics term {name!r} has no coefficient")
    for name, value in [("intercept", phys.get("intercept")), *((f"coef[{t}]", coef[t]) for t in terms)]:
        if not _finite_number(value):
            raise BundleError(f"{where}: physics {name} must be a finite number; got {value!r}")
        if value < 0:
            raise BundleError(f"{where}: physics {name} must be >= 0 (latency is a sum of non-negative costs); "
                              f"got {value!r}")
    feats = manifest.get("features")
    tree = feats.get("tree_features") if isinstance(feats, Mapping) else None
    if not isinstance(tree, list):
        raise BundleError(f"{where}: manifest features.tree_features must be a list")
    unknown = [t for t in tree if not isinstance(t, str) or t not in known]
    if unknown:
        raise BundleError(f"{where}: tree feature(s) {', '.join(map(repr, unknown))} are not features hwnas knows")
    unc = manifest.get("uncertainty")
    if not isinstance(unc, Mapping):
        raise BundleError(f"{where}: manifest 'uncertainty' must be a mapping")
    margin, coverage = unc.get("log_margin"), unc.get("coverage")
    if not _finite_number(margin) or margin < 0:
        raise BundleError(f"{where}: uncertainty.log_margin must be a finite number >= 0 (the upper bound may not lie "
                          f"below the prediction); got {margin!r}")
    if not _finite_number(coverage) or not 0 < coverage < 1:
        raise BundleError(f"{where}: uncertainty.coverage must be a number in (0, 1); got {coverage!r}")
    corrections = manifest.get("corrections") or []
    if not isinstance(corrections, list):
        raise BundleError(f"{where}: manifest 'corrections' must be a list")
    for i, corr in enumerate(corrections):
        values = [corr.get("intercept")] if isinstance(corr, Mapping) else [None]
        if isinstance(corr, Mapping):
            for key in ("mean", "scale", "coef"):
                seq = corr.get(key)
                values.extend(seq if isinstance(seq, list) else [None])
        if not all(_finite_number(v) for v in values):
            raise BundleError(f"{where}: transfer correction {i} holds a value that is not a finite number")
    device = manifest.get("device")
    if not isinstance(device, Mapping) or not isinstance(device.get("name"), str) or not device["name"]:
        raise BundleError(f"{where}: manifest device.name must be a device name")
    settings = device.get("settings") if isinstance(device.get("settings"), Mapping) else {}
    fp = device.get("fingerprint") if isinstance(device.get("fingerprint"), Mapping) else {}
    for label, value in (("device.threads", device.get("threads")), ("device.settings.threads", settings.get("threads"))):
        if value is not None and fp.get("threads") is not None and value != fp["threads"]:
            raise BundleError(f"{where}: {label} is {value!r} but the fingerprint recorded threads={fp['threads']!r}")
    for key, family in _FINGERPRINT_FAMILIES:
        if key in fp:
            if not device["name"].startswith(family):
                raise BundleError(f"{where}: the device label {device['name']!r} disagrees with the fingerprint, "
                                  f"which was taken by a {family} device (it records {key})")
            break
    domain = manifest.get("domain")
    ranges = domain.get("ranges", {}) if isinstance(domain, Mapping) else None
    if not isinstance(ranges, Mapping):
        raise BundleError(f"{where}: manifest domain.ranges must map inputs to [min, max]")
    for name, span in ranges.items():
        if not (isinstance(span, list) and len(span) == 2 and all(_finite_number(v) for v in span) and span[0] <= span[1]):
            raise BundleError(f"{where}: domain range of {name!r} must be [min, max] with finite min <= max; got {span!r}")
    lat = domain.get("latency_ms") if isinstance(domain, Mapping) else None
    if not (isinstance(lat, list) and len(lat) == 2 and all(_finite_number(v) and v > 0 for v in lat)):
        raise BundleError(f"{where}: domain.latency_ms must be two positive finite numbers; got {lat!r}")


class ProfileQuality:
    """What :func:`check_profile_quality` found: duplicates merged, outliers flagged.

    Attributes:
        records: the records, exact duplicates merged.
        duplicates: how many copies were merged.
        outliers: ``(architecture and shape, latency_ms)`` of records far from their twins.
        physics_outliers: ``(architecture and shape, latency_ms, predicted_ms)`` of records far from
            the physical cost model fitted on the same profile (:func:`physics_outliers`).
    """

    def __init__(self, records: list[dict[str, Any]], duplicates: int, outliers: list[tuple[str, float]],
                 physics_outliers: list[tuple[str, float, float]] | None = None) -> None:
        self.records = records
        self.duplicates = duplicates
        self.outliers = outliers
        self.physics_outliers = physics_outliers or []


def _describe(r: Mapping[str, Any]) -> str:
    return f"L{r['layers']}-H{r['hidden']}-A{r['heads']}-I{r['ffn']} seq {r.get('seq_len')} batch {r.get('batch_size')}"


def physics_outliers(X, y, *, ratio: float = PHYSICS_OUTLIER_RATIO):
    """Which measurements lie more than ``ratio`` times from the physical cost model fitted on them all.

    The model is the predictors' physical one (latency = an intercept plus
    non-negative costs per layer, per head, per FLOP and per byte moved, the terms
    of :data:`~hwnas.predictors.estimators.PHYSICS_TERMS`), fitted robustly:
    started from the relative least-squares fit the predictors use, then refitted
    on ``log(latency)`` with a soft-L1 loss (``scipy.optimize.least_squares``), so
    that a gross outlier, slow or fast, cannot pull the model towards itself. With
    fewer than :data:`PHYSICS_MIN_RECORDS` measurements nothing is flagged: a
    smaller profile cannot outvote one of its records reliably.

    Args:
        X: ``n x 6`` raw inputs (layers, hidden, heads, ffn, seq_len, batch_size).
        y: ``n`` latencies in ms, all positive.

    Returns:
        ``(mask, predicted_ms)``: a boolean ``n``-vector of outliers and the model's
        latency for every row (``None`` when there were too few rows to fit).
    """
    import numpy as np
    from scipy.optimize import least_squares

    from hwnas.predictors.estimators import PHYSICS_TERMS, fit_nnls
    from hwnas.predictors.features import featurize

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n < PHYSICS_MIN_RECORDS:
        return np.zeros(n, dtype=bool), None
    A = np.column_stack([np.ones(n), featurize(X, PHYSICS_TERMS)])
    scale = np.linalg.norm(A / y[:, None], axis=0)
    scale[scale == 0] = 1.0
    A /= scale  # columns of comparable size, for both solvers
    log_y = np.log(y)
    start = np.maximum(fit_nnls(A, y), 1e-6)
    fit = least_squares(lambda c: np.log(np.maximum(A @ c, 1e-12)) - log_y, start, bounds=(0.0, np.inf),
                        loss="soft_l1", f_scale=0.1, max_nfev=200)
    pred = np.maximum(A @ fit.x, 1e-12)
    return np.abs(log_y - np.log(pred)) > math.log(ratio), pred


def _physics_check(records: Sequence[Mapping[str, Any]], ratio: float) -> list[tuple[str, float, float]]:
    """:func:`physics_outliers` per device and settings group of ``records``."""
    import numpy as np

    from hwnas.predictors.features import INPUTS

    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        v = r.get("latency_ms")
        if _finite_number(v) and v > 0 and all(_finite_number(r.get(k)) and r.get(k) >= 1 for k in INPUTS):
            groups[str([r.get(k) for k in ("device", "dtype", "threads", "clock")])].append(r)
    found = []
    for group in groups.values():
        X = np.array([[r[k] for k in INPUTS] for r in group], dtype=np.float64)
        y = np.array([r["latency_ms"] for r in group], dtype=np.float64)
        mask, pred = physics_outliers(X, y, ratio=ratio)
        found += [(_describe(group[i]), float(y[i]), float(pred[i])) for i in np.flatnonzero(mask)]
    return found


def _twin_key(r: Mapping[str, Any]) -> str:
    import json

    return json.dumps([r.get(k) for k in ("layers", "hidden", "heads", "ffn", "batch_size", "seq_len", "device", "dtype",
                                          "threads", "clock")], default=str)


def check_profile_quality(records: Sequence[dict[str, Any]], *, where: str = "profile",
                          ratio: float = OUTLIER_RATIO, physics_ratio: float = PHYSICS_OUTLIER_RATIO) -> ProfileQuality:
    """Merge exact duplicate records and flag gross outliers against their twins and against physics.

    An exact duplicate (every field equal, timestamps included) is a copy, not a
    second measurement: it would shrink a cross-validated error by letting each
    row's copy sit in the training folds. Duplicates are merged and counted. A
    record whose latency differs from the median of its twins (same architecture,
    shape, device and settings) by more than ``ratio`` times is flagged; it is
    kept (the user decides), and a :class:`DataQualityWarning` names how many.
    So is a record more than ``physics_ratio`` times from what the physical cost
    model fitted on the same profile (same device and settings) predicts
    (:func:`physics_outliers`): a measurement no cost of the architecture explains,
    such as one taken while the machine was busy. ``hwnas predictor fit`` then
    leaves those out (see :data:`PHYSICS_EXCLUDE_SHARE`).
    """
    import json

    seen: set[str] = set()
    kept: list[dict[str, Any]] = []
    for r in records:
        key = json.dumps(r, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        kept.append(r)
    duplicates = len(records) - len(kept)
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in kept:
        v = r.get("latency_ms")
        if _finite_number(v) and v > 0:
            groups[_twin_key(r)].append(float(v))
    outliers = []
    for r in kept:
        twins = groups.get(_twin_key(r), [])
        v = r.get("latency_ms")
        if len(twins) < 2 or not (_finite_number(v) and v > 0):
            continue
        ordered = sorted(twins)
        mid = ordered[(len(ordered) - 1) // 2]  # the lower median: noise on a shared machine only slows things down
        if max(v / mid, mid / v) > ratio:
            outliers.append((_describe(r), float(v)))
    physics = _physics_check(kept, physics_ratio)
    if duplicates:
        warnings.warn(f"{where}: merged {duplicates} exact duplicate record(s) (copies, not new measurements)",
                      DataQualityWarning, stacklevel=2)
    if outliers:
        first, ms = outliers[0]
        warnings.warn(f"{where}: {len(outliers)} record(s) differ more than {ratio:g}x from a twin measurement of the "
                      f"same architecture and shape (e.g. {first}: {ms:.3g} ms); check them", DataQualityWarning,
                      stacklevel=2)
    if physics:
        first, ms, pred = physics[0]
        then = ("`hwnas predictor fit` leaves them out (--keep-outliers keeps them)"
                if len(physics) <= PHYSICS_EXCLUDE_SHARE * len(kept) else
                f"more than {PHYSICS_EXCLUDE_SHARE:.0%} of the records, so the model may not describe this device "
                "and they are kept")
        warnings.warn(f"{where}: {len(physics)} of {len(kept)} record(s) lie more than {physics_ratio:g}x from the "
                      f"physical cost model fitted on this profile (e.g. {first}: {ms:.3g} ms, the model says "
                      f"{pred:.3g} ms); {then}", DataQualityWarning, stacklevel=2)
    return ProfileQuality(kept, duplicates, outliers, physics)


def check_finite_tensors(tensors: Mapping[str, Any], *, where: str, error: type[Exception]) -> None:
    """Refuse NaN or infinite values in any floating-point tensor of ``tensors``."""
    import torch

    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise error(f"{where}: tensor {name} holds NaN or infinite values; the file is damaged")


def estimate_memory_bytes(arch, *, seq_len: int = 128, batch_size: int = 1, training: bool = False,
                          dtype_bytes: int = 4) -> int:
    """A lower estimate of the memory an encoder needs, in bytes.

    Weights (``num_parameters``), times 4 when training (gradients and two AdamW
    moments), plus per layer the activations of one forward pass: attention scores
    ``batch x heads x seq x seq`` and the FFN intermediate ``batch x seq x ffn``
    (kept for backward when training).
    """
    params = arch.num_parameters()
    weights = params * dtype_bytes * (4 if training else 1)
    per_layer = batch_size * (arch.heads * seq_len * seq_len + seq_len * (arch.ffn + 4 * arch.hidden)) * dtype_bytes
    activations = per_layer * (arch.layers if training else 1)
    return int(weights + activations)


def available_memory_bytes() -> int | None:
    """Memory available to new allocations (``MemAvailable`` of /proc/meminfo, or psutil), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 (deliberate probe: psutil missing or unsupported platform)
        return None


def check_predictor_runs(path: str | Path, predictor) -> None:
    """Predict at the corners of the training domain, through both tree paths; refuse a model that cannot.

    Catches model bytes altered with recomputed checksums: XGBoost may read them and
    then fail, or produce NaN, only when first asked for a prediction.
    """
    import numpy as np

    lo, hi = np.asarray(predictor._lo, dtype=np.float64), np.asarray(predictor._hi, dtype=np.float64)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return  # no recorded domain to predict at (the manifest checks above still hold)
    rows = np.stack([lo, hi, (lo + hi) / 2])
    try:
        small = predictor.log_predict_raw(rows)  # the numpy tree walk for small batches
        large = predictor.log_predict_raw(np.repeat(rows, 20, axis=0))[::20]  # XGBoost's own predict
    except Exception as exc:  # noqa: BLE001 (deliberate: whatever a damaged model raises)
        raise BundleError(f"{path}: the model cannot predict ({type(exc).__name__}: {str(exc)[:80]})") from None
    if not (np.all(np.isfinite(small)) and np.all(np.isfinite(large))):
        raise BundleError(f"{path}: the model predicts non-finite latencies; the bundle is damaged")
    if not np.allclose(small, large, rtol=1e-4, atol=1e-4):
        raise BundleError(f"{path}: the model's trees disagree with XGBoost's own prediction; the bundle is damaged")
    lat = (predictor.manifest.get("domain") or {}).get("latency_ms")
    if isinstance(lat, list) and len(lat) == 2:
        lo_ms, hi_ms = float(lat[0]) / PREDICTION_SLACK, float(lat[1]) * PREDICTION_SLACK
        ms = np.exp(small)
        if np.any(ms < lo_ms) or np.any(ms > hi_ms):
            raise BundleError(f"{path}: inside its own training domain the model predicts {ms.min():.3g}..{ms.max():.3g} "
                              f"ms, far outside the {lat[0]:.3g}..{lat[1]:.3g} ms it was trained on; the manifest's "
                              "coefficients were altered")
