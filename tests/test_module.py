"""Module and Parameter: registration, traversal, modes, state_dict, dtype conversion, repr; and init."""

import math

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core import init
from tinytorch.core.module import Module, Parameter

from .layer_checks import torch  # noqa: F401  (fixture)


class Affine(Module):
    def __init__(self, n):
        super().__init__()
        self.scale = Parameter(np.ones(n))
        self.shift = Parameter(np.zeros(n))
        self.register_buffer("calls", np.zeros((), dtype=np.int64))
        self.register_buffer("scratch", np.zeros(n), persistent=False)

    def forward(self, x):
        self.calls.data += 1
        return x * self.scale + self.shift


class Block(Module):
    def __init__(self):
        super().__init__()
        self.inner = Affine(3)
        self.head = tt.Dense(3, 2)

    def forward(self, x):
        return self.head(self.inner(x))


# -- Parameter ----------------------------------------------------------------------------------
def test_parameter_is_a_float32_leaf_that_requires_grad():
    p = Parameter([1, 2, 3])
    assert p.dtype == np.float32 and p.requires_grad and p.is_leaf
    assert Parameter(np.zeros(2), dtype=tt.float64).dtype == np.float64
    assert repr(Parameter([1.0])).startswith("Parameter containing:\nTensor(")


def test_parameter_shares_an_array_of_its_dtype_and_converts_others():
    data = np.zeros(3, dtype=np.float32)
    assert np.shares_memory(Parameter(data).data, data)  # as Tensor(array) and torch.nn.Parameter
    other = np.zeros(3)
    assert not np.shares_memory(Parameter(other).data, other)


def test_parameter_rejects_non_float_dtype():
    with pytest.raises(TypeError, match="float32 or float64"):
        Parameter([1, 2], dtype=np.int64)


# -- registration and traversal ------------------------------------------------------------------
def test_named_parameters_are_dotted_paths_in_registration_order():
    names = [name for name, _ in Block().named_parameters()]
    assert names == ["inner.scale", "inner.shift", "head.weight", "head.bias"]


def test_shared_parameter_is_listed_once():
    block = Block()
    block.other = block.inner  # the same module twice
    assert len(block.parameters()) == 4
    assert [n for n, _ in block.named_modules()] == ["", "inner", "head"]


def test_children_modules_and_buffers():
    block = Block()
    assert [n for n, _ in block.named_children()] == ["inner", "head"]
    assert block.children() == [block.inner, block.head]
    assert block.modules() == [block, block.inner, block.head]
    assert [n for n, _ in block.named_buffers()] == ["inner.calls", "inner.scratch"]
    assert len(block.buffers()) == 2


def test_reassigning_an_attribute_moves_it_between_registries():
    block = Block()
    block.head = Parameter(np.ones(2))
    assert "head" not in dict(block.named_children())
    assert "head" in dict(block.named_parameters())
    del block.head
    assert "head" not in dict(block.named_parameters())


def test_assigning_a_plain_tensor_to_a_parameter_name_is_an_error():
    with pytest.raises(TypeError, match=r"Dense.weight is a Parameter"):
        tt.Dense(2, 2).weight = tt.zeros(2, 2)


def test_forgetting_super_init_is_a_clear_error():
    class Broken(Module):
        def __init__(self):
            self.w = Parameter([1.0])

    with pytest.raises(RuntimeError, match=r"Broken: call super\(\).__init__\(\)"):
        Broken()


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        Module()(1)


def test_call_runs_forward():
    layer = Affine(2)
    out = layer(tt.tensor([1.0, 2.0]))
    assert out.tolist() == [1.0, 2.0] and int(layer.calls.item()) == 1


def test_num_parameters_counts_trainable_and_frozen():
    block = Block()
    assert block.num_parameters() == 3 + 3 + 6 + 2
    block.inner.scale.requires_grad_(False)
    assert block.num_parameters(trainable_only=True) == 3 + 6 + 2


