"""The adversarial corpus: bad inputs for every command, as data.

A :class:`Case` is a command line with ``{placeholders}`` naming files of the
workspace (:func:`tests.adversarial.workspace.build_workspace`) and ``{out}``, a
fresh path in a folder of the case's own. Every case expects hwnas to refuse:
exit code ``code`` (2 unless said otherwise), exactly one ``hwnas: error:``
line naming the problem (``fragment``, when given, must be in it), never an
"internal error", and every file that existed before byte-identical after, with
nothing new left behind.

The families below are crossed (every bad file for every option that takes a
file, every bad number for every numeric option) so that a fix has to cover a
whole group, not one example.
"""

from __future__ import annotations

from dataclasses import dataclass

ARCH = "layers=1,hidden=128,heads=2,ffn=256"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int = 2
    fragment: str | None = None
    lock: str | None = None  # a workspace path whose writer lock is held by "another process" during the case
    needs_non_root: bool = False  # permissions mean nothing to root


def _c(id: str, line: str, **kw) -> Case:
    return Case(id, tuple(line.split()), **kw)


# ------------------------------------------------------------------ families

#: Files that are wrong for every option taking a file.
BAD_FILES = ("missing", "empty_txt", "binary_bin", "garbage_txt", "emptydir", "nul_txt", "utf16_json", "deep_json",
             "huge_json", "bigint_json", "list_json", "null_json", "prose_txt")

#: Every option that reads a file, as a command line with ``{f}`` where the file goes.
FILE_OPTIONS = {
    "space-show": "space show {f}",
    "profile-space": "profile --space {f} --samples 1 --quick --out {out}/p.jsonl",
    "profile-archs": "profile --archs {f} --quick --out {out}/p.jsonl",
    "profile-show": "profile show {f}",
    "fit-data": "predictor fit {f} --out {out}/x.hwnas --no-plot",
    "fit-base": "predictor fit {profile} --base {f} --out {out}/x.hwnas --no-plot",
    "eval-bundle": "predictor eval {f} {profile} --no-plot",
    "eval-data": "predictor eval {bundle} {f} --no-plot",
    "show-bundle": "predictor show {f}",
    "check-bundle": "predictor check {f} --device cpu --quick",
    "predict-bundle": f"predict --predictor {{f}} --arch {ARCH}",
    "predict-archs": "predict --predictor {bundle} --archs {f}",
    "supernet-info": "supernet info {f}",
    "supernet-score": f"supernet score {{f}} --arch {ARCH}",
    "supernet-extract": f"supernet extract {{f}} --arch {ARCH} --out {{out}}/student",
    "supernet-train-space": "supernet train --space {f} --steps 1 --out {out}/sn",
    "supernet-train-data": "supernet train --space tiny --data {f} --steps 1 --out {out}/sn",
    "search-predictor": "search --predictor {f} --estimator params --max-latency 5ms --out {out}/s",
    "search-supernet": "search --predictor {bundle} --supernet {f} --max-latency 5ms --out {out}/s",
    "distill-arch": "distill --arch {f} --task {task} --out {out}/d",
    "distill-task": f"distill --arch {ARCH} --task {{f}} --steps 1 --teacher-steps 1 --no-measure --out {{out}}/d",
    "distill-predictor": f"distill --arch {ARCH} --task {{task}} --predictor {{f}} --out {{out}}/d",
    "distill-supernet": f"distill --arch {ARCH} --task {{task}} --supernet {{f}} --out {{out}}/d",
    "distill-losses": f"distill --arch {ARCH} --task {{task}} --losses {{f}} --out {{out}}/d",
    "distill-teacher": f"distill --arch {ARCH} --task {{task}} --teacher {{f}} --out {{out}}/d",
    "run-predictor": "run --max-latency 5ms --quick --predictor {f} --work-dir {out}",
    "run-supernet": "run --max-latency 5ms --quick --supernet {f} --work-dir {out}",
    "report": "report {f} --out {out}/r.html",
    "estimator-fit-table": "estimator fit --table {f} --task sst2 --out {out}/m",
    "search-estimator-path": "search --predictor {bundle} --estimator learned --estimator-path {f} --max-latency 5ms "
                             "--out {out}/s",
}

