"""Score an end-to-end benchmark's students again, on evaluation rows the search never used.

``bench_end_to_end.py`` scores every distilled student on the first ``--eval-limit`` rows of its evaluation file.
Its searched arm is chosen by an estimator that may itself have scored proxy runs on other rows of the same file
(``distill-proxy`` with ``eval_offset``), and comparing the arms on those rows would favour the searched one. This
bench reloads every student that a results file names (the exported Hugging Face folder each run left), scores it
on ``--rows`` of ``--eval`` (slices ``START:STOP``, comma-separated; choose rows no estimator saw), and prints the
same per-budget verdict as ``bench_end_to_end.py`` (:func:`bench_end_to_end.compare`: searched minus baseline,
against twice the standard error of the difference over seeds), beside the original figures. No training.

Resumable and cheap: each student's score is kept in ``--cache`` (keyed by the folder as the results file names it,
the evaluation file's content and the rows), so a rerun scores only what is missing, and a committed cache reprints
the verdicts on a machine without the students.

    python bench/bench_rescore.py --results bench/results/end_to_end-sst2-gt-v1-distillproxy-ties-bands1.json \\
        --eval ../shared/data/sst2/dev.tsv --rows 0:2000,4000:6735 --seeds 0,1,2

It was written for stop 22's question: is the 20 ms gain real? The rows, seeds and verdict rule were fixed before
any student was scored on them (docs/estimators.md, "End to end").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_end_to_end import compare  # noqa: E402


def _slices(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        try:
            a, b = (int(x) for x in part.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"rows must be START:STOP[,START:STOP...]; got {text!r}") from None
        if not 0 <= a < b:
            raise argparse.ArgumentTypeError(f"rows must be START:STOP with 0 <= START < STOP; got {part!r}")
        out.append((a, b))
    return out


def picked_rows(eval_file: str, rows: list[tuple[int, int]]):
    """The :class:`~hwnas.distill.data.TaskData` of ``rows`` of ``eval_file``."""
    from hwnas.distill.data import load_task

    data = load_task(eval_file, split="validation")
    stop = max(b for _, b in rows)
    if stop > len(data):
        raise SystemExit(f"--rows ends at {stop} but {eval_file} has {len(data)} rows")
    return data.subset([i for a, b in rows for i in range(a, b)])


def score(folder: Path, picked, max_len: int) -> tuple[float, int]:
    """Accuracy of the exported student in ``folder`` on the rows ``picked`` (:func:`picked_rows`), and their
    number."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hwnas.distill.data import encode
    from hwnas.distill.trainer import evaluate

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        got = evaluate(model, encode(tokenizer, picked, max_len), picked.kind)
    return float(got["accuracy"]), len(picked)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="a bench_end_to_end.py results JSON")
    ap.add_argument("--eval", required=True, help="the evaluation file to score on")
    ap.add_argument("--rows", required=True, type=_slices, metavar="START:STOP[,...]")
    ap.add_argument("--seeds", default=None, help="only these seeds (comma-separated; default: every seed run)")
    ap.add_argument("--budgets", default=None, help="only these budget labels (comma-separated, e.g. 20ms)")
    ap.add_argument("--cache", default=str(HERE / "results" / "rescore-cache.json"))
    args = ap.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    labels = None if args.budgets is None else set(args.budgets.split(","))
    cache_file = Path(args.cache)
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    rows_text = ",".join(f"{a}:{b}" for a, b in args.rows)
    # keyed by the folder as the results file names it and the evaluation file's content, not by absolute paths,
    # so a committed cache serves a fresh clone that has no students
    eval_digest = hashlib.sha256(Path(args.eval).read_bytes()).hexdigest()
    picked = None
    print(f"rescoring {args.results} on {args.eval} rows {rows_text}; seeds {args.seeds or 'all'}", flush=True)
    for budget in results["budgets"]:
        if labels is not None and budget["label"] not in labels:
            continue
        arms = budget["arms"]
        accs: dict[str, list[float]] = {}
        old: dict[str, list[float]] = {}
        for name, arm in arms.items():
            for run in arm["runs"].values():
                if seeds is not None and run["seed"] not in seeds:
                    continue
                folder = Path(run["folder"])
                key = hashlib.sha256(json.dumps([run["folder"], eval_digest, rows_text]).encode()).hexdigest()[:16]
                if key not in cache:
                    if not (folder / "model.safetensors").is_file():
                        raise SystemExit(f"no exported student in {folder}: rerun its bench_end_to_end.py command")
                    max_len = json.loads((folder / "distill_config.json").read_text()).get("max_len") or 128
                    if picked is None:  # read once, and only when a student is not cached
                        picked = picked_rows(args.eval, args.rows)
                    acc, n = score(folder, picked, max_len)
                    cache[key] = {"folder": str(folder), "eval": args.eval, "rows": rows_text, "accuracy": acc, "n": n}
                    tmp = cache_file.with_suffix(".tmp")
                    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
                    tmp.replace(cache_file)
                accs.setdefault(name, []).append(cache[key]["accuracy"])
                old.setdefault(name, []).append(run["accuracy"])
        names = list(arms)
        if len(names) != 2 or any(n not in accs for n in names):
            print(f"== {budget['label']}: fewer than two arms with runs; skipped")
            continue
        s, b = names
        same = arms[s]["key"] == arms[b]["key"]
        new_c, old_c = compare(accs[s], accs[b], same), compare(old[s], old[b], same)
        print(f"\n== budget {budget['label']}: {s} {arms[s]['key']} against {b} {arms[b]['key']}, "
              f"{len(accs[s])} and {len(accs[b])} seeds")
        for label, c, a in (("rows " + rows_text, new_c, accs), ("original rows", old_c, old)):
            se = "" if c.get("se") is None else f", se of the difference {c['se'] * 100:.2f}"
            print(f"   {label:24s} {s} {100 * sum(a[s]) / len(a[s]):.2f}  {b} {100 * sum(a[b]) / len(a[b]):.2f}  "
                  f"diff {c['diff'] * 100:+.2f} points{se}: {c['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
