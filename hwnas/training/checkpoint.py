"""The one checkpoint format of hwnas training: safetensors + JSON, never pickle.

A checkpoint is a folder ``<root>/step-0000123/`` with

* ``model.safetensors``: the trained module's weights;
* ``optimizer.safetensors``: every tensor of the optimizer state (``state.<param
  index>.<name>``) and the torch RNG state (``rng.torch``);
* ``optimizer.json``: the optimizer's parameter groups and its non-tensor state;
* ``state.json``: ``step`` and whatever the training loop adds (settings that must
  match to resume, elapsed seconds).

Every file goes through :func:`hwnas._files.atomic_write_bytes` into a ``.tmp``
folder, which is renamed into place (and its parent fsynced) before
``<root>/latest.json`` is replaced to point at it; older checkpoints are deleted
afterwards. A kill at any moment leaves ``latest.json`` pointing to a complete
checkpoint. ``checksums.json`` holds the sha256 of every other file; loading checks
it (when present) and refuses non-finite weights or optimizer state. Supernet checkpoints written by earlier releases have this layout
and load unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from hwnas._files import atomic_write_bytes, atomic_write_text, fsync_dir, sha256_file
from hwnas.errors import InvalidConfig
from hwnas.validate import check_finite_tensors

#: sha256 of every other file of a checkpoint, written last before the folder is renamed into place.
CHECKSUMS = "checksums.json"

__all__ = ["save_checkpoint", "load_checkpoint", "verify_checkpoint", "latest_checkpoint", "clear_checkpoints",
           "save_weights"]


def save_weights(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` as one safetensors file, atomically and durably."""
    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write_bytes(path, save(data, metadata=metadata))


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def latest_checkpoint(root: str | Path) -> Path | None:
    """The folder ``<root>/latest.json`` points to, or ``None`` when there is none."""
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


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], *, keep: int = 1) -> Path:
    """Write checkpoint ``step`` under ``root``, point ``latest.json`` to it, and keep the last ``keep``."""
    root = Path(root)
    name = f"step-{step:07d}"
    final, tmp = root / name, root / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    meta = {"format": "pt", "step": str(step)}
    save_weights(tmp / "model.safetensors", model.state_dict(), meta)
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_weights(tmp / "optimizer.safetensors", {**opt_tensors, "rng.torch": torch.get_rng_state()}, meta)
    atomic_write_text(tmp / "optimizer.json", json.dumps(opt_meta, indent=1))
    atomic_write_text(tmp / "state.json", json.dumps({"step": step, **state}, indent=2, default=str))
    sums = {f.name: sha256_file(f) for f in sorted(tmp.iterdir()) if f.is_file()}
    atomic_write_text(tmp / CHECKSUMS, json.dumps(sums, indent=1))
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
    except (SafetensorError, OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise InvalidConfig(f"checkpoint {path} is damaged ({type(exc).__name__}); delete its folder to start "
                            "again from the previous checkpoint, or train into another --out") from None
    check_finite_tensors(weights, where=f"checkpoint {path}/model.safetensors", error=InvalidConfig)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise InvalidConfig(
            f"checkpoint {path} does not match the model being trained (missing {len(missing)}, unexpected "
            f"{len(unexpected)} tensors); was it written with other settings?"
        )
    if optimizer is not None:
        try:
            tensors = load_file(str(path / "optimizer.safetensors"))
            meta = json.loads((path / "optimizer.json").read_text())
        except (SafetensorError, OSError, ValueError) as exc:  # a truncated optimizer state
            raise InvalidConfig(f"checkpoint {path}: the optimizer state is damaged ({type(exc).__name__}); delete "
                                "the checkpoint folder to start again, or train into another --out") from None
        check_finite_tensors(tensors, where=f"checkpoint {path}/optimizer.safetensors", error=InvalidConfig)
        rng = tensors.pop("rng.torch", None)
        try:
            optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InvalidConfig(f"checkpoint {path}: the optimizer state does not fit the model being trained "
                                f"({type(exc).__name__}: {str(exc)[:80]})") from None
        if rng is not None:
            torch.set_rng_state(rng)
    return state


def clear_checkpoints(root: str | Path) -> None:
    """Remove a checkpoints folder (once what it protected is safely saved)."""
    shutil.rmtree(root, ignore_errors=True)