#: Options that take a text file anyway, where some "bad" files are acceptable inputs of another kind.
_SKIP = {
    # a folder is a valid (empty) thing for these, refused for other reasons below
    ("supernet-train-data", "emptydir"),
    # prose is a valid plain-text corpus for supernet training
    ("supernet-train-data", "prose_txt"),
    ("supernet-train-data", "garbage_txt"),
}

BAD_BUNDLES = ("truncated_hwnas", "notzip_hwnas", "edited_hwnas", "nan_coef_hwnas", "neg_coef_hwnas", "big_coef_hwnas",
               "neg_margin_hwnas", "bad_coverage_hwnas", "relabel_hwnas", "feature_hwnas", "version_hwnas",
               "model_hwnas", "model_cut_hwnas")
BUNDLE_OPTIONS = ("fit-base", "eval-bundle", "show-bundle", "predict-bundle", "search-predictor", "distill-predictor",
                  "run-predictor", "check-bundle")

BAD_PROFILES = ("prof_schema99_jsonl", "prof_badheads_jsonl", "prof_neglat_jsonl", "prof_strlat_jsonl",
                "prof_nofield_jsonl", "prof_notobject_jsonl", "prof_hugeint_jsonl", "prof_binary_jsonl",
                "table_bin_csv", "table_nolatency_csv", "table_text_csv")
PROFILE_OPTIONS = ("fit-data", "eval-data", "profile-show")

BAD_SPACES = ("space_huge_yaml", "space_wide_yaml", "space_noheads_yaml", "space_neg_yaml", "space_float_yaml",
              "space_str_yaml", "space_badyaml_yaml", "space_bin_yaml", "space_missingdim_yaml", "space_bignum_yaml")
SPACE_OPTIONS = ("space-show", "profile-space", "supernet-train-space")

BAD_ARCH_FILES = ("archs_bin_txt", "archs_heads_txt", "archs_extra_txt", "archs_huge_txt", "archs_comment_txt",
                  "archs_json_json")
ARCH_FILE_OPTIONS = ("profile-archs", "predict-archs", "distill-arch")

BAD_LOSSES = ("loss_bin_yaml", "loss_unknown_yaml", "loss_neg_yaml", "loss_str_yaml")

BAD_SUPERNETS = ("sn_badjson", "sn_list", "sn_format", "sn_future", "sn_binary")
SUPERNET_OPTIONS = ("supernet-info", "supernet-score", "search-supernet", "distill-supernet", "run-supernet")

#: Architecture strings that are not architectures.
BAD_ARCHS = (
    "layers=1,hidden=128,heads=3,ffn=256",        # heads do not divide hidden
    "layers=0,hidden=128,heads=2,ffn=256",
    "layers=-1,hidden=128,heads=2,ffn=256",
    "layers=1,hidden=128,heads=2",                # ffn missing
    "layers=1,hidden=128,heads=2,ffn=256,foo=3",  # unknown key
    "layers=1,hidden=128,heads=2,ffn=256,seq_len=512",
    "layers=1,layers=2,hidden=128,heads=2,ffn=256",
    "layers=one,hidden=128,heads=2,ffn=256",
    "layers=1.5,hidden=128,heads=2,ffn=256",
    "layers=1,hidden=" + "9" * 30 + ",heads=2,ffn=256",
    "layers=1,hidden=" + "9" * 5000 + ",heads=2,ffn=256",
    "L1-H" + "9" * 5000 + "-A2-I256",
    "L1-H128-A3-I256",
    "layers=1,hidden=4194304,heads=2,ffn=256",    # beyond the largest dimension hwnas accepts
    "=,=,=",
    "layers",
    "layers=,hidden=128,heads=2,ffn=256",
    "x" * 5000,
    "layers=1;hidden=128;heads=2;ffn=256",
)
#: Architectures valid as such but refused by one command: (architecture, command line).
COMMAND_ARCHS = (
    ("layers=1,hidden=100000,heads=2,ffn=256", "distill --arch {a} --task {task} --out {out}/d"),  # teacher, memory
    ("layers=12,hidden=128,heads=2,ffn=256", "distill --arch {a} --task {task} --out {out}/d"),  # deeper than teacher
    ("layers=1,hidden=128,heads=2,ffn=65536", "distill --arch {a} --task {task} --out {out}/d"),  # wider FFN
    ("layers=2,hidden=128,heads=2,ffn=256", "supernet extract {sn_badjson} --arch {a} --out {out}/st"),
)
ARCH_OPTIONS = {
    "predict": "predict --predictor {bundle} --arch {a}",
    "distill": "distill --arch {a} --task {task} --out {out}/d",
}

