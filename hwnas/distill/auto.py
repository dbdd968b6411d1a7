"""AutoDistiller: recommend a distillation recipe for a dataset from its features and from past runs.

After Distiller (Zhang et al., 2022), whose AutoDistiller predicts how well a
recipe will do on a new dataset from the dataset's features. Here:

* **dataset features** (:func:`dataset_features`): size, number of labels, sentence
  pairs or not, mean and 90th-percentile length in words, label balance (normalised
  entropy and the majority share), and a cheap embedding of the task's text: up to
  256 rows mean-pooled by the packaged all-MiniLM-L6-v2 sentence encoder (whatever
  the teacher, so that features stay comparable between runs), reduced to three
  numbers: mean cosine similarity between rows, spread around the centroid, and the
  between-class to within-class scatter ratio (how separable the labels already are);
* **recipe features** (:func:`recipe_features`): the loss weights at the first and at the
  last step (they differ under a loss-weight schedule), temperature and its end value, layer mapping, the task-agnostic share of steps, augmentation, learning
  rate and steps, and whether the hidden loss's projection started aligned (``hidden_aligned``: 1 for a run
  with the hidden loss and the aligned start, 0 otherwise; runs recorded before the aligned start was the
  default started random, see :mod:`hwnas.distill.experience`);
* **student features**: layers, hidden width, FFN width;
* **the model**: gradient-boosted trees (XGBoost, saved as its own JSON, never
  pickled) predicting each run's *advantage* over the other recipes of its group (below)
  from all of these, trained on the experience table (:mod:`hwnas.distill.experience`).
  Each candidate recipe (:func:`hwnas.distill.recipes.candidates`, with the settings typed
  on the command line applied) is scored for the new dataset and student; the highest
  predicted advantage is recommended.

**Why the target is an advantage, not the kept fraction.** The recommender is used to
*rank recipes within one new task*. Model format 2 predicted the kept fraction itself, an
absolute level set mostly by how hard the task is (SST-2 keeps about 0.86 whatever the
recipe, the news-source task 0.38 to 0.69). The trees then spent their first splits on the
dataset features that tell the training tasks apart, and a held-out task inherited the
recipe ranking of whichever training task fell on its side of those splits: with SST-2
and the news-source task as experience, AG News was ranked as SST-2 (``default`` first),
although on the news-source task ``mi-alpha`` kept 0.31 more of the teacher's score than
``default``. Since format 3 the task's level is taken out of the target before fitting:

* a **group** is the runs of one task (its id), one student (layers, hidden, heads, FFN) and
  one step count, the runs whose scores are directly comparable;
* the group's **baseline** is the mean over its distinct recipes (distinct settings) of each
  recipe's mean kept fraction over its seeds: a recipe run with three seeds weighs as much in
  the baseline as one run once, so unequal seed counts do not move the baseline towards the
  recipe that was repeated;
* each run's **target** is its kept fraction minus its group's baseline. Every run stays a
  row of its own (seeds are not averaged away): a recipe measured more often carries more
  weight in the fit, and the spread between seeds stays visible to the trees as noise rather
  than as a recipe effect;
* a group with **fewer than two distinct recipes** (a single run, or seeds of one recipe
  only) says nothing about which recipe is better: its advantage would be 0 by construction
  and would teach "this recipe is average". Such runs are left out of the fit (and counted:
  :func:`ranking_rows`);
* the trees start from 0 (``base_score=0``): where they learnt nothing, a candidate is
  predicted to be an average recipe (and a tie with ``default`` keeps ``default``).

The dataset features stay in: a recipe's advantage can depend on the task (the hidden-state
loss costs much more on the 4- and 9-class tasks than on SST-2), and only they can carry that
over to a new task. No further shrinkage or re-weighting is added: the trees' own shrinkage
(learning rate 0.05, L2 on leaf values) is kept as it was, and the hyper-parameters were not
tuned on the leave-one-task-out benchmark, which has three tasks (tuning there would fit the test).

What this does not change: when the training tasks *rank* the recipes differently, the trees
can still split on a dataset feature that separates them, and a new task then takes the
ranking of the task on its side of that split. Only more tasks can tell whether such a
split carries over.

With too little experience (fewer than ``min_runs`` usable runs, runs on fewer than
two tasks, only one recipe, or too few runs that have another recipe to be compared with
on two tasks) it recommends ``default`` and says why.

**A predicted gain below the noise keeps the default.** The experience table states its
own noise: runs that repeat one recipe on one task, student and step count with other
seeds. Their pooled standard deviation of the kept fraction (:func:`seed_noise`) is the
``margin``: a candidate replaces ``default`` only when its predicted advantage over
``default`` exceeds it. On tasks where the trees predict every recipe within a few
thousandths of the others, the pick among them is noise, and it moved between recipes as
seeds were added (SST-2 and AG News: ``minilm`` with seed 0, ``augmented`` with seeds 0 and
1; both within 0.1 points of ``default``). Without repeated seeds the margin is 0 (the
plain rule). This rule was added after that evaluation was seen (docs/distill.md says
what it changed); the margin itself is read from the training experience, not tuned.

**A pick must also have won on a near past task.** The trees can carry a recipe's gain
over from tasks they group with the new one by a single feature (the label count, say)
while the new task is, on all its features together, much closer to a task where that
recipe lost. So when the nearest past task that ran both the pick and ``default``
(:func:`nearest_task`: features scaled by their spread across past tasks) is nearer than
past tasks typically are to each other (the median distance between two of them), the
pick must have beaten ``default`` there by more than the margin, or ``default`` is kept.
A task unlike every past one is left to the trees. This check was added after the
leave-one-task-out evaluation in which it would have changed one pick (docs/distill.md),
and was then judged on two tasks fixed before they were run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig

__all__ = ["FEATURES", "RECIPE_FEATURES", "MODEL_VERSION", "ARCH_FEATURES", "dataset_features", "text_features",
           "task_id", "recipe_features", "settings_record", "Recommendation", "Recommender", "recommend", "MIN_RUNS",
           "TARGET", "group_key", "ranking_rows", "seed_noise", "nearest_task"]

FEATURES = ("log10_examples", "num_labels", "pair", "len_mean", "len_p90", "label_entropy", "majority",
            "emb_cos", "emb_spread", "emb_sep")
_LOSS_NAMES = ("task", "logits", "hidden", "attention", "value_relation", "mi_alpha")
RECIPE_FEATURES = ("w_task", "w_logits", "w_hidden", "w_attention", "w_value_relation", "w_mi_alpha",
                   "wend_task", "wend_logits", "wend_hidden", "wend_attention", "wend_value_relation", "wend_mi_alpha",
                   "temperature", "temperature_end", "map_last", "map_top", "agnostic_share", "augment", "augment_mlm", "log10_lr",
                   "log10_steps", "hidden_aligned")
ARCH_FEATURES = ("layers", "hidden", "ffn")
MIN_RUNS = 8
#: Version of :meth:`Recommender.to_json`'s format; 2 added ``hidden_aligned`` to the features; 3 changed the
#: target from the kept fraction to the advantage over the group's other recipes (module docstring).
MODEL_VERSION = 3
#: What the model predicts (written into :meth:`Recommender.to_json`).
TARGET = "kept fraction minus the mean of its group's recipes (same task, student and steps)"


# ------------------------------------------------------------------ dataset features
def task_id(data: Any) -> str:
    """A short hash of a task's examples and labels (the same file gives the same id anywhere)."""
    h = hashlib.sha256()
    h.update(json.dumps({"n": len(data), "labels": data.label_names, "kind": data.kind}).encode())
    for i in range(0, len(data), max(1, len(data) // 200)):
        h.update(data.texts[i].encode("utf-8", "replace"))
        h.update(str(data.labels[i]).encode())
    return h.hexdigest()[:16]


def text_features(data: Any) -> dict[str, float]:
    """Size, labels, pairs, length (words) and label balance of a :class:`~hwnas.distill.data.TaskData`."""
    n = len(data)
    words = np.array([len(t.split()) + (len(data.pairs[i].split()) if data.pairs is not None else 0)
                      for i, t in enumerate(data.texts)], dtype=float)
    out = {"log10_examples": math.log10(max(1, n)), "num_labels": float(data.num_labels),
           "pair": float(data.pairs is not None), "len_mean": float(words.mean()) if n else 0.0,
           "len_p90": float(np.percentile(words, 90)) if n else 0.0}
    if data.kind == "classification" and n:
        counts = np.bincount(np.asarray(data.labels, dtype=int), minlength=data.num_labels).astype(float)
        p = counts[counts > 0] / n
        entropy = float(-(p * np.log(p)).sum())
        out["label_entropy"] = entropy / math.log(data.num_labels) if data.num_labels > 1 else 0.0
        out["majority"] = float(counts.max() / n)
    else:
        out["label_entropy"], out["majority"] = 0.0, 0.0
    return out


def embedding_features(data: Any, *, rows: int = 256, max_len: int = 64, seed: int = 0,
                       encoder: str | Path = "default") -> dict[str, float]:
    """Three numbers from mean-pooled sentence embeddings of up to ``rows`` examples (see the module docstring)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hwnas.training.teacher import resolve_teacher

    path = resolve_teacher(encoder)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(data), size=min(rows, len(data)), replace=False))
    texts = [data.texts[i] for i in idx]
    pairs = [data.pairs[i] for i in idx] if data.pairs is not None else None
    embs = []
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            enc = tok(texts[s:s + 64], pairs[s:s + 64] if pairs else None, truncation=True, max_length=max_len,
                      padding=True, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            embs.append(((h * m).sum(1) / m.sum(1).clamp_min(1.0)).float())
    e = torch.nn.functional.normalize(torch.cat(embs), dim=-1).numpy().astype(np.float64)
    k = len(e)
    cos = e @ e.T
    emb_cos = float((cos.sum() - np.trace(cos)) / max(1, k * (k - 1)))
    centre = e.mean(0)
    spread = float(np.linalg.norm(e - centre, axis=1).mean())
    sep = 0.0
    if data.kind == "classification":
        labels = np.asarray([data.labels[i] for i in idx])
        within, between = 0.0, 0.0
        for c in np.unique(labels):
            ec = e[labels == c]
            mu = ec.mean(0)
            within += float(((ec - mu) ** 2).sum())
            between += len(ec) * float(((mu - centre) ** 2).sum())
        sep = between / within if within > 0 else 0.0
    return {"emb_cos": emb_cos, "emb_spread": spread, "emb_sep": sep}


def dataset_features(data: Any, *, embed: bool = True, rows: int = 256, seed: int = 0) -> dict[str, float]:
    """All :data:`FEATURES` of a task (the embedding ones 0 with ``embed=False``)."""
    out = text_features(data)
    out.update(embedding_features(data, rows=rows, seed=seed) if embed
               else {"emb_cos": 0.0, "emb_spread": 0.0, "emb_sep": 0.0})
    return {k: float(out[k]) for k in FEATURES}


# ------------------------------------------------------------------ recipe features
def settings_record(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe fields of a DistillConfig (or of keyword arguments for one) as JSON values."""
    from hwnas.distill.recipes import RECIPE_FIELDS

    out = {}
    for name in RECIPE_FIELDS:
        v = settings[name] if isinstance(settings, Mapping) else getattr(settings, name)
        out[name] = v.to_dict() if hasattr(v, "to_dict") else v
    return out


def _end_weights(weights: Mapping[str, Any], schedule: Mapping[str, Any]) -> dict[str, float]:
    """Each loss's weight at the last step under ``schedule`` (:class:`hwnas.distill.losses.WeightSchedule` as
    dicts): ``end`` (default: the weight) for every shape but ``constant``, which keeps ``start``."""
    out = {}
    for name in _LOSS_NAMES:
        w = float(weights.get(name, 0) or 0)
        s = schedule.get(name) if isinstance(schedule, Mapping) else None
        if isinstance(s, Mapping) and w > 0:
            key = "start" if s.get("shape", "constant") == "constant" else "end"
            w = float(s[key]) if s.get(key) is not None else w
        out[name] = w
    return out


def _start_weights(weights: Mapping[str, Any], schedule: Mapping[str, Any]) -> dict[str, float]:
    """Each loss's weight at the first step (every shape starts at ``start``, default: the weight)."""
    out = {}
    for name in _LOSS_NAMES:
        w = float(weights.get(name, 0) or 0)
        s = schedule.get(name) if isinstance(schedule, Mapping) else None
        if isinstance(s, Mapping) and w > 0 and s.get("start") is not None:
            w = float(s["start"])
        out[name] = w
    return out


def recipe_features(settings: Mapping[str, Any]) -> dict[str, float]:
    """:data:`RECIPE_FEATURES` of recipe settings (:func:`settings_record` values, or a LossConfig under ``losses``).

    ``w_*`` is each loss's weight at the first step and ``wend_*`` at the last: equal without a loss-weight
    schedule (every run recorded before schedules existed), so those runs keep their features' meaning.

    ``hidden_aligned`` is 1.0 when the hidden loss has a weight > 0 (at the first or last step) and its projection
    starts ``aligned``, else 0.0. A missing ``hidden_projection`` means aligned, as in a LossConfig;
    :func:`hwnas.distill.experience.read_table` fills in ``random`` for the schema-1 records it trained."""
    losses = settings.get("losses") or {}
    if hasattr(losses, "to_dict"):
        losses = losses.to_dict()
    schedule = losses.get("weight_schedule") or {}
    w = _start_weights(losses.get("weights", {}), schedule)
    w_end = _end_weights(losses.get("weights", {}), schedule)
    t = float(losses.get("temperature", 2.0))
    t_end = losses.get("temperature_end")
    mapping = losses.get("layer_map", "uniform")
    steps = int(settings.get("steps") or 1)
    method = settings.get("augment_method", "edit")
    augment = float(settings.get("augment") or 0)
    return {"w_task": float(w.get("task", 0)), "w_logits": float(w.get("logits", 0)), "w_hidden": float(w.get("hidden", 0)),
            "w_attention": float(w.get("attention", 0)), "w_value_relation": float(w.get("value_relation", 0)),
            "w_mi_alpha": float(w.get("mi_alpha", 0)), **{f"wend_{k}": v for k, v in w_end.items()}, "temperature": t,
            "temperature_end": float(t_end) if t_end is not None else t, "map_last": float(mapping == "last"),
            "map_top": float(mapping == "top"), "agnostic_share": float(settings.get("agnostic_steps") or 0) / steps,
            "augment": augment, "augment_mlm": augment * float(method == "mlm"),
            "log10_lr": math.log10(float(settings.get("lr") or 1e-4)), "log10_steps": math.log10(steps),
            "hidden_aligned": float((w["hidden"] > 0 or w_end["hidden"] > 0)
                                    and losses.get("hidden_projection", "aligned") == "aligned")}


def _vector(features: Mapping[str, Any], settings: Mapping[str, Any], arch: Mapping[str, Any]) -> list[float]:
    r = recipe_features(settings)
    return ([float(features.get(k, 0.0)) for k in FEATURES] + [r[k] for k in RECIPE_FEATURES]
            + [float(arch.get(k, 0)) for k in ARCH_FEATURES])


# ------------------------------------------------------------------ the target: advantage within a group
def group_key(row: Mapping[str, Any]) -> str:
    """The group of an experience record: its task id, student (layers, hidden, heads, FFN) and step count."""
    arch = row.get("arch") or {}
    steps = row.get("result", {}).get("steps")
    if steps is None:
        steps = (row.get("recipe", {}).get("settings") or {}).get("steps")
    return json.dumps([row.get("task", {}).get("id"), [arch.get(k) for k in ("layers", "hidden", "heads", "ffn")], steps])


def _settings_key(row: Mapping[str, Any]) -> str:
    return json.dumps(row["recipe"]["settings"], sort_keys=True, default=str)


def ranking_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], np.ndarray, int]:
    """``(rows kept, their advantages, runs left out)`` of usable experience records (see the module docstring).

    A run's advantage is its kept fraction minus its group's baseline, the mean over the group's distinct
    settings of each one's mean kept fraction. Runs whose group holds fewer than two distinct settings carry no
    ranking information and are left out; their number is the third value."""
    groups: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        groups.setdefault(group_key(r), {}).setdefault(_settings_key(r), []).append(float(r["result"]["kept"]))
    baseline = {g: float(np.mean([np.mean(v) for v in by.values()])) for g, by in groups.items() if len(by) >= 2}
    kept = [r for r in rows if group_key(r) in baseline]
    y = np.array([float(r["result"]["kept"]) - baseline[group_key(r)] for r in kept], dtype=float)
    return kept, y, len(rows) - len(kept)


