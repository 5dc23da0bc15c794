"""The Tensor itself: construction, dtypes, factories, properties, conversions, seeding, errors."""

import numpy as np
import pytest

import tinytorch as tt


# -- construction and dtypes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([[1, 2], [3, 4]], np.int64),
        ([True, False], np.bool_),
        (np.ones(3, dtype=np.float64), np.float32),  # floats become float32 unless asked otherwise
        (np.ones(3, dtype=np.float16), np.float32),
        (np.arange(3, dtype=np.int32), np.int32),  # integer dtypes are kept
        (np.arange(3, dtype=np.uint8), np.uint8),
    ],
)
def test_default_dtypes(data, dtype):
    assert tt.Tensor(data).dtype == dtype
    assert tt.tensor(data).dtype == dtype


@pytest.mark.parametrize("make", [tt.Tensor, tt.tensor])
def test_float64_on_request(make):
    t = make([1.0, 2.0], dtype=tt.float64)
    assert t.dtype == np.float64
    assert make([1, 2], dtype=tt.float64).dtype == np.float64
    assert make([1.7, 2.2], dtype=tt.int64).tolist() == [1, 2]
    assert make([1.0, 2.0], dtype=tt.float64, requires_grad=True).dtype == np.float64


def test_tensor_copies_but_constructor_and_from_numpy_share():
    a = np.ones(3, dtype=np.float32)
    assert not np.shares_memory(tt.tensor(a).data, a)
    assert np.shares_memory(tt.Tensor(a).data, a)  # right dtype: no copy (documented)
    f = tt.from_numpy(a)
    assert np.shares_memory(f.data, a)
    a[0] = 7.0
    assert f.data[0] == 7.0


def test_from_numpy_keeps_dtype_and_layout():
    a = np.arange(12, dtype=np.float64).reshape(3, 4).T
    t = tt.from_numpy(a, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad and t.shape == (4, 3)
    assert t.data is a
    with pytest.raises(TypeError, match="from_numpy: expected a NumPy array, got list"):
        tt.from_numpy([1.0])


def test_tensor_from_a_tensor_makes_a_new_leaf():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    y = tt.tensor(x)
    assert not y.requires_grad and y.grad_fn is None
    assert not np.shares_memory(x.data, y.data)


def test_requires_grad_on_int_tensor_is_an_error():
    with pytest.raises(TypeError, match="only float tensors can require gradients, this one is int64"):
        tt.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="int32"):
        tt.zeros(2, dtype=tt.int32, requires_grad=True)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("abc", r"tensor: data of dtype <U3 is not supported"),
        ([[1.0], [1.0, 2.0]], r"tensor: cannot make a tensor from list"),
        ({"a": 1}, r"tensor: data of dtype object is not supported"),
        ([1 + 2j], r"tensor: data of dtype complex128 is not supported"),
    ],
)
def test_bad_data_is_an_error(bad, message):
    with pytest.raises(TypeError, match=message):
        tt.tensor(bad)


