"""The capability checkpoints: each whose lesson exists passes on the framework's code and fails on a
stub workspace naming what is missing; the others are "lesson not available", never passed."""

import contextlib
import dataclasses
import shutil
from pathlib import Path

import pytest

import tinytorch.checkpoints
from tinytorch import lesson as lesson_runner
from tinytorch.checkpoints import CHECKPOINTS, get, leading_lessons, runner, status
from tinytorch.checkpoints.status import NOT_RUN, STALE, standings
from tinytorch.workspace import progress

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data from the project root
# the checkpoints that learn from real data, and the data sets they read
REAL_DATA = {"05": ("mnist",), "07": ("fashion-mnist",), "10": ("mnist",), "11": ("mnist",), "15": ("tinyshakespeare", "cifar10")}
LEADING = leading_lessons()
AVAILABLE = [c for c in CHECKPOINTS if c.number in LEADING and c.module is not None]


def with_real_data(checkpoint, monkeypatch):
    needed = REAL_DATA.get(checkpoint.number, ())
    absent = [name for name in needed if not (SHARED / name).is_dir()]
    if absent:
        pytest.skip(f"checkpoint {checkpoint.title} learns from {', '.join(absent)}, and the course machines' copy (../shared/data) is not here")
    if needed:
        monkeypatch.setenv("TINYTORCH_DATA", str(SHARED))


def test_each_learning_checkpoint_names_its_data_sets_as_a_tuple():
    from tinytorch.checkpoints.data import TITLES

    # a bare string here would be read letter by letter, and the checkpoint's test skipped for want of "m", "n" ...
    assert all(isinstance(names, tuple) and set(names) <= set(TITLES) for names in REAL_DATA.values()), REAL_DATA


def test_the_sixteen_checkpoints_and_their_lessons():
    assert [c.number for c in CHECKPOINTS] == [f"{i:02d}" for i in range(16)]
    assert get("learning") is get("5") is get("05")
    numbers = [lesson.checkpoint for lesson in lesson_runner.find_lessons() if lesson.checkpoint != "--"]
    assert len(numbers) == len(set(numbers)), "two lessons lead to the same checkpoint"
    for lesson in lesson_runner.find_lessons():
        if lesson.checkpoint != "--":
            assert int(lesson.checkpoint) == int(lesson.number) - 1, f"lesson {lesson.name} leads to checkpoint {lesson.checkpoint}"
    # every checkpoint whose lesson has landed has its capability test
    assert [c.number for c in CHECKPOINTS if c.number in LEADING and c.module is None] == []


@pytest.mark.parametrize("checkpoint", AVAILABLE, ids=lambda c: c.title)
def test_checkpoint_passes_on_the_framework(checkpoint, monkeypatch):
    with_real_data(checkpoint, monkeypatch)
    result = runner.run(checkpoint.number)
    assert result.passed, f"{checkpoint.title}: {result.failure}"
    assert result.against == "framework" and result.functions == {} and result.lesson == LEADING[checkpoint.number].name
    assert len(result.measurements) >= 3 and all(m.ok for m in result.measurements)
    assert any(m.bound for m in result.measurements), "a capability test measures something against a bound"


@pytest.mark.parametrize("checkpoint", AVAILABLE, ids=lambda c: c.title)
def test_checkpoint_fails_on_a_stub_workspace_naming_what_is_missing(checkpoint, tmp_path):
    lesson = LEADING[checkpoint.number]
    for earlier in runner.lessons_up_to(lesson):
        if earlier.exercises:
            lesson_runner.write_stub(earlier, tmp_path / f"{earlier.name}.py")
    result = runner.run(checkpoint.number, tmp_path)
    assert result.status == runner.FAILED and not result.measurements
    assert f"lesson {lesson.name}" in result.failure
    for name in lesson.exercises:
        assert f"{name} is still a stub (raises NotImplementedError)" in result.failure
    assert set(result.files) == {f"{l.name}.py" for l in runner.lessons_up_to(lesson) if l.exercises}


def test_without_its_data_a_learning_checkpoint_fails_and_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_DATA", str(tmp_path / "empty"))
    result = runner.run("05")
    assert result.status == runner.FAILED
    assert "real MNIST handwritten digits" in result.failure and "t10k-images-idx3-ubyte.gz" in result.failure
    assert "TINYTORCH_DATA=../shared/data" in result.failure and "tito data fetch mnist" in result.failure