def test_apply_visits_children_before_parents():
    visited = []
    Block().apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Dense", "Affine", "Block"]


# -- modes and gradients -------------------------------------------------------------------------
def test_train_and_eval_reach_every_module():
    block = Block()
    assert block.eval() is block
    assert not any(m.training for m in block.modules())
    block.train()
    assert all(m.training for m in block.modules())


def test_zero_grad_sets_every_grad_to_none():
    block = Block()
    block(tt.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    block.zero_grad()
    assert all(p.grad is None for p in block.parameters())


# -- dtype ------------------------------------------------------------------------------------------
def test_to_float64_converts_parameters_and_float_buffers_in_place():
    block = Block()
    weight = block.head.weight
    before = weight.data.copy()
    assert block.double() is block
    assert block.head.weight is weight and weight.dtype == np.float64
    assert np.array_equal(weight.data, before)
    assert block.inner.scratch.dtype == np.float64 and block.inner.calls.dtype == np.int64
    assert block.float().head.weight.dtype == np.float32
    with pytest.raises(TypeError, match="must stay float"):
        block.to(np.int32)


# -- state_dict -------------------------------------------------------------------------------------
def test_state_dict_holds_copies_of_parameters_and_persistent_buffers():
    block = Block()
    state = block.state_dict()
    assert list(state) == ["inner.scale", "inner.shift", "inner.calls", "head.weight", "head.bias"]
    state["head.weight"][...] = 7
    assert not np.any(block.head.weight.data == 7)


def test_state_dict_round_trip_restores_outputs():
    a, b = Block(), Block()
    x = tt.randn(5, 3)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a(x).data, b(x).data)


def test_load_state_dict_keeps_parameter_objects_and_dtype():
    block = Block().double()
    weight = block.head.weight
    block.load_state_dict({k: v.astype(np.float32) for k, v in Block().state_dict().items()})
    assert block.head.weight is weight and weight.dtype == np.float64


def test_load_state_dict_strict_lists_missing_unexpected_and_shape_mismatches():
    block = Block()
    state = block.state_dict()
    del state["head.bias"]
    state["head.extra"] = np.zeros(1)
    state["inner.scale"] = np.zeros(4)
    before = block.head.weight.data.copy()
    state["head.weight"] = np.zeros((2, 3))
    with pytest.raises(ValueError) as error:
        block.load_state_dict(state)
    message = str(error.value)
    assert "missing names: head.bias" in message
    assert "unexpected names: head.extra" in message
    assert "inner.scale: expected (3,), got (4,)" in message
    assert np.array_equal(block.head.weight.data, before)  # nothing loaded


def test_load_state_dict_non_strict_reports_and_loads_the_rest():
    block = Block()
    state = {"head.weight": np.ones((2, 3)), "junk": np.zeros(1)}
    result = block.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["junk"]
    assert "head.bias" in result.missing_keys
    assert np.all(block.head.weight.data == 1)


