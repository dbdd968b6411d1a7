"""BO never waits on a C++ compile: a stale torch-extensions lock must not hang a search.

BoTorch compiles a fused qLogNEHVI kernel on first use under a lock file; a process
killed mid-compile leaves that lock, and every later compile waits on it forever.
hwnas keeps BoTorch on its PyTorch path unless ``HWNAS_BOTORCH_JIT=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, pathlib
    from torch.utils.cpp_extension import _get_build_directory
    lock = pathlib.Path(_get_build_directory("logei_fused_ext", False)) / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.touch()  # what a compile killed half-way leaves behind
    from tests.search.conftest import synthetic_problem
    from hwnas.search import create_strategy
    from hwnas.search.synthetic import SyntheticEstimator
    problem = synthetic_problem()
    assert problem.objective == "pareto", problem.objective  # the qLogNEHVI path
    strategy = create_strategy("bo", seed=0, initial=4, mc_samples=8).setup(problem)
    est = SyntheticEstimator()
    asked = 0
    while asked < 6:
        archs = strategy.ask(2)
        strategy.tell(archs, est.score(archs))
        asked += len(archs)
    from botorch.acquisition.multi_objective import logei
    print("asked", asked, "fused", logei._C is not None, "lock", lock.exists())
    """
)


def test_bo_search_finishes_beside_a_stale_compile_lock(tmp_path):
    from botorch.acquisition.multi_objective import logei

    if not hasattr(logei, "_try_load_fused_kernel"):
        pytest.skip("this BoTorch has no run-time compiled kernel")
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"))
    env.pop("HWNAS_BOTORCH_JIT", None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True,
                          text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "asked 6 fused False lock True" in proc.stdout


def test_the_compile_can_be_asked_for():
    from botorch.acquisition.multi_objective import logei

    from hwnas.search import bo

    if not hasattr(logei, "_load_attempted"):
        pytest.skip("this BoTorch has no run-time compiled kernel")
    saved = logei._load_attempted
    try:
        logei._load_attempted = False
        os.environ[bo.JIT_ENV] = "1"
        bo._no_runtime_compile()
        assert logei._load_attempted is False  # left to BoTorch
        os.environ.pop(bo.JIT_ENV)
        bo._no_runtime_compile()
        assert logei._load_attempted is True
    finally:
        os.environ.pop(bo.JIT_ENV, None)
        logei._load_attempted = saved
