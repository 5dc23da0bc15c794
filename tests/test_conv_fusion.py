"""The evaluation-mode fast path: Conv2D -> BatchNorm2D -> ReLU -> MaxPool2D as one kernel call.

The fused kernel against its reference and against the unfused kernels it replaces; the layers'
fused path against the same layers run one by one; and everything that must not change: training,
gradients, a student's kernels, the profiler's events and the FLOP count.
"""

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch._kernels import conv as compiled
from tinytorch._kernels import reference
from tinytorch.core import kernels
from tinytorch.core.flops import FlopCounter, count_flops

from .kernel_checks import DTYPES, arrays, assert_close, torch_oracle


@st.composite
def fused_geometries(draw):
    """A convolution (any stride and padding the kernel accepts) and a pool window that fits its output."""
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, min(4, h + 2 * ph))), draw(st.integers(1, min(4, w + 2 * pw)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    ho, wo = (h + 2 * ph - kh) // stride[0] + 1, (w + 2 * pw - kw) // stride[1] + 1
    pool = (draw(st.integers(1, min(3, ho))), draw(st.integers(1, min(3, wo))))
    return (n, c, h, w), (f, c, kh, kw), stride, (ph, pw), pool


def unfused(x, weight, bias, stride, padding, relu, pool):
    """The same block from the separate reference kernels: convolution, ReLU, max-pool."""
    out = reference.conv2d_forward(x, weight, bias, stride, padding)
    if relu:
        out = reference.relu_forward(out)
    return reference.maxpool2d_forward(out, pool, pool, (0, 0))[0]


@settings(max_examples=60, deadline=None)
@given(geometry=fused_geometries(), dtype=st.sampled_from(DTYPES), relu=st.booleans(), with_bias=st.booleans(),
       data=st.data())
def test_fused_kernel_matches_reference_and_the_unfused_kernels(geometry, dtype, relu, with_bias, data):
    x_shape, w_shape, stride, padding, pool = geometry
    x, weight = data.draw(arrays(x_shape, dtype)), data.draw(arrays(w_shape, dtype))
    bias = data.draw(arrays((w_shape[0],), dtype)) if with_bias else None
    want = reference.conv2d_fused_forward(x, weight, bias, stride, padding, relu, pool)
    scale = int(np.prod(w_shape[1:]))
    assert_close(want, unfused(x, weight, bias, stride, padding, relu, pool), "conv2d_fused_forward (reference)", scale)
    assert_close(compiled.conv2d_fused_forward(x, weight, bias, stride, padding, relu, pool), want,
                 "conv2d_fused_forward", scale)


@pytest.mark.parametrize("implementation", [reference, compiled], ids=["reference", "compiled"])
@pytest.mark.parametrize("pool", [(1, 1), (2, 2), (3, 2)])
def test_fused_kernel_propagates_nan_like_relu_and_maxpool(implementation, pool):
    x = np.zeros((1, 1, 6, 6), np.float32)
    x[0, 0, 1, 1] = np.nan
    weight = np.ones((1, 1, 1, 1), np.float32)
    out = implementation.conv2d_fused_forward(x, weight, None, (1, 1), (0, 0), True, pool)
    assert np.isnan(out[0, 0, 1 // pool[0], 1 // pool[1]])
    assert np.isnan(out).sum() == 1


@pytest.mark.parametrize("implementation", [reference, compiled], ids=["reference", "compiled"])
def test_fused_kernel_rejects_a_pool_larger_than_the_convolution_output(implementation):
    x, weight = np.ones((1, 1, 3, 3), np.float32), np.ones((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="conv2d_fused_forward"):
        implementation.conv2d_fused_forward(x, weight, None, (1, 1), (0, 0), True, (2, 2))


def test_fused_kernel_results_never_alias_the_reused_workspace():
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 2, 3, 8, 8)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out1 = compiled.conv2d_fused_forward(x1, weight, None, (1, 1), (1, 1), True, (1, 1))
    kept = out1.copy()
    compiled.conv2d_fused_forward(x2, weight, None, (1, 1), (1, 1), True, (1, 1))
    np.testing.assert_array_equal(out1, kept)


# -- the layers -------------------------------------------------------------------------------------
def randomise_statistics(model, seed):
    """Running statistics and affine parameters far from their defaults, so a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model.modules():
        if isinstance(layer, tt.BatchNorm2D):
            c = layer.num_features
            layer.running_mean.data[...] = rng.standard_normal(c)
            layer.running_var.data[...] = rng.uniform(0.2, 3.0, c)
            if layer.affine:
                layer.weight.data[...] = rng.uniform(-2.0, 2.0, c)
                layer.bias.data[...] = rng.standard_normal(c)
    return model


def one_by_one(model, x):
    """The model's layers called in turn, never fused (no Sequential.forward)."""
    for layer in model:
        x = layer(x)
    return x


def op_names(model, x):
    with tt.profiler.profile() as prof:
        model(x)
    return {event.key for event in prof.key_averages()}


BLOCKS = {
    "conv-bn-relu-pool": lambda c, f: [tt.Conv2D(c, f, 3, padding=1), tt.BatchNorm2D(f), tt.ReLU(), tt.MaxPool2D(2)],
    "conv-bn": lambda c, f: [tt.Conv2D(c, f, 3, padding=1), tt.BatchNorm2D(f)],
    "conv-relu": lambda c, f: [tt.Conv2D(c, f, 1, bias=False), tt.ReLU()],
    "conv-pool": lambda c, f: [tt.Conv2D(c, f, 5, padding=2), tt.MaxPool2D((2, 1))],
    "conv-bn(no affine)-relu": lambda c, f: [tt.Conv2D(c, f, 3, padding=1), tt.BatchNorm2D(f, affine=False), tt.ReLU()],
}


@settings(max_examples=25, deadline=None)
@given(block=st.sampled_from(sorted(BLOCKS)), n=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 5),
       side=st.integers(2, 7), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_fused_eval_path_matches_the_layers_one_by_one(block, n, c, f, side, dtype, seed):
    tt.manual_seed(seed)
    model = randomise_statistics(tt.Sequential(*BLOCKS[block](c, f), tt.Flatten()), seed).to(dtype).eval()
    x = tt.tensor(np.random.default_rng(seed).standard_normal((n, c, side, side)), dtype=dtype)
    with tt.no_grad():
        assert "FusedConv2DFunction" in op_names(model, x)
        got = model(x).numpy()
        want = one_by_one(model, x).numpy()
    assert_close(got, want, f"fused {block}", 9 * c * 10)


def test_the_cnn_in_evaluation_runs_three_fused_blocks_and_matches_the_unfused_layers():
    tt.manual_seed(0)
    layers = []
    for c_in, c_out in ((3, 8), (8, 16)):
        layers += [tt.Conv2D(c_in, c_out, 3, padding=1), tt.BatchNorm2D(c_out), tt.ReLU(), tt.MaxPool2D(2)]
    model = randomise_statistics(tt.Sequential(*layers, tt.Flatten(), tt.Dense(16 * 2 * 2, 10)), 1).eval()
    x = tt.randn(4, 3, 8, 8)
    with tt.no_grad():
        with tt.profiler.profile() as prof:
            got = model(x).numpy()
        want = one_by_one(model, x).numpy()
    counts = {event.key: event.count for event in prof.key_averages()}
    assert counts.get("FusedConv2DFunction") == 2 and counts.get("kernels.conv2d_fused_forward") == 2
    assert not {"Conv2DFunction", "BatchNormEvalFunction", "MaxPool2DFunction"} & set(counts)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_fold_follows_weights_and_statistics_changed_between_calls():
    tt.manual_seed(2)
    model = tt.Sequential(tt.Conv2D(2, 3, 3, padding=1), tt.BatchNorm2D(3), tt.ReLU()).eval()
    x = tt.randn(2, 2, 5, 5)
    with tt.no_grad():
        before = model(x).numpy()
        randomise_statistics(model, 3)
        model[0].weight.data *= -1.5  # in place, as an optimizer writes
        after = model(x).numpy()
        np.testing.assert_allclose(after, one_by_one(model, x).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, after)


@pytest.mark.parametrize("case", ["training", "grad for the input", "grad for the parameters", "stride 2",
                                  "no running statistics", "overlapping pool", "batch norm training"])
def test_layers_that_must_not_fuse_run_one_by_one_with_the_same_result(case):
    tt.manual_seed(4)
    conv = tt.Conv2D(2, 3, 3, padding=1, stride=2 if case == "stride 2" else 1)
    bn = tt.BatchNorm2D(3, track_running_stats=case != "no running statistics")
    pool = tt.MaxPool2D(3, stride=1) if case == "overlapping pool" else tt.MaxPool2D(2)
    model = tt.Sequential(conv, bn, tt.ReLU(), pool)
    model.train(case == "training")
    if case == "batch norm training":
        bn.train()
    x = tt.randn(2, 2, 6, 6, requires_grad=case == "grad for the input")
    grad_free = case not in ("grad for the input", "grad for the parameters", "training")
    with tt.no_grad() if grad_free else tt.enable_grad():
        names = op_names(model, x)
        out = model(x)
        want = one_by_one(model, x)
    expected_unfused = {"Conv2DFunction", "MaxPool2DFunction"} if case != "overlapping pool" else {"MaxPool2DFunction"}
    assert expected_unfused <= names, names
    if case == "overlapping pool":  # conv -> batch norm -> ReLU still fuse; the pool runs alone
        assert "FusedConv2DFunction" in names
    else:
        assert "FusedConv2DFunction" not in names
    if bn.training:  # each call took a new batch's statistics into the running ones: compare shapes only
        assert out.shape == want.shape
    else:
        np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_training_gradients_are_those_of_the_unfused_layers():
    tt.manual_seed(5)
    model = tt.Sequential(tt.Conv2D(2, 3, 3, padding=1), tt.BatchNorm2D(3), tt.ReLU(), tt.MaxPool2D(2), tt.Flatten())
    twin = tt.Sequential(tt.Conv2D(2, 3, 3, padding=1), tt.BatchNorm2D(3), tt.ReLU(), tt.MaxPool2D(2), tt.Flatten())
    twin.load_state_dict(model.state_dict())
    x = np.random.default_rng(5).standard_normal((3, 2, 4, 4)).astype(np.float32)
    for mode in (True, False):  # training, then evaluation with gradients recorded (saliency maps)
        model.train(mode), twin.train(mode)
        a, b = tt.tensor(x, requires_grad=True), tt.tensor(x, requires_grad=True)
        model(a).sum().backward()
        one_by_one(twin, b).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=name)
        model.zero_grad(), twin.zero_grad()


def test_a_students_registered_kernel_is_never_skipped_by_the_fused_path():
    calls = []
    student = types.ModuleType("student_kernels")

    def relu_forward(x):
        calls.append(x.shape)
        return np.maximum(x, 0)

    student.relu_forward = relu_forward
    model = tt.Sequential(tt.Conv2D(2, 3, 3, padding=1), tt.BatchNorm2D(3), tt.ReLU()).eval()
    with kernels.register(student, ["relu_forward"]), tt.no_grad():
        model(tt.randn(1, 2, 4, 4))
    assert calls == [(1, 3, 4, 4)]


def test_flop_count_of_the_fused_path_is_the_convolutions():
    model = tt.Sequential(tt.Conv2D(3, 8, 3, padding=1), tt.BatchNorm2D(8), tt.ReLU(), tt.MaxPool2D(2))
    with FlopCounter(model.eval()) as counter, tt.no_grad():  # evaluation, no graph: the fused path
        model(tt.zeros(2, 3, 8, 8))
    assert counter.by_op == {"FusedConv2DFunction": 2 * 2 * 8 * 8 * 8 * 3 * 9}
    fused = count_flops(model, (2, 3, 8, 8), backward=False)
    assert fused.forward == counter.forward == count_flops(model, (2, 3, 8, 8)).forward  # with a graph: Conv2DFunction
    assert [(layer.name, layer.kind) for layer in fused.layers] == [("0", "Conv2D")]


def test_batchnorm_eval_affine_is_its_evaluation_map():
    bn = randomise_statistics(tt.Sequential(tt.BatchNorm2D(4)), 6)[0].eval()
    x = tt.randn(3, 4, 2, 2)
    scale, shift = bn.eval_affine()
    np.testing.assert_allclose(x.numpy() * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1), bn(x).numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no running statistics"):
        tt.BatchNorm2D(4, track_running_stats=False).eval_affine()


def test_fused_cnn_in_evaluation_matches_pytorch():
    torch = torch_oracle()
    tt.manual_seed(7)
    model = randomise_statistics(tt.Sequential(tt.Conv2D(3, 6, 3, padding=1), tt.BatchNorm2D(6), tt.ReLU(),
                                               tt.MaxPool2D(2), tt.Flatten()), 7).eval()
    oracle = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten()).eval()
    oracle.load_state_dict({k: torch.from_numpy(np.asarray(v.data if hasattr(v, "data") else v))
                            for k, v in model.state_dict().items()})
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with tt.no_grad(), torch.no_grad():
        np.testing.assert_allclose(model(tt.from_numpy(x)).numpy(), oracle(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