#: Numeric options and values they must refuse: command line with ``{v}``.
NUMBER_OPTIONS = {
    "profile-samples": "profile --samples {v} --out {out}/p.jsonl",
    "profile-interleave": "profile --interleave {v} --out {out}/p.jsonl",
    "profile-round-size": "profile --round-size {v} --until-accuracy 0.9 --out {out}/p.jsonl",
    "profile-threads": "profile --threads {v} --out {out}/p.jsonl",
    "profile-seq-len": "profile --seq-len {v} --out {out}/p.jsonl",
    "profile-batch-size": "profile --batch-size {v} --out {out}/p.jsonl",
    "profile-max-time": "profile --max-time {v} --out {out}/p.jsonl",
    "profile-time-budget": "profile --time-budget {v} --out {out}/p.jsonl",
    "profile-until-accuracy": "profile --until-accuracy {v} --out {out}/p.jsonl",
    "fit-folds": "predictor fit {profile} --folds {v} --out {out}/x.hwnas --no-plot",
    "fit-coverage": "predictor fit {profile} --coverage {v} --out {out}/x.hwnas --no-plot",
    "predict-seq-len": f"predict --predictor {{bundle}} --arch {ARCH} --seq-len {{v}}",
    "predict-batch-size": f"predict --predictor {{bundle}} --arch {ARCH} --batch-size {{v}}",
    "check-archs": "predictor check {bundle} --device cpu --archs {v}",
    "search-budget": "search --predictor {bundle} --estimator params --max-latency 5ms --budget {v} --out {out}/s",
    "search-parallel": "search --predictor {bundle} --estimator params --max-latency 5ms --parallel {v} --out {out}/s",
    "search-seq-len": "search --predictor {bundle} --estimator params --max-latency 5ms --seq-len {v} --out {out}/s",
    "search-batch-size": "search --predictor {bundle} --estimator params --max-latency 5ms --batch-size {v} --out {out}/s",
    "search-max-latency": "search --predictor {bundle} --estimator params --max-latency {v} --out {out}/s",
    "search-max-params": "search --predictor {bundle} --estimator params --max-latency 5ms --max-params {v} --out {out}/s",
    "search-max-memory": "search --predictor {bundle} --estimator params --max-latency 5ms --max-memory {v} --out {out}/s",
    "search-reward-weight": "search --predictor {bundle} --estimator params --max-latency 5ms --objective reward "
                            "--reward-weight {v} --out {out}/s",
    "supernet-steps": "supernet train --steps {v} --out {out}/sn",
    "supernet-batch-size": "supernet train --batch-size {v} --out {out}/sn",
    "supernet-seq-len": "supernet train --seq-len {v} --out {out}/sn",
    "supernet-heldout": "supernet train --heldout {v} --out {out}/sn",
    "supernet-lr": "supernet train --lr {v} --out {out}/sn",
    "supernet-checkpoint-every": "supernet train --checkpoint-every {v} --out {out}/sn",
    "supernet-threads": "supernet train --threads {v} --out {out}/sn",
    "supernet-max-rows": "supernet train --max-rows {v} --out {out}/sn",
    "distill-steps": f"distill --arch {ARCH} --task {{task}} --steps {{v}} --out {{out}}/d",
    "distill-batch-size": f"distill --arch {ARCH} --task {{task}} --batch-size {{v}} --out {{out}}/d",
    "distill-max-len": f"distill --arch {ARCH} --task {{task}} --max-len {{v}} --out {{out}}/d",
    "distill-lr": f"distill --arch {ARCH} --task {{task}} --lr {{v}} --out {{out}}/d",
    "distill-seq-len": f"distill --arch {ARCH} --task {{task}} --seq-len {{v}} --out {{out}}/d",
    "distill-threads": f"distill --arch {ARCH} --task {{task}} --threads {{v}} --out {{out}}/d",
    "distill-limit": f"distill --arch {ARCH} --task {{task}} --limit {{v}} --out {{out}}/d",
    "run-samples": "run --max-latency 5ms --samples {v} --work-dir {out}",
    "run-evaluations": "run --max-latency 5ms --evaluations {v} --work-dir {out}",
    "run-seq-len": "run --max-latency 5ms --seq-len {v} --work-dir {out}",
    "run-threads": "run --max-latency 5ms --threads {v} --work-dir {out}",
    "run-max-latency": "run --max-latency {v} --work-dir {out}",
}
BAD_NUMBERS = ("0", "-1", "abc", "1e400", "9" * 30, "nan")
_NUMBER_SKIP = {
    # 0 is a valid value of these
    ("search-reward-weight", "0"), ("profile-until-accuracy", "1e400"),
    # a number this large is a valid (capped) sample count / batch / budget, not an error
    ("profile-samples", "9" * 30), ("search-budget", "9" * 30), ("run-samples", "9" * 30),
    ("run-evaluations", "9" * 30), ("supernet-steps", "9" * 30), ("distill-steps", "9" * 30),
    ("distill-limit", "9" * 30), ("supernet-max-rows", "9" * 30), ("supernet-checkpoint-every", "9" * 30),
    ("search-max-params", "9" * 30), ("search-max-memory", "9" * 30), ("search-max-latency", "9" * 30),
    ("run-max-latency", "9" * 30), ("supernet-batch-size", "9" * 30), ("distill-batch-size", "9" * 30),
    ("search-parallel", "9" * 30), ("check-archs", "9" * 30), ("fit-folds", "9" * 30),
    ("search-reward-weight", "9" * 30), ("profile-time-budget", "9" * 30), ("profile-max-time", "9" * 30),
    ("supernet-lr", "9" * 30), ("distill-lr", "9" * 30), ("profile-interleave", "9" * 30),
    ("profile-round-size", "9" * 30), ("search-batch-size", "9" * 30), ("predict-batch-size", "9" * 30),
    ("profile-batch-size", "9" * 30), ("supernet-heldout", "9" * 30),
}

