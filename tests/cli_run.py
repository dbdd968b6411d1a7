"""Run the ``hwnas`` command line in-process, as the tests of every command do."""

from __future__ import annotations

import pytest

from hwnas.cli.main import main


def run_cli(args, capsys) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``hwnas ARGS`` (paths and numbers may be given as they are)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err