# -- repr -------------------------------------------------------------------------------------------
def test_repr_is_nested_like_pytorch():
    net = tt.Sequential(tt.Dense(4, 3), tt.Sequential(tt.ReLU(), tt.Dropout(0.2)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Dense(4 -> 3)\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Dropout(p=0.2)\n"
        "  )\n"
        ")"
    )


# -- init -------------------------------------------------------------------------------------------
def test_fans_and_gains_match_pytorch(torch):
    for shape in [(10, 784), (32, 3, 3, 3), (1, 1), (5, 2, 1, 7)]:
        expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        assert init.calculate_fan_in_and_fan_out(shape) == expected
    for name, param in [("relu", None), ("tanh", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("sigmoid", None), ("selu", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


def test_unknown_gain_and_mode_are_errors():
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_uniform_(tt.zeros(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.calculate_fan_in_and_fan_out((5,))


@pytest.mark.parametrize(
    "fill, expected_std",
    [
        (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(2 / 400)),
        (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2 / 400)),
        (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 300)),
        (lambda t: init.xavier_uniform_(t), math.sqrt(2 / 700)),
        (lambda t: init.xavier_normal_(t, gain=2.0), 2 * math.sqrt(2 / 700)),
        (lambda t: init.normal_(t, 0.0, 0.5), 0.5),
        (lambda t: init.uniform_(t, -3.0, 3.0), math.sqrt(3.0)),
    ],
)
def test_init_draws_have_the_documented_scale(fill, expected_std):
    w = tt.zeros(300, 400)
    assert fill(w) is w
    assert abs(float(w.data.mean())) < 0.02 * expected_std * 10
    assert w.data.std() == pytest.approx(expected_std, rel=0.02)


def test_uniform_inits_respect_their_bound():
    w = tt.zeros(64, 100)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = init.kaiming_uniform_bound(100, a=math.sqrt(5))
    assert bound == pytest.approx(0.1)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.95 * bound


def test_kaiming_uniform_bound_formula():
    assert init.kaiming_uniform_bound(600) == pytest.approx(0.1)
    assert init.kaiming_uniform_bound(50, a=1.0) == pytest.approx(math.sqrt(6 / 100))
    with pytest.raises(ValueError, match="fan_in must be positive"):
        init.kaiming_uniform_bound(0)


def test_init_rejects_integer_tensors_and_fills_views():
    with pytest.raises(TypeError, match="init: a random draw needs a float tensor, got dtype int64"):
        init.normal_(tt.zeros(3, dtype=tt.int64))
    base = tt.zeros(4, 6)
    init.uniform_(base[:, ::2], 1.0, 2.0)  # a non-contiguous view is filled in place
    assert np.all(base.data[:, ::2] >= 1) and np.all(base.data[:, 1::2] == 0)


def test_constant_inits():
    w = tt.randn(3, 4)
    assert np.all(init.zeros_(w).data == 0)
    assert np.all(init.ones_(w).data == 1)
    assert np.all(init.constant_(w, 2.5).data == 2.5)


def test_init_is_reproducible_with_manual_seed():
    tt.manual_seed(3)
    a = tt.Dense(20, 10).weight.data.copy()
    tt.manual_seed(3)
    b = tt.Dense(20, 10).weight.data.copy()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, tt.Dense(20, 10).weight.data)


@pytest.mark.parametrize("shape, groups", [((6, 4, 3, 3), 1), ((4, 6, 3, 3), 1), ((8, 2, 3, 3), 2), ((5, 5, 3), 1),
                                           ((4, 4, 3, 3, 3), 1), ((6, 3, 2, 2), 3)])
def test_dirac_matches_pytorch(shape, groups, torch):
    w = tt.tensor(np.random.randn(*shape).astype(np.float32))
    assert init.dirac_(w, groups) is w
    expected = torch.nn.init.dirac_(torch.empty(shape), groups)
    np.testing.assert_array_equal(w.data, expected.numpy())


def test_dirac_conv_passes_its_input_through():
    conv = tt.Conv2D(4, 6, kernel_size=3, padding=1, bias=False)
    init.dirac_(conv.weight)
    x = np.random.randn(2, 4, 5, 5).astype(np.float32)
    out = conv(tt.tensor(x)).data
    np.testing.assert_array_equal(out[:, :4], x)
    np.testing.assert_array_equal(out[:, 4:], 0)


def test_dirac_rejects_what_is_not_a_grouped_conv_weight():
    with pytest.raises(ValueError, match=r"init.dirac_: expected a 3-, 4- or 5-D convolution weight, got shape \(3, 3\)"):
        init.dirac_(tt.zeros(3, 3))
    with pytest.raises(ValueError, match="5 output channels do not split into groups=2"):
        init.dirac_(tt.zeros(5, 2, 3, 3), groups=2)
