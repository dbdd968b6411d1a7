"""Architectures and search spaces.

An :class:`Architecture` is a BERT-like encoder with the same shape in every
layer: ``layers`` transformer layers of width ``hidden``, ``heads`` attention
heads and an FFN (intermediate) size ``ffn``. Every architecture is a standard
``transformers.BertConfig``, so every student loads with ``AutoModel``.

A :class:`SearchSpace` gives the allowed values of each dimension. The built-in
spaces follow AutoDistil's idea of a few compact sub-spaces (``tiny``, ``small``,
``base``) rather than one huge space, plus ``full`` up to BERT-base. A space can
be written as a small YAML or JSON file::

    name: my-space
    layers: [2, 3, 4]
    hidden: {min: 128, max: 256, step: 64}
    heads: [2, 4]
    ffn: {min: 256, max: 1024, step: 256}

Sampling plans (uniform random and a stratified Latin hypercube that always
contains the corners of the space) are seeded and return valid architectures
only (``heads`` divides ``hidden``).
"""

from __future__ import annotations

import itertools
import math
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import atomic_write_text, read_yaml_or_json
from hwnas.errors import InvalidArchitecture, InvalidSpace

__all__ = [
    "DIMENSIONS", "Architecture", "SearchSpace", "BUILTIN_SPACES", "get_space", "load_architectures",
    "as_architectures", "format_choices",
]

#: The searchable dimensions, in the order used everywhere (features, encodings, files).
DIMENSIONS: tuple[str, ...] = ("layers", "hidden", "heads", "ffn")

# Aliases accepted when parsing ``--arch`` strings and dictionaries, so that users
# can paste names from a BertConfig.
_ALIASES = {
    "layers": "layers", "num_layers": "layers", "num_hidden_layers": "layers", "l": "layers", "hidden": "hidden",
    "hidden_size": "hidden", "h": "hidden", "heads": "heads", "num_heads": "heads", "num_attention_heads": "heads",
    "a": "heads", "ffn": "ffn", "ffn_size": "ffn", "intermediate_size": "ffn", "intermediate": "ffn", "i": "ffn",
}


#: Largest value of any dimension an architecture may have (wider than any encoder hwnas could build here).
MAX_DIMENSION = 1 << 20
#: Most candidate architectures (the product of the dimensions' choices) a space may enumerate.
MAX_SPACE_CANDIDATES = 1_000_000
#: Most values one dimension of a space may list.
MAX_CHOICES = 10_000


def _short_int(value: int) -> str:
    text = str(value)
    return text if len(text) <= 20 else f"{text[:8]}...({len(text)} digits)"


