"""Mixture-of-Supernets experts must specialise: the options that break the symmetry between experts.

With uniform mixing for every architecture and near-identical experts, every expert
gets the same gradient and the mixture stays plain weight sharing (see the module
doc of hwnas.supernet.elastic). These tests train real tiny supernets and check that
the defaults make the experts move apart and the router mix architectures differently,
that the options are recorded, shown and checked on resume, and that students still
collapse into one plain BertModel.
"""

from __future__ import annotations

import json

import pytest
import torch

from hwnas.errors import InvalidConfig
from hwnas.space import Architecture
from hwnas.supernet.elastic import MOS_DEFAULTS, MOS_LEGACY, ElasticBert
from hwnas.supernet.teacher import load_teacher
from tests.supernet.test_cli import run
from tests.supernet.test_elastic import _inputs

ARCHS = [Architecture(1, 32, 2, 64), Architecture(2, 48, 4, 96), Architecture(2, 32, 4, 96), Architecture(1, 48, 2, 64)]
STEPS = 20


@pytest.fixture(scope="module")
def space_file(tmp_path_factory, tiny_space):
    path = tmp_path_factory.mktemp("mosd-space") / "t.json"
    tiny_space.save(path)
    return path


def _train(out, tiny_teacher, corpus, tiny_space, kind, **kwargs):
    from hwnas.supernet import load_supernet
    from hwnas.supernet.train import TrainConfig, train_supernet

    cfg = TrainConfig(space=tiny_space, out=str(out), teacher=str(tiny_teacher), data=str(corpus), steps=STEPS,
                      batch_size=4, seq_len=16, heldout=8, checkpoint_every=STEPS, threads=1, mixture=kind, lr=1e-3,
                      **kwargs)
    train_supernet(cfg)
    return load_supernet(out).model


@pytest.mark.parametrize("kind", ["layer", "neuron"])
def test_experts_diverge_and_mixing_depends_on_the_architecture_with_the_defaults(tmp_path, tiny_teacher, corpus,
                                                                                  tiny_space, kind):
    new = _train(tmp_path / "new", tiny_teacher, corpus, tiny_space, kind)
    old = _train(tmp_path / "old", tiny_teacher, corpus, tiny_space, kind, router_lr_mult=1.0, **MOS_LEGACY)
    # Measured on this machine (20 steps): legacy 1.15e-3 (neuron) / 1.53e-3 (layer), defaults 3.7e-3 / 3.3e-3;
    # mixing spread legacy 0.010 / 0.021, defaults 0.066 / 0.043.
    start = MOS_DEFAULTS["expert_noise"]  # the distance the experts start at
    assert old.expert_distance() < 1.8 * start  # the legacy settings: the experts stay (nearly) copies
    assert new.expert_distance() > 2.5 * start
    assert new.expert_distance() > 1.8 * old.expert_distance()
    a, b = new.mixing(ARCHS[0]), new.mixing(ARCHS[1])
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 0.05  # two architectures, two mixtures
    assert new.mixing_spread(ARCHS) > 1.8 * old.mixing_spread(ARCHS)


def test_uniform_router_and_identical_experts_get_identical_updates(tiny_teacher, tiny_space):
    """The gradient argument itself: zero router output layer and exact copies -> equal expert gradients."""
    teacher = load_teacher(str(tiny_teacher))
    m = ElasticBert(tiny_space.largest, teacher.config, mixture="layer", experts=2, router_hidden=16,
                    router_init=0.0, expert_noise=0.0)
    m.reset_parameters(0)
    m.init_from_teacher(teacher.model)
    m.init_experts(0)
    ids, mask = _inputs(teacher.config.vocab_size)

    def grads():
        m.zero_grad()
        for arch in ARCHS[:2]:
            h = m(ids, mask, arch).last_hidden_state
            (h * torch.linspace(-1, 1, h.shape[-1])).pow(2).sum().backward()
        g0, g1 = m.layers[0].ffn_in.weight.grad, m.layers[0].ffn_in_xw.grad[0]
        assert g0.norm() > 1e-3
        return float((g0 - g1).norm() / g0.norm())

    assert grads() < 1e-5
    m.router_init = m.router.init = 1.0  # a random router output layer breaks the symmetry at once
    m.router.reset(torch.Generator().manual_seed(1))
    assert grads() > 1e-2


OPTS = ["--router-lr-mult", "3", "--router-init", "0.5", "--router-temperature", "0.5", "--expert-init", "random",
        "--expert-noise", "0.02"]


def _cli_train(tiny_teacher, space_file, corpus, out, steps, *flags):
    return ["supernet", "train", "--teacher", str(tiny_teacher), "--space", str(space_file), "--data", str(corpus),
            "--steps", str(steps), "--batch-size", "4", "--max-len", "16", "--heldout", "8", "--threads", "1",
            "--checkpoint-every", "1", "--mixture", "layer", "--router-hidden", "8", *flags, "--out", str(out)]


