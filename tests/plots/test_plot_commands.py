"""Every command that draws writes valid PNGs of a sensible size; bad plot paths are one line, exit 2."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli.main import main
from tests.cli_run import run_cli

PROFILE = Path(__file__).parents[1] / "predictors" / "data" / "cpu-tiny.jsonl"


def assert_png(path: Path, min_w: int = 500, min_h: int = 300) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    assert min_w <= w <= 2500 and min_h <= h <= 2500, (path, w, h)
    assert len(data) > 10_000, f"{path} looks empty ({len(data)} bytes)"


@pytest.fixture(scope="module")
def fitted_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "cpu.hwnas"
    with pytest.raises(SystemExit) as exc:
        main(["predictor", "fit", str(PROFILE), "--out", str(out), "--folds", "3"])
    assert exc.value.code == 0
    return out


def test_fit_writes_parity_and_residuals_beside_the_bundle(fitted_bundle):
    assert_png(fitted_bundle.with_name("cpu.parity.png"))
    assert_png(fitted_bundle.with_name("cpu.residuals.png"), min_w=800)


def test_fit_plot_path_and_no_plot(tmp_path, capsys):
    code, out, _ = run_cli(["predictor", "fit", PROFILE, "--out", tmp_path / "a.hwnas", "--folds", "3",
                            "--plot", tmp_path / "figs.png"], capsys)
    assert code == 0 and "plots:" in out
    assert_png(tmp_path / "figs.png")
    assert_png(tmp_path / "figs-residuals.png", min_w=800)
    assert not (tmp_path / "a.parity.png").exists()
    code, out, _ = run_cli(["predictor", "fit", PROFILE, "--out", tmp_path / "b.hwnas", "--folds", "3", "--no-plot"], capsys)
    assert code == 0 and not list(tmp_path.glob("b.*.png"))
    # a bad --plot fails before anything is fitted or written
    code, _, err = run_cli(["predictor", "fit", PROFILE, "--out", tmp_path / "c.hwnas", "--plot", tmp_path / "x.svg"], capsys)
    assert code == 2 and "--plot must be a .png" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.hwnas").exists()


def test_eval_writes_held_out_plots(fitted_bundle, capsys):
    code, out, _ = run_cli(["predictor", "eval", fitted_bundle, PROFILE], capsys)
    assert code == 0 and "plots:" in out
    assert_png(fitted_bundle.with_name("cpu.eval-cpu-tiny.parity.png"))
    assert_png(fitted_bundle.with_name("cpu.eval-cpu-tiny.residuals.png"), min_w=800)


def test_eval_unwritable_plot_is_one_line_exit_2(fitted_bundle, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["predictor", "eval", fitted_bundle, PROFILE, "--plot", blocker / "p.png"], capsys)
    assert code == 2 and "cannot write the plot" in err and len(err.strip().splitlines()) == 1


def test_show_plot_draws_stored_metrics_and_domain(fitted_bundle, tmp_path, capsys):
    code, out, _ = run_cli(["predictor", "show", fitted_bundle, "--plot"], capsys)
    assert code == 0 and "plot:" in out
    assert_png(fitted_bundle.with_suffix(".png"), min_w=900)
    code, out, err = run_cli(["predictor", "show", fitted_bundle, "--json", "--plot", tmp_path / "s.png"], capsys)
    assert code == 0 and json.loads(out)["format"] and "plot:" in err
    assert_png(tmp_path / "s.png", min_w=900)


def test_profile_show_summary_and_plot(tmp_path, capsys):
    code, out, _ = run_cli(["profile", "show", PROFILE], capsys)
    assert code == 0
    assert "records              30" in out and "cpu, 1 thread, fp32 (30)" in out and "seq 128, batch 1 (30)" in out
    assert "noisy records" in out and "reference drift      not recorded" in out
    code, out, _ = run_cli(["profile", "show", PROFILE, "--plot", tmp_path / "p.png"], capsys)
    assert code == 0
    assert_png(tmp_path / "p.png", min_w=900)


def test_profile_show_reports_reference_drift_and_torn_tail(tmp_path, capsys):
    lines = PROFILE.read_text().splitlines()
    rows = [json.loads(x) for x in lines[:10]]
    for i, r in enumerate(rows):
        r["reference_ms"] = 2.0 * (1 + 0.01 * i)  # drifts 0% .. 9%
    f = tmp_path / "ref.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows) + lines[10][:40])  # torn last line
    code, out, _ = run_cli(["profile", "show", f, "--json"], capsys)
    s = json.loads(out)
    assert code == 0 and s["records"] == 10 and s["torn_tail"] is True
    assert s["reference"]["count"] == 10 and s["reference"]["drift"] == pytest.approx(0.18 / 2.09, rel=1e-3)


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing.jsonl", "does not exist"),
    (lambda d: d, "is a folder"),
    (lambda d: (d / "bad.jsonl").write_text('{"a": 1}\n{"b": 2}\n') and d / "bad.jsonl", "record lacks"),
])
def test_profile_show_bad_input_is_one_line_exit_2(tmp_path, capsys, make, needle):
    code, _, err = run_cli(["profile", "show", make(tmp_path)], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_profile_command_is_unchanged_by_the_show_route(capsys):
    code, out, _ = run_cli(["profile", "--help"], capsys)
    assert code == 0 and "--device" in out and "--samples" in out and "Usage: hwnas profile [OPTIONS]" in out
    code, out, _ = run_cli(["profile", "show", "--help"], capsys)
    assert code == 0 and "Usage: hwnas profile show [OPTIONS] FILE" in out and "--plot" in out


def test_staircase_hypervolume_matches_the_union_of_rectangles():
    """Against the area of the union of each point's dominated box, on a compressed grid (exact)."""
    from hwnas.plots.search import hypervolume_staircase

    rng = np.random.default_rng(0)
    for _ in range(5):
        s, lat = rng.uniform(0, 1, 25), rng.uniform(1, 10, 25)
        ref_s, ref_l = float(np.quantile(s, 0.2)), 8.0
        xs = np.unique(np.clip(np.concatenate([lat, [ref_l]]), None, ref_l))
        ys = np.unique(np.clip(np.concatenate([s, [ref_s]]), ref_s, None))
        area = 0.0
        for x0, x1 in zip(xs[:-1], xs[1:], strict=False):
            for y0, y1 in zip(ys[:-1], ys[1:], strict=False):
                # the cell is dominated when some point is at least as fast and at least as accurate
                if np.any((lat <= x0) & (s >= y1)):
                    area += (x1 - x0) * (y1 - y0)
        assert hypervolume_staircase(s, lat, ref_s, ref_l) == pytest.approx(area, rel=1e-9)


def test_style_palette_is_okabe_ito_and_save_is_atomic(tmp_path):
    from hwnas.errors import InvalidConfig
    from hwnas.plots.style import PALETTE, figure, save

    assert {c.upper() for c in PALETTE} == {"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"}
    with figure() as (fig, ax):
        ax.plot([1, 2], [1, 2])
        with pytest.raises(InvalidConfig, match="must end in .png"):
            save(fig, tmp_path / "a.jpg")
        with pytest.raises(InvalidConfig, match="cannot write the plot"):
            save(fig, tmp_path / "no" / "such" / "a.png")
        save(fig, tmp_path / "a.png")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left behind
