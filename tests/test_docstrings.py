"""Every example in the framework's docstrings runs and gives what it shows."""

import doctest
import importlib
import pkgutil

import pytest

import tinytorch

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(tinytorch.__path__, prefix="tinytorch.")
    if not m.name.startswith("tinytorch._kernels.") or m.name == "tinytorch._kernels.reference"
    if m.name not in ("tinytorch.cli.__main__",)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
