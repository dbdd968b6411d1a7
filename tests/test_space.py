import json

import pytest

from hwnas.errors import InvalidArchitecture, InvalidSpace
from hwnas.space import (
    BUILTIN_SPACES,
    DIMENSIONS,
    Architecture,
    SearchSpace,
    get_space,
    load_architectures,
)


# ----------------------------------------------------------------- Architecture
def test_architecture_basic_properties():
    a = Architecture(4, 256, 4, 1024)
    assert a.head_dim == 64
    assert a.key == "layers=4,hidden=256,heads=4,ffn=1024"
    assert Architecture.parse(a.key) == a
    assert Architecture.parse("L4-H256-A4-I1024") == a
    assert Architecture.from_dict({"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024}) == a


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(layers=0, hidden=256, heads=4, ffn=1024), "layers must be a positive integer; got layers=0"),
        (dict(layers=2, hidden=-8, heads=4, ffn=1024), "hidden must be a positive integer"),
        (dict(layers=2, hidden=256, heads=4, ffn=0), "ffn must be a positive integer"),
        (dict(layers=2.5, hidden=256, heads=4, ffn=1024), "layers must be a positive integer; got 2.5"),
        (dict(layers=True, hidden=256, heads=4, ffn=1024), "layers must be a positive integer"),
        (dict(layers=2, hidden=200, heads=12, ffn=1024), "heads must divide hidden; got hidden=200, heads=12"),
    ],
)
def test_architecture_validation_errors(kwargs, fragment):
    with pytest.raises(InvalidArchitecture, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Architecture(**kwargs)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("layers=4,hidden=256,heads=4", "lacks ffn"),
        ("layers4,hidden=256", "expected key=value pairs"),
        ("layers=four,hidden=256,heads=4,ffn=1", "layers must be an integer"),
        ("layers=4,layers=4,hidden=256,heads=4,ffn=1", "layers is given twice"),
    ],
)
def test_architecture_parse_errors(text, fragment):
    with pytest.raises(InvalidArchitecture, match=fragment):
        Architecture.parse(text)


def test_from_dict_duplicate_alias_and_non_mapping():
    with pytest.raises(InvalidArchitecture, match="given twice"):
        Architecture.from_dict({"layers": 2, "num_hidden_layers": 3, "hidden": 64, "heads": 2, "ffn": 64})
    with pytest.raises(InvalidArchitecture, match="must be a mapping"):
        Architecture.from_dict([1, 2, 3, 4])


def test_bert_config_round_trip_and_parameter_count():
    import torch
    from transformers import BertModel

    a = Architecture(2, 64, 4, 128)
    cfg = a.to_bert_config(vocab_size=100, max_position_embeddings=32)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (2, 64, 4, 128)
    model = BertModel(cfg, add_pooling_layer=False)
    n = sum(p.numel() for p in model.parameters())
    assert n == a.num_parameters(vocab_size=100, max_positions=32)
    out = model(input_ids=torch.zeros(1, 5, dtype=torch.long)).last_hidden_state
    assert out.shape == (1, 5, 64)


# ----------------------------------------------------------------- SearchSpace
def test_builtin_spaces_are_valid_and_ordered():
    assert set(BUILTIN_SPACES) == {"tiny", "small", "base", "full"}
    full = BUILTIN_SPACES["full"]
    assert full.largest == Architecture(12, 768, 12, 3072)
    for sp in BUILTIN_SPACES.values():
        assert len(sp) == len(sp.enumerate()) > 0
        assert all(a.hidden % a.heads == 0 for a in sp)
        assert sp.smallest in sp and sp.largest in sp
        for dim in DIMENSIONS:
            assert list(sp.choices(dim)) == sorted(set(sp.choices(dim)))
    # sub-spaces grow: every tiny arch is smaller than every base arch
    assert max(a.num_parameters() for a in BUILTIN_SPACES["tiny"]) < min(a.num_parameters() for a in BUILTIN_SPACES["base"])


def test_validate_names_the_dimension_and_allowed_values():
    sp = get_space("small")
    with pytest.raises(InvalidArchitecture, match=r"layers=12 is outside space 'small'; allowed layers: 2\.\.6 step 1"):
        sp.validate("layers=12,hidden=256,heads=4,ffn=1024")
    assert "layers=12,hidden=256,heads=4,ffn=1024" not in sp
    assert sp.validate({"layers": 2, "hidden": 256, "heads": 4, "ffn": 1024}) == Architecture(2, 256, 4, 1024)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"name": "x", "layers": [1], "hidden": [64], "heads": [2]}, "missing ffn"),
        ({"name": "x", "layers": [1], "hidden": [64], "heads": [2], "ffn": [64], "depth": 3}, "unknown keys"),
        ({"name": "x", "layers": [], "hidden": [64], "heads": [2], "ffn": [64]}, "layers has no allowed values"),
        ({"name": "x", "layers": [0], "hidden": [64], "heads": [2], "ffn": [64]}, "must be a positive integer"),
        ({"name": "x", "layers": {"min": 4, "max": 2}, "hidden": [64], "heads": [2], "ffn": [64]}, "min <= max"),
        ({"name": "x", "layers": {"min": 1}, "hidden": [64], "heads": [2], "ffn": [64]}, "mapping with min, max"),
        ({"name": "x", "layers": {"min": 1, "max": 2.5}, "hidden": [64], "heads": [2], "ffn": [64]}, "layers.max must be an integer"),
        ({"name": "x", "layers": "many", "hidden": [64], "heads": [2], "ffn": [64]}, "must be a list of integers"),
        ({"name": "x", "layers": [1], "hidden": [50], "heads": [4], "ffn": [64]}, "no valid architecture"),
        ({"name": "x", "layers": [1], "hidden": [64, 50], "heads": [4], "ffn": [64]}, r"hidden values \[50\] are not divisible"),
        ({"name": "bad name!", "layers": [1], "hidden": [64], "heads": [4], "ffn": [64]}, "space name must be"),
        ([1, 2], "a space must be a mapping"),
    ],
)
def test_space_definition_errors(data, fragment):
    with pytest.raises(InvalidSpace, match=fragment):
        SearchSpace.from_dict(data)


