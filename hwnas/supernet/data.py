"""Unlabelled text for task-agnostic distillation: reading, tokenising, caching.

Sources (``--data``):

* ``None``: the embedded SST-2 sentences (``hwnas/data/sst2/train.tsv``);
* a text file (``.txt``, optionally ``.gz``): one text per non-empty line;
* a table (``.tsv``, ``.csv``, optionally ``.gz``) or JSON lines (``.jsonl``):
  the text column is ``text_column`` or the first of ``sentence``, ``text``,
  ``content``, ``document``, ``body``;
* a Hugging Face ``datasets`` name (``name`` or ``name:config``; needs the
  ``datasets`` package and a network), read in streaming mode.

Texts are tokenised in chunks (never all in memory), long texts are cut into
pieces of ``seq_len - 2`` tokens, and every piece becomes one row
``[CLS] tokens [SEP] pad...`` of a ``rows x seq_len`` int32 array written to a
binary cache file beside a JSON description. The cache is reused when the
source file, tokenizer and ``seq_len`` are unchanged, and read with ``np.memmap``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import atomic_write_text, fsync_dir, iter_lines, iter_table
from hwnas.errors import InvalidData
from hwnas.progress import ProgressCallback, emit

__all__ = ["TEXT_COLUMNS", "iter_texts", "TokenData", "build_token_cache", "describe_source"]

TEXT_COLUMNS = ("sentence", "text", "content", "document", "body")
_CHUNK_TEXTS = 512
_CACHE_VERSION = 1


def _default_source() -> Path:
    from hwnas.data import embedded_path

    return embedded_path("sst2/train.tsv")


def _pick_column(columns: list[str], text_column: str | None, where: str) -> str:
    if text_column is not None:
        if text_column not in columns:
            raise InvalidData(f"{where} has no column {text_column!r}; its columns are {', '.join(columns)}")
        return text_column
    lower = {c.strip().lower(): c for c in columns}
    for cand in TEXT_COLUMNS:
        if cand in lower:
            return lower[cand]
    raise InvalidData(
        f"{where} has no text column; expected one of {', '.join(TEXT_COLUMNS)} (or pass --text-column); "
        f"its columns are {', '.join(columns)}"
    )


def iter_texts(source: str | Path | None = None, *, text_column: str | None = None) -> Iterator[str]:
    """Yield the non-empty texts of ``source`` one by one (see the module docstring)."""
    if source is None:
        source = _default_source()
    path = Path(source).expanduser()
    if not path.exists():
        if isinstance(source, str) and not any(sep in source for sep in ("/", "\\")) and "." not in Path(source).suffix:
            yield from _iter_hf_dataset(source, text_column)
            return
        raise InvalidData(f"data file {source} does not exist; give a .txt, .tsv, .csv, .jsonl file or a datasets name")
    if path.is_dir():
        raise InvalidData(f"data {source} is a folder; give a .txt, .tsv, .csv or .jsonl file")
    fmt = next((s for s in reversed([s.lower() for s in path.suffixes]) if s != ".gz"), "")
    if fmt in (".txt", ".text", ""):
        yield from filter(None, (line.strip() for line in iter_lines(path, InvalidData)))
    elif fmt in (".tsv", ".csv", ".jsonl", ".ndjson"):
        columns, rows = iter_table(path, InvalidData)
        yield from _column_texts((row for _, row in rows), columns, text_column, str(path))
    else:
        raise InvalidData(
            f"data file {path.name} has an unknown format {fmt!r}; accepted: .txt, .tsv, .csv, .jsonl (optionally .gz)"
        )


def _column_texts(rows: Iterable[Mapping[str, Any]], columns: list[str] | None, text_column: str | None,
                  where: str) -> Iterator[str]:
    """The non-empty texts in the text column of ``rows`` (picked from ``columns``, else the first row's keys)."""
    col = None
    for row in rows:
        if col is None:
            col = _pick_column(list(columns or row), text_column, where)
        text = str(row.get(col) or "").strip()
        if text:
            yield text


def _iter_hf_dataset(name: str, text_column: str | None) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise InvalidData(
            f"data {name!r} is not a file, and reading a Hugging Face dataset needs the datasets package: pip install datasets"
        ) from None
    ds_name, _, config = name.partition(":")
    try:
        ds = datasets.load_dataset(ds_name, config or None, split="train", streaming=True)
    except Exception as exc:  # noqa: BLE001 (deliberate: network errors, unknown names: all reported as one line)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidData(f"cannot load dataset {name!r} (needs a network): {first}") from None
    yield from _column_texts(ds, None, text_column, f"dataset {name}")


def describe_source(source: str | Path | None) -> dict[str, Any]:
    """An identity of the source for cache keys and records (path, size, mtime)."""
    path = _default_source() if source is None else Path(source).expanduser()
    if path.is_file():
        st = path.stat()
        return {"source": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "embedded": source is None}
    return {"source": str(source), "dataset": True}


@dataclass
class TokenData:
    """Tokenised rows (``rows x seq_len`` int32, memory-mapped) with their lengths.

    Row ``i`` holds ``lengths[i]`` real tokens followed by padding. The last
    ``heldout`` rows are kept out of training for the held-out loss.
    """

    ids: np.ndarray
    lengths: np.ndarray
    pad_id: int
    info: dict[str, Any]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.ids.shape[1])

    def batch(self, rows: np.ndarray):
        """``(input_ids, attention_mask)`` for these rows, trimmed to their longest (int64 tensors)."""
        import torch

        rows = np.asarray(rows)
        width = int(self.lengths[rows].max()) if len(rows) else 1
        ids = torch.from_numpy(np.asarray(self.ids[rows, :width], dtype=np.int64))
        mask = (torch.arange(width)[None, :] < torch.from_numpy(self.lengths[rows].astype(np.int64))[:, None]).long()
        return ids, mask