def test_options_are_recorded_shown_loaded_and_checked_on_resume(tmp_path, tiny_teacher, space_file, corpus, capsys):
    from hwnas.supernet import load_supernet

    out = tmp_path / "sn"
    code, _, err = run(_cli_train(tiny_teacher, space_file, corpus, out, 2, *OPTS), capsys)
    assert code in (0, None), err
    meta = json.loads((out / "supernet.json").read_text())
    assert meta["mixture"] == {"kind": "layer", "experts": 2, "router_hidden": 8, "mix_attention": False,
                               "router_init": 0.5, "router_temperature": 0.5, "expert_init": "random",
                               "expert_noise": 0.02}
    assert meta["train"]["router_lr_mult"] == 3
    model = load_supernet(out).model
    assert (model.router_temperature, model.router.temperature, model.expert_init) == (0.5, 0.5, "random")
    code, stdout, err = run(["supernet", "info", str(out)], capsys)
    assert code in (0, None), err
    assert "router lr x3, router init 0.5, temperature 0.5, experts start random 0.02" in stdout
    code, _, err = run(_cli_train(tiny_teacher, space_file, corpus, out, 3, *OPTS, "--resume"), capsys)
    assert code in (0, None), err
    assert json.loads((out / "supernet.json").read_text())["steps_done"] == 3
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for flags, message in ((["--router-temperature", "0.7"], "router_temperature was 0.5 in the checkpoint but is 0.7"),
                           (["--router-lr-mult", "1"], "router_lr_mult was 3.0 in the checkpoint but is 1.0")):
        changed = list(OPTS)
        changed[changed.index(flags[0]) + 1] = flags[1]
        code, _, err = run(_cli_train(tiny_teacher, space_file, corpus, out, 4, *changed, "--resume"), capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_folder_written_before_the_options_loads_with_their_legacy_values(tmp_path, tiny_teacher, space_file, corpus,
                                                                             capsys):
    from hwnas.supernet import load_supernet

    out = tmp_path / "old"
    code, _, err = run(_cli_train(tiny_teacher, space_file, corpus, out, 1, "--router-init", "0"), capsys)
    assert code in (0, None), err
    meta = json.loads((out / "supernet.json").read_text())
    meta["mixture"] = {k: meta["mixture"][k] for k in ("kind", "experts", "router_hidden", "mix_attention")}
    (out / "supernet.json").write_text(json.dumps(meta))
    model = load_supernet(out).model
    assert {k: getattr(model, k) for k in MOS_LEGACY} == MOS_LEGACY
    code, stdout, _ = run(["supernet", "info", str(out)], capsys)
    assert "router init 0, temperature 1, experts start noise 0.001" in stdout


@pytest.mark.parametrize("flags,message", [
    (["--mixture", "layer", "--router-lr-mult", "-1"], "router_lr_mult must be a number in (0, 1000]"),
    (["--mixture", "layer", "--router-lr-mult", "1e9"], "router_lr_mult must be a number in (0, 1000]"),
    (["--mixture", "neuron", "--router-init", "-0.5"], "router_init must be a number from 0 to 100"),
    (["--mixture", "neuron", "--router-init", "nan"], "router_init must be a number from 0 to 100"),
    (["--mixture", "layer", "--router-temperature", "0"], "router_temperature must be a number from 0.01 to 100"),
    (["--mixture", "layer", "--expert-noise", "-1"], "expert_noise must be a number from 0 to 10"),
    (["--mixture", "layer", "--expert-noise", "1e6"], "expert_noise must be a number from 0 to 10"),
    (["--mixture", "layer", "--expert-init", "random", "--expert-noise", "0"], "expert_init random needs expert_noise > 0"),
    (["--router-init", "2"], "--router-init: --experts, --mix-attention, --router-* and --expert-* need --mixture"),
])
def test_bad_specialisation_options_are_one_line_and_write_nothing(tmp_path, tiny_teacher, corpus, capsys, flags,
                                                                   message):
    code, _, err = run(["supernet", "train", "--teacher", str(tiny_teacher), "--space", "tiny", "--data", str(corpus),
                        "--steps", "2", "--max-len", "16", *flags, "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_bad_options_in_the_api_raise_invalid_config(tiny_teacher, tiny_space):
    teacher = load_teacher(str(tiny_teacher))
    for kwargs in ({"router_temperature": float("inf")}, {"router_init": True}, {"expert_init": "copy"}):
        with pytest.raises(InvalidConfig):
            ElasticBert(tiny_space.largest, teacher.config, mixture="layer", **kwargs)


@pytest.mark.parametrize("kind", ["layer", "neuron"])
def test_students_still_collapse_into_a_plain_bert_with_the_new_options(tiny_teacher, tiny_space, kind):
    teacher = load_teacher(str(tiny_teacher))
    torch.manual_seed(0)
    m = ElasticBert(tiny_space.largest, teacher.config, mixture=kind, experts=3, router_hidden=16, mix_attention=True,
                    router_init=3.0, router_temperature=0.3, expert_init="random", expert_noise=1.0)
    m.reset_parameters(0)
    m.init_from_teacher(teacher.model)
    m.init_experts(0)
    m.eval()
    ids, mask = _inputs(teacher.config.vocab_size)
    for arch in ARCHS[:3]:
        student = m.extract(arch)
        with torch.no_grad():
            ours = m(ids, mask, arch).last_hidden_state
            theirs = student(input_ids=ids, attention_mask=mask).last_hidden_state
        assert (ours - theirs)[mask.bool()].abs().max() < 1e-5


def test_a_checkpoint_written_before_the_options_resumes_only_with_their_legacy_values(tmp_path, tiny_space):
    from hwnas.supernet.train import TrainConfig, _check_resume

    new_keys = ("router_lr_mult", *MOS_LEGACY)
    old = {k: v for k, v in TrainConfig(space=tiny_space, out=str(tmp_path), mixture="neuron").record().items()
           if k not in new_keys}
    with pytest.raises(InvalidConfig, match="router_init was 0.0 in the checkpoint but is 3.0 now"):
        _check_resume(old, TrainConfig(space=tiny_space, out=str(tmp_path), mixture="neuron"))
    _check_resume(old, TrainConfig(space=tiny_space, out=str(tmp_path), mixture="neuron", router_init=0.0))
    plain = {k: v for k, v in TrainConfig(space=tiny_space, out=str(tmp_path)).record().items() if k not in new_keys}
    _check_resume(plain, TrainConfig(space=tiny_space, out=str(tmp_path)))  # plain: the options are not compared
