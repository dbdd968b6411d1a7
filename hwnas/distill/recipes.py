"""Named distillation recipes: the settings of a distillation that decide how good the student gets.

A recipe fixes the loss menu and its weights (``logits``, ``hidden``, ``attention``,
``value_relation``, ``mi_alpha``, ``task``) and their schedules over training
(``weight_schedule``, see :class:`hwnas.distill.losses.WeightSchedule`), the logits
temperature and its schedule (``temperature`` annealed to ``temperature_end``), the
intermediate-layer mapping
(``uniform``, ``last`` or ``top``), two-stage distillation (``agnostic_steps`` of
task-agnostic distillation on the task's sentences before the task-specific stage),
data augmentation (``augment`` copies per example, ``augment_method`` ``edit`` or
``mlm``), the learning rate and the number of steps; some also fix the teacher's
fine-tuning (``gt-v1``).

``hwnas distill --recipe NAME`` applies one; options typed on the command line override
its fields. A recipe may also be a JSON or YAML file with ``name``, ``description`` and
``settings`` (the same fields). The recipe's name is stored in ``distill_config.json``
and in ``report.json`` (``recipe.name``, with ``recipe.overrides``: the settings that
differ from the recipe), so every result records where its settings came from.

``--recipe auto`` asks :mod:`hwnas.distill.auto` to choose among the
:func:`candidates` from the dataset's features and past runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from hwnas.errors import InvalidConfig

__all__ = ["Recipe", "RECIPES", "RECIPE_FIELDS", "get_recipe", "recipe_settings", "recipe_overrides", "candidates",
           "apply_recipe", "AUTO"]

#: The :class:`~hwnas.distill.api.DistillConfig` fields a recipe may set.
RECIPE_FIELDS = ("losses", "steps", "lr", "batch_size", "max_len", "agnostic_steps", "augment", "augment_method", "init",
                 "teacher_steps", "teacher_epochs", "teacher_eval_every", "teacher_lr")
#: The name that asks the AutoDistiller for a recipe.
AUTO = "auto"


@dataclass(frozen=True)
class Recipe:
    """A named set of distillation settings.

    Args:
        name: how ``--recipe`` names it.
        description: one or two sentences: what it does and where it comes from.
        settings: :data:`RECIPE_FIELDS` values; ``losses`` as a loss-config mapping
            (``{"weights": {...}, "temperature": ..., ...}``, see :mod:`hwnas.distill.losses`).
            Fields left out keep :class:`~hwnas.distill.api.DistillConfig`'s defaults.
        candidate: whether the AutoDistiller may recommend it.
    """

    name: str
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    candidate: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or self.name == AUTO:
            raise InvalidConfig(f"a recipe needs a name other than {AUTO!r}; got {self.name!r}")
        if not isinstance(self.settings, Mapping):
            raise InvalidConfig(f"recipe {self.name!r}: settings must be a mapping; got {type(self.settings).__name__}")
        unknown = sorted(set(self.settings) - set(RECIPE_FIELDS))
        if unknown:
            raise InvalidConfig(f"recipe {self.name!r}: unknown settings {unknown}; a recipe may set: "
                                f"{', '.join(RECIPE_FIELDS)}")
        self.loss_config()  # an unknown loss or a bad weight is one line now

    def loss_config(self):
        """The recipe's :class:`~hwnas.distill.losses.LossConfig` (the default losses when it sets none)."""
        from hwnas.distill.losses import LossConfig

        losses = self.settings.get("losses")
        if losses is None:
            from hwnas.distill.api import DEFAULT_LOSSES

            return LossConfig(weights=dict(DEFAULT_LOSSES))
        return LossConfig.from_dict(losses, where=f"recipe {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "settings": dict(self.settings),
                "candidate": self.candidate}

    @classmethod
    def from_file(cls, path: str | Path) -> Recipe:
        """A recipe from a JSON or YAML file with ``name``, ``description`` and ``settings``."""
        from hwnas._files import read_yaml_or_json

        data = read_yaml_or_json(Path(path), InvalidConfig, "recipe")
        if not isinstance(data, Mapping) or not isinstance(data.get("settings"), Mapping):
            raise InvalidConfig(f"recipe {path}: expected a mapping with 'name', 'description' and 'settings'")
        extra = sorted(set(data) - {"name", "description", "settings", "candidate"})
        if extra:
            raise InvalidConfig(f"recipe {path}: unknown keys {extra}; allowed: name, description, settings, candidate")
        return cls(name=str(data.get("name") or Path(path).stem), description=str(data.get("description", "")),
                   settings=dict(data["settings"]), candidate=bool(data.get("candidate", True)))


def _losses(weights: dict[str, float], **settings: Any) -> dict[str, Any]:
    return {"weights": weights, **settings}


_BASE = {"logits": 1.0, "hidden": 1.0, "attention": 1.0}

