"""Fuzz targets: every parser of a user's input, with what it may do on any input.

Each target takes one generated input and either returns normally or raises an
``HwnasError`` whose message is one line; anything else (a ``KeyError``, a
``UnicodeDecodeError``, an ``OverflowError``, a hang) is a bug. The Hypothesis
strategies that feed them are in :data:`TARGETS`; ``tests/adversarial/test_fuzz.py``
runs them under pytest and ``bench/bench_fuzz.py`` counts cases, failures and time.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from hypothesis import strategies as st

from hwnas.errors import HwnasError

_TMP = Path(tempfile.mkdtemp(prefix="hwnas-fuzz-"))


def _one_line(exc: HwnasError) -> None:
    text = str(exc)
    if "\n" in text.strip() or not text.strip():
        raise AssertionError(f"{type(exc).__name__} message is not one line: {text!r}")


def _expect(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except HwnasError as exc:
        _one_line(exc)
        return None


def _file(name: str, data: bytes) -> Path:
    path = _TMP / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ strategies
_dims = st.sampled_from(["layers", "hidden", "heads", "ffn", "seq_len", "foo", "L", "h", "num_heads", "", " layers"])
_ints = st.one_of(st.integers(-5, 5000), st.integers(-(10 ** 40), 10 ** 40),
                  st.sampled_from([0, 1, 2, 128, 256, 2 ** 20, 2 ** 20 + 1, 2 ** 63]))
_values = st.one_of(_ints.map(str), st.text(max_size=8), st.sampled_from(["1.5", "nan", "inf", "1e400", "+3", "-0", "٣"]))
arch_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.tuples(_dims, _values), max_size=6).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv)),
    st.tuples(_ints, _ints, _ints, _ints).map(lambda t: f"L{t[0]}-H{t[1]}-A{t[2]}-I{t[3]}"),
)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), _ints, st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
_space_dim = st.one_of(
    st.lists(_ints, max_size=5),
    st.fixed_dictionaries({"min": _ints, "max": _ints}, optional={"step": _ints, "extra": _ints}),
    _ints, json_value,
)
space_dict = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(["f", "bad name!", ""]), "layers": _space_dim, "hidden": _space_dim,
                           "heads": _space_dim, "ffn": _space_dim}),
    json_value,
)
raw_bytes = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda s: s.encode("utf-8")))


def _record_strategy() -> st.SearchStrategy:
    base = {"schema": 1, "layers": 1, "hidden": 128, "heads": 2, "ffn": 256, "batch_size": 1, "seq_len": 128,
            "device": "cpu", "dtype": "fp32", "threads": 1, "latency_ms": 2.5}
    keys = st.sampled_from(sorted(base))
    return st.lists(st.tuples(keys, json_value), max_size=3).map(
        lambda edits: {**base, **dict(edits)})


profile_lines = st.lists(st.one_of(_record_strategy().map(lambda r: json.dumps(r)), st.text(max_size=40)),
                         min_size=1, max_size=6).map(lambda lines: "\n".join(lines))
table_text = st.lists(st.lists(st.one_of(_ints.map(str), st.text(alphabet="abc,.-e9 \"", max_size=6)), min_size=1,
                               max_size=8), min_size=1, max_size=5).map(
    lambda rows: "layers,hidden,heads,ffn,seq_len,batch_size,latency_ms\n" + "\n".join(",".join(r) for r in rows))
manifest_edit = st.lists(st.tuples(st.sampled_from(
    ["physics.intercept", "physics.terms", "physics.coef", "uncertainty.log_margin", "uncertainty.coverage",
     "device.name", "device.threads", "features.tree_features", "inputs", "domain.latency_ms", "domain.ranges",
     "format_version", "corrections", "members", "space"]), json_value), min_size=1, max_size=3)
loss_text = st.one_of(st.text(max_size=40),
                      st.lists(st.tuples(st.sampled_from(["logits", "hidden", "attention", "task", "x", ""]), _values),
                               max_size=4).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv)))
winner = st.one_of(json_value, st.fixed_dictionaries({"arch": json_value},
                                                     optional={"device": json_value, "seq_len": json_value,
                                                               "batch_size": json_value}))
duration_text = st.one_of(st.text(max_size=12), st.tuples(_values, st.sampled_from(["", "s", "m", "h", "ms", "us", "x"]))
                          .map(lambda t: t[0] + t[1]))

#: What a list option receives: the text of each use of the option (``--x a,b --x c`` -> ``("a,b", "c")``).
list_uses = st.lists(st.one_of(duration_text, st.text(alphabet=" ,0123456789-+x٣", max_size=12)), max_size=4).map(tuple)


# ------------------------------------------------------------------ targets
def fuzz_arch_text(text: str) -> None:
    from hwnas.space import MAX_DIMENSION, Architecture

    arch = _expect(lambda: Architecture.parse(text))
    if arch is not None:
        assert all(1 <= v <= MAX_DIMENSION for v in arch.as_tuple()) and arch.hidden % arch.heads == 0


def fuzz_space_dict(data: Any) -> None:
    from hwnas.space import MAX_SPACE_CANDIDATES, SearchSpace

    space = _expect(lambda: SearchSpace.from_dict(data))
    if space is not None:
        assert 1 <= len(space) <= MAX_SPACE_CANDIDATES


def fuzz_space_file(data: bytes) -> None:
    from hwnas.space import SearchSpace

    for suffix in (".yaml", ".json"):
        _expect(lambda suffix=suffix: SearchSpace.from_file(_file(f"space{suffix}", data)))


def fuzz_arch_file(data: bytes) -> None:
    from hwnas.space import load_architectures

    for suffix in (".txt", ".json", ".jsonl"):
        _expect(lambda suffix=suffix: load_architectures(_file(f"archs{suffix}", data)))


def fuzz_profile(text: str) -> None:
    import warnings

    from hwnas.predictors.training import load_measurements
    from hwnas.profiling.store import ProfileStore, check_is_profile, read_records

    path = _file("profile.jsonl", text.encode("utf-8"))
    before = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _expect(lambda: list(read_records(path)))
        _expect(lambda: load_measurements(path))
        _expect(lambda: check_is_profile(path))
        _expect(lambda: ProfileStore(path).records())
    assert path.read_bytes() == before, "reading a profile changed it"


def fuzz_profile_bytes(data: bytes) -> None:
    from hwnas.profiling.store import check_is_profile, read_records

    path = _file("bytes.jsonl", data)
    _expect(lambda: list(read_records(path)))
    _expect(lambda: check_is_profile(path))
    assert path.read_bytes() == data


def fuzz_table(text: str) -> None:
    from hwnas.predictors.training import load_measurements

    _expect(lambda: load_measurements(_file("table.csv", text.encode("utf-8")), device="cpu"))


def fuzz_manifest(bundle: Path, edits: list[tuple[str, Any]]) -> None:
    from hwnas.predictors.bundle import load_bundle

    from tests.adversarial.workspace import rebundle

    def edit(m: dict) -> None:
        for key, value in edits:
            node = m
            parts = key.split(".")
            for k in parts[:-1]:
                node = node.setdefault(k, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node[parts[-1]] = value

    path = rebundle(bundle, _TMP / "fuzz.hwnas", manifest=edit)
    pred = _expect(lambda: load_bundle(path))
    if pred is not None:  # a bundle that loads must predict finite, positive latencies with an upper bound above them
        import numpy as np

        from hwnas.space import Architecture

        arch = Architecture(1, 128, 2, 256)
        lat = _expect(lambda: pred.predict([arch]))
        up = _expect(lambda: pred.predict_upper([arch]))
        if lat is not None and up is not None:
            assert np.all(np.isfinite(lat)) and np.all(lat > 0) and np.all(up >= lat)


def fuzz_loss_config(text: str) -> None:
    from hwnas.distill.losses import LossConfig

    _expect(lambda: LossConfig.parse(text))


def fuzz_loss_file(data: Any) -> None:
    from hwnas.distill.losses import LossConfig

    _expect(lambda: LossConfig.from_file(_file("loss.json", json.dumps(data, allow_nan=True).encode())))


def fuzz_winner(data: Any) -> None:
    from hwnas.distill.api import resolve_arch

    _expect(lambda: resolve_arch(str(_file("winner.json", json.dumps(data, allow_nan=True).encode()))))


def fuzz_durations(text: str) -> None:
    from hwnas.cli._common import parse_duration_s, parse_int_list, parse_latency_ms

    for fn in (lambda: parse_duration_s(text, what="--max-time"), lambda: parse_latency_ms(text, what="--max-latency"),
               lambda: parse_int_list(text, what="--seq-len")):
        _expect(fn)


def fuzz_lists(uses: tuple[str, ...]) -> None:
    """Every list option parses its uses the same way: one use per item or comma-joined, the same result."""
    from hwnas.cli._options import parse_int_list, parse_name_list

    ints = _expect(lambda: parse_int_list(uses, "--seq-len"))
    if ints is not None:
        if not (ints and all(isinstance(v, int) and v >= 1 for v in ints) and len(set(ints)) == len(ints)):
            raise AssertionError(f"parse_int_list({uses!r}) gave {ints!r}")
        if parse_int_list(",".join(uses), "--seq-len") != ints:
            raise AssertionError(f"repeated and comma-joined uses of {uses!r} parse differently")
    names = _expect(lambda: parse_name_list(uses, "--features"))
    if names is not None and (not names or any(not n or n != n.strip() or "," in n for n in names)):
        raise AssertionError(f"parse_name_list({uses!r}) gave {names!r}")


#: name -> (target, strategy); ``manifest`` also needs the path of a good bundle.
TARGETS: dict[str, tuple[Callable, st.SearchStrategy]] = {
    "architecture strings": (fuzz_arch_text, arch_text),
    "space dicts": (fuzz_space_dict, space_dict),
    "space files": (fuzz_space_file, raw_bytes),
    "architecture files": (fuzz_arch_file, raw_bytes),
    "profiles": (fuzz_profile, profile_lines),
    "profile bytes": (fuzz_profile_bytes, raw_bytes),
    "tables": (fuzz_table, table_text),
    "bundle manifests": (fuzz_manifest, manifest_edit),
    "loss configs": (fuzz_loss_config, loss_text),
    "loss config files": (fuzz_loss_file, json_value),
    "winner files": (fuzz_winner, winner),
    "durations and lists": (fuzz_durations, duration_text),
    "list options": (fuzz_lists, list_uses),
}