#: Outputs that must never be written: another input, a user's file or folder, impossible places.
OUTPUT_CASES = [
    _c("fit-out-is-input", "predictor fit {profile} --out {profile} --force --no-plot", fragment="same file"),
    _c("fit-out-is-input-copy", "predictor fit {profile} --out {userdir}/../profile.jsonl --force --no-plot",
       fragment="same file"),
    _c("fit-out-user-file", "predictor fit {profile} --out {user_txt} --force --no-plot", fragment="not a predictor bundle"),
    _c("fit-out-exists", "predictor fit {profile} --out {bundle} --no-plot", fragment="already exists"),
    _c("fit-out-base", "predictor fit {profile} --base {bundle} --out {bundle} --force --no-plot", fragment="same file"),
    _c("fit-out-folder", "predictor fit {profile} --out {emptydir} --no-plot", fragment="directory"),
    _c("fit-out-under-file", "predictor fit {profile} --out {file_parent}/x.hwnas --no-plot", fragment="is a file"),
    _c("fit-out-too-long", "predictor fit {profile} --no-plot --out {out}/" + "x" * 300 + ".hwnas", fragment="too long"),
    _c("fit-out-readonly", "predictor fit {profile} --out {rodir}/x.hwnas --no-plot", fragment="not writable",
       needs_non_root=True),
    _c("profile-resume-user-file", "profile --space tiny --samples 1 --quick --resume --out {garbage_txt}",
       fragment="not a profile written by hwnas"),
    _c("profile-resume-user-json", "profile --space tiny --samples 1 --quick --resume --out {list_json}",
       fragment="not a profile"),
    _c("profile-resume-prose", "profile --space tiny --samples 1 --quick --resume --out {prose_txt}",
       fragment="not a profile"),
    _c("profile-resume-binary", "profile --space tiny --samples 1 --quick --resume --out {binary_bin}",
       fragment="not a profile"),
    _c("profile-out-exists", "profile --space tiny --samples 1 --quick --out {profile}", fragment="already exists"),
    _c("profile-out-folder", "profile --space tiny --samples 1 --quick --out {emptydir}", fragment="directory"),
    _c("profile-out-under-file", "profile --space tiny --samples 1 --quick --out {file_parent}/p.jsonl"),
    _c("profile-out-is-archs", "profile --archs {archs} --quick --resume --out {archs}"),
    _c("profile-out-too-long", "profile --space tiny --samples 1 --quick --out {out}/" + "p" * 300 + ".jsonl",
       fragment="too long"),
    _c("profile-locked", "profile --space tiny --samples 1 --quick --resume --out {profile}", lock="{profile}.lock",
       fragment="being written by another process"),
    _c("supernet-out-user-dir", "supernet train --space tiny --steps 1 --out {userdir}", fragment="not written by hwnas"),
    _c("supernet-out-file", "supernet train --space tiny --steps 1 --out {user_txt}", fragment="is a file"),
    _c("supernet-out-under-file", "supernet train --space tiny --steps 1 --out {file_parent}", fragment="is a file"),
    _c("supernet-locked", "supernet train --space tiny --steps 1 --out {out}/sn", lock="{out}/sn.lock",
       fragment="being written by another process"),
    _c("supernet-out-readonly", "supernet train --space tiny --steps 1 --out {rodir}/sn", needs_non_root=True),
    _c("extract-out-user-dir", f"supernet extract {{emptydir}} --arch {ARCH} --out {{userdir}}"),
    _c("search-out-user-dir", "search --predictor {bundle} --estimator params --max-latency 5ms --out {userdir}",
       fragment="not written by hwnas"),
    _c("search-out-file", "search --predictor {bundle} --estimator params --max-latency 5ms --out {user_txt}",
       fragment="is a file"),
    _c("search-out-under-file", "search --predictor {bundle} --estimator params --max-latency 5ms --out {file_parent}"),
    _c("search-locked", "search --predictor {bundle} --estimator params --max-latency 1000ms --out {out}/s",
       lock="{out}/s.lock", fragment="being written by another process"),
    _c("distill-locked", f"distill --arch {ARCH} --task {{task}} --out {{out}}/d", lock="{out}/d.lock",
       fragment="being written by another process"),
    _c("distill-out-user-dir", f"distill --arch {ARCH} --task {{task}} --out {{userdir}}", fragment="not written by hwnas"),
    _c("distill-out-user-dir-overwrite", f"distill --arch {ARCH} --task {{task}} --overwrite --out {{userdir}}",
       fragment="not written by hwnas"),
    _c("distill-out-file", f"distill --arch {ARCH} --task {{task}} --out {{user_txt}}", fragment="is a file"),
    _c("distill-out-is-task", f"distill --arch {ARCH} --task {{task}} --out {{task}}"),
    _c("run-out-user-dir", "run --max-latency 5ms --quick --work-dir {workspace} --name userdir",
       fragment="not written by hwnas"),
    _c("run-out-file", "run --max-latency 5ms --quick --work-dir {workspace} --name user.txt", fragment="is a file"),
    _c("report-out-user-file", "report {profile} --out {user_txt}", fragment="not a report written by hwnas"),
    _c("report-out-is-input", "report {profile} --out {profile}"),
    _c("report-out-folder", "report {profile} --out {emptydir}", fragment="directory"),
    _c("show-plot-not-png", "profile show {profile} --plot {user_txt}"),
]