def test_space_file_round_trip_yaml_and_json(tmp_path):
    sp = SearchSpace(name="mine", layers={"min": 1, "max": 3}, hidden=[64, 128], heads=[2, 4], ffn={"min": 128, "max": 512, "step": 128})
    assert sp.layers == (1, 2, 3) and sp.ffn == (128, 256, 384, 512)
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"space{suffix}"
        sp.save(path)
        again = get_space(str(path))
        assert again == sp and again.enumerate() == sp.enumerate()


def test_space_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [1, 2\nhidden: [64]\n")
    with pytest.raises(InvalidSpace, match="is not valid YAML"):
        get_space(str(bad))
    badjson = tmp_path / "bad.json"
    badjson.write_text("{not json")
    with pytest.raises(InvalidSpace, match="is not valid JSON"):
        get_space(str(badjson))
    with pytest.raises(InvalidSpace, match="does not exist"):
        get_space(str(tmp_path / "missing.yaml"))
    with pytest.raises(InvalidSpace, match="unknown space 'huge'; built-in spaces are tiny, small, base, full"):
        get_space("huge")
    nameless = tmp_path / "nameless.json"
    nameless.write_text(json.dumps({"layers": [1], "hidden": [64], "heads": [2], "ffn": [64]}))
    assert get_space(str(nameless)).name == "nameless"


# -------------------------------------------------------------------- sampling
@pytest.mark.parametrize("plan", ["lhs", "random"])
def test_sampling_is_seeded_unique_and_in_space(plan):
    sp = get_space("small")
    a = sp.sample(60, plan=plan, seed=3)
    b = sp.sample(60, plan=plan, seed=3)
    c = sp.sample(60, plan=plan, seed=4)
    assert a == b
    assert a != c
    assert len(set(a)) == 60
    assert all(x in sp for x in a)


def test_lhs_contains_corners_and_covers_every_value():
    sp = get_space("small")
    plan = sp.sample_lhs(60, seed=0)
    for corner in sp.corners():
        assert corner in plan
    assert sp.smallest in plan and sp.largest in plan
    for dim in DIMENSIONS:
        assert {getattr(a, dim) for a in plan} == set(sp.choices(dim)), dim


def test_lhs_is_more_even_than_random_on_layers():
    import numpy as np

    sp = get_space("full")

    def spread(plan):  # standard deviation of how often each of the 12 layer counts is used
        return float(np.bincount([a.layers for a in plan], minlength=13)[1:].std())

    lhs = [spread(sp.sample_lhs(120, seed=s)) for s in range(8)]
    rnd = [spread(sp.sample_random(120, seed=s)) for s in range(8)]
    # 120 points over 12 strata: random sampling spreads about sqrt(10) ~ 3 around 10 per stratum
    assert np.mean(lhs) < 0.5 * np.mean(rnd)
    assert sum(a < b for a, b in zip(lhs, rnd, strict=True)) >= 7


def test_sampling_caps_at_space_size_and_rejects_bad_counts():
    sp = SearchSpace(name="mini", layers=[1, 2], hidden=[64], heads=[2], ffn=[64])
    assert len(sp.sample(10, plan="lhs")) == 2
    assert len(sp.sample(10, plan="random")) == 2
    with pytest.raises(InvalidSpace, match="number of samples must be an integer >= 1; got 0"):
        sp.sample(0)
    with pytest.raises(InvalidSpace, match="unknown sampling plan 'sobol'"):
        sp.sample(3, plan="sobol")


# ------------------------------------------------------------ architecture files
def test_load_architectures_all_formats(tmp_path):
    a, b = Architecture(2, 64, 2, 128), Architecture(3, 128, 4, 256)
    txt = tmp_path / "a.txt"
    txt.write_text(f"# two students\n{a.key}\n\nL3-H128-A4-I256  # compact form\n")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps(a.as_dict()) + "\n" + json.dumps({"arch": b.as_dict(), "score": 1}) + "\n")
    js = tmp_path / "a.json"
    js.write_text(json.dumps({"architectures": [a.as_dict(), b.as_dict()]}))
    winner = tmp_path / "winner.json"
    winner.write_text(json.dumps({"arch": b.as_dict(), "latency_ms": 3.0}))
    for path in (txt, jsonl, js):
        assert load_architectures(path) == [a, b]
    assert load_architectures(winner) == [b]


def test_load_architectures_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("layers=2,hidden=64,heads=2,ffn=64\nlayers=2,hidden=100,heads=3,ffn=64\n")
    with pytest.raises(InvalidArchitecture, match=r"bad\.txt, line 2: heads must divide hidden"):
        load_architectures(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(InvalidArchitecture, match="holds no architecture"):
        load_architectures(empty)
    with pytest.raises(InvalidArchitecture, match="does not exist"):
        load_architectures(tmp_path / "nope.txt")


def test_short_lhs_plan_still_spans_the_space():
    sp = get_space("tiny")
    plan = sp.sample_lhs(6, seed=0)
    assert len(plan) == len(set(plan)) == 6
    assert sp.smallest in plan and sp.largest in plan
    assert len({a.layers for a in plan}) > 1  # not only the 1-layer corners