# ------------------------------------------------------------------ the recommender
def seed_noise(rows: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
    """``(pooled standard deviation of the kept fraction across seeds, degrees of freedom)`` of usable
    experience records that repeat one recipe (same settings) in one group; ``(0.0, 0)`` without repeats."""
    runs: dict[tuple[str, str], list[float]] = {}
    for r in usable(rows):
        runs.setdefault((group_key(r), _settings_key(r)), []).append(float(r["result"]["kept"]))
    ss, dof = 0.0, 0
    for kept in runs.values():
        if len(kept) >= 2:
            ss += float(np.var(kept, ddof=1)) * (len(kept) - 1)
            dof += len(kept) - 1
    return (math.sqrt(ss / dof), dof) if dof else (0.0, 0)


@dataclass
class Recommendation:
    """What :func:`recommend` chose: ``recipe`` (a name), the predicted advantage of every candidate over an
    average recipe on the same task (kept fraction, see the module docstring), whether it fell back to the
    default, and one line saying why. ``runs`` and ``tasks`` count what the model learnt from; ``margin`` is
    the predicted gain over ``default`` a candidate needed (the experience's seed noise, :func:`seed_noise`)."""

    recipe: str
    predicted: dict[str, float] = field(default_factory=dict)
    fallback: bool = False
    reason: str = ""
    runs: int = 0
    tasks: int = 0
    margin: float = 0.0
    nearest: dict[str, Any] | None = None

    def save(self, folder: str | Path) -> Path:
        """Write ``recommendation.json`` into ``folder`` (atomically) and return its path."""
        from hwnas._files import atomic_write_text

        return atomic_write_text(Path(folder) / "recommendation.json", json.dumps(self.to_dict(), indent=2) + "\n")

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "predicted_advantage": self.predicted, "fallback": self.fallback,
                "reason": self.reason, "runs": self.runs, "tasks": self.tasks, "margin": self.margin,
                "nearest": self.nearest}