def _short_text(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


@dataclass(frozen=True, order=True)
class Architecture:
    """A BERT-like encoder, uniform across layers.

    Args:
        layers: number of transformer layers (>= 1).
        hidden: hidden size, the width of the residual stream (>= 1).
        heads: number of attention heads; must divide ``hidden``.
        ffn: FFN intermediate size (>= 1).
    """

    layers: int
    hidden: int
    heads: int
    ffn: int

    def __post_init__(self) -> None:
        for name in DIMENSIONS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InvalidArchitecture(f"{name} must be a positive integer; got {value!r} ({type(value).__name__})")
            if value < 1:
                raise InvalidArchitecture(f"{name} must be a positive integer; got {name}={value}")
            if value > MAX_DIMENSION:
                raise InvalidArchitecture(f"{name} must be at most {MAX_DIMENSION}; got {name}={_short_int(value)}")
            object.__setattr__(self, name, int(value))
        if self.hidden % self.heads:
            raise InvalidArchitecture(f"heads must divide hidden; got hidden={self.hidden}, heads={self.heads}")

    # ------------------------------------------------------------------ views
    @property
    def head_dim(self) -> int:
        """Width of one attention head (``hidden // heads``)."""
        return self.hidden // self.heads

    @property
    def key(self) -> str:
        """Canonical string form, e.g. ``layers=4,hidden=256,heads=4,ffn=1024``."""
        return ",".join(f"{d}={getattr(self, d)}" for d in DIMENSIONS)

    @property
    def short(self) -> str:
        """Compact form for tables and progress bars that :meth:`parse` reads back: ``L4-H256-A4-I1024``."""
        return f"L{self.layers}-H{self.hidden}-A{self.heads}-I{self.ffn}"

    def __str__(self) -> str:
        return self.key

    def as_dict(self) -> dict[str, int]:
        return {d: getattr(self, d) for d in DIMENSIONS}

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.layers, self.hidden, self.heads, self.ffn)

    def num_parameters(self, vocab_size: int = 30522, max_positions: int = 512, type_vocab_size: int = 2) -> int:
        """Parameter count of the ``BertModel`` (embeddings + encoder, no pooler)."""
        h, f = self.hidden, self.ffn
        embeddings = (vocab_size + max_positions + type_vocab_size) * h + 2 * h
        per_layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h
        return embeddings + self.layers * per_layer

    def to_bert_config(self, base: Any = None, **overrides: Any):
        """A ``transformers.BertConfig`` with this shape.

        Args:
            base: an optional config (e.g. the teacher's) whose other fields
                (vocabulary, positions, dropout, activation) are kept.
            overrides: further ``BertConfig`` fields.
        """
        from transformers import BertConfig

        values: dict[str, Any] = base.to_dict() if base is not None else {}
        for drop in ("architectures", "_name_or_path", "model_type", "transformers_version", "auto_map"):
            values.pop(drop, None)
        values.update(
            num_hidden_layers=self.layers, hidden_size=self.hidden, num_attention_heads=self.heads,
            intermediate_size=self.ffn,
        )
        values.update(overrides)
        return BertConfig(**values)

    # ------------------------------------------------------------- builders
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        """Build from a mapping; accepts BertConfig-style names as aliases."""
        if not isinstance(data, Mapping):
            raise InvalidArchitecture(f"an architecture must be a mapping of {', '.join(DIMENSIONS)}; got {data!r}")
        values: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = _ALIASES.get(str(raw_key).strip().lower())
            if key is None:
                continue  # extra fields (scores, latencies) are allowed alongside
            if key in values:
                raise InvalidArchitecture(f"{key} is given twice in {dict(data)!r}")
            values[key] = value
        missing = [d for d in DIMENSIONS if d not in values]
        if missing:
            raise InvalidArchitecture(
                f"architecture lacks {', '.join(missing)}; expected {', '.join(DIMENSIONS)} in {dict(data)!r}"
            )
        for key, value in values.items():
            if isinstance(value, float) and value.is_integer():
                values[key] = int(value)
        return cls(**values)

    @classmethod
    def parse(cls, text: str) -> Architecture:
        """Parse ``"layers=4,hidden=256,heads=4,ffn=1024"`` (also ``L4-H256-A4-I1024``)."""
        text = text.strip()
        compact = re.fullmatch(r"[Ll](\d{1,12})[-_][Hh](\d{1,12})[-_][Aa](\d{1,12})[-_][Ii](\d{1,12})", text)
        if compact:
            return cls(*(int(g) for g in compact.groups()))
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "=" not in part:
                raise InvalidArchitecture(
                    f"cannot parse architecture {_short_text(text)}: expected key=value pairs like "
                    "layers=4,hidden=256,heads=4,ffn=1024"
                )
            key, value = (s.strip() for s in part.split("=", 1))
            if key in values:
                raise InvalidArchitecture(f"{key} is given twice in {_short_text(text)}")
            if _ALIASES.get(key.lower()) is None:
                raise InvalidArchitecture(f"unknown key {key!r} in architecture {_short_text(text)}; accepted keys: "
                                          f"{', '.join(DIMENSIONS)} (the shape, e.g. seq_len, has its own option)")
            if len(value) > 12 or not re.fullmatch(r"[+-]?\d+", value):
                raise InvalidArchitecture(f"{key} must be an integer of at most {MAX_DIMENSION} in "
                                          f"{_short_text(text)}; got {_short_text(value)}")
            values[key] = int(value)
        return cls.from_dict(values)


def _coerce_architecture(arch: Architecture | Mapping[str, Any] | str) -> Architecture:
    if isinstance(arch, Architecture):
        return arch
    if isinstance(arch, str):
        return Architecture.parse(arch)
    return Architecture.from_dict(arch)


