"""Bad input for ``hwnas profile --cluster ray``: one line, exit 2, nothing written lost.

Each case runs the real CLI in its own process (a process joins at most one Ray cluster).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from hwnas.devices.timing import TimingConfig
from hwnas.profiling import ProfileConfig, profile

MINI_SPACE = {"name": "mini", "layers": [1, 2], "hidden": [32, 64], "heads": [2, 4], "ffn": [64, 128]}


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(MINI_SPACE))
    return str(path)


def _hwnas(args, *, block_ray=False, env=None):
    prelude = "import sys; sys.modules['ray'] = None; " if block_ray else ""
    code = prelude + "from hwnas.cli.main import main; main()"
    full_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=full_env)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _args(space_file, out):
    return ["profile", "--cluster", "ray", "--space", space_file, "--samples", "2", "--seq-len", "8", "--quick",
            "--out", str(out)]


def test_unreachable_cluster_is_one_line_and_keeps_the_profile(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    profile(ProfileConfig(space=space_file, samples=1, seq_lens=(8,), timing=TimingConfig.quick()), out)
    before = out.read_bytes()
    port = _closed_port()
    result = _hwnas([*_args(space_file, out), "--resume", "--ray-address", f"127.0.0.1:{port}"])
    assert result.returncode == 2
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in _one_error_line(result)
    assert out.read_bytes() == before


def test_cluster_ray_without_an_address_names_the_option(space_file, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run(
        [sys.executable, "-m", "hwnas.cli.main", *_args(space_file, tmp_path / "p.jsonl")],
        capture_output=True, text=True, timeout=120, env={**env, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert result.returncode == 2
    assert "--ray-address" in _one_error_line(result) and "RAY_ADDRESS" in result.stderr


def test_cluster_ray_without_ray_installed_simulated_by_blocking_the_import(space_file, tmp_path):
    # Ray is installed here (the dev extra); setting sys.modules['ray'] = None makes `import ray` fail as if it were not.
    out = tmp_path / "p.jsonl"
    result = _hwnas([*_args(space_file, out), "--ray-address", "127.0.0.1:6379"], block_ray=True)
    assert result.returncode == 2
    assert "pip install 'hwnas[ray]'" in _one_error_line(result)
    assert not out.exists()


def test_ray_options_without_cluster_ray_are_refused(space_file, tmp_path):
    from click.testing import CliRunner

    from hwnas.cli.main import cli

    result = CliRunner().invoke(cli, ["profile", "--space", space_file, "--samples", "1", "--ray-address", "x:1",
                                      "--out", str(tmp_path / "p.jsonl")])
    assert result.exit_code != 0
    assert "--ray-address and --resource need --cluster ray" in str(result.exception)
