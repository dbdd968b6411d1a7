"""Mixture-of-Supernets: architecture-routed expert weights that still collapse into one plain BERT."""

from __future__ import annotations

import json

import pytest
import torch

from hwnas.errors import InvalidConfig
from hwnas.space import Architecture
from hwnas.supernet.elastic import ElasticBert
from hwnas.supernet.teacher import load_teacher
from tests.supernet.test_cli import run
from tests.supernet.test_elastic import _inputs

ARCHS = [Architecture(1, 32, 2, 64), Architecture(2, 48, 4, 96), Architecture(2, 32, 4, 96)]


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return load_teacher(str(tiny_teacher))


def _mos(teacher, space, kind, *, attention=False, scramble=True, router_init=None):
    torch.manual_seed(0)
    extra = {} if router_init is None else {"router_init": router_init}
    m = ElasticBert(space.largest, teacher.config, mixture=kind, experts=3, router_hidden=16, mix_attention=attention,
                    **extra)
    m.init_from_teacher(teacher.model)
    m.init_experts(0)
    if scramble:  # a trained-looking router and diverged experts: every architecture mixes differently
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for name, p in m.named_parameters():
                if name.startswith("router.") or "_x" in name:
                    p.add_(torch.randn(p.shape, generator=g) * (0.5 if name.startswith("router.") else 0.05))
    return m.eval()


@pytest.mark.parametrize("kind,attention", [("layer", False), ("neuron", False), ("neuron", True)])
@pytest.mark.parametrize("arch", ARCHS)
def test_extracted_student_equals_the_in_supernet_forward(teacher, tiny_space, kind, attention, arch, tmp_path):
    from transformers import AutoModel

    m = _mos(teacher, tiny_space, kind, attention=attention)
    ids, mask = _inputs(teacher.config.vocab_size)
    student = m.extract(arch)
    with torch.no_grad():
        ours = m(ids, mask, arch).last_hidden_state
        theirs = student(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (ours - theirs)[mask.bool()].abs().max() < 1e-5
    student.save_pretrained(tmp_path / "s")
    reloaded = AutoModel.from_pretrained(tmp_path / "s").eval()
    with torch.no_grad():
        again = reloaded(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (ours - again)[mask.bool()].abs().max() < 1e-5


def test_mixing_depends_on_the_architecture_and_layer_and_neuron_shapes_differ(teacher, tiny_space):
    layer = _mos(teacher, tiny_space, "layer")
    neuron = _mos(teacher, tiny_space, "neuron")
    a, b = ARCHS[0], ARCHS[1]
    la, lb = layer.mixing(a), layer.mixing(b)
    assert la["l0_ffn_in"].shape == (3,) and torch.allclose(la["l0_ffn_in"].sum(), torch.tensor(1.0))
    assert not torch.allclose(la["l0_ffn_in"], lb["l0_ffn_in"])  # another architecture, another mixture
    na = neuron.mixing(a)
    assert na["l0_ffn_in"].shape == (3, tiny_space.largest.ffn) and na["l1_ffn_out"].shape == (3, tiny_space.largest.hidden)
    assert torch.allclose(na["l0_ffn_in"].sum(0), torch.ones(tiny_space.largest.ffn))
    assert "l0_query" not in na  # attention is mixed only when asked


def test_training_starts_from_uniform_mixing_near_the_teacher_slice(teacher, tiny_space):
    """With router_init 0 (the legacy start; the default router starts random, see test_mos_diverge.py)."""
    plain = ElasticBert(tiny_space.largest, teacher.config)
    plain.init_from_teacher(teacher.model)
    mos = _mos(teacher, tiny_space, "neuron", scramble=False, router_init=0.0)
    for arch in ARCHS:
        for w in mos.mixing(arch).values():
            assert torch.allclose(w, torch.full_like(w, 1 / 3))
    ids, mask = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        diff = (mos(ids, mask, ARCHS[1]).last_hidden_state - plain.eval()(ids, mask, ARCHS[1]).last_hidden_state).abs().max()
    assert 0 < diff < 1e-2  # the experts are perturbed copies: close to the teacher, not identical
    extra = mos.layers[0].ffn_in_xw
    assert not torch.equal(extra[0], mos.layers[0].ffn_in.weight) and not torch.equal(extra[0], extra[1])


def test_gradients_reach_the_router_and_every_expert(teacher, tiny_space):
    m = _mos(teacher, tiny_space, "layer", scramble=True).train()
    ids, mask = _inputs(teacher.config.vocab_size)
    m(ids, mask, ARCHS[1]).last_hidden_state.pow(2).mean().backward()
    assert m.router.heads["l0_ffn_in"].weight.grad.abs().sum() > 0
    assert m.layers[1].ffn_out_xw.grad.abs().sum() > 0 and m.layers[1].ffn_out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs,message", [
    ({"mixture": "layer", "experts": 1}, "needs experts >= 2"),
    ({"mixture": "layer", "experts": 1000}, "experts must be an integer from 1 to 16"),
    ({"mixture": "tokens"}, "mixture must be one of none, layer, neuron"),
])
def test_bad_mixture_settings_are_refused(teacher, tiny_space, kwargs, message):
    with pytest.raises(InvalidConfig, match=message):
        ElasticBert(tiny_space.largest, teacher.config, **kwargs)


