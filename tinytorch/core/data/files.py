"""Where data files live, how they are checked, fetched and unpacked (DESIGN §5).

* The data root is the ``root`` argument, else ``$TINYTORCH_DATA``, else pooch's cache folder for
  ``tinytorch``. Each data set has its own folder below it (see :mod:`.registry`).
* A file that is there is hashed and used only when its hash is the official one, or that of a
  known copy (used with a :class:`DerivedCopyWarning`), or when the user trusts local copies
  (``trust_local=True`` or ``TINYTORCH_TRUST_LOCAL=1``). Anything else is refused: a wrong file
  would quietly train on wrong data.
* A missing file is downloaded with ``pooch.retrieve`` from the registered addresses, checked
  against the official hash. A present file is never fetched again.
* Archives are unpacked once into the unpack cache (``$TINYTORCH_CACHE``, else
  ``<pooch cache>/unpacked``), in a folder named by the archive's hash, so the data root may be
  read-only and a changed archive never reuses a stale unpacking. Unpacking writes into a temporary
  folder that is renamed into place when complete, so a crash never leaves half an unpacking.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .registry import DatasetInfo, RemoteFile

DATA_ENV = "TINYTORCH_DATA"
CACHE_ENV = "TINYTORCH_CACHE"
TRUST_ENV = "TINYTORCH_TRUST_LOCAL"


class DataUnavailableError(FileNotFoundError):
    """A data file is not on this machine and could not be downloaded."""


class DataIntegrityError(ValueError):
    """A data file's hash is neither the official one nor that of a known copy."""


class DataFormatError(ValueError):
    """A data file is truncated, corrupt, or not in the format its data set uses."""


class DerivedCopyWarning(UserWarning):
    """A file is used that is a known copy or a trusted local file, not the official file."""


@dataclass(frozen=True)
class LocalFile:
    """A checked file on disk."""

    path: Path
    hash: str  # its actual hash, "alg:hexdigest", in the algorithm of the hash it was checked against
    status: str  # "official", "known copy" or "trusted"


def _pooch_cache() -> Path:
    import pooch  # imported when first needed: pooch and requests add half a second to `import tinytorch`

    return Path(pooch.os_cache("tinytorch"))


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds one sub-folder per data set."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return _pooch_cache()


def cache_root() -> Path:
    """The writable folder that archives are unpacked into."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return _pooch_cache() / "unpacked"


def trusts_local(trust_local: bool = False) -> bool:
    """Whether local files with unknown hashes may be used (the argument, or ``TINYTORCH_TRUST_LOCAL``)."""
    return trust_local or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside the tinytorch package."""
    package = str(Path(__file__).resolve().parents[2])
    frame, level = sys._getframe(1), 1  # level 1 is the function that warns, the caller of this one
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def hash_of(path: Path, like: str) -> str:
    """The hash of ``path`` in the algorithm of ``like`` (``"md5:..."``), written the same way."""
    algorithm = like.split(":", 1)[0]
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def _hashed(remote: RemoteFile, folder: Path) -> Iterator[tuple[Path, str, str, str | None]]:
    """(path, actual hash, expected hash, note) for the official file, then each known copy, that is
    in ``folder``; each is hashed only when the previous ones have been looked at."""
    candidates = [(remote.name, remote.hash, None)] + [(c.name, c.hash, c.note) for c in remote.copies]
    for name, expected, note in candidates:
        if (folder / name).is_file():
            yield folder / name, hash_of(folder / name, expected), expected, note


def identify(remote: RemoteFile, folder: Path) -> tuple[Path | None, str]:
    """Which local copy of ``remote`` is in ``folder``, and what it is: ``"official"``,
    ``"known copy"``, ``"hash mismatch"`` or ``"missing"`` (path None). Nothing is raised or warned."""
    first = None
    for path, actual, expected, note in _hashed(remote, folder):
        if actual == expected:
            return path, "official" if note is None else "known copy"
        first = first or path
    return (first, "hash mismatch") if first else (None, "missing")


