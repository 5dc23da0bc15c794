"""Judging a check: the student's outcome against the framework's, both plain data."""

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.data.files import DataFormatError
from tinytorch.grading.capture import SolutionUnavailable, capture, inputs_document
from tinytorch.grading.compare import compare
from tinytorch.grading.plaindata import Document


def judge(expected_fn, got_fn, *args, **kwargs):
    doc = inputs_document(args, kwargs)
    return compare(capture(expected_fn, doc, seed=1), capture(got_fn, doc, seed=1))


def raiser(error):
    def fn(*args, **kwargs):
        raise error

    return fn


def test_exceptions_of_the_same_builtin_family_pass():
    assert judge(raiser(DataFormatError("bad")), raiser(ValueError("also bad")), 1).passed
    verdict = judge(raiser(ValueError("x")), raiser(TypeError("y")), 1)
    assert not verdict.passed and "expected a ValueError" in verdict.message
    verdict = judge(raiser(ValueError("x")), lambda v: v, 1)
    assert not verdict.passed and "expected it to raise ValueError" in verdict.message


def test_not_written_and_delegation_are_told_apart():
    verdict = judge(lambda v: v, raiser(NotImplementedError("write it")), 1)
    assert not verdict.passed and verdict.not_written
    verdict = judge(lambda v: v, raiser(SolutionUnavailable("im2col is not available")), 1)
    assert not verdict.passed and verdict.delegated
    verdict = judge(lambda v: v, raiser(SystemExit(0)), 1)
    assert not verdict.passed and "raised SystemExit" in verdict.message


@pytest.mark.parametrize(
    "got, message",
    [
        (lambda x: x.astype(np.float64) * 2, "expected dtype float32, got float64"),
        (lambda x: (x * 2).reshape(3, 2), "expected shape (2, 3), got (3, 2)"),
        (lambda x: x * 2 + np.float32(1e-2), "6 of 6 values differ"),
        (lambda x: (x * 2).tolist(), "expected array"),
        (lambda x: (x * 2).view(type("Evil", (np.ndarray,), {"__eq__": lambda a, b: True})), "expected a ndarray, got a Evil"),
    ],
)
def test_arrays_must_match_class_dtype_shape_and_values(got, message):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    verdict = judge(lambda a: a * 2, got, x)
    assert not verdict.passed and message in verdict.message


def test_floats_compare_within_their_precision():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    assert judge(lambda a: np.exp(a), lambda a: np.exp(a.astype(np.float64)).astype(np.float32) * np.float32(1 + 3e-5), x).passed
    assert not judge(lambda a: np.exp(a), lambda a: np.exp(a) * np.float32(1 + 1e-3), x).passed
    assert judge(lambda a: np.array([np.nan, 1.0]), lambda a: np.array([np.nan, 1.0]), x).passed
    assert not judge(lambda a: np.array([np.nan, 1.0]), lambda a: np.array([0.0, 1.0]), x).passed


def test_numbers_compare_by_family_and_containers_by_type():
    assert judge(lambda: (3, 4), lambda: (np.int64(3), 4)).passed  # a NumPy int is an int
    assert not judge(lambda: 1, lambda: True).passed  # a bool is not an int
    assert judge(lambda: 0.1 + 0.2, lambda: 0.3).passed
    verdict = judge(lambda: (3, 4), lambda: [3, 4])
    assert not verdict.passed and "expected (3, 4), got [3, 4]" in verdict.message
    assert judge(lambda: {"a": 1, "b": (2,)}, lambda: {"b": (2,), "a": 1}).passed
    verdict = judge(lambda: {"a": 1}, lambda: {"a": 1, "c": 2})
    assert "unexpected keys" in verdict.message


def test_an_object_equal_to_everything_is_not_equal_to_the_answer():
    class AlwaysEqual(tuple):
        def __eq__(self, other):
            return True

        __hash__ = tuple.__hash__

    verdict = judge(lambda: (3, 4), lambda: AlwaysEqual((9, 9)))
    assert not verdict.passed and "expected (3, 4)" in verdict.message


def test_returning_the_inputs_themselves_is_checked_by_identity():
    a = tt.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    root = (b * a).sum()

    def order(r):
        return [r, r.grad_fn.parents[0].parents[1]]  # the loss and the leaf a, reached through the graph

    def copies(r):
        return [tt.tensor(t.data, requires_grad=True) for t in order(r)]

    assert judge(order, order, root).passed
    verdict = judge(order, copies, root)
    assert not verdict.passed and "result[0]" in verdict.message


def test_fresh_layers_must_be_distinct_objects_and_weights_compare_by_shape():
    def framework(n):
        return tt.Sequential(tt.Dense(2, n), tt.ReLU(), tt.Dense(n, n), tt.ReLU())

    def shared(n):
        act = tt.ReLU()
        return tt.Sequential(tt.Dense(2, n), act, tt.Dense(n, n), act)

    def other_init(n):
        tt.manual_seed(99)  # different random weights, same architecture
        return framework(n)

    assert judge(framework, other_init, 3).passed
    verdict = judge(framework, shared, 3)
    assert not verdict.passed and "different" in verdict.message
    verdict = judge(framework, lambda n: tt.Sequential(tt.Dense(2, n), tt.ReLU(), tt.Dense(n, n + 1), tt.ReLU()), 3)
    assert not verdict.passed and "shape" in verdict.message
    assert judge(tt.create_mlp, lambda *a: tt.Sequential(*tt.create_mlp(*a)), 3, [4], 2).passed  # a Sequential for an MLP


def test_a_malformed_outcome_fails_instead_of_crashing():
    doc = inputs_document((1,), {})
    expected = capture(lambda v: v, doc, seed=0)
    broken = Document({"args": {"k": "ref", "v": 99}, "value": {"k": "int", "v": "1"}}, [], [], {"status": "returned"})
    verdict = compare(expected, broken)
    assert not verdict.passed and "could not be read" in verdict.message
    assert not compare(expected, Document({}, [], [], {})).passed