def _choices_from_spec(name: str, spec: Any, where: str) -> tuple[int, ...]:
    """Turn a list or a ``{min, max, step}`` mapping into sorted unique ints."""
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"min", "max", "step"}
        if unknown or not {"min", "max"} <= set(spec):
            raise InvalidSpace(
                f"{where}: {name} must be a list of integers or a mapping with min, max and optional step; got {dict(spec)!r}"
            )
        lo, hi, step = spec["min"], spec["max"], spec.get("step", 1)
        for label, v in (("min", lo), ("max", hi), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidSpace(f"{where}: {name}.{label} must be an integer; got {v!r}")
        if step < 1 or lo > hi:
            raise InvalidSpace(f"{where}: {name} needs min <= max and step >= 1; got min={lo}, max={hi}, step={step}")
        if (hi - lo) // step + 1 > MAX_CHOICES:
            raise InvalidSpace(f"{where}: {name} min={_short_int(lo)}, max={_short_int(hi)}, step={step} lists "
                               f"{_short_int((hi - lo) // step + 1)} values, more than the {MAX_CHOICES} one dimension "
                               "may have; raise step or narrow the range")
        values = list(range(lo, hi + 1, step))
    elif isinstance(spec, (list, tuple)):
        values = list(spec)
    elif isinstance(spec, int) and not isinstance(spec, bool):
        values = [spec]
    else:
        raise InvalidSpace(f"{where}: {name} must be a list of integers or a mapping with min, max, step; got {spec!r}")
    if not values:
        raise InvalidSpace(f"{where}: {name} has no allowed values")
    if len(values) > MAX_CHOICES:
        raise InvalidSpace(f"{where}: {name} lists {len(values)} values, more than the {MAX_CHOICES} one dimension may have")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidSpace(f"{where}: every value of {name} must be a positive integer; got {v!r}")
        if v > MAX_DIMENSION:
            raise InvalidSpace(f"{where}: every value of {name} must be at most {MAX_DIMENSION}; got {_short_int(v)}")
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class SearchSpace:
    """The allowed values of every dimension; ``heads`` must divide ``hidden``.

    Args:
        name: a short identifier, stored in profiles, predictors and supernets.
        layers, hidden, heads, ffn: allowed values (sorted, unique, positive).
        description: a free-text line shown by ``hwnas space show``.
    """

    name: str
    layers: tuple[int, ...]
    hidden: tuple[int, ...]
    heads: tuple[int, ...]
    ffn: tuple[int, ...]
    description: str = ""
    _valid: tuple[Architecture, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.name):
            raise InvalidSpace(f"space name must be letters, digits, '-', '_' or '.'; got {self.name!r}")
        where = f"space {self.name!r}"
        for dim in DIMENSIONS:
            object.__setattr__(self, dim, _choices_from_spec(dim, getattr(self, dim), where))
        candidates = math.prod(len(getattr(self, dim)) for dim in DIMENSIONS)
        if candidates > MAX_SPACE_CANDIDATES:
            raise InvalidSpace(f"{where} has {candidates:,} candidate architectures, more than the "
                               f"{MAX_SPACE_CANDIDATES:,} hwnas enumerates; use fewer values per dimension (a step)")
        valid = tuple(
            Architecture(l, h, a, f) for l, h, a,
            f in itertools.product(self.layers, self.hidden, self.heads, self.ffn) if h % a == 0
        )
        if not valid:
            raise InvalidSpace(
                f"{where} has no valid architecture: no heads value in {list(self.heads)} divides any hidden value in {list(self.hidden)}"
            )
        bad_hidden = [h for h in self.hidden if not any(h % a == 0 for a in self.heads)]
        if bad_hidden:
            raise InvalidSpace(
                f"{where}: hidden values {bad_hidden} are not divisible by any heads value in {list(self.heads)}"
            )
        object.__setattr__(self, "_valid", valid)

    # ----------------------------------------------------------- inspection
    def choices(self, dim: str) -> tuple[int, ...]:
        if dim not in DIMENSIONS:
            raise InvalidSpace(f"unknown dimension {dim!r}; dimensions are {', '.join(DIMENSIONS)}")
        return getattr(self, dim)

    def __len__(self) -> int:
        """Number of valid architectures."""
        return len(self._valid)

    def __iter__(self) -> Iterator[Architecture]:
        return iter(self._valid)

    def __contains__(self, arch: object) -> bool:
        try:
            self.validate(arch)  # type: ignore[arg-type]
        except InvalidArchitecture:
            return False
        return True

    def enumerate(self) -> list[Architecture]:
        """Every valid architecture of the space, in lexicographic order."""
        return list(self._valid)

    @property
    def largest(self) -> Architecture:
        """The architecture with every dimension at its maximum (heads: the largest that divides hidden)."""
        h = self.hidden[-1]
        return Architecture(self.layers[-1], h, max(a for a in self.heads if h % a == 0), self.ffn[-1])

    @property
    def smallest(self) -> Architecture:
        h = self.hidden[0]
        return Architecture(self.layers[0], h, min(a for a in self.heads if h % a == 0), self.ffn[0])

    def corners(self) -> list[Architecture]:
        """Valid architectures at the extremes of every dimension.

        For each combination of min/max of layers, hidden and ffn, the smallest and
        largest heads value that divides hidden. Always contains :attr:`smallest`
        and :attr:`largest`.
        """
        out: list[Architecture] = []
        for l, h, f in itertools.product(
            sorted({self.layers[0], self.layers[-1]}), sorted({self.hidden[0], self.hidden[-1]}),
            sorted({self.ffn[0], self.ffn[-1]}),
        ):
            heads = [a for a in self.heads if h % a == 0]
            for a in sorted({heads[0], heads[-1]}):
                arch = Architecture(l, h, a, f)
                if arch not in out:
                    out.append(arch)
        return out

    def validate(self, arch: Architecture | Mapping[str, Any] | str) -> Architecture:
        """Return ``arch`` as an :class:`Architecture`, or raise naming what is outside the space."""
        arch = _coerce_architecture(arch)
        for dim in DIMENSIONS:
            value, allowed = getattr(arch, dim), getattr(self, dim)
            if value not in allowed:
                raise InvalidArchitecture(
                    f"{dim}={value} is outside space {self.name!r}; allowed {dim}: {format_choices(allowed)}"
                )
        return arch

    # ------------------------------------------------------------- sampling
    def sample_random(self, n: int, *, seed: int | None = 0, unique: bool = True) -> list[Architecture]:
        """``n`` architectures drawn uniformly from the valid set.

        With ``unique`` (default) there are no repeats, and ``n`` is capped at the
        size of the space.
        """
        _check_count(n)
        rng = np.random.default_rng(seed)
        if unique:
            idx = rng.permutation(len(self._valid))[: min(n, len(self._valid))]
        else:
            idx = rng.integers(0, len(self._valid), size=n)
        return [self._valid[i] for i in idx]

    def sample_lhs(self, n: int, *, seed: int | None = 0, include_corners: bool = True) -> list[Architecture]:
        """A space-filling plan: the corners, then a Latin hypercube over the rest.

        Each dimension's choices are split into ``m`` equal strata
        (``m`` = the number of points still needed) and every stratum is used
        once per dimension, as in a Latin hypercube; points are then snapped to
        the nearest valid architecture not yet chosen. Repeats are never
        returned, so ``n`` is capped at the size of the space.
        """
        _check_count(n)
        rng = np.random.default_rng(seed)
        n = min(n, len(self._valid))
        chosen: list[Architecture] = []
        taken: set[Architecture] = set()
        if include_corners:
            # A plan shorter than the corner list takes the smallest and largest first,
            # then the other corners in a seeded order, so that it still spans the space.
            corners = self.corners()
            if n < len(corners):
                ends = [self.smallest, self.largest]
                rest = [c for c in corners if c not in ends]
                order = np.random.default_rng(None if seed is None else [seed, 1]).permutation(len(rest))
                corners = ends + [rest[i] for i in order]
            for arch in corners[:n]:
                if arch not in taken:
                    chosen.append(arch)
                    taken.add(arch)
        m = n - len(chosen)
        if m <= 0:
            return chosen
        # Normalised position of every valid architecture, to snap LHS points onto.
        grid = np.array([self._unit(a) for a in self._valid])
        points = np.empty((m, len(DIMENSIONS)))
        for j in range(len(DIMENSIONS)):
            points[:, j] = (rng.permutation(m) + rng.random(m)) / m
        free = np.ones(len(self._valid), dtype=bool)
        for arch in taken:
            free[self._valid.index(arch)] = False
        for p in points:
            d = np.where(free, ((grid - p) ** 2).sum(axis=1), np.inf)
            best = int(np.argmin(d))
            free[best] = False
            chosen.append(self._valid[best])
        return chosen

    def sample(self, n: int, *, plan: str = "lhs", seed: int | None = 0) -> list[Architecture]:
        """Dispatch to :meth:`sample_lhs` (``plan='lhs'``) or :meth:`sample_random` (``'random'``)."""
        if plan == "lhs":
            return self.sample_lhs(n, seed=seed)
        if plan == "random":
            return self.sample_random(n, seed=seed)
        raise InvalidSpace(f"unknown sampling plan {plan!r}; plans are: lhs, random")

    def _unit(self, arch: Architecture) -> list[float]:
        """Position of ``arch`` in [0, 1]^4 by rank of each dimension's value."""
        out = []
        for dim in DIMENSIONS:
            allowed = getattr(self, dim)
            i = allowed.index(getattr(arch, dim))
            out.append(i / (len(allowed) - 1) if len(allowed) > 1 else 0.5)
        return out

    # --------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        for dim in DIMENSIONS:
            out[dim] = list(getattr(self, dim))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "space") -> SearchSpace:
        if not isinstance(data, Mapping):
            raise InvalidSpace(f"{where}: a space must be a mapping with name, {', '.join(DIMENSIONS)}; got {type(data).__name__}")
        unknown = set(data) - {"name", "description", *DIMENSIONS}
        if unknown:
            raise InvalidSpace(
                f"{where}: unknown keys {sorted(map(str, unknown))}; allowed keys: name, description, {', '.join(DIMENSIONS)}"
            )
        missing = [d for d in DIMENSIONS if d not in data]
        if missing:
            raise InvalidSpace(f"{where}: missing {', '.join(missing)}; a space needs {', '.join(DIMENSIONS)}")
        return cls(
            name=str(data.get("name", "custom")), description=str(data.get("description", "")),
            **{d: data[d] for d in DIMENSIONS},
        )

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Load a space from a ``.yaml``, ``.yml`` or ``.json`` file."""
        path = Path(path)
        data = read_yaml_or_json(path, InvalidSpace, "space file")
        if isinstance(data, Mapping) and "name" not in data:
            data = {"name": path.stem, **data}
        return cls.from_dict(data, where=f"space file {path}")

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


def format_choices(values: Sequence[int]) -> str:
    """A dimension's values for messages: ``128..768 step 64`` for a long even range, else listed."""
    values = list(values)
    if len(values) > 2:
        steps = {b - a for a, b in zip(values, values[1:], strict=False)}
        if len(steps) == 1 and len(values) > 4:
            return f"{values[0]}..{values[-1]} step {steps.pop()}"
    return ", ".join(str(v) for v in values)


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidSpace(f"the number of samples must be an integer >= 1; got {n!r}")