#: The named recipes, in the order ``hwnas distill --help`` lists them.
RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("default", "hwnas distill's defaults: logits (T 2) + hidden states + attention, weight 1 each, uniform "
                      "layer mapping, 600 steps at lr 1e-4, one stage, no augmentation; the teacher fine-tuned for "
                      "one epoch."),
    Recipe("gt-v1", "the ground-truth table's recipe (bench/ground_truth/run.py): the default losses, 500 steps, "
                    "batch 32, lr 1e-4, 64 tokens, no augmentation, the teacher fine-tuned for 600 steps and "
                    "evaluated at the end only, and the hidden loss's projection started at random (as before "
                    "the aligned start). Fixed: results in that table depend on it.",
           {"init": "teacher", "losses": _losses(dict(_BASE), hidden_projection="random"), "steps": 500, "batch_size": 32, "lr": 1e-4,
            "max_len": 64, "teacher_steps": 600, "teacher_eval_every": 0, "augment": 0}, candidate=False),
    Recipe("logits-only", "Hinton et al.'s knowledge distillation: the teacher's class distribution at T 2 only.",
           {"losses": _losses({"logits": 1.0})}),
    Recipe("minilm", "MiniLM-style: logits plus last-layer attention and value relations (no hidden-state MSE).",
           {"losses": _losses({"logits": 1.0, "attention": 1.0, "value_relation": 1.0}, layer_map="top")}),
    Recipe("two-stage", "TinyBERT-style two stages: task-agnostic distillation of hidden states and attention on the "
                        "task's sentences (half as many steps as the task stage), then the default task stage.",
           {"agnostic_steps": 300}),
    Recipe("augmented", "the default losses on the data plus one masked-LM word-replacement copy per example "
                        "(the teacher's MLM head where it has one, random vocabulary words otherwise).",
           {"augment": 1, "augment_method": "mlm"}),
    Recipe("annealed", "the default losses with the logits temperature annealed linearly from 4 to 1.",
           {"losses": _losses(dict(_BASE), temperature=4.0, temperature_end=1.0)}),
    Recipe("scheduled", "the default losses with the intermediate-layer losses (hidden states, attention) decayed "
                        "linearly from weight 1 to 0 over training while the logits loss keeps weight 1: the student "
                        "first imitates the teacher's layers, then its predictions (annealing/progressive KD). Not an "
                        "AutoDistiller candidate until the experience table holds runs of it.",
           {"losses": _losses(dict(_BASE), weight_schedule={"hidden": {"shape": "linear", "end": 0.0},
                                                            "attention": {"shape": "linear", "end": 0.0}})},
           candidate=False),
    Recipe("mi-alpha", "Distiller's intermediate objective: logits plus the MI-alpha bound (alpha 0.5, weight 1), "
                       "with one word-edit augmentation copy per example.",
           {"losses": _losses({"logits": 1.0, "mi_alpha": 1.0}), "augment": 1, "augment_method": "edit"}),
)}


def get_recipe(name: str | Path) -> Recipe:
    """The recipe called ``name``, or one read from a ``.json``/``.yaml`` file.

    Raises:
        InvalidConfig: an unknown name (the message lists the known ones), or a bad recipe file.
    """
    text = str(name).strip()
    if text in RECIPES:
        return RECIPES[text]
    if Path(text).suffix.lower() in (".json", ".yaml", ".yml"):
        if not Path(text).is_file():
            raise InvalidConfig(f"recipe file {text} does not exist")
        return Recipe.from_file(text)
    raise InvalidConfig(f"unknown recipe {text!r}; recipes are: {', '.join(RECIPES)}, {AUTO} "
                        "(or a .json/.yaml recipe file)")


def candidates() -> list[Recipe]:
    """The recipes the AutoDistiller chooses among."""
    return [r for r in RECIPES.values() if r.candidate]


def _defaults() -> dict[str, Any]:
    from hwnas.distill.api import DistillConfig

    out = {}
    for f in fields(DistillConfig):
        if f.name in RECIPE_FIELDS and f.name != "losses":
            out[f.name] = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return out


def recipe_settings(recipe: Recipe | str) -> dict[str, Any]:
    """Every :data:`RECIPE_FIELDS` value of ``recipe`` (its own, else the defaults); ``losses`` as a LossConfig."""
    r = get_recipe(recipe) if isinstance(recipe, str) else recipe
    out = {**_defaults(), **{k: v for k, v in r.settings.items() if k != "losses"}}
    out["losses"] = r.loss_config()
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return a == b


def recipe_overrides(config: Any, recipe: Recipe | str) -> dict[str, Any]:
    """The recipe fields whose value in ``config`` (a DistillConfig) differs from ``recipe``'s, as JSON values."""
    want = recipe_settings(recipe)
    out: dict[str, Any] = {}
    for name in RECIPE_FIELDS:
        have = getattr(config, name)
        if name == "losses":
            if have.to_dict() != want["losses"].to_dict():
                out[name] = have.to_dict()
        elif not _same(have, want[name]):
            out[name] = have
    return out


def apply_recipe(recipe: Recipe | str, given: Mapping[str, Any]) -> dict[str, Any]:
    """DistillConfig keyword arguments: ``recipe``'s settings, overridden by ``given`` (explicit settings).

    ``given`` may hold any DistillConfig field; a ``temperature`` entry overrides only the temperature of the
    recipe's losses, and a ``weight_schedule`` entry (a mapping of loss name to schedule; empty: none) only their
    loss-weight schedule (unless ``losses`` is given too). Steps given without task-agnostic steps scale the recipe's
    task-agnostic steps by the same factor (a two-stage recipe stays two-stage in the same proportion). The
    result records the recipe's name.
    """
    r = get_recipe(recipe) if isinstance(recipe, str) else recipe
    out = recipe_settings(r)
    given = dict(given)
    temperature = given.pop("temperature", None)
    schedule = given.pop("weight_schedule", None)
    if "steps" in given and "agnostic_steps" not in given and out["agnostic_steps"]:
        out["agnostic_steps"] = max(1, round(out["agnostic_steps"] * given["steps"] / out["steps"]))
    out.update(given)
    if temperature is not None and "losses" not in given:
        from dataclasses import replace

        out["losses"] = replace(out["losses"], temperature=temperature)
    if schedule is not None and "losses" not in given:
        from dataclasses import replace

        out["losses"] = replace(out["losses"], weight_schedule=dict(schedule))
    out["recipe"] = r.name
    return out
