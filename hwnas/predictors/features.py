"""Named, vectorised features of (architecture, input shape) pairs.

The raw inputs of a latency prediction are six integers per row, in the order
of :data:`INPUTS`: ``layers, hidden, heads, ffn, seq_len, batch_size``. From
them this module computes analytic cost terms per component of a BERT encoder
(embeddings, QKV projection, attention scores, softmax, attention context,
attention output projection, FFN up, FFN activation, FFN down, layer norms and
residual adds): floating-point operations (``*_flops``), parameter bytes
(``*_param_bytes``) and activation bytes moved to and from memory
(``*_act_bytes``). Every feature has a name (see :data:`FEATURE_NAMES`) and is
computed for a whole batch of rows at once with numpy, so a million rows take
a fraction of a second.

Conventions: all totals are for one forward pass of the whole encoder on a
``batch_size x seq_len`` input; ``T = batch_size * seq_len`` tokens;
``d = hidden / heads``; multiply-accumulate counts as 2 FLOPs; bytes assume
``bytes_per_element`` (4 for fp32, 2 for bf16/fp16).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.errors import InvalidArchitecture, InvalidConfig
from hwnas.space import DIMENSIONS, Architecture

__all__ = ["INPUTS", "FEATURE_NAMES", "COMPONENTS", "BYTES_PER_ELEMENT", "input_array", "featurize", "feature_frame"]

#: Raw inputs, in column order: the four architecture dimensions, then the shape.
INPUTS: tuple[str, ...] = (*DIMENSIONS, "seq_len", "batch_size")

#: Bytes per element for each dtype hwnas profiles.
BYTES_PER_ELEMENT: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}

#: Components of one encoder, in execution order.
COMPONENTS: tuple[str, ...] = (
    "embeddings", "qkv", "attn_scores", "attn_softmax", "attn_context", "attn_out", "ffn_up", "ffn_act", "ffn_down",
    "layernorm",
)


class _Ctx:
    """Float64 views of the inputs, shared by every feature function (``n``-vectors)."""

    __slots__ = ("L", "H", "A", "F", "S", "B", "T", "b", "_cache")

    def __init__(self, x: np.ndarray, bytes_per_element: float) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.L, self.H, self.A, self.F, self.S, self.B = (x[:, i] for i in range(6))
        self.T = self.B * self.S
        self.b = float(bytes_per_element)
        self._cache: dict[str, np.ndarray] = {}


# Each entry: name -> function of the context returning an n-vector (float64).
# Per-layer costs are multiplied by L; "heads_layers" and "layers" capture fixed
# per-operator overheads, which dominate small models on CPUs.
_F: dict[str, Callable[[_Ctx], np.ndarray]] = {
    # dimensions and shape
    "layers": lambda c: c.L,
    "hidden": lambda c: c.H,
    "heads": lambda c: c.A,
    "ffn": lambda c: c.F,
    "seq_len": lambda c: c.S,
    "batch_size": lambda c: c.B,
    "head_dim": lambda c: c.H / c.A,
    "tokens": lambda c: c.T,
    "heads_layers": lambda c: c.A * c.L * c.B,
    # embeddings: three lookups summed, then a layer norm
    "embeddings_flops": lambda c: 11.0 * c.T * c.H,
    "embeddings_param_bytes": lambda c: (30522.0 + 512.0 + 2.0 + 2.0) * c.H * c.b,
    "embeddings_act_bytes": lambda c: 5.0 * c.T * c.H * c.b,
    # QKV projection: T x H times H x 3H
    "qkv_flops": lambda c: 6.0 * c.T * c.H * c.H * c.L,
    "qkv_param_bytes": lambda c: (3.0 * c.H * c.H + 3.0 * c.H) * c.b * c.L,
    "qkv_act_bytes": lambda c: 4.0 * c.T * c.H * c.b * c.L,
    # attention scores: B*A times (S x d)(d x S)
    "attn_scores_flops": lambda c: 2.0 * c.B * c.S * c.S * c.H * c.L,
    "attn_scores_param_bytes": lambda c: 0.0 * c.L,
    "attn_scores_act_bytes": lambda c: (2.0 * c.T * c.H + c.B * c.A * c.S * c.S) * c.b * c.L,
    # softmax with the mask: about 5 FLOPs per score
    "attn_softmax_flops": lambda c: 5.0 * c.B * c.A * c.S * c.S * c.L,
    "attn_softmax_param_bytes": lambda c: 0.0 * c.L,
    "attn_softmax_act_bytes": lambda c: 2.0 * c.B * c.A * c.S * c.S * c.b * c.L,
    # attention context: B*A times (S x S)(S x d)
    "attn_context_flops": lambda c: 2.0 * c.B * c.S * c.S * c.H * c.L,
    "attn_context_param_bytes": lambda c: 0.0 * c.L,
    "attn_context_act_bytes": lambda c: (c.B * c.A * c.S * c.S + 2.0 * c.T * c.H) * c.b * c.L,
    # attention output projection: T x H times H x H
    "attn_out_flops": lambda c: 2.0 * c.T * c.H * c.H * c.L,
    "attn_out_param_bytes": lambda c: (c.H * c.H + c.H) * c.b * c.L,
    "attn_out_act_bytes": lambda c: 2.0 * c.T * c.H * c.b * c.L,
    # FFN: up projection, GELU (about 8 FLOPs per element), down projection
    "ffn_up_flops": lambda c: 2.0 * c.T * c.H * c.F * c.L,
    "ffn_up_param_bytes": lambda c: (c.H * c.F + c.F) * c.b * c.L,
    "ffn_up_act_bytes": lambda c: (c.T * c.H + c.T * c.F) * c.b * c.L,
    "ffn_act_flops": lambda c: 8.0 * c.T * c.F * c.L,
    "ffn_act_param_bytes": lambda c: 0.0 * c.L,
    "ffn_act_act_bytes": lambda c: 2.0 * c.T * c.F * c.b * c.L,
    "ffn_down_flops": lambda c: 2.0 * c.T * c.F * c.H * c.L,
    "ffn_down_param_bytes": lambda c: (c.F * c.H + c.H) * c.b * c.L,
    "ffn_down_act_bytes": lambda c: (c.T * c.F + c.T * c.H) * c.b * c.L,
    # two layer norms and two residual adds per layer (about 9 FLOPs per element each)
    "layernorm_flops": lambda c: 18.0 * c.T * c.H * c.L,
    "layernorm_param_bytes": lambda c: 4.0 * c.H * c.b * c.L,
    "layernorm_act_bytes": lambda c: 6.0 * c.T * c.H * c.b * c.L,
}


# Totals in closed form (one vectorised expression each, cheaper than summing the
# components; tests check that they equal the sums).
_F["total_flops"] = lambda c: (
    11.0 * c.T * c.H
    + c.L * (8.0 * c.T * c.H * c.H + 4.0 * c.B * c.S * c.S * c.H + 5.0 * c.B * c.A * c.S * c.S
             + 4.0 * c.T * c.H * c.F + 8.0 * c.T * c.F + 18.0 * c.T * c.H)
)
_F["total_param_bytes"] = lambda c: c.b * (
    (30522.0 + 512.0 + 2.0 + 2.0) * c.H + c.L * (4.0 * c.H * c.H + 2.0 * c.H * c.F + 9.0 * c.H + c.F)
)
_F["total_act_bytes"] = lambda c: c.b * (
    5.0 * c.T * c.H + c.L * (18.0 * c.T * c.H + 4.0 * c.B * c.A * c.S * c.S + 4.0 * c.T * c.F)
)
# Groups used by the physical model: terms that scale differently with the shape.
_F["proj_flops"] = lambda c: 8.0 * c.T * c.H * c.H * c.L
_F["ffn_matmul_flops"] = lambda c: 4.0 * c.T * c.H * c.F * c.L
_F["attn_matmul_flops"] = lambda c: 4.0 * c.B * c.S * c.S * c.H * c.L
_F["encoder_param_bytes"] = lambda c: c.b * c.L * (4.0 * c.H * c.H + 2.0 * c.H * c.F + 9.0 * c.H + c.F)

#: Every feature this module can compute, in a fixed order.
FEATURE_NAMES: tuple[str, ...] = tuple(_F)


#: Rows featurised at a time (keeps intermediates in cache).
_CHUNK = 8192


def _get(c: _Ctx, name: str) -> np.ndarray:
    value = c._cache.get(name)
    if value is None:
        value = np.broadcast_to(np.asarray(_F[name](c), dtype=np.float64), c.L.shape)
        c._cache[name] = value
    return value


def input_array(
    archs: Sequence[Architecture] | np.ndarray | Sequence[Sequence[int]], *,
    seq_len: int | Sequence[int] | np.ndarray = 128, batch_size: int | Sequence[int] | np.ndarray = 1,
) -> np.ndarray:
    """Raw inputs as an ``n x 6`` int64 array in :data:`INPUTS` order.

    Args:
        archs: ``n`` :class:`~hwnas.space.Architecture` objects, or an integer
            array of shape ``n x 4`` (layers, hidden, heads, ffn), or ``n x 6``
            with the shape already in the last two columns (then ``seq_len`` and
            ``batch_size`` are ignored).
        seq_len, batch_size: a scalar for every row, or one value per row.

    Raises:
        InvalidArchitecture: an array of another shape, or a non-positive entry.
    """
    if isinstance(archs, np.ndarray) and archs.dtype != object:
        arr = archs
    else:
        items = list(archs)
        if items and isinstance(items[0], Architecture):
            arr = np.array([a.as_tuple() for a in items], dtype=np.int64)
        elif items and isinstance(items[0], Mapping):
            arr = np.array([Architecture.from_dict(a).as_tuple() for a in items], dtype=np.int64)
        else:
            arr = np.asarray(items, dtype=np.int64) if items else np.empty((0, 4), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] not in (4, 6):
        raise InvalidArchitecture(
            f"architectures must be a sequence of Architecture or an integer array of shape n x 4 "
            f"(layers, hidden, heads, ffn); got an array of shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InvalidArchitecture("architecture arrays must hold whole numbers")
    elif arr.dtype.kind not in "iu":
        raise InvalidArchitecture(f"architecture arrays must be integers; got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.shape[1] == 4:
        n = arr.shape[0]
        out = np.empty((n, 6), dtype=np.int64)
        out[:, :4] = arr
        out[:, 4] = np.broadcast_to(np.asarray(seq_len, dtype=np.int64), (n,))
        out[:, 5] = np.broadcast_to(np.asarray(batch_size, dtype=np.int64), (n,))
        arr = out
    if arr.size and arr.min() < 1:
        bad = np.argwhere(arr < 1)[0]
        raise InvalidArchitecture(f"{INPUTS[bad[1]]} must be >= 1; got {arr[bad[0], bad[1]]} in row {bad[0]}")
    return arr


def featurize(
    x: np.ndarray, names: Sequence[str] | None = None, *, bytes_per_element: float = 4, dtype: Any = np.float64,
) -> np.ndarray:
    """Compute named features for every row of ``x``.

    Args:
        x: ``n x 6`` raw inputs in :data:`INPUTS` order (see :func:`input_array`).
        names: which features, in which order (default: all of :data:`FEATURE_NAMES`).
            Only the requested ones (and what they are built from) are computed.
        bytes_per_element: 4 for fp32, 2 for bf16/fp16.
        dtype: dtype of the result.

    Returns:
        An ``n x len(names)`` array; column ``j`` is feature ``names[j]``.

    Raises:
        InvalidConfig: an unknown feature name.
    """
    names = FEATURE_NAMES if names is None else tuple(names)
    unknown = [n for n in names if n not in _F]
    if unknown:
        raise InvalidConfig(f"unknown feature(s) {unknown}; known features: {', '.join(FEATURE_NAMES)}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != len(INPUTS):
        raise InvalidConfig(f"featurize needs an n x {len(INPUTS)} array ({', '.join(INPUTS)}); got shape {x.shape}")
    n = x.shape[0]
    out = np.empty((n, len(names)), dtype=dtype)
    # Chunks small enough that every intermediate vector stays in cache; the
    # chunk is filled column by column in Fortran order, then copied in once.
    for start in range(0, max(n, 1), _CHUNK):
        block = x[start:start + _CHUNK]
        ctx = _Ctx(block, bytes_per_element)
        cols = np.empty((len(names), block.shape[0]), dtype=dtype)
        for j, name in enumerate(names):
            cols[j] = _get(ctx, name)
        out[start:start + block.shape[0]] = cols.T
    return out


def feature_frame(x: np.ndarray, names: Sequence[str] | None = None, *, bytes_per_element: float = 4):
    """:func:`featurize` as a ``pandas.DataFrame`` with the feature names as columns."""
    import pandas as pd

    names = FEATURE_NAMES if names is None else tuple(names)
    return pd.DataFrame(featurize(x, names, bytes_per_element=bytes_per_element), columns=list(names))
