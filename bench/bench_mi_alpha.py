"""MI-alpha before and after its fix: gradient norms per loss, and what training with it reaches.

Distils a student sliced from a fine-tuned task teacher with ``logits + mi_alpha`` at several
weights, once with the loss as it was (minus the bound, which grows like 1/T) and once as it is
now (minus T times the bound), and prints for each: the gradient norm of each loss component on
the first batch (what global gradient clipping at 1.0 sees), the accuracy and task loss on held-out
rows after training, and the CPU time. Same seed, same batches, same student everywhere.

    python bench/bench_mi_alpha.py --teacher TEACHER_DIR --task ../shared/data/sst2/train.tsv \\
        --eval ../shared/data/sst2/dev.tsv --steps 150 --weights 0.1,1.0

TEACHER_DIR: a fine-tuned teacher folder (``<cache>/<key>/`` written by ``hwnas distill``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from hwnas.distill.data import encode, load_task
from hwnas.distill.losses import LossConfig, MIAlphaLoss, mi_alpha_bound
from hwnas.distill.models import (
    forward_outputs,
    init_student,
    model_shape,
    set_attention,
)
from hwnas.distill.trainer import TrainConfig, evaluate, train
from hwnas.space import Architecture


def _old_forward(self, student, teacher, labels):
    """The loss before the fix: minus the bound, without the factor T."""
    import torch.nn.functional as F

    mask = student.attention_mask
    s = F.normalize(self.proj(self._pool(student.hidden_states, [i for i, _ in self.pairs], mask)), dim=-1)
    t = F.normalize(self._pool(teacher.hidden_states, [j for _, j in self.pairs], mask), dim=-1)
    return -mi_alpha_bound(((t @ s.T) / self.config.mi_temperature).float(), self.config.alpha)


def _centered_forward(self, student, teacher, labels):
    """A candidate: the after-fix loss with both sentence representations centred on the batch mean first."""
    import torch.nn.functional as F

    mask = student.attention_mask
    s = self.proj(self._pool(student.hidden_states, [i for i, _ in self.pairs], mask))
    t = self._pool(teacher.hidden_states, [j for _, j in self.pairs], mask)
    s, t = F.normalize(s - s.mean(0), dim=-1), F.normalize(t - t.mean(0), dim=-1)
    temperature = self.config.mi_temperature
    return -temperature * mi_alpha_bound(((t @ s.T) / temperature).float(), self.config.alpha)


def _grad_norms(student, teacher, loss_config, batch):
    """Gradient norm over the student's (and the loss's) parameters of each weighted component, on one batch."""
    from hwnas.distill.losses import DistillLoss

    needs = loss_config.needs() - {"teacher"}
    loss = DistillLoss(loss_config, model_shape(student), model_shape(teacher), "classification")
    with torch.no_grad():
        t_out = forward_outputs(teacher, batch, needs)
    norms = {}
    for name, comp in loss.components.items():
        student.zero_grad(set_to_none=True)
        loss.zero_grad(set_to_none=True)
        value = loss_config.weights[name] * comp(forward_outputs(student, batch, needs), t_out, batch["labels"])
        value.backward()
        params = [p for p in list(student.parameters()) + list(loss.parameters()) if p.grad is not None]
        norms[name] = float(torch.norm(torch.stack([p.grad.norm() for p in params])))
    student.zero_grad(set_to_none=True)
    return norms


def _task_loss(model, enc):
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                       token_type_ids=enc["token_type_ids"]).logits
    return float(torch.nn.functional.cross_entropy(logits, enc["labels"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--arch", default="L2-H384-A4-I1536", help="student (default: the 1/3-latency student of docs/distill.md)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--limit", type=int, default=8000)
    ap.add_argument("--eval-limit", type=int, default=500)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weights", default="0,0.1,1.0", help="mi_alpha weights (0: logits alone)")
    ap.add_argument("--variants", default="before,after")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
    train_data = load_task(args.task, limit=args.limit)
    eval_data = load_task(args.eval, limit=args.eval_limit, label_names=train_data.label_names)
    train_enc, eval_enc = encode(tok, train_data, args.max_len), encode(tok, eval_data, args.max_len)
    print(f"teacher accuracy on {len(eval_data)} held-out rows: {evaluate(teacher, eval_enc, 'classification')['accuracy']:.4f}")
    arch = Architecture.parse(args.arch)
    batch = {k: v[:32] for k, v in train_enc.items()}
    new_forward = MIAlphaLoss.forward
    rows = []
    for variant in args.variants.split(","):
        MIAlphaLoss.forward = {"before": _old_forward, "centered": _centered_forward}.get(variant, new_forward)
        for w in [float(x) for x in args.weights.split(",")]:
            if w == 0 and variant != "after":  # logits alone: the same in every variant
                continue
            weights = {"logits": 1.0} if w == 0 else {"logits": 1.0, "mi_alpha": w}
            lc = LossConfig(weights=weights)
            student, _ = init_student(arch, 2, init="teacher", teacher_path=Path(args.teacher), seed=args.seed)
            for m in (student, teacher):
                set_attention(m, "eager")
            norms = _grad_norms(student, teacher, lc, batch)
            t0 = time.process_time()
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                r = train(student, teacher, lc, train_enc, "classification",
                          TrainConfig(steps=args.steps, batch_size=32, lr=args.lr, max_len=args.max_len, seed=args.seed,
                                      checkpoint_every=0), tmp, eval_encoded=eval_enc)
            cpu = time.process_time() - t0
            rows.append((variant, w, norms, r.metrics["accuracy"], _task_loss(student, eval_enc), cpu))
            n = ", ".join(f"{k} {v:.3g}" for k, v in norms.items())
            print(f"{variant:6s} weight {w:<4g} grad norms [{n}]  accuracy {r.metrics['accuracy']:.4f}  "
                  f"task loss {rows[-1][4]:.4f}  cpu {cpu:.0f} s", flush=True)
    MIAlphaLoss.forward = new_forward


if __name__ == "__main__":
    main()
