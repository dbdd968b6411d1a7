"""A learned accuracy estimator: a ranking model fitted on a ground-truth table of distilled students.

The ground-truth table (``bench/ground_truth/table.csv``) holds real students,
each distilled stand-alone with one recipe, grouped in *latency bands* (students
whose predicted latency differs by at most about 5%). Inside a band the search's
choice is hard, and what matters is the *order* of the students, not their
accuracy. So the model is a pairwise ranker (XGBoost ``rank:pairwise``) whose
query groups are the bands: it learns which shape wins when two shapes cost the
same, from architecture features only (:data:`FEATURES`). Scoring a new
architecture costs a few microseconds.

Scores are comparable inside a band (that is what the ranker was fitted on);
across bands they carry no promise. A budget admits every architecture below
it, many bands at once, so the search does not take the best score over all of
them (that once picked a 7.2 ms student under an 11.3 ms budget): the estimator
declares ``comparable_within = 0.05`` and the search picks its winner among the
feasible architectures within 5% of the slowest feasible one, the band at the
top of the budget, scoring every one of them (:func:`hwnas.search.runner.run_search`).

The fitted model is a folder::

    model.json       XGBoost's own JSON model (no pickle)
    manifest.json    format and version, features in order, the space, the task(s),
                     the table's SHA-256, rows, students and bands, the hwnas and
                     xgboost versions, the model file's SHA-256
    hwnas.json       the output-folder marker (kind ``estimator``)

:func:`load_learned` verifies all of it; a folder that is corrupt, from a newer
format, or whose features differ from this hwnas's is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, InvalidData, PredictorMismatch, check_int
from hwnas.estimators.base import ESTIMATORS, AccuracyEstimator
from hwnas.estimators.baselines import encoder_flops
from hwnas.estimators.truth import ALL_SPACES, GroundTruth, read_ground_truth
from hwnas.space import Architecture, SearchSpace, get_space

__all__ = [
    "FEATURES",
    "FORMAT",
    "FORMAT_VERSION",
    "MIN_BANDS",
    "MIN_STUDENTS",
    "GroundTruth",
    "LearnedEstimator",
    "LearnedRanker",
    "arch_features",
    "fit_learned",
    "load_learned",
    "read_ground_truth",
]

FORMAT = "hwnas-learned-estimator"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
MANIFEST_FILE = "manifest.json"
KIND = "estimator"

#: Architecture features, in the model's column order. Counts are log10 so that trees split on ratios.
FEATURES: tuple[str, ...] = ("layers", "hidden", "heads", "ffn", "head_dim", "ffn_per_hidden", "log10_params",
                             "log10_flops")

#: The ranker learnt orders inside latency bands: students whose predicted latencies differ by at most this
#: fraction (the ground-truth table's bands). Its scores compare only there (see ``comparable_within``).
BAND_TOLERANCE = 0.05

#: A fit needs at least this many bands holding at least two students each, and this many students in them.
MIN_BANDS = 2
MIN_STUDENTS = 6


def arch_features(archs: list[Architecture]) -> np.ndarray:
    """The ``n x len(FEATURES)`` float64 feature matrix of ``archs`` (FLOPs at 128 tokens)."""
    rows = [[a.layers, a.hidden, a.heads, a.ffn, a.head_dim, a.ffn / a.hidden, math.log10(a.num_parameters()),
             math.log10(encoder_flops(a))] for a in archs]
    return np.asarray(rows, dtype=np.float64).reshape(len(archs), len(FEATURES))


def _check_fittable(truth: GroundTruth) -> list[int]:
    """Positions of the students in bands of at least two (the only ones that make pairs); raises when too few."""
    sizes = truth.band_sizes()
    usable = {b for b, n in sizes.items() if n >= 2}
    keep = [i for i, b in enumerate(truth.bands) if b in usable]
    if len(usable) < MIN_BANDS or len(keep) < MIN_STUDENTS:
        raise InvalidData(
            f"{truth.table}: too few students to fit a ranker for task {truth.task!r} in space {truth.space!r}: "
            f"{len(keep)} students in {len(usable)} bands of two or more; need at least {MIN_STUDENTS} students "
            f"in at least {MIN_BANDS} such bands")
    return keep


# ------------------------------------------------------------------ the model
class LearnedRanker:
    """An XGBoost pairwise ranker over :data:`FEATURES`, one query group per latency band.

    Hyper-parameters only in ``__init__``; fitted state in ``booster_`` and ``manifest_``.
    Small and shallow on purpose: a table holds tens of students.

    Args:
        n_estimators: boosting rounds.
        max_depth: depth of each tree.
        learning_rate: shrinkage per round.
        seed: seeds XGBoost (the fit is deterministic: exact trees, one thread).
    """

    def __init__(self, *, n_estimators: int = 200, max_depth: int = 2, learning_rate: float = 0.05,
                 seed: int = 0) -> None:
        self.n_estimators = check_int("n_estimators", n_estimators)
        self.max_depth = check_int("max_depth", max_depth)
        if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate <= 1):
            raise InvalidConfig(f"learning_rate must be a number in (0, 1]; got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.seed = check_int("seed", seed, 0)

    def _params(self, group_size: int) -> dict[str, Any]:
        return {"objective": "rank:pairwise", "max_depth": self.max_depth, "eta": self.learning_rate,
                "lambdarank_pair_method": "topk", "lambdarank_num_pair_per_sample": group_size,
                "tree_method": "exact", "nthread": 1, "seed": self.seed, "verbosity": 0}

    def fit(self, truth: GroundTruth, space: SearchSpace | None = None) -> LearnedRanker:
        """Fit on ``truth``'s bands of two or more students (``space``: what the manifest records; by default
        ``truth.space`` looked up by name).

        Raises:
            InvalidData: fewer than :data:`MIN_STUDENTS` students in :data:`MIN_BANDS` bands of two or more.
        """
        import xgboost as xgb

        keep = _check_fittable(truth)
        if space is None:
            if truth.space == ALL_SPACES:
                raise InvalidData(f"{truth.table}: a ranker is fitted on the students of one space, not of every "
                                  "space at once; select one space")
            space = get_space(truth.space)
        order = sorted(keep, key=lambda i: (truth.bands[i], truth.archs[i].key))  # groups must be contiguous
        bands = [truth.bands[i] for i in order]
        group_ids = {b: g for g, b in enumerate(dict.fromkeys(bands))}
        x = arch_features([truth.archs[i] for i in order])
        y = truth.accuracy[order]
        qid = np.array([group_ids[b] for b in bands], dtype=np.int64)
        largest = max(truth.band_sizes()[b] for b in group_ids)
        dtrain = xgb.DMatrix(x, label=y, qid=qid, feature_names=list(FEATURES))
        self.booster_ = xgb.train(self._params(largest), dtrain, num_boost_round=self.n_estimators)
        from hwnas import __version__

        self.manifest_ = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "hwnas": __version__, "xgboost": xgb.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "objective": "rank:pairwise", "query_groups": "latency bands",
            "params": {"n_estimators": self.n_estimators, "max_depth": self.max_depth,
                       "learning_rate": self.learning_rate, "seed": self.seed},
            "features": list(FEATURES), "space": space.to_dict(), "tasks": [truth.task],
            "table": {"path": truth.table, "sha256": truth.table_sha256, "rows": truth.rows,
                      "recipe": truth.recipe, "steps": truth.steps,
                      "students": len(keep), "bands": {b: truth.band_sizes()[b] for b in group_ids}},
        }
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            from hwnas.errors import NotFittedError

            raise NotFittedError("this LearnedRanker is not fitted; call fit() or load_learned() first")

    def predict(self, archs: list[Architecture]) -> np.ndarray:
        """Ranking scores of ``archs`` (``n`` float64; higher = more accurate expected, within a band)."""
        import xgboost as xgb

        self._check_fitted()
        if not archs:
            return np.zeros(0)
        d = xgb.DMatrix(arch_features(archs), feature_names=list(FEATURES))
        return self.booster_.predict(d).astype(np.float64)

    @property
    def space(self) -> SearchSpace:
        self._check_fitted()
        return SearchSpace.from_dict(self.manifest_["space"], where="learned estimator manifest")

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` and ``manifest.json`` into ``folder`` (created; files replaced atomically)."""
        from hwnas._files import atomic_write_bytes, atomic_write_text

        self._check_fitted()
        folder = Path(folder)
        model = bytes(self.booster_.save_raw(raw_format="json"))
        atomic_write_bytes(folder / MODEL_FILE, model)
        manifest = {**self.manifest_, "model_file": MODEL_FILE, "model_sha256": hashlib.sha256(model).hexdigest()}
        atomic_write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
        return folder


