"""Run one corpus case in this process and judge it (shared by the tests and bench/bench_fuzz.py)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from tests.adversarial.cases import Case
from tests.adversarial.workspace import snapshot


@dataclass
class Outcome:
    case: Case
    code: int | None
    stdout: str
    stderr: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _format(part: str, names: dict[str, str]) -> str:
    return part.format(**names) if "{" in part else part


def run_case(case: Case, ws: dict[str, str], case_dir: Path) -> Outcome:
    """Run ``case`` with the workspace ``ws`` and a fresh ``case_dir``; collect every way it fell short."""
    from hwnas._lock import writer_lock
    from hwnas.cli.main import main
    from hwnas.errors import InvalidConfig

    case_dir.mkdir(parents=True, exist_ok=True)
    names = {**ws, "out": str(case_dir / "out")}
    argv = [_format(p, names) for p in case.argv]
    before = snapshot(ws["workspace"], case_dir)
    runner = CliRunner()
    code: int | None = None
    cwd = os.getcwd()
    with ExitStack() as stack:
        if case.lock is not None:
            lock = Path(_format(case.lock, names))
            lock.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(writer_lock(lock, target=lock.with_suffix(""), error=InvalidConfig))
            before = snapshot(ws["workspace"], case_dir)  # the lock file is the other writer's, not hwnas's doing
        streams = stack.enter_context(runner.isolation())
        os.chdir(case_dir)  # relative defaults (hwnas-runs/...) land in the case's own folder
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # noqa: BLE001 (deliberate: main() must turn everything into an exit code)
            code = None
            problem = f"main() raised {type(exc).__name__}: {exc}"
        else:
            problem = None
        finally:
            os.chdir(cwd)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout = streams[0].getvalue().decode("utf-8", "replace")
        stderr = streams[1].getvalue().decode("utf-8", "replace")
        after = snapshot(ws["workspace"], case_dir)  # while a held lock still exists
    problems = [problem] if code is None and problem else []
    if code != case.code:
        problems.append(f"exit code {code}, expected {case.code}")
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("hwnas: error:")]
    if len(errors) != 1:  # progress and warning lines may come before it
        problems.append(f"{len(errors)} error lines, expected exactly one")
    if "internal error" in stderr or "Traceback" in stderr:
        problems.append("an internal error or traceback")
    if case.fragment is not None and not any(case.fragment in e for e in errors):
        problems.append(f"the error does not say {case.fragment!r}")
    changed = sorted(p for p in before if p in after and before[p] != after[p])
    removed = sorted(p for p in before if p not in after)
    added = sorted(p for p in after if p not in before)
    if changed:
        problems.append(f"changed: {changed[:3]}")
    if removed:
        problems.append(f"removed: {removed[:3]}")
    if added:
        problems.append(f"left behind: {added[:3]}")
    return Outcome(case, code, stdout, stderr, problems)
