"""Sequential and MLP: construction, container behaviour, names, forward, counts, and the seed course's CNN."""

from collections import OrderedDict

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.networks import mlp_forward_flops, mlp_parameter_count

from .layer_checks import copy_into_torch, gradcheck_module, torch  # noqa: F401  (torch is a fixture)


def test_sequential_from_modules_list_or_mapping():
    a, b = tt.Dense(3, 4), tt.ReLU()
    for net in (tt.Sequential(a, b), tt.Sequential([a, b])):
        assert list(net) == [a, b] and len(net) == 2
    named = tt.Sequential(OrderedDict(fc=a, act=b))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    assert tt.Sequential().forward(tt.ones(2)).tolist() == [1.0, 1.0]


def test_sequential_runs_layers_in_order():
    net = tt.Sequential(tt.Dense(3, 4), tt.Tanh(), tt.Dense(4, 2))
    x = tt.randn(5, 3)
    expected = net[2](net[1](net[0](x)))
    assert np.array_equal(net(x).data, expected.data)


def test_sequential_indexing_slicing_and_append():
    layers = [tt.Dense(2, 2), tt.ReLU(), tt.Dense(2, 1)]
    net = tt.Sequential(layers)
    assert net[0] is layers[0] and net[-1] is layers[2]
    head = net[1:]
    assert isinstance(head, tt.Sequential) and list(head) == layers[1:]
    assert head[1] is layers[2]  # slices share modules
    sigmoid = tt.Sigmoid()
    assert net.append(sigmoid) is net and net[3] is sigmoid and len(net) == 4
    assert [type(m).__name__ for m in tt.Sequential().extend([tt.ReLU(), tt.Tanh()])] == ["ReLU", "Tanh"]
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError, match="Sequential index 4 is out of range for 4 layers"):
        net[4]
    with pytest.raises(TypeError, match="indices must be integers or slices"):
        net["0"]


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match=r"Sequential: layer 1 is a type, not a Module \(pass instances such as ReLU\(\)"):
        tt.Sequential(tt.Dense(2, 2), tt.ReLU)


def test_create_mlp_structure_and_counts():
    net = tt.create_mlp(10, [32, 16], 3, activation=tt.Tanh, output_activation=tt.Softmax)
    assert isinstance(net, tt.MLP) and isinstance(net, tt.Sequential)
    assert [type(m).__name__ for m in net] == ["Dense", "Tanh", "Dense", "Tanh", "Dense", "Softmax"]
    assert [(m.in_features, m.out_features) for m in net if isinstance(m, tt.Dense)] == [(10, 32), (32, 16), (16, 3)]
    assert net.num_parameters() == mlp_parameter_count(10, [32, 16], 3) == 10 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3
    out = net(tt.randn(4, 10))
    np.testing.assert_allclose(out.data.sum(axis=1), 1.0, rtol=1e-6)


def test_create_mlp_without_hidden_layers_is_one_dense():
    net = tt.create_mlp(4, [], 2)
    assert [type(m).__name__ for m in net] == ["Dense"]


def test_create_mlp_gives_each_layer_its_own_activation():
    shared = tt.LeakyReLU(0.2)
    net = tt.MLP(3, [4, 4], 1, activation=shared)
    activations = [m for m in net if isinstance(m, tt.LeakyReLU)]
    assert len(activations) == 2 and activations[0] is not activations[1]
    assert all(a.negative_slope == 0.2 for a in activations)


def test_create_mlp_errors():
    with pytest.raises(ValueError, match=r"layer sizes must be positive integers, got \[4, 0, 2\]"):
        tt.create_mlp(4, [0], 2)
    with pytest.raises(TypeError, match="activation must make a Module"):
        tt.create_mlp(4, [3], 2, activation=lambda: "relu")


def test_mlp_flops_count():
    assert mlp_forward_flops(8, 10, [20], 5) == 2 * 8 * (10 * 20 + 20 * 5)


def test_mlp_gradients():
    net = tt.create_mlp(3, [4], 2, activation=tt.Tanh)
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 2)).T  # non-contiguous (2, 3)
    assert gradcheck_module(net, x)


def test_mlp_matches_torch_with_copied_weights(torch):
    ours = tt.create_mlp(5, [7, 6], 3)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)
    )
    copy_into_torch(theirs, ours)
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(x).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_of_a_network():
    a, b = tt.create_mlp(4, [5], 2), tt.create_mlp(4, [5], 2)
    x = tt.randn(3, 4)
    assert not np.array_equal(a(x).data, b(x).data)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a(x).data, b(x).data)


def test_train_and_eval_reach_nested_dropout():
    net = tt.Sequential(tt.Dense(4, 4), tt.Sequential(tt.Dropout(0.9)))
    x = tt.ones(2, 4)
    assert np.array_equal(net.eval()(x).data, net[0](x).data)


def test_the_seed_course_cnn_runs_forward_and_backward_on_cifar_shapes():
    model = tt.Sequential(
        [
            tt.Conv2D(3, 32, kernel_size=3),
            tt.ReLU(),
            tt.Conv2D(32, 64, kernel_size=3),
            tt.ReLU(),
            tt.Dense(64 * 28 * 28, 128),
            tt.ReLU(),
            tt.Dense(128, 10),
        ]
    )
    images = tt.randn(2, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    labels = np.array([3, 7])
    loss = -logits.log_softmax(axis=1)[np.arange(2), labels].mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.all(np.isfinite(p.grad.data)) and np.any(p.grad.data != 0), name