def _cache_key(source_info: dict[str, Any], tokenizer: Any, seq_len: int, text_column: str | None, max_rows: int | None) -> str:
    vocab = tokenizer.get_vocab()
    vocab_digest = hashlib.sha256(json.dumps(sorted(vocab.items())[:2000]).encode()).hexdigest()[:16]
    blob = json.dumps(
        {
            "v": _CACHE_VERSION, "source": source_info, "tokenizer": type(tokenizer).__name__, "vocab_size": len(vocab),
            "vocab": vocab_digest, "seq_len": seq_len, "text_column": text_column, "max_rows": max_rows,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def build_token_cache(
    source: str | Path | None, tokenizer: Any, *, seq_len: int, cache_dir: str | Path, text_column: str | None = None,
    max_rows: int | None = None, on_progress: ProgressCallback | None = None,
) -> TokenData:
    """Tokenise ``source`` once into ``cache_dir`` (or reuse the cache) and map it.

    Args:
        seq_len: row length in tokens, including ``[CLS]`` and ``[SEP]`` (>= 8).
        max_rows: stop after this many rows (``None``: the whole source).
        on_progress: receives ``ProgressEvent(stage="tokenise", completed=rows, total=max_rows)``
            after every chunk of texts (not called when the cache is reused).
    """
    if seq_len < 8:
        raise InvalidData(f"seq_len must be at least 8 tokens; got {seq_len}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    source_info = describe_source(source)
    key = _cache_key(source_info, tokenizer, seq_len, text_column, max_rows)
    bin_path, meta_path = cache_dir / f"tokens-{key}.bin", cache_dir / f"tokens-{key}.json"
    if meta_path.is_file() and bin_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if bin_path.stat().st_size == meta["rows"] * seq_len * 4 + meta["rows"] * 4:
                return _map(bin_path, meta)
        except (json.JSONDecodeError, KeyError):
            pass  # a broken cache is rebuilt below
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    if pad_id is None:
        pad_id = 0
    piece = seq_len - (cls_id is not None) - (sep_id is not None)
    rows_path = cache_dir / f"tokens-{key}.rows.tmp"
    lens_path = cache_dir / f"tokens-{key}.lens.tmp"
    n_rows = n_texts = n_tokens = 0
    try:
        with open(rows_path, "wb") as rows_fh, open(lens_path, "wb") as lens_fh:
            chunk: list[str] = []

            def flush() -> bool:
                nonlocal n_rows, n_texts, n_tokens
                enc = tokenizer(chunk, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
                out, lens = [], []
                for toks in enc:
                    n_texts += 1
                    for start in range(0, len(toks), piece):
                        part = toks[start : start + piece]
                        if len(part) < 2 and start > 0:
                            continue
                        row = ([cls_id] if cls_id is not None else []) + part + ([sep_id] if sep_id is not None else [])
                        lens.append(len(row))
                        out.append(row + [pad_id] * (seq_len - len(row)))
                        n_tokens += len(part)
                        if max_rows is not None and n_rows + len(out) >= max_rows:
                            break
                    if max_rows is not None and n_rows + len(out) >= max_rows:
                        break
                if out:
                    rows_fh.write(np.asarray(out, dtype=np.int32).tobytes())
                    lens_fh.write(np.asarray(lens, dtype=np.int32).tobytes())
                    n_rows += len(out)
                chunk.clear()
                emit(on_progress, "tokenise", n_rows, max_rows)
                return max_rows is not None and n_rows >= max_rows

            for text in iter_texts(source, text_column=text_column):
                chunk.append(text)
                if len(chunk) >= _CHUNK_TEXTS and flush():
                    break
            else:
                if chunk:
                    flush()
        if n_rows == 0:
            raise InvalidData(f"data {source_info['source']} holds no text (no non-empty line or row)")
        # rows then lengths in one file; written to a temporary name, then renamed.
        tmp = cache_dir / f"tokens-{key}.bin.tmp"
        with open(tmp, "wb") as out_fh:
            for part_path in (rows_path, lens_path):
                with open(part_path, "rb") as fh:
                    while block := fh.read(1 << 24):
                        out_fh.write(block)
            out_fh.flush()
            os.fsync(out_fh.fileno())
        os.replace(tmp, bin_path)
        fsync_dir(cache_dir)
        meta = {
            "format": "hwnas-token-cache", "version": _CACHE_VERSION, "rows": n_rows, "texts": n_texts,
            "tokens": n_tokens, "seq_len": seq_len, "pad_id": int(pad_id), "text_column": text_column, **source_info,
        }
        atomic_write_text(meta_path, json.dumps(meta, indent=2))
    finally:
        for p in (rows_path, lens_path):
            p.unlink(missing_ok=True)
    return _map(bin_path, meta)


def _map(bin_path: Path, meta: dict[str, Any]) -> TokenData:
    rows, seq_len = int(meta["rows"]), int(meta["seq_len"])
    ids = np.memmap(bin_path, dtype=np.int32, mode="r", shape=(rows, seq_len))
    lengths = np.array(np.memmap(bin_path, dtype=np.int32, mode="r", offset=rows * seq_len * 4, shape=(rows,)))
    return TokenData(ids=ids, lengths=lengths, pad_id=int(meta["pad_id"]), info=meta)
