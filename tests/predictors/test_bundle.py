"""The .hwnas bundle: round trip, plain XGBoost loading, every refusal branch."""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile

import numpy as np
import pytest

from hwnas.errors import BundleError, PredictorMismatch
from hwnas.predictors import load_predictor
from hwnas.predictors.bundle import MANIFEST_MEMBER, MODEL_MEMBER, extract_model, save_bundle
from hwnas.predictors.predictor import FORMAT_VERSION, OutOfDomainWarning
from hwnas.space import Architecture, get_space

TINY = get_space("tiny")


def _rewrite(src, dst, *, manifest=None, model=None, comment=None, extra=None):
    """Copy a bundle, replacing members or the comment (to simulate tampering)."""
    with zipfile.ZipFile(src) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
        old_comment = zf.comment
    if manifest is not None:
        members[MANIFEST_MEMBER] = manifest
    if model is not None:
        members[MODEL_MEMBER] = model
    if extra:
        members.update(extra)
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = old_comment if comment is None else comment
    return dst


def _manifest(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(MANIFEST_MEMBER))


def _comment_for(data: bytes) -> bytes:
    return b"hwnas-predictor manifest-sha256=" + hashlib.sha256(data).hexdigest().encode()


def test_round_trip_gives_identical_predictions(fitted, bundle):
    archs = TINY.enumerate()
    loaded = load_predictor(bundle)
    np.testing.assert_array_equal(loaded.predict(archs), fitted.predict(archs))
    np.testing.assert_array_equal(loaded.predict_upper(archs), fitted.predict_upper(archs))
    one = loaded.predict([archs[3]])  # the numpy tree walk serves small batches
    assert one[0] == pytest.approx(loaded.predict(archs)[3], rel=1e-6)
    arr = np.array([a.as_tuple() for a in archs])
    np.testing.assert_array_equal(loaded.predict(arr), loaded.predict(archs))
    assert loaded.device == "cpu" and loaded.space == "tiny"
    assert np.all(loaded.predict_upper(archs) > loaded.predict(archs))


def test_manifest_records_what_the_issue_lists(bundle):
    m = load_predictor(bundle).manifest
    assert m["format_version"] == FORMAT_VERSION
    assert m["inputs"] == ["layers", "hidden", "heads", "ffn", "seq_len", "batch_size"]
    assert m["features"]["tree_features"] and m["physics"]["terms"]
    assert set(m["physics"]["coef"]) == set(m["physics"]["terms"])
    assert m["target"]["unit"] == "ms" and m["target"]["transform"] == "log"
    assert m["device"]["name"] == "cpu" and m["device"]["threads"] == 1 and m["device"]["fingerprint"]["cpu_model"]
    assert m["library_versions"]["xgboost"] and m["library_versions"]["numpy"]
    assert m["domain"]["ranges"]["layers"] == [1, 3] and m["domain"]["n_samples"] == 30
    cv = m["metrics"]["cv"]
    assert cv["n"] == 30 and cv["within_5"] <= cv["within_10"]
    assert cv["mape"] > 0 and (cv["within_10"] < 1 or cv["mape"] < 0.10)  # every error under 10%: so is their mean
    assert m["uncertainty"]["coverage"] == 0.95
    data = zipfile.ZipFile(bundle).read(MODEL_MEMBER)
    assert m["members"][MODEL_MEMBER]["sha256"] == hashlib.sha256(data).hexdigest()


def test_plain_xgboost_loads_the_extracted_model(bundle, tmp_path):
    import xgboost

    path = extract_model(bundle, tmp_path / "x")
    booster = xgboost.Booster()
    booster.load_model(str(path))
    p = load_predictor(bundle)
    m = p.manifest
    x = np.array([[2, 160, 4, 512, 128, 1]], dtype=np.float32)
    margin = booster.inplace_predict(x)
    # rebuild the prediction from the manifest's JSON and the plain booster alone
    from hwnas.predictors.features import featurize

    terms = m["physics"]["terms"]
    phys = m["physics"]["intercept"] + featurize(x.astype(float), terms)[0] @ np.array([m["physics"]["coef"][t] for t in terms])
    assert phys * np.exp(margin[0]) == pytest.approx(p.predict(np.array([[2, 160, 4, 512]]))[0], rel=1e-6)


def test_refuses_to_overwrite(fitted, bundle):
    before = bundle.read_bytes()
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(fitted, bundle)
    assert bundle.read_bytes() == before
    save_bundle(fitted, bundle, overwrite=True)
    load_predictor(bundle)