def test_checkpoints_whose_lesson_is_missing_are_not_available(tmp_path, monkeypatch):
    folder = tmp_path / "lessons"  # a course whose lessons 07 on are not written yet
    folder.mkdir()
    for lesson in lesson_runner.find_lessons()[:7]:
        shutil.copy(lesson.path, folder)
    monkeypatch.setenv("TINYTORCH_LESSONS", str(folder))
    missing = [c for c in CHECKPOINTS if c.number not in leading_lessons()]
    assert [c.number for c in missing] == [f"{i:02d}" for i in range(6, 16)]
    for checkpoint in missing:
        assert runner.run(checkpoint.number, tmp_path).status == runner.NO_LESSON
    rows = {row.checkpoint.number: row for row in standings(tmp_path)}
    assert {n for n, row in rows.items() if row.state == runner.NO_LESSON} == {c.number for c in missing}
    assert {n for n, row in rows.items() if row.state == NOT_RUN} == {f"{i:02d}" for i in range(6)}
    assert not (tmp_path / progress.PROGRESS_FILE).exists()  # reading the status writes nothing


def test_a_lesson_that_lands_without_a_test_is_listed_as_such_never_passed(tmp_path, monkeypatch):
    folder = tmp_path / "lessons"
    folder.mkdir()
    (folder / "07_attention.rst").write_text(":lesson: 07\n:title: Attention\n:module: tinytorch/core/layers.py\n"
                                             ":exercises:\n:checkpoint: 06\n\nAttention\n=========\n")
    monkeypatch.setenv("TINYTORCH_LESSONS", str(folder))
    untested = tuple(dataclasses.replace(c, module=None) if c.number == "06" else c for c in CHECKPOINTS)
    monkeypatch.setattr(tinytorch.checkpoints, "CHECKPOINTS", untested)  # as if its test were not written
    monkeypatch.setattr(status, "CHECKPOINTS", untested)
    assert runner.run("06").status == runner.NO_TEST
    assert {row.checkpoint.number: row.state for row in standings(tmp_path)}["06"] == runner.NO_TEST


def test_a_recorded_result_goes_stale_when_the_file_it_tested_changes(tmp_path):
    lesson = LEADING["01"]
    (tmp_path / f"{lesson.name}.py").write_text("from tinytorch.core.tensor import broadcast_shape as _b\n"
                                                "def broadcast_shape(a, b):\n    return _b(a, b)\n"
                                                "def contiguous_strides(shape, itemsize):\n"
                                                "    out, step = [], itemsize\n    for n in reversed(tuple(shape)):\n"
                                                "        out.append(step)\n        step *= n\n    return tuple(reversed(out))\n")
    result = runner.run("01", tmp_path)
    assert result.passed, result.failure
    assert set(result.functions) == {"tinytorch.core.tensor.broadcast_shape", "tinytorch.core.tensor.contiguous_strides"}
    progress.record(tmp_path, "checkpoints", "01", result.to_json())
    state = {row.checkpoint.number: row for row in standings(tmp_path)}["01"]
    assert state.state == runner.PASSED and "broadcast shapes predicted = 200" in state.headline()
    recorded = progress.load(tmp_path)["checkpoints"]["01"]
    assert recorded["date"] and recorded["framework_version"] and recorded["measurements"][0]["ok"] is True
    with open(tmp_path / f"{lesson.name}.py", "a") as workspace_file:
        workspace_file.write("# edited after the run\n")
    state = {row.checkpoint.number: row for row in standings(tmp_path)}["01"]
    assert state.state == STALE and state.stale_reasons == [f"{lesson.name}.py changed after the run"]
    (tmp_path / f"{LEADING['00'].name}.py").write_text("# a new file of an earlier lesson\n")
    reasons = {row.checkpoint.number: row for row in standings(tmp_path)}["01"].stale_reasons
    assert f"{LEADING['00'].name}.py was written after the run" in reasons


def test_a_failure_inside_a_students_function_names_it(tmp_path):
    lesson = LEADING["01"]
    (tmp_path / f"{lesson.name}.py").write_text("def broadcast_shape(a, b):\n    return tuple(a)[5]\n"
                                                "def contiguous_strides(shape, itemsize):\n    return ()\n")
    result = runner.run("01", tmp_path)
    assert result.status == runner.FAILED
    assert result.failure.startswith("IndexError") and f"(in your broadcast_shape, {lesson.name}.py line 2)" in result.failure


def test_a_corrupt_progress_record_is_an_error_naming_it(tmp_path):
    (tmp_path / progress.PROGRESS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="progress.json is not a readable progress record"):
        progress.load(tmp_path)