def check_local(info: DatasetInfo, remote: RemoteFile, folder: Path, trust_local: bool = False) -> LocalFile | None:
    """The checked local copy of ``remote`` in ``folder``, or None when there is none.

    Raises :class:`DataIntegrityError` when only files with unknown hashes are there and local
    copies are not trusted.
    """
    mismatch = None
    for path, actual, expected, note in _hashed(remote, folder):
        if actual == expected:
            if note is not None:
                warnings.warn(
                    f"{info.title}: using {path}, which is not the official {remote.name}: {note}",
                    DerivedCopyWarning,
                    stacklevel=_user_stacklevel(),
                )
            return LocalFile(path, actual, "official" if note is None else "known copy")
        mismatch = mismatch or (path, actual, expected)
    if mismatch is None:
        return None
    path, actual, expected = mismatch
    if trusts_local(trust_local):
        warnings.warn(
            f"{info.title}: using {path} although its hash {actual} is not the official {expected}, "
            "because local copies are trusted",
            DerivedCopyWarning,
            stacklevel=_user_stacklevel(),
        )
        return LocalFile(path, actual, "trusted")
    raise DataIntegrityError(
        f"{info.title}: {path} has hash {actual}, but the official {remote.name} has {expected}; refusing to use it. "
        f"If you trust this copy, pass trust_local=True or set {TRUST_ENV}=1; otherwise delete it and "
        f"download {remote.url} again."
    )


def where_to_put(info: DatasetInfo, remote: RemoteFile, folder: Path) -> str:
    """The advice an error gives: the address and the place the file belongs."""
    return (
        f"Download {remote.url} and put it at {folder / remote.name}, "
        f"or set {DATA_ENV} to a folder that holds {info.folder}/{remote.name}."
    )


def download(info: DatasetInfo, remote: RemoteFile, folder: Path) -> LocalFile:
    """Fetch ``remote`` into ``folder`` with pooch, trying its addresses in order."""
    import pooch
    import requests

    reasons = []
    for url in remote.urls:
        try:
            path = pooch.retrieve(url, known_hash=remote.hash, fname=remote.name, path=folder, progressbar=False)
        except (requests.exceptions.RequestException, OSError, ValueError) as error:
            # ValueError: pooch got a file whose hash is not the official one, and deleted it
            reasons.append(f"{url}: {type(error).__name__}: {error}")
            continue
        return LocalFile(Path(path), remote.hash, "official")
    raise DataUnavailableError(
        f"{info.title}: {remote.name} is not in {folder} and could not be downloaded "
        f"({'; '.join(reasons)}). {where_to_put(info, remote, folder)}"
    )


def require(
    info: DatasetInfo,
    root: str | os.PathLike | None = None,
    download_missing: bool = True,
    trust_local: bool = False,
    only: Sequence[str] | None = None,
) -> dict[str, LocalFile]:
    """Every file of ``info`` (or the ones named in ``only``), checked, downloaded when missing."""
    folder = data_root(root) / info.folder
    files = {}
    for remote in info.files:
        if only is not None and remote.name not in only:
            continue
        local = check_local(info, remote, folder, trust_local)
        if local is None:
            if not download_missing:
                raise DataUnavailableError(
                    f"{info.title}: {remote.name} is not in {folder} and download=False. "
                    + where_to_put(info, remote, folder)
                )
            local = download(info, remote, folder)
        files[remote.name] = local
    return files


def unpacked(archive: LocalFile, members: Sequence[str]) -> Path:
    """The folder holding ``members`` (paths inside the tar archive), unpacking them the first time.

    The folder is ``<cache root>/<hash of the archive>``; only the named members are extracted,
    by name, so a hostile archive cannot write outside it.
    """
    target = cache_root() / archive.hash.replace(":", "-")
    if target.is_dir():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=target.parent))
    except OSError as error:
        raise OSError(
            f"cannot unpack {archive.path.name}: the unpack cache {target.parent} is not writable ({error}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from None
    try:
        _extract(archive.path, members, staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another process may have finished the same unpacking first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract(archive: Path, members: Sequence[str], into: Path) -> None:
    wanted = set(members)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile():
                    destination = into / name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as source, open(destination, "wb") as sink:
                        shutil.copyfileobj(source, sink, length=1 << 20)
                    wanted.discard(name)
                    if not wanted:
                        break
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, lzma.LZMAError, zlib.error) as error:
        raise DataFormatError(f"{archive} is not a readable tar archive ({type(error).__name__}: {error})") from None
    if wanted:
        raise DataFormatError(f"{archive} lacks {sorted(wanted)}; it is not the archive this data set expects")