def test_missing_file(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_predictor(tmp_path / "none.hwnas")


def test_truncated_file(bundle, tmp_path):
    data = bundle.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        bad = tmp_path / f"cut{cut}.hwnas"
        bad.write_bytes(data[:cut])
        with pytest.raises(BundleError):
            load_predictor(bad)


def test_not_a_zip(tmp_path):
    bad = tmp_path / "text.hwnas"
    bad.write_text("hello")
    with pytest.raises(BundleError, match="not a readable"):
        load_predictor(bad)


def test_flipped_byte_fails_crc(bundle, tmp_path):
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as zf:
        info = zf.getinfo(MODEL_MEMBER)
    data[info.header_offset + 30 + len(MODEL_MEMBER) + 20] ^= 0xFF  # inside the compressed model
    bad = tmp_path / "flip.hwnas"
    bad.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        load_predictor(bad)


def test_tampered_model_fails_its_checksum(bundle, tmp_path, fitted):
    other = fitted.booster.copy()
    model = bytes(other.save_raw(raw_format="ubj")) + b" "
    bad = _rewrite(bundle, tmp_path / "model.hwnas", model=model)
    with pytest.raises(BundleError, match="does not match its sha256"):
        load_predictor(bad)


def test_tampered_manifest_fails_its_checksum(bundle, tmp_path):
    m = _manifest(bundle)
    m["physics"]["intercept"] = 0.0
    bad = _rewrite(bundle, tmp_path / "edit.hwnas", manifest=json.dumps(m).encode())
    with pytest.raises(BundleError, match="does not match its checksum"):
        load_predictor(bad)


def test_missing_comment(bundle, tmp_path):
    bad = _rewrite(bundle, tmp_path / "nocomment.hwnas", comment=b"")
    with pytest.raises(BundleError, match="zip comment"):
        load_predictor(bad)


@pytest.mark.parametrize("version,match", [(FORMAT_VERSION + 1, "newer"), (0, "unknown bundle format version"),
                                           ("1", "must be an integer")])
def test_wrong_format_version(bundle, tmp_path, version, match):
    m = _manifest(bundle)
    m["format_version"] = version
    data = json.dumps(m).encode()
    bad = _rewrite(bundle, tmp_path / "v.hwnas", manifest=data, comment=_comment_for(data))
    with pytest.raises(BundleError, match=match):
        load_predictor(bad)


def test_not_an_hwnas_manifest(bundle, tmp_path):
    data = json.dumps({"format": "something-else"}).encode()
    with pytest.raises(BundleError, match="not an hwnas predictor bundle"):
        load_predictor(_rewrite(bundle, tmp_path / "f.hwnas", manifest=data, comment=_comment_for(data)))
    data = b"{not json"
    with pytest.raises(BundleError, match="not valid JSON"):
        load_predictor(_rewrite(bundle, tmp_path / "j.hwnas", manifest=data, comment=_comment_for(data)))


def test_unlisted_and_missing_members(bundle, tmp_path):
    with pytest.raises(BundleError, match="does not list"):
        load_predictor(_rewrite(bundle, tmp_path / "x.hwnas", extra={"evil.pkl": b"x"}))
    m = _manifest(bundle)
    del m["physics"]
    data = json.dumps(m).encode()
    with pytest.raises(BundleError, match="lacks physics"):
        load_predictor(_rewrite(bundle, tmp_path / "p.hwnas", manifest=data, comment=_comment_for(data)))
    with zipfile.ZipFile(bundle) as zf:
        manifest_only = tmp_path / "m.hwnas"
        with zipfile.ZipFile(manifest_only, "w") as out:
            out.writestr(MANIFEST_MEMBER, zf.read(MANIFEST_MEMBER))
            out.comment = zf.comment
    with pytest.raises(BundleError, match="lacks member model.ubj"):
        load_predictor(manifest_only)


def test_unreadable_model_with_consistent_checksums(bundle, tmp_path):
    junk = b"this is not an xgboost model"
    m = _manifest(bundle)
    m["members"][MODEL_MEMBER] = {"sha256": hashlib.sha256(junk).hexdigest(), "size": len(junk)}
    data = json.dumps(m).encode()
    with pytest.raises(BundleError, match="XGBoost cannot read"):
        load_predictor(_rewrite(bundle, tmp_path / "junk.hwnas", manifest=data, model=junk, comment=_comment_for(data)))


def test_wrong_device_is_refused_unless_overridden(bundle):
    p = load_predictor(bundle)
    p.check_device("cpu")
    p.check_device("cpu", threads=1, dtype="fp32")
    with pytest.raises(PredictorMismatch, match="onnxruntime"):
        p.check_device("onnxruntime")
    with pytest.raises(PredictorMismatch, match="threads=2"):
        p.check_device("cpu", threads=2)
    with pytest.raises(PredictorMismatch, match="dtype"):
        p.check_device("cpu", dtype="bf16")
    with pytest.warns(UserWarning, match="override"):
        p.check_device("onnxruntime", override=True)


def test_outside_the_domain_warns(bundle):
    p = load_predictor(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDomainWarning)
        p.predict(TINY.enumerate())
    with pytest.warns(OutOfDomainWarning, match="layers 6..6"):
        p.predict([Architecture(6, 384, 8, 1536)])
    with pytest.warns(OutOfDomainWarning, match="seq_len"):
        p.predict([Architecture(2, 128, 2, 256)], seq_len=256)
