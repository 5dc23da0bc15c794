"""The manifest of a model package: what is in it, and a sha256 of every file so that a changed byte is caught.

A package is a folder. ``manifest.json`` describes the model (architecture, signature, classes,
metrics, versions, when and by what it was made) and lists every other file with its sha256 and
size. Loading recomputes each hash before anything is read as weights: a file that was changed,
truncated, added or swapped is an error naming that file.

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> with open(os.path.join(folder, "weights.bin"), "wb") as f:
...     _ = f.write(b"hello")
>>> sha256_manifest(folder)
{'weights.bin': '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'}
>>> sha256_manifest({"weights.bin": b"hello", "manifest.json": b"{}"})       # the same files, as data
{'weights.bin': '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'}
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["MANIFEST", "FORMAT", "FORMAT_VERSION", "PackageError", "sha256_file", "sha256_manifest", "verify_files",
           "read_manifest"]

MANIFEST = "manifest.json"
FORMAT = "tinytorch-model-package"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest is a few kilobytes; refuse to parse something huge
_CHUNK = 2**20


class PackageError(ValueError):
    """A folder that is not a valid model package: missing, changed or unexpected files, or a bad manifest."""


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB chunks (a large file never sits in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_manifest(source: str | os.PathLike | Mapping[str, bytes]) -> dict[str, str]:
    """The sha256 of every file of a package, except ``manifest.json`` itself.

    Parameters
    ----------
    source : path, or mapping of str to bytes
        The package folder (its subfolders too), or its files given as ``{relative path: content}``
        (what lesson 15's exercise passes: plain data).

    Returns
    -------
    dict
        ``{relative path: sha256 hex digest}``, in sorted order of the paths; a path is relative
        to the folder with ``/`` between folder names (``"extra/notes.txt"``) on every system, and
        the digest covers the file's *content* (its bytes), not its name. ``manifest.json`` at the
        top of the folder is skipped: it holds these hashes, so it cannot hold its own.
    """
    if isinstance(source, Mapping):
        digests = {str(name): hashlib.sha256(bytes(content)).hexdigest() for name, content in source.items()}
    else:
        root = Path(source)
        digests = {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()
                   and p.relative_to(root).as_posix() != MANIFEST}
    return {name: digests[name] for name in sorted(digests) if name != MANIFEST}


def verify_files(folder: str | os.PathLike, listed: dict[str, Any]) -> None:
    """Check that ``folder`` holds exactly the files ``listed`` (name -> {"sha256", "bytes"}) with those hashes.

    Raises
    ------
    PackageError
        Naming the first missing, unexpected or changed file.
    """
    present = sha256_manifest(folder)
    for name, entry in listed.items():
        if name not in present:
            raise PackageError(f"package {folder}: {name} is listed in {MANIFEST} but missing")
        if present[name] != entry.get("sha256"):
            raise PackageError(
                f"package {folder}: {name} was changed after packaging (sha256 {present[name][:16]}..., "
                f"the manifest says {str(entry.get('sha256'))[:16]}...)"
            )
    extra = sorted(set(present) - set(listed))
    if extra:
        raise PackageError(f"package {folder}: {', '.join(extra)} not listed in {MANIFEST} (added after packaging?)")


def read_manifest(folder: str | os.PathLike) -> dict:
    """The parsed ``manifest.json`` of a package folder, checked for the format tag and version."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise PackageError(f"{folder} is not a model package: it has no {MANIFEST}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise PackageError(f"package {folder}: {MANIFEST} is {path.stat().st_size:,} bytes; a manifest is at most {MAX_MANIFEST_BYTES:,}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackageError(f"package {folder}: {MANIFEST} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackageError(f"package {folder}: {MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PackageError(
            f"package {folder}: format version {manifest.get('format_version')!r}; this TinyTorch reads version {FORMAT_VERSION}"
        )
    for key in ("architecture", "signature", "files"):
        if key not in manifest:
            raise PackageError(f"package {folder}: {MANIFEST} lacks {key!r}")
    return manifest