@pytest.fixture(scope="module")
def mos_dir(tmp_path_factory, tiny_teacher, corpus, tiny_space):
    space_file = tmp_path_factory.mktemp("mos-space") / "t.json"
    tiny_space.save(space_file)
    out = tmp_path_factory.mktemp("mos") / "sn"
    from hwnas.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["supernet", "train", "--teacher", str(tiny_teacher), "--space", str(space_file), "--data", str(corpus),
              "--steps", "3", "--batch-size", "4", "--max-len", "16", "--heldout", "8", "--threads", "1",
              "--checkpoint-every", "2", "--mixture", "neuron", "--experts", "2", "--router-hidden", "8",
              "--out", str(out)])
    assert exc.value.code == 0
    return out, space_file


def test_a_trained_mixture_is_recorded_loaded_scored_and_extracted(mos_dir, capsys, tmp_path):
    from hwnas.supernet import load_supernet
    from hwnas.supernet.estimate import SupernetEstimator

    out, _ = mos_dir
    meta = json.loads((out / "supernet.json").read_text())
    assert meta["mixture"] == {"kind": "neuron", "experts": 2, "router_hidden": 8, "mix_attention": False,
                               "router_init": 3.0, "router_temperature": 1.0, "expert_init": "noise", "expert_noise": 0.001}
    sn = load_supernet(out)
    assert sn.model.mixture == "neuron" and sn.model.router is not None
    scores = SupernetEstimator(sn, "loss", cache=False).score(ARCHS)
    assert torch.isfinite(torch.as_tensor(scores)).all()
    code, stdout, err = run(["supernet", "info", str(out)], capsys)
    assert code in (0, None) and "neuron-wise Mixture-of-Supernets: 2 experts per FFN matrix" in stdout, err
    code, _, err = run(["supernet", "extract", str(out), "--arch", ARCHS[1].key, "--out", str(tmp_path / "st")], capsys)
    assert code in (0, None), err
    from transformers import AutoModel

    assert AutoModel.from_pretrained(tmp_path / "st").config.intermediate_size == ARCHS[1].ffn


@pytest.mark.parametrize("flags,message", [
    (["--mixture", "none"], "cannot resume: mixture was 'neuron' in the checkpoint but is 'none' now"),
    (["--mixture", "neuron", "--experts", "3"], "cannot resume: experts was 2 in the checkpoint but is 3 now"),
])
def test_resuming_with_another_mixture_is_one_line_and_touches_nothing(mos_dir, tiny_teacher, corpus, capsys, flags,
                                                                        message):
    out, space_file = mos_dir
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    extra = ["--router-hidden", "8"] if "neuron" in flags else []
    code, _, err = run(["supernet", "train", "--teacher", str(tiny_teacher), "--space", str(space_file), "--data",
                        str(corpus), "--steps", "4", "--batch-size", "4", "--max-len", "16", "--heldout", "8",
                        "--threads", "1", "--checkpoint-every", "2", *flags, *extra, "--out", str(out), "--resume"],
                       capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("flags,message", [
    (["--experts", "0", "--mixture", "layer"], "experts must be an integer from 1 to 16; got 0"),
    (["--experts", "100000", "--mixture", "neuron"], "experts must be an integer from 1 to 16"),
    (["--experts", "4"], "--experts: --experts, --mix-attention, --router-* and --expert-* need --mixture layer or --mixture neuron"),
    (["--heldout", "0"], "--heldout must be an integer >= 1"),
])
def test_bad_mixture_flags_are_one_line(tmp_path, tiny_teacher, corpus, capsys, flags, message):
    code, _, err = run(["supernet", "train", "--teacher", str(tiny_teacher), "--space", "tiny", "--data", str(corpus),
                        "--steps", "2", "--max-len", "16", *flags, "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "x").exists()


def test_a_mixture_whose_weight_file_was_altered_is_refused(mos_dir, tmp_path):
    import shutil

    from hwnas.supernet import load_supernet

    out, _ = mos_dir
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InvalidConfig, match="does not match the checksum"):
        load_supernet(copy)
