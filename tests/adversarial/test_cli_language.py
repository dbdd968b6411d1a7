"""One CLI language (issue 11): list options, --json and --quiet, Ctrl-C lines, the supernet lock in `hwnas run`.

Real commands on tiny real inputs, in this process (``hwnas.cli.main.main``).
The Ctrl-C tests with real processes and real signals are in ``test_interrupt.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwnas.cli.main import main

ARCH = "layers=1,hidden=128,heads=2,ffn=256"


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _params(command_path: str, args: list[str]) -> dict:
    """The parsed options of ``hwnas <command_path> <args>`` (parsed by click, nothing run)."""
    from hwnas.cli.main import cli

    ctx = cli.make_context("hwnas", [*command_path.split(), *args], resilient_parsing=True)
    cmd, rest = cli, [*command_path.split(), *args]
    for _ in command_path.split():
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)
        rest = [*ctx._protected_args, *ctx.args]
    return ctx.params


# (command, option, parameter name, parser kind, the same list written three ways)
LIST_OPTIONS = [
    ("profile", "--seq-len", "seq_len", "int", (["64,128"], ["64", "128"], [" 64 , 128 "])),
    ("profile", "--batch-size", "batch_size", "int", (["1,8"], ["1", "8"], ["1 ,8", "8"])),
    ("supernet train", "--space", "spaces", "name", (["tiny,small"], ["tiny", "small"], [" tiny, small "])),
    ("predictor fit", "--features", "features", "name", (["a,b"], ["a", "b"], ["a , b", "a"])),
    ("predictor eval", "--features", "features", "name", (["a,b"], ["a", "b"], ["a,", ",b"])),
]
_NEEDED = {"profile": ["--out", "p.jsonl"], "supernet train": ["--out", "sn"],
           "predictor fit": ["data.csv", "--out", "x.hwnas"], "predictor eval": ["b.hwnas", "data.csv"]}


@pytest.mark.parametrize("command,option,name,kind,forms", LIST_OPTIONS, ids=[f"{c}-{o}" for c, o, *_ in LIST_OPTIONS])
def test_every_list_option_takes_commas_repeats_and_spaces_alike(command, option, name, kind, forms):
    from hwnas.cli._options import parse_int_list, parse_name_list

    parse = (lambda v: parse_int_list(v, option)) if kind == "int" else (lambda v: parse_name_list(v, option))
    parsed = []
    for values in forms:
        args = [*_NEEDED[command], *(x for v in values for x in (option, v))]
        parsed.append(parse(_params(command, args)[name]))
    assert parsed[0] == parsed[1] == parsed[2] and len(parsed[0]) == 2


def test_list_parser_refuses_in_one_line_naming_the_option():
    from hwnas.cli._options import parse_int_list, parse_name_list
    from hwnas.errors import InvalidConfig

    assert parse_int_list(("64", "128,64"), "--seq-len") == (64, 128)  # duplicates dropped, order kept
    assert parse_int_list(("64", "", " ,"), "--seq-len") == (64,)  # empty items are skipped
    for bad in (("x",), ("64", "x"), (",",), ("1.5",), ("0",), ("٣",), ("9" * 12,), ("-+3",), ("3-",)):
        with pytest.raises(InvalidConfig, match="--seq-len") as exc:
            parse_int_list(bad, "--seq-len")
        assert "\n" not in str(exc.value)
    with pytest.raises(InvalidConfig, match="at most 8"):
        parse_int_list("4,16", "--batch-size", maximum=8)
    with pytest.raises(InvalidConfig, match="unknown 'c'"):
        parse_name_list("a, c", "--x", choices=("a", "b"))


def test_profile_json_is_one_object_on_stdout_and_quiet_draws_nothing(tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text(ARCH + "\n")
    out = tmp_path / "p.jsonl"
    code, stdout, stderr = _run(["profile", "--archs", archs, "--quick", "--json", "--quiet", "--seq-len", "16",
                                 "--seq-len", "32", "--out", out], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout)  # the whole of stdout is one JSON object
    assert summary["measured"] == 2 and summary["remaining"] == 0 and summary["out"] == str(out)
    assert summary["latency_ms_min"] > 0 and summary["stopped"] == "done"
    assert "profiling" not in stderr  # no progress display
    shapes = {(r["seq_len"], r["batch_size"]) for r in map(json.loads, out.read_text().splitlines())}
    assert shapes == {(16, 1), (32, 1)}
    # report --json on the profile just written
    code, stdout, stderr = _run(["report", out, "--json"], capsys)
    assert code == 0, stderr
    page = json.loads(stdout)
    assert page["kind"] == "profile" and page["complete"] and Path(page["report"]).is_file()


def test_space_list_json(capsys):
    code, out, _ = _run(["space", "list", "--json"], capsys)
    spaces = json.loads(out)
    assert code == 0 and {"tiny", "small", "base"} <= set(spaces) and spaces["tiny"]["architectures"] > 0


def test_interrupted_line_has_one_shape_for_every_command(tmp_path):
    from hwnas.cli.main import COMMANDS, INTERRUPTED, interrupted_line

    sn = tmp_path / "sn"
    (sn / "checkpoints").mkdir(parents=True)
    (sn / "checkpoints" / "latest.json").write_text('{"checkpoint": "step-0000007"}')
    lines = {
        "profile": interrupted_line(["profile", "--space", "tiny", "--out", "p.jsonl"]),
        "supernet train": interrupted_line(["supernet", "train", "--out", str(sn)]),
        "search": interrupted_line(["search", "--predictor", "x.hwnas", "--max-latency", "5ms", "--out", "s"]),
        "distill": interrupted_line(["distill", "--arch", ARCH, "--task", "t.tsv", "--out", "d"]),
        "run": interrupted_line(["--debug", "run", "--max-latency", "5ms", "--work-dir", "w"]),
        "predictor fit": interrupted_line(["predictor", "fit", "p.jsonl", "--out", "x.hwnas"]),
        "supernet extract": interrupted_line(["supernet", "extract", "sn", "--arch", ARCH, "--out", "st"]),
        "predict": interrupted_line(["predict", "--predictor", "x.hwnas", "--arch", ARCH]),
        "garbage": interrupted_line(["no-such-command", "--x"]),
    }
    for line in lines.values():
        assert line.startswith("hwnas: interrupted: ") and "\n" not in line
        assert line.endswith("rerun it with --resume to continue") or line.endswith("rerun it to start again")
    assert "every completed chunk is saved in p.jsonl; rerun it with --resume" in lines["profile"]
    assert f"{sn} keeps its checkpoint of step 7; rerun it with --resume" in lines["supernet train"]
    assert "s/evaluated.csv" in lines["search"] and "under w" in lines["run"]
    assert "x.hwnas was not written; rerun it to start again" in lines["predictor fit"]
    assert "nothing was changed" in lines["predict"] and "nothing was changed" in lines["garbage"]
    assert "holds no checkpoint yet" in interrupted_line(["distill", "--arch", ARCH, "--task", "t", "--out", str(tmp_path / "d")])
    assert {"profile", "search", "distill", "run"} <= set(INTERRUPTED) and set(INTERRUPTED) - {
        "supernet train", "supernet extract", "predictor fit", "distill front"} <= set(COMMANDS)


def test_run_supernet_stage_takes_the_supernet_lock(tmp_path, capsys):
    """`hwnas run` trains its supernet under the same one-writer lock as `hwnas supernet train`."""
    from hwnas._lock import writer_lock
    from hwnas.errors import InvalidConfig
    from hwnas.outputs import claim_output_folder
    from tests.adversarial.workspace import fit_tiny_bundle

    bundle = fit_tiny_bundle(tmp_path / "p.hwnas")
    folder = tmp_path / "runs" / "r"
    claim_output_folder(folder, kind="run")
    with writer_lock(folder / "supernet.lock", target=folder / "supernet", error=InvalidConfig):
        code, _, err = _run(["run", "--max-latency", "5ms", "--quick", "--quiet", "--predictor", bundle,
                             "--work-dir", folder.parent, "--name", "r"], capsys)
    errors = [line for line in err.splitlines() if line.startswith("hwnas: error:")]
    assert code == 2 and len(errors) == 1 and "being written by another process" in errors[0], err
    assert not (folder / "supernet" / "checkpoints").exists()  # nothing trained beside the other writer
