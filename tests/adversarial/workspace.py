"""The files the adversarial corpus feeds to hwnas: a few valid inputs and many bad ones.

:func:`build_workspace` writes them once into a folder and returns ``{name: path}``;
the corpus (:mod:`tests.adversarial.cases`) refers to them by name. Everything is
tiny: a 20-record profile, a 20-tree predictor, a few lines of task data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "tests" / "predictors" / "data" / "cpu-tiny.jsonl"
TASK = ROOT / "hwnas" / "data" / "sst2" / "train.tsv"
COMMENT_PREFIX = b"hwnas-predictor manifest-sha256="


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rebundle(src: Path, dst: Path, *, manifest: Callable[[dict], Any] | None = None,
             model: Callable[[bytes], bytes] | None = None, recompute: bool = True) -> Path:
    """Copy a bundle, editing its manifest and/or model bytes; with ``recompute``, every checksum is made to
    match again (a careful tamperer), so only semantic checks can catch the edit."""
    with zipfile.ZipFile(src) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
        comment = zf.comment
    m = json.loads(members["manifest.json"])
    if model is not None:
        members["model.ubj"] = model(members["model.ubj"])
        if recompute:
            m["members"]["model.ubj"] = {"sha256": _sha(members["model.ubj"]), "size": len(members["model.ubj"])}
    if manifest is not None:
        manifest(m)
    raw = (json.dumps(m, indent=2) + "\n").encode()
    members["manifest.json"] = raw
    if recompute:
        comment = COMMENT_PREFIX + _sha(raw).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = comment
    dst.write_bytes(buf.getvalue())
    return dst


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        keys = path.split(".")
        node = m
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value
    return edit


def _first_coef(factor: float) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        term = m["physics"]["terms"][0]
        m["physics"]["coef"][term] = factor  # NaN, or a negative cost
    return edit


def _flip_model(data: bytes) -> bytes:
    b = bytearray(data)
    for i in range(len(b) // 3, len(b) // 3 + 64):
        b[i] ^= 0xFF
    return bytes(b)


def fit_tiny_bundle(out: Path) -> Path:
    """A real predictor (20 trees of depth 2) on the committed tiny CPU profile."""
    from hwnas.predictors.bundle import save_bundle
    from hwnas.predictors.training import fit_predictor, load_measurements

    meas = load_measurements(PROFILE)
    pred = fit_predictor(meas, tune_hyperparameters=False, params={"n_estimators": 20, "max_depth": 2}, n_folds=3)
    return save_bundle(pred, out)


def _records() -> list[dict]:
    return [json.loads(line) for line in PROFILE.read_text().splitlines() if line.strip()]


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def build_workspace(root: Path, bundle: Path | None = None) -> dict[str, str]:
    """Write every input of the corpus under ``root``; returns ``{name: path}`` (paths as strings)."""
    root.mkdir(parents=True, exist_ok=True)
    ws: dict[str, Path] = {"workspace": root}

    def text(name: str, content: str | bytes) -> Path:
        p = root / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        ws[name.replace(".", "_").replace("-", "_")] = p
        return p

    # ---- valid inputs
    ws["profile"] = root / "profile.jsonl"
    shutil.copyfile(PROFILE, ws["profile"])
    ws["bundle"] = root / "good.hwnas"
    if bundle is not None:
        shutil.copyfile(bundle, ws["bundle"])
    else:
        fit_tiny_bundle(ws["bundle"])
    lines = TASK.read_text(encoding="utf-8").splitlines()
    ws["task"] = text("task.tsv", "\n".join(lines[:41]) + "\n")
    ws["space"] = text("space.yaml", "name: adv\nlayers: [1, 2]\nhidden: [128]\nheads: [2]\nffn: [256]\n")
    ws["archs"] = text("archs.txt", "layers=1,hidden=128,heads=2,ffn=256\n")
    ws["winner"] = text("winner.json", json.dumps({"arch": {"layers": 1, "hidden": 128, "heads": 2, "ffn": 256},
                                                   "device": "cpu", "seq_len": 128, "batch_size": 1}))

    # ---- generic bad files
    ws["missing"] = root / "does-not-exist.json"
    text("empty.txt", b"")
    text("binary.bin", bytes(range(256)) * 4 + b"\xff\xfe\x00\x9c" * 64)
    text("garbage.txt", "hello world, not what hwnas expects")
    text("prose.txt", "first line\nsecond line\nthird line\n")
    text("nul.txt", b"layers=1\x00hidden=128\n")
    text("utf16.json", json.dumps({"layers": 1, "hidden": 128, "heads": 2, "ffn": 256}).encode("utf-16"))
    text("deep.json", "[" * 100000 + "]" * 100000)
    text("huge.json", '{"layers": 1e400, "hidden": 128, "heads": 2, "ffn": 256}')
    text("bigint.json", '{"layers": ' + "9" * 5000 + ', "hidden": 128, "heads": 2, "ffn": 256}')
    text("list.json", "[1, 2, 3]")
    text("null.json", "null")
    ws["emptydir"] = root / "emptydir"
    ws["emptydir"].mkdir()
    ws["userdir"] = root / "userdir"
    ws["userdir"].mkdir()
    (ws["userdir"] / "config.json").write_text('{"mine": "a user\'s own config"}\n')
    (ws["userdir"] / "notes.txt").write_text("my notes\n")
    text("user.txt", "a user's own file\n")
    ws["file_parent"] = root / "user.txt" / "sub"  # a path under a file

    # ---- bad profiles
    recs = _records()
    text("prof-schema99.jsonl", _jsonl([{**r, "schema": 99} for r in recs]))
    text("prof-badheads.jsonl", _jsonl([{**recs[0], "heads": 3}] + recs[1:]))
    text("prof-neglat.jsonl", _jsonl([{**recs[0], "latency_ms": -1.0}] + recs[1:]))
    text("prof-strlat.jsonl", _jsonl([{**recs[0], "latency_ms": "fast"}] + recs[1:]))
    text("prof-nofield.jsonl", _jsonl([{k: v for k, v in recs[0].items() if k != "hidden"}] + recs[1:]))
    text("prof-notobject.jsonl", "[1, 2, 3]\n[4, 5, 6]\n")
    text("prof-hugeint.jsonl", _jsonl([{**recs[0], "hidden": 10 ** 30}] + recs[1:]))
    text("prof-binary.jsonl", bytes(range(256)) * 8 + b"\n" + bytes(range(200, 256)) * 8 + b"\n")

    # ---- bad bundles (all with recomputed checksums unless said otherwise)
    good = ws["bundle"]
    text("truncated.hwnas", good.read_bytes()[: good.stat().st_size // 2])
    text("notzip.hwnas", "this is not a bundle\n")
    ws["edited_hwnas"] = rebundle(good, root / "edited.hwnas", manifest=_set("space", "other"), recompute=False)
    ws["nan_coef_hwnas"] = rebundle(good, root / "nan-coef.hwnas", manifest=_first_coef(float("nan")))
    ws["neg_coef_hwnas"] = rebundle(good, root / "neg-coef.hwnas", manifest=_first_coef(-1.0))
    ws["big_coef_hwnas"] = rebundle(good, root / "big-coef.hwnas", manifest=_set("physics.intercept", lambda v: (v + 1) * 1e4))
    ws["neg_margin_hwnas"] = rebundle(good, root / "neg-margin.hwnas", manifest=_set("uncertainty.log_margin", -0.5))
    ws["bad_coverage_hwnas"] = rebundle(good, root / "bad-coverage.hwnas", manifest=_set("uncertainty.coverage", 1.5))
    ws["relabel_hwnas"] = rebundle(good, root / "relabel.hwnas", manifest=_set("device.name", "onnxruntime"))
    ws["feature_hwnas"] = rebundle(good, root / "feature.hwnas", manifest=_set("physics.terms", lambda t: t + ["magic"]))
    ws["version_hwnas"] = rebundle(good, root / "version.hwnas", manifest=_set("format_version", 99))
    ws["model_hwnas"] = rebundle(good, root / "model-bytes.hwnas", model=_flip_model)
    ws["model_cut_hwnas"] = rebundle(good, root / "model-cut.hwnas", model=lambda b: b[: len(b) // 2])

    # ---- bad spaces
    text("space-huge.yaml", "name: huge\nlayers: {min: 1, max: 1000000000000}\nhidden: [128]\nheads: [2]\nffn: [256]\n")
    text("space-wide.yaml", "name: wide\nlayers: {min: 1, max: 100}\nhidden: {min: 64, max: 6400, step: 64}\n"
                            "heads: [1, 2, 4, 8]\nffn: {min: 64, max: 64000, step: 64}\n")
    text("space-noheads.yaml", "name: nh\nlayers: [1]\nhidden: [127]\nheads: [2, 4]\nffn: [256]\n")
    text("space-neg.yaml", "name: neg\nlayers: [-1]\nhidden: [128]\nheads: [2]\nffn: [256]\n")
    text("space-float.yaml", "name: fl\nlayers: [1.5]\nhidden: [128]\nheads: [2]\nffn: [256]\n")
    text("space-str.yaml", "name: st\nlayers: [one]\nhidden: [128]\nheads: [2]\nffn: [256]\n")
    text("space-badyaml.yaml", "name: [unclosed\nlayers: {\n")
    text("space-bin.yaml", bytes(range(256)) * 4)
    text("space-missingdim.yaml", "name: md\nlayers: [1]\nhidden: [128]\nheads: [2]\n")
    text("space-bignum.yaml", "name: bn\nlayers: [1]\nhidden: [" + "9" * 40 + "]\nheads: [2]\nffn: [256]\n")

    # ---- bad architecture files
    text("archs-bin.txt", bytes(range(256)) * 4)
    text("archs-heads.txt", "layers=1,hidden=128,heads=3,ffn=256\n")
    text("archs-extra.txt", "layers=1,hidden=128,heads=2,ffn=256,foo=3\n")
    text("archs-huge.txt", "layers=1,hidden=" + "9" * 30 + ",heads=2,ffn=256\n")
    text("archs-comment.txt", "# nothing but a comment\n")
    text("archs-json.json", '[{"layers": 1, "hidden": 128}]')

    # ---- bad tables and loss configs
    text("table-bin.csv", bytes(range(256)) * 4)
    text("table-nolatency.csv", "layers,hidden,heads,ffn,seq_len,batch_size\n1,128,2,256,128,1\n")
    text("table-text.csv", "layers,hidden,heads,ffn,seq_len,batch_size,latency_ms\na,b,c,d,e,f,g\n")
    text("loss-bin.yaml", bytes(range(256)) * 4)
    text("loss-unknown.yaml", "foo: 1\n")
    text("loss-neg.yaml", "logits: -1\n")
    text("loss-str.yaml", "logits: lots\n")

    # ---- damaged supernet folders
    for name, meta in (("sn-badjson", "{not json"), ("sn-list", "[]"), ("sn-format", '{"format": "other", "version": 1}'),
                       ("sn-future", '{"format": "hwnas-supernet", "version": 99}')):
        d = root / name
        d.mkdir()
        (d / "supernet.json").write_text(meta)
        ws[name.replace("-", "_")] = d
    d = root / "sn-binary"
    d.mkdir()
    (d / "supernet.json").write_bytes(bytes(range(256)) * 4)
    ws["sn_binary"] = d

    # ---- outputs hwnas wrote, of one kind (a student, a search): replaced only with --overwrite, by their kind
    for name, kind, files in (("student-dir", "student", {"hwnas_student.json": "{}\n", "config.json": "{}\n"}),
                              ("search-dir", "search", {"config.json": "{}\n", "evaluated.csv": "arch\n"})):
        d = root / name
        d.mkdir()
        (d / "hwnas.json").write_text(json.dumps({"kind": kind, "hwnas": "0.1.0", "created": "2026-11-29"}) + "\n")
        for f, content in files.items():
            (d / f).write_text(content)
        ws[name.replace("-", "_")] = d

    # ---- architectures that cannot fit in memory (issue 11, group 3), valid as architectures
    text("archs-mem.txt", "layers=1,hidden=128,heads=2,ffn=256\nlayers=48,hidden=131072,heads=16,ffn=524288\n")
    text("space-mem.yaml", "name: mem\nlayers: [1, 48]\nhidden: [128, 131072]\nheads: [2]\nffn: [256, 524288]\n")

    # read-only folder (meaningless as root: root may write anywhere)
    ws["rodir"] = root / "rodir"
    ws["rodir"].mkdir()
    os.chmod(ws["rodir"], 0o555)
    return {k: str(v) for k, v in ws.items()}


def snapshot(*roots: str | Path) -> dict[str, tuple[str, int]]:
    """``{path: (sha256, mode)}`` of every file and ``{path: ("dir", mode)}`` of every folder under ``roots``."""
    out: dict[str, tuple[str, int]] = {}
    for root in roots:
        for dirpath, _dirnames, filenames in os.walk(root):
            out[dirpath] = ("dir", os.stat(dirpath).st_mode)
            for f in filenames:
                p = os.path.join(dirpath, f)
                with open(p, "rb") as fh:
                    out[p] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mode)
    return out
