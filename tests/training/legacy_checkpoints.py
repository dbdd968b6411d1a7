"""The checkpoint writers of hwnas before the shared training loop, frozen here verbatim (apart from names) so
that tests can build the folders those releases left behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from hwnas._files import atomic_write_text, fsync_dir


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


def old_supernet_save_checkpoint(root, step, model, optimizer, state, *, keep=1) -> Path:
    """``hwnas.supernet.checkpoint.save_checkpoint`` as of commit 4cb431d."""
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
    return final


def old_distill_save_checkpoint(folder: Path, module, optimizer, step: int, meta: dict[str, Any]) -> None:
    """``hwnas.distill.trainer._save_checkpoint`` as of commit 4cb431d (``folder`` was ``<out>/checkpoint``)."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in module.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for idx, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{idx}.{key}"] = value.detach().cpu().reshape(-1).contiguous() if value.dim() == 0 else value.detach().cpu().contiguous()
                if value.dim() == 0:
                    scalars[f"{idx}.{key}"] = "scalar"
            else:
                scalars[f"{idx}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    state_json = {"step": step, "param_groups": opt["param_groups"], "optimizer_scalars": scalars, **meta}
    (tmp / "state.json").write_text(json.dumps(state_json, indent=1, default=str) + "\n")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def trained_tiny(seed: int = 0, steps: int = 2):
    """A small module and an AdamW optimizer after ``steps`` steps (so the optimizer has state)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.Linear(6, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(3, 4)).pow(2).sum().backward()
        opt.step()
    return model, opt
