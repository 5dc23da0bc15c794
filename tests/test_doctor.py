"""tito system doctor / info / map: every check with its fix, a non-zero exit when something required is
missing (a kernel build, a data set), and a course map that cannot lie about the imports."""

import shutil
from pathlib import Path

import pytest

from tinytorch import doctor
from tinytorch.cli import main
from tinytorch.core import kernels
from tinytorch.core.blas_wait import blas_wait_policy
from tinytorch.coursemap import BOTTOM, TOOLS, CourseMap

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data from the project root


def tito(capsys, monkeypatch, *argv):
    monkeypatch.setenv("COLUMNS", "250")
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.fixture
def complete_data(tmp_path, monkeypatch):
    """A data folder holding every data set the course reads (the course machines' copies, linked)."""
    if not all((SHARED / name).is_dir() for name in doctor.COURSE_DATA):
        pytest.skip("the course machines' data sets (../shared/data) are not on this machine")
    root = tmp_path / "data"
    root.mkdir()
    for name in doctor.COURSE_DATA:
        (root / name).symlink_to(SHARED / name, target_is_directory=True)
    monkeypatch.setenv("TINYTORCH_DATA", str(root))
    return root


def test_doctor_passes_with_everything_there(capsys, monkeypatch, complete_data):
    code, out = tito(capsys, monkeypatch, "system", "doctor")
    assert code == 0 and "Ready" in out
    for name in ("Python", "NumPy", "C compiler", "compiled kernels", "lessons", "data set mnist", "data set cifar10"):
        assert name in out
    assert "✗" not in out.split("extra")[0]


def test_a_missing_data_set_fails_the_doctor_with_its_fix(capsys, monkeypatch, complete_data):
    (complete_data / "fashion-mnist").unlink()
    code, out = tito(capsys, monkeypatch, "system")  # plain `tito system` is the doctor
    assert code == 1 and "Not ready: data set fashion-mnist missing or broken" in out
    assert "✗ │ data set fashion-mnist" in out
    finding = next(f for f in doctor.data_findings() if f.name == "data set fashion-mnist")
    assert not finding.ok and "missing" in finding.detail
    assert finding.fix.startswith("export TINYTORCH_DATA=../shared/data") and "tito data fetch fashion-mnist" in finding.fix


def test_a_missing_kernel_build_fails_the_doctor_with_the_build_command(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "compiled_available", lambda: False)  # as if the extensions had never been built
    findings = {f.name: f for f in doctor.run_doctor(tmp_path)}
    assert not findings["compiled kernels"].ok and findings["compiled kernels"].fix == kernels.BUILD_COMMAND
    assert not doctor.healthy(findings.values())
    code, out = tito(capsys, monkeypatch, "system", "doctor", f"--data={tmp_path}")
    assert code == 1 and "compiled kernels" in out.split("Not ready:")[1]
    assert "setup.py build_ext --inplace" in out


def test_optional_extras_are_reported_from_the_package_metadata(monkeypatch):
    extras = doctor.extras()
    assert extras["plot"] == ["matplotlib"] and "sphinx" in extras["docs"] and "dev" not in extras
    monkeypatch.setattr(doctor, "_installed", lambda name: None if name == "scipy" else "1.0")
    stats = next(f for f in doctor.extra_findings() if f.name == "extra [stats]")
    assert not stats.ok and not stats.required and stats.fix == 'pip install "tinytorch[stats]"'


def test_info_reads_the_build_flags_from_the_binaries(capsys, monkeypatch, tmp_path):
    if not kernels.compiled_available():
        pytest.skip("the compiled kernels are not built here")
    modules = doctor.compiled_modules()
    assert set(modules) == set(kernels.COMPILED_MODULES)
    assert all("-O3" in flags for flags in modules.values()), modules
    fake = tmp_path / "fake.so"
    fake.write_bytes(b"\x00ELF...\x00GNU C17 12.2.0 -march=znver3 -mmmx -g -O3 -fPIC -fopenmp\x00rest")
    assert doctor.build_flags(fake) == ["-march=znver3", "-O3", "-fopenmp"]
    fake.write_bytes(b"stripped")
    assert doctor.build_flags(fake) == []
    code, out = tito(capsys, monkeypatch, "system", "info")
    assert code == 0 and "_kernels.conv" in out and "-O3" in out and "TinyTorch" in out and "extra [plot]" in out


def test_info_says_whether_the_blas_threads_sleep_between_products():
    policy = doctor.info()["machine"]["BLAS threads between products"]
    assert policy == blas_wait_policy() and "OPENBLAS_THREAD_TIMEOUT" in policy


def test_info_says_where_matrix_products_run():
    where = doctor.info()["machine"]["matrix products"]
    assert where == kernels.products() and where.startswith("on ")


def test_the_course_map_follows_the_lessons(capsys, monkeypatch):
    course = CourseMap.measure()
    assert course.violations() == []
    assert course.place("tinytorch.core.tensor") == BOTTOM and course.place("tinytorch.cli.system") == TOOLS
    assert course.place("tinytorch.core.data.files") == "08" and course.place("tinytorch.core.losses") == "11"
    assert all(place for place in course.places.values())
    code, out = tito(capsys, monkeypatch, "system", "map")
    assert code == 0 and "every import follows the course order" in out
    assert "06 Spatial: convolution and pooling → checkpoint 05 Learning" in out


def test_an_import_against_the_course_order_is_found(tmp_path):
    package = tmp_path / "tinytorch"
    shutil.copytree(Path(__file__).resolve().parents[1] / "tinytorch", package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    layers = package / "core" / "layers.py"
    layers.write_text(layers.read_text() + "\n\ndef _late():\n    from .optimizers import SGD  # lesson 04 reaching into lesson 10\n    return SGD\n")
    tensor = package / "core" / "tensor.py"
    tensor.write_text(tensor.read_text() + "\nif TYPE_CHECKING:\n    from .training import Trainer  # never runs: not an import\n")
    kernels_file = package / "core" / "kernels.py"
    kernels_file.write_text(kernels_file.read_text() + "\nfrom tinytorch.core import networks  # the bottom layer reaching up\n")
    problems = CourseMap.measure(package).violations()
    assert problems == [
        "tinytorch.core.kernels (bottom layer) imports tinytorch.core.networks (lesson 05, above it)",
        "tinytorch.core.layers (lesson 04) imports tinytorch.core.optimizers (lesson 10), which comes later",
    ]
