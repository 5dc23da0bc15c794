"""count_flops and the per-op FLOP formulas against hand-derived figures and torch.utils.flop_counter."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, ReLU, Sequential
from tinytorch.core import autograd, kernels, module
from tinytorch.core.flops import CONVENTION, FlopCounter, conv2d_flops, count_flops, matmul_flops, register_flop_formula
from tinytorch.core.op_profiler import Profiler

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def reference_cnn():
    """The CIFAR-10 CNN of examples/train_cifar10.py, built by the example's own build_model()."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import train_cifar10
    finally:
        sys.path.remove(str(EXAMPLES))
    return train_cifar10.build_model()


def conv_out(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def test_reference_cnn_matches_the_hand_derived_figures():
    count = count_flops(reference_cnn(), (1, 3, 32, 32))
    # 2 * outputs * (multiply-adds per output): conv = 2*Ho*Wo*F * C*3*3, dense = 2*out*in
    hand = {
        "0": 2 * 32 * 32 * 32 * 3 * 9,      # 1.77 M
        "4": 2 * 16 * 16 * 64 * 32 * 9,     # 9.44 M
        "8": 2 * 8 * 8 * 128 * 64 * 9,      # 9.44 M
        "13": 2 * 256 * 2048,               # 1.05 M
        "15": 2 * 10 * 256,                 # 0.005 M
    }  # fmt: skip
    assert {layer.name: layer.forward for layer in count.layers} == hand
    assert count.forward == 21_697_536 and round(count.forward / 1e6, 2) == 21.70
    assert [layer.kind for layer in count.layers] == ["Conv2D", "Conv2D", "Conv2D", "Dense", "Dense"]
    # backward: the first conv's input needs no gradient (weight only); every other layer computes both
    assert count.backward == hand["0"] + 2 * (count.forward - hand["0"])
    assert count.forward_macs * 2 == count.forward and count.backward_macs * 2 == count.backward
    assert count.layers[1].output_shape == (1, 64, 16, 16)


def test_per_image_figures_scale_with_the_batch():
    model = reference_cnn()
    one, many = count_flops(model, (1, 3, 32, 32)), count_flops(model, (3, 3, 32, 32))
    assert many.forward == 3 * one.forward and many.backward == 3 * one.backward
    assert many.forward_per_sample == one.forward


def test_counts_equal_torch_flop_counter_on_the_reference_cnn():
    torch = pytest.importorskip("torch", reason="PyTorch is the FLOP-count oracle; without it the hand-derived test stands")
    from torch.utils.flop_counter import FlopCounterMode

    nn = torch.nn

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    oracle = nn.Sequential(
        *block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2048, 256), nn.ReLU(), nn.Linear(256, 10),
    )  # fmt: skip
    with FlopCounterMode(display=False) as counter:
        oracle(torch.zeros(1, 3, 32, 32)).sum().backward()
    per_module = counter.get_flop_counts()
    ours = {layer.name: layer for layer in count_flops(reference_cnn(), (1, 3, 32, 32)).layers}
    for name, layer in ours.items():
        counts = {str(op): n for op, n in per_module[f"Sequential.{name}"].items()}
        forward = sum(n for op, n in counts.items() if "backward" not in op and op != "aten.mm")
        backward = sum(n for op, n in counts.items() if "backward" in op or op == "aten.mm")
        assert (layer.forward, layer.backward) == (forward, backward), name
    assert sum(layer.total for layer in ours.values()) == counter.get_total_flops()


