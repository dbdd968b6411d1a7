"""Building the report: read each stage's outputs, draw, and lay out one HTML page."""

from __future__ import annotations

import base64
import html
import json
import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwnas._files import atomic_write_text
from hwnas.errors import BundleError, InvalidConfig, InvalidData, ProfileStoreError

__all__ = ["Report", "build_report", "detect_kind", "write_report", "RUN_STAGES"]

#: Stages of a run, in order, and the output each one leaves in the run folder.
RUN_STAGES = {
    "profile": "profile.jsonl", "predictor": "predictor.hwnas", "supernet": "supernet/", "search": "search/",
    "distill": "student/", "verify": "summary.json",
}

REPORT_FILE = "report.html"


@dataclass
class Section:
    """One stage on the page: its title, what it holds, and what went wrong reading it."""

    key: str
    title: str
    body: list[str] = field(default_factory=list)
    missing: str | None = None
    broken: str | None = None

    @classmethod
    def of(cls, key: str, title: str, path: Path) -> Section:
        """An empty section, marked missing when its stage's output ``path`` does not exist."""
        slash = "/" if key in ("supernet", "search", "distill") else ""
        return cls(key, title, missing=None if path.exists() else f"{path.name}{slash} not found")


@dataclass
class Report:
    """A built report.

    Attributes:
        kind: ``run``, ``profile``, ``predictor``, ``supernet``, ``search`` or ``distill``.
        html: the page.
        missing: stages with no output (a partial run).
        broken: ``stage -> reason`` for outputs that exist but cannot be read (half-written).
        figures: number of images embedded.
    """

    kind: str
    source: str
    html: str
    missing: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)
    figures: int = 0
    path: Path | None = None

    @property
    def complete(self) -> bool:
        return not self.missing and not self.broken


# ------------------------------------------------------------------ detection
def detect_kind(path: str | Path) -> str:
    """What ``path`` is (see the module docstring).

    Raises:
        InvalidData: it does not exist, or is none of the accepted kinds.
    """
    p = Path(path)
    if not p.exists():
        raise InvalidData(f"{p} does not exist; give a run folder (hwnas-runs/NAME) or one stage's output")
    if p.is_file():
        if p.suffix.lower() == ".jsonl":
            return "profile"
        if p.suffix.lower() == ".hwnas":
            return "predictor"
        raise InvalidData(f"{p} is not a run folder or a stage output; accepted: a run folder, a profile (.jsonl), "
                          "a predictor (.hwnas), or a supernet, search or student folder")
    # profile.jsonl and predictor.hwnas name a run folder on their own (a run killed while profiling
    # is still a run); supernet/, search/ and student/ are common names, so two of them are needed.
    if any((p / f).exists() for f in ("summary.json", "profile.jsonl", "predictor.hwnas")) or \
            sum((p / d).is_dir() for d in ("supernet", "search", "student")) >= 2:
        return "run"
    if (p / "supernet.json").exists() or (p / "train_log.jsonl").exists():
        return "supernet"
    if (p / "evaluated.csv").exists() or (p / "winner.json").exists() or (p / "front.json").exists():
        return "search"
    if (p / "report.json").exists() or (p / "distill_config.json").exists():
        return "distill"
    raise InvalidData(f"{p} is not a run folder (no summary.json, profile.jsonl, predictor.hwnas, supernet/, search/ "
                      "or student/) nor a supernet, search or student folder")


# ------------------------------------------------------------------ HTML helpers
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{b64}"><figcaption>{_e(alt)}</figcaption></figure>'


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str] | None = None) -> str:
    out = ['<table>']
    if head:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _code(lines: list[str]) -> str:
    return "<pre><code>" + _e("\n".join(lines)) + "</code></pre>"


