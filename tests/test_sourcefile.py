"""Importing a student's file by path always runs its current source."""

import os

import pytest

from tinytorch._sourcefile import import_file


def test_a_file_rewritten_within_the_same_second_runs_its_new_code(tmp_path):
    path = tmp_path / "work.py"
    path.write_text("def f(v):\n    return v * v\n")
    assert import_file(path, "work_module", "workspace file").f(3) == 9
    stat = path.stat()
    path.write_text("def f(v):\n    return v + v\n")  # same size ...
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the same modification time
    assert import_file(path, "work_module", "workspace file").f(3) == 6


def test_a_dataclass_in_the_file_works(tmp_path):
    path = tmp_path / "shapes.py"
    path.write_text("from dataclasses import dataclass\n@dataclass\nclass P:\n    x: 'int'\n")
    assert import_file(path, "shapes_module", "workspace file").P(2).x == 2


def test_a_missing_file_names_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no workspace file at .*nothing.py"):
        import_file(tmp_path / "nothing.py", "m", "workspace file")
