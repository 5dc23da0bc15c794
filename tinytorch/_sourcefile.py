"""Import a Python file by its path: a student's workspace, or a kernel module a student registers."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def import_file(path: Path, module_name: str, what: str) -> ModuleType:
    """Run the file at ``path`` as a fresh module named ``module_name``; ``what`` names it in the error."""
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