def _p(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def _note(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{_e(text)}</p>'


def _ms(v: Any) -> str:
    if not (isinstance(v, (int, float)) and math.isfinite(v)):
        return "not recorded"
    return f"{v:,.0f} ms" if v >= 1000 else f"{v:.3g} ms"


def _pct(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, (int, float)) and math.isfinite(v) else "not recorded"


def _mb(path: Path) -> str:
    try:
        return f"{path.stat().st_size / 1e6:.1f} MB"
    except OSError:
        return "not written"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "not recorded"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidData(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise InvalidData(f"{what} {path} is half-written or corrupt ({type(exc).__name__})") from None


class _Figures:
    """Collects figures; a figure that cannot be drawn becomes a note, not a failed report."""

    def __init__(self) -> None:
        self.count = 0

    def draw(self, fn: Callable[[], bytes], alt: str) -> str:
        try:
            data = fn()
        except (InvalidData, InvalidConfig, ValueError, KeyError, OSError) as exc:
            return _note(f"figure not drawn ({alt}): {exc}", "warn")
        self.count += 1
        return _img(data, alt)

    def file(self, path: Path, alt: str) -> str:
        try:
            data = path.read_bytes()
        except OSError:
            return _note(f"{path.name} not found: {alt} was not drawn by the stage", "warn")
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _note(f"{path} is not a PNG (half-written?)", "warn")
        self.count += 1
        return _img(data, alt)


# ------------------------------------------------------------------ stage sections
def _profile_section(path: Path, figs: _Figures) -> Section:
    from hwnas.plots.profile import profile_figure
    from hwnas.profiling.summary import load_profile_records, summarize_profile

    sec = Section.of("profile", "Profile: measured latencies", path)
    if sec.missing:
        return sec
    try:
        summary = summarize_profile(path)
        records, _ = load_profile_records(path)
    except (ProfileStoreError, InvalidData, KeyError, TypeError, ValueError) as exc:
        sec.broken = str(exc) if not isinstance(exc, KeyError) else f"a record lacks the field {exc}"
        return sec
    sec.body.append(_table(summary.rows()))
    sec.body.append(figs.draw(lambda: profile_figure(records, title_path=path.name),
                              "latency against FLOPs and parameters, coloured by layers, noisy records hollow"))
    return sec


def _predictor_section(path: Path, figs: _Figures) -> Section:
    from hwnas.plots.predictor import bundle_figure, manifest_where

    sec = Section.of("predictor", "Latency predictor", path)
    if sec.missing:
        return sec
    try:
        from hwnas.predictors.bundle import load_bundle

        m = load_bundle(path).manifest
    except (BundleError, InvalidData, OSError, ValueError) as exc:  # truncated, tampered or half-written
        sec.broken = str(exc)
        return sec
    cv = (m.get("metrics") or {}).get("cv") or {}
    unc = m.get("uncertainty") or {}
    dom = m.get("domain") or {}
    sec.body.append(_table([
        ("bundle", str(path)),
        ("kind", m.get("kind")),
        ("device", manifest_where(m)),
        ("space", m.get("space")),
        ("measurements", dom.get("n_samples")),
        ("domain", ", ".join(f"{k} {v[0]:g}..{v[1]:g}" for k, v in (dom.get("ranges") or {}).items())),
        ("cross-validated", f"within ±5% {_pct(cv.get('within_5'))}, within ±10% {_pct(cv.get('within_10'))}, "
                            f"MAPE {_pct(cv.get('mape'))}, Kendall tau {cv.get('kendall_tau', float('nan')):.3f}"),
        ("upper bound", f"nominal {unc.get('coverage', float('nan')):.0%} coverage, guaranteed about "
                        f"{unc.get('guaranteed_coverage', 1 - 2 * (1 - unc.get('coverage', float('nan')))):.0%}: prediction x{math.exp(unc.get('log_margin', 0)):.3f} "
                        f"({unc.get('method', '')})"),
    ]))
    parity = path.with_name(path.stem + ".parity.png")
    residuals = path.with_name(path.stem + ".residuals.png")
    if parity.exists():
        sec.body.append(figs.file(parity, "parity: predicted against measured, out-of-fold points (written at fit time)"))
        sec.body.append(figs.file(residuals, "residuals: relative error against latency and each input, out-of-fold"))
    else:
        sec.body.append(_note(f"no parity plot beside the bundle ({parity.name}); `hwnas predictor fit` writes one"))
    sec.body.append(figs.draw(lambda: bundle_figure(m), "the bundle's stored metrics, training domain and latency range"))
    return sec


def _supernet_section(folder: Path, figs: _Figures) -> Section:
    from hwnas.plots.training import read_supernet_log, supernet_figure

    sec = Section.of("supernet", "Supernet: accuracy estimator", folder)
    if sec.missing:
        return sec
    try:
        meta = _read_json(folder / "supernet.json", "supernet metadata")
    except InvalidData as exc:
        sec.broken = str(exc)
        return sec
    cfg = meta.get("train") or meta.get("config") or {}
    space = meta.get("space")
    space = space.get("name") if isinstance(space, dict) else space
    rows = [("folder", str(folder)), ("space", space), ("steps done", f"{meta.get('steps_done')} of {meta.get('steps_target', '?')}"),
            ("teacher", meta.get("teacher")),
            ("training time", f"{meta['train_wall_s']:.0f} s" if isinstance(meta.get("train_wall_s"), (int, float)) else "not recorded")]
    rows += [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in cfg.items()
             if k in ("steps", "batch_size", "seq_len", "lr", "random_subnets", "max_rows", "heldout", "seed")]
    sec.body.append(_table(rows))
    try:
        steps = read_supernet_log(folder)
    except InvalidData as exc:
        sec.body.append(_note(str(exc), "warn"))
        return sec
    sec.body.append(figs.draw(lambda: supernet_figure(steps, meta),
                              "distillation loss of the largest, smallest and sampled students per training step"))
    return sec


def _search_section(folder: Path, figs: _Figures) -> Section:
    from hwnas.plots.search import hypervolume_figure

    sec = Section.of("search", "Search: accuracy against latency", folder)
    if sec.missing:
        return sec
    try:
        cfg = _read_json(folder / "config.json", "search settings")
    except InvalidData as exc:
        sec.broken = str(exc)
        return sec
    strategy = cfg.get("strategy", "?")
    sec.body.append(f'<p class="big">Strategy that ran: <b>{_e(strategy)}</b>'
                    f'{_e(" (" + json.dumps(cfg["strategy_options"]) + ")") if cfg.get("strategy_options") else ""}</p>')
    sec.body.append(_table([
        ("budget", _ms(cfg.get("budget_ms"))), ("space", cfg.get("space")),
        ("shape", f"seq {cfg.get('seq_len')}, batch {cfg.get('batch_size')}"),
        ("evaluations", f"{cfg.get('evaluations')} requested, {cfg.get('evaluations_done', 'not recorded')} done"
                        + (f" (stopped: {cfg['stopped']}"
                           + (": every feasible architecture was evaluated" if cfg.get("stopped") == "exhausted" else "") + ")"
                           if cfg.get("stopped") else "")),
        ("candidates", f"{cfg.get('feasible', '?')} of {cfg.get('architectures', '?')} architectures within the budget "
                       "(on the predictor's upper bound)"),
        ("took", f"{cfg['wall_s']:.0f} s" if isinstance(cfg.get("wall_s"), (int, float)) else "not recorded"),
        ("objective", cfg.get("objective")),
        ("accuracy estimator", cfg.get("estimator")), ("predictor", cfg.get("predictor")), ("status", cfg.get("status")),
        ("seed", cfg.get("seed")),
    ]))
    try:
        w = _read_json(folder / "winner.json", "search winner")
        sec.body.append("<h3>Winner</h3>" + _table([
            ("architecture", ", ".join(f"{k}={v}" for k, v in (w.get("arch") or {}).items())),
            ("accuracy estimate", f"{w.get('score'):.4g} ({w.get('estimator')})" if isinstance(w.get("score"), float) else w.get("score")),
            ("predicted latency", f"{_ms(w.get('latency_ms'))} (upper bound {_ms(w.get('latency_upper_ms'))}, budget {_ms(w.get('budget_ms'))})"),
            ("parameters", f"{w['params']:,}" if isinstance(w.get("params"), int) else w.get("params")),
        ]))
    except InvalidData as exc:
        sec.broken = str(exc)
    sec.body.append(figs.file(folder / "front.png", "accuracy estimate against predicted latency: evaluated points, "
                                                    "the Pareto front, the budget and the winner"))
    try:
        import pandas as pd

        frame = pd.read_csv(folder / "evaluated.csv")
        if len(frame):
            sec.body.append(figs.draw(lambda: hypervolume_figure(frame, cfg), "hypervolume and best feasible score against evaluations"))
        else:
            sec.body.append(_note("evaluated.csv holds no evaluation yet", "warn"))
    except FileNotFoundError:
        sec.broken = sec.broken or f"{folder / 'evaluated.csv'} is missing"
    except (ValueError, KeyError) as exc:  # pandas.errors.ParserError is a ValueError
        sec.broken = sec.broken or f"{folder / 'evaluated.csv'} is half-written or corrupt ({type(exc).__name__})"
    return sec


def _distill_section(folder: Path, figs: _Figures, budget_ms: float | None = None) -> Section:
    from hwnas.plots.training import distill_figure

    sec = Section.of("distill", "Distillation: teacher against student", folder)
    if sec.missing:
        return sec
    try:
        r = _read_json(folder / "report.json", "distillation report")
    except InvalidData as exc:
        cfg_file = folder / "distill_config.json"
        sec.broken = str(exc) + (" (training started but did not finish)" if cfg_file.exists() else "")
        return sec
    metric = r.get("metric", "accuracy")
    m = r.get("measured_latency") or {}
    t = r.get("teacher") or {}
    s_lat = (m.get("student") or {}).get("latency_ms")
    t_lat = (m.get("teacher") or {}).get("latency_ms")
    size_st = _mb(folder / "model.safetensors")
    size_onnx = _mb(folder / "model.onnx")

    def score(v: Any) -> str:
        return (f"{v:.1%}" if metric == "accuracy" else f"{v:.4f}") if isinstance(v, (int, float)) else "not recorded"

    sec.body.append(_table([
        [metric, score(r.get("teacher_score")), score(r.get("student_score")),
         f"{r['retained']:.1%} retained" if isinstance(r.get("retained"), (int, float)) else ""],
        ["measured latency" + (f" ({m.get('device')}, {m.get('threads')} thread(s), seq {m.get('seq_len')}, batch {m.get('batch_size')})" if m else ""),
         _ms(t_lat), _ms(s_lat), f"{m['speedup']:.2f}x faster" if isinstance(m.get("speedup"), (int, float)) else ""],
        ["parameters", f"{t['parameters']:,}" if isinstance(t.get("parameters"), int) else "not recorded",
         f"{r['parameters']:,}" if isinstance(r.get("parameters"), int) else "not recorded",
         f"{t['parameters'] / r['parameters']:.1f}x smaller" if isinstance(t.get("parameters"), int) and r.get("parameters") else ""],
        ["architecture", t.get("arch", "?"), r.get("arch_key", "?"), ""],
        ["size on disk", "", f"{size_st} (safetensors), {size_onnx} (ONNX)", ""],
    ], ["", "teacher", "student", ""]))
    ev = r.get("eval") or {}
    pred = r.get("predicted_latency") or {}
    losses = r.get("losses") or {}
    sec.body.append(_table([
        ("training data", f"{(r.get('task') or {}).get('source', '?')} ({(r.get('task') or {}).get('examples', '?')} examples)"),
        ("evaluation data", f"{ev.get('source', '?')} ({ev.get('examples', '?')} examples)"
                            + (f"; {ev['note']}" if ev.get("note") and ev.get("note") != ev.get("source") else "")),
        ("initialised from", r.get("init")),
        ("losses", ", ".join(f"{k}={v}" for k, v in (losses.get("weights") or {}).items()) or json.dumps(losses)),
        ("predicted latency", f"{_ms(pred.get('latency_ms'))} (upper bound {_ms(pred.get('latency_upper_ms'))})" if pred else "not recorded"),
        ("exports", "; ".join(_export_text(k, v) for k, v in (r.get("exports") or {}).items()) or "not recorded"),
        ("took", f"{r['wall_s']:.0f} s" if isinstance(r.get("wall_s"), (int, float)) else "not recorded"),
    ]))
    sec.body.append(figs.draw(lambda: distill_figure(r), f"training losses and evaluation {metric} of the student"))
    return sec


def _export_text(name: str, check: Any) -> str:
    """``onnx: outputs match the PyTorch model (max |diff| 8.9e-08 <= 1e-04 on 8 examples)``."""
    if not isinstance(check, dict) or not isinstance(check.get("max_abs_diff"), (int, float)):
        return f"{name}: not verified"
    d, tol = check["max_abs_diff"], check.get("atol")
    ok = isinstance(tol, (int, float)) and d <= tol
    return (f"{name}: {'outputs match' if ok else 'outputs DIFFER from'} the trained model "
            f"(max |diff| {d:.2g} {'<=' if ok else '>'} {tol:.0e} on {check.get('examples', '?')} examples)")


def _verify_section(summary: dict[str, Any] | None, report: dict[str, Any] | None) -> Section:
    sec = Section("verify", "Verification: does the student fit the budget?")
    if summary is None:
        sec.missing = "summary.json not found (the run did not reach its verification)"
        return sec
    budget = summary.get("budget_ms")
    within = summary.get("within_budget")
    m = (report or {}).get("measured_latency") or {}
    s_lat = (m.get("student") or {}).get("latency_ms")
    pred = (report or {}).get("predicted_latency") or {}
    if within is None:
        verdict, cls = "not measured", "warn"
    else:
        verdict, cls = ("WITHIN the budget", "ok") if within else ("OVER the budget", "bad")
    sec.body.append(f'<p class="verdict {cls}">Raw: measured {_e(_ms(s_lat))} against the {_e(_ms(budget))} budget: '
                    f'<b>{_e(verdict)}</b></p>')
    rows = [("measured (raw)", _ms(s_lat)), ("predicted", _ms(pred.get("latency_ms"))),
            ("predicted upper bound", _ms(pred.get("latency_upper_ms")))]
    student = m.get("student") or {}
    if student:
        rows.append(("measurement spread", f"IQR/median {_pct(student.get('spread'))}, p10 {_ms(student.get('p10_ms'))}, "
                                           f"p90 {_ms(student.get('p90_ms'))}{', NOISY' if student.get('noisy') else ''}"))
    sec.body.append(_table(rows))
    # Drift-normalised figures: written by the verification step into summary.json when it has a
    # reference measured in the same rounds; shown as recorded, whatever their names.
    extra: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif not isinstance(value, list):
            extra.append((prefix, f"{value:.4g}" if isinstance(value, float) else value))

    for key in ("verification", "verify"):
        if isinstance(summary.get(key), dict):
            walk(key, summary[key])
    for key, value in summary.items():
        if key not in ("verification", "verify") and any(w in key for w in ("drift", "normalised", "normalized", "reference")):
            walk(key, value)
    norm = [r for r in extra if any(w in r[0] for w in ("drift", "normalised", "normalized", "reference"))]
    sec.body.append("<h3>Drift-normalised</h3>")
    v = summary.get("verification") if isinstance(summary.get("verification"), dict) else {}
    if v.get("within_budget_normalised") is not None:
        ok = bool(v["within_budget_normalised"])
        drift = v.get("drift") or {}
        sec.body.append(f'<p class="verdict {"ok" if ok else "bad"}">Drift-normalised: {_e(_ms(v.get("normalised_ms")))} '
                        f'at the machine\'s speed of profiling time: <b>{"WITHIN" if ok else "OVER"} the budget</b></p>')
        if drift.get("note"):
            sec.body.append(_note(str(drift["note"])))
        if v.get("verdicts_agree") is False:
            sec.body.append('<p class="verdict warn">The raw and drift-normalised verdicts <b>disagree</b>: the machine '
                            'runs at another speed than when it was profiled; re-verify on a quiet machine.</p>')
    if norm:
        sec.body.append(_table(extra))
    else:
        sec.body.append(_note("not recorded: this run's summary.json holds no drift-normalised verification "
                              "(a ratio to a reference architecture measured in the same rounds)."))
        if extra:
            sec.body.append(_table(extra))
    return sec


# ------------------------------------------------------------------ commands
# RunConfig field -> `hwnas run` flag; with --quick only the first group is honoured.
_QUICK_FLAGS = {"device": "--device", "work_dir": "--work-dir", "name": "--name", "space": "--space",
                "predictor": "--predictor", "supernet": "--supernet", "task": "--task", "eval": "--eval",
                "threads": "--threads", "strategy": "--strategy"}
_FULL_FLAGS = {**_QUICK_FLAGS, "profile_samples": "--samples", "supernet_steps": "--supernet-steps",
               "search_evaluations": "--evaluations", "teacher_steps": "--teacher-steps", "distill_steps": "--distill-steps"}


def _run_commands(cfg: dict[str, Any], folder: Path) -> tuple[list[str], list[str]]:
    """The ``hwnas run`` command line that reproduces ``cfg``, and the settings no flag reaches."""
    from hwnas.pipeline import RunConfig, choose_space, quick_config

    budget = float(cfg["max_latency_ms"])
    known = set(RunConfig.__dataclass_fields__)
    clean = {k: v for k, v in cfg.items() if k in known}
    clean["work_dir"] = str(folder.parent)
    clean["name"] = folder.name
    quick = bool(clean.get("quick_timing"))
    base = quick_config(budget) if quick else RunConfig(max_latency_ms=budget)
    flags = _QUICK_FLAGS if quick else _FULL_FLAGS
    args = ["hwnas", "run", "--max-latency", f"{budget:g}ms"]
    for key, flag in flags.items():
        value = clean.get(key)
        default = getattr(base, key)
        if key == "name":
            default = f"{clean.get('device', 'cpu')}-{budget:g}ms"
        if key == "space" and not quick:
            default = choose_space(budget)
        if value is not None and value != default:
            args += [flag, str(value)]
    if quick:
        args.append("--quick")
    unreachable = [f"{k}={clean[k]!r}" for k in sorted(known - set(flags) - {"max_latency_ms", "quick_timing"})
                   if k in clean and clean[k] != getattr(base, k)]
    return [shlex.join(args)], unreachable


def _stage_commands(kind: str, path: Path) -> list[str]:
    q = shlex.quote(str(path))
    return {
        "profile": [f"hwnas profile show {q} --plot", f"hwnas predictor fit {q} --out {shlex.quote(str(path.with_suffix('.hwnas')))}"],
        "predictor": [f"hwnas predictor show {q} --plot"],
        "supernet": [f"hwnas supernet info {q}"],
        "search": [],
        "distill": [],
    }.get(kind, [])


# ------------------------------------------------------------------ page
_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#f6f6f4;color:#1b1b1b;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:34px 0 8px;padding-top:10px;border-top:2px solid #0072B2}
h3{font-size:1.05em;margin:16px 0 6px}
.sub{color:#555;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0 12px;font-size:.92em}
td,th{border:1px solid #ddd;padding:4px 9px;text-align:left;vertical-align:top}th{background:#f0f4f8}
figure{margin:12px 0}img{max-width:100%;height:auto;border:1px solid #e4e4e4}
figcaption{font-size:.85em;color:#555}
pre{background:#f4f4f4;border:1px solid #e0e0e0;padding:10px;overflow-x:auto;font-size:.88em}
.note{color:#555;font-style:italic}.warn{color:#8a5300;background:#fff6e0;padding:6px 10px;border-left:4px solid #E69F00}
.verdict{font-size:1.15em;padding:8px 12px;border-left:6px solid #999}
.ok{border-color:#009E73;background:#e9f7f2}.bad{border-color:#D55E00;background:#fdeee6}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{flex:1 1 150px;border:1px solid #ddd;border-radius:6px;padding:8px 12px;background:#fafafa}
.card .v{font-size:1.3em;font-weight:bold}.card .k{font-size:.82em;color:#555}
.card.ok{border:2px solid #009E73;background:#e9f7f2}.card.bad{border:2px solid #D55E00;background:#fdeee6}
.missing{color:#D55E00;font-weight:bold}
nav a{margin-right:10px;color:#0072B2}
"""


def _page(title: str, subtitle: str, sections: list[Section], head_html: str, tail_html: str) -> str:
    nav = " ".join(f'<a href="#{s.key}">{_e(s.key)}</a>' for s in sections)
    nav += "".join(f' <a href="#{k}">{k}</a>' for k in ("settings", "reproduce") if f'id="{k}"' in tail_html)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="generator" content="hwnas">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>", f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(subtitle)}</p>', f"<nav>{nav}</nav>" if len(sections) > 1 else "", head_html,
    ]
    for s in sections:
        parts.append(f'<section id="{_e(s.key)}" data-stage="{_e(s.key)}"><h2>{_e(s.title)}</h2>')
        if s.missing:
            parts.append(f'<p class="missing">Missing: {_e(s.missing)}.</p>')
        if s.broken:
            parts.append(f'<p class="warn">Half-written or unreadable: {_e(s.broken)}</p>')
        parts.extend(s.body)
        parts.append("</section>")
    parts.append(tail_html)
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p)


def _cards(items: list[tuple[str, str]], last_cls: str = "") -> str:
    html_items = [f'<div class="card{" " + last_cls if i == len(items) - 1 and last_cls else ""}"><div class="v">{_e(v)}</div>'
                  f'<div class="k">{_e(k)}</div></div>' for i, (k, v) in enumerate(items)]
    return '<div class="cards">' + "".join(html_items) + "</div>"


def _build_run(folder: Path) -> Report:
    figs = _Figures()
    summary: dict[str, Any] | None = None
    broken: dict[str, str] = {}
    if (folder / "summary.json").exists():
        try:
            summary = _read_json(folder / "summary.json", "run summary")
        except InvalidData as exc:
            broken["verify"] = str(exc)
    cfg = (summary or {}).get("config") or {}
    predictor_path = Path(cfg["predictor"]) if cfg.get("predictor") else folder / "predictor.hwnas"
    supernet_path = Path(cfg["supernet"]) if cfg.get("supernet") else folder / "supernet"
    sections = [
        _profile_section(folder / "profile.jsonl", figs), _predictor_section(predictor_path, figs),
        _supernet_section(supernet_path, figs), _search_section(folder / "search", figs),
        _distill_section(folder / "student", figs),
    ]
    if cfg.get("predictor") and sections[0].missing:
        sections[0].missing = None
        sections[0].body.append(_note(f"not profiled: the run reused the predictor {cfg['predictor']}"))
    report = None
    if (folder / "student" / "report.json").exists():
        try:
            report = _read_json(folder / "student" / "report.json", "distillation report")
        except InvalidData:
            report = None
    ver = _verify_section(summary, report)
    if "verify" in broken:
        ver.missing, ver.broken = None, broken["verify"]
    sections.append(ver)
    missing = [s.key for s in sections if s.missing]
    broken.update({s.key: s.broken for s in sections if s.broken})

    # the head: what ran, the verdict, teacher against student
    budget = (summary or {}).get("budget_ms") or cfg.get("max_latency_ms")
    head = []
    m = (report or {}).get("measured_latency") or {}
    cards = []
    if budget:
        cards.append(("latency budget", f"{budget:g} ms"))
    if report:
        s_lat = (m.get("student") or {}).get("latency_ms")
        cards.append(("student latency (measured)", _ms(s_lat)))
        if isinstance(m.get("speedup"), (int, float)):
            cards.append(("speed-up over the teacher", f"{m['speedup']:.1f}x"))
        metric = report.get("metric", "accuracy")
        if isinstance(report.get("student_score"), (int, float)):
            cards.append((f"student {metric} (teacher {report.get('teacher_score', float('nan')):.3f})", f"{report['student_score']:.3f}"))
        if isinstance(report.get("parameters"), int):
            cards.append(("student parameters", f"{report['parameters'] / 1e6:.1f} M"))
    verdict_cls = ""
    if summary is not None:
        w = summary.get("within_budget")
        cards.append(("verdict (raw measurement against the budget)",
                      "not measured" if w is None else ("within budget" if w else "OVER budget")))
        verdict_cls = "" if w is None else ("ok" if w else "bad")
    head.append(_cards(cards, last_cls=verdict_cls))
    if summary and summary.get("winner"):
        arch = summary["winner"].get("arch") or {}
        head.append(_p("Winner: " + ", ".join(f"{k}={v}" for k, v in arch.items())))
    if missing or broken:
        what = [f"missing: {', '.join(missing)}"] if missing else []
        what += [f"half-written: {', '.join(broken)}"] if broken else []
        head.append(_note("This run is incomplete (" + "; ".join(what) + "). The page shows what exists.", "warn"))
    if summary:
        head.append("<h2>What ran</h2>")
        head.append(_table([[s.get("name"), s.get("status"), _duration(s.get("seconds", 0)), s.get("output"),
                             s.get("detail")]
                           for s in summary.get("stages") or []], ["stage", "status", "took", "output", "result"]))
        wall = summary.get("wall_s")
        settings = {k: v for k, v in cfg.items() if v is not None and k not in ("folder",)}
        items = sorted(settings.items())
        per_row = 3
        rows = [sum(([k, v] for k, v in items[i:i + per_row]), []) for i in range(0, len(items), per_row)]
        rows = [r + [""] * (2 * per_row - len(r)) for r in rows]
        settings_html = "<h2 id=\"settings\">Settings</h2>" + _table(rows, ["setting", "value"] * per_row)
        if isinstance(wall, (int, float)):
            head.append(_p(f"Total wall time {wall / 60:.1f} min."))
    tail = [settings_html] if summary else []
    tail.append("<h2 id=\"reproduce\">Reproduce</h2>")
    if cfg.get("max_latency_ms"):
        cmds, unreachable = _run_commands(cfg, folder)
        tail.append(_p("The whole run (a second run in the same folder reuses every finished stage; "
                       "move the folder away to run it again from nothing):"))
        tail.append(_code(cmds + [f"hwnas report {shlex.quote(str(folder))}   # rebuild this page"]))
        if unreachable:
            tail.append(_note("Set through the Python API, with no command-line flag: " + ", ".join(unreachable) +
                              " (hwnas.pipeline.RunConfig)", "warn"))
    else:
        tail.append(_note("not recorded: summary.json (with the run's settings) is missing"))
    inspect = []
    if (folder / "profile.jsonl").exists():
        inspect.append(f"hwnas profile show {shlex.quote(str(folder / 'profile.jsonl'))} --plot")
    if predictor_path.exists():
        inspect.append(f"hwnas predictor show {shlex.quote(str(predictor_path))} --plot")
    if inspect:
        tail.append(_p("Inspect the stages:"))
        tail.append(_code(inspect))
    name = cfg.get("name") or folder.name
    if not cfg and (folder / "search" / "config.json").is_file():  # no summary yet: the search knows both
        try:
            cfg = {k: v for k, v in _read_json(folder / "search" / "config.json", "search settings").items()
                   if k in ("device", "space")}
        except InvalidData:
            pass
    sub = f"{folder} · device {cfg.get('device', '?')} · space {cfg.get('space', '?')} · built " \
          f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
    page = _page(f"hwnas run {name}", sub, sections, "\n".join(head), "\n".join(tail))
    return Report("run", str(folder), page, missing, broken, figs.count)


def _build_stage(kind: str, path: Path) -> Report:
    figs = _Figures()
    make = {"profile": _profile_section, "predictor": _predictor_section, "supernet": _supernet_section,
            "search": _search_section, "distill": _distill_section}[kind]
    sec = make(path, figs)
    rebuild = f"hwnas report {shlex.quote(str(path))}   # rebuild this page"
    tail = "<h2 id=\"reproduce\">Commands</h2>" + _code(_stage_commands(kind, path) + [rebuild])
    if kind == "search" and (path / "config.json").exists():
        try:
            c = _read_json(path / "config.json", "search settings")
            tail += _p("Search again with the same settings (into a new folder):") + _code([shlex.join([
                "hwnas", "search", "--predictor", str(c.get("predictor")), "--supernet", str(c.get("supernet")),
                "--max-latency", f"{c.get('budget_ms'):g}ms", "--strategy", str(c.get("strategy")),
                "--evaluations", str(c.get("evaluations")), "--seq-len", str(c.get("seq_len")),
                "--batch-size", str(c.get("batch_size")), "--objective", str(c.get("objective")),
                "--seed", str(c.get("seed")), "--out", str(path) + "-again"])])
        except (InvalidData, TypeError, ValueError):
            pass
    sub = f"{path} · built {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
    page = _page(f"hwnas {kind}: {path.name}", sub, [sec], "", tail)
    missing = [kind] if sec.missing else []
    broken = {kind: sec.broken} if sec.broken else {}
    return Report(kind, str(path), page, missing, broken, figs.count)


def build_report(path: str | Path) -> Report:
    """Build (but do not write) the report of a run folder or of one stage's output.

    Raises:
        InvalidData: ``path`` is none of the accepted kinds.
    """
    p = Path(path)
    kind = detect_kind(p)
    return _build_run(p) if kind == "run" else _build_stage(kind, p)


def default_output(path: str | Path) -> Path:
    """``FOLDER/report.html`` for a folder, ``FILE.report.html`` beside a file."""
    p = Path(path)
    return p / REPORT_FILE if p.is_dir() else p.with_name(p.name + ".report.html")


def write_report(path: str | Path, out: str | Path | None = None) -> Report:
    """Build the report of ``path`` and write it (atomically) to ``out`` (default :func:`default_output`).

    Raises:
        InvalidData: ``path`` is not a run or stage output.
        InvalidConfig: ``out`` cannot be written (the old file, if any, is left as it was).
    """
    target = Path(out) if out is not None else default_output(path)
    if target.is_dir():
        raise InvalidConfig(f"--out {target} is a folder; give a file name such as {target / REPORT_FILE}")
    report = build_report(path)
    if not target.parent.is_dir():
        raise InvalidConfig(f"cannot write the report to {target}: its folder does not exist; choose a writable --out")
    try:
        atomic_write_text(target, report.html)
    except OSError as exc:
        raise InvalidConfig(f"cannot write the report to {target}: {exc.strerror or exc}; choose a writable --out") from None
    report.path = target
    return report
