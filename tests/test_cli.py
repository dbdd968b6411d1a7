"""The command line: one-line errors, exit codes, and what it prints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwnas.devices import registry
from tests.cli_run import run_cli


def test_help_is_fast_to_import_no_torch():
    code = "import sys; from hwnas.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert "profile" in out.stdout and "devices" in out.stdout


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and "hwnas" in out


def test_devices_lists_builtin_backends(capsys):
    code, out, _ = run_cli(["devices", "--json"], capsys)
    assert code == 0
    infos = {d["name"]: d for d in json.loads(out)}
    assert infos["cpu"]["available"] is True
    assert "onnxruntime" in infos


def test_space_show_and_list(capsys):
    code, out, _ = run_cli(["space", "show", "small"], capsys)
    assert code == 0 and "space small" in out and "layers" in out and "largest" in out
    code, out, _ = run_cli(["space", "show", "tiny", "--json"], capsys)
    assert json.loads(out)["name"] == "tiny"
    code, out, _ = run_cli(["space", "list"], capsys)
    assert code == 0 and all(n in out for n in ("tiny", "small", "base", "full"))


def _one_line_error(code, err, fragment):
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("hwnas: error:")
    assert fragment in lines[0], lines[0]


def test_unknown_device(capsys, tmp_path):
    code, _, err = run_cli(["profile", "--device", "gpu9", "--out", str(tmp_path / "p.jsonl")], capsys)
    _one_line_error(code, err, "unknown device 'gpu9'; known devices: cpu, onnxruntime")
    assert not (tmp_path / "p.jsonl").exists()


def test_unavailable_device_says_why(capsys, tmp_path):
    from tests.devices.test_registry import _NeverHere

    registry.register_device("never-here", _NeverHere)
    try:
        code, _, err = run_cli(["profile", "--device", "never-here", "--space", "tiny", "--samples", "1",
                                "--out", str(tmp_path / "p.jsonl")], capsys)
    finally:
        registry.unregister_device("never-here")
    _one_line_error(code, err, "not available here: the never-here runtime is not installed (pip install never-here)")


def test_unwritable_output(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["profile", "--space", "tiny", "--samples", "1", "--out", str(blocker / "p.jsonl")], capsys)
    _one_line_error(code, err, "cannot create folder")


def test_invalid_space_file(capsys, tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("layers: [1]\nhidden: [50]\nheads: [4]\nffn: [64]\n")
    code, _, err = run_cli(["profile", "--space", str(bad), "--out", str(tmp_path / "p.jsonl")], capsys)
    _one_line_error(code, err, "has no valid architecture")


def test_impossible_architecture_in_file(capsys, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("layers=2,hidden=200,heads=12,ffn=512\n")
    code, _, err = run_cli(["profile", "--archs", str(archs), "--out", str(tmp_path / "p.jsonl")], capsys)
    _one_line_error(code, err, "heads must divide hidden; got hidden=200, heads=12")


def test_architecture_outside_named_space(capsys, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("layers=12,hidden=768,heads=12,ffn=3072\n")
    code, _, err = run_cli(["profile", "--space", "tiny", "--archs", str(archs), "--out", str(tmp_path / "p.jsonl")], capsys)
    _one_line_error(code, err, "layers=12 is outside space 'tiny'")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--seq-len", "0"], "--seq-len values must be >= 1"),
        (["--seq-len", "abc"], "--seq-len must be integers >= 1, comma-separated or repeated"),
        (["--threads", "many"], "--threads must be an integer >= 1 or 'default'"),
        (["--time-budget", "soon"], "--time-budget must be a number with an optional unit"),
        (["--dtype", "fp8"], "dtype 'fp8' is not supported by device 'cpu'"),
        (["--samples", "0"], "samples must be an integer >= 1"),
        (["--plan", "grid"], "Invalid value for '--plan'"),
    ],
)
def test_bad_options(capsys, tmp_path, extra, fragment):
    code, _, err = run_cli(["profile", "--space", "tiny", "--out", str(tmp_path / "p.jsonl"), *extra], capsys)
    _one_line_error(code, err, fragment)


def test_profile_end_to_end_then_refuse_overwrite(capsys, tmp_path):
    out = tmp_path / "p.jsonl"
    archs = tmp_path / "archs.txt"
    archs.write_text("layers=1,hidden=32,heads=2,ffn=64\nlayers=1,hidden=64,heads=2,ffn=64\n")
    code, stdout, err = run_cli(["profile", "--archs", str(archs), "--seq-len", "8,16", "--quick", "--out", str(out)], capsys)
    assert code == 0, err
    assert "profile summary" in stdout and "measured now" in stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    code, _, err = run_cli(["profile", "--archs", str(archs), "--quick", "--out", str(out)], capsys)
    _one_line_error(code, err, "already exists; pass --resume")
    assert out.read_text().splitlines() == lines


def test_debug_shows_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hwnas.cli.main", "--debug", "profile", "--device", "gpu9",
                          "--out", str(tmp_path / "p.jsonl")], capture_output=True, check=False, text=True)
    assert out.returncode != 0 and "Traceback" in out.stderr
