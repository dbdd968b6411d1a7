"""A strict UBJSON reader, used to check an XGBoost model before XGBoost sees it.

XGBoost's own loader trusts its input: model bytes altered by someone who also
recomputed the bundle's checksums can crash the whole process (a segmentation
fault, not an exception). :func:`check_xgboost_model` parses the bytes here
first, with every length bounded by the data, and checks the trees' structure
(array lengths, child and feature indices), so that a damaged model is one
``ValueError`` instead.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

__all__ = ["loads", "check_xgboost_model"]

_INT = {b"i": (">b", 1), b"U": (">B", 1), b"I": (">h", 2), b"l": (">i", 4), b"L": (">q", 8)}
_FLOAT = {b"d": (">f", 4), b"D": (">d", 8)}
_NP = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}
_MAX_DEPTH = 64


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.d = memoryview(data)
        self.i = 0
        self.depth = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.d):
            raise ValueError(f"truncated at byte {self.i} (wanted {n} more)")
        out = bytes(self.d[self.i:self.i + n])
        self.i += n
        return out

    def marker(self) -> bytes:
        m = self.take(1)
        while m == b"N":
            m = self.take(1)
        return m

    def integer(self, m: bytes | None = None) -> int:
        m = m if m is not None else self.marker()
        if m not in _INT:
            raise ValueError(f"expected an integer marker at byte {self.i - 1}, got {m!r}")
        fmt, n = _INT[m]
        return struct.unpack(fmt, self.take(n))[0]

    def length(self, m: bytes | None = None) -> int:
        n = self.integer(m)
        if n < 0 or n > len(self.d) - self.i:
            raise ValueError(f"length {n} at byte {self.i} exceeds the data")
        return n

    def value(self, m: bytes) -> Any:
        if m == b"Z":
            return None
        if m == b"T":
            return True
        if m == b"F":
            return False
        if m in _INT:
            return self.integer(m)
        if m in _FLOAT:
            fmt, n = _FLOAT[m]
            return struct.unpack(fmt, self.take(n))[0]
        if m == b"C":
            return self.take(1).decode("latin-1")
        if m in (b"S", b"H"):
            return self.take(self.length()).decode("utf-8")
        if m in (b"[", b"{"):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ValueError("nested too deeply")
            try:
                return self.array() if m == b"[" else self.obj()
            finally:
                self.depth -= 1
        raise ValueError(f"unknown marker {m!r} at byte {self.i - 1}")

    def header(self) -> tuple[bytes | None, int | None, bytes | None]:
        m = self.marker()
        typ = None
        if m == b"$":
            typ = self.take(1)
            m = self.marker()
            if m != b"#":
                raise ValueError(f"a typed container needs a count at byte {self.i - 1}")
        if m == b"#":
            return typ, self.length(), None
        return None, None, m

    def array(self) -> Any:
        typ, count, m = self.header()
        if count is not None:
            if typ in _NP:
                size = np.dtype(_NP[typ]).itemsize
                if count * size > len(self.d) - self.i:
                    raise ValueError(f"array of {count} at byte {self.i} exceeds the data")
                return np.frombuffer(self.take(count * size), dtype=_NP[typ])
            return [self.value(typ if typ is not None else self.marker()) for _ in range(count)]
        out = []
        while m != b"]":
            out.append(self.value(m))
            m = self.marker()
        return out

    def key(self, m: bytes | None = None) -> str:
        return self.take(self.length(m)).decode("utf-8")

    def obj(self) -> dict[str, Any]:
        typ, count, m = self.header()
        out: dict[str, Any] = {}
        if count is not None:
            for _ in range(count):
                k = self.key()
                out[k] = self.value(typ if typ is not None else self.marker())
            return out
        while m != b"}":
            k = self.key(m)
            out[k] = self.value(self.marker())
            m = self.marker()
        return out


def loads(data: bytes) -> Any:
    """Parse one UBJSON value; ``ValueError`` on anything malformed or trailing."""
    r = _Reader(data)
    value = r.value(r.marker())
    if r.i != len(data):
        raise ValueError(f"{len(data) - r.i} trailing byte(s)")
    return value


_TREE_ARRAYS = ("left_children", "right_children", "parents", "split_indices", "split_conditions", "default_left",
                "base_weights")


def check_xgboost_model(data: bytes) -> None:
    """Raise ``ValueError`` unless ``data`` is a well-formed XGBoost tree model in UBJSON."""
    try:
        model = loads(data)
    except (UnicodeDecodeError, struct.error, RecursionError) as exc:
        raise ValueError(f"malformed UBJSON ({type(exc).__name__})") from None
    try:
        learner = model["learner"]
        n_features = int(learner["learner_model_param"]["num_feature"])
        gbm = learner["gradient_booster"]
        inner = gbm.get("model") or gbm.get("gbtree", {}).get("model")
        trees = inner["trees"]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError("not an XGBoost tree model (learner, gradient_booster or trees missing)") from None
    if not isinstance(trees, list) or n_features < 1:
        raise ValueError("not an XGBoost tree model (no tree list or no features)")
    for t, tree in enumerate(trees):
        try:
            n = int(tree["tree_param"]["num_nodes"])
            arrays = {k: tree[k] for k in _TREE_ARRAYS}
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tree {t} lacks its node arrays") from None
        if n < 1:
            raise ValueError(f"tree {t} has {n} nodes")
        for k, a in arrays.items():
            if len(a) != n:
                raise ValueError(f"tree {t}: {k} has {len(a)} entries for {n} nodes")
        for k in ("left_children", "right_children", "parents"):
            a = np.asarray(arrays[k], dtype=np.int64)
            if np.any((a < -1) | (a >= n)) and not (k == "parents" and np.all((a[1:] >= 0) & (a[1:] < n))):
                raise ValueError(f"tree {t}: {k} points outside the tree")
        split = np.asarray(arrays["split_indices"], dtype=np.int64)
        leaves = np.asarray(arrays["left_children"], dtype=np.int64) == -1
        if np.any(~leaves & ((split < 0) | (split >= n_features))):
            raise ValueError(f"tree {t}: a split uses a feature outside 0..{n_features - 1}")
