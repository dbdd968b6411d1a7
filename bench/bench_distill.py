"""Benchmark: distilled students at 1/2, 1/3 and 1/5 of the teacher's CPU latency, and a loss comparison.

What it does (every stage is cached under --out and skipped when rerun):

1. fine-tunes the default teacher (all-MiniLM-L6-v2) on --train and evaluates it on --dev;
2. measures the teacher's CPU latency (sequence 128, batch 1, --threads threads);
3. for each budget fraction, finds a student: with --search-dir winners from
   ``hwnas search`` (``<dir>/<fraction>/winner.json``); with --predictor the
   architecture with the most parameters whose predicted upper latency fits;
   otherwise the same rule on latencies measured here for a Latin-hypercube
   sample of the space (``candidates.jsonl``);
4. distils every student with the same steps and losses, measures student and
   teacher together (interleaved rounds) and reports accuracy retained and speed-up;
5. distils the 1/3 student with several loss combinations (same steps) and ranks them.

Run with nice on a shared machine, e.g.::

    nice -n 19 python bench/bench_distill.py --train ../shared/data/sst2/train.tsv \\
        --dev ../shared/data/sst2/dev.tsv --out bench/out/distill

Results: ``bench/results/distill.json`` and the printed tables.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

COMBOS = {
    "task-only": {"task": 1.0},
    "logits": {"logits": 1.0},
    "logits+hidden": {"logits": 1.0, "hidden": 1.0},
    "logits+hidden+attention": {"logits": 1.0, "hidden": 1.0, "attention": 1.0},
    "logits+value_relation": {"logits": 1.0, "value_relation": 1.0},
    "logits+mi_alpha": {"logits": 1.0, "mi_alpha": 0.1},
}
DEFAULT_COMBO = "logits+hidden+attention"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def measured_candidates(space_name: str, out: Path, n: int, threads: int) -> list[dict]:
    """Latency of ``n`` sampled architectures measured here (cached in candidates.jsonl)."""
    from hwnas.devices.registry import create_device
    from hwnas.devices.timing import TimingConfig
    from hwnas.profiling import Task, measure_tasks
    from hwnas.devices.base import Shape
    from hwnas.space import get_space

    path = out / "candidates.jsonl"
    if path.is_file():
        return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    space = get_space(space_name)
    archs = space.sample(n, plan="lhs", seed=0)
    device = create_device("cpu", threads=threads)
    rows = []
    for i in range(0, len(archs), 8):
        chunk = archs[i: i + 8]
        _log(f"measuring candidate architectures {i + 1}-{i + len(chunk)} of {len(archs)}")
        for rec in measure_tasks(device, [Task(a, Shape(1, 128)) for a in chunk], TimingConfig()):
            rows.append({**{k: rec[k] for k in ("layers", "hidden", "heads", "ffn")}, "latency_ms": rec["latency_ms"],
                         "p90_ms": rec["p90_ms"], "params": rec["params"]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def pick_student(budget_ms: float, args, out: Path, fraction: int) -> tuple[str, dict]:
    from hwnas.space import Architecture, get_space

    if args.search_dir:
        winner = Path(args.search_dir) / str(fraction) / "winner.json"
        if winner.is_file():
            data = json.loads(winner.read_text())
            return Architecture.from_dict(data["arch"]).key, {"how": f"hwnas search winner {winner}", **data}
    space = get_space(args.space)
    if args.predictor:

        from hwnas.predictors import load_predictor

        p = load_predictor(args.predictor)
        archs = space.enumerate()
        upper = p.predict_upper(archs, seq_len=128, batch_size=1)
        mid = p.predict(archs, seq_len=128, batch_size=1)
        ok = [i for i in range(len(archs)) if upper[i] <= budget_ms]
        if ok:
            best = max(ok, key=lambda i: (archs[i].num_parameters(), -mid[i]))
            return archs[best].key, {"how": f"most parameters with predicted p95 <= budget ({args.predictor})",
                                     "latency_ms": float(mid[best]), "latency_upper_ms": float(upper[best])}
    rows = measured_candidates(args.space, out, args.candidates, args.threads)
    ok = [r for r in rows if r["latency_ms"] <= budget_ms]
    if not ok:
        ok = [min(rows, key=lambda r: r["latency_ms"])]
    best = max(ok, key=lambda r: r["params"])
    arch = Architecture(best["layers"], best["hidden"], best["heads"], best["ffn"])
    return arch.key, {"how": f"most parameters among {len(rows)} measured candidates under budget",
                      "latency_ms": best["latency_ms"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--out", default="bench/out/distill")
    ap.add_argument("--results", default="bench/results/distill.json")
    ap.add_argument("--train-limit", type=int, default=None, help="use only the first N training sentences")
    ap.add_argument("--dev-limit", type=int, default=None)
    ap.add_argument("--teacher-steps", type=int, default=80)
    ap.add_argument("--teacher-lr", type=float, default=1e-4)
    ap.add_argument("--steps", type=int, default=200, help="distillation steps of every student")
    ap.add_argument("--lr", type=float, default=3e-4, help="peak learning rate of the students")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--fractions", default="2,3,5")
    ap.add_argument("--threads", type=int, default=1, help="threads for latency measurement")
    ap.add_argument("--train-threads", type=int, default=1, help="threads for training (1 wastes least CPU on a contended machine)")
    ap.add_argument("--clock", choices=["wall", "thread_cpu"], default="thread_cpu",
                    help="latency clock: thread_cpu excludes time descheduled by other load (needs --threads 1)")
    ap.add_argument("--space", default="small")
    ap.add_argument("--candidates", type=int, default=32)
    ap.add_argument("--predictor", default=None)
    ap.add_argument("--supernet", default=None)
    ap.add_argument("--search-dir", default=None)
    ap.add_argument("--combos", default=",".join(COMBOS), help="loss combinations to compare on the 1/3 student")
    ap.add_argument("--stage", choices=["teacher", "students", "all"], default="all")
    args = ap.parse_args()
    command = "nice -n 19 python " + " ".join(shlex.quote(a) for a in sys.argv)

    import torch

    from hwnas.distill.api import DistillConfig, distill, load_data, teacher_train_config
    from hwnas.distill.export import measure_models
    from hwnas.distill.losses import LossConfig
    from hwnas.distill.models import resolve_teacher
    from hwnas.distill.teacher import finetune_teacher

    torch.set_num_threads(args.train_threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def config(arch: str, weights: dict) -> DistillConfig:
        return DistillConfig(arch=arch, task=args.train, eval=args.dev, limit=args.train_limit, eval_limit=args.dev_limit,
                             steps=args.steps, lr=args.lr, teacher_steps=args.teacher_steps, teacher_lr=args.teacher_lr, batch_size=args.batch_size,
                             max_len=args.max_len, losses=LossConfig(weights=weights), supernet=args.supernet,
                             cache_dir=str(out / "teachers"), threads=args.threads, checkpoint_every=50,
                             latency_clock=args.clock)

    base = config("layers=2,hidden=128,heads=2,ffn=256", COMBOS[DEFAULT_COMBO])
    train_data, eval_data, _ = load_data(base)
    _log(f"data: {len(train_data)} training, {len(eval_data)} evaluation examples")
    teacher = finetune_teacher(resolve_teacher("default"), train_data, eval_data, teacher_train_config(base),
                               out / "teachers", max_len=args.max_len, on_status=_log,
                               on_progress=lambda ev: _log(f"teacher step {ev.completed}/{ev.total} loss {ev.metrics['loss']:.4f}") if ev.completed % 10 == 0 else None)
    t_acc = teacher.metrics["accuracy"]
    _log(f"teacher accuracy on dev: {t_acc:.4f} ({teacher.path})")
    lat_file = out / f"teacher_latency_{args.clock}.json"
    if lat_file.is_file():
        t_lat = json.loads(lat_file.read_text())
    else:
        t_lat = measure_models({"teacher": teacher.model}, threads=args.threads, clock=args.clock)["teacher"]
        lat_file.write_text(json.dumps(t_lat, indent=1))
    _log(f"teacher latency: {t_lat['latency_ms']:.2f} ms median (p10 {t_lat['p10_ms']:.2f}, p90 {t_lat['p90_ms']:.2f}), "
         f"seq 128, batch 1, {args.threads} thread(s), clock {args.clock}")
    t_pred = None
    if args.predictor:
        from hwnas.predictors import load_predictor
        from hwnas.space import Architecture

        t_pred = float(load_predictor(args.predictor).predict([Architecture(6, 384, 12, 1536)])[0])
        _log(f"teacher latency predicted by {args.predictor}: {t_pred:.2f} ms")
    results = {"command": command, "teacher": {"accuracy": t_acc, "latency": t_lat, "predicted_ms": t_pred, "path": str(teacher.path),
                                                "train_config": teacher.info.get("train_config")},
               "train_examples": len(train_data), "eval_examples": len(eval_data), "students": [], "combos": []}
    if args.stage == "teacher":
        print(json.dumps(results["teacher"], indent=1, default=str))
        return

    def run_student(name: str, arch: str, weights: dict) -> dict:
        folder = out / "students" / name
        _log(f"distilling {name}: {arch} with {weights}")
        report = distill(config(arch, weights), folder, on_status=_log,
                         on_progress=lambda ev: _log(f"  {ev.stage} step {ev.completed}/{ev.total} loss {ev.metrics['loss']:.4f}") if ev.completed % 50 == 0 else None)
        m = report["measured_latency"]
        return {"name": name, "arch": report["arch_key"], "accuracy": report["student_score"],
                "retained": report["student_score"] / t_acc, "latency_ms": m["student"]["latency_ms"],
                "teacher_latency_ms_same_run": m["teacher"]["latency_ms"], "speedup": m["speedup"],
                "parameters": report["parameters"], "init": report["init"], "train_s": report["training"]["distill"]["train_s"],
                "predicted": report.get("predicted_latency"), "losses": weights}

    fractions = [int(f) for f in args.fractions.split(",")]
    third_arch = None
    for frac in fractions:
        budget = t_lat["latency_ms"] / frac
        arch, how = pick_student(budget, args, out, frac)
        _log(f"budget 1/{frac} = {budget:.2f} ms -> {arch} ({how['how']})")
        row = run_student(f"1-{frac}", arch, COMBOS[DEFAULT_COMBO])
        row.update(fraction=frac, budget_ms=budget, selection=how)
        results["students"].append(row)
        if frac == 3:
            third_arch = arch
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(results, indent=1, default=str) + "\n")
    if third_arch:
        for combo in [c for c in args.combos.split(",") if c]:
            if combo == DEFAULT_COMBO:
                row = next(r for r in results["students"] if r.get("fraction") == 3)
            else:
                row = run_student("1-3-" + combo.replace(" ", "_").replace("(", "").replace(")", ""), third_arch, COMBOS[combo])
            results["combos"].append({"combo": combo, "accuracy": row["accuracy"], "retained": row["retained"]})
            Path(args.results).write_text(json.dumps(results, indent=1, default=str) + "\n")

    print()
    print(f"command: {command}")
    print(f"teacher: accuracy {t_acc:.4f} on {len(eval_data)} dev examples; latency {t_lat['latency_ms']:.2f} ms "
          f"(p10 {t_lat['p10_ms']:.2f}, p90 {t_lat['p90_ms']:.2f}), seq 128, batch 1, {args.threads} thread(s), clock {args.clock}")
    print(f"{'budget':>7} {'architecture':<38} {'params':>9} {'acc':>7} {'retained':>9} {'latency':>9} {'speed-up':>9}")
    for r in results["students"]:
        print(f"{'1/' + str(r['fraction']):>7} {r['arch']:<38} {r['parameters']:>9,} {r['accuracy']:>7.4f} "
              f"{r['retained']:>8.1%} {r['latency_ms']:>7.2f}ms {r['speedup']:>8.2f}x")
    if results["combos"]:
        print(f"\nloss combinations on the 1/3 student ({third_arch}), {args.steps} steps each:")
        for r in sorted(results["combos"], key=lambda r: -r["accuracy"]):
            print(f"  {r['combo']:<28} accuracy {r['accuracy']:.4f}  retained {r['retained']:.1%}")
    print(f"\ntotal wall time of this invocation: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
