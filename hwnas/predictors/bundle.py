"""The ``.hwnas`` bundle: one zip file that outlives hwnas.

Members:

* ``model.ubj``: the XGBoost correction in XGBoost's own UBJSON format
  (``xgboost.Booster().load_model("model.ubj")`` loads it without hwnas);
* ``manifest.json``: format and version, inputs and feature names in order,
  the physical model's coefficients, the target transform and unit, the device
  name, settings and fingerprint, library versions, the training domain, the
  metrics at fit time, the calibration of the upper bound, and the sha256 and
  size of every other member.

The zip comment holds the sha256 of ``manifest.json``, so an edited manifest is
caught as well as an edited model. Loading checks, in order: the file is a
complete zip archive, CRCs, the manifest's format and version, the manifest
digest, every member's digest, and that XGBoost can read the model. Any failure
is one :class:`~hwnas.errors.BundleError` naming what was wrong. Nothing is
pickled; a bundle is written to a temporary file and renamed into place, so a
crash never leaves a half-written bundle under the final name.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from hwnas._files import atomic_write_bytes
from hwnas.errors import BundleError
from hwnas.predictors.predictor import FORMAT, FORMAT_VERSION, LatencyPredictor

__all__ = ["save_bundle", "load_bundle", "MODEL_MEMBER", "MANIFEST_MEMBER", "extract_model"]

MODEL_MEMBER = "model.ubj"
MANIFEST_MEMBER = "manifest.json"
_COMMENT_PREFIX = b"hwnas-predictor manifest-sha256="

#: Manifest keys every bundle must have.
_REQUIRED = ("format", "format_version", "inputs", "features", "physics", "target", "uncertainty", "device",
             "domain", "members")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_bundle(predictor: LatencyPredictor, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``predictor`` to ``path`` (``.hwnas``) atomically; returns the path.

    Raises:
        BundleError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise BundleError(f"{path} already exists; choose another --out or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = bytes(predictor.booster.save_raw(raw_format="ubj"))
    manifest = dict(predictor.manifest)
    manifest["members"] = {MODEL_MEMBER: {"sha256": _sha256(model), "size": len(model)}}
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False) + "\n").encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_MEMBER, manifest_bytes)
        zf.writestr(MODEL_MEMBER, model)
        zf.comment = _COMMENT_PREFIX + _sha256(manifest_bytes).encode("ascii")
    atomic_write_bytes(path, buf.getvalue())
    predictor.manifest = manifest
    return path


def _read_members(path: Path) -> tuple[dict[str, bytes], bytes]:
    if not path.is_file():
        raise BundleError(f"predictor bundle {path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise BundleError(f"{path} is corrupt: member {bad} fails its CRC check")
            members = {info.filename: zf.read(info) for info in zf.infolist()}
            comment = zf.comment
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{path} is not a readable .hwnas bundle (truncated or not a zip archive: {exc})") from None
    except (zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise BundleError(f"{path} is not a readable .hwnas bundle ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # zlib.error on a damaged deflate stream
        if type(exc).__module__ == "zlib":
            raise BundleError(f"{path} is corrupt: a member cannot be decompressed ({exc})") from None
        raise
    return members, comment


def _verify(path: Path, members: dict[str, bytes], comment: bytes) -> dict[str, Any]:
    raw = members.get(MANIFEST_MEMBER)
    if raw is None:
        raise BundleError(f"{path} has no {MANIFEST_MEMBER}: it is not an hwnas predictor bundle")
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {MANIFEST_MEMBER} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path} is not an hwnas predictor bundle (manifest format is "
                          f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{path}: format_version must be an integer; got {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(f"{path} has bundle format version {version}, newer than this hwnas reads "
                          f"(up to {FORMAT_VERSION}); upgrade hwnas")
    if version < 1:
        raise BundleError(f"{path} has an unknown bundle format version {version}; this hwnas reads 1..{FORMAT_VERSION}")
    if not comment.startswith(_COMMENT_PREFIX):
        raise BundleError(f"{path} lacks the manifest checksum in its zip comment; it was not written by hwnas or was repacked")
    from hwnas.signing import unsigned_comment

    if unsigned_comment(comment)[len(_COMMENT_PREFIX):].decode("ascii", "replace") != _sha256(raw):
        raise BundleError(f"{path}: {MANIFEST_MEMBER} does not match its checksum (the file was modified)")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{path}: the manifest lacks {', '.join(missing)}")
    listed = manifest["members"]
    if not isinstance(listed, dict):
        raise BundleError(f"{path}: manifest 'members' must map member names to checksums")
    extra = sorted(set(members) - set(listed) - {MANIFEST_MEMBER})
    if extra:
        raise BundleError(f"{path} holds members the manifest does not list: {', '.join(extra)}")
    for name, info in listed.items():
        data = members.get(name)
        if data is None:
            raise BundleError(f"{path} lacks member {name} listed in its manifest")
        if not isinstance(info, dict) or _sha256(data) != info.get("sha256"):
            raise BundleError(f"{path}: member {name} does not match its sha256 in the manifest (the file was modified)")
    if MODEL_MEMBER not in listed:
        raise BundleError(f"{path}: the manifest lists no {MODEL_MEMBER}")
    return manifest


def load_bundle(path: str | Path, *, n_jobs: int = 1) -> LatencyPredictor:
    """Load and verify a ``.hwnas`` bundle.

    Args:
        path: the bundle file.
        n_jobs: XGBoost prediction threads (1 is fastest for small batches).

    Raises:
        BundleError: missing, truncated, corrupt, tampered with, or of an unknown format version.
    """
    import xgboost as xgb

    path = Path(path)
    members, comment = _read_members(path)
    manifest = _verify(path, members, comment)
    from hwnas.validate import check_bundle_manifest, check_predictor_runs

    check_bundle_manifest(path, manifest)  # well-formed and checksummed is not yet meaningful
    from hwnas._ubjson import check_xgboost_model

    try:  # parsed and checked here first: XGBoost's loader can crash the process on damaged bytes
        check_xgboost_model(members[MODEL_MEMBER])
    except ValueError as exc:
        raise BundleError(f"{path}: XGBoost cannot read {MODEL_MEMBER} (not a well-formed tree model: {exc})") from None
    try:
        booster = xgb.Booster()
        booster.load_model(bytearray(members[MODEL_MEMBER]))
        booster.set_param({"nthread": int(n_jobs)})
    except Exception as exc:  # noqa: BLE001 (deliberate: XGBoostError, or worse on bytes altered with recomputed checksums)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise BundleError(f"{path}: XGBoost cannot read {MODEL_MEMBER} ({first})") from None
    try:
        predictor = LatencyPredictor(manifest, booster)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BundleError(f"{path}: the manifest is incomplete or malformed ({type(exc).__name__}: {exc})") from None
    n_features = booster.num_features()
    if n_features != len(manifest["features"]["tree_features"]):
        raise BundleError(f"{path}: the model expects {n_features} features but the manifest names "
                          f"{len(manifest['features']['tree_features'])}")
    predictor.path = str(path)
    check_predictor_runs(path, predictor)
    from hwnas.signing import check_signature

    predictor.signature = check_signature(path, comment)  # unsigned is fine unless trusted keys are given
    return predictor


def extract_model(path: str | Path, out_dir: str | Path) -> Path:
    """Verify ``path`` and write its XGBoost model to ``out_dir/model.ubj``; returns the file."""
    path = Path(path)
    members, comment = _read_members(path)
    _verify(path, members, comment)
    return atomic_write_bytes(Path(out_dir) / MODEL_MEMBER, members[MODEL_MEMBER])
