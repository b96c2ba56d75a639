"""Bundles: a model folder with a manifest (schema version, parameters, sha256 of every file).

Loading checks the manifest before any file is parsed, so a truncated copy, a hand-edited file or a
bundle from an incompatible version is refused with a message that says which file and why. Nothing in a
bundle is pickled: JSON, .npy/.npz (loaded with allow_pickle=False) and ONNX only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
FORMAT = "xmlc-bundle"


class BundleError(Exception):
    """A bundle that cannot be used; the message names the folder and the reason."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# Manifest keys the writer sets; a model's own description may not override them.
RESERVED = ("format", "schema_version", "created_at", "version", "files")


def finish_manifest(folder: Path, names: list[str], body: dict[str, Any]) -> dict[str, Any]:
    """Checksum the files ``names`` of ``folder`` and write the manifest that lists them; returns it.

    The version is a digest of the files' checksums: the same files always get the same version.
    """
    files: dict[str, dict[str, Any]] = {
        name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
        for name in sorted(set(names))
    }
    digest = hashlib.sha256("".join(str(f["sha256"]) for f in files.values()).encode()).hexdigest()
    full = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "version": digest[:12],
        **{k: v for k, v in body.items() if k not in RESERVED},
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=False))
    return full


def is_bundle(folder: Path) -> bool:
    """Whether ``folder`` holds a bundle's manifest (checksums not verified)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def check_out(out: Path, force: bool = False) -> None:
    """Refuse, before any work, an output path whose contents a new bundle would destroy.

    A path that does not exist and an empty folder are free; a bundle is replaced only with ``force``;
    anything else (a file, a folder of other things: the training data, say) is never touched.
    """
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    if is_bundle(out):
        if force:
            return
        raise BundleError(
            f"{out}: a bundle is there already; --force replaces it (the old one stays until the new "
            "one is complete)"
        )
    what = "a folder with other contents" if out.is_dir() else "a file"
    raise BundleError(f"{out}: exists and is not a bundle ({what}); nothing written: choose another --out")


def write_bundle(
    out: Path, write: Callable[[Path], tuple[list[str], dict[str, Any]]], force: bool = False
) -> dict[str, Any]:
    """Write a bundle into a temporary sibling folder, then move it to ``out`` at once.

    ``write(folder)`` writes the files and returns their names and the manifest body. A reader never
    sees a half-written bundle; an existing bundle at ``out`` is replaced (with ``force``) only once the
    new one is complete, and anything else at ``out`` is refused (`check_out`).
    """
    out = Path(out)
    check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a service user other than the trainer must read it
    try:
        names, body = write(tmp)
        full = finish_manifest(tmp, names, body)
        check_out(out, force)  # again: something may have appeared there while the bundle was written
        if out.exists() or out.is_symlink():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
        return full
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(folder: Path, verify: bool = True) -> dict[str, Any]:
    """The parsed manifest; with ``verify`` every listed file must exist with its recorded sha256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BundleError(f"{folder}: not a bundle folder (no such directory)")
    if not path.is_file():
        raise BundleError(f"{folder}: not a bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: manifest is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: not an {FORMAT} manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(
            f"{path}: schema version {manifest.get('schema_version')!r} is not supported "
            f"(this build reads {SCHEMA_VERSION}); retrain or use a matching xmlc version"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{path}: manifest lists no files")
    if verify:
        for name, meta in files.items():
            f = folder / name
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise BundleError(f"{path}: file name {name!r} escapes the bundle")
            if not f.is_file():
                raise BundleError(f"{folder}: missing file {name}")
            if f.stat().st_size != meta.get("bytes") or sha256_file(f) != meta.get("sha256"):
                raise BundleError(
                    f"{folder}: checksum mismatch for {name}: the file was changed or corrupted"
                )
    return manifest