ATTENTION = '''
import numpy as np


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    q, k, v = (np.asarray(a, dtype=float) for a in (query, key, value))
    scores = q @ np.swapaxes(k, -1, -2) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        attn_mask = causal_mask(q.shape[-2], k.shape[-2])
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True) @ v


def causal_mask(size, key_size=None):
    return np.arange(size if key_size is None else key_size)[None, :] <= np.arange(size)[:, None]


def split_heads(x, num_heads):
    b, t, e = np.shape(x)
    if e % num_heads:
        raise ValueError(f"{e} features do not split into {num_heads} heads")
    return np.asarray(x).reshape(b, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)
'''
CHARACTERS = '''
import numpy as np


def encode(text, vocab):
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index[c] for c in text], dtype=np.int64)


def decode(ids, vocab):
    return "".join(vocab[i] for i in np.asarray(ids).tolist())


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    raise NotImplementedError


def attention_step(q, k, v, cache_k, cache_v, length):
    raise NotImplementedError
'''


def test_a_students_numpy_attention_trains_the_recall_model_and_is_counted(tmp_path):
    (tmp_path / "07_attention.py").write_text(ATTENTION)
    result = runner.run("06", tmp_path)
    assert result.passed, result.failure
    calls = {key.rsplit(".", 1)[1]: entry["calls"] for key, entry in result.functions.items()}
    assert calls["scaled_dot_product_attention"] > 200  # a forward and a backward call per training step
    assert calls["split_heads"] > 300 and calls["causal_mask"] >= 6


@pytest.mark.parametrize(
    "checkpoint, file, code, wrong, failure",
    [
        ("06", "07_attention.py", ATTENTION, ("1 / np.sqrt(q.shape[-1]) if", "1.0 if"),
         "largest |attention - reference| (plain, scaled, masked, causal, overflowing) = 0.48"),
        ("06", "07_attention.py", ATTENTION, ("None, :] <= np.arange", "None, :] >= np.arange"),
         "every causal mask is a boolean j <= i: causal_mask(5) gave [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]"),
        ("06", "07_attention.py", ATTENTION, (".transpose(0, 2, 1, 3)", ".reshape(b, num_heads, t, -1)"),
         "head h holds features h*D .. (h+1)*D-1 of every token: split_heads(x of shape (2, 5, 12), 3) gave the right shape, other values"),
        ("15", "16_tinygpt.py", CHARACTERS, ("c: i for", "c: i + 1 for"),
         "every character's id is its place in the sorted vocabulary: encode gave [51, 2, 59"),
        ("15", "16_tinygpt.py", CHARACTERS, ("for i in np.asarray(ids).tolist()", "for i in np.asarray(ids).tolist()[::-1]"),
         "decode gives the text back: decode of the ids of 'l the world,\\nThat ta' gave 'at tahT\\n,dlrow eht l'"),
    ],
    ids=["unscaled attention", "mask of the future", "heads not transposed", "ids off by one", "text reversed"],
)
def test_a_wrong_implementation_fails_saying_what_was_measured(checkpoint, file, code, wrong, failure, tmp_path, monkeypatch):
    with_real_data(get(checkpoint), monkeypatch)
    assert wrong[0] in code
    (tmp_path / file).write_text(code.replace(*wrong).replace("raise NotImplementedError", "return 0"))
    result = runner.run(checkpoint, tmp_path)
    assert result.status == runner.FAILED and result.failure.startswith(failure), result.failure
    assert result.measurements and not result.measurements[-1].ok


@pytest.mark.parametrize("batch, length, heads, dim", [(2, 5, 2, 3), (1, 1, 1, 2), (3, 4, 4, 1)])
@pytest.mark.parametrize("yours", [False, True], ids=["framework", "a student's NumPy attention"])
def test_the_recall_models_attention_op_has_attentions_gradient(batch, length, heads, dim, yours, tmp_path):
    import numpy as np

    import tinytorch as tt
    from tinytorch.checkpoints.attention import attention_op
    from tinytorch.testing import gradcheck

    (tmp_path / "07_attention.py").write_text(ATTENTION)
    rng = np.random.default_rng(batch * length)
    q, k, v = (tt.tensor(rng.standard_normal((batch, length, heads * dim)), dtype=np.float64, requires_grad=True) for _ in range(3))
    transposed = tt.tensor(rng.standard_normal((heads * dim, length, batch)).transpose(2, 1, 0), dtype=np.float64, requires_grad=True)
    causal = np.tri(length, dtype=bool)
    with tt.use_workspace(tmp_path) if yours else contextlib.nullcontext():
        op = attention_op()
        assert gradcheck(lambda q, k, v: op.apply(q, k, v, heads=heads, mask=causal), q, k, transposed, name="recall attention")
