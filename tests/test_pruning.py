"""Pruning: magnitude masks, global and per-layer pruning kept through fine-tuning, structured
channel pruning that removes work, and compact sparse files."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core.checkpoint import CheckpointError
from tinytorch.core.compression import (
    KeepPruned,
    apply_masks,
    calculate_sparsity,
    channel_importance,
    layer_sparsity,
    load_sparse,
    magnitude_mask,
    prune_channels,
    prune_layer_neurons,
    prune_magnitude,
    prune_weights_by_magnitude,
    remove_masks,
    save_sparse,
    sparsity,
)
from tinytorch.core.optimizers import SGD
from tinytorch.core.training import CrossEntropyLoss, Trainer

from .strategies import float64_arrays, shapes


@given(shapes(min_dims=1, max_dims=3, max_side=6), st.floats(0, 1), st.data())
def test_magnitude_mask_prunes_exactly_the_smallest(shape, fraction, data):
    w = data.draw(float64_arrays(shape))
    mask = magnitude_mask(w, fraction)
    pruned = int(round(fraction * w.size))
    assert mask.dtype == bool and mask.shape == w.shape and np.count_nonzero(~mask) == pruned
    if 0 < pruned < w.size:
        assert np.abs(w[~mask]).max() <= np.abs(w[mask]).min()


def test_magnitude_mask_breaks_ties_by_position():
    w = np.array([[0.5, -0.1, 0.1], [0.1, 2.0, -0.5]])
    assert magnitude_mask(w, 0.5).tolist() == [[True, False, False], [False, True, True]]


def mlp():
    tt.manual_seed(0)
    return tt.Sequential(tt.Dense(40, 30), tt.ReLU(), tt.Dense(30, 5))


def test_global_and_per_layer_scopes():
    per_layer = prune_magnitude(mlp(), 0.7, scope="layer")
    assert per_layer == {"0": pytest.approx(0.7, abs=1e-3), "2": pytest.approx(0.7, abs=1e-2)}
    model = mlp()
    model[2].weight.data *= 10  # the second layer's weights are all larger: a global threshold spares them
    report = prune_magnitude(model, 0.7, scope="global")
    assert report["2"] < 0.1 < report["0"]
    assert sparsity(model) == pytest.approx(0.7, abs=1e-3)
    pruned_again = prune_magnitude(model, 0.3)  # a lower target keeps every earlier zero
    assert pruned_again == report
    with pytest.raises(ValueError, match="scope must be 'global' or 'layer'"):
        prune_magnitude(model, 0.5, scope="row")
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\], got 1.5"):
        prune_magnitude(model, 1.5)


def test_masks_hold_through_fine_tuning_with_momentum():
    model = mlp()
    prune_magnitude(model, 0.8)
    zeros = [m.weight.data == 0 for m in (model[0], model[2])]
    x, y = tt.randn(64, 40), tt.randint(0, 5, (64,))
    loader = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    optimizer = SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    before = model[0].weight.data.copy()
    Trainer(model, CrossEntropyLoss(), optimizer, callbacks=[KeepPruned()]).fit(loader, epochs=2, verbose=0)
    assert not np.array_equal(before, model[0].weight.data)  # the kept weights did train
    for layer, was_zero in zip((model[0], model[2]), zeros):
        assert np.all(layer.weight.data[was_zero] == 0)
    # without the masks re-applied, momentum moves pruned weights off zero at once
    optimizer.step()
    assert np.any(model[0].weight.data[zeros[0]] != 0)
    apply_masks(model)
    assert np.all(model[0].weight.data[zeros[0]] == 0)
    remove_masks(model)
    assert getattr(model[0], "weight_mask", None) is None and "0.weight_mask" not in model.state_dict()


def test_original_entry_points():
    tt.manual_seed(0)
    layer = tt.Dense(100, 50)
    same, info = prune_weights_by_magnitude(layer, pruning_ratio=0.3)
    assert same is layer and info["total_weights"] == 5000 and info["weights_removed"] == 1500
    assert info["sparsity"] == calculate_sparsity(layer) == 0.3
    assert info["compression_ratio"] == pytest.approx(1 / 0.7)
    assert info["threshold"] <= np.abs(layer.weight.data[layer.weight.data != 0]).min()
    small, info = prune_layer_neurons(tt.Dense(20, 10), keep_ratio=0.6)
    assert small.weight.shape == (6, 20) and info["remaining_neurons"] == 6


def conv_net():
    tt.manual_seed(1)
    net = tt.Sequential(
        tt.Conv2D(3, 8, 3, padding=1, bias=False), tt.BatchNorm2D(8), tt.ReLU(), tt.MaxPool2D(2),
        tt.Conv2D(8, 6, 3, padding=1), tt.BatchNorm2D(6), tt.ReLU(), tt.Flatten(),
        tt.Dense(6 * 2 * 2, 7), tt.ReLU(), tt.Dense(7, 3),
    )
    net.train()
    with tt.no_grad():
        net(tt.randn(8, 3, 4, 4))
    return net.eval()


def test_channel_pruning_removes_exactly_the_dead_channels():
    net = conv_net()
    dead_conv, dead_dense = [1, 4, 6], [0, 5]
    for bn, dead in ((net[1], dead_conv), (net[5], [2])):
        bn.weight.data[dead] = 0.0  # these channels output exactly 0 after the ReLU...
        bn.bias.data[dead] = -1.0
    net[8].weight.data[dead_dense] = 0.0
    net[8].bias.data[dead_dense] = -1.0
    assert np.all(channel_importance(net[0], net[1])[dead_conv] == 0)
    pruned = prune_channels(net, {0: 3 / 8, 4: 1 / 6, 8: 2 / 7})
    assert [tuple(m.weight.shape) for m in pruned if isinstance(m, (tt.Conv2D, tt.Dense))] == \
        [(5, 3, 3, 3), (5, 5, 3, 3), (5, 20), (3, 5)]
    assert pruned[1].num_features == 5 and pruned[1].running_mean.shape == (5,)
    x = tt.randn(4, 3, 4, 4)
    with tt.no_grad():  # ...so removing them changes nothing
        np.testing.assert_allclose(pruned(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-6)
    assert type(net[0]) is tt.Conv2D and net[0].weight.shape == (8, 3, 3, 3)  # the original is untouched


def test_channel_pruning_by_amount_and_errors():
    net = conv_net()
    prune_magnitude(net, 0.5)  # masks of unstructured pruning are sliced with the channels
    pruned = prune_channels(net, 0.5)
    for layer in (m for m in pruned if isinstance(m, (tt.Conv2D, tt.Dense))):
        assert layer.weight_mask.shape == layer.weight.shape and np.all(layer.weight.data[~layer.weight_mask.data] == 0)
    assert [m.weight.shape[0] for m in pruned if isinstance(m, (tt.Conv2D, tt.Dense))] == [4, 3, 3, 3]  # 7 * 0.5 rounds to 4 removed (Python's round)
    assert pruned(tt.randn(2, 3, 4, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"layers \[10\] are not prunable"):
        prune_channels(conv_net(), {10: 0.5})
    with pytest.raises(ValueError, match=r"cannot follow channels through layer 1 \(LayerNorm"):
        prune_channels(tt.Sequential(tt.Dense(4, 4), tt.LayerNorm(4), tt.Dense(4, 2)), 0.5)


def test_sparse_files_round_trip_exactly_and_shrink(tmp_path):
    tt.manual_seed(0)
    net = tt.Sequential(tt.Dense(500, 400), tt.ReLU(), tt.Dense(400, 10))
    prune_magnitude(net, 0.9)
    dense_path, sparse_path, int8_path = tmp_path / "dense.npz", tmp_path / "sparse.npz", tmp_path / "int8.npz"
    tt.save_checkpoint(dense_path, net)
    save_sparse(sparse_path, net, epoch=3)
    save_sparse(int8_path, net, values="int8")
    ratio = dense_path.stat().st_size / sparse_path.stat().st_size
    ratio_int8 = dense_path.stat().st_size / int8_path.stat().st_size
    assert 7.0 < ratio < 7.7 and 15.0 < ratio_int8 < 18.0  # 4 / (0.4 + 1/8) and 4 / (0.1 + 1/8), less headers
    copy = tt.Sequential(tt.Dense(500, 400), tt.ReLU(), tt.Dense(400, 10))
    assert load_sparse(sparse_path, copy) == {"epoch": 3}
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(copy.state_dict()[name], value)
    assert np.array_equal(copy[0].weight_mask.data, net[0].weight.data != 0)  # masks come back for fine-tuning
    approx = tt.Sequential(tt.Dense(500, 400), tt.ReLU(), tt.Dense(400, 10))
    load_sparse(int8_path, approx)
    w, a = net[0].weight.data, approx[0].weight.data
    assert np.array_equal(w == 0, a == 0)
    assert np.abs(w - a).max() <= np.abs(w).max(axis=1, keepdims=True).max() / 254 * 1.001
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_sparse(sparse_path, tt.Sequential(tt.Dense(500, 100)))
