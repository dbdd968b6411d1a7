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


def _hwnas(args, *, block_ray=False, env=None):
    prelude = "import sys; sys.modules['ray'] = None; " if block_ray else ""
    code = prelude + "from hwnas.cli.main import main; main()"
    full_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, check=False, text=True, timeout=120, env=full_env)


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
        capture_output=True, check=False, text=True, timeout=120, env={**env, "RAY_USAGE_STATS_ENABLED": "0"},
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


# ------------------------------------------------ search --verify and distill front on a cluster: bad input
PROFILE = os.path.join(os.path.dirname(__file__), "..", "predictors", "data", "cpu-tiny.jsonl")


@pytest.fixture(scope="module")
def predictor_path(tmp_path_factory):
    from hwnas.predictors.bundle import save_bundle
    from hwnas.predictors.training import fit_predictor, load_measurements

    fitted = fit_predictor(load_measurements(PROFILE), tune_hyperparameters=False,
                           params={"n_estimators": 5, "max_depth": 2}, n_folds=3)
    return str(save_bundle(fitted, tmp_path_factory.mktemp("predictor") / "cpu-tiny.hwnas"))


def _search_args(predictor_path, out):
    return ["search", "--predictor", predictor_path, "--estimator", "params", "--max-latency", "50ms", "--evaluations", "4",
            "--strategy", "random", "--verify", "cpu", "--quick", "--cluster", "ray", "--out", str(out)]


def test_search_verify_on_an_unreachable_cluster_fails_before_searching(predictor_path, tmp_path):
    out = tmp_path / "search"
    port = _closed_port()
    result = _hwnas([*_search_args(predictor_path, out), "--ray-address", f"127.0.0.1:{port}"])
    assert result.returncode == 2
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in _one_error_line(result)
    assert not out.exists()  # refused before the search wrote anything


def test_search_cluster_options_without_verify_are_refused(predictor_path, tmp_path):
    from click.testing import CliRunner

    from hwnas.cli.main import cli

    args = [a for a in _search_args(predictor_path, tmp_path / "s") if a not in ("--verify", "cpu", "--quick")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and "add --verify" in str(result.exception)
    assert not (tmp_path / "s").exists()


def _front_dir(tmp_path):
    folder = tmp_path / "search"
    folder.mkdir()
    front = [{"arch": {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64}, "score": 0.5, "latency_ms": 1.0}]
    (folder / "front.json").write_text(json.dumps({"budget_ms": 5.0, "front": front}))
    return folder


# (Ray missing goes through the same connect() as `hwnas profile`, tested above.)
@pytest.mark.parametrize("how", ["unreachable"])
def test_distill_front_bad_cluster_is_one_line_and_writes_nothing(how, tmp_path):
    from hwnas.data import embedded_path

    search = _front_dir(tmp_path)
    port = _closed_port()
    args = ["distill", "front", str(search), "--top-k", "1", "--task", str(embedded_path("sst2/train.tsv")),
            "--ray-address", f"127.0.0.1:{port}"]
    result = _hwnas(args, block_ray=how == "no ray")
    assert result.returncode == 2
    line = _one_error_line(result)
    assert (f"cannot reach a Ray cluster at 127.0.0.1:{port}" if how == "unreachable" else "pip install 'hwnas[ray]'") in line
    assert sorted(p.name for p in search.iterdir()) == ["front.json"]  # no students folder


def test_distill_front_without_a_front_is_one_line(tmp_path, capsys):
    from hwnas.cli.main import main
    from hwnas.data import embedded_path

    with pytest.raises(SystemExit) as info:
        main(["distill", "front", str(tmp_path), "--task", str(embedded_path("sst2/train.tsv")), "--cluster", "local"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "no front.json; give the --out folder of a finished hwnas search" in err
