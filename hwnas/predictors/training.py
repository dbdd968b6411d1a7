"""From measurements to a :class:`~hwnas.predictors.predictor.LatencyPredictor`.

* :func:`load_measurements` reads an hwnas profile (``.jsonl``) or any CSV or
  Parquet table of numeric columns and a latency column.
* :func:`fit_predictor` tunes and fits the physics + XGBoost predictor and
  writes everything the bundle needs into its manifest.
* :func:`transfer_predictor` adapts an existing predictor to a new device from
  a few measurements.
* :func:`evaluate_predictor` scores a predictor on measurements it never saw.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, InvalidData, PredictorMismatch
from hwnas.predictors.estimators import (
    UPPER_BOUND_METHOD, PhysicsXGBRegressor, conformal_margin, guaranteed_coverage, tune,
)
from hwnas.predictors.features import BYTES_PER_ELEMENT, INPUTS
from hwnas.predictors.metrics import evaluate
from hwnas.predictors.predictor import FORMAT, FORMAT_VERSION, LatencyPredictor, correction_features

#: The manifest's statement of what the upper bound guarantees (see estimators.guaranteed_coverage).
GUARANTEE = ("a new measurement lies below the bound with probability at least about 1 - 2 * (1 - coverage) under "
             "exchangeability (CV+ / jackknife+, Barber et al. 2021), not the 1 - (1 - coverage) of split conformal; "
             "typically close to coverage in practice")

__all__ = ["Measurements", "load_measurements", "fit_predictor", "transfer_predictor", "evaluate_predictor",
           "TRANSFER_FEATURES"]

#: Features of the transfer correction (log of the base prediction and of each input).
TRANSFER_FEATURES: tuple[str, ...] = ("base_log", *(f"log_{c}" for c in INPUTS))


@dataclass
class Measurements:
    """Latencies and their inputs.

    Attributes:
        X: ``n x k`` raw inputs (float64), columns named by ``inputs``.
        y: ``n`` latencies in ms.
        inputs: column names; :data:`~hwnas.predictors.features.INPUTS` for architectures.
        device: ``{"name", "threads", "dtype", "clock", "settings", "fingerprint"}``.
        space: search space name, or ``None``.
        source: where the data came from.
        reference: the profile's reference architecture and its median latency
            (:func:`hwnas.profiling.reference.fit_reference`), or ``None``.
    """

    X: np.ndarray
    y: np.ndarray
    inputs: tuple[str, ...] = INPUTS
    device: dict[str, Any] = field(default_factory=lambda: {"name": "unknown"})
    space: str | None = None
    source: str = ""
    reference: dict[str, Any] | None = None

    @property
    def is_table(self) -> bool:
        return self.inputs != INPUTS

    def subset(self, idx: Any) -> Measurements:
        return Measurements(self.X[idx], self.y[idx], self.inputs, self.device, self.space, self.source, self.reference)

    def __len__(self) -> int:
        return int(self.y.size)


def _single(values: Sequence[Any], what: str, path: Path) -> Any:
    uniq = sorted({json.dumps(v, sort_keys=True) for v in values})
    if len(uniq) > 1:
        raise InvalidData(f"{path} mixes {what} {', '.join(uniq)}; fit one predictor per {what}")
    return json.loads(uniq[0]) if uniq else None


def load_measurements(path: str | Path, *, target: str | None = None, features: Sequence[str] | None = None,
                      device: str | None = None) -> Measurements:
    """Read measurements from a profile or a table.

    Args:
        path: an hwnas profile (``.jsonl``), or a ``.csv`` / ``.parquet`` table.
        target: the latency column, in milliseconds (default ``latency_ms``).
        features: numeric input columns of a table. Default: the architecture
            inputs ``layers, hidden, heads, ffn, seq_len, batch_size``, which
            enable the analytic cost model.
        device: device name for a table without a ``device`` column.

    Raises:
        InvalidData: missing file or column, non-numeric or missing values, no
            rows, mixed devices or settings.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InvalidData(f"measurement file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        from hwnas.profiling.store import read_profile

        df = read_profile(path)
    elif suffix == ".csv":
        try:
            df = pd.read_csv(path)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InvalidData(f"{path} is not a readable CSV table: {exc}") from None
    elif suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except ImportError:
            raise InvalidData("reading Parquet needs pyarrow: pip install pyarrow") from None
        except Exception as exc:  # noqa: BLE001 (deliberate: pyarrow.ArrowInvalid and friends; pyarrow is optional)
            raise InvalidData(f"{path} is not a readable Parquet table: {type(exc).__name__}: {exc}") from None
    else:
        raise InvalidData(f"unknown measurement file type {path.suffix!r} ({path}); accepted: .jsonl profiles, .csv, .parquet")
    if len(df) == 0:
        raise InvalidData(f"{path} holds no measurements")
    target = target or "latency_ms"
    if target not in df.columns:
        raise InvalidData(f"{path} has no column {target!r} (the latency in ms); columns: {', '.join(map(str, df.columns))}")
    if features is None:
        missing = [c for c in INPUTS if c not in df.columns]
        if missing:
            raise InvalidData(
                f"{path} lacks {', '.join(missing)}; give the numeric input columns with --features a,b,c "
                f"(columns: {', '.join(map(str, df.columns))})"
            )
        inputs = INPUTS
    else:
        inputs = tuple(dict.fromkeys(str(f).strip() for f in features if str(f).strip()))
        if not inputs:
            raise InvalidConfig("--features must name at least one column")
        missing = [c for c in inputs if c not in df.columns]
        if missing:
            raise InvalidData(f"{path} has no column(s) {', '.join(missing)}; columns: {', '.join(map(str, df.columns))}")
        if target in inputs:
            raise InvalidConfig(f"the target {target!r} cannot also be a feature")
    cols = [*inputs, target]
    try:
        values = df[cols].apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        bad = [c for c in cols if pd.to_numeric(df[c], errors="coerce").isna().any() and not df[c].isna().any()]
        raise InvalidData(f"{path}: column(s) {', '.join(bad or cols)} must be numeric") from None
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidData(f"{path}: row {row + 1} has a missing or non-finite value in {', '.join(cols)}")
    X, y = values[:, :-1], values[:, -1]
    if np.any(y <= 0):
        raise InvalidData(f"{path}: {target} must be positive (milliseconds); row {int(np.argmax(y <= 0)) + 1} is {y[y <= 0][0]}")
    if inputs == INPUTS and (np.any(X < 1) or np.any(X != np.round(X))):
        raise InvalidData(f"{path}: architecture inputs {', '.join(INPUTS)} must be whole numbers >= 1")
    dev: dict[str, Any] = {"name": device or "unknown"}
    if "device" in df.columns:
        name = _single(df["device"].astype(str).tolist(), "devices", path)
        if device is not None and device != name:
            raise InvalidData(f"{path} holds measurements of device {name!r}, not {device!r}")
        dev["name"] = name
    for key in ("threads", "dtype"):
        if key in df.columns:
            vals = [None if v is None or (isinstance(v, float) and np.isnan(v)) else (int(v) if key == "threads" else v) for v in df[key]]
            dev[key] = _single(vals, key, path)
    if "clock" in df.columns or suffix == ".jsonl":
        # profiles written before clocks were recorded were timed with the wall clock
        clocks = sorted({c if isinstance(c, str) and c else "wall" for c in df.get("clock", ["wall"] * len(df))})
        if len(clocks) > 1:
            raise InvalidData(f"{path} mixes clocks ({', '.join(clocks)}): wall and thread-CPU times are not "
                              "comparable; fit one predictor per clock (profile again with one --clock)")
        dev["clock"] = clocks[0]
    if "settings" in df.columns:
        dev["settings"] = _single([s if isinstance(s, dict) else None for s in df["settings"]], "settings", path)
    if "fingerprint" in df.columns:
        fp = df["fingerprint"].iloc[0]
        dev["fingerprint"] = fp if isinstance(fp, dict) else None
    space = None
    if "space" in df.columns:
        spaces = {str(s) for s in df["space"] if isinstance(s, str) and s}
        space = spaces.pop() if len(spaces) == 1 else None
    reference = None
    if "reference_ms" in df.columns:
        from hwnas.profiling.reference import fit_reference

        reference = fit_reference(df.to_dict("records"))
        if reference is not None:
            reference["clock"] = dev.get("clock", "wall")
    return Measurements(X, y, inputs, dev, space, str(path), reference)


def _versions() -> dict[str, str | None]:
    from hwnas.devices.fingerprint import package_versions

    return {"python": platform.python_version(),
            **package_versions("hwnas", "xgboost", "numpy", "scikit-learn", "scipy")}


def _domain(meas: Measurements) -> dict[str, Any]:
    ranges = {c: [float(meas.X[:, j].min()), float(meas.X[:, j].max())] for j, c in enumerate(meas.inputs)}
    if not meas.is_table:
        ranges = {c: [int(a), int(b)] for c, (a, b) in ranges.items()}
    out: dict[str, Any] = {"n_samples": len(meas), "ranges": ranges,
                           "latency_ms": [float(meas.y.min()), float(meas.y.max())]}
    if not meas.is_table:
        out["shapes"] = sorted({(int(s), int(b)) for s, b in meas.X[:, 4:6]})
        out["shapes"] = [{"seq_len": s, "batch_size": b} for s, b in out["shapes"]]
    return out


def _round_metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(float(v), 6) if isinstance(v, float) else v) for k, v in m.items()}


def fit_predictor(meas: Measurements, *, seed: int = 0, n_folds: int = 5, coverage: float = 0.95,
                  grid: Mapping[str, Sequence[Any]] | None = None, tune_hyperparameters: bool = True,
                  params: Mapping[str, Any] | None = None) -> LatencyPredictor:
    """Fit the physics + XGBoost predictor on ``meas``.

    Hyper-parameters are chosen by seeded ``n_folds``-fold cross-validation
    (see :func:`~hwnas.predictors.estimators.tune`); the upper bound is
    calibrated on cross-fitted residuals. The manifest records the
    cross-validated metrics, the domain and the device.

    Args:
        params: fixed hyper-parameters (used as given when ``tune_hyperparameters`` is false,
            or as the starting point of the grid search).

    Raises:
        InvalidData: fewer than 5 measurements.
    """
    if len(meas) < 5:
        raise InvalidData(f"fitting a predictor needs at least 5 measurements; {meas.source or 'the data'} has {len(meas)}")
    if not 0 < coverage < 1:
        raise InvalidConfig(f"coverage must be between 0 and 1; got {coverage}")
    inputs = None if not meas.is_table else meas.inputs
    base = PhysicsXGBRegressor(inputs=inputs, coverage=coverage, n_folds=n_folds, seed=seed, **(params or {}))
    if tune_hyperparameters:
        est, _ = tune(base, meas.X, meas.y, grid=grid, n_folds=n_folds, seed=seed)
    else:
        est = base.fit(meas.X, meas.y)
    cv = evaluate(meas.y, est.oof_pred_)
    cv["upper_coverage"] = float(np.mean(meas.y <= est.oof_pred_ * np.exp(est.log_margin_)))
    dtype = meas.device.get("dtype") or "fp32"
    hyper = {k: v for k, v in est.get_params().items() if k not in ("inputs", "terms", "tree_features", "n_jobs")}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kind": "physics+xgboost",
        "inputs": list(meas.inputs),
        "input_kind": "table" if meas.is_table else "architecture",
        "features": {
            "physics_terms": list(est.terms_), "tree_features": list(est.tree_features_),
            "bytes_per_element": BYTES_PER_ELEMENT.get(dtype, 4),
            "definitions": "hwnas.predictors.features" if not meas.is_table else "input columns",
        },
        "target": {
            "name": "latency_ms",
            "unit": "ms",
            "transform": "log",
            "formula": "latency_ms = (intercept + sum_k coef[k] * physics_term_k) * "
                       "exp(booster(tree_features) + sum of corrections)",
        },
        "physics": {
            "terms": list(est.terms_), "intercept": float(est.physics_coef_[0]),
            "coef": {t: float(c) for t, c in zip(est.terms_, est.physics_coef_[1:], strict=True)},
            "fit": "non-negative least squares on relative error",
        },
        "model": {
            "file": "model.ubj", "format": "xgboost-ubj", "output": "log(latency_ms / physics_ms)",
            "hyperparameters": hyper, "monotone_constraints": est.monotone_constraints(),
            "num_trees": int(est.booster_.num_boosted_rounds()),
        },
        "corrections": [],
        "uncertainty": {
            "method": UPPER_BOUND_METHOD, "coverage": float(coverage),
            "guaranteed_coverage": guaranteed_coverage(coverage), "guarantee": GUARANTEE,
            "log_margin": float(est.log_margin_), "exact": bool(est.margin_exact_), "n_calibration": len(meas),
        },
        "device": {k: meas.device.get(k) for k in ("name", "threads", "dtype", "clock", "settings", "fingerprint")},
        "reference": meas.reference,
        "space": meas.space,
        "domain": _domain(meas),
        "metrics": {"cv": _round_metrics(cv), "cv_folds": int(n_folds), "seed": int(seed),
                    "cv_choice": getattr(est, "cv_chosen_", None)},
        "source": Path(meas.source).name if meas.source else None,
        "library_versions": _versions(),
        "members": {},
    }
    predictor = LatencyPredictor(manifest, est.booster_)
    predictor.cv_predictions_ = np.asarray(est.oof_pred_)  # cross-fitted (out-of-fold) ms, for parity plots; not saved
    return predictor


def _fit_ridge(G: np.ndarray, r: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardise ``G`` and fit ridge with the alpha chosen by efficient leave-one-out."""
    from sklearn.linear_model import RidgeCV

    mean = G.mean(axis=0)
    scale = G.std(axis=0)
    scale[scale < 1e-12] = 1.0
    if r.size < 3:
        return mean, scale, np.zeros(G.shape[1]), float(np.mean(r))
    model = RidgeCV(alphas=alphas).fit((G - mean) / scale, r)
    return mean, scale, np.asarray(model.coef_, dtype=np.float64), float(model.intercept_)


def transfer_predictor(base: LatencyPredictor, meas: Measurements, *, coverage: float = 0.95,
                       features: Sequence[str] | None = None, seed: int = 0) -> LatencyPredictor:
    """Adapt ``base`` to the device of ``meas`` from few measurements.

    A ridge regression on the log ratio of measured to base-predicted latency,
    over the log of the base prediction and of every input (standardised),
    with the penalty chosen by leave-one-out. Few samples give a heavily
    shrunk correction (close to a single scale factor); more samples let it
    re-weight how each dimension costs on the new device. The upper bound is
    calibrated on leave-one-out residuals.

    Raises:
        PredictorMismatch: ``meas`` has other inputs than ``base``.
        InvalidData: fewer than 2 measurements.
    """
    if tuple(base.manifest["inputs"]) != meas.inputs:
        raise PredictorMismatch(f"the base predictor takes {base.manifest['inputs']}; the measurements have {list(meas.inputs)}")
    if len(meas) < 2:
        raise InvalidData(f"transfer needs at least 2 measurements; got {len(meas)}")
    base_clock = (base.manifest.get("device") or {}).get("clock") or "wall"
    if meas.device.get("clock", base_clock) != base_clock:
        raise PredictorMismatch(f"the base predictor was fitted on {base_clock!r} clock times and the measurements "
                                f"use {meas.device.get('clock')!r}; a predictor does not mix clocks")
    names = tuple(features) if features is not None else (
        TRANSFER_FEATURES if not meas.is_table else ("base_log", *(f"log_{c}" for c in meas.inputs)))
    base_log = base.log_predict_raw(meas.X)
    G = correction_features(meas.X, names, base_log, meas.inputs)
    r = np.log(meas.y) - base_log
    # penalties on standardised features from 1 up: with a handful of samples even the
    # smallest keeps the correction close to a scale factor (LOO picks among them)
    alphas = np.logspace(0, 4, 9)
    mean, scale, coef, intercept = _fit_ridge(G, r, alphas)
    # Leave-one-out (10-fold beyond 40 samples) predictions for metrics and calibration.
    from sklearn.model_selection import KFold, LeaveOneOut

    n = len(meas)
    splitter = LeaveOneOut() if n <= 40 else KFold(10, shuffle=True, random_state=seed)
    oof = np.empty(n)
    for tr, te in splitter.split(G):
        m, s, c, b = _fit_ridge(G[tr], r[tr], alphas)
        oof[te] = ((G[te] - m) / s) @ c + b
    oof_pred = np.exp(base_log + oof)
    q, exact = conformal_margin(np.log(meas.y / oof_pred), coverage)
    manifest = json.loads(json.dumps(base.manifest))
    base_digest = hashlib.sha256(json.dumps(base.manifest, sort_keys=True).encode()).hexdigest()
    manifest["kind"] = "physics+xgboost+transfer"
    manifest["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["corrections"] = list(manifest.get("corrections") or []) + [{
        "method": "ridge on log(measured / base prediction), standardised features, alpha by leave-one-out",
        "features": list(names), "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(),
        "intercept": intercept, "n_samples": n, "from_device": base.manifest["device"],
    }]
    manifest["base"] = {"device": base.device, "space": base.space, "manifest_sha256": base_digest,
                        "source": base.manifest.get("source"), "domain": base.manifest.get("domain")}
    for key in ("name", "threads", "dtype", "clock", "settings", "fingerprint"):
        manifest["device"][key] = meas.device.get(key)
    manifest["reference"] = meas.reference  # the new device's reference; the base's stays under "base"
    manifest["base"]["fingerprint"] = (base.manifest.get("device") or {}).get("fingerprint")
    manifest["base"]["reference"] = base.manifest.get("reference")
    manifest["space"] = meas.space or base.space
    # The trees were trained on the base's domain; the transfer sample is recorded beside it.
    manifest["transfer_domain"] = _domain(meas)
    cv = evaluate(meas.y, oof_pred) if n >= 2 else {}
    cv["upper_coverage"] = float(np.mean(meas.y <= oof_pred * np.exp(q)))
    manifest["metrics"] = {"cv": _round_metrics(cv), "cv_folds": "leave-one-out" if n <= 40 else 10, "seed": seed,
                           "base_cv": base.manifest.get("metrics", {}).get("cv")}
    manifest["uncertainty"] = {
        "method": UPPER_BOUND_METHOD.replace("cross-fitted (out-of-fold)", "leave-one-out (10-fold beyond 40)")
        + ", on the transfer measurements",
        "coverage": float(coverage), "guaranteed_coverage": guaranteed_coverage(coverage), "guarantee": GUARANTEE,
        "log_margin": float(q), "exact": bool(exact), "n_calibration": n,
    }
    manifest["source"] = Path(meas.source).name if meas.source else None
    manifest["library_versions"] = _versions()
    manifest["members"] = {}
    predictor = LatencyPredictor(manifest, base.booster)
    predictor.cv_predictions_ = oof_pred  # leave-one-out / 10-fold ms, for parity plots; not saved
    return predictor


def evaluate_predictor(predictor: LatencyPredictor, meas: Measurements) -> dict[str, Any]:
    """Metrics of ``predictor`` on ``meas`` (see :func:`~hwnas.predictors.metrics.evaluate`),
    plus ``upper_coverage``: the share of measurements below the upper bound."""
    if tuple(predictor.manifest["inputs"]) != meas.inputs:
        raise PredictorMismatch(f"the predictor takes {predictor.manifest['inputs']}; the measurements have {list(meas.inputs)}")
    pred = np.exp(predictor.log_predict_raw(meas.X))
    out = evaluate(meas.y, pred)
    out["upper_coverage"] = float(np.mean(meas.y <= pred * np.exp(float(predictor.manifest["uncertainty"]["log_margin"]))))
    return out
