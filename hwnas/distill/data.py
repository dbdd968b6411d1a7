"""Task data for distillation: single sentences or sentence pairs, classification or regression.

Accepted sources:

* a ``.tsv``, ``.csv`` or ``.jsonl`` file (``.tsv.gz`` etc. also work) with a
  header row (TSV/CSV) or one JSON object per line. Column names are given
  (``text_col``, ``text_pair_col``, ``label_col``) or detected from common
  names (``sentence``/``text``, ``sentence2``/``question2``/``hypothesis``,
  ``label``/``score``);
* a Hugging Face ``datasets`` name such as ``glue/sst2`` (needs the optional
  ``datasets`` package and a network connection, or its local cache).

Labels that are all integers (or all strings) make a classification task;
labels with fractional values make a regression task (one output). A bad file
gets one :class:`~hwnas.errors.InvalidData` line naming the file, the row and
the problem. Rows are numbered as a text editor shows them (the header is row 1
of a TSV/CSV file).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas._files import read_table
from hwnas.errors import InvalidData

__all__ = ["TaskData", "load_task", "augment", "encode", "TEXT_COLUMNS", "PAIR_COLUMNS", "LABEL_COLUMNS"]

#: Column names tried, in order, when no column is given.
TEXT_COLUMNS = ("sentence", "sentence1", "text", "text_a", "question", "question1", "premise", "content", "review")
PAIR_COLUMNS = ("sentence2", "text_b", "question2", "hypothesis", "pair")
LABEL_COLUMNS = ("label", "labels", "score", "target", "y", "class", "gold_label")

_MAX_SHOWN = 8


@dataclass
class TaskData:
    """A labelled text task held in memory.

    Attributes:
        texts: first sentence of every example.
        pairs: second sentence of every example, or ``None`` for single-sentence tasks.
        labels: class indices (``int``) for classification, floats for regression.
        kind: ``"classification"`` or ``"regression"``.
        label_names: for classification, the original label of every class index
            (``label_names[i]`` is what the file wrote for class ``i``).
        source: where the data came from (a path or a dataset name).
        columns: the columns used: ``{"text": .., "pair": .., "label": ..}``.
    """

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any]
    kind: str
    label_names: list[str] = field(default_factory=list)
    source: str = ""
    columns: dict[str, str | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        """Number of model outputs: classes for classification, 1 for regression."""
        return len(self.label_names) if self.kind == "classification" else 1

    def subset(self, indices: Sequence[int]) -> TaskData:
        return TaskData(
            texts=[self.texts[i] for i in indices],
            pairs=None if self.pairs is None else [self.pairs[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            kind=self.kind,
            label_names=list(self.label_names),
            source=self.source,
            columns=dict(self.columns),
        )

    def head(self, n: int | None) -> TaskData:
        """The first ``n`` examples (all with ``None``)."""
        return self if n is None or n >= len(self) else self.subset(range(n))

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "examples": len(self),
            "kind": self.kind,
            "num_labels": self.num_labels,
            "label_names": self.label_names,
            "columns": self.columns,
        }


def _pick(columns: list[str], given: str | None, candidates: Sequence[str], what: str, where: str,
          required: bool = True) -> str | None:
    if given is not None:
        if given not in columns:
            raise InvalidData(f"{where}: no column {given!r} for the {what}; columns are: {', '.join(columns)}")
        return given
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    if required:
        raise InvalidData(
            f"{where}: cannot find the {what} column; tried {', '.join(candidates)}; columns are: "
            f"{', '.join(columns)} (name it with the matching --*-column option)"
        )
    return None


def _as_label(value: Any) -> Any:
    """int for integral values, float for fractional ones, str otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    s = str(value).strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        return s
    if f != f:
        return s
    return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f


