"""Figures of every stage, in one style (:mod:`hwnas.plots.style`).

* :mod:`~hwnas.plots.predictor`: parity and residual plots, a bundle's stored metrics and domain;
* :mod:`~hwnas.plots.profile`: latency against FLOPs and parameters;
* :mod:`~hwnas.plots.training`: supernet and distillation curves from the logs they write;
* :mod:`~hwnas.plots.search`: hypervolume and best score against evaluations.

matplotlib is imported only when a figure is drawn, on its non-interactive Agg backend.
"""
