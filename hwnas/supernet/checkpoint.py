"""Checkpoints in safetensors + JSON, written so that a kill never leaves a broken one.

A checkpoint is a folder ``checkpoints/step-000123/`` with

* ``model.safetensors``: the supernet weights;
* ``optimizer.safetensors``: every tensor of the optimizer state (``state.<param
  index>.<name>``) and the torch RNG state (``rng.torch``);
* ``optimizer.json``: the optimizer's parameter groups and the non-tensor state;
* ``state.json``: step, seed, elapsed seconds and anything the trainer adds.

The folder is written under a ``.tmp`` name, flushed to disk, renamed, and only
then does ``checkpoints/latest.json`` (replaced atomically) point to it; older
checkpoints are deleted afterwards. A kill at any moment leaves ``latest.json``
pointing to a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hwnas._files import atomic_write_text, fsync_dir, sha256_file
from hwnas.errors import InvalidConfig
from hwnas.validate import check_finite_tensors

#: sha256 of every other file of a checkpoint, written last before the folder is renamed into place.
CHECKSUMS = "checksums.json"

__all__ = ["save_checkpoint", "load_checkpoint", "verify_checkpoint", "latest_checkpoint", "atomic_write_text", "fsync_dir"]


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith("state."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def latest_checkpoint(root: str | Path) -> Path | None:
    """The folder ``checkpoints/latest.json`` points to, or ``None``."""
    root = Path(root)
    pointer = root / "latest.json"
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InvalidConfig(f"{pointer} is corrupt; delete the checkpoints folder to start again") from None
    path = root / name
    if not (path / "state.json").is_file():
        raise InvalidConfig(f"{pointer} points to {name}, which is missing or incomplete")
    return path


def save_checkpoint(
    root: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    *,
    keep: int = 1,
) -> Path:
    """Write checkpoint ``step`` under ``root`` and point ``latest.json`` to it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final, tmp = root / name, root / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model_state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(model_state, str(tmp / "model.safetensors"), metadata={"format": "pt", "step": str(step)})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    opt_tensors["rng.torch"] = torch.get_rng_state()
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata={"format": "pt", "step": str(step)})
    (tmp / "optimizer.json").write_text(json.dumps(opt_meta, indent=1))
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
    sums = {f.name: sha256_file(f) for f in sorted(tmp.iterdir()) if f.is_file()}
    (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(root)
    atomic_write_text(root / "latest.json", json.dumps({"checkpoint": name, "step": step}))
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".tmp"))
    for old in done[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("*.tmp"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    return final


def verify_checkpoint(path: str | Path) -> None:
    """Compare every file of a checkpoint with its sha256 in ``checksums.json`` (older checkpoints have none).

    Raises:
        InvalidConfig: a file is missing or differs (flipped bytes, a truncated write, an edit).
    """
    path = Path(path)
    sums_file = path / CHECKSUMS
    if not sums_file.is_file():
        return
    try:
        sums = json.loads(sums_file.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise InvalidConfig(f"checkpoint {path}: {CHECKSUMS} is unreadable; the checkpoint is damaged") from None
    if not isinstance(sums, dict):
        raise InvalidConfig(f"checkpoint {path}: {CHECKSUMS} is not a mapping; the checkpoint is damaged")
    for name, digest in sums.items():
        f = path / str(name)
        if not f.is_file():
            raise InvalidConfig(f"checkpoint {path} lacks {name}; delete its folder to start again")
        if sha256_file(f) != digest:
            raise InvalidConfig(f"checkpoint {path}: {name} does not match its checksum (damaged or edited); "
                                "delete the checkpoint folder to start again, or train into another --out")


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer`` and the torch RNG) from a checkpoint folder; returns ``state.json``."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        state = json.loads((path / "state.json").read_text())
        weights = load_file(str(path / "model.safetensors"))
    except Exception as exc:  # safetensors' own error type, JSON errors, OSError
        raise InvalidConfig(f"checkpoint {path} is damaged ({type(exc).__name__}); delete its folder to start "
                            "again from the previous checkpoint, or train into another --out") from None
    check_finite_tensors(weights, where=f"checkpoint {path}/model.safetensors", error=InvalidConfig)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise InvalidConfig(
            f"checkpoint {path} does not match this supernet (missing {len(missing)}, unexpected {len(unexpected)} tensors); "
            "was it trained with another space or teacher?"
        )
    if optimizer is not None:
        try:
            tensors = load_file(str(path / "optimizer.safetensors"))
            meta = json.loads((path / "optimizer.json").read_text())
        except Exception as exc:  # a truncated optimizer state
            raise InvalidConfig(f"checkpoint {path}: the optimizer state is damaged ({type(exc).__name__}); delete "
                                "the checkpoint folder to start again, or train into another --out") from None
        check_finite_tensors(tensors, where=f"checkpoint {path}/optimizer.safetensors", error=InvalidConfig)
        rng = tensors.pop("rng.torch", None)
        try:
            optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InvalidConfig(f"checkpoint {path}: the optimizer state does not fit this supernet "
                                f"({type(exc).__name__}: {str(exc)[:80]})") from None
        if rng is not None:
            torch.set_rng_state(rng)
    return state
