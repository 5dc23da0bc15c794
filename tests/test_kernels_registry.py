"""The kernel registry: backends, switching, student registration, and the compiled softmax against its reference."""

import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch._kernels import reference
from tinytorch.core import kernels

from .strategies import float64_arrays, shapes

SETUP_DIR = Path(__file__).resolve().parents[1] / "tinytorch" / "_kernels"


def test_compiled_modules_list_every_pyx_file():
    assert sorted(kernels.COMPILED_MODULES) == sorted(p.stem for p in SETUP_DIR.glob("*.pyx"))


def test_compiled_backend_is_active_when_built():
    # CI builds the extensions, so the compiled backend must be the one running.
    assert kernels.compiled_available(), "compiled kernels are not built; run pip install -e ."
    assert kernels.backend() == "compiled"
    assert kernels.describe()["softmax_forward"] == "tinytorch._kernels.softmax"


def test_use_switches_and_restores():
    before = kernels.backend()
    with kernels.use("reference"):
        assert kernels.backend() == "reference"
        assert kernels.implementation("softmax_forward") is reference.softmax_forward
        assert set(kernels.describe().values()) == {"reference"}
    assert kernels.backend() == before


def test_use_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        kernels.use("gpu")


def test_unknown_kernel_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_kernel"):
        kernels.no_such_kernel


def test_register_a_students_file(tmp_path):
    path = tmp_path / "my_kernels.py"
    path.write_text(textwrap.dedent("""
        import numpy as np
        CALLS = []
        def softmax_forward(x):
            CALLS.append(x.shape)
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
    """))
    with kernels.register(path):
        assert kernels.describe()["softmax_forward"].startswith("registered")
        # kernels the file does not define keep running on the active backend
        assert not kernels.describe()["softmax_backward"].startswith("registered")
        module = kernels.implementation("softmax_forward").__globals__
        tt.tensor([[1.0, 2.0, 3.0]]).softmax()
        assert module["CALLS"] == [(1, 3)]
    assert not kernels.describe()["softmax_forward"].startswith("registered")


def test_register_rejects_a_module_without_kernels(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    with pytest.raises(ValueError, match="defines none of the kernels"):
        kernels.register(path)


@pytest.mark.parametrize("kernel", ["softmax", "log_softmax"])
@given(shape=shapes(min_dims=1, max_dims=4, max_side=9), dtype=st.sampled_from([np.float32, np.float64]), data=st.data())
def test_compiled_softmax_matches_reference(kernel, shape, dtype, data):
    x = data.draw(float64_arrays(shape, low=-30, high=30)).astype(dtype)
    g = data.draw(float64_arrays(shape)).astype(dtype)
    compiled_fwd = kernels._compiled[f"{kernel}_forward"][0]
    compiled_bwd = kernels._compiled[f"{kernel}_backward"][0]
    ref_fwd = getattr(reference, f"{kernel}_forward")
    ref_bwd = getattr(reference, f"{kernel}_backward")
    tol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    y = compiled_fwd(x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref_fwd(x), rtol=tol, atol=tol)
    np.testing.assert_allclose(compiled_bwd(y, g), ref_bwd(y, g), rtol=tol * 10, atol=tol * 10)


def test_compiled_softmax_errors_are_clear():
    fwd = kernels._compiled["softmax_forward"][0]
    bwd = kernels._compiled["softmax_backward"][0]
    with pytest.raises(TypeError, match="softmax_forward: x has dtype int64"):
        fwd(np.arange(4))
    with pytest.raises(ValueError, match=r"softmax_backward: grad has shape \(2, 2\); expected \(2, 3\)"):
        bwd(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(TypeError, match="float32 but the other inputs are float64"):
        bwd(np.ones((2, 3)), np.ones((2, 3), dtype=np.float32))


def test_register_a_module_object_runs_a_network_on_it():
    # Lesson 13 registers a student's functions as an in-memory module; the layers must call them.
    calls = []

    def maxpool2d_forward(x, kernel, stride, padding):
        calls.append("forward")
        return reference.maxpool2d_forward(x, kernel, stride, padding)

    def maxpool2d_backward(grad_out, argmax, input_shape):
        calls.append("backward")
        return reference.maxpool2d_backward(grad_out, argmax, input_shape)

    mine = types.ModuleType("my_kernels")
    mine.maxpool2d_forward, mine.maxpool2d_backward = maxpool2d_forward, maxpool2d_backward
    x = tt.tensor(np.arange(32.0).reshape(1, 2, 4, 4), requires_grad=True)
    with kernels.register(mine):
        assert kernels.describe()["maxpool2d_forward"] == "registered (my_kernels)"
        assert kernels.implementation("maxpool2d_backward") is maxpool2d_backward
        tt.MaxPool2D(2)(x).sum().backward()
    assert calls == ["forward", "backward"]
    expected = np.zeros((1, 2, 4, 4))
    expected[..., 1::2, 1::2] = 1.0  # the bottom-right element of each 2x2 block is its maximum
    np.testing.assert_array_equal(x.grad.data, expected)
    assert not kernels.describe()["maxpool2d_forward"].startswith("registered")


def test_registration_is_undone_when_the_block_raises():
    def relu_forward(x):
        raise NotImplementedError("write relu_forward")

    stub = types.ModuleType("stub")
    stub.relu_forward = relu_forward
    with pytest.raises(NotImplementedError, match="write relu_forward"):
        with kernels.register(stub):
            tt.tensor([[-1.0, 2.0]]).relu()
    assert not kernels.describe()["relu_forward"].startswith("registered")
    assert tt.tensor([[-1.0, 2.0]]).relu().data.tolist() == [[0.0, 2.0]]


def test_register_names_limits_what_is_taken():
    both = types.ModuleType("both")
    both.relu_forward, both.relu_backward = reference.relu_forward, reference.relu_backward
    with kernels.register(both, names=["relu_backward"]):
        assert kernels.describe()["relu_backward"] == "registered (both)"
        assert not kernels.describe()["relu_forward"].startswith("registered")
    with pytest.raises(ValueError, match=r"does not define \['softmax_forward'\]"):
        kernels.register(both, names=["softmax_forward"])


def test_compiled_module_gives_a_built_module_and_refuses_an_unknown_name():
    graph = kernels.compiled_module("graph")
    assert graph is not None and graph.__name__ == "tinytorch._kernels.graph"
    with pytest.raises(ValueError, match=r"kernels.compiled_module: 'grpah' is not a compiled module; expected one of"):
        kernels.compiled_module("grpah")
