"""tinytorch.system: version parsing and comparison, and each environment check's verdict and advice."""

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch import system
from tinytorch.core import kernels

releases = st.lists(st.integers(0, 300), min_size=1, max_size=4).map(tuple)
suffixes = st.sampled_from(["", "rc1", "a2", "b3", ".dev0", "+cpu", ".post1", "-beta", " "])


def dotted(release):
    return ".".join(map(str, release))


@given(releases, suffixes)
def test_parse_version_reads_the_release_and_ignores_suffixes(release, suffix):
    assert system.parse_version(dotted(release) + suffix) == release


@pytest.mark.parametrize(
    "text, expected",
    [("3.11.7", (3, 11, 7)), ("2.13.0+cpu", (2, 13, 0)), ("1.27.dev0", (1, 27)), (" 12.0.1\n", (12, 0, 1)), ("10", (10,))],
)
def test_parse_version_examples(text, expected):
    assert system.parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "unknown", "v3.11", ".3", "rc1"])
def test_parse_version_rejects_text_without_a_leading_number(text):
    with pytest.raises(ValueError, match=f"parse_version: {text!r} does not start with a version number"):
        system.parse_version(text)


def padded(release, width):
    return release + (0,) * (width - len(release))


@given(releases, releases, st.booleans(), st.booleans())
def test_version_at_least_compares_numbers_padded_with_zeros(have, need, have_as_text, need_as_text):
    width = max(len(have), len(need))
    expected = padded(have, width) >= padded(need, width)
    version = dotted(have) if have_as_text else have
    minimum = dotted(need) if need_as_text else need
    assert system.version_at_least(version, minimum) is expected


def test_version_at_least_is_not_a_string_comparison():
    assert not system.version_at_least("3.9.18", "3.11")
    assert system.version_at_least("3.10", (3, 9, 9))
    assert system.version_at_least((3, 11), "3.11.0rc1")


def test_python_and_numpy_checks_name_the_minimum():
    old = system.check_python("3.10.12")
    assert (old.name, old.ok, old.required) == ("Python", False, True)
    assert old.detail == "Python 3.10.12 is too old: TinyTorch needs 3.11 or newer"
    assert system.check_python("3.11.0").ok and system.check_python().ok
    assert system.check_numpy("1.25.2").detail == "NumPy 1.25.2 is too old: TinyTorch needs 1.26 or newer"
    assert system.check_numpy().ok and system.check_numpy().detail == f"NumPy {np.__version__}"


def test_compiler_is_found_through_cc(monkeypatch, tmp_path):
    compiler = tmp_path / "my-cc"
    compiler.write_text("#!/bin/sh\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CC", f"{compiler} -pthread")
    assert system.find_c_compiler() == str(compiler)
    assert system.check_compiler() == system.Check("C compiler", True, str(compiler))


def test_a_missing_compiler_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "absent-cc"))
    check = system.check_compiler()
    assert not check.ok and f"CC={tmp_path / 'absent-cc'} is set but not found" in check.detail
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no cc, gcc or clang
    monkeypatch.setattr(system.sysconfig, "get_config_var", lambda name: "gcc -pthread")
    assert system.find_c_compiler() is None
    check = system.check_compiler()
    assert (check.ok, check.required) == (False, True) and "apt install build-essential" in check.detail


def test_kernels_check_follows_the_registry(monkeypatch):
    if kernels.compiled_available():
        assert system.check_kernels().ok
        with kernels.use("reference"):
            check = system.check_kernels()
        assert check.ok and "the reference backend is active" in check.detail
    monkeypatch.setattr(kernels, "compiled_available", lambda: False)
    check = system.check_kernels()
    assert not check.ok and check.required and kernels.BUILD_COMMAND in check.detail
    assert system.check_openmp() == system.Check("OpenMP", False, "no compiled kernels, so no threads", required=False)


def test_openmp_check_reports_threads(monkeypatch):
    monkeypatch.setattr(kernels, "compiled_available", lambda: True)
    monkeypatch.setattr(kernels, "openmp_enabled", lambda: True)
    monkeypatch.setattr(kernels, "get_num_threads", lambda: 3)
    assert system.check_openmp() == system.Check("OpenMP", True, "enabled, 3 thread(s)", required=False)
    monkeypatch.setattr(kernels, "openmp_enabled", lambda: False)
    check = system.check_openmp()
    assert not check.ok and not check.required and "without OpenMP" in check.detail


def test_optional_packages_are_reported_not_required():
    absent = system.check_optional_package("tinytorch_no_such_package", "nothing")
    assert absent == system.Check("tinytorch_no_such_package", False, "not installed (optional: nothing)", required=False)
    present = system.check_optional_package("numpy", "arrays")
    assert present.ok and present.detail == f"{np.__version__} (arrays)"


def test_run_checks_and_environment_ok():
    checks = system.run_checks()
    names = [c.name for c in checks]
    assert names == ["Python", "NumPy", "C compiler", "compiled kernels", "OpenMP", "torch"]
    assert [c.name for c in checks if not c.required] == ["OpenMP", "torch"]
    assert all(isinstance(c.ok, bool) and c.detail for c in checks)
    optional_failure = system.Check("torch", False, "not installed", required=False)
    required_failure = system.Check("Python", False, "too old")
    passed = system.Check("NumPy", True, "NumPy 2.0")
    assert system.environment_ok([passed, optional_failure])
    assert not system.environment_ok([passed, required_failure])


def test_checks_never_import_torch(monkeypatch):
    # With None in sys.modules, any `import torch` raises ImportError, and find_spec reports no torch.
    monkeypatch.setitem(sys.modules, "torch", None)
    checks = {c.name: c for c in system.run_checks()}
    assert checks["torch"] == system.Check(
        "torch", False, "not installed (optional: tests use it as an oracle and skip those comparisons without it)", required=False
    )