# Ranges chosen from measurements with hwnas's ``cpu`` device at sequence 128,
# batch 1, on the shared 2-core AMD EPYC development machine (README, "Spaces"):
# one thread (the default) / two threads.
BUILTIN_SPACES: dict[str, SearchSpace] = {
    s.name: s
    for s in (
        SearchSpace(
            name="tiny", description="very small students: about 1-6 ms at seq 128, batch 1 on one CPU thread",
            layers=(1, 2, 3), hidden=(128, 160, 192), heads=(2, 4), ffn=(256, 384, 512, 640, 768),
        ),
        SearchSpace(
            name="small",
            description="compact students up to MiniLM-L6-H384: about 3-40 ms on one thread (2.5-25 ms on two)",
            layers=(2, 3, 4, 5, 6), hidden=(192, 224, 256, 288, 320, 352, 384), heads=(4, 8),
            ffn=(512, 640, 768, 896, 1024, 1152, 1280, 1408, 1536),
        ),
        SearchSpace(
            name="base", description="larger students up to BERT-base: about 40 ms and upward on one thread",
            layers=(6, 8, 10, 12), hidden=(384, 512, 640, 768), heads=(8, 12), ffn=(1536, 2048, 2560, 3072),
        ),
        SearchSpace(
            name="full", description="everything up to BERT-base (12 layers, 768 hidden, 12 heads, 3072 FFN)",
            layers=tuple(range(1, 13)), hidden=tuple(range(128, 769, 64)), heads=(2, 4, 6, 8, 12),
            ffn=tuple(range(256, 3073, 256)),
        ),
    )
}


