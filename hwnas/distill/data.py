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

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas._files import read_table
from hwnas.errors import InvalidData

__all__ = ["TaskData", "load_task", "augment", "mlm_replace", "load_mlm_head", "AUGMENT_METHODS", "encode",
           "TEXT_COLUMNS", "PAIR_COLUMNS", "LABEL_COLUMNS"]

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
    if math.isnan(f):
        return s
    return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f


def _finish(texts: list[str], pairs: list[str] | None, raw_labels: list[tuple[int, Any]], *, where: str,
            task: str | None, source: str, columns: dict[str, str | None]) -> TaskData:
    values = [_as_label(v) for _, v in raw_labels]
    kinds = {type(v) for v in values}
    if task not in (None, "classification", "regression"):
        raise InvalidData(f"task must be 'classification' or 'regression'; got {task!r}")
    if task == "regression" or (task is None and float in kinds and str not in kinds):
        for (row, raw), v in zip(raw_labels, values, strict=True):
            if isinstance(v, str):
                raise InvalidData(f"{where}, row {row}: label {raw!r} is not a number (regression needs numeric labels)")
        return TaskData(texts, pairs, [float(v) for v in values], "regression", [], source, columns)
    values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    kinds = {type(v) for v in values}
    if str in kinds and int in kinds:
        # a mix of numbers and words is almost always a broken row
        first_word = next((row, raw) for (row, raw), v in zip(raw_labels, values, strict=True) if isinstance(v, str))
        raise InvalidData(
            f"{where}, row {first_word[0]}: label {first_word[1]!r} is not a number, while other labels are numbers"
        )
    if float in kinds:
        row, raw = next((r, raw) for (r, raw), v in zip(raw_labels, values, strict=True) if isinstance(v, float))
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
    except Exception as exc:  # noqa: BLE001 (deliberate: network errors, unknown names: all reported as one line)
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
#: the augmentation methods of :func:`augment`
AUGMENT_METHODS = ("edit", "mlm")


def augment(data: TaskData, factor: int, *, seed: int = 0, p_delete: float = 0.1, p_swap: float = 0.1,
            method: str = "edit", tokenizer: Any = None, mlm: Any = None, p_replace: float = 0.15,
            top_k: int = 8) -> TaskData:
    """Return ``data`` plus ``factor`` noisy copies of every example (labels kept).

    ``method="edit"``: a copy drops each word with probability ``p_delete`` and
    swaps neighbouring words with probability ``p_swap`` (the two simplest "easy
    data augmentation" operations, which keep the label of most sentiment and
    topic examples).

    ``method="mlm"``: a copy replaces each word with probability ``p_replace`` (at
    least one word per sentence) by a word the teacher's masked-language-model
    head predicts in its place (:func:`mlm_replace`; TinyBERT's augmentation
    without the GloVe half). ``tokenizer`` is required; ``mlm`` is the teacher's
    ``...ForMaskedLM`` model (:func:`load_mlm_head`), or ``None`` for the fallback:
    a random whole word of the tokenizer's vocabulary.

    The teacher relabels every copy through its soft outputs during
    distillation, so a copy whose meaning changed still teaches something.
    Every method is deterministic for a given ``seed``.
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 0:
        raise InvalidData(f"augmentation factor must be an integer >= 0; got {factor!r}")
    if method not in AUGMENT_METHODS:
        raise InvalidData(f"unknown augmentation method {method!r}; known: {', '.join(AUGMENT_METHODS)}")
    if factor == 0:
        return data
    texts, pairs, labels = list(data.texts), None if data.pairs is None else list(data.pairs), list(data.labels)
    if method == "mlm":
        if tokenizer is None:
            raise InvalidData("augmentation method 'mlm' needs the teacher's tokenizer")
        for copy in range(factor):
            texts += mlm_replace(data.texts, tokenizer, mlm, seed=seed * 1009 + 2 * copy, p_replace=p_replace, top_k=top_k)
            if pairs is not None:
                pairs += mlm_replace(data.pairs, tokenizer, mlm, seed=seed * 1009 + 2 * copy + 1,  # type: ignore[arg-type]
                                     p_replace=p_replace, top_k=top_k)
            labels += data.labels
        how = f"+{factor}x mlm-replaced" if mlm is not None else f"+{factor}x random-word-replaced"
        return TaskData(texts, pairs, labels, data.kind, list(data.label_names), data.source + f" ({how})",
                        dict(data.columns))
    rng = random.Random(seed)

    def noisy(sentence: str) -> str:
        words = sentence.split()
        kept = [w for w in words if rng.random() >= p_delete] or words[:1]
        for i in range(len(kept) - 1):
            if rng.random() < p_swap:
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
        return " ".join(kept)

    for _ in range(factor):
        for i in range(len(data)):
            texts.append(noisy(data.texts[i]))
            if pairs is not None:
                pairs.append(noisy(data.pairs[i]))  # type: ignore[index]
            labels.append(data.labels[i])
    return TaskData(texts, pairs, labels, data.kind, list(data.label_names), data.source + f" (+{factor}x augmented)",
                    dict(data.columns))


def load_mlm_head(path: str | Path) -> Any:
    """The teacher's masked-language-model (``AutoModelForMaskedLM``, eval mode), or ``None`` when the
    folder has no trained MLM head (a sentence-embedding model such as the default teacher, or a
    classifier): then :func:`mlm_replace` falls back to random vocabulary words.

    A head counts as present only if every one of its weights was in the folder (a head that
    ``transformers`` would initialise at random predicts noise).
    """
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized weights" warning is the expected answer here
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError, KeyError):
        return None
    finally:
        hf_logging.set_verbosity(level)
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("decoder.weight")]  # tied to the embeddings
    return None if missing else model.eval()


def _vocabulary_words(tokenizer: Any) -> list[str]:
    """Whole, alphabetic words of the tokenizer's vocabulary (no sub-word pieces, no special tokens), in id order."""
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    vocab = tokenizer.get_vocab()
    words = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])
             if t not in special and len(t) >= 2 and t.isalpha() and not t.startswith("##")]
    if not words:
        raise InvalidData("the tokenizer's vocabulary has no whole words to replace words with")
    return words


