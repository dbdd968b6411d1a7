"""The run report: written by `hwnas run`, rebuilt by `hwnas report`, self-contained, honest about gaps."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess

import pytest

from hwnas.report import build_report, detect_kind, write_report
from hwnas.report.build import RUN_STAGES

pytestmark = pytest.mark.slow  # the session fixture runs the quick pipeline once (about a minute)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, "not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_png(path_or_bytes, min_w=400, min_h=250) -> None:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    w, h = png_size(data)
    assert min_w <= w <= 3000 and min_h <= h <= 3000, (w, h)
    assert len(data) > 5_000  # a drawn figure, not an empty canvas


def embedded_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


@pytest.fixture
def cli(capsys):
    """Run ``hwnas ARGS`` in this process (as the console script does); returns (code, stdout, stderr)."""
    from hwnas.cli.main import main

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, exc.value.code, out, err)

    return run


def test_run_writes_report_and_every_stage_plot(finished_run):
    f = finished_run
    for png in ("predictor.parity.png", "predictor.residuals.png", "supernet/training.png", "search/front.png",
                "search/hypervolume.png", "student/training.png"):
        assert_png(f / png)
    page = (f / "report.html").read_text(encoding="utf-8")
    assert detect_kind(f) == "run"
    # self-contained: nothing fetched, no scripts, every image embedded and a valid PNG
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert re.findall(r'<img[^>]*src="(?!data:image/png;base64,)', page) == []
    images = embedded_images(page)
    assert len(images) >= 8  # profile, parity, residuals, bundle, supernet, front, hypervolume, distillation
    for data in images:
        assert_png(data, min_w=300, min_h=200)
    for stage in RUN_STAGES:
        assert f'data-stage="{stage}"' in page, stage
    assert "Missing:" not in page and "incomplete" not in page
    summary = json.loads((f / "summary.json").read_text())
    assert f"Strategy that ran: <b>{summary['config']['strategy']}</b>" in page
    assert "hwnas run --max-latency 10000ms --work-dir" in page and "--quick" in page
    # what the command line cannot set is named, not silently dropped
    assert "profile_samples=6" in page and "teacher=" in page
    # every profile times a reference, so the run's verification carries a drift-normalised verdict
    summary_v = summary["verification"]
    assert summary_v["within_budget_normalised"] is not None
    expected = "WITHIN the budget" if summary_v["within_budget_normalised"] else "OVER the budget"
    assert "Drift-normalised: " in page and expected in page.split("Drift-normalised: ", 1)[1].split("</p>", 1)[0]


def test_report_cli_rebuilds_run_and_each_stage(finished_run, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "report.html").unlink()
    r = cli("report", str(run))
    assert r.returncode == 0, r.stderr
    assert (run / "report.html").is_file() and "wrote" in r.stdout
    for stage, kind in (("profile.jsonl", "profile"), ("predictor.hwnas", "predictor"), ("supernet", "supernet"),
                        ("search", "search"), ("student", "distill")):
        out = tmp_path / f"{kind}.html"
        r = cli("report", str(run / stage), "--out", str(out))
        assert r.returncode == 0, (stage, r.stderr)
        page = out.read_text()
        assert f'data-stage="{kind}"' in page and "https://" not in page
        assert embedded_images(page), stage


def test_partial_run_shows_what_exists_and_exits_2(finished_run, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "student")
    (run / "summary.json").unlink()
    (run / "search" / "config.json").write_text('{"strategy": "bo", "budg')  # half-written
    r = cli("report", str(run))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "missing distill, verify" in r.stderr and "half-written search" in r.stderr
    page = (run / "report.html").read_text()
    assert "This run is incomplete" in page and 'data-stage="profile"' in page
    assert len(embedded_images(page)) >= 4  # the profile, predictor and supernet figures that do exist
    report = build_report(run)
    assert report.missing == ["distill", "verify"] and set(report.broken) == {"search"}


def test_bad_input_is_one_line_exit_2(finished_run, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    for args in (["report", str(empty)], ["report", str(tmp_path / "nope")], ["report", str(empty / "notes.txt")]):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("hwnas: error:"), r.stderr
    # an unwritable output: its parent is a file; an existing report is left as it was
    before = (finished_run / "report.html").read_bytes()
    r = cli("report", str(finished_run), "--out", str(empty / "notes.txt" / "r.html"))
    assert r.returncode == 2 and "cannot write the report" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (finished_run / "report.html").read_bytes() == before
    with pytest.raises(Exception, match="is a folder"):
        write_report(finished_run, out=tmp_path)


def test_run_killed_while_profiling_is_reported_with_what_exists(tmp_path, cli):
    from pathlib import Path

    run = tmp_path / "cpu-5ms"
    run.mkdir()
    shutil.copy(Path(__file__).parents[1] / "predictors" / "data" / "cpu-tiny.jsonl", run / "profile.jsonl")
    r = cli("report", run)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "missing predictor, supernet, search, distill, verify" in r.stderr
    page = (run / "report.html").read_text()
    assert len(embedded_images(page)) == 1 and "Missing:" in page and "records</td><td>30" in page
