"""Issue 11 in unit tests: output markers, profiles that are not profiles, data quality, checkpoints, signatures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hwnas.errors import InvalidConfig, ProfileStoreError

PROFILE = Path(__file__).parent / "predictors" / "data" / "cpu-tiny.jsonl"


# ---------------------------------------------------------------- output folders
def test_claim_marks_a_new_folder_and_refuses_a_users(tmp_path):
    from hwnas.outputs import MARKER, check_output_folder, claim_output_folder, read_marker

    assert claim_output_folder(tmp_path / "s", kind="search") is False
    assert read_marker(tmp_path / "s")["kind"] == "search"
    assert check_output_folder(tmp_path / "s", kind="search") is False  # only the marker: nothing to resume
    (tmp_path / "s" / "evaluated.csv").write_text("a\n")
    assert check_output_folder(tmp_path / "s", kind="search") is True
    with pytest.raises(InvalidConfig, match="holds an hwnas search, not a supernet"):
        check_output_folder(tmp_path / "s", kind="supernet")
    user = tmp_path / "mine"
    user.mkdir()
    (user / "config.json").write_text("{}")
    with pytest.raises(InvalidConfig, match=f"not written by hwnas \\(no {MARKER}\\)"):
        check_output_folder(user, kind="distill")
    assert sorted(p.name for p in user.iterdir()) == ["config.json"]


def test_legacy_outputs_without_a_marker_are_still_recognised(tmp_path):
    from hwnas.outputs import check_output_folder

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "distill_config.json").write_text("{}")
    assert check_output_folder(tmp_path / "d", kind="distill") is True


def test_remove_if_unfinished_removes_only_what_the_failed_block_created(tmp_path):
    from hwnas.outputs import remove_if_unfinished, write_marker

    target = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError), remove_if_unfinished(target):
        target.mkdir(parents=True)
        write_marker(target, "search")
        (target / "config.json").write_text("{}")
        raise RuntimeError("bad data")
    assert not (tmp_path / "new").exists()
    # real work is kept for --resume
    with pytest.raises(RuntimeError), remove_if_unfinished(target):
        target.mkdir(parents=True)
        (target / "evaluated.csv").write_text("arch,score\nL1,0.5\n")
        raise RuntimeError("crash after an evaluation")
    assert (target / "evaluated.csv").is_file()
    # an interrupt keeps everything
    other = tmp_path / "other"
    with pytest.raises(KeyboardInterrupt), remove_if_unfinished(other):
        other.mkdir()
        raise KeyboardInterrupt
    assert other.is_dir()


def test_output_is_never_an_input(tmp_path):
    from hwnas.outputs import check_not_input

    a = tmp_path / "a.jsonl"
    a.write_text("x\n")
    with pytest.raises(InvalidConfig, match="same file"):
        check_not_input(tmp_path / "sub" / ".." / "a.jsonl", [("DATA", a)])
    copy = tmp_path / "copy.hwnas"
    shutil.copyfile(a, copy)
    with pytest.raises(InvalidConfig, match="same content"):
        check_not_input(copy, [("DATA", a)])
    check_not_input(tmp_path / "fresh.hwnas", [("DATA", a), ("--base", None)])


# ---------------------------------------------------------------- profiles
def test_resume_into_a_file_that_is_not_a_profile_changes_nothing(tmp_path):
    from hwnas.profiling.store import ProfileStore

    for content in (b"my notes, one line", b"line one\nline two\n", b"[1, 2]\n", bytes(range(256))):
        f = tmp_path / "notes.jsonl"
        f.write_bytes(content)
        with pytest.raises(ProfileStoreError, match="not a profile written by hwnas"):
            ProfileStore(f).append([{"x": 1}])
        with pytest.raises(ProfileStoreError):
            ProfileStore(f).records()
        assert f.read_bytes() == content


def test_a_torn_first_record_is_still_recognised_and_repaired(tmp_path):
    from hwnas.profiling.store import ProfileStore

    f = tmp_path / "p.jsonl"
    f.write_bytes(PROFILE.read_bytes().split(b"\n")[0][:200])  # a crash during the first write
    with pytest.warns(UserWarning, match="removed an incomplete last line"):
        ProfileStore(f).append([json.loads(PROFILE.read_text().splitlines()[0])])
    assert len(ProfileStore(f).records()) == 1


def test_unknown_schema_and_bad_architecture_rows_are_refused_with_their_line(tmp_path):
    from hwnas.profiling.store import read_records

    lines = PROFILE.read_text().splitlines()
    bad = json.loads(lines[2])
    for edit, fragment in (({"schema": 7}, "line 3: unknown profile schema version 7"),
                           ({"heads": 3}, "line 3: heads must divide hidden"),
                           ({"latency_ms": 0}, "line 3: latency_ms must be a positive number")):
        f = tmp_path / "p.jsonl"
        f.write_text("\n".join(lines[:2] + [json.dumps({**bad, **edit})] + lines[3:]) + "\n")
        with pytest.raises(ProfileStoreError, match=fragment):
            list(read_records(f))


def test_duplicates_are_merged_with_a_count_and_outliers_flagged(tmp_path):
    from hwnas.profiling.store import read_profile
    from hwnas.validate import DataQualityWarning

    lines = PROFILE.read_text().splitlines()
    f = tmp_path / "dup.jsonl"
    f.write_text("\n".join(lines + lines) + "\n")
    with pytest.warns(DataQualityWarning, match=f"merged {len(lines)} exact duplicate"):
        df = read_profile(f)
    assert len(df) == len(lines)
    twin = json.loads(lines[0])
    slow = {**twin, "latency_ms": twin["latency_ms"] * 90, "timestamp": "later"}
    again = {**twin, "latency_ms": twin["latency_ms"] * 1.05, "timestamp": "later still"}
    f.write_text("\n".join(lines + [json.dumps(slow), json.dumps(again)]) + "\n")
    with pytest.warns(DataQualityWarning, match="1 record\\(s\\) differ more than 10x from a twin"):
        df = read_profile(f)
    assert len(df) == len(lines) + 2  # flagged, not dropped: the user decides


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_checksums_and_finite_tensors(saved_checkpoint):
    import torch

    from hwnas.training.checkpoint import load_checkpoint

    path, model, opt = saved_checkpoint
    assert load_checkpoint(path, model, opt)["step"] == 1
    # a truncated optimizer state
    opt_file = path / "optimizer.safetensors"
    good = opt_file.read_bytes()
    opt_file.write_bytes(good[: len(good) // 2])
    with pytest.raises(InvalidConfig, match="optimizer.safetensors does not match its checksum"):
        load_checkpoint(path, model, opt)
    opt_file.write_bytes(good)
    # NaN weights written with a fresh checksum are still refused
    from safetensors.torch import save_file

    from hwnas._files import sha256_file

    save_file({k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    sums = json.loads((path / "checksums.json").read_text())
    sums["model.safetensors"] = sha256_file(path / "model.safetensors")
    (path / "checksums.json").write_text(json.dumps(sums))
    with pytest.raises(InvalidConfig, match="NaN or infinite"):
        load_checkpoint(path, model, opt)


# ---------------------------------------------------------------- limits
def test_space_size_is_checked_before_enumeration():
    import time

    from hwnas.errors import InvalidSpace
    from hwnas.space import SearchSpace

    t0 = time.perf_counter()
    with pytest.raises(InvalidSpace, match="more than the 1,000,000 hwnas enumerates"):
        SearchSpace(name="wide", layers=tuple(range(1, 101)), hidden=tuple(range(64, 6401, 64)), heads=(1, 2),
                    ffn=tuple(range(64, 64001, 64)))
    with pytest.raises(InvalidSpace, match="more than the 10000 one dimension"):
        SearchSpace.from_dict({"name": "huge", "layers": {"min": 1, "max": 10 ** 12}, "hidden": [128], "heads": [2],
                               "ffn": [256]})
    assert time.perf_counter() - t0 < 5  # refused, not enumerated (a loose bound: the machine is shared)


def test_memory_estimate_refuses_what_cannot_fit():
    from hwnas.cli._options import check_memory
    from hwnas.space import Architecture
    from hwnas.validate import available_memory_bytes, estimate_memory_bytes

    small = Architecture(1, 128, 2, 256)
    big = Architecture(12, 100000, 2, 400000)
    assert estimate_memory_bytes(big, training=True) > 100 * estimate_memory_bytes(small, training=True)
    assert available_memory_bytes() is not None
    check_memory(small, option="--arch", training=True)
    with pytest.raises(InvalidConfig, match="--arch .* needs about .* GiB"):
        check_memory(big, option="--arch", training=True)


# ---------------------------------------------------------------- signatures
def test_signed_bundles_verify_and_trusted_keys_are_enforced(tmp_path, monkeypatch):
    pytest.importorskip("cryptography")
    from hwnas.errors import BundleError
    from hwnas.predictors.bundle import load_bundle
    from hwnas.signing import TRUST_ENV, generate_keypair, sign_bundle
    from hwnas.space import Architecture
    from tests.adversarial.workspace import fit_tiny_bundle

    bundle = fit_tiny_bundle(tmp_path / "p.hwnas")
    monkeypatch.delenv(TRUST_ENV, raising=False)
    assert load_bundle(bundle).signature.signed is False
    kid = generate_keypair(tmp_path / "me.pem", tmp_path / "me.pub")
    generate_keypair(tmp_path / "other.pem", tmp_path / "other.pub")
    before = load_bundle(bundle).predict([Architecture(1, 128, 2, 256)])
    assert sign_bundle(bundle, tmp_path / "me.pem") == kid
    signed = load_bundle(bundle)
    assert signed.signature.signed and signed.signature.key_id == kid and signed.signature.trusted is None
    assert signed.predict([Architecture(1, 128, 2, 256)]) == pytest.approx(before)
    monkeypatch.setenv(TRUST_ENV, str(tmp_path / "me.pub"))
    assert load_bundle(bundle).signature.trusted is True
    monkeypatch.setenv(TRUST_ENV, str(tmp_path / "other.pub"))
    with pytest.raises(BundleError, match="not among the trusted keys"):
        load_bundle(bundle)
    # a signature that does not match the content
    import zipfile

    data = bundle.read_bytes()
    with zipfile.ZipFile(bundle) as zf:
        comment = zf.comment
    sig_at = comment.index(b"ed25519=") + len(b"ed25519=")
    flipped = comment[:sig_at] + (b"0" if comment[sig_at:sig_at + 1] != b"0" else b"1") + comment[sig_at + 1:]
    bundle.write_bytes(data[: len(data) - len(comment)] + flipped)
    monkeypatch.delenv(TRUST_ENV)
    with pytest.raises(BundleError, match="signature does not verify"):
        load_bundle(bundle)


# ---------------------------------------------------------------- one CLI language
def _main(argv, capsys):
    from hwnas.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_old_spellings_work_with_one_deprecation_line_and_errors_name_what_was_typed(tmp_path, capsys):
    user = tmp_path / "mine.hwnas"
    user.write_text("not a bundle\n")
    code, _, err = _main(["predictor", "fit", PROFILE, "--out", user, "--force", "--no-plot"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2
    assert lines[0] == "warning: --force is deprecated and will be removed in the next release; use --overwrite"
    assert lines[1].startswith("hwnas: error:") and "not a predictor bundle written by hwnas" in lines[1]
    assert user.read_text() == "not a bundle\n"
    code, _, err = _main(["search", "--predictor", user, "--estimator", "params", "--max-latency", "5ms",
                          "--budget", "0", "--out", tmp_path / "s"], capsys)
    assert code == 2 and "--budget is deprecated" in err and "hwnas: error: --budget must be an integer >= 1" in err


def test_library_warnings_are_one_clean_line(tmp_path, capsys):
    from tests.adversarial.workspace import fit_tiny_bundle

    bundle = fit_tiny_bundle(tmp_path / "p.hwnas")
    lines = PROFILE.read_text().splitlines()
    dup = tmp_path / "dup.jsonl"
    dup.write_text("\n".join(lines + lines) + "\n")
    code, out, err = _main(["predictor", "eval", bundle, dup, "--no-plot", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["n"] == len(lines)  # the copies were merged before evaluating
    warned = [line for line in err.splitlines() if line.strip()]
    assert warned == [f"warning: {dup}: merged {len(lines)} exact duplicate record(s) (copies, not new measurements)"]