def mlm_replace(sentences: Sequence[str], tokenizer: Any, mlm: Any = None, *, seed: int = 0, p_replace: float = 0.15,
                top_k: int = 8, batch_size: int = 32, max_len: int = 128) -> list[str]:
    """One copy of every sentence with some words replaced (word count kept).

    Each word is picked with probability ``p_replace`` (one at random when none
    is picked). With ``mlm`` (a masked-LM model), every picked word becomes the
    mask token, the model predicts each masked position, and the word is replaced
    by one of the ``top_k`` predictions that is a whole alphabetic word other than
    the original (drawn at random among them); a position with no such
    prediction, or cut off by ``max_len`` tokens, keeps its word. Without ``mlm``,
    a picked word is replaced by a random whole word of the tokenizer's vocabulary.

    Deterministic for a given ``seed`` (the model runs in eval mode without dropout).
    """
    if not 0 < p_replace <= 1:
        raise InvalidData(f"p_replace must be in (0, 1]; got {p_replace!r}")
    rng = random.Random(seed)
    split = [s.split() for s in sentences]
    picked = []
    for words in split:
        chosen = [i for i in range(len(words)) if rng.random() < p_replace]
        picked.append(chosen or ([rng.randrange(len(words))] if words else []))
    if mlm is None:
        vocab = _vocabulary_words(tokenizer)
        out = []
        for words, chosen in zip(split, picked, strict=True):
            new = list(words)
            for i in chosen:
                new[i] = rng.choice(vocab)
            out.append(" ".join(new))
        return out
    import torch

    mask = tokenizer.mask_token
    if mask is None:
        raise InvalidData("augmentation method 'mlm' needs a tokenizer with a mask token")
    candidates = _mlm_candidates(split, picked, tokenizer, mlm, mask, top_k, batch_size, max_len, torch)
    out = []
    for words, chosen, options in zip(split, picked, candidates, strict=True):
        new = list(words)
        for i, opts in zip(chosen, options, strict=True):
            allowed = [w for w in opts if w.lower() != words[i].lower()]
            if allowed:
                new[i] = rng.choice(allowed)
        out.append(" ".join(new))
    return out


def _mlm_candidates(split, picked, tokenizer, mlm, mask, top_k, batch_size, max_len, torch) -> list[list[list[str]]]:
    """For every sentence and picked word, the whole-word predictions of the MLM head (best first)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    result: list[list[list[str]]] = []
    device = next(mlm.parameters()).device
    for start in range(0, len(split), batch_size):
        masked = []
        for words, chosen in zip(split[start: start + batch_size], picked[start: start + batch_size], strict=True):
            ws = list(words)
            for i in chosen:
                ws[i] = mask
            masked.append(" ".join(ws))
        enc = tokenizer(masked, truncation=True, max_length=max_len, padding="longest", return_tensors="pt")
        with torch.no_grad():
            logits = mlm(**{k: v.to(device) for k, v in enc.items()}).logits
        for row, chosen in enumerate(picked[start: start + batch_size]):
            positions = (enc["input_ids"][row] == tokenizer.mask_token_id).nonzero().flatten().tolist()
            options = []
            for k in range(len(chosen)):
                if k >= len(positions):  # cut off by max_len
                    options.append([])
                    continue
                ids = torch.topk(logits[row, positions[k]].float(), min(top_k * 4, logits.shape[-1])).indices.tolist()
                words = [tokenizer.convert_ids_to_tokens(i) for i in ids if i not in special]
                options.append([w for w in words if w.isalpha() and not w.startswith("##")][:top_k])
            result.append(options)
    return result


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
