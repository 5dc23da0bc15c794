"""gradcheck itself: it passes correct ops, catches wrong backwards, and says where and by how much."""

import re

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.autograd import Function
from tinytorch.testing import GradcheckError, gradcheck


def leaf(shape, seed=0, layout="contiguous"):
    data = np.random.default_rng(seed).uniform(0.5, 2.0, size=shape[::-1] if layout == "transposed" else shape)
    return tt.from_numpy(data.T if layout == "transposed" else data, requires_grad=True)


class WrongSquare(Function):
    """y = x², with a backward that says 3x instead of 2x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * 3 * x


class IgnoresCotangent(Function):
    """y = 2x, with a backward that returns dy/dx itself: right only when the cotangent is all ones."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return np.full(grad.shape, 2.0)


class TransposesGradient(Function):
    """y = x * w for square x, with a backward that transposes the incoming gradient by mistake.

    Any symmetric cotangent (all ones, in particular) hides the mistake.
    """

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(w)
        return x * w

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved
        return grad.T * w, None


class RecordsCotangent(Function):
    """The identity, remembering each gradient its backward receives."""

    seen: list = []

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        RecordsCotangent.seen.append(grad.copy())
        return grad


def parse_message(message: str) -> dict:
    match = re.search(
        r"gradcheck\((?P<name>[^)]*)\): gradient of input (?P<input>\d+) \(shape (?P<shape>\([^)]*\))\) is wrong; "
        r"output shape (?P<out>\([^)]*\))\. Worst element (?P<worst>\([^)]*\)): backward gives (?P<analytic>\S+), "
        r"finite differences give (?P<numeric>\S+) \(tolerance",
        message,
    )
    assert match, f"unexpected gradcheck message: {message}"
    return match.groupdict()


def test_passes_on_correct_ops_and_returns_true():
    a, b = leaf((2, 3), 0), leaf((3,), 1)
    assert gradcheck(lambda a, b: (a * b).exp().sum(axis=0), a, b, name="mul-exp-sum") is True
    assert gradcheck(lambda a: a @ a.T, leaf((3, 2), 2, "transposed"), name="gram") is True


def test_wrong_backward_message_names_op_shapes_worst_element_and_both_values():
    x = leaf((2, 3))
    with pytest.raises(GradcheckError) as caught:
        gradcheck(WrongSquare.apply, x, name="square")
    found = parse_message(str(caught.value))
    assert found["name"] == "square"
    assert found["input"] == "0"
    assert found["shape"] == "(2, 3)" and found["out"] == "(2, 3)"

    # Rebuild what gradcheck compared: the same seeded cotangent v, backward 3xv, truth 2xv.
    v = np.random.default_rng(0).standard_normal((2, 3))
    analytic, numeric = 3 * x.data * v, 2 * x.data * v
    error = np.abs(analytic - numeric) - (1e-6 + 1e-4 * np.abs(numeric))
    worst = np.unravel_index(np.argmax(error), error.shape)
    assert found["worst"] == str(tuple(int(i) for i in worst))
    assert float(found["analytic"]) == pytest.approx(analytic[worst], rel=1e-7)
    assert float(found["numeric"]) == pytest.approx(numeric[worst], rel=1e-6)


def test_name_defaults_to_the_function_name_and_reports_which_input():
    def scaled_square(x, w):
        return w * WrongSquare.apply(x)

    with pytest.raises(GradcheckError, match=r"gradcheck\(scaled_square\): gradient of input 0"):
        gradcheck(scaled_square, leaf((3,), 0), leaf((3,), 1))

    # the wrong input is the second one here; the first is right
    with pytest.raises(GradcheckError, match=r"gradient of input 1 \(shape \(4,\)\)"):
        gradcheck(lambda w, x: w * WrongSquare.apply(x), leaf((4,), 0), leaf((4,), 1), name="swap")


def test_rejects_float32_inputs_that_require_grad():
    x32 = tt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"gradcheck\(exp\): input 1 is float32; gradcheck needs float64"):
        gradcheck(lambda a, b: (a * b).exp(), leaf((2,)), x32, name="exp")


def test_float32_constants_are_passed_through():
    constant = tt.tensor([1.0, 2.0])  # float32, no grad: not checked
    assert gradcheck(lambda a, c: a * c, leaf((2,)), constant, name="mul")


def test_cotangent_is_random_not_all_ones():
    RecordsCotangent.seen.clear()
    gradcheck(RecordsCotangent.apply, leaf((3, 4)), name="identity")
    (cotangent,) = RecordsCotangent.seen
    assert cotangent.shape == (3, 4)
    assert len(np.unique(cotangent)) == cotangent.size  # every output weighted differently


@pytest.mark.parametrize(
    "fn, inputs",
    [
        (IgnoresCotangent.apply, lambda: (leaf((2, 3)),)),
        (lambda x, w: TransposesGradient.apply(x, w), lambda: (leaf((3, 3), 0), tt.from_numpy(np.arange(9.0).reshape(3, 3)))),
    ],
    ids=["ignores-cotangent", "transposes-gradient"],
)
def test_catches_a_backward_that_is_right_only_for_an_all_ones_cotangent(fn, inputs):
    args = inputs()
    # With dL/dy all ones the wrong backward agrees with finite differences of sum(y) ...
    x = args[0]
    fn(*args).backward(np.ones(fn(*args).shape))
    with tt.no_grad():
        eps = 1e-6
        numeric = np.zeros(x.shape)
        for idx in np.ndindex(*x.shape):
            x.data[idx] += eps
            plus = fn(*args).data.sum()
            x.data[idx] -= 2 * eps
            minus = fn(*args).data.sum()
            x.data[idx] += eps
            numeric[idx] = (plus - minus) / (2 * eps)
    assert np.allclose(x.grad.data, numeric, atol=1e-6)
    # ... and gradcheck's random cotangent exposes it.
    x.grad = None
    with pytest.raises(GradcheckError):
        gradcheck(fn, *args, name="wrong")


def test_tolerances_are_applied():
    class SlightlyOff(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, grad):
            return grad * 2 * (1 + 1e-5)

    x = leaf((4,))
    assert gradcheck(SlightlyOff.apply, x, rtol=1e-3, name="off")
    with pytest.raises(GradcheckError):
        gradcheck(SlightlyOff.apply, x, rtol=1e-7, atol=0.0, name="off")


def test_inputs_are_left_unchanged_including_non_contiguous_views():
    x = leaf((3, 4), layout="transposed")
    base = x.data.base
    before = x.data.copy()
    gradcheck(lambda x: (x * x).sum(axis=1), x, name="square-sum")
    assert np.array_equal(x.data, before)
    assert x.data.base is base and not x.data.flags.c_contiguous


def test_bad_calls_are_errors():
    with pytest.raises(ValueError, match=r"gradcheck\(f\): no input requires grad"):
        gradcheck(lambda x: x * 2, tt.tensor([1.0], dtype=tt.float64), name="f")
    with pytest.raises(GradcheckError, match=r"gradcheck\(f\): the output does not require grad"):
        gradcheck(lambda x: tt.tensor([1.0], dtype=tt.float64), leaf((1,)), name="f")
    with pytest.raises(TypeError, match=r"gradcheck\(f\): the function must return a Tensor, got ndarray"):
        gradcheck(lambda x: x.data * 2, leaf((1,)), name="f")
