"""The student's path through tito, as a new student walks it: start, a stub, a wrong attempt, the right
one, the unlocked checkpoint in status and timeline, and a program that runs on the student's code."""

import json
import textwrap

import pytest

from tinytorch.checkpoints import CHECKPOINTS, leading_lessons
from tinytorch.cli import main

AVAILABLE = sum(c.number in leading_lessons() and c.module is not None for c in CHECKPOINTS)

WRONG = textwrap.dedent('''
    import tinytorch as tt

    def leaky_relu(x, negative_slope=0.01):
        return tt.where(x > 0, x, x * negative_slope)

    def softmax(x, axis=-1):
        e = x.exp()                                    # no shift: overflows for large logits
        return e / e.sum(axis=axis, keepdims=True)

    def log_softmax(x, axis=-1):
        return x                                       # forgot the normaliser
''')
RIGHT = textwrap.dedent('''
    from pathlib import Path

    import tinytorch as tt

    def leaky_relu(x, negative_slope=0.01):
        with open(Path(__file__).with_name("leaky_relu_calls.txt"), "a") as calls:
            calls.write("called\\n")
        return tt.where(x > 0, x, x * negative_slope)

    def softmax(x, axis=-1):
        e = (x - x.max(axis=axis, keepdims=True)).exp()
        return e / e.sum(axis=axis, keepdims=True)

    def log_softmax(x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()
''')
PROGRAM = textwrap.dedent('''
    import sys
    import tinytorch as tt

    net = tt.Sequential(tt.Dense(3, 4), tt.LeakyReLU(0.1), tt.Dense(4, 2))
    for _ in range(int(sys.argv[1])):
        net(tt.randn(5, 3)).sum().backward()
''')


def tito(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().out


def calls(folder) -> int:
    path = folder / "leaky_relu_calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_new_student_from_the_stub_to_the_unlocked_checkpoint(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    ws = tmp_path / "ws"
    option = f"--workspace={ws}"

    # a fresh workspace: nothing measured, and nothing claimed
    code, out = tito(capsys, "checkpoint", "status", option)
    assert code == 0 and f"0 of {AVAILABLE} available checkpoints passed" in out and "passed " not in out.split("available")[0]
    assert out.count("lesson not available") == 16 - AVAILABLE and out.count("nothing measured yet") == AVAILABLE

    code, out = tito(capsys, "module", "start", "03", option)
    assert code == 0 and (ws / "03_activations.py").is_file()

    # the stub: the checkpoint fails, and says which functions are missing
    code, out = tito(capsys, "checkpoint", "test", "02", option)
    assert code == 1 and "leaky_relu is still a stub" in out and "log_softmax is still a stub" in out

    # a wrong attempt: the lesson says which exercises fail, nothing is exported, the checkpoint fails on what it measured
    (ws / "03_activations.py").write_text(WRONG)
    code, out = tito(capsys, "module", "complete", "03", option, "--quiet")
    assert code == 1 and "lesson 03_activations is not complete: softmax, log_softmax still fail(s)" in out
    code, out = tito(capsys, "checkpoint", "test", "02", option)
    assert code == 1 and "✗ checkpoint 02 Intelligence failed: every probability and log-probability is finite" in out
    record = json.loads((ws / "progress.json").read_text())
    assert record["lessons"] == {} and record["checkpoints"]["02"]["status"] == "failed"

    # the right one: exported, the checkpoint runs on the student's functions and unlocks
    (ws / "03_activations.py").write_text(RIGHT)
    code, out = tito(capsys, "export", "03", option, "--quiet")  # the original course's spelling of module complete
    assert code == 0, out
    assert "lesson 03_activations complete" in out and "Unlocked: 02 Intelligence" in out
    assert "yours: leaky_relu (03_activations.py), called" in out
    checkpoint_calls = json.loads((ws / "progress.json").read_text())["checkpoints"]["02"]["functions"]
    assert checkpoint_calls["tinytorch.core.activations.leaky_relu"]["calls"] > 100  # every forward of the network

    code, out = tito(capsys, "checkpoint", "status", option)
    assert "✓ passed" in out and "nonlinear network, held-out accuracy = 1" in out
    assert f"1 of {AVAILABLE} available checkpoints passed" in out
    code, out = tito(capsys, "checkpoint", "timeline", option)
    assert "● 02 Intelligence" in out and "○ 03 Components" in out
    code, out = tito(capsys, "checkpoint", "timeline", "--horizontal", option)
    assert out.splitlines()[0].startswith("○┄┄○┄┄●──○")
    code, out = tito(capsys, "module", "status", option)
    assert "leaky_relu, softmax, log_softmax" in out and "3 / 3" in out

    # any program runs on the student's functions, and only while it runs
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    before = calls(ws)
    code, out = tito(capsys, "run", option, str(program), "7")
    assert code == 0 and calls(ws) - before == 7
    assert "yours: leaky_relu (03_activations.py): called 7 time(s)" in out
    from tinytorch.core import exercises

    assert exercises.substitutes() == {}

    # a change to the file makes the recorded result stale, and the detailed view says why
    with open(ws / "03_activations.py", "a") as workspace_file:
        workspace_file.write("# tidied up\n")
    code, out = tito(capsys, "checkpoint", "status", "--detailed", option)
    assert "! stale" in out and "stale: 03_activations.py changed after the run" in out
    assert f"0 of {AVAILABLE} available checkpoints passed" in out


def test_module_reset_keeps_a_backup_and_list_shows_the_course(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    ws = tmp_path / "ws"
    tito(capsys, "module", "start", "03", f"--workspace={ws}")
    (ws / "03_activations.py").write_text(RIGHT)
    code, out = tito(capsys, "module", "reset", "03", f"--workspace={ws}")
    assert code == 0 and "kept your file as" in out
    backups = list((ws / "backup").glob("03_activations.*.py"))
    assert len(backups) == 1 and backups[0].read_text() == RIGHT
    assert "raise NotImplementedError" in (ws / "03_activations.py").read_text()
    code, out = tito(capsys, "module", "list", f"--workspace={ws}")
    assert code == 0 and "02 Intelligence" in out and "tito module start 02" in out


def test_checkpoint_commands_explain_what_they_cannot_do(capsys, tmp_path, monkeypatch):
    with monkeypatch.context() as patched:
        patched.setenv("TINYTORCH_LESSONS", str(tmp_path))  # a course with no lesson written yet
        code, out = tito(capsys, "checkpoint", "test", "06", f"--workspace={tmp_path}")
    assert code == 1 and "lesson not available" in out
    code, out = tito(capsys, "checkpoint", "test", "99")
    assert code == 2 and "no checkpoint '99'" in out
    code, out = tito(capsys, "checkpoint", "run", "01", f"--workspace={tmp_path / 'nowhere'}")
    assert code == 1 and "no workspace folder" in out and "--framework" in out
    code, out = tito(capsys, "checkpoint", "run", "01", "--framework")
    assert code == 0 and "broadcast shapes predicted" in out and "passed" in out
    code, out = tito(capsys, "test", "02", f"--workspace={tmp_path}")  # the original course's spelling of module test
    assert code == 1 and "tito module start 02" in out


@pytest.mark.parametrize("argv", [["run", "missing.py"], ["run", "--workspace=/nowhere", __file__]])
def test_tito_run_refuses_what_it_cannot_run(capsys, argv):
    code, out = tito(capsys, *argv)
    assert code == 2 and ("no program at" in out or "not a workspace folder" in out)
