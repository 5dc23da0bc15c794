"""Every differentiable op against central differences (float64, random cotangent).

Shapes are drawn by hypothesis and include size-1 axes, broadcast pairs and non-contiguous
(transposed, sliced) inputs. Draws stay away from the points where an op has no derivative:
|x| >= 0.1 for abs and relu, values a grid step apart for max/min/maximum/minimum and clip bounds,
positive inputs for log, sqrt and fractional powers.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytorch as tt
from tinytorch.core import kernels
from tinytorch.testing import gradcheck

from .strategies import broadcast_pairs, float64_arrays, leaf, reduction_axes, shapes

# gradcheck costs two forward calls per input element: keep examples few and shapes small
QUICK = settings(max_examples=15)
FEW = settings(max_examples=8)


@st.composite
def leaves(draw, shape=None, low=-2.0, high=2.0, min_dims=0, max_dims=3, min_side=1):
    """A float64 leaf (any layout) of ``shape``, or of a drawn shape."""
    shape = draw(shapes(min_dims, max_dims, min_side)) if shape is None else shape
    return leaf(draw(float64_arrays(shape, low, high)))


def away_from_zero(x: tt.Tensor) -> tt.Tensor:
    """Move every value at least 0.1 away from 0 (in place, keeping the layout)."""
    x.data[...] = np.where(x.data >= 0, x.data + 0.1, x.data - 0.1)
    return x


def on_grid(x: tt.Tensor, offset: float) -> tt.Tensor:
    """Round values to the grid ``0.5 k + offset``: two grids with offsets 0.1 and 0.35 are >= 0.25 apart."""
    x.data[...] = np.round(x.data * 2) / 2 + offset
    return x


def distinct(x: tt.Tensor) -> tt.Tensor:
    """Replace the values by distinct ones 0.3 apart, in the drawn random order: no ties for max/min."""
    ranks = np.argsort(np.argsort(x.data.ravel())).reshape(x.shape)
    x.data[...] = (ranks - x.size / 2) * 0.3
    return x


@st.composite
def broadcast_leaves(draw, low=-2.0, high=2.0):
    shape_a, shape_b = draw(broadcast_pairs())
    return draw(leaves(shape_a, low, high)), draw(leaves(shape_b, low, high))


# -- arithmetic ---------------------------------------------------------------------------------
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
}


@pytest.mark.parametrize("name", list(BINARY))
@QUICK
@given(pair=broadcast_leaves())
def test_add_sub_mul_broadcast(name, pair):
    gradcheck(BINARY[name], *pair, name=name)


@QUICK
@given(pair=broadcast_leaves())
def test_div_broadcast(pair):
    a, b = pair
    gradcheck(lambda a, b: a / b, a, away_from_zero(b), name="div")


@QUICK
@given(pair=broadcast_leaves(low=0.5, high=2.0))
def test_pow_tensor_tensor_positive_base(pair):
    gradcheck(lambda a, b: a ** (b - 1.25), *pair, name="pow")


@QUICK
@given(x=leaves(), scalar=st.floats(-2.0, 2.0), op=st.sampled_from(["add", "radd", "sub", "rsub", "mul", "rmul"]))
def test_tensor_with_python_scalar(x, scalar, op):
    fn = {
        "add": lambda x: x + scalar,
        "radd": lambda x: scalar + x,
        "sub": lambda x: x - scalar,
        "rsub": lambda x: scalar - x,
        "mul": lambda x: x * scalar,
        "rmul": lambda x: scalar * x,
    }[op]
    gradcheck(fn, x, name=op)


@QUICK
@given(x=leaves(), scalar=st.floats(0.5, 2.0))
def test_div_by_and_of_python_scalar(x, scalar):
    gradcheck(lambda x: x / scalar, x, name="div")
    gradcheck(lambda x: scalar / x, away_from_zero(x), name="rdiv")


@QUICK
@given(x=leaves(low=0.5, high=2.0), exponent=st.sampled_from([-2.0, -0.5, 0.5, 1.0, 1.5, 2.0, 3.0]))
def test_pow_tensor_scalar(x, exponent):
    gradcheck(lambda x: x ** exponent, x, name="pow")


@QUICK
@given(x=leaves(), exponent=st.sampled_from([1, 2, 3]))
def test_pow_integer_exponent_any_sign_base(x, exponent):
    gradcheck(lambda x: x ** exponent, x, name="pow")


@QUICK
@given(x=leaves(), base=st.floats(0.5, 3.0))
def test_pow_scalar_tensor(x, base):
    gradcheck(lambda x: base ** x, x, name="rpow")


@QUICK
@given(x=leaves())
def test_neg(x):
    gradcheck(lambda x: -x, x, name="neg")


@st.composite
def matmul_shapes(draw):
    """Shapes of a @ b: 1-D or 2-D cores, 2-D cores with batch axes that broadcast against each other."""
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a_1d, b_1d, batched = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    batch_a, batch_b = draw(broadcast_pairs(max_dims=2, max_side=3)) if batched else ((), ())
    shape_a = (k,) if a_1d else (*batch_a, m, k)
    shape_b = (k,) if b_1d else (*batch_b, k, n)
    return shape_a, shape_b


@QUICK
@given(data=st.data())
def test_matmul(data):
    shape_a, shape_b = data.draw(matmul_shapes())
    a, b = data.draw(leaves(shape_a)), data.draw(leaves(shape_b))
    gradcheck(lambda a, b: a @ b, a, b, name=f"matmul {shape_a} @ {shape_b}")


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (5, 3, 2)), ((4, 2, 3), (3,))],
)
def test_matmul_every_operand_kind(shape_a, shape_b):
    rng = np.random.default_rng(1)
    a, b = leaf(rng.standard_normal(shape_a)), leaf(rng.standard_normal(shape_b))
    gradcheck(lambda a, b: a @ b, a, b, name="matmul")
    gradcheck(lambda a, b: tt.matmul(a, b), a, b, name="matmul")


def test_matmul_with_constant_operand():
    rng = np.random.default_rng(2)
    a = leaf(rng.standard_normal((2, 3)))
    constant = rng.standard_normal((3, 4))
    gradcheck(lambda a: a @ constant, a, name="matmul")
    gradcheck(lambda a: constant.T @ a.T, a, name="rmatmul")


# -- element-wise -------------------------------------------------------------------------------
UNARY = {
    "exp": (lambda x: x.exp(), None),
    "log": (lambda x: x.log(), "positive"),
    "sqrt": (lambda x: x.sqrt(), "positive"),
    "abs": (lambda x: x.abs(), "kink"),
    "tanh": (lambda x: x.tanh(), None),
    "sigmoid": (lambda x: x.sigmoid(), None),
    "relu": (lambda x: x.relu(), "kink"),
    "free exp": (tt.exp, None),
    "free log": (tt.log, "positive"),
    "free sqrt": (tt.sqrt, "positive"),
    "free tanh": (tt.tanh, None),
    "free sigmoid": (tt.sigmoid, None),
    "free relu": (tt.relu, "kink"),
    "builtin abs": (abs, "kink"),
}


@pytest.mark.parametrize("name", list(UNARY))
@QUICK
@given(x=leaves(low=-3.0, high=3.0))
def test_unary(name, x):
    fn, domain = UNARY[name]
    if domain == "positive":
        x.data[...] = np.abs(x.data) + 0.2
    elif domain == "kink":
        away_from_zero(x)
    gradcheck(fn, x, name=name)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@QUICK
@given(pair=broadcast_leaves())
def test_maximum_minimum_broadcast(name, pair):
    a, b = on_grid(pair[0], 0.1), on_grid(pair[1], 0.35)
    gradcheck(getattr(tt, name), a, b, name=name)
    gradcheck(lambda a, b: getattr(a, name)(b), a, b, name=f"Tensor.{name}")


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@QUICK
@given(x=leaves())
def test_maximum_minimum_with_scalar(name, x):
    gradcheck(lambda x: getattr(tt, name)(x, 0.35), on_grid(x, 0.1), name=name)


@QUICK
@given(x=leaves(), bounds=st.sampled_from([(-1.0, 0.5), (None, 0.5), (-0.5, None), (0.0, 0.0)]))
def test_clip(x, bounds):
    low, high = bounds
    on_grid(x, 0.1)  # bounds are multiples of 0.5: every value is >= 0.1 from them
    gradcheck(lambda x: x.clip(low, high), x, name="clip")
    gradcheck(lambda x: tt.clip(x, min=low, max=high), x, name="clip")


@QUICK
@given(data=st.data())
def test_where_three_way_broadcast(data):
    shapes3 = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3)).input_shapes
    condition = data.draw(hnp.arrays(np.bool_, shapes3[0]))
    a, b = data.draw(leaves(shapes3[1])), data.draw(leaves(shapes3[2]))
    gradcheck(lambda a, b: tt.where(condition, a, b), a, b, name="where")
    gradcheck(lambda a, b: tt.where(tt.tensor(condition), a, b), a, b, name="where (tensor condition)")


@QUICK
@given(x=leaves())
def test_where_with_scalar_branch(x):
    gradcheck(lambda x: tt.where(x > 0, x, 0.0), away_from_zero(x), name="where")


# -- reductions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sum", "mean", "var", "logsumexp"])
@QUICK
@given(data=st.data())
def test_smooth_reductions(name, data):
    x = data.draw(leaves())
    axis, keepdims = data.draw(reduction_axes(x.ndim)), data.draw(st.booleans())
    gradcheck(lambda x: getattr(x, name)(axis=axis, keepdims=keepdims), x, name=f"{name}(axis={axis}, keepdims={keepdims})")


def test_free_logsumexp():
    x = leaf(np.random.default_rng(3).standard_normal((3, 4)))
    gradcheck(lambda x: tt.logsumexp(x, axis=(0, -1), keepdims=True), x, name="logsumexp")
    gradcheck(lambda x: tt.logsumexp(x, axis=1), x, name="logsumexp")


@pytest.mark.parametrize("name", ["max", "min"])
@QUICK
@given(data=st.data())
def test_max_min(name, data):
    x = distinct(data.draw(leaves()))
    axis, keepdims = data.draw(reduction_axes(x.ndim)), data.draw(st.booleans())
    gradcheck(lambda x: getattr(x, name)(axis=axis, keepdims=keepdims), x, name=f"{name}(axis={axis})")


@QUICK
@given(data=st.data())
def test_var_and_std_with_ddof(data):
    # std has no derivative where the variance is 0, so every reduction here has >= 2 spread values
    x = data.draw(leaves(min_dims=1, min_side=2))
    axis, keepdims, ddof = data.draw(reduction_axes(x.ndim)), data.draw(st.booleans()), data.draw(st.sampled_from([0, 1]))
    gradcheck(lambda x: x.var(axis=axis, keepdims=keepdims, ddof=ddof), x, name="var")
    gradcheck(lambda x: x.std(axis=axis, keepdims=keepdims, ddof=ddof), x, name="std")


# -- softmax, through each kernel backend ---------------------------------------------------------
def backends():
    if not kernels.compiled_available():
        return [
            "reference",
            pytest.param("compiled", marks=pytest.mark.skip(reason="compiled kernels are not built (run pip install -e .)")),
        ]
    return ["reference", "compiled"]


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@FEW
@given(data=st.data())
def test_softmax_any_axis(backend, name, data):
    x = data.draw(leaves(shape=data.draw(shapes(min_dims=1, max_side=3))))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    with kernels.use(backend):
        gradcheck(lambda x: getattr(x, name)(axis=axis), x, name=f"{name}(axis={axis}) [{backend}]")
        gradcheck(lambda x: getattr(tt, name)(x, axis), x, name=f"tt.{name} [{backend}]")


# -- shape ----------------------------------------------------------------------------------------
@QUICK
@given(data=st.data())
def test_reshape_and_view(data):
    x = data.draw(leaves())
    target = data.draw(st.sampled_from([(-1,), x.shape[::-1], (x.size, 1), (1, -1), (1, *x.shape, 1)]))
    gradcheck(lambda x: x.reshape(target), x, name=f"reshape{target}")
    gradcheck(lambda x: x.view(*target), x, name=f"view{target}")


@QUICK
@given(data=st.data())
def test_flatten(data):
    x = data.draw(leaves(min_dims=1))
    start = data.draw(st.integers(-x.ndim, x.ndim - 1))
    end = data.draw(st.integers(start % x.ndim, x.ndim - 1))
    gradcheck(lambda x: x.flatten(start, end), x, name=f"flatten({start}, {end})")
    gradcheck(lambda x: x.flatten(), x, name="flatten()")


@QUICK
@given(data=st.data())
def test_squeeze_unsqueeze(data):
    x = data.draw(leaves())
    ones = [i for i, n in enumerate(x.shape) if n == 1]
    some = tuple(data.draw(st.lists(st.sampled_from(ones), unique=True))) if ones else ()
    gradcheck(lambda x: x.squeeze(), x, name="squeeze()")
    gradcheck(lambda x: x.squeeze(some), x, name=f"squeeze({some})")
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    gradcheck(lambda x: x.unsqueeze(axis), x, name=f"unsqueeze({axis})")
    gradcheck(lambda x: x.expand_dims(axis), x, name=f"expand_dims({axis})")


@QUICK
@given(data=st.data())
def test_transpose_permute_swapaxes(data):
    x = data.draw(leaves())
    order = tuple(data.draw(st.permutations(range(x.ndim))))
    gradcheck(lambda x: x.transpose(order), x, name=f"transpose{order}")
    gradcheck(lambda x: x.transpose(*order), x, name=f"transpose{order}")
    gradcheck(lambda x: x.permute(order), x, name=f"permute{order}")
    gradcheck(lambda x: x.transpose(), x, name="transpose()")
    gradcheck(lambda x: x.T, x, name="T")
    if x.ndim >= 2:
        a, b = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
        gradcheck(lambda x: x.swapaxes(a, b), x, name=f"swapaxes({a}, {b})")
        gradcheck(lambda x: x.mT, x, name="mT")


@QUICK
@given(data=st.data())
def test_expand(data):
    x = data.draw(leaves())
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))
    grown = tuple(data.draw(st.integers(1, 3)) if n == 1 else data.draw(st.sampled_from([n, -1])) for n in x.shape)
    target = lead + grown
    gradcheck(lambda x: x.expand(target), x, name=f"expand{target}")
    gradcheck(lambda x: x.expand(*target), x, name=f"expand{target}")
    concrete = lead + tuple(n if g == -1 else g for n, g in zip(x.shape, grown))
    gradcheck(lambda x: x.broadcast_to(concrete), x, name=f"broadcast_to{concrete}")


# -- indexing -------------------------------------------------------------------------------------
@QUICK
@given(data=st.data())
def test_getitem_basic(data):
    x = data.draw(leaves(min_dims=1))
    index = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    gradcheck(lambda x: x[index], x, name=f"getitem[{index!r}]")


@QUICK
@given(data=st.data())
def test_getitem_integer_arrays_scatter_add(data):
    x = data.draw(leaves(min_dims=1))
    index = data.draw(hnp.integer_array_indices(x.shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)))
    gradcheck(lambda x: x[index], x, name=f"getitem[{index!r}]")


def test_getitem_repeated_indices_add_up():
    x = leaf(np.random.default_rng(4).standard_normal((4, 3)))
    rows = np.array([0, 2, 0, 0, -1])
    gradcheck(lambda x: x[rows], x, name="getitem rows")
    gradcheck(lambda x: x[[1, 1, 1]], x, name="getitem list")
    gradcheck(lambda x: x[tt.tensor([3, 3, 0])], x, name="getitem tensor index")
    gradcheck(lambda x: x[rows, np.array([1, 1, 2, 1, 0])], x, name="getitem pairs")


@QUICK
@given(data=st.data())
def test_getitem_boolean_mask(data):
    x = data.draw(leaves(min_dims=1))
    lead = data.draw(st.integers(1, x.ndim))
    mask = data.draw(hnp.arrays(np.bool_, x.shape[:lead]))
    gradcheck(lambda x: x[mask], x, name="getitem mask")
    gradcheck(lambda x: x[tt.tensor(mask)], x, name="getitem tensor mask")


def test_getitem_mixed_indices():
    x = leaf(np.random.default_rng(5).standard_normal((4, 3, 5))[:, ::-1])
    picks = np.array([2, 0, 2])
    for index in [
        (slice(None), picks),
        (picks, slice(1, None)),
        (Ellipsis, picks),
        (None, picks, 0),
        (slice(None, None, -1), picks, slice(None, None, 2)),
        (picks[:, None], slice(None), np.array([[1, 1]])),
        (x.data[:, 0, 0] > 0,),
        (1, slice(None), [4, 4, 0]),
    ]:
        gradcheck(lambda x: x[index], x, name=f"getitem[{index!r}]")


# -- joining and splitting ----------------------------------------------------------------------
@QUICK
@given(data=st.data())
def test_concatenate(data):
    base = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    parts = [
        data.draw(leaves(tuple(n if i != axis % len(base) else size for i, n in enumerate(base)))) for size in sizes
    ]
    gradcheck(lambda *p: tt.concatenate(p, axis=axis), *parts, name=f"concatenate(axis={axis})")
    gradcheck(lambda *p: tt.cat(list(p), axis), *parts, name="cat")


@QUICK
@given(data=st.data())
def test_stack(data):
    shape = data.draw(shapes())
    count = data.draw(st.integers(1, 3))
    parts = [data.draw(leaves(shape)) for _ in range(count)]
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    gradcheck(lambda *p: tt.stack(p, axis=axis), *parts, name=f"stack(axis={axis})")


def test_join_with_constant_parts():
    rng = np.random.default_rng(6)
    x = leaf(rng.standard_normal((2, 3)))
    constant = tt.from_numpy(rng.standard_normal((2, 3)))
    gradcheck(lambda x: tt.concatenate([constant, x, constant], axis=1), x, name="concatenate")
    gradcheck(lambda x: tt.stack([constant, x], axis=-1), x, name="stack")


@QUICK
@given(data=st.data())
def test_split(data):
    x = data.draw(leaves(min_dims=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    length = x.shape[axis]
    if data.draw(st.booleans()):
        how = data.draw(st.sampled_from([s for s in range(1, length + 1) if length % s == 0]))
    else:
        how = sorted(data.draw(st.lists(st.integers(0, length), max_size=3)))

    def weighted_parts(x):
        # each part scaled differently, so a gradient sent to the wrong part shows
        parts = tt.split(x, how, axis=axis)
        return tt.concatenate([p * float(i + 1) for i, p in enumerate(parts)], axis=axis)

    gradcheck(weighted_parts, x, name=f"split({how}, axis={axis})")
    gradcheck(lambda x: x.split(how, axis)[-1], x, name="Tensor.split")


@QUICK
@given(data=st.data())
def test_pad(data):
    x = data.draw(leaves(min_dims=1))
    form = data.draw(st.sampled_from(["int", "pair", "per axis"]))
    if form == "int":
        width = data.draw(st.integers(0, 2))
    elif form == "pair":
        width = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    else:
        width = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(x.ndim))
    value = data.draw(st.sampled_from([0.0, -1.5]))
    gradcheck(lambda x: tt.pad(x, width, value=value), x, name=f"pad({width!r})")


# -- copies, casts, checkpointing ---------------------------------------------------------------
@QUICK
@given(x=leaves())
def test_astype_and_clone(x):
    gradcheck(lambda x: x.astype(tt.float64) * 2.0, x, name="astype")
    gradcheck(lambda x: x.clone() * x, x, name="clone")


@FEW
@given(data=st.data())
def test_checkpoint(data):
    x = data.draw(leaves((data.draw(st.integers(1, 3)), 3)))
    w = data.draw(leaves((3, 2)))
    b = data.draw(leaves((2,)))

    def block(x, b):
        return ((x @ w) + b).tanh() * x.sum()  # w is used from the closure, as a layer uses its weights

    gradcheck(lambda x, w, b: tt.checkpoint(block, x, b), x, w, b, name="checkpoint")


def test_checkpoint_with_constant_and_integer_inputs():
    rng = np.random.default_rng(7)
    x = leaf(rng.standard_normal((4, 3)))
    rows = tt.tensor([0, 3, 3])
    gradcheck(lambda x: tt.checkpoint(lambda x, rows, scale: x[rows] * scale, x, rows, 2.5), x, name="checkpoint")


# -- a composite through many ops, as a model uses them -------------------------------------------
@settings(max_examples=4)  # each example runs ~70 forward passes through the softmax kernel
@given(data=st.data())
def test_composite_mlp_with_cross_entropy(data):
    batch = data.draw(st.integers(1, 3))
    x = data.draw(leaves((batch, 4)))
    w1, b1 = data.draw(leaves((4, 3))), data.draw(leaves((3,)))
    w2 = data.draw(leaves((3, 2)))
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=batch, max_size=batch)))

    def loss(x, w1, b1, w2):
        hidden = (x @ w1 + b1).tanh()
        logits = hidden @ w2
        logp = logits.log_softmax(axis=-1)
        return -logp[np.arange(batch), labels].mean() + 0.01 * (w1 * w1).sum()

    gradcheck(loss, x, w1, b1, w2, name="mlp loss")