def load_learned(folder: str | Path) -> LearnedRanker:
    """Load and verify a fitted ranker folder.

    Raises:
        InvalidData: the folder or a file is missing, corrupt or tampered with, of a newer
            format version, or made with other features than this hwnas computes.
    """
    import xgboost as xgb

    folder = Path(folder)
    where = f"learned estimator {folder}"
    if not folder.is_dir():
        raise InvalidData(f"{where} is not a folder; give the --out folder of `hwnas estimator fit`")
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidData(f"{where} holds no {MANIFEST_FILE}; give the --out folder of `hwnas estimator fit`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidData(f"{where}: {MANIFEST_FILE} is corrupt (not JSON: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidData(f"{where}: {MANIFEST_FILE} is not a learned-estimator manifest (format {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidData(f"{where}: format_version must be an integer >= 1; got {version!r}")
    if version > FORMAT_VERSION:
        raise InvalidData(f"{where} has format version {version} (written by hwnas {manifest.get('hwnas', '?')}), "
                          f"newer than this hwnas reads (1..{FORMAT_VERSION}); upgrade hwnas or refit the model")
    if manifest.get("features") != list(FEATURES):
        raise InvalidData(f"{where} was fitted on features {manifest.get('features')}, but this hwnas computes "
                          f"{list(FEATURES)}; refit it with `hwnas estimator fit`")
    for key in ("space", "tasks", "table", "params", "model_sha256"):
        if key not in manifest:
            raise InvalidData(f"{where}: {MANIFEST_FILE} lacks {key!r}")
    try:
        model = (folder / MODEL_FILE).read_bytes()
    except FileNotFoundError:
        raise InvalidData(f"{where} holds no {MODEL_FILE}") from None
    if hashlib.sha256(model).hexdigest() != manifest["model_sha256"]:
        raise InvalidData(f"{where}: {MODEL_FILE} does not match the checksum in {MANIFEST_FILE} "
                          "(truncated or changed); refit it")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(model))
    except xgb.core.XGBoostError as exc:
        raise InvalidData(f"{where}: {MODEL_FILE} is not an XGBoost model ({str(exc).splitlines()[0]})") from None
    if booster.num_features() != len(FEATURES):
        raise InvalidData(f"{where}: the model takes {booster.num_features()} features, not {len(FEATURES)}")
    params = manifest["params"]
    try:
        ranker = LearnedRanker(**params)
    except (TypeError, InvalidConfig) as exc:
        raise InvalidData(f"{where}: bad params in {MANIFEST_FILE} ({exc})") from None
    ranker.booster_, ranker.manifest_ = booster, manifest
    ranker.space  # a malformed space fails now  # noqa: B018
    return ranker


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_learned` wrote."""

    out: Path
    manifest: dict[str, Any]
    students: int
    bands: int
    fit_s: float


def fit_learned(table: str | Path, *, task: str, out: str | Path, space: str | SearchSpace | None = None,
                overwrite: bool = False, ranker: LearnedRanker | None = None) -> FitResult:
    """Fit a ranker on ``table``'s students of ``task`` (and ``space``) and write it to the folder ``out``.

    ``out`` must be new or empty, or (``overwrite``) a learned estimator hwnas wrote; it is
    checked before the table is read, and replaced only once the new model is complete,
    so a bad table leaves it as it was.

    Raises:
        InvalidConfig: ``out`` holds something else, or a model without ``overwrite``.
        InvalidData: the table is bad or too small (:func:`read_ground_truth`, :data:`MIN_BANDS`).
    """
    import time

    from hwnas.outputs import check_output_folder, staged_folder

    if check_output_folder(out, kind=KIND) and not overwrite:
        raise InvalidConfig(f"--out {out} already holds a learned estimator; pass --overwrite to replace it, or "
                            "choose another --out")
    space_obj = get_space(space) if space is not None else None
    truth = read_ground_truth(table, task=task, space=space_obj.name if space_obj is not None else None)
    if space_obj is None:
        space_obj = get_space(truth.space)
    bad = [a.key for a in truth.archs if a not in space_obj]
    if bad:
        raise InvalidData(f"{table}: {len(bad)} students of space {truth.space!r} lie outside space "
                          f"{space_obj.name!r} (e.g. {bad[0]})")
    import xgboost  # noqa: F401  (imported before the clock starts: the fit time is the fit's)

    t0 = time.perf_counter()
    model = (ranker or LearnedRanker()).fit(truth, space_obj)
    fit_s = time.perf_counter() - t0
    with staged_folder(out, kind=KIND, replace=overwrite) as stage:
        model.save(stage)
        again = load_learned(stage)  # verify what was written before it takes out's place
        if not np.array_equal(again.predict(truth.archs), model.predict(truth.archs)):
            raise RuntimeError("the saved model does not reproduce the fitted model's scores")
    return FitResult(Path(out), model.manifest_, model.manifest_["table"]["students"],
                     len(model.manifest_["table"]["bands"]), fit_s)


# ------------------------------------------------------------------ the estimator
@ESTIMATORS.register("learned")
class LearnedEstimator(AccuracyEstimator):
    """Scores with a ranker fitted by ``hwnas estimator fit`` on a ground-truth table (``path``: its folder)."""

    name = "learned"
    requires = frozenset({"path"})
    missing_message = ("estimator 'learned' needs a fitted model: --estimator-path DIR "
                       "(fit one with `hwnas estimator fit --table CSV --task TASK --out DIR`)")
    description = "XGBoost pairwise ranker fitted on a ground-truth table (--estimator-path); ~free"
    comparable_within = BAND_TOLERANCE

    def __init__(self, *, path: str | Path | None = None) -> None:
        super().__init__()
        if path is None or str(path) == "":
            raise InvalidConfig(self.missing_message)
        self.ranker = load_learned(path)
        self.space = self.ranker.space
        m = self.ranker.manifest_
        self.label = f"learned:{self.space.name}/{'+'.join(m['tasks'])}@{m['model_sha256'][:12]}"

    def check_space(self, space: SearchSpace) -> None:
        if space.to_dict() | {"description": ""} != self.space.to_dict() | {"description": ""}:
            raise PredictorMismatch(
                f"the learned estimator was fitted on space {self.space.name!r} but the search is over space "
                f"{space.name!r}; fit one on a table of that space (hwnas estimator fit --space {space.name})")

    def validate(self, arch: Architecture) -> Architecture:
        return self.space.validate(arch)

    def _score(self, archs: list[Architecture]) -> np.ndarray:
        return self.ranker.predict(archs)