def _finish(texts: list[str], pairs: list[str] | None, raw_labels: list[tuple[int, Any]], *, where: str,
            task: str | None, source: str, columns: dict[str, str | None]) -> TaskData:
    values = [_as_label(v) for _, v in raw_labels]
    kinds = {type(v) for v in values}
    if task not in (None, "classification", "regression"):
        raise InvalidData(f"task must be 'classification' or 'regression'; got {task!r}")
    if task == "regression" or (task is None and float in kinds and str not in kinds):
        for (row, raw), v in zip(raw_labels, values):
            if isinstance(v, str):
                raise InvalidData(f"{where}, row {row}: label {raw!r} is not a number (regression needs numeric labels)")
        return TaskData(texts, pairs, [float(v) for v in values], "regression", [], source, columns)
    values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    kinds = {type(v) for v in values}
    if str in kinds and int in kinds:
        # a mix of numbers and words is almost always a broken row
        first_word = next((row, raw) for (row, raw), v in zip(raw_labels, values) if isinstance(v, str))
        raise InvalidData(
            f"{where}, row {first_word[0]}: label {first_word[1]!r} is not a number, while other labels are numbers"
        )
    if float in kinds:
        row, raw = next((r, raw) for (r, raw), v in zip(raw_labels, values) if isinstance(v, float))
        raise InvalidData(f"{where}, row {row}: label {raw!r} is fractional; classification needs integer or text labels")
    names = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if len(names) < 2:
        raise InvalidData(f"{where}: every label is {names[0]!r}; a classification task needs at least two classes")
    index = {v: i for i, v in enumerate(names)}
    return TaskData(texts, pairs, [index[v] for v in values], "classification", [str(n) for n in names], source, columns)


