"""Every extension point has the same shape: an abstract base class and one shared Registry.

Parametrised over all five registries (devices, latency estimators, accuracy
estimators, search strategies, loss components) and over everything each holds.
"""

from __future__ import annotations

import inspect

import pytest

from hwnas._registry import Registry
from hwnas.errors import HwnasError, InvalidConfig


def _registries():
    from hwnas.devices.base import Device
    from hwnas.devices.registry import DEVICES
    from hwnas.distill.losses import LOSSES, LossComponent
    from hwnas.estimators import ESTIMATORS, AccuracyEstimator
    from hwnas.predictors.estimators import ESTIMATORS as LATENCY_ESTIMATORS
    from hwnas.predictors.estimators import LatencyEstimator
    from hwnas.search.base import STRATEGIES, Strategy, list_strategies

    list_strategies()  # imports the built-in strategies
    return {"device": (DEVICES, Device), "latency estimator": (LATENCY_ESTIMATORS, LatencyEstimator),
            "accuracy estimator": (ESTIMATORS, AccuracyEstimator), "strategy": (STRATEGIES, Strategy),
            "loss": (LOSSES, LossComponent)}


REGISTRIES = _registries()
ENTRIES = [(kind, name) for kind, (reg, _) in REGISTRIES.items() for name in reg.names()]


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_each_extension_point_is_a_registry_over_an_abstract_base(kind):
    registry, base = REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    assert inspect.isabstract(base) and base.__abstractmethods__
    assert len(registry.names()) >= 2


@pytest.mark.parametrize("kind, name", ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_every_registered_entry_subclasses_its_base(kind, name):
    registry, base = REGISTRIES[kind]
    try:
        cls = registry.get(name)
    except HwnasError as exc:  # a device whose runtime is not installed here says so in one line
        pytest.skip(str(exc))
    assert issubclass(cls, base) and not inspect.isabstract(cls)


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_unknown_names_and_duplicates_are_refused_in_one_line(kind):
    registry, _ = REGISTRIES[kind]
    with pytest.raises(HwnasError) as info:
        registry.get("no-such-thing")
    message = str(info.value)
    assert message.startswith(f"unknown {kind} 'no-such-thing';") and registry.names()[0] in message
    assert len(message.splitlines()) == 1
    first = registry.names()[0]
    with pytest.raises(InvalidConfig, match=f"a {kind} named '{first}' is already registered"):
        registry.add(first, object)


class _Base:
    pass


class _Child(_Base):
    pass


def test_lazy_targets_are_imported_on_first_get_and_checked_against_the_base():
    reg = Registry("widget", base=_Base, builtins={"child": f"{__name__}:_Child"})
    assert reg.names() == ["child"] and reg.origin("child") == "built-in"
    assert reg.get("child") is _Child
    reg.add("wrong", f"{__name__}:Registry")
    with pytest.raises(InvalidConfig, match=r"widget 'wrong': .*:Registry is not a .*_Base subclass"):
        reg.get("wrong")
    reg.add("missing", "hwnas.no_such_module:Thing")
    with pytest.raises(InvalidConfig, match="widget 'missing' could not be loaded from hwnas.no_such_module:Thing"):
        reg.get("missing")
    reg.add("child", _Child, replace=True)
    assert reg.origin("child") == "registered"
    reg.unregister("child")
    assert "child" not in reg and reg.names() == ["wrong", "missing"]
