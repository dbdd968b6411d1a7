"""What hwnas may write, and where: output folders carry a marker, outputs are never inputs.

Every folder hwnas creates for a result (a supernet, a search, a student, a
run) holds a small ``hwnas.json``::

    {"kind": "search", "hwnas": "0.1.0", "created": "2026-11-29T15:00:00+00:00"}

hwnas writes into (or replaces, or resumes) an existing non-empty folder only
when it carries that marker for the same kind, or, for folders written before
markers existed, the files only hwnas writes there (``supernet.json``,
``distill_config.json``, a search ``config.json`` beside ``evaluated.csv``).
Anything else is refused with one line and left untouched. Output files are
recognised by their own headers (a profile's first record, a bundle's zip
comment), see :mod:`hwnas.profiling.store` and :func:`is_bundle`.

An output may never be one of the inputs: :func:`check_not_input` compares
resolved paths and, for existing files, content hashes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwnas.errors import InvalidConfig

__all__ = ["MARKER", "KINDS", "read_marker", "write_marker", "check_output_folder", "claim_output_folder",
           "remove_if_unfinished", "replace_owned_folder", "writer_guard", "one_writer", "folder_lock", "staged_folder",
           "check_search_out", "check_output_file", "check_not_input", "is_bundle", "same_content"]

MARKER = "hwnas.json"

#: Kind of output folder -> files that identify one written before markers existed.
KINDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "supernet": (("supernet.json",), ("checkpoints",)),
    "search": (("config.json", "evaluated.csv"),),
    "distill": (("distill_config.json",), ("checkpoint/state.json", "checkpoint/state.safetensors")),
    "student": (("hwnas_student.json",),),
    "run": (("summary.json",), ("profile.jsonl",), ("predictor.hwnas",), ("search", "supernet"), ("student",)),
    "profile": (),
    "report": (),
}

#: Files a run writes before any real work; a folder holding only these is "unfinished" and may be removed.
_SETUP_FILES = {MARKER, "distill_config.json", "config.json", "evaluated.csv", ".cache"}

_PATH_MAX = 4096
_NAME_MAX = 255


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    """The marker of ``folder``, or ``None`` when it has none (or an unreadable one)."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def write_marker(folder: str | Path, kind: str) -> Path:
    """Write ``folder/hwnas.json`` for ``kind`` (kept when already there)."""
    from hwnas import __version__
    from hwnas._files import atomic_write_text

    folder = Path(folder)
    path = folder / MARKER
    if read_marker(folder) is None:
        info = {"kind": kind, "hwnas": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write_text(path, json.dumps(info) + "\n")
    return path


def _is_legacy(folder: Path, kind: str) -> bool:
    return any(all((folder / name).exists() for name in group) for group in KINDS.get(kind, ()))


def check_path_shape(path: str | Path, *, option: str) -> Path:
    """Refuse paths that cannot be written: too long, a name too long, a parent that is a file."""
    path = Path(path)
    text = os.fsencode(str(path))
    if b"\0" in text:
        raise InvalidConfig(f"{option} must not contain a NUL character")
    if len(text) >= _PATH_MAX or any(len(os.fsencode(p)) > _NAME_MAX for p in path.parts):
        raise InvalidConfig(f"{option} {str(path)[:60]}... is too long for the file system (at most {_NAME_MAX} "
                            f"bytes per name, {_PATH_MAX} per path)")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidConfig(f"cannot create folder {path.parent} for {option} {path}: {parent} is a file")
            if not os.access(parent, os.W_OK | os.X_OK) and not path.exists():
                raise InvalidConfig(f"{option} {path}: folder {parent} is not writable")
            break
    return path


def check_output_folder(folder: str | Path, *, kind: str, option: str = "--out") -> bool:
    """May hwnas write a ``kind`` result into ``folder``? Returns whether it already holds one.

    Raises:
        InvalidConfig: ``folder`` is a file, cannot be written, or is a non-empty
            folder that hwnas did not write as a ``kind`` (nothing in it is touched).
    """
    folder = check_path_shape(folder, option=option)
    if folder.exists() and not folder.is_dir():
        raise InvalidConfig(f"{option} {folder} is a file; give a folder for the {kind}")
    if not folder.is_dir():
        return False
    try:
        entries = [p.name for p in folder.iterdir()]
    except OSError as exc:
        raise InvalidConfig(f"{option} {folder} cannot be read: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidConfig(f"{option} {folder} is not writable")
    if not [e for e in entries if e not in (MARKER, ".cache")]:
        return False  # new, or only marked (and a cache): nothing to resume or replace
    marker = read_marker(folder)
    if marker is not None:
        if marker["kind"] != kind:
            raise InvalidConfig(f"{option} {folder} holds an hwnas {marker['kind']}, not a {kind}; "
                                "choose another folder")
        return True
    if _is_legacy(folder, kind):
        return True
    raise InvalidConfig(f"{option} {folder} is not empty and was not written by hwnas (no {MARKER}); refusing to "
                        "write into it: choose a new or empty folder")


def claim_output_folder(folder: str | Path, *, kind: str, option: str = "--out") -> bool:
    """:func:`check_output_folder`, then create ``folder`` and mark it. Returns whether it held a result already."""
    folder = Path(folder)
    existed = check_output_folder(folder, kind=kind, option=option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_marker(folder, kind)
    except OSError as exc:
        raise InvalidConfig(f"{option} {folder} cannot be created: {exc.strerror or exc}") from None
    return existed


def _holds_no_work(path: Path) -> bool:
    """Whether ``path`` holds only what a run writes before any work: markers, configs, empty files, locks, caches."""
    if path.is_symlink():
        return False
    if path.is_file():
        if path.name == "evaluated.csv":
            return len(path.read_bytes().splitlines()) <= 1
        return path.name in _SETUP_FILES or path.suffix == ".lock" or path.stat().st_size == 0
    if path.is_dir():
        if path.name == ".cache":
            return True
        return all(_holds_no_work(p) for p in path.iterdir())
    return False


@contextmanager
def remove_if_unfinished(path: str | Path | None) -> Iterator[None]:
    """Remove what the block created at ``path`` when it fails before doing any work.

    "Created" is the outermost folder on the way to ``path`` (or ``path`` itself)
    that did not exist before the block. It is removed only when it holds no work
    (:func:`_holds_no_work`): a failed first attempt (bad data, a broken predictor)
    then leaves nothing that blocks the corrected rerun. Interrupts keep everything
    (the run is resumable), and so does a failure after real work was written
    (checkpoints, evaluations, measurements).
    """
    if path is None:
        yield
        return
    target = Path(path).absolute()
    created = None
    for p in [*reversed(target.parents), target]:
        if not p.exists():
            created = p
            break
    try:
        yield
    except Exception:
        if created is not None and int(os.environ.get("RANK", "0")) == 0:
            try:
                if created.exists() and _holds_no_work(created):
                    shutil.rmtree(created) if created.is_dir() else created.unlink()
            except OSError:
                pass
        raise


def replace_owned_folder(folder: str | Path, *, kind: str, option: str = "--out") -> None:
    """``--overwrite``: remove ``folder`` so a new result replaces it, but only if hwnas wrote it as a ``kind``."""
    folder = Path(folder)
    if check_output_folder(folder, kind=kind, option=option):
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise InvalidConfig(f"{option} {folder} cannot be replaced: {exc.strerror}") from None


def folder_lock(folder: str | Path, *, hint: str = "wait for it to finish, or give another --out"):
    """The one-writer lock of an output folder, ``<folder>.lock`` beside it (:func:`hwnas._lock.writer_lock`).

    ``supernet train``, ``hwnas run``'s supernet stage, ``supernet extract``, ``hwnas distill`` and
    ``hwnas search`` take it (:func:`one_writer`), so two processes never write one folder; the
    second is refused naming the first.
    """
    from hwnas._lock import writer_lock

    folder = Path(folder).absolute()
    return writer_lock(folder.with_name(folder.name + ".lock"), target=folder, error=InvalidConfig, hint=hint)


@contextmanager
def staged_folder(folder: str | Path, *, kind: str, replace: bool = False, option: str = "--out") -> Iterator[Path]:
    """Write a ``kind`` folder all at once: the block fills a hidden sibling, which then takes ``folder``'s place.

    For results written in one step (``supernet extract``): an interrupted or failed
    write leaves ``folder`` as it was (absent, or the old result) and removes the
    sibling. ``folder`` must be new or empty, or, with ``replace`` (``--overwrite``),
    a ``kind`` folder hwnas wrote, which is removed only once the new one is complete.
    The finished folder carries the marker. The folder's lock is held throughout.

    Raises:
        InvalidConfig: ``folder`` holds a result and ``replace`` is false, or is not hwnas's.
    """
    folder = Path(folder)

    def check() -> None:
        if check_output_folder(folder, kind=kind, option=option) and not replace:
            raise InvalidConfig(f"{option} {folder} already holds a {kind}; pass --overwrite to replace it, or "
                                f"choose another {option}")

    check()
    stage = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    with remove_if_unfinished(folder.parent):  # a parent folder made for a write that failed goes again
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidConfig(f"{option} {folder}: cannot create {folder.parent}: {exc.strerror}") from None
        with folder_lock(folder), _removed_after(stage):
            yield stage
            write_marker(stage, kind)
            if folder.exists():
                check()  # again, under the lock: another process may have written it meanwhile
                shutil.rmtree(folder)
            os.replace(stage, folder)


@contextmanager
def _removed_after(path: Path) -> Iterator[None]:
    shutil.rmtree(path, ignore_errors=True)
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def writer_guard(folder: str | Path, *, kind: str, main: bool = True, replace: bool = False,
                 hint: str = "wait for it to finish, or give another --out") -> Iterator[None]:
    """One writer per output folder (a lock beside it, ``<folder>.lock``, naming its holder), and a folder
    created by a run that failed before any work is removed again (:func:`remove_if_unfinished`).

    Only the main process of a data-parallel launch takes the lock (the others write nothing).
    ``replace`` (``--overwrite``) removes a ``kind`` folder hwnas wrote, under the lock.
    """
    folder = Path(folder).absolute()
    with ExitStack() as stack:
        if main:
            stack.enter_context(remove_if_unfinished(folder))  # entered first: also removes new parent folders
            stack.enter_context(one_writer(folder, hint=hint))
            if replace:
                replace_owned_folder(folder, kind=kind)
        yield


@contextmanager
def one_writer(folder: str | Path | None, *, main: bool = True,
               hint: str = "wait for it to finish, or give another --out") -> Iterator[None]:
    """Hold ``folder``'s one-writer lock (:func:`folder_lock`) for the block, creating its parent folder first.

    ``hwnas distill`` and ``hwnas search`` (and ``hwnas run``'s stages that call them) write
    their output folders under it, like ``supernet train``: a second run on the same folder is
    refused with one line naming the first, instead of writing checkpoints beside it. Nothing is
    locked for ``folder=None`` or outside the main process of a data-parallel launch.
    """
    if folder is None or not main:
        yield
        return
    folder = Path(folder).absolute()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidConfig(f"--out {folder}: cannot create {folder.parent}: {exc.strerror}") from None
    with folder_lock(folder, hint=hint):
        yield


def check_search_out(out: str | Path, resume: bool, predictor_path: str | Path) -> dict[str, str]:
    """Check a search's output folder before any prediction, and compare a resumed search's predictor by content.

    Returns the ``config.json`` entries naming the predictor: ``predictor`` (the path
    the search started with when the content is the same) and ``predictor_sha256``.

    Raises:
        InvalidConfig: ``out`` holds a search and ``resume`` is false, or is not hwnas's.
        PredictorMismatch: resuming with a predictor whose content differs from the one the search started with.
    """
    from hwnas._files import sha256_file
    from hwnas.errors import PredictorMismatch

    out = Path(out)
    if check_output_folder(out, kind="search") and not resume and any(p.name != MARKER for p in out.iterdir()):
        raise InvalidConfig(f"--out {out} already exists and is not empty; pass --resume to continue that search, "
                            "--overwrite to replace it, or choose another --out")
    path = Path(predictor_path)
    if not path.is_file():
        return {"predictor": str(predictor_path)}  # the loader says what is wrong
    digest = sha256_file(path)
    recorded = str(predictor_path)
    config = out / "config.json"
    if resume and config.is_file():
        try:
            old = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            raise InvalidConfig(f"cannot resume {out}: its config.json is unreadable") from None
        old_digest = old.get("predictor_sha256") if isinstance(old, dict) else None
        if old_digest is not None:
            if old_digest != digest:
                raise PredictorMismatch(f"cannot resume {out}: --predictor {predictor_path} is not the predictor the "
                                        f"search started with (content sha256 {digest[:12]}, was {str(old_digest)[:12]})")
            recorded = str(old.get("predictor") or recorded)  # the same file, maybe under another path
    return {"predictor": recorded, "predictor_sha256": digest}


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a file with the zip comment every ``.hwnas`` bundle carries."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return zf.comment.startswith(b"hwnas-predictor manifest-sha256=")
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return False


def check_output_file(path: str | Path, *, option: str = "--out", replace: bool = False, flag: str = "--force",
                      owned=None, what: str = "output") -> Path:
    """May hwnas write the file ``path``?

    Args:
        replace: the user asked to replace an existing file.
        owned: ``owned(path) -> bool``: whether an existing file is an hwnas output
            of this kind (only those are ever replaced).

    Raises:
        InvalidConfig: a folder, an unwritable place, an existing file without
            ``replace``, or an existing file hwnas did not write.
    """
    path = check_path_shape(path, option=option)
    if path.is_dir():
        raise InvalidConfig(f"{option} {path} is a folder; give a file path for the {what}")
    if path.exists():
        if not replace:
            raise InvalidConfig(f"{option} {path} already exists; choose another {option} or pass {flag} to replace it")
        if owned is not None and not owned(path):
            raise InvalidConfig(f"{option} {path} exists and is not a {what} written by hwnas; refusing to replace it")
        if not os.access(path, os.W_OK):
            raise InvalidConfig(f"{option} {path} is read-only")
    return path


def same_content(a: Path, b: Path) -> bool:
    from hwnas._files import sha256_file

    try:
        return a.is_file() and b.is_file() and a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)
    except OSError:
        return False


def check_not_input(out: str | Path, inputs: Iterable[tuple[str, str | Path | None]], *, option: str = "--out") -> None:
    """Refuse an output that is one of the inputs (same resolved path, same content, or inside an input folder).

    Args:
        inputs: ``(option name, path)`` pairs; ``None`` paths are skipped.
    """
    out_path = Path(out)
    try:
        out_resolved = out_path.resolve()
    except (OSError, RuntimeError):
        return
    for name, value in inputs:
        if value is None:
            continue
        p = Path(value)
        try:
            resolved = p.resolve()
        except (OSError, RuntimeError):
            continue
        if resolved == out_resolved:
            raise InvalidConfig(f"{option} {out} is the same file as {name} {value}; an output may never replace an input")
        if p.is_file() and out_path.is_dir() and out_resolved in resolved.parents:
            raise InvalidConfig(f"{option} {out} holds {name} {value}; write the output to another folder")
        if out_path.is_file() and same_content(out_path, p):
            raise InvalidConfig(f"{option} {out} has the same content as {name} {value}; "
                                "an output may never replace an input")
