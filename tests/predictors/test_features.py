"""Named, vectorised features: values against hand computation, totals, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.errors import InvalidArchitecture, InvalidConfig
from hwnas.predictors.features import COMPONENTS, FEATURE_NAMES, INPUTS, feature_frame, featurize, input_array
from hwnas.space import Architecture


def test_every_feature_has_a_real_name():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert not any(name.startswith("feature") for name in FEATURE_NAMES)
    for comp in COMPONENTS:
        for kind in ("flops", "param_bytes", "act_bytes"):
            assert f"{comp}_{kind}" in FEATURE_NAMES


def test_hand_computed_values():
    # layers=2, hidden=8, heads=2, ffn=16, seq_len=4, batch_size=3 -> T = 12 tokens
    x = input_array(np.array([[2, 8, 2, 16]]), seq_len=4, batch_size=3)
    f = dict(zip(FEATURE_NAMES, featurize(x)[0], strict=True))
    assert f["tokens"] == 12
    assert f["head_dim"] == 4
    assert f["qkv_flops"] == 6 * 12 * 8 * 8 * 2  # T x H times H x 3H, two layers
    assert f["attn_scores_flops"] == 2 * 3 * 4 * 4 * 8 * 2  # B * S^2 * H per layer, MAC = 2
    assert f["ffn_up_flops"] == 2 * 12 * 8 * 16 * 2
    assert f["qkv_param_bytes"] == (3 * 64 + 3 * 8) * 4 * 2
    assert f["attn_softmax_act_bytes"] == 2 * 3 * 2 * 16 * 4 * 2
    assert f["heads_layers"] == 2 * 2 * 3


@pytest.mark.parametrize("kind", ["flops", "param_bytes", "act_bytes"])
def test_closed_form_totals_equal_sum_of_components(kind):
    rng = np.random.default_rng(0)
    heads = rng.choice([1, 2, 4], 50)
    x = np.column_stack([rng.integers(1, 12, 50), heads * rng.integers(8, 64, 50), heads,
                         rng.integers(16, 3000, 50), rng.integers(1, 512, 50), rng.integers(1, 8, 50)])
    comps = featurize(x, [f"{c}_{kind}" for c in COMPONENTS]).sum(axis=1)
    total = featurize(x, [f"total_{kind}"])[:, 0]
    np.testing.assert_allclose(total, comps, rtol=1e-12)


def test_encoder_param_bytes_match_parameter_count():
    arch = Architecture(4, 256, 4, 1024)
    f = featurize(input_array([arch]), ["encoder_param_bytes", "total_param_bytes"])[0]
    # Architecture.num_parameters counts embeddings + encoder (fp32: 4 bytes each)
    assert f[1] == arch.num_parameters() * 4
    assert f[0] < f[1]


def test_inputs_from_architectures_equal_inputs_from_array():
    archs = [Architecture(2, 128, 2, 256), Architecture(3, 192, 4, 768)]
    a = input_array(archs, seq_len=64, batch_size=2)
    b = input_array(np.array([a.as_tuple() for a in archs]), seq_len=64, batch_size=2)
    assert a.shape == (2, 6) and np.array_equal(a, b)
    assert list(a[0]) == [2, 128, 2, 256, 64, 2]
    per_row = input_array(np.array([[2, 128, 2, 256]] * 2), seq_len=[32, 64], batch_size=1)
    assert list(per_row[:, 4]) == [32, 64]


def test_costs_grow_with_every_size():
    base = np.array([[2, 256, 4, 1024, 128, 1]])
    f0 = featurize(base, ["total_flops", "total_act_bytes"])[0]
    for col in (0, 1, 3, 4, 5):
        bigger = base.copy()
        bigger[0, col] *= 2
        f1 = featurize(bigger, ["total_flops", "total_act_bytes"])[0]
        assert np.all(f1 > f0), INPUTS[col]


def test_a_million_rows_vectorised():
    x = np.tile(np.array([[2, 256, 4, 1024, 128, 1], [6, 384, 8, 1536, 128, 1]]), (500_000, 1))
    out = featurize(x, ["proj_flops", "layers"])
    assert out.shape == (1_000_000, 2)
    assert out[0, 0] == 8 * 128 * 256 * 256 * 2 and out[1, 1] == 6


def test_frame_has_named_columns():
    df = feature_frame(input_array([Architecture(2, 128, 2, 256)]), ["layers", "total_flops"])
    assert list(df.columns) == ["layers", "total_flops"]


def test_bad_inputs_are_refused():
    with pytest.raises(InvalidArchitecture, match="n x 4"):
        input_array(np.zeros((3, 3), dtype=int))
    with pytest.raises(InvalidArchitecture, match="must be >= 1"):
        input_array(np.array([[0, 128, 2, 256]]))
    with pytest.raises(InvalidArchitecture, match="whole numbers"):
        input_array(np.array([[2.5, 128, 2, 256]]))
    with pytest.raises(InvalidConfig, match="unknown feature"):
        featurize(np.ones((1, 6)), ["feature0"])
    with pytest.raises(InvalidConfig, match="n x 6"):
        featurize(np.ones((1, 4)), ["layers"])