def load_task(
    source: str | Path,
    *,
    text_col: str | None = None,
    text_pair_col: str | None = None,
    label_col: str | None = None,
    task: str | None = None,
    split: str = "train",
    label_names: Sequence[str] | None = None,
    limit: int | None = None,
) -> TaskData:
    """Load a labelled task from a file or a ``datasets`` name.

    Args:
        source: a ``.tsv``/``.csv``/``.jsonl`` path, or a dataset name like ``glue/sst2``.
        text_col, text_pair_col, label_col: column names; detected when ``None``.
            ``text_pair_col=""`` forces a single-sentence task.
        task: ``"classification"``, ``"regression"`` or ``None`` (decided from the labels).
        split: the split of a ``datasets`` name.
        label_names: the class order of another split (e.g. the training file), so
            that class indices agree between train and evaluation data.
        limit: keep only the first ``limit`` examples.

    Raises:
        InvalidData: missing file or column, empty file, empty text, bad label.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidData(f"limit must be an integer >= 1; got {limit!r}")
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and not any(source.lower().endswith(e) for e in (".tsv", ".csv", ".jsonl", ".gz")) \
                and "/" in source and not source.startswith((".", "/")):
            data = _load_hf(source, split=split, text_col=text_col, text_pair_col=text_pair_col,
                            label_col=label_col, task=task)
        else:
            raise InvalidData(f"{source}: no such file (give a .tsv, .csv or .jsonl file, or a datasets name like glue/sst2)")
    elif path.is_dir():
        raise InvalidData(f"{source}: is a folder; give a .tsv, .csv or .jsonl file")
    else:
        columns, rows = read_table(path, InvalidData)
        where = str(path)
        if not rows:
            raise InvalidData(f"{where}: the file has a header but no rows")
        tcol = _pick(columns, text_col, TEXT_COLUMNS, "text", where)
        pcol = None if text_pair_col == "" else _pick(columns, text_pair_col, PAIR_COLUMNS, "second sentence", where,
                                                      required=False)
        lcol = _pick(columns, label_col, LABEL_COLUMNS, "label", where)
        if len({tcol, pcol, lcol} - {None}) != len([c for c in (tcol, pcol, lcol) if c is not None]):
            raise InvalidData(f"{where}: the text, second-sentence and label columns must differ; got {tcol}, {pcol}, {lcol}")
        texts, pairs, labels = [], [] if pcol else None, []
        for row, obj in rows:
            for col, out in ((tcol, texts), (pcol, pairs)):
                if col is None:
                    continue
                value = obj.get(col)
                if value is None or not str(value).strip():
                    raise InvalidData(f"{where}, row {row}: empty {col!r}")
                out.append(str(value))
            value = obj.get(lcol)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise InvalidData(f"{where}, row {row}: missing label in column {lcol!r}")
            labels.append((row, value))
        data = _finish(texts, pairs, labels, where=where, task=task, source=str(path),
                       columns={"text": tcol, "pair": pcol, "label": lcol})
    if label_names is not None and data.kind == "classification":
        data = _remap(data, list(label_names))
    return data.head(limit)


def _remap(data: TaskData, names: list[str]) -> TaskData:
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(data.label_names) - set(index))
    if unknown:
        raise InvalidData(f"{data.source}: labels {unknown[:_MAX_SHOWN]} do not occur in the training data "
                          f"(its labels: {', '.join(names)})")
    data.labels = [index[data.label_names[i]] for i in data.labels]
    data.label_names = list(names)
    return data


def _load_hf(name: str, *, split: str, text_col: str | None, text_pair_col: str | None, label_col: str | None,
             task: str | None) -> TaskData:
    try:
        import datasets
    except ImportError:
        raise InvalidData(
            f"{name}: not a file, and loading it as a Hugging Face dataset needs the 'datasets' package "
            "(pip install datasets) and a network connection"
        ) from None
    parts = name.split("/")
    try:
        if len(parts) == 2 and parts[0] in ("glue", "super_glue"):
            ds = datasets.load_dataset("nyu-mll/glue" if parts[0] == "glue" else parts[0], parts[1], split=split)
        else:
            ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # network errors, unknown names: all reported as one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidData(f"{name}: cannot load dataset split {split!r} ({first})") from None
    columns = list(ds.column_names)
    where = f"{name}[{split}]"
    tcol = _pick(columns, text_col, TEXT_COLUMNS, "text", where)
    pcol = None if text_pair_col == "" else _pick(columns, text_pair_col, PAIR_COLUMNS, "second sentence", where, False)
    lcol = _pick(columns, label_col, LABEL_COLUMNS, "label", where)
    texts = [str(t) for t in ds[tcol]]
    pairs = [str(t) for t in ds[pcol]] if pcol else None
    labels = list(enumerate(ds[lcol], 1))
    feature = ds.features.get(lcol)
    data = _finish(texts, pairs, labels, where=where, task=task, source=name,
                   columns={"text": tcol, "pair": pcol, "label": lcol})
    names = getattr(feature, "names", None)
    if names and data.kind == "classification":
        data.label_names = [names[int(n)] if str(n).isdigit() and int(n) < len(names) else n for n in data.label_names]
    return data


# ------------------------------------------------------------------ augmentation
def augment(data: TaskData, factor: int, *, seed: int = 0, p_delete: float = 0.1, p_swap: float = 0.1) -> TaskData:
    """Return ``data`` plus ``factor`` noisy copies of every example (labels kept).

    A copy drops each word with probability ``p_delete`` and swaps neighbouring
    words with probability ``p_swap`` (the two simplest "easy data augmentation"
    operations, which keep the label of most sentiment and topic examples).
    The teacher relabels every copy through its soft outputs during
    distillation, so a copy whose meaning changed still teaches something.
    """
    if factor < 0:
        raise InvalidData(f"augmentation factor must be >= 0; got {factor}")
    if factor == 0:
        return data
    rng = random.Random(seed)

    def noisy(sentence: str) -> str:
        words = sentence.split()
        kept = [w for w in words if rng.random() >= p_delete] or words[:1]
        for i in range(len(kept) - 1):
            if rng.random() < p_swap:
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
        return " ".join(kept)

    texts, pairs, labels = list(data.texts), None if data.pairs is None else list(data.pairs), list(data.labels)
    for _ in range(factor):
        for i in range(len(data)):
            texts.append(noisy(data.texts[i]))
            if pairs is not None:
                pairs.append(noisy(data.pairs[i]))  # type: ignore[index]
            labels.append(data.labels[i])
    return TaskData(texts, pairs, labels, data.kind, list(data.label_names), data.source + f" (+{factor}x augmented)",
                    dict(data.columns))


def encode(tokenizer: Any, data: TaskData, max_len: int = 128) -> dict[str, Any]:
    """Tokenise ``data`` once: ``input_ids``, ``attention_mask``, ``token_type_ids`` (each ``n x max_len``
    int64, padded to the longest example up to ``max_len``) and ``labels`` (``n`` int64 or float32)."""
    import torch

    enc = tokenizer(data.texts, data.pairs, truncation=True, max_length=max_len, padding="longest",
                    return_tensors="pt")
    out = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    if "token_type_ids" not in out:
        out["token_type_ids"] = torch.zeros_like(out["input_ids"])
    dtype = torch.long if data.kind == "classification" else torch.float32
    out["labels"] = torch.tensor(data.labels, dtype=dtype)
    return out
