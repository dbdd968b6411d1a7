"""Guards the CLI puts around commands that write folders: one writer, no half-made folder left behind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hwnas.errors import InvalidConfig


@contextmanager
def supernet_guard(folder: str | Path, *, main: bool = True, replace: bool = False) -> Iterator[None]:
    """One ``supernet train`` per folder (a lock beside it, ``<folder>.lock``), and a folder created by a
    run that failed before any work is removed again.

    Only the main process of a data-parallel launch takes the lock (the others write nothing).
    """
    from hwnas._lock import writer_lock
    from hwnas.outputs import remove_if_unfinished

    folder = Path(folder).absolute()
    with ExitStack() as stack:
        if main:
            stack.enter_context(remove_if_unfinished(folder))  # entered first: also removes new parent folders
            try:
                folder.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidConfig(f"--out {folder}: cannot create {folder.parent}: {exc.strerror}") from None
            stack.enter_context(writer_lock(folder.with_name(folder.name + ".lock"), target=folder,
                                            error=InvalidConfig,
                                            hint="wait for that training to finish, or give another --out"))
            if replace:  # --overwrite, under the lock: only a folder hwnas wrote as a supernet
                from hwnas.cli._options import replace_owned_folder

                replace_owned_folder(folder, kind="supernet")
        yield


def search_out(out: str | Path, resume: bool, predictor_path: str | Path) -> dict[str, str]:
    """Check ``search --out`` before any prediction, and compare a resumed search's predictor by content.

    Returns the ``config.json`` entries naming the predictor: ``predictor`` (the path
    the search started with when the content is the same) and ``predictor_sha256``.

    Raises:
        InvalidConfig: ``--out`` holds a search and ``--resume`` was not given, or is not hwnas's.
        PredictorMismatch: resuming with a predictor whose content differs from the one the search started with.
    """
    import json

    from hwnas._files import sha256_file
    from hwnas.errors import PredictorMismatch
    from hwnas.outputs import check_output_folder

    out = Path(out)
    if check_output_folder(out, kind="search") and not resume and any(p.name != "hwnas.json" for p in out.iterdir()):
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