@given(
    n=st.integers(1, 3), c=st.integers(1, 4), f=st.integers(1, 5), h=st.integers(3, 9), w=st.integers(3, 9),
    k=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 2), bias=st.booleans(),
)  # fmt: skip
def test_a_convolution_matches_torch_forward_and_backward(n, c, f, h, w, k, stride, padding, bias):
    torch = pytest.importorskip("torch", reason="PyTorch is the FLOP-count oracle")
    from torch.utils.flop_counter import FlopCounterMode

    layer = Conv2D(c, f, kernel_size=k, stride=stride, padding=padding, bias=bias)
    with FlopCounter(layer) as ours:
        layer(tt.randn(n, c, h, w, requires_grad=True)).sum().backward()
    oracle = torch.nn.Conv2d(c, f, k, stride=stride, padding=padding, bias=bias)
    with FlopCounterMode(display=False) as theirs:
        oracle(torch.randn(n, c, h, w, requires_grad=True)).sum().backward()
    total = {str(op): count for op, count in theirs.get_flop_counts()["Global"].items()}
    assert ours.forward == total["aten.convolution"] == conv2d_flops((n, c, h, w), (f, c, k, k), stride, padding)
    assert ours.backward == total["aten.convolution_backward"]
    assert ours.forward == 2 * n * f * conv_out(h, k, stride, padding) * conv_out(w, k, stride, padding) * c * k * k


@given(
    a=st.lists(st.integers(1, 4), min_size=1, max_size=4), k=st.integers(1, 5), n=st.integers(1, 4),
    b_batch=st.booleans(), needs=st.sampled_from([(True, True), (True, False), (False, True)]),
)  # fmt: skip
def test_matmul_matches_torch_with_broadcasting_and_vectors(a, k, n, b_batch, needs):
    torch = pytest.importorskip("torch", reason="PyTorch is the FLOP-count oracle")
    from torch.utils.flop_counter import FlopCounterMode

    a_shape = (*a[:-1], k) if len(a) > 1 else (k,)
    b_shape = (*a[:-2], k, n) if b_batch and len(a) > 2 else (k, n)
    x, y = np.random.default_rng(0).standard_normal(a_shape), np.random.default_rng(1).standard_normal(b_shape)
    ta, tb = tt.tensor(x, requires_grad=needs[0]), tt.tensor(y, requires_grad=needs[1])
    with FlopCounter() as ours:
        (ta @ tb).sum().backward()
    xa, xb = torch.tensor(x, requires_grad=needs[0]), torch.tensor(y, requires_grad=needs[1])
    with FlopCounterMode(display=False) as theirs:
        forward = FlopCounterMode(display=False)
        with forward:
            out = xa @ xb
        out.sum().backward()
    assert ours.forward == forward.get_total_flops() == matmul_flops(a_shape, b_shape)
    assert ours.forward + ours.backward == theirs.get_total_flops()  # the outer counter saw both passes


def test_a_dense_layer_on_3d_input_counts_every_row():
    layer = Dense(6, 4)
    count = count_flops(layer, (2, 5, 6))
    assert count.forward == 2 * (2 * 5 * 4) * 6
    assert count.backward == count.forward  # the input needs no gradient: the weight's only


def test_count_flops_leaves_the_model_as_it_was():
    model = Sequential(Conv2D(3, 4, 3), BatchNorm2D(4), ReLU(), Dropout(0.5), Flatten(), Dense(4 * 6 * 6, 3))
    model.train()
    model[5].weight.grad = tt.ones(3, 144)
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    tt.manual_seed(0)
    draw = tt.randn(3).numpy()
    tt.manual_seed(0)
    count_flops(model, (2, 3, 8, 8))
    assert all(m.training for m in model.modules())
    assert np.array_equal(model[5].weight.grad.numpy(), np.ones((3, 144)))
    assert model[0].weight.grad is None
    assert all(np.array_equal(np.array(v), state[k]) for k, v in model.state_dict().items())
    assert np.array_equal(tt.randn(3).numpy(), draw)  # the generator was not advanced