#: Options checked late or ignored before (issue 11, group 5), and other refusals.
OPTION_CASES = [
    _c("profile-quick-max-time", "profile --quick --max-time abc --out {out}/p.jsonl", fragment="--max-time"),
    _c("profile-quick-and-max-time", "profile --quick --max-time 2s --out {out}/p.jsonl", fragment="--quick"),
    _c("profile-ray-address-local", "profile --ray-address x:1 --out {out}/p.jsonl", fragment="--cluster ray"),
    _c("profile-unknown-device", "profile --device gpu9 --out {out}/p.jsonl", fragment="unknown device"),
    _c("profile-unknown-space", "profile --space nosuchspace --out {out}/p.jsonl", fragment="unknown space"),
    _c("profile-bad-dtype", "profile --dtype fp7 --out {out}/p.jsonl"),
    _c("profile-bad-plan", "profile --plan magic --out {out}/p.jsonl"),
    _c("search-reward-weight-ignored", "search --predictor {bundle} --estimator params --max-latency 5ms "
       "--reward-weight 0.5 --out {out}/s", fragment="--reward-weight"),
    _c("search-unknown-estimator", "search --predictor {bundle} --estimator magic --max-latency 5ms --out {out}/s",
       fragment="unknown estimator"),
    _c("search-unknown-strategy", "search --predictor {bundle} --estimator params --strategy magic --max-latency 5ms "
       "--out {out}/s"),
    _c("search-screen-unknown", "search --predictor {bundle} --screen nope --max-latency 5ms --out {out}/s",
       fragment="--screen: unknown estimator"),
    _c("search-metric-disagrees", "search --predictor {bundle} --estimator params --metric loss --max-latency 5ms "
       "--out {out}/s"),
    _c("search-verify-other-device", "search --predictor {bundle} --estimator params --max-latency 5ms --verify "
       "onnxruntime --out {out}/s"),
    _c("search-resume-other-predictor", "search --predictor {relabel_hwnas} --estimator params --max-latency 5ms "
       "--resume --out {out}/s"),
    _c("supernet-heldout-zero", "supernet train --heldout 0 --out {out}/sn", fragment="--heldout"),
    _c("supernet-experts-no-mixture", "supernet train --experts 4 --out {out}/sn", fragment="--mixture"),
    _c("supernet-space-twice", "supernet train --space tiny,tiny --out {out}/sn", fragment="twice"),
    _c("supernet-unknown-space", "supernet train --space nosuch --out {out}/sn"),
    _c("supernet-seq-len-beyond-positions", "supernet train --seq-len 4096 --out {out}/sn", fragment="positions"),
    _c("distill-max-len-beyond-positions", f"distill --arch {ARCH} --task {{task}} --max-len 4096 --out {{out}}/d",
       fragment="positions"),
    _c("distill-student-beyond-teacher", "distill --arch layers=12,hidden=128,heads=2,ffn=256 --task {task} --out {out}/d",
       fragment="larger than the teacher"),
    _c("distill-bad-init", f"distill --arch {ARCH} --task {{task}} --init magic --out {{out}}/d"),
    _c("distill-bad-losses", f"distill --arch {ARCH} --task {{task}} --losses nonsense=1 --out {{out}}/d"),
    _c("distill-bad-mixed-precision", f"distill --arch {ARCH} --task {{task}} --mixed-precision fp4 --out {{out}}/d"),
    _c("distill-winner-many", "distill --arch {profile} --task {task} --out {out}/d"),
    _c("predict-no-arch", "predict --predictor {bundle}", fragment="--arch"),
    _c("predict-seq-len-beyond", f"predict --predictor {{bundle}} --arch {ARCH} --seq-len 4096", fragment="positions"),
    _c("predict-other-device", f"predict --predictor {{bundle}} --arch {ARCH} --device onnxruntime"),
    _c("check-other-device", "predictor check {bundle} --device onnxruntime"),
    _c("run-samples-zero-quick", "run --max-latency 5ms --quick --samples 0 --work-dir {out}", fragment="--samples"),
    _c("run-unknown-device", "run --max-latency 5ms --device gpu9 --work-dir {out}"),
    _c("run-unknown-space", "run --max-latency 5ms --space nosuch --work-dir {out}"),
    _c("run-bad-name", "run --max-latency 5ms --name a/b --work-dir {out}"),
    _c("run-bad-strategy", "run --max-latency 5ms --strategy magic --work-dir {out}"),
    _c("report-missing", "report {missing}"),
    _c("estimator-fit-out-is-table", "estimator fit --table {task} --task sst2 --out {task}"),
    _c("estimator-fit-not-a-table", "estimator fit --table {task} --task sst2 --out {out}/m", fragment="lacks columns"),
    _c("search-estimator-path-without-learned", "search --predictor {bundle} --estimator params --estimator-path "
       "{emptydir} --max-latency 5ms --out {out}/s", fragment="--estimator-path is the fitted model"),
    _c("search-learned-without-path", "search --predictor {bundle} --estimator learned --max-latency 5ms --out {out}/s",
       fragment="needs a fitted model"),
    _c("unknown-command", "frobnicate"),
    _c("unknown-option", "space show tiny --frobnicate"),
    _c("space-unknown", "space show nosuchspace"),
]