def get_space(name_or_path: str | Path | SearchSpace) -> SearchSpace:
    """A built-in space by name, or a space file (YAML/JSON) by path."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    key = str(name_or_path)
    if key in BUILTIN_SPACES:
        return BUILTIN_SPACES[key]
    path = Path(key)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        return SearchSpace.from_file(path)
    raise InvalidSpace(
        f"unknown space {key!r}; built-in spaces are {', '.join(BUILTIN_SPACES)}, or give a .yaml/.json space file"
    )


def load_architectures(path: str | Path) -> list[Architecture]:
    """Read explicit architectures from a file.

    Accepted: ``.jsonl`` (one object per line), ``.json`` (a list of objects, or
    ``{"architectures": [...]}``, or a single object such as a search
    ``winner.json`` with an ``arch`` field), or text with one
    ``layers=..,hidden=..,heads=..,ffn=..`` per line (``#`` comments allowed).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidArchitecture(f"architecture file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidArchitecture(f"architecture file {path} is not UTF-8 text (a binary file?); give jsonl, json "
                                  "or text with one layers=..,hidden=..,heads=..,ffn=.. per line") from None
    except OSError as exc:
        raise InvalidArchitecture(f"architecture file {path} cannot be read: {exc.strerror}") from None
    archs: list[Architecture] = []

    def add(item: Any, where: str) -> None:
        try:
            if isinstance(item, Mapping) and "arch" in item:
                item = item["arch"]
            archs.append(_coerce_architecture(item))
        except InvalidArchitecture as exc:
            raise InvalidArchitecture(f"{path}, {where}: {exc}") from None

    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, numbers beyond int's digit limit, deep nesting
            raise InvalidArchitecture(f"{path} is not valid JSON: {str(exc)[:120]}") from None
        if isinstance(data, Mapping) and "architectures" in data:
            data = data["architectures"]
        items: Iterable[Any] = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            add(item, f"item {i}")
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    item = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    raise InvalidArchitecture(f"{path}, line {lineno}: not valid JSON: {str(exc)[:120]}") from None
                add(item, f"line {lineno}")
            else:
                add(line, f"line {lineno}")
    if not archs:
        raise InvalidArchitecture(f"architecture file {path} holds no architecture")
    return archs


def as_architectures(archs: Any) -> list[Architecture]:
    """A list of :class:`Architecture` from architectures, strings, mappings or an ``n x 4`` int array."""
    if isinstance(archs, np.ndarray):
        if archs.ndim != 2 or archs.shape[1] != len(DIMENSIONS):
            raise InvalidArchitecture(f"an architecture array must be n x 4 ({', '.join(DIMENSIONS)}); got shape {archs.shape}")
        return [Architecture(*(int(v) for v in row)) for row in archs]
    if isinstance(archs, (Architecture, str)):
        archs = [archs]
    out = []
    for a in archs:
        if isinstance(a, Architecture):
            out.append(a)
        elif isinstance(a, str):
            out.append(Architecture.parse(a))
        elif isinstance(a, (tuple, list, np.ndarray)) and len(a) == 4:
            out.append(Architecture(*(int(v) for v in a)))
        else:
            out.append(Architecture.from_dict(a))
    return out
