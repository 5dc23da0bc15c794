"""use_workspace: a student's written exercises run inside the framework, stubs and imports are left alone,
and the kernels built on im2col and adam_update compute what the framework's kernels compute."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch._kernels import reference
from tinytorch.core import exercises, kernels
from tinytorch.workspace import adapters, use_workspace
from tinytorch.workspace.files import WorkspaceError, stub_names

COUNTING_IM2COL = """
from pathlib import Path
from tinytorch.core.spatial import im2col as framework_im2col

def conv2d_output_shape(input_hw, kernel_size, stride=1, padding=0):
    raise NotImplementedError("write conv2d_output_shape")

def im2col(x, kernel_size, stride=1, padding=0):
    with open(Path(__file__).with_name("calls.txt"), "a") as calls:
        calls.write("im2col\\n")
    return framework_im2col.__wrapped__(x, kernel_size, stride, padding)
"""


@pytest.fixture
def ws(tmp_path):
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder


def calls_written(folder) -> int:
    path = folder / "calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_stubs_are_found_from_the_source():
    source = textwrap.dedent('''
        def a():
            """Doc."""
            raise NotImplementedError("write a")
        def b():
            pass
        def c():
            ...
        def d():
            return 1
        def e():
            raise ValueError("not a stub")
    ''')
    assert stub_names(source) == {"a", "b", "c"}


def test_written_functions_run_inside_the_framework_and_nothing_stays_after(ws):
    (ws / "06_spatial.py").write_text(COUNTING_IM2COL)
    conv = tt.Conv2D(2, 3, kernel_size=3, padding=1)
    x = tt.randn(2, 2, 6, 5, requires_grad=True)
    expected = conv(x)
    expected.sum().backward()
    expected_grads = [x.grad.data.copy(), conv.weight.grad.data.copy()]
    x.grad = conv.weight.grad = None
    with use_workspace(ws) as workspace:
        assert workspace.functions() == {"tinytorch.core.spatial.im2col": "06_spatial.py"}  # the stub is not used
        assert kernels.describe()["conv2d_forward"].startswith("registered (im2col from")
        out = conv(x)
        out.sum().backward()
    # forward, weight gradient and input gradient: each ran on the student's im2col, and agree with the kernel
    assert calls_written(ws) == 3
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x.grad.data, expected_grads[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv.weight.grad.data, expected_grads[1], rtol=1e-4, atol=1e-4)
    assert exercises.substitutes() == {} and "registered" not in " ".join(kernels.describe().values())
    conv(x)
    assert calls_written(ws) == 3  # closed: the framework's compiled kernel runs again


def test_functions_imported_from_the_framework_are_not_substituted(ws):
    (ws / "02_tensor.py").write_text("from tinytorch.core.tensor import broadcast_shape, contiguous_strides\n")
    (ws / "05_dense.py").write_text("from tinytorch.core.networks import create_mlp\n")
    with use_workspace(ws) as workspace:
        states = {e.name: e.state for f in workspace.files for e in f.exercises.values()}
        assert workspace.functions() == {}
    assert states == {
        "broadcast_shape": "framework", "contiguous_strides": "framework",
        "create_mlp": "framework", "mlp_parameter_count": "missing", "mlp_forward_flops": "missing",
    }


def test_a_kernel_lesson_registers_the_students_kernels(ws):
    (ws / "13_kernels.py").write_text(textwrap.dedent("""
        from tinytorch._kernels import reference
        CALLS = []
        def maxpool2d_forward(x, kernel, stride, padding):
            CALLS.append("forward")
            return reference.maxpool2d_forward(x, kernel, stride, padding)
        def maxpool2d_backward(grad_out, argmax, input_shape):
            raise NotImplementedError
    """))
    with use_workspace(ws) as workspace:
        assert kernels.describe()["maxpool2d_forward"].startswith("registered")
        assert kernels.describe()["maxpool2d_backward"] != kernels.describe()["maxpool2d_forward"]
        tt.MaxPool2D(2)(tt.randn(1, 1, 4, 4))
        module = workspace.files[0].module
        assert workspace.calls() == {"tinytorch._kernels.reference.maxpool2d_forward": 1}
    assert module.CALLS == ["forward"]
    assert not kernels.describe()["maxpool2d_forward"].startswith("registered")


def test_a_workspace_file_that_does_not_import_is_named(ws):
    (ws / "03_activations.py").write_text("def leaky_relu(x:\n")
    with pytest.raises(WorkspaceError, match="03_activations.py does not import: SyntaxError"):
        use_workspace(ws)
    assert exercises.substitutes() == {}
    with pytest.raises(NotADirectoryError, match="is not a workspace folder"):
        use_workspace(ws / "nowhere")


def test_the_environment_variable_substitutes_for_a_whole_program(ws):
    (ws / "06_spatial.py").write_text(COUNTING_IM2COL)
    program = "import tinytorch as tt\nconv = tt.Conv2D(1, 2, 3)\nconv(tt.randn(1, 1, 5, 5)).sum().backward()\n"
    env = {**os.environ, "TINYTORCH_USE_WORKSPACE": str(ws)}
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert calls_written(ws) == 2  # forward and weight gradient; the input needs no gradient
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and calls_written(ws) == 2  # without the variable, the framework's own


geometry = st.tuples(
    st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7),  # N, C, H, W
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),  # F, KH, KW
    st.integers(1, 3), st.integers(1, 3), st.integers(0, 3), st.integers(0, 3),  # strides, paddings
)


@given(geometry, st.sampled_from([np.float32, np.float64]))
def test_the_convolution_built_on_im2col_matches_the_reference_kernel(shape, dtype):
    n, c, h, w, f, kh, kw, sh, sw, ph, pw = shape
    if kh > h + 2 * ph or kw > w + 2 * pw:
        return  # no valid window: the layers refuse such input before any kernel runs
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((n, c, h, w)).astype(dtype), rng.standard_normal((f, c, kh, kw)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    out = adapters.conv2d_forward(x, weight, bias, (sh, sw), (ph, pw))
    expected = reference.conv2d_forward(x, weight, bias, (sh, sw), (ph, pw))
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)
    grad = rng.standard_normal(expected.shape).astype(dtype)
    for got, want in zip(adapters.conv2d_backward(x, weight, grad, (sh, sw), (ph, pw)),
                         reference.conv2d_backward(x, weight, grad, (sh, sw), (ph, pw))):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("weight_decay, decoupled", [(0.0, False), (0.1, False), (0.1, True)])
def test_the_adam_step_built_on_adam_update_matches_the_kernel(weight_decay, decoupled):
    from tinytorch.core.optimizers import adam_update

    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(50) for _ in range(3)]
    arrays[2] = np.abs(arrays[2])
    grad = rng.standard_normal(50)
    mine = [a.copy() for a in arrays]
    theirs = [a.copy() for a in arrays]
    step = adapters.adam_step_on(kernels.implementation("adam_step"))
    def students_adam_update(*args):  # a student's function that happens to compute what the framework's does
        return adam_update.__wrapped__(*args)

    with exercises.register({adam_update: students_adam_update}, origin="test"):
        step(*mine[:1], grad, *mine[1:], 3, 0.01, 0.9, 0.999, 1e-8, weight_decay=weight_decay, decoupled_weight_decay=decoupled)
        assert exercises.calls()[exercises.key_of(adam_update)] == 1
    reference.adam_step(theirs[0], grad, theirs[1], theirs[2], 3, 0.01, 0.9, 0.999, 1e-8,
                        weight_decay=weight_decay, decoupled_weight_decay=decoupled)
    for got, want in zip(mine, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