# -- factories ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_ones(name, value):
    make = getattr(tt, name)
    for t in (make(2, 3), make((2, 3)), make([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32
        assert np.all(t.data == value)
    assert make(2, dtype=tt.float64).dtype == np.float64
    assert make(2, dtype=tt.int64).dtype == np.int64
    assert make().shape == ()
    assert make(2, requires_grad=True).requires_grad


def test_full_eye_arange():
    assert tt.full((2, 3), 7.0).tolist() == [[7.0] * 3] * 2
    assert tt.full(4, 1.5).shape == (4,)
    assert tt.full((2,), 1.0, dtype=tt.float64).dtype == np.float64
    assert tt.full((2,), 1, dtype=tt.int64).dtype == np.int64
    assert np.array_equal(tt.eye(3).data, np.eye(3, dtype=np.float32)) and tt.eye(3).dtype == np.float32
    assert tt.eye(2, 3, dtype=tt.float64).dtype == np.float64 and tt.eye(2, 3).shape == (2, 3)
    assert tt.arange(5).tolist() == [0, 1, 2, 3, 4] and tt.arange(5).dtype == np.int64
    assert tt.arange(1, 7, 2).tolist() == [1, 3, 5]
    f = tt.arange(0.0, 1.0, 0.25)
    assert f.dtype == np.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tt.arange(3, dtype=tt.float64).dtype == np.float64


def test_random_factories():
    u = tt.rand(1000)
    assert u.dtype == np.float32 and u.shape == (1000,)
    assert 0.0 <= u.data.min() and u.data.max() < 1.0
    n = tt.randn(200, 50, dtype=tt.float64)
    assert n.dtype == np.float64 and n.shape == (200, 50)
    assert abs(n.data.mean()) < 0.05 and abs(n.data.std() - 1) < 0.05
    assert tt.randn((3, 2)).shape == (3, 2)
    i = tt.randint(2, 5, (100,))
    assert i.dtype == np.int64 and set(i.tolist()) == {2, 3, 4}
    assert tt.randint(0, 3, 4).shape == (4,)
    assert tt.rand(2, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="rand: samples are floats, so dtype must be a float dtype, got int64"):
        tt.rand(3, dtype=tt.int64)
    with pytest.raises(TypeError, match="randn: samples are floats"):
        tt.randn_like(tt.tensor([1, 2]))


def test_like_factories_follow_shape_and_dtype():
    base = tt.zeros(2, 3, dtype=tt.float64)
    for make in (tt.zeros_like, tt.ones_like, tt.rand_like, tt.randn_like):
        t = make(base)
        assert t.shape == (2, 3) and t.dtype == np.float64, make.__name__
        assert make(base, dtype=tt.float32).dtype == np.float32
    assert np.all(tt.full_like(base, 4.0).data == 4.0) and tt.full_like(base, 4.0).dtype == np.float64
    assert tt.zeros_like(tt.arange(3)).dtype == np.int64
    assert tt.ones_like(base, requires_grad=True).requires_grad


def test_shape_arguments_are_checked():
    with pytest.raises(ValueError, match=r"zeros: shape must be non-negative integers, got \(-1,\)"):
        tt.zeros(-1)
    with pytest.raises(ValueError, match=r"randn: shape must be non-negative integers, got \(2.5,\)"):
        tt.randn(2.5)


# -- manual_seed ----------------------------------------------------------------------------------
def test_manual_seed_makes_every_draw_reproducible():
    def draws():
        return tt.rand(3).tolist(), tt.randn(2, 2).tolist(), tt.randint(0, 100, (5,)).tolist()

    tt.manual_seed(42)
    first = draws()
    tt.manual_seed(42)
    assert draws() == first
    tt.manual_seed(43)
    assert draws() != first


def test_rng_state_round_trip():
    tt.manual_seed(5)
    state = tt.get_rng_state()
    expected = tt.randn(4).tolist()
    tt.randn(10)
    tt.set_rng_state(state)
    assert tt.randn(4).tolist() == expected


def test_manual_seed_rejects_bad_seeds():
    with pytest.raises(ValueError, match="manual_seed: seed must be a non-negative integer, got -1"):
        tt.manual_seed(-1)
    with pytest.raises(ValueError, match="got 1.5"):
        tt.manual_seed(1.5)


# -- properties -----------------------------------------------------------------------------------
def test_properties():
    t = tt.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size == 24 and t.nbytes == 96
    assert t.dtype == tt.float32 and len(t) == 2
    assert t.T.shape == (4, 3, 2) and t.mT.shape == (2, 4, 3)
    assert t.is_leaf and t.grad_fn is None and t.grad is None and not t.requires_grad
    s = tt.tensor(3.0)
    assert s.shape == () and s.ndim == 0 and s.size == 1
    assert s.T is s  # as in NumPy, .T of a 0-d or 1-d tensor is itself
    with pytest.raises(TypeError, match="len"):
        len(s)


def test_grad_fn_names_the_op():
    x = tt.tensor([1.0], requires_grad=True)
    y = x * 2
    assert not y.is_leaf and y.grad_fn.fn.__name__ == "Mul" and y.grad_fn.parents == (x, None)
    z = y + x
    assert z.grad_fn.parents[0] is y.grad_fn and z.grad_fn.parents[1] is x


# -- conversions ----------------------------------------------------------------------------------
def test_item_tolist_numpy():
    t = tt.tensor([[1.5, 2.0]])
    assert t.tolist() == [[1.5, 2.0]]
    assert tt.tensor([[2.5]]).item() == 2.5 and isinstance(tt.tensor([[2.5]]).item(), float)
    assert isinstance(tt.tensor(3).item(), int)
    assert t.numpy() is t.data  # shared, not copied
    assert float(tt.tensor(2.5)) == 2.5 and int(tt.tensor(7)) == 7
    with pytest.raises(ValueError, match=r"item: only a one-element tensor converts to a Python number, got shape \(1, 2\)"):
        t.item()


def test_bool_and_iteration():
    assert bool(tt.tensor([1.0])) and not bool(tt.tensor(0.0))
    with pytest.raises(ValueError, match=r"the truth value of a tensor of shape \(2,\) is ambiguous"):
        bool(tt.tensor([1.0, 2.0]))
    rows = list(tt.tensor([[1, 2], [3, 4]]))
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4]]


def test_data_is_always_an_ndarray():
    x = tt.tensor([3.0, 1.0, 2.0])
    for t in (x.argmax(), x.argmin(), x.sum() > 1, x.any(), x.all(), x.sum(), x[0]):
        assert isinstance(t.data, np.ndarray), t


# -- repr -----------------------------------------------------------------------------------------
def test_repr_is_short_and_says_what_matters():
    assert repr(tt.tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert repr(tt.tensor([1, 2])) == "Tensor([1, 2])"
    assert repr(tt.tensor([1.0, 2.0], dtype=tt.float64)) == "Tensor([1., 2.], dtype=float64)"
    assert repr(tt.tensor([1.0], requires_grad=True)) == "Tensor([1.], requires_grad=True)"
    assert repr(tt.tensor([1.0], requires_grad=True) * 2) == "Tensor([2.], grad_fn=Mul)"
    assert repr(tt.tensor([1.0], dtype=tt.int32)) == "Tensor([1], dtype=int32)"
    assert repr(tt.tensor(1 / 3)) == "Tensor(0.3333)"
    big = repr(tt.zeros(1000, 1000))
    assert "..." in big and len(big) < 500
    assert repr(tt.zeros(2, 2)) == "Tensor([[0., 0.],\n        [0., 0.]])"  # rows aligned under the first


def test_public_names_follow_numpy():
    t = tt.zeros(2, 3)
    for name in ("sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "reshape", "transpose",
                 "swapaxes", "expand_dims", "squeeze", "flatten", "clip", "astype", "numpy", "tolist", "item"):
        assert callable(getattr(t, name)), name
    for name in ("concatenate", "stack", "split", "pad", "where", "maximum", "minimum", "matmul", "zeros_like"):
        assert callable(getattr(tt, name)), name


# -- assigning .data ----------------------------------------------------------------------------------
def test_assigning_data_keeps_the_dtype_and_allows_a_new_shape():
    weight = tt.Parameter(np.ones((2, 3)))
    weight.data = np.zeros((3, 4))  # float64 from NumPy
    assert weight.dtype == np.float32 and weight.shape == (3, 4) and weight.requires_grad
    double = tt.tensor([1.0, 2.0], dtype=tt.float64)
    double.data = np.ones(2, dtype=np.float32)
    assert double.dtype == np.float64
    double.data = tt.tensor([[3.0]])  # a Tensor gives its array
    assert double.dtype == np.float64 and double.tolist() == [[3.0]]
    ints = tt.tensor([1, 2])
    ints.data = np.array([5, 6], dtype=np.int32)
    assert ints.dtype == np.int64
    with pytest.raises(TypeError, match="data: cannot assign a float64 array to a int64 tensor"):
        ints.data = np.array([1.5])


def test_a_layer_runs_after_its_weight_is_assigned_a_float64_array():
    layer = tt.Dense(4, 3)
    layer.weight.data = np.random.default_rng(0).standard_normal((3, 4))
    out = layer(tt.ones(2, 4))
    assert out.dtype == np.float32 and out.shape == (2, 3)
