"""Import a Python file by its path: a student's workspace, or a kernel module a student registers."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType


def import_file(path: Path, module_name: str, what: str) -> ModuleType:
    """Run the file at ``path`` as a fresh module named ``module_name``; ``what`` names it in the error.

    The source is compiled afresh each time, never read from a ``.pyc``: Python's bytecode cache
    is keyed on the file's size and its modification time in whole seconds, so a student's file
    edited and run again within a second (same size, ``v * v`` became ``v + v``) would silently
    run the old code.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    module = ModuleType(module_name)
    module.__file__ = str(path)
    code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    sys.modules[module_name] = module  # classes defined in the file (dataclasses) look their module up here
    try:
        exec(code, module.__dict__)
    finally:
        sys.modules.pop(module_name, None)
    return module