def test_forward_only_and_the_macs_view():
    model = Sequential(Dense(8, 4), ReLU(), Dense(4, 2))
    count = count_flops(model, (3, 8), backward=False)
    assert count.backward == 0 and count.forward == 2 * 3 * (8 * 4 + 4 * 2)
    assert count.forward_macs == 3 * (8 * 4 + 4 * 2)
    table = count.table()
    assert table.splitlines()[0] == "FLOPs for input (3, 8)"
    assert table.splitlines()[1].split() == ["layer", "type", "output", "shape", "forward", "FLOPs", "backward", "FLOPs"]
    assert table.splitlines()[2].split() == ["0", "Dense", "(3,", "4)", "192.000", "0.000"]
    assert table.splitlines()[-1].split() == ["total", "240.000", "0.000"]
    assert "forward MACs" in count.table(macs=True) and "120.000" in count.table(macs=True)
    assert "multiply-add as 2" in CONVENTION


def test_the_counter_nests_inside_a_profiler_and_restores_the_hooks():
    layer = Dense(4, 3)
    with Profiler() as prof:
        with FlopCounter(layer) as counter:
            layer(tt.randn(5, 4))
        layer(tt.randn(5, 4))
    assert counter.forward == 2 * 5 * 3 * 4  # only the call inside its block
    assert [e.flops for e in prof.events() if e.name == "LinearFunction"] == [120, 120]
    assert autograd.set_observer(None) is None and kernels.set_observer(None) is None and module.set_observer(None) is None


def test_a_registered_formula_is_counted():
    from tinytorch.core.autograd import Function

    class Scale(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 3.0

        @staticmethod
        def backward(ctx, grad):
            return grad * 3.0

    register_flop_formula("Scale", lambda inputs, out: int(np.prod(out)), lambda inputs, grad, done: int(np.prod(grad)))
    with FlopCounter() as counter:
        Scale.apply(tt.randn(4, 5, requires_grad=True)).sum().backward()
    assert (counter.forward, counter.backward) == (20, 20)
    assert counter.by_op == {"Scale": 20, "ScaleBackward": 20}


@pytest.mark.parametrize(
    "args, message",
    [
        (((1, 3, 32), (8, 3, 3, 3)), "input_shape must have 4 entries"),
        (((1, 3, 32, 32), (8, 4, 3, 3)), "input_shape has 3 channels but weight_shape expects 4"),
        (((1, 3, 2, 2), (8, 3, 3, 3)), "does not fit the padded 2x2 input"),
        (((1, 3, 8, 8), (8, 3, 3, 3), 0), "stride must be at least 1"),
    ],
)
def test_conv2d_flops_rejects_impossible_shapes(args, message):
    with pytest.raises(ValueError, match=message):
        conv2d_flops(*args)


@pytest.mark.parametrize("packed", [True, False])
def test_attention_counts_both_products_forward_and_four_backward(packed):
    torch = pytest.importorskip("torch", reason="PyTorch is the FLOP-count oracle")
    from torch.utils.flop_counter import FlopCounterMode

    b, length, e, heads = 2, 5, 8, 2
    attention = tt.MultiHeadAttention(e, heads)
    x = tt.randn(b, length, e, requires_grad=True)
    with FlopCounter(attention) as ours:
        out = attention(x, x, x, need_weights=False)[0] if packed else attention(x, x * 1.0, x * 1.0, need_weights=False)[0]
        out.sum().backward()
    projections = 2 * b * length * e * (3 * e) + 2 * b * length * e * e  # in_proj (q, k, v) and out_proj
    core_forward = 2 * b * length * length * (e + e)  # q kᵀ and probs v, the heads splitting e
    assert ours.by_op["MultiHeadAttentionFunction"] == core_forward
    assert ours.by_op["MultiHeadAttentionFunctionBackward"] == 2 * core_forward  # g vᵀ, probsᵀ g, ds k, dsᵀ q
    assert ours.forward == projections + core_forward
    q, k, v = (torch.randn(b, heads, length, e // heads) for _ in range(3))
    with FlopCounterMode(display=False) as theirs:  # attention written out: torch does not count its fused CPU kernel
        (q @ k.transpose(-2, -1)).softmax(-1) @ v
    assert theirs.get_total_flops() == core_forward
