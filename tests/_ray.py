"""A real local Ray cluster for the fleet tests: a head without CPUs and worker nodes, each a real raylet
process on this machine standing in for one machine. Starting one takes 10-30 s on a busy 2-core machine,
so each test module shares one (a module-scoped fixture around :func:`local_cluster`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hwnas

REPO = str(Path(hwnas.__file__).resolve().parents[1])


@contextmanager
def local_cluster(nodes: int = 2, *, resources: dict[str, float] | None = None, connect: bool = False) -> Iterator[Any]:
    """A ``ray.cluster_utils.Cluster`` with ``nodes`` one-CPU worker nodes offering ``resources``.

    ``connect``: ``ray.init`` this process to it. The cluster keeps ``local`` (the node settings, for
    nodes a test adds) and ``measuring`` (the worker nodes). Raylets and their workers inherit this
    environment: no usage reporting, and this checkout of hwnas first on the path.
    """
    import ray
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", "PYTHONPATH")}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, saved["PYTHONPATH"]) if p)
    local = dict(object_store_memory=80 * 2**20)
    c = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, **local))
    c.local = local
    c.measuring = [c.add_node(num_cpus=1, **({"resources": resources} if resources else {}), **local)
                   for _ in range(nodes)]
    if connect:
        ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
