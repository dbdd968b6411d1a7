"""The learned estimator's mechanics on synthetic tables (real XGBoost, real files).

The tables here are fixtures with a known relation (:func:`synthetic_accuracy`), not
measurements: the tests check that the ranker learns a relation it is shown, that
files round-trip exactly, and that every bad input is refused with the right error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from hwnas.errors import (
    InvalidArchitecture,
    InvalidConfig,
    InvalidData,
    PredictorMismatch,
)
from hwnas.estimators import make_estimator
from hwnas.estimators.learned import (
    FEATURES,
    FORMAT_VERSION,
    LearnedRanker,
    arch_features,
    fit_learned,
    load_learned,
    read_ground_truth,
)
from hwnas.space import Architecture, SearchSpace
from tests.estimators.conftest import synthetic_accuracy, write_synthetic_table

SPACE = SearchSpace(name="syn", layers=(1, 2, 3, 4), hidden=(64, 96, 128, 160, 192, 224, 256), heads=(2, 4),
                    ffn=(128, 256, 384, 512))
OTHER = SearchSpace(name="t", layers=(1, 2), hidden=(32, 48), heads=(2, 4), ffn=(64, 96))


def _sample(n: int = 48, seed: int = 0) -> list[Architecture]:
    return SPACE.sample_random(n, seed=seed)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learned")
    table = write_synthetic_table(folder / "gt.csv", _sample(), bands=4, space="syn")
    return table, fit_learned(table, task="sst2", space=SPACE, out=folder / "model")


def test_features_are_named_and_computed_in_order():
    a = Architecture(2, 128, 4, 512)
    row = dict(zip(FEATURES, arch_features([a])[0], strict=True))
    assert row["layers"] == 2 and row["hidden"] == 128 and row["head_dim"] == 32 and row["ffn_per_hidden"] == 4
    assert row["log10_params"] == pytest.approx(np.log10(a.num_parameters()))


def _held_out_taus(table) -> list[float]:
    """Kendall tau of each band, scored by a ranker fitted on the other bands."""
    truth = read_ground_truth(table, task="sst2")
    taus = []
    for band in sorted(set(truth.bands)):
        held = [i for i, b in enumerate(truth.bands) if b == band]
        rest = [i for i, b in enumerate(truth.bands) if b != band]
        scores = LearnedRanker().fit(truth.subset(rest), SPACE).predict([truth.archs[i] for i in held])
        taus.append(float(kendalltau(scores, truth.accuracy[held]).statistic))
    return taus


def test_learns_a_known_relation_and_ranks_each_held_out_band(tmp_path):
    taus = _held_out_taus(write_synthetic_table(tmp_path / "gt.csv", _sample(), bands=4, space="syn"))
    assert min(taus) > 0.7, taus  # the relation is monotone; chance would sit near 0


def test_unrelated_labels_are_not_learned(tmp_path):
    """The converse: with accuracy unrelated to the shape, held-out ranking is near chance (the test above can fail)."""
    rng = np.random.default_rng(1)
    noise = {a.key: float(rng.uniform(0.5, 0.9)) for a in _sample()}
    taus = _held_out_taus(write_synthetic_table(tmp_path / "gt.csv", _sample(), bands=4, space="syn",
                                                accuracy=lambda a: noise[a.key]))
    assert abs(float(np.mean(taus))) < 0.4, taus


def test_round_trip_gives_identical_scores_and_a_complete_manifest(fitted, tmp_path):
    table, result = fitted
    est = make_estimator("learned", path=str(result.out))
    archs = SPACE.sample_random(40, seed=5)
    again = make_estimator("learned", path=str(result.out))
    np.testing.assert_array_equal(est.score(archs), again.score(archs))
    m = json.loads((result.out / "manifest.json").read_text())
    assert m["features"] == list(FEATURES) and m["space"] == SPACE.to_dict() and m["tasks"] == ["sst2"]
    assert m["table"]["rows"] == 48 and m["table"]["students"] == 48 and len(m["table"]["bands"]) == 4
    assert m["format_version"] == FORMAT_VERSION and m["hwnas"] and m["xgboost"]
    import hashlib

    assert m["table"]["sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    assert est.label.startswith("learned:syn/sst2@")
    assert not list(result.out.glob("*.pkl")) and sorted(p.name for p in result.out.iterdir()) == [
        "hwnas.json", "manifest.json", "model.json"]


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_model_is_refused(fitted, tmp_path):
    folder = _copy(fitted[1].out, tmp_path / "m")
    data = (folder / "model.json").read_bytes()
    (folder / "model.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidData, match="does not match the checksum"):
        load_learned(folder)


def test_garbage_model_with_a_matching_checksum_is_refused(fitted, tmp_path):
    import hashlib

    folder = _copy(fitted[1].out, tmp_path / "m")
    (folder / "model.json").write_bytes(b'{"not": "a model"}')
    m = json.loads((folder / "manifest.json").read_text())
    m["model_sha256"] = hashlib.sha256(b'{"not": "a model"}').hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InvalidData, match="not an XGBoost model"):
        load_learned(folder)


@pytest.mark.parametrize("change,fragment", [
    (lambda m: m.update(format_version=FORMAT_VERSION + 1), "newer than this hwnas reads"),
    (lambda m: m.update(features=["layers", "hidden"]), "refit it"),
    (lambda m: m.update(format="something-else"), "not a learned-estimator manifest"),
    (lambda m: m.pop("space"), "lacks 'space'"),
])
def test_manifest_problems_are_refused(fitted, tmp_path, change, fragment):
    folder = _copy(fitted[1].out, tmp_path / "m")
    m = json.loads((folder / "manifest.json").read_text())
    change(m)
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InvalidData, match=fragment):
        make_estimator("learned", path=str(folder))


def test_manifest_that_is_not_json_and_missing_folder_are_refused(fitted, tmp_path):
    folder = _copy(fitted[1].out, tmp_path / "m")
    (folder / "manifest.json").write_text("{ not json")
    with pytest.raises(InvalidData, match="corrupt"):
        load_learned(folder)
    with pytest.raises(InvalidData, match="is not a folder"):
        load_learned(tmp_path / "absent")


def test_another_space_and_architectures_outside_it_are_refused(fitted):
    est = make_estimator("learned", path=str(fitted[1].out))
    est.check_space(SPACE)  # its own space: fine
    with pytest.raises(PredictorMismatch, match="fitted on space 'syn' but the search is over space 't'"):
        est.check_space(OTHER)
    with pytest.raises(InvalidArchitecture, match="outside space 'syn'"):
        est.score([Architecture(6, 384, 4, 1536)])


def test_learned_without_a_model_names_the_flag():
    with pytest.raises(InvalidConfig, match="--estimator-path"):
        make_estimator("learned")


def _rows(path):
    return path.read_text().splitlines()


@pytest.mark.parametrize("edit,fragment", [
    (lambda lines: lines + [lines[1]], "appears twice"),
    (lambda lines: [lines[0].replace("accuracy", "acc")] + lines[1:], "lacks columns accuracy"),
    (lambda lines: [lines[0], lines[1].replace(lines[1].split(",")[-2], ""), *lines[2:]], "missing accuracy"),
    (lambda lines: [lines[0]], "holds no row of task 'sst2'"),
    (lambda lines: lines[:4], "too few students"),
    (lambda lines: [lines[0], lines[1], lines[1].replace(",0,synthetic", ",1,synthetic").replace("syn-b0", "syn-b1"),
                    *lines[2:]], "belongs to one band"),
])
def test_bad_tables_are_refused(tmp_path, edit, fragment):
    table = write_synthetic_table(tmp_path / "gt.csv", _sample(), bands=4, space="syn")
    table.write_text("\n".join(edit(_rows(table))) + "\n")
    with pytest.raises(InvalidData, match=fragment):
        fit_learned(table, task="sst2", space=SPACE, out=tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_bad_table_leaves_an_existing_model_untouched(fitted, tmp_path):
    folder = _copy(fitted[1].out, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(_rows(fitted[0]) + [_rows(fitted[0])[1]]) + "\n")
    with pytest.raises(InvalidData, match="appears twice"):
        fit_learned(bad, task="sst2", space=SPACE, out=folder, overwrite=True)
    with pytest.raises(InvalidConfig, match="already holds a learned estimator"):
        fit_learned(fitted[0], task="sst2", space=SPACE, out=folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_seed_repeats_are_averaged(tmp_path):
    table = write_synthetic_table(tmp_path / "gt.csv", _sample(12), bands=2, space="syn", seeds=(0, 1, 2))
    truth = read_ground_truth(table, task="sst2")
    assert truth.rows == 36 and truth.seeds == [3] * 12
    np.testing.assert_allclose(truth.accuracy, [round(synthetic_accuracy(a), 5) for a in truth.archs])