class Recommender:
    """Gradient-boosted trees predicting a run's advantage over its group (:func:`ranking_rows`) from dataset,
    recipe and student features.

    Scikit-learn style: settings in ``__init__``, :meth:`fit` sets ``model_``; :meth:`to_json` /
    :meth:`from_json` keep it as XGBoost's own JSON plus the feature names (no pickle).
    """

    feature_names: tuple[str, ...] = (*FEATURES, *RECIPE_FEATURES, *ARCH_FEATURES)  # immutable: shared by every instance

    def __init__(self, *, n_estimators: int = 200, max_depth: int = 3, learning_rate: float = 0.05, seed: int = 0) -> None:
        self.n_estimators, self.max_depth, self.learning_rate, self.seed = n_estimators, max_depth, learning_rate, seed

    def fit(self, rows: Sequence[Mapping[str, Any]]) -> Recommender:
        """Fit on experience records with a finite kept fraction; runs alone in their group are left out
        (``left_out_`` counts them). :class:`InvalidConfig` when no group has two recipes to compare."""
        import xgboost as xgb

        kept, y, self.left_out_ = ranking_rows(usable(rows))
        if not kept:
            raise InvalidConfig(f"no experience to rank recipes with: none of the {len(rows)} runs shares its task, "
                                "student and step count with a run of another recipe")
        X = np.array([_vector(r["features"], r["recipe"]["settings"], r["arch"]) for r in kept], dtype=float)
        self.model_ = xgb.XGBRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                       learning_rate=self.learning_rate, random_state=self.seed, n_jobs=1,
                                       min_child_weight=1.0, base_score=0.0)
        self.model_.fit(X, y)
        return self

    def predict(self, features: Mapping[str, Any], settings: Sequence[Mapping[str, Any]],
                arch: Mapping[str, Any]) -> np.ndarray:
        if not hasattr(self, "model_"):
            from hwnas.errors import NotFittedError

            raise NotFittedError("this Recommender is not fitted yet; call fit(rows) first")
        X = np.array([_vector(features, s, arch) for s in settings], dtype=float)
        return self.model_.predict(X).astype(float)

    def to_json(self) -> str:
        raw = self.model_.get_booster().save_raw(raw_format="json").decode()
        return json.dumps({"format": "hwnas-autodistiller", "version": MODEL_VERSION,
                           "features": list(self.feature_names), "target": TARGET, "xgboost": json.loads(raw)})

    @classmethod
    def from_json(cls, text: str) -> Recommender:
        """A model saved by :meth:`to_json`; one :class:`InvalidConfig` line for anything else, including a model
        saved by another version (other features: refit it from the experience table)."""
        import xgboost as xgb

        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError, ValueError):
            raise InvalidConfig("not an AutoDistiller model (not valid JSON)") from None
        if not isinstance(data, dict) or data.get("format") != "hwnas-autodistiller" or "xgboost" not in data:
            raise InvalidConfig("not an AutoDistiller model (no 'format': 'hwnas-autodistiller' with its trees)")
        version = data.get("version")
        if version != MODEL_VERSION:
            raise InvalidConfig(f"an AutoDistiller model of format version {version!r}; this hwnas reads version "
                                f"{MODEL_VERSION} (other features or target); refit it from the experience table")
        if data.get("features") != list(cls.feature_names):
            raise InvalidConfig("an AutoDistiller model whose feature names differ from this hwnas's; "
                                "refit it from the experience table")
        self = cls()
        self.model_ = xgb.XGBRegressor()
        self.model_.load_model(bytearray(json.dumps(data["xgboost"]).encode()))
        return self


