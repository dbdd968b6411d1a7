"""A trained supernet on disk, and the students it gives.

A supernet folder holds::

    supernet.json        format, space, teacher, shapes, training record
    model.safetensors    the elastic weights (checksum in supernet.json)
    heldout.safetensors  held-out token ids for the distillation-loss estimator
    tokenizer files      the teacher's tokenizer (written with save_pretrained)
    checkpoints/         resumable training state (not needed to use the supernet)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from hwnas._files import atomic_write_text, sha256_file
from hwnas.errors import InvalidConfig
from hwnas.space import Architecture, SearchSpace

__all__ = ["Supernet", "load_supernet", "EXTRACT_ATOL"]

#: Largest allowed difference between an exported student and its in-supernet forward.
EXTRACT_ATOL = 1e-5


class Supernet:
    """A loaded supernet: the elastic model, its space and its teacher's name.

    Use :func:`load_supernet` to build one from a folder.

    Attributes:
        space: the :class:`~hwnas.space.SearchSpace` the supernet serves.
        teacher: the teacher's name as given at training (``"default"``, a path or a hub name).
        model: the :class:`~hwnas.supernet.elastic.ElasticBert` (eval mode).
        path: the folder it was loaded from.
        meta: the parsed ``supernet.json``.
    """

    def __init__(self, model: Any, space: SearchSpace, meta: dict[str, Any], path: Path) -> None:
        self.model = model.eval()
        self.space = space
        self.meta = meta
        self.path = path
        self.teacher: str = meta["teacher"]
        self._tokenizer = None

    def __repr__(self) -> str:
        return f"Supernet(space={self.space.name!r}, teacher={self.teacher!r}, steps={self.steps_done}, path={str(self.path)!r})"

    @property
    def steps_done(self) -> int:
        return int(self.meta.get("steps_done", 0))

    @property
    def relation_heads(self) -> int:
        return int(self.meta["relation_heads"])

    @property
    def tokenizer(self):
        """The teacher's tokenizer, stored in the supernet folder."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        return self._tokenizer

    @property
    def teacher_location(self) -> str:
        """Where the teacher is loaded from (the packaged path is re-resolved for ``default``)."""
        if self.teacher == "default":
            from hwnas.training.teacher import resolve_teacher

            return str(resolve_teacher("default"))
        return self.meta.get("teacher_location", self.teacher)

    def validate(self, arch: Architecture | str | dict) -> Architecture:
        """``arch`` as an :class:`Architecture`, or :class:`InvalidArchitecture` naming what lies outside the space."""
        return self.space.validate(arch)

    def forward(self, arch: Architecture, input_ids, attention_mask, *, return_qkv: bool = False):
        """The sub-network's forward (no grad); see :meth:`ElasticBert.forward`."""
        import torch

        arch = self.validate(arch)
        with torch.no_grad():
            return self.model(input_ids, attention_mask, arch, return_qkv=return_qkv)

    def extract(self, arch: Architecture | str | dict):
        """A standalone ``transformers.BertModel`` (eval mode) equal to the sub-network."""
        return self.model.extract(self.validate(arch))

    def save_student(self, arch: Architecture | str | dict, out_dir: str | Path, *, verify: bool = True) -> Path:
        """Write the sub-network as a Hugging Face model folder with the teacher's tokenizer.

        Refuses a non-empty ``out_dir``. With ``verify`` the folder is re-loaded
        with ``AutoModel`` and its output compared with the in-supernet forward
        (largest absolute difference must be within :data:`EXTRACT_ATOL`).
        """
        arch = self.validate(arch)
        out = Path(out_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InvalidConfig(f"{out} exists and is not an empty folder; choose a new --out")
        from transformers.utils import logging as hf_logging

        student = self.model.extract(arch)
        out.mkdir(parents=True, exist_ok=True)
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self._write_and_verify(student, arch, out, verify)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        return out

    def _write_and_verify(self, student, arch: Architecture, out: Path, verify: bool) -> None:
        import torch

        student.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        info = {
            "arch": arch.as_dict(), "supernet": str(self.path), "space": self.space.name, "teacher": self.teacher,
            "supernet_steps": self.steps_done, "parameters": sum(p.numel() for p in student.parameters()),
        }
        if verify:
            from transformers import AutoModel

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = AutoModel.from_pretrained(str(out), local_files_only=True).eval()
            batch = self.tokenizer(["a short check that the exported student matches", "two"], padding=True, return_tensors="pt")
            with torch.no_grad():
                ref = self.model(batch["input_ids"], batch["attention_mask"], arch).last_hidden_state
                got = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            real = batch["attention_mask"].bool()
            diff = float((ref - got)[real].abs().max())
            if diff > EXTRACT_ATOL:
                raise RuntimeError(f"exported student differs from the supernet by {diff:.2e} (> {EXTRACT_ATOL:g})")
            info["verified_max_abs_diff"] = diff
        atomic_write_text(out / "hwnas_student.json", json.dumps(info, indent=2) + "\n")


def load_supernet(path: str | Path, *, verify: bool = True) -> Supernet:
    """Load a supernet folder written by ``hwnas supernet train``.

    Args:
        path: the folder (``supernet.json`` + ``model.safetensors`` + tokenizer).
        verify: check the weights' SHA-256 against ``supernet.json``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import BertConfig

    from hwnas.supernet.elastic import ElasticBert
    from hwnas.supernet.train import FORMAT, VERSION

    path = Path(path)
    meta_path = path / "supernet.json"
    if not meta_path.is_file():
        raise InvalidConfig(f"{path} is not a supernet folder (no supernet.json); train one with hwnas supernet train")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"{meta_path} is not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise InvalidConfig(f"{meta_path} is not UTF-8 text") from None
    if not isinstance(meta, dict):
        raise InvalidConfig(f"{meta_path} is not a supernet description (a JSON object)")
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise InvalidConfig(
            f"{meta_path} is not a {FORMAT} file of version <= {VERSION} (format={meta.get('format')!r}, version={meta.get('version')!r})"
        )
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise InvalidConfig(f"{path} has no model.safetensors")
    if verify and meta.get("weights_sha256") and sha256_file(weights) != meta["weights_sha256"]:
        raise InvalidConfig(f"{weights} does not match the checksum in supernet.json (corrupt or replaced)")
    space = SearchSpace.from_dict(meta["space"], where=f"{meta_path} space")
    base = {k: v for k, v in meta["base_config"].items() if k not in ("model_type", "architectures", "transformers_version")}
    config = BertConfig(**base)
    from hwnas.supernet.elastic import MOS_LEGACY

    mix = meta.get("mixture") or {"kind": "none"}
    try:  # a record written before an option existed meant its legacy value
        model = ElasticBert(Architecture.from_dict(meta["max_arch"]), config, mixture=mix.get("kind", "none"),
                            experts=mix.get("experts", 2), router_hidden=mix.get("router_hidden", 128),
                            mix_attention=bool(mix.get("mix_attention", False)),
                            **{k: mix.get(k, v) for k, v in MOS_LEGACY.items()})
    except InvalidConfig as exc:
        raise InvalidConfig(f"{meta_path}: bad mixture record: {exc}") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:  # safetensors' own error on a truncated or damaged file
        raise InvalidConfig(f"{weights} is damaged and cannot be read ({type(exc).__name__})") from None
    from hwnas.validate import check_finite_tensors

    check_finite_tensors(state, where=str(weights), error=InvalidConfig)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InvalidConfig(f"{weights} does not fit supernet.json (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return Supernet(model, space, meta, path)

