"""Collect submissions into the gradebook: from a folder of per-student folders or zip files.

``SOURCE/<student>/`` (any layout beneath, up to :data:`MAX_DEPTH` folders deep) or
``SOURCE/<student>.zip``: every file named like a course lesson (``06_spatial.py``) is read into
memory and stored in the gradebook; nothing is ever extracted to disk. Refused, and recorded in
``collect_problems``:

- a student name that is not a plain identifier (letters, digits, ``.``, ``_``, ``-``, ``@``);
- links and special files (never followed), files larger than :data:`MAX_FILE_BYTES`, more than
  :data:`MAX_STUDENT_BYTES` per student, two files for one lesson;
- archives that are not zip files, are encrypted, hold an entry with an absolute path or a ``..``
  component (the whole archive is refused), a link, too many entries, or an entry whose declared
  or actual size exceeds the limits (zip bombs are read with a bounded reader, never inflated).

The submission time is the collector's clock (or the time the instructor gives with ``--at``),
never anything read from the student's files. A file identical to the student's latest
submission of that lesson is not collected again, so its time stays the time it was first
collected.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tinytorch.lesson import Lesson

from .gradebook import Gradebook
from .static import analyse, reflection_rows

MAX_FILE_BYTES = 1 << 20
MAX_STUDENT_BYTES = 16 << 20
MAX_ARCHIVE_ENTRIES = 2000
MAX_DEPTH = 4
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass
class CollectReport:
    """What one collect run did."""

    new: list[tuple[str, str]] = field(default_factory=list)  # (student, lesson)
    unchanged: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (source, problem)


class Refused(ValueError):
    """A file or archive collect will not take; the message says why."""


def collect(gradebook: Gradebook, source: Path, lessons: list[Lesson], collected_at: str) -> CollectReport:
    """Import every student folder and zip file in ``source`` into ``gradebook``."""
    source = Path(source)
    if not source.is_dir():
        raise NotADirectoryError(f"tito grade collect: {source} is not a folder of student folders or zip files")
    by_file = {f"{lesson.name}.py": lesson for lesson in lessons}
    report = CollectReport()
    for entry in sorted(source.iterdir()):
        student = entry.stem if entry.suffix == ".zip" else entry.name
        label = entry.name
        try:
            if not STUDENT_ID.match(student):
                raise Refused(f"{student!r} is not a student name (letters, digits, '.', '_', '-', '@'; at most 64)")
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise Refused("a link; collect follows no links")
            if stat.S_ISDIR(mode):
                files = _folder_files(entry, by_file)
            elif stat.S_ISREG(mode) and entry.suffix == ".zip":
                files = _archive_files(entry, by_file)
            else:
                raise Refused("neither a student folder nor a .zip file")
        except Refused as problem:
            gradebook.add_collect_problem(student if STUDENT_ID.match(student) else None, label, str(problem))
            report.problems.append((label, str(problem)))
            continue
        gradebook.add_student(student)
        for name, (content, problem) in sorted(files.items()):
            if problem:
                gradebook.add_collect_problem(student, f"{label}/{name}", problem)
                report.problems.append((f"{label}/{name}", problem))
                continue
            lesson = by_file[name]
            digest = hashlib.sha256(content).hexdigest()
            latest = gradebook.latest(student, lesson.name)
            if latest is not None and latest.sha256 == digest:
                report.unchanged.append((student, lesson.name))
                continue
            analysis = analyse(content, lesson)
            gradebook.add_submission(student, lesson.name, digest, content, collected_at, label, reflection_rows(analysis, lesson))
            report.new.append((student, lesson.name))
            if analysis.reflections_problem:  # collected all the same; the answers could not be read
                gradebook.add_collect_problem(student, f"{label}/{name}", analysis.reflections_problem)
                report.problems.append((f"{label}/{name}", analysis.reflections_problem))
    return report


def _folder_files(folder: Path, by_file: dict[str, Lesson]) -> dict[str, tuple[bytes, str | None]]:
    """Lesson files in a student's folder: name -> (content, problem)."""
    found: dict[str, tuple[bytes, str | None]] = {}
    total = 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        depth = len(Path(root).relative_to(folder).parts)
        if depth >= MAX_DEPTH:
            dirs.clear()
        dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d))]
        for name in names:
            if name not in by_file:
                continue
            path = Path(root) / name
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                found[name] = (b"", f"{path.relative_to(folder)} is a link or special file; refused")
                continue
            if info.st_size > MAX_FILE_BYTES:
                found[name] = (b"", f"{path.relative_to(folder)} is {info.st_size} bytes; the limit is {MAX_FILE_BYTES}")
                continue
            total += info.st_size
            if total > MAX_STUDENT_BYTES:
                raise Refused(f"more than {MAX_STUDENT_BYTES} bytes of lesson files")
            content = _read_regular(path)
            found[name] = (b"", f"two files for lesson {name}; refused both") if name in found else (content, None)
    return found


def _read_regular(path: Path) -> bytes:
    """Read a regular file without following a link swapped in after it was checked."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(f"{path.name} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise Refused(f"{path.name} grew beyond {MAX_FILE_BYTES} bytes while being read")
    return data


def _archive_files(path: Path, by_file: dict[str, Lesson]) -> dict[str, tuple[bytes, str | None]]:
    """Lesson files in a student's zip archive, read in memory with bounded reads."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise Refused(f"not a readable zip archive ({error})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ARCHIVE_ENTRIES:
            raise Refused(f"{len(entries)} entries; the limit is {MAX_ARCHIVE_ENTRIES}")
        for info in entries:
            _check_entry(info)
        found: dict[str, tuple[bytes, str | None]] = {}
        total = 0
        for info in entries:
            name = PurePosixPath(info.filename).name
            if info.is_dir() or name not in by_file:
                continue
            if len(PurePosixPath(info.filename).parts) > MAX_DEPTH + 1:
                continue
            if info.file_size > MAX_FILE_BYTES:
                found[name] = (b"", f"{info.filename} is {info.file_size} bytes; the limit is {MAX_FILE_BYTES}")
                continue
            try:
                with archive.open(info) as member:
                    content = member.read(MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as error:
                found[name] = (b"", f"{info.filename} cannot be read ({error})")
                continue
            if len(content) > MAX_FILE_BYTES:
                found[name] = (b"", f"{info.filename} inflates beyond {MAX_FILE_BYTES} bytes")
                continue
            total += len(content)
            if total > MAX_STUDENT_BYTES:
                raise Refused(f"more than {MAX_STUDENT_BYTES} bytes of lesson files")
            found[name] = (b"", f"two files for lesson {name}; refused both") if name in found else (content, None)
    return found


def _check_entry(info: zipfile.ZipInfo) -> None:
    """Refuse the archive for an entry that would escape it, a link, or an encrypted entry."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise Refused(f"the entry {name!r} points outside the archive; archive refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise Refused(f"the entry {name!r} is a link; archive refused")
    if info.flag_bits & 0x1:
        raise Refused(f"the entry {name!r} is encrypted; archive refused")
