"""Accuracy estimators: score architectures without distilling them (higher is better).

====================  =====================================================  ==================
name                  what it computes                                        needs
====================  =====================================================  ==================
``params``            parameter count (the baseline to beat)                  nothing
``flops``             forward FLOPs at 128 tokens                             nothing
``wpca``              W-PCA zero-cost proxy (Tang et al., ICLR 2025)          teacher or supernet
``attn-confidence``   attention confidence (Serianni & Kalita, ACL 2023)      teacher or supernet
``supernet-loss``     minus the held-out distillation loss in the supernet     supernet
``supernet-probe``    linear probe on the supernet's sub-network              supernet
``task-proxy``        a few fine-tuning steps, held-out accuracy (KD-NAS)     task
``distill-proxy``     the distillation recipe for a few steps, held-out     task, fine-tuned teacher
``learned``           XGBoost ranker fitted on a ground-truth table            a fitted model (path)
====================  =====================================================  ==================

``make_estimator(name, supernet=..., teacher=..., task=...)`` builds one from
what is at hand; ``ESTIMATORS.names()`` lists them; all follow
:class:`~hwnas.estimators.base.AccuracyEstimator`.
"""

from hwnas.estimators.base import ESTIMATORS, AccuracyEstimator, as_architectures, make_estimator
from hwnas.estimators import baselines as _baselines  # noqa: F401  (registers)
from hwnas.estimators import distill_proxy as _distill_proxy  # noqa: F401
from hwnas.estimators import learned as _learned  # noqa: F401
from hwnas.estimators import supernet as _supernet  # noqa: F401
from hwnas.estimators import task_proxy as _task_proxy  # noqa: F401
from hwnas.estimators import zero_cost as _zero_cost  # noqa: F401

__all__ = ["AccuracyEstimator", "ESTIMATORS", "as_architectures", "make_estimator"]