#: Items left from issue 11 last: memory of every profiled architecture, one list syntax, --json and --quiet on
#: every command that prints results or runs long, `supernet extract --overwrite` by the marker rules.
FINISH_CASES = [
    # memory, checked before anything is built: the offending architecture is named
    _c("profile-archs-memory", "profile --archs {archs_mem_txt} --quick --out {out}/p.jsonl",
       fragment="layers=48,hidden=131072"),
    _c("profile-archs-memory-resume", "profile --archs {archs_mem_txt} --quick --resume --out {out}/p.jsonl",
       fragment="needs about"),
    _c("profile-space-memory", "profile --space {space_mem_yaml} --samples 2 --quick --out {out}/p.jsonl",
       fragment="largest architecture"),
    _c("profile-batch-memory", "profile --archs {archs} --batch-size 1048576 --quick --out {out}/p.jsonl",
       fragment="needs about"),
    _c("profile-batch-memory-list", "profile --archs {archs} --batch-size 1,1048576 --quick --out {out}/p.jsonl",
       fragment="batch 1048576"),
    _c("profile-archs-memory-ray", "profile --archs {archs_mem_txt} --cluster ray --ray-address 127.0.0.1:1 --quick "
       "--out {out}/p.jsonl", fragment="needs about"),
    _c("profile-archs-memory-adaptive", "profile --archs {archs_mem_txt} --until-accuracy 0.9 --quick "
       "--out {out}/p.jsonl", fragment="needs about"),
    # one list syntax: comma-separated or repeated, the same errors either way
    _c("list-seq-len-empty-item", "profile --seq-len 64,,abc --out {out}/p.jsonl", fragment="--seq-len"),
    _c("list-seq-len-semicolon", "profile --seq-len 64;128 --out {out}/p.jsonl", fragment="--seq-len"),
    _c("list-seq-len-only-commas", "profile --seq-len ,,, --out {out}/p.jsonl", fragment="at least one"),
    _c("list-seq-len-repeated-bad", "profile --seq-len 64 --seq-len x --out {out}/p.jsonl", fragment="--seq-len"),
    _c("list-seq-len-repeated-beyond", "profile --seq-len 64 --seq-len 4096 --out {out}/p.jsonl", fragment="positions"),
    _c("list-batch-repeated-negative", "profile --batch-size 1 --batch-size -2 --out {out}/p.jsonl",
       fragment="--batch-size"),
    _c("list-batch-float", "profile --batch-size 1,2.5 --out {out}/p.jsonl", fragment="--batch-size"),
    _c("list-batch-unicode-digit", "profile --batch-size ٣ --out {out}/p.jsonl", fragment="--batch-size"),
    _c("list-features-empty", "predictor fit {profile} --features , --out {out}/x.hwnas --no-plot",
       fragment="--features"),
    _c("list-features-unknown", "predictor fit {profile} --features layers --features nosuch --out {out}/x.hwnas "
       "--no-plot", fragment="nosuch"),
    _c("list-eval-features-empty", "predictor eval {bundle} {profile} --features ,, --no-plot", fragment="--features"),
    _c("list-space-empty", "supernet train --space , --out {out}/sn", fragment="--space"),
    _c("list-space-repeated-twice", "supernet train --space tiny --space tiny --out {out}/sn", fragment="twice"),
    _c("list-space-unknown-in-list", "supernet train --space tiny,nosuch --out {out}/sn", fragment="nosuch"),
    # --json and --quiet change what is printed, never what is refused
    _c("json-profile-bad-list", "profile --json --seq-len x --out {out}/p.jsonl", fragment="--seq-len"),
    _c("json-profile-out-exists", "profile --json --space tiny --samples 1 --quick --out {profile}",
       fragment="already exists"),
    _c("quiet-profile-samples", "profile --quiet --samples 0 --out {out}/p.jsonl", fragment="--samples"),
    _c("json-supernet-train-heldout", "supernet train --json --heldout 0 --out {out}/sn", fragment="--heldout"),
    _c("json-supernet-train-user-dir", "supernet train --json --space tiny --steps 1 --out {userdir}",
       fragment="not written by hwnas"),
    _c("json-extract-bad-supernet", f"supernet extract {{sn_badjson}} --arch {ARCH} --out {{out}}/st --json"),
    _c("json-report-missing", "report {missing} --json"),
    _c("json-report-user-file", "report {profile} --out {user_txt} --json", fragment="not a report written by hwnas"),
    _c("json-space-list-extra", "space list --json extra"),
    _c("quiet-fit-garbage", "predictor fit {garbage_txt} --quiet --out {out}/x.hwnas --no-plot"),
    _c("quiet-fit-out-exists", "predictor fit {profile} --quiet --out {bundle} --no-plot", fragment="already exists"),
    _c("quiet-check-bad-bundle", "predictor check {truncated_hwnas} --device cpu --quiet"),
    # supernet extract: --overwrite replaces only a student hwnas wrote; without it nothing is replaced
    _c("extract-out-holds-student", f"supernet extract {{sn_badjson}} --arch {ARCH} --out {{student_dir}}",
       fragment="--overwrite"),
    _c("extract-overwrite-user-dir", f"supernet extract {{sn_badjson}} --arch {ARCH} --overwrite --out {{userdir}}",
       fragment="not written by hwnas"),
    _c("extract-overwrite-search", f"supernet extract {{sn_badjson}} --arch {ARCH} --overwrite --out {{search_dir}}",
       fragment="not a student"),
    _c("extract-overwrite-file", f"supernet extract {{sn_badjson}} --arch {ARCH} --overwrite --out {{user_txt}}",
       fragment="is a file"),
    _c("extract-overwrite-bad-supernet", f"supernet extract {{sn_badjson}} --arch {ARCH} --overwrite "
       "--out {student_dir}"),
    _c("extract-bad-arch-overwrite", "supernet extract {sn_badjson} --arch layers=1,hidden=128,heads=3,ffn=256 "
       "--overwrite --out {student_dir}", fragment="heads"),
    _c("extract-out-is-supernet", f"supernet extract {{sn_badjson}} --arch {ARCH} --overwrite --out {{sn_badjson}}"),
    _c("extract-winner-many", "supernet extract {sn_badjson} --arch {profile} --out {out}/st"),
]


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for opt, line in FILE_OPTIONS.items():
        for bad in BAD_FILES:
            if (opt, bad) in _SKIP:
                continue
            cases.append(Case(f"file/{opt}/{bad}", tuple(line.replace("{f}", "{" + bad + "}").split())))
    for opt in BUNDLE_OPTIONS:
        for bad in BAD_BUNDLES:
            cases.append(Case(f"bundle/{opt}/{bad}", tuple(FILE_OPTIONS[opt].replace("{f}", "{" + bad + "}").split())))
    for opt in PROFILE_OPTIONS:
        for bad in BAD_PROFILES:
            cases.append(Case(f"profile/{opt}/{bad}", tuple(FILE_OPTIONS[opt].replace("{f}", "{" + bad + "}").split())))
    for opt in SPACE_OPTIONS:
        for bad in BAD_SPACES:
            cases.append(Case(f"space/{opt}/{bad}", tuple(FILE_OPTIONS[opt].replace("{f}", "{" + bad + "}").split())))
    for opt in ARCH_FILE_OPTIONS:
        for bad in BAD_ARCH_FILES:
            cases.append(Case(f"archfile/{opt}/{bad}", tuple(FILE_OPTIONS[opt].replace("{f}", "{" + bad + "}").split())))
    for bad in BAD_LOSSES:
        cases.append(Case(f"losses/{bad}", tuple(FILE_OPTIONS["distill-losses"].replace("{f}", "{" + bad + "}").split())))
    for opt in SUPERNET_OPTIONS:
        for bad in BAD_SUPERNETS:
            cases.append(Case(f"supernet/{opt}/{bad}", tuple(FILE_OPTIONS[opt].replace("{f}", "{" + bad + "}").split())))
    for name, line in ARCH_OPTIONS.items():
        for i, a in enumerate(BAD_ARCHS):
            argv = tuple(a if part == "{a}" else part for part in line.split())
            cases.append(Case(f"arch/{name}/{i:02d}", argv))
    for i, (a, line) in enumerate(COMMAND_ARCHS):
        cases.append(Case(f"arch/{line.split()[0]}-only/{i:02d}",
                          tuple(a if part == "{a}" else part for part in line.split())))
    for opt, line in NUMBER_OPTIONS.items():
        for v in BAD_NUMBERS:
            if (opt, v) in _NUMBER_SKIP:
                continue
            argv = tuple(v if part == "{v}" else part for part in line.split())
            cases.append(Case(f"number/{opt}/{v[:8]}", argv))
    cases += OUTPUT_CASES + OPTION_CASES + FINISH_CASES
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases
