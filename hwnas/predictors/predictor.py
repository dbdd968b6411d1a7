"""The fitted, portable latency predictor: what a bundle holds and what search calls.

A :class:`LatencyPredictor` is built from a fitted
:class:`~hwnas.predictors.estimators.PhysicsXGBRegressor` (or loaded from a
``.hwnas`` bundle) and computes, for ``n`` rows of inputs::

    log(latency_ms) = log(c0 + sum_k c_k * term_k(x))      # physical model
                    + booster(tree_features(x))              # XGBoost correction
                    + correction(x)                          # transfer, if any

Its state is plain numbers (JSON in the manifest) plus one ``xgboost.Booster``;
nothing is pickled.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.errors import InvalidData, PredictorMismatch
from hwnas.predictors.features import INPUTS, featurize, input_array

__all__ = ["LatencyPredictor", "OutOfDomainWarning", "FORMAT", "FORMAT_VERSION"]

FORMAT = "hwnas-predictor"
FORMAT_VERSION = 1

#: Rows predicted per chunk: keeps the feature matrices in cache.
_CHUNK = 16384
#: Up to this many rows the trees are walked with numpy instead of XGBoost's call.
_SMALL_BATCH = 32


class OutOfDomainWarning(UserWarning):
    """Inputs outside the ranges a predictor was trained on (trees do not extrapolate)."""


class LatencyPredictor:
    """Latency in milliseconds for architectures at a shape, on one device.

    Attributes:
        manifest: everything about the predictor (device, domain, metrics, versions).
        device: device name of the training measurements (e.g. ``"cpu"``).
        space: the search space name of the training data, or ``None``.
        booster: the ``xgboost.Booster`` of the correction.
    """

    def __init__(self, manifest: dict[str, Any], booster: Any) -> None:
        self.manifest = manifest
        self.booster = booster
        phys = manifest["physics"]
        self._terms = tuple(phys["terms"])
        self._coef = np.asarray([phys["intercept"], *(phys["coef"][t] for t in self._terms)], dtype=np.float64)
        feats = manifest["features"]
        self._tree_features = tuple(feats["tree_features"])
        self._inputs = tuple(manifest["inputs"])
        self._bytes = float(feats.get("bytes_per_element", 4))
        # Transfer corrections, applied in order (a predictor transferred twice has two).
        self._corr = [
            (
                tuple(c["features"]), np.asarray(c["mean"], dtype=np.float64), np.asarray(c["scale"], dtype=np.float64),
                np.asarray(c["coef"], dtype=np.float64), float(c["intercept"]),
            )
            for c in manifest.get("corrections") or []
        ]
        self._log_margin = float(manifest["uncertainty"]["log_margin"])
        self._small = SmallBatchTrees.from_booster(booster)
        domain = manifest.get("domain", {}).get("ranges", {})
        self._lo = np.array([domain.get(c, [-np.inf, np.inf])[0] for c in self._inputs], dtype=np.float64)
        self._hi = np.array([domain.get(c, [-np.inf, np.inf])[1] for c in self._inputs], dtype=np.float64)

    # ------------------------------------------------------------ identity
    @property
    def device(self) -> str:
        return str(self.manifest["device"]["name"])

    @property
    def space(self) -> str | None:
        return self.manifest.get("space")

    @property
    def coverage(self) -> float:
        """Nominal probability that a measurement lies below :meth:`predict_upper` (the calibration target)."""
        return float(self.manifest["uncertainty"]["coverage"])

    @property
    def guaranteed_coverage(self) -> float:
        """The probability the bound guarantees: about ``1 - 2 * (1 - coverage)`` (CV+ / jackknife+; see
        :func:`hwnas.predictors.estimators.guaranteed_coverage`). Bundles written before it was recorded get
        the same formula."""
        unc = self.manifest["uncertainty"]
        return float(unc.get("guaranteed_coverage", max(0.0, 1.0 - 2.0 * (1.0 - float(unc["coverage"])))))

    @property
    def is_table(self) -> bool:
        """True when fitted on a table of arbitrary numeric columns rather than architectures."""
        return self._inputs != INPUTS

    def check_device(self, name: str, override: bool = False, *, threads: int | None = None,
                     dtype: str | None = None, clock: str | None = None) -> None:
        """Refuse to serve another device than the one measured.

        Args:
            name: the device the caller wants latencies for.
            override: accept the mismatch (a warning is still issued).
            threads, dtype, clock: when given, also compared with the training settings.

        Raises:
            PredictorMismatch: a difference, unless ``override``.
        """
        settings = self.manifest["device"].get("settings") or {}
        diffs = []
        if name != self.device:
            diffs.append(f"device {name!r} (predictor: {self.device!r})")
        if threads is not None and settings.get("threads") not in (None, threads):
            diffs.append(f"threads={threads} (predictor: {settings.get('threads')})")
        if dtype is not None and settings.get("dtype") not in (None, dtype):
            diffs.append(f"dtype={dtype!r} (predictor: {settings.get('dtype')!r})")
        fitted_clock = self.manifest["device"].get("clock") or "wall"
        if clock is not None and clock != fitted_clock:
            diffs.append(f"clock={clock!r} (predictor: {fitted_clock!r})")
        if not diffs:
            return
        message = f"this predictor was fitted on other measurements: asked for {', '.join(diffs)}"
        if override:
            warnings.warn(message + "; using it anyway because of the override", UserWarning, stacklevel=2)
            return
        raise PredictorMismatch(message + "; profile that device and fit a predictor (or transfer one with --base), "
                                "or override the check")

    # ------------------------------------------------------------ predict
    def predict(self, archs: Any, *, seq_len: int | Sequence[int] = 128, batch_size: int | Sequence[int] = 1) -> np.ndarray:
        """Predicted latency in ms, one per architecture (an ``n``-vector of float64).

        Args:
            archs: ``n`` :class:`~hwnas.space.Architecture` objects, or an int array
                ``n x 4`` (layers, hidden, heads, ffn) or ``n x 6`` (with seq_len, batch_size).
            seq_len, batch_size: the input shape, one for all or one per row.

        Warns:
            OutOfDomainWarning: some rows lie outside the training ranges.
        """
        if self.is_table:
            raise PredictorMismatch(
                f"this predictor was fitted on table columns {list(self._inputs)}, not on architectures; "
                "use predict_table"
            )
        raw = input_array(archs, seq_len=seq_len, batch_size=batch_size)
        return self._predict_raw(raw)

    def predict_upper(self, archs: Any, *, seq_len: int | Sequence[int] = 128,
                      batch_size: int | Sequence[int] = 1) -> np.ndarray:
        """Calibrated upper bound in ms: a new measurement lies below it with nominal probability
        :attr:`coverage`, guaranteed about :attr:`guaranteed_coverage` (margin from cross-fitted residuals,
        applied to the refitted model: CV+ / jackknife+). An ``n``-vector."""
        return self.predict(archs, seq_len=seq_len, batch_size=batch_size) * math.exp(self._log_margin)

    def predict_table(self, table: Any) -> np.ndarray:
        """Latency in ms for rows of a table (DataFrame or mapping of columns) with the input columns."""
        if hasattr(table, "columns"):
            missing = [c for c in self._inputs if c not in table.columns]
            if missing:
                raise PredictorMismatch(f"the table lacks column(s) {missing}; this predictor needs {list(self._inputs)}")
            raw = table[list(self._inputs)].to_numpy(dtype=np.float64)
        elif isinstance(table, Mapping):
            missing = [c for c in self._inputs if c not in table]
            if missing:
                raise PredictorMismatch(f"missing column(s) {missing}; this predictor needs {list(self._inputs)}")
            raw = np.column_stack([np.asarray(table[c], dtype=np.float64) for c in self._inputs])
        else:
            raw = np.asarray(table, dtype=np.float64)
            if raw.ndim != 2 or raw.shape[1] != len(self._inputs):
                raise PredictorMismatch(f"expected an n x {len(self._inputs)} array of {list(self._inputs)}; got shape {raw.shape}")
        if not np.all(np.isfinite(raw)):
            raise InvalidData("the table holds NaN or infinite values")
        return self._predict_raw(raw)

    def _check_domain(self, raw: np.ndarray) -> None:
        if raw.shape[0] == 0:
            return
        lo, hi = raw.min(axis=0), raw.max(axis=0)
        out = [(c, lo[j], hi[j]) for j, c in enumerate(self._inputs) if lo[j] < self._lo[j] or hi[j] > self._hi[j]]
        if out:
            parts = ", ".join(f"{c} {int(a) if float(a).is_integer() else a}..{int(b) if float(b).is_integer() else b} "
                              f"(trained {self._lo[self._inputs.index(c)]:g}..{self._hi[self._inputs.index(c)]:g})"
                              for c, a, b in out)
            warnings.warn(f"predicting outside the training domain: {parts}; the error may be larger than the "
                          "metrics in the manifest", OutOfDomainWarning, stacklevel=3)

    def _features(self, raw: np.ndarray, names: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
        if self.is_table:
            return raw[:, [self._inputs.index(n) for n in names]].astype(dtype, copy=False)
        return featurize(raw, names, bytes_per_element=self._bytes, dtype=dtype)

    def _predict_raw(self, raw: np.ndarray) -> np.ndarray:
        """``n x k`` raw inputs -> ``n`` latencies in ms, in cache-sized chunks."""
        self._check_domain(raw)
        n = raw.shape[0]
        out = np.empty(n, dtype=np.float64)
        nt = len(self._terms)
        names = (*self._terms, *self._tree_features)
        for start in range(0, n, _CHUNK):
            block = raw[start:start + _CHUNK]
            feats = self._features(block, names)
            phys = feats[:, :nt] @ self._coef[1:] + self._coef[0]
            np.maximum(phys, 1e-9, out=phys)
            z = np.ascontiguousarray(feats[:, nt:], dtype=np.float32)
            if self._small is not None and z.shape[0] <= _SMALL_BATCH:
                margin = self._small(z)
            else:
                margin = self.booster.inplace_predict(z)
            log = np.log(phys) + margin
            for corr in self._corr:
                log = log + self._correction(corr, block, log)
            out[start:start + block.shape[0]] = np.exp(log)
        return out

    def _correction(self, corr: tuple, raw: np.ndarray, base_log: np.ndarray) -> np.ndarray:
        names, mean, scale, coef, intercept = corr
        G = correction_features(raw, names, base_log, self._inputs)
        return ((G - mean) / scale) @ coef + intercept

    def log_predict_raw(self, raw: np.ndarray) -> np.ndarray:
        """log(ms) for ``n x k`` raw inputs in :attr:`manifest` ``inputs`` order, without domain warnings."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            return np.log(self._predict_raw(np.asarray(raw, dtype=np.float64)))

    def __repr__(self) -> str:
        return f"LatencyPredictor(device={self.device!r}, space={self.space!r}, n_samples={self.manifest.get('domain', {}).get('n_samples')})"


def correction_features(raw: np.ndarray, names: Sequence[str], base_log: np.ndarray,
                        inputs: Sequence[str] = INPUTS) -> np.ndarray:
    """Features of the transfer correction: ``base_log`` (log ms of the base predictor)
    and ``log_<input>`` for inputs. Returns an ``n x len(names)`` float64 array."""
    cols = []
    for name in names:
        if name == "base_log":
            cols.append(base_log)
        elif name.startswith("log_") and name[4:] in inputs:
            cols.append(np.log(np.maximum(raw[:, list(inputs).index(name[4:])], 1e-12)))
        else:
            raise PredictorMismatch(f"unknown correction feature {name!r}")
    return np.column_stack(cols) if cols else np.empty((raw.shape[0], 0))


class SmallBatchTrees:
    """The booster's trees evaluated with numpy, for a handful of rows.

    XGBoost's Python prediction call costs about 150 us however few the rows;
    a single query (search asking about one architecture) would spend most of
    its time there. This walks every tree at once, one level per step, and
    matches XGBoost's rule (``x < split_condition`` goes left). Only plain
    numeric ``gbtree`` models qualify; :meth:`from_booster` returns ``None``
    otherwise and XGBoost itself is used.
    """

    def __init__(self, feat, thr, left, right, value, depth: int, base: float) -> None:
        self.feat, self.thr, self.left, self.right, self.value = feat, thr, left, right, value
        self.depth = depth
        self.base = base
        self._trees = np.arange(feat.shape[0])

    @classmethod
    def from_booster(cls, booster: Any) -> SmallBatchTrees | None:
        import json

        try:
            doc = json.loads(bytes(booster.save_raw(raw_format="json")))
            learner = doc["learner"]
            gb = learner["gradient_booster"]
            if gb.get("name") != "gbtree" or int(learner["learner_model_param"].get("num_target", "1")) != 1:
                return None
            trees = gb["model"]["trees"]
            base = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))
        except (KeyError, ValueError, TypeError):
            return None
        if not trees or any(t.get("categories_nodes") for t in trees):
            return None
        k, m = len(trees), max(len(t["left_children"]) for t in trees)
        feat = np.zeros((k, m), dtype=np.intp)
        thr = np.zeros((k, m), dtype=np.float32)
        left = np.zeros((k, m), dtype=np.intp)
        right = np.zeros((k, m), dtype=np.intp)
        value = np.zeros((k, m), dtype=np.float32)
        depth = 0
        for i, t in enumerate(trees):
            lc, rc = np.asarray(t["left_children"]), np.asarray(t["right_children"])
            n = lc.size
            leaf = lc == -1
            idx = np.arange(n)
            feat[i, :n] = np.where(leaf, 0, t["split_indices"])
            thr[i, :n] = np.asarray(t["split_conditions"], dtype=np.float32)
            value[i, :n] = np.where(leaf, thr[i, :n], 0.0)
            left[i, :n] = np.where(leaf, idx, lc)  # a leaf points to itself: extra steps stay put
            right[i, :n] = np.where(leaf, idx, rc)
            d = np.zeros(n, dtype=int)
            for j in range(n):  # parents precede children in XGBoost's node order
                if not leaf[j]:
                    d[lc[j]] = d[rc[j]] = d[j] + 1
            depth = max(depth, int(d.max()))
        return cls(feat, thr, left, right, value, depth, base)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """Margins for ``n x f`` float32 inputs (no missing values): an ``n``-vector."""
        n = z.shape[0]
        t = self._trees
        node = np.zeros((n, t.size), dtype=np.intp)
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = z[rows, self.feat[t, node]] < self.thr[t, node]
            node = np.where(go_left, self.left[t, node], self.right[t, node])
        return (self.base + self.value[t, node].sum(axis=1, dtype=np.float32)).astype(np.float32)
