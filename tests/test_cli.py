"""The tito command line and the grading behind it, driven as a student and an instructor would."""

import json
import subprocess
import sys

import pytest

from tinytorch.grading.workspace import count_words
from tinytorch.cli import main

SOLUTION_02 = "from tinytorch.core.tensor import broadcast_shape, contiguous_strides\n"


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_version_and_help_from_the_installed_script():
    out = subprocess.run([sys.executable, "-m", "tinytorch.cli", "--version"], capture_output=True, text=True, check=True)
    import tinytorch

    assert out.stdout.strip() == f"tinytorch {tinytorch.__version__}"
    help_text = subprocess.run([sys.executable, "-m", "tinytorch.cli", "--help"], capture_output=True, text=True, check=True)
    from tinytorch.cli import COMMANDS

    assert all(f"  {command} " in help_text.stdout for command in COMMANDS)  # every command is listed
    help_text = subprocess.run([sys.executable, "-m", "tinytorch.cli", "module", "--help"], capture_output=True, text=True, check=True)
    assert "tito module start <lesson>" in help_text.stdout


def test_an_unknown_command_is_named(capsys):
    code, out = run(capsys, "moduel")
    assert code == 2 and "'moduel'" in out and "module" in out


def test_system_reports_every_check(capsys):
    from tinytorch.doctor import healthy, run_doctor

    code, out = run(capsys, "system")
    assert code == (0 if healthy(run_doctor()) else 1)  # data sets may be missing here; tests/test_doctor.py covers both
    for name in ("Python", "NumPy", "C compiler", "compiled kernels", "OpenMP"):
        assert name in out


def test_kernels_lists_the_registry(capsys):
    code, out = run(capsys, "kernels")
    assert code == 0 and "softmax_forward" in out and "backend: compiled" in out


def test_module_start_test_and_status(capsys, tmp_path):
    ws = str(tmp_path / "ws")
    code, out = run(capsys, "module", "start", "02", f"--workspace={ws}")
    assert code == 0 and "02_tensor.py" in out
    stub = tmp_path / "ws" / "02_tensor.py"
    assert "raise NotImplementedError" in stub.read_text()

    code, out = run(capsys, "module", "start", "02", f"--workspace={ws}")
    assert code == 1 and "already exists" in out

    code, out = run(capsys, "module", "test", "02", f"--workspace={ws}", "--quiet")
    assert code == 1 and "not written" in out

    stub.write_text("from tinytorch.core.tensor import broadcast_shape\n\ndef contiguous_strides(shape, itemsize):\n    raise NotImplementedError\n")
    code, out = run(capsys, "module", "status", f"--workspace={ws}")
    assert "1 / 2" in out

    stub.write_text(SOLUTION_02)
    code, out = run(capsys, "module", "test", "02", f"--workspace={ws}", "--quiet")
    assert code == 0 and "passed" in out


def test_module_test_without_a_workspace_says_how_to_start(capsys, tmp_path):
    code, out = run(capsys, "module", "test", "02", f"--workspace={tmp_path}")
    assert code == 1 and "tito module start 02" in out


def test_data_status_on_an_empty_folder(capsys, tmp_path):
    code, out = run(capsys, "data", "status", f"--root={tmp_path}")
    assert code == 0 and "missing" in out and "cifar" in out.lower()


def test_count_words():
    assert count_words("It's a well-known fact, isn't it?") == 6


def test_without_options_the_workspace_and_data_folders_come_from_the_environment(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINYTORCH_WORKSPACE", str(tmp_path / "my_work"))
    code, out = run(capsys, "module", "start", "02")
    assert code == 0 and (tmp_path / "my_work" / "02_tensor.py").is_file()
    monkeypatch.delenv("TINYTORCH_WORKSPACE")
    code, out = run(capsys, "module", "start", "09")
    assert code == 0 and (tmp_path / "workspace" / "09_autograd.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_work", "workspace"]

    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "data"))
    code, out = run(capsys, "data", "status")
    assert code == 0 and "data" in out and "TINYTORCH_DATA" not in out and "pooch" not in out
