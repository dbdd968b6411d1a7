"""The ground-truth table of distilled students: one reader, strict validation.

``bench/ground_truth/run.py`` distils real students stand-alone with one recipe and
appends one row per (student, task, seed) to a CSV (``bench/ground_truth/table.csv``).
Everything that reads that table goes through :func:`read_truth_table` (the whole
file, validated) and :meth:`TruthTable.select` (the students of one task, and one
space or all of them), so the learned estimator, ``bench/bench_estimators.py`` and
``bench/bench_mos.py`` see the same students with the same seed means.

A student is an architecture distilled for one task with one recipe and step count;
its rows are its seeds. Validation is of the whole file, not just the rows selected,
and every problem is one :class:`~hwnas.errors.InvalidData` line naming the file, the
line and what is accepted:

* a column of :data:`REQUIRED` is missing, or a row leaves one of them empty;
* ``seed`` or ``steps`` is not an integer >= 0, ``accuracy`` is not a number in [0, 1],
  ``predicted_ms`` is not a positive number, ``parameters`` (when the column exists)
  is not a positive integer;
* ``arch`` is not an architecture, or the shape columns (``layers``, ``hidden``,
  ``heads``, ``ffn``, when present) disagree with it;
* a (arch, task, seed, recipe, steps) appears twice;
* one student's rows disagree on its band, space, predicted latency or parameter count;
* the selection is empty (no row of that task, or of that task in that space), or mixes
  recipes or step counts without saying which.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.errors import InvalidData
from hwnas.space import Architecture

__all__ = ["ALL_SPACES", "REQUIRED", "SHAPE_COLUMNS", "GroundTruth", "TruthRow", "TruthTable", "read_ground_truth",
           "read_truth_table"]

#: Columns every table needs (``bench/ground_truth/run.py`` writes these and more).
REQUIRED: tuple[str, ...] = ("arch", "space", "band", "task", "seed", "recipe", "steps", "accuracy", "predicted_ms")
#: Optional columns that, when present, must agree with the ``arch`` string.
SHAPE_COLUMNS: tuple[str, ...] = ("layers", "hidden", "heads", "ffn")
#: ``space=ALL_SPACES`` selects the students of every space of a task.
ALL_SPACES = "*"

_WHAT = "the CSV that bench/ground_truth/run.py writes"


@dataclass(frozen=True)
class TruthRow:
    """One validated row: one seed of one student."""

    line: int
    arch: Architecture
    space: str
    band: str
    task: str
    seed: int
    recipe: str
    steps: int
    accuracy: float
    predicted_ms: float
    parameters: int | None

    @property
    def student(self) -> tuple[str, str, int, str]:
        """(task, recipe, steps, architecture key): what one student is."""
        return (self.task, self.recipe, self.steps, self.arch.key)


@dataclass(frozen=True)
class GroundTruth:
    """The students of one task (and one space, or all of them), accuracy averaged over seeds.

    Per-student lists are in the same order, students sorted by architecture key.

    Attributes:
        archs: the distinct students.
        accuracy: seed-mean accuracy of each (fraction, float64; the mean of its seeds in file order).
        bands: the latency band of each.
        seeds: how many seeds each student has.
        spaces: the space of each.
        predicted_ms: the predicted latency of each (float64).
        parameters: the table's parameter count of each (the distilled model, classifier included),
            or None when the table has no ``parameters`` column.
        task, space: what was selected (``space`` is :data:`ALL_SPACES` when every space was).
        recipe, steps: the recipe and step count of every selected row.
        table, table_sha256: the file and its content hash; rows: the table rows selected.
        per_seed: architecture key -> {seed: accuracy}, seeds in file order.
        first_line: the file line of each student's first row (the table's own order).
    """

    archs: list[Architecture]
    accuracy: np.ndarray
    bands: list[str]
    seeds: list[int]
    task: str
    space: str
    table: str
    table_sha256: str
    rows: int
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict, repr=False)
    spaces: list[str] = field(default_factory=list)
    predicted_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    parameters: list[int | None] = field(default_factory=list)
    recipe: str = ""
    steps: int = 0
    first_line: list[int] = field(default_factory=list, repr=False)

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.archs]

    def band_sizes(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for b in self.bands:
            out[b] += 1
        return dict(sorted(out.items()))

    def latency_of(self) -> dict[str, float]:
        """Architecture key -> predicted latency (ms)."""
        return dict(zip(self.keys, self.predicted_ms.tolist(), strict=True))

    def subset(self, keep: list[int] | np.ndarray) -> GroundTruth:
        """The students at positions ``keep`` (same table, task and space)."""
        keep = [int(i) for i in keep]
        keys = [self.archs[i].key for i in keep]
        return GroundTruth([self.archs[i] for i in keep], self.accuracy[keep], [self.bands[i] for i in keep],
                           [self.seeds[i] for i in keep], self.task, self.space, self.table, self.table_sha256,
                           sum(self.seeds[i] for i in keep), {k: dict(self.per_seed[k]) for k in keys},
                           [self.spaces[i] for i in keep], self.predicted_ms[keep],
                           [self.parameters[i] for i in keep], self.recipe, self.steps,
                           [self.first_line[i] for i in keep])

    def in_table_order(self) -> list[int]:
        """Student positions in the order their first rows appear in the file."""
        return sorted(range(len(self.archs)), key=lambda i: self.first_line[i])

    def repeated(self, min_seeds: int = 2) -> dict[str, list[float]]:
        """Key -> seed accuracies (file order) of the students with at least ``min_seeds`` seeds, in table order."""
        return {self.archs[i].key: list(self.per_seed[self.archs[i].key].values())
                for i in self.in_table_order() if self.seeds[i] >= min_seeds}

    def seed_deviations(self, min_seeds: int = 3) -> dict[str, list[float]]:
        """Space -> the seed deviations of its students with at least ``min_seeds`` seeds.

        Each such student contributes its seeds' deviations from its own mean, scaled by
        ``sqrt(n / (n - 1))`` so that they estimate one seed's spread (students in table
        order, seeds in file order). A space without such students is absent.
        """
        out: dict[str, list[float]] = defaultdict(list)
        for i in self.in_table_order():
            if self.seeds[i] < max(2, min_seeds):
                continue
            x = np.array(list(self.per_seed[self.archs[i].key].values()))
            out[self.spaces[i]] += list((x - x.mean()) * np.sqrt(len(x) / (len(x) - 1)))
        return dict(out)


@dataclass(frozen=True)
class TruthTable:
    """A whole validated ground-truth file (:func:`read_truth_table`)."""

    path: str
    sha256: str
    rows: list[TruthRow]
    columns: list[str]

    def tasks(self) -> list[str]:
        return sorted({r.task for r in self.rows})

    def spaces(self, task: str | None = None) -> list[str]:
        return sorted({r.space for r in self.rows if task is None or r.task == task})

    def pairs(self) -> set[tuple[str, str]]:
        """The (task, space) pairs the table holds."""
        return {(r.task, r.space) for r in self.rows}

    def select(self, task: str, space: str | None = None, *, recipe: str | None = None,
               steps: int | None = None) -> GroundTruth:
        """The students of ``task``, seed means over their rows.

        Args:
            task: the task column's value.
            space: a space name; None for the table's only space of ``task`` (an error when it
                has several); :data:`ALL_SPACES` for every space.
            recipe, steps: which recipe and step count; None accepts the only one present (an
                error when the selection mixes several: seed means of two recipes mean nothing).

        Raises:
            InvalidData: nothing matches, or the choice is ambiguous.
        """
        path = self.path
        of_task = [r for r in self.rows if r.task == task]
        if not of_task:
            raise InvalidData(f"{path} holds no row of task {task!r}; tasks in it: {', '.join(self.tasks()) or 'none'}")
        spaces = sorted({r.space for r in of_task})
        if space is None:
            if len(spaces) > 1:
                raise InvalidData(f"{path} holds task {task!r} in several spaces ({', '.join(spaces)}); "
                                  "choose one with --space")
            space = spaces[0]
        if space != ALL_SPACES and space not in spaces:
            raise InvalidData(f"{path} holds no row of task {task!r} in space {space!r}; spaces with that task: "
                              f"{', '.join(spaces)}")
        picked = [r for r in of_task if space == ALL_SPACES or r.space == space]
        for name, want in (("recipe", recipe), ("steps", steps)):
            if want is not None:
                have = sorted({str(getattr(r, name)) for r in picked})
                picked = [r for r in picked if getattr(r, name) == want]
                if not picked:
                    raise InvalidData(f"{path} holds no row of task {task!r} in space {space!r} with {name} {want!r}; "
                                      f"{name} values there: {', '.join(have)}")
        kinds = sorted({(r.recipe, r.steps) for r in picked})
        if len(kinds) > 1:
            raise InvalidData(f"{path}: task {task!r} in space {space!r} mixes recipes/steps "
                              f"({', '.join(f'{a}/{b}' for a, b in kinds)}); seed means need one: select a recipe "
                              "and step count, or give a table of one recipe")
        by_key: dict[str, list[TruthRow]] = defaultdict(list)
        for r in picked:
            by_key[r.arch.key].append(r)
        keys = sorted(by_key)
        first = [by_key[k][0] for k in keys]
        return GroundTruth(
            archs=[r.arch for r in first], accuracy=np.array([np.mean([r.accuracy for r in by_key[k]]) for k in keys]),
            bands=[r.band for r in first], seeds=[len(by_key[k]) for k in keys], task=task, space=space, table=path,
            table_sha256=self.sha256, rows=len(picked),
            per_seed={k: {r.seed: r.accuracy for r in by_key[k]} for k in keys}, spaces=[r.space for r in first],
            predicted_ms=np.array([r.predicted_ms for r in first], dtype=np.float64),
            parameters=[r.parameters for r in first], recipe=kinds[0][0], steps=kinds[0][1],
            first_line=[r.line for r in first])


def _int(text: str, name: str, where: str, minimum: int) -> int:
    try:
        v = int(text)
    except ValueError:
        v = None
    if v is None or v < minimum:
        raise InvalidData(f"{where}: {name} must be an integer >= {minimum}; got {text!r}")
    return v


def _float(text: str, name: str, where: str, accepted: str, ok) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and ok(v)):
        raise InvalidData(f"{where}: {name} must be {accepted}; got {text!r}")
    return v


def read_truth_table(path: str | Path) -> TruthTable:
    """Read and validate a whole ground-truth CSV (see the module docstring for what is refused).

    Raises:
        InvalidData: the file is missing, not UTF-8 CSV, or breaks a rule; one line naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidData(f"ground-truth table {path} does not exist; give {_WHAT}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidData(f"ground-truth table {path} is not UTF-8 text; give {_WHAT}") from None
    try:
        reader = csv.DictReader(text.splitlines())
        header = list(reader.fieldnames or [])
        raw_rows = list(reader)
    except csv.Error as exc:
        raise InvalidData(f"ground-truth table {path} is not a CSV table ({exc})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidData(f"ground-truth table {path} lacks columns {', '.join(missing)}; it needs {', '.join(REQUIRED)}")
    shapes = [c for c in SHAPE_COLUMNS if c in header]
    has_params = "parameters" in header
    rows: list[TruthRow] = []
    seen: dict[tuple, int] = {}
    student: dict[tuple, TruthRow] = {}
    for line, r in enumerate(raw_rows, start=2):
        where = f"{path} line {line}"
        if None in r:
            raise InvalidData(f"{where}: more fields than the header's {len(header)}")
        empty = [c for c in REQUIRED if not (r.get(c) or "").strip()]
        if empty:
            raise InvalidData(f"{where}: missing {', '.join(empty)} (a row needs {', '.join(REQUIRED)})")
        try:
            arch = Architecture.parse(r["arch"])
        except (ValueError, TypeError) as exc:
            raise InvalidData(f"{where}: arch {r['arch']!r} is not an architecture ({exc})") from None
        for c in shapes:
            if (r.get(c) or "").strip() != str(getattr(arch, c)):
                raise InvalidData(f"{where}: column {c} is {r.get(c)!r} but arch {r['arch']!r} has {c}="
                                  f"{getattr(arch, c)}; the shape columns must repeat the arch string")
        params = None
        if has_params and (r.get("parameters") or "").strip():
            params = _int(r["parameters"], "parameters", where, 1)
        row = TruthRow(
            line=line, arch=arch, space=r["space"].strip(), band=r["band"].strip(), task=r["task"].strip(),
            seed=_int(r["seed"], "seed", where, 0), recipe=r["recipe"].strip(), steps=_int(r["steps"], "steps", where, 0),
            accuracy=_float(r["accuracy"], "accuracy", where, "a fraction in [0, 1]", lambda v: 0.0 <= v <= 1.0),
            predicted_ms=_float(r["predicted_ms"], "predicted_ms", where, "a positive number of milliseconds",
                                lambda v: v > 0),
            parameters=params)
        key = (arch.key, row.task, row.seed, row.recipe, row.steps)
        if key in seen:
            raise InvalidData(f"{where}: {arch.key} seed {row.seed} of task {row.task!r} (recipe {row.recipe}, "
                              f"{row.steps} steps) appears twice (first on line {seen[key]}); each student and seed "
                              "must appear once")
        seen[key] = line
        prev = student.setdefault(row.student, row)
        for name, what in (("band", "one band"), ("space", "one space")):
            if getattr(prev, name) != getattr(row, name):
                raise InvalidData(f"{where}: {arch.key} is in {name} {getattr(row, name)!r} here and "
                                  f"{getattr(prev, name)!r} on line {prev.line}; a student belongs to {what}")
        if not math.isclose(prev.predicted_ms, row.predicted_ms, rel_tol=1e-6):
            raise InvalidData(f"{where}: {arch.key} has predicted_ms {row.predicted_ms} here and {prev.predicted_ms} "
                              f"on line {prev.line}; a student has one predicted latency")
        if prev.parameters != row.parameters:
            raise InvalidData(f"{where}: {arch.key} has parameters {row.parameters} here and {prev.parameters} on "
                              f"line {prev.line}; a student has one parameter count")
        rows.append(row)
    return TruthTable(str(path), hashlib.sha256(raw).hexdigest(), rows, header)


def read_ground_truth(path: str | Path, *, task: str, space: str | None = None, recipe: str | None = None,
                      steps: int | None = None) -> GroundTruth:
    """Read and validate ``path`` and select the students of ``task`` (see :meth:`TruthTable.select`).

    Raises:
        InvalidData: the file breaks a rule of :func:`read_truth_table`, or the selection is empty or ambiguous.
    """
    return read_truth_table(path).select(task, space, recipe=recipe, steps=steps)