def usable(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records with a finite kept fraction."""
    out = []
    for r in rows:
        kept = r.get("result", {}).get("kept")
        if isinstance(kept, (int, float)) and not isinstance(kept, bool) and math.isfinite(kept):
            out.append(r)
    return out


def nearest_task(features: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], recipe: str,
                 baseline: str = "default") -> dict[str, Any] | None:
    """The past task nearest to ``features`` that measured both ``recipe`` and ``baseline``, and what it measured.

    Distance is Euclidean over :data:`FEATURES`, each scaled by its standard deviation across the experience's
    tasks (one feature vector per task id; features constant across them are ignored), as meta-learning
    systems match a new dataset to past ones by meta-features. The measured gain is the mean kept fraction of
    ``recipe`` minus that of ``baseline`` in each group (task, student, steps) holding both, averaged over those
    groups. Returns ``{"task", "name", "distance", "typical", "gain", "runs"}``, or ``None`` when no task measured
    both; ``typical`` is the median distance between two past tasks on the same scale (``nan`` with one task), the
    yardstick for whether the nearest task is near at all.
    """
    by_task: dict[str, Mapping[str, Any]] = {}
    groups: dict[str, dict[str, dict[str, list[float]]]] = {}  # task -> group -> recipe -> kept fractions
    for r in usable(rows):
        t = r["task"].get("id")
        by_task.setdefault(t, r)
        if r["recipe"].get("name") in (recipe, baseline):
            groups.setdefault(t, {}).setdefault(group_key(r), {}).setdefault(r["recipe"]["name"], []).append(
                float(r["result"]["kept"]))
    if not by_task:
        return None
    ids = list(by_task)
    mat = np.array([[float(by_task[t]["features"].get(k, 0.0)) for k in FEATURES] for t in ids], dtype=float)
    sd = mat.std(axis=0)
    use = sd > 1e-12
    scaled = mat[:, use] / sd[use]
    x = np.array([float(features.get(k, 0.0)) for k in FEATURES], dtype=float)[use] / sd[use]
    pairs = [float(np.linalg.norm(scaled[i] - scaled[j])) for i in range(len(ids)) for j in range(i + 1, len(ids))]
    typical = float(np.median(pairs)) if pairs else math.nan
    found = []
    for t, vec in zip(ids, scaled, strict=True):
        both = [g for g in groups.get(t, {}).values() if recipe in g and baseline in g]
        if both:
            found.append({"task": t, "name": by_task[t]["task"].get("name"),
                          "distance": float(np.linalg.norm(x - vec)), "typical": typical,
                          "gain": float(np.mean([np.mean(g[recipe]) - np.mean(g[baseline]) for g in both])),
                          "runs": sum(len(g[recipe]) + len(g[baseline]) for g in both)})
    return min(found, key=lambda f: (f["distance"], f["task"])) if found else None


def recommend(features: Mapping[str, Any], arch: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *,
              overrides: Mapping[str, Any] | None = None, candidates: Sequence[Any] | None = None,
              min_runs: int = MIN_RUNS, seed: int = 0, margin: float | str = "auto",
              nearest_check: bool = True) -> Recommendation:
    """The candidate recipe with the highest predicted advantage (module docstring) for a dataset and student.

    Args:
        features: :func:`dataset_features` of the new dataset.
        arch: the student (``layers``, ``hidden``, ``heads``, ``ffn``).
        rows: experience records (:func:`hwnas.distill.experience.read_table`).
        overrides: settings typed on the command line; applied to every candidate before scoring.
        candidates: recipes to choose among (default: :func:`hwnas.distill.recipes.candidates`).
        margin: the predicted gain over ``default`` a candidate needs to replace it (kept fraction);
            ``"auto"``: the experience's seed noise (:func:`seed_noise`; 0 without repeated seeds).
        nearest_check: when the nearest past task that measured both a candidate and ``default``
            (:func:`nearest_task`) is nearer than two past tasks typically are to each other, the candidate
            must also have beaten ``default`` there by more than the margin; otherwise ``default`` is kept.
            A task unlike every past one is left to the model. ``False``: the model's ranking alone decides.
    """
    from hwnas.distill.recipes import apply_recipe, candidates as default_candidates

    if margin != "auto" and not (isinstance(margin, (int, float)) and not isinstance(margin, bool)
                                 and math.isfinite(margin) and margin >= 0):
        raise InvalidConfig(f"margin must be 'auto' or a kept fraction >= 0; got {margin!r}")
    cands = list(candidates) if candidates is not None else default_candidates()
    rows = usable(rows)
    tasks = {r["task"].get("id") for r in rows}
    settings = {_settings_key(r) for r in rows}
    ranked, _, alone = ranking_rows(rows)
    ranked_tasks = {r["task"].get("id") for r in ranked}
    reason = None
    if len(rows) < min_runs:
        reason = f"too little experience ({len(rows)} usable runs; at least {min_runs} needed)"
    elif len(tasks) < 2:
        reason = "the experience covers only one task, so it cannot tell how recipes carry over to a new one"
    elif len(settings) < 2:
        reason = "every recorded run used the same settings, so there is nothing to compare"
    elif len(ranked) < min_runs:
        reason = (f"too little experience to rank recipes ({len(ranked)} runs share their task, student and steps "
                  f"with a run of another recipe; at least {min_runs} needed)")
    elif len(ranked_tasks) < 2:
        reason = ("the experience compares recipes on only one task (same student and steps), so it cannot tell "
                  "how the ranking carries over to a new one")
    if reason:
        return Recommendation("default", {}, True, f"{reason}: using the default recipe", len(ranked),
                              len(ranked_tasks))
    margin = seed_noise(rows)[0] if margin == "auto" else float(margin)
    model = Recommender(seed=seed).fit(ranked)
    cand_settings = [settings_record(apply_recipe(c, overrides or {})) for c in cands]
    pred = model.predict(features, cand_settings, arch)
    scores = {c.name: float(p) for c, p in zip(cands, pred, strict=True)}
    best = max(scores, key=lambda k: (scores[k], k == "default"))
    kept_default = ""
    if "default" in scores and best != "default" and scores[best] - scores["default"] <= max(margin, 1e-6):
        kept_default = (f"; {best}'s predicted gain over default ({scores[best] - scores['default']:+.3f}) is within "
                        f"the experience's seed noise ({margin:.3f}): keeping default")
        best = "default"
    nearest = None
    if nearest_check and "default" in scores and best != "default":
        nearest = nearest_task(features, rows, best)
        if nearest is not None and nearest["distance"] < nearest["typical"] and nearest["gain"] <= max(margin, 1e-6):
            label = nearest["name"] or nearest["task"]
            kept_default = (f"; on the nearest past task ({label}, distance {nearest['distance']:.2f}, past tasks "
                            f"typically {nearest['typical']:.2f} apart) {best} measured "
                            f"{nearest['gain']:+.3f} over default, not beyond the seed noise ({margin:.3f}): "
                            f"keeping default")
            best = "default"
    note = f"; {alone} runs without another recipe in their group left out" if alone else ""
    return Recommendation(best, scores, False,
                          f"predicted advantage {scores[best]:+.3f} over an average recipe "
                          f"(default {scores.get('default', float('nan')):+.3f}), from {len(ranked)} runs on "
                          f"{len(ranked_tasks)} tasks{note}{kept_default}", len(ranked), len(ranked_tasks), margin,
                          nearest)
