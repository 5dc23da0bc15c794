"""Post-training int8 quantization: the arithmetic, observers, quantized layers, static and dynamic
conversion, and quantized model files (int8 on disk, no pickle)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core import kernels
from tinytorch.core.checkpoint import CheckpointError, save_state
from tinytorch.core.compression import (
    DynamicQuantizedDense,
    HistogramObserver,
    MinMaxObserver,
    PercentileObserver,
    QuantizedConv2D,
    QuantizedDense,
    QuantizedTensor,
    affine_qparams,
    architecture,
    dequantize,
    fold_batchnorm,
    fold_batchnorms,
    load_quantized,
    quantize_dynamic,
    quantize_layer_weights,
    quantize_per_channel,
    quantize_per_tensor,
    quantize_static,
    requantization_multiplier,
    save_quantized,
)

from .strategies import float64_arrays, shapes


@given(shapes(min_dims=1, max_dims=4), st.integers(2, 8), st.data())
def test_per_channel_quantization_bounds_the_error_per_channel(shape, bits, data):
    w = data.draw(float64_arrays(shape)).astype(np.float32)
    q, scale = quantize_per_channel(w, axis=0, bits=bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == np.int8 and q.shape == w.shape and scale.shape == (shape[0],) and scale.dtype == np.float32
    assert np.abs(q.astype(int)).max() <= qmax
    per_row = (-1,) + (1,) * (w.ndim - 1)
    error = np.abs(dequantize(q, scale, axis=0) - w)
    assert np.all(error <= scale.reshape(per_row) / 2 * (1 + 1e-5))
    peak = np.abs(w.reshape(shape[0], -1)).max(axis=1)
    np.testing.assert_allclose(scale[peak > 0], (peak / qmax)[peak > 0], rtol=1e-6)
    assert np.all(np.abs(q.reshape(shape[0], -1)).max(axis=1)[peak > 0] == qmax)  # each channel's peak uses the top level


def test_zero_channels_and_per_tensor_scale():
    w = np.array([[0.0, 0.0], [1.0, -0.5]], np.float32)
    q, scale = quantize_per_channel(w)
    assert scale[0] == 1.0 and np.all(q[0] == 0)
    q_t, s_t = quantize_per_tensor(w)
    assert s_t == np.float32(1.0 / 127) and q_t.tolist() == [[0, 0], [127, -64]]
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 8"):
        quantize_per_channel(w, bits=16)
    with pytest.raises(ValueError, match="need the axis"):
        dequantize(q, scale)


@given(st.floats(-50, 0), st.floats(0, 50))
def test_affine_qparams_represent_zero_exactly_and_cover_the_range(low, high):
    scale, zero = affine_qparams(low, high)
    assert -128 <= zero <= 127 and scale > 0
    assert dequantize(np.array([zero], np.int8), scale, zero)[0] == 0.0
    if high > low:
        assert scale * (127 - zero) >= high * (1 - 1e-5) - scale and scale * (-128 - zero) <= low * (1 - 1e-5) + scale


@given(st.lists(st.floats(1e-9, 1e3), min_size=1, max_size=8))
def test_requantization_multiplier_is_31_bits_accurate(reals):
    multiplier, shift = requantization_multiplier(reals)
    approx = multiplier.astype(np.float64) / 2.0 ** shift.astype(np.float64)
    np.testing.assert_allclose(approx, reals, rtol=2**-30)
    assert np.all((multiplier >= 2**30) & (shift >= 1) & (shift <= 62))


def test_observers():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-1, 3, 100_000), [40.0]]).astype(np.float32)
    minmax, pct, hist = MinMaxObserver(), PercentileObserver(99.9), HistogramObserver()
    for observer in (minmax, pct, hist):
        for part in np.array_split(values, 7):  # ranges grow batch by batch: the histogram re-bins
            observer.observe(part)
    assert minmax.range() == (float(values.min()), 40.0)
    low, high = pct.range()
    np.testing.assert_allclose([low, high], np.percentile(values, [0.1, 99.9]), atol=40 / 2048 * 2)
    assert pct.qparams()[1] > -128  # negative values seen: the zero point moves up
    # a long-tailed distribution: the least-squares range clips the tail, and really quantizes better
    tail = rng.laplace(0.0, 1.0, 200_000).astype(np.float32)
    hist = HistogramObserver()
    hist.observe(tail)
    low, high = hist.range()
    assert high < tail.max() and low > tail.min()

    def squared_error(low, high):
        scale, zero = affine_qparams(low, high)
        return np.mean((dequantize(np.clip(np.rint(tail / np.float32(scale)) + zero, -128, 127).astype(np.int8), scale, zero) - tail) ** 2)

    assert squared_error(low, high) < 0.8 * squared_error(tail.min(), tail.max())
    with pytest.raises(RuntimeError, match="no values observed"):
        MinMaxObserver().qparams()
    with pytest.raises(ValueError, match="NaN or infinity"):
        MinMaxObserver().observe(np.array([1.0, np.nan], np.float32))


def test_quantized_tensor_checks():
    with pytest.raises(TypeError, match="values must be an int8 array"):
        QuantizedTensor(np.zeros(3, np.int16), 0.1, 0)
    with pytest.raises(ValueError, match="zero_point must be in"):
        QuantizedTensor(np.zeros(3, np.int8), 0.1, 200)


def small_cnn():
    tt.manual_seed(3)
    model = tt.Sequential(
        tt.Conv2D(3, 6, 3, padding=1, bias=False), tt.BatchNorm2D(6), tt.ReLU(), tt.MaxPool2D(2),
        tt.Sequential(tt.Conv2D(6, 8, 3, stride=2), tt.ReLU()), tt.Flatten(), tt.Dropout(0.3),
        tt.Dense(8 * 1 * 1, 12), tt.ReLU(), tt.Dense(12, 4),
    )
    model.train()
    with tt.no_grad():  # give the batch norm real running statistics
        for _ in range(3):
            model(tt.randn(16, 3, 6, 6))
    bn = model[1]
    bn.weight.data[:] = np.linspace(0.5, 2.0, 6)
    bn.bias.data[:] = np.linspace(-0.3, 0.3, 6)
    return model.eval()


def test_fold_batchnorm_equals_conv_then_batchnorm():
    model = small_cnn()
    x = tt.randn(4, 3, 6, 6)
    weight, bias = fold_batchnorm(model[0], model[1])
    with tt.no_grad():
        expected = model[1](model[0](x)).numpy()
    folded = kernels.conv2d_forward(x.numpy(), weight, bias, (1, 1), (1, 1))
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-5)


@given(batch=st.integers(1, 3), channels=st.integers(1, 4), conv_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_fold_batchnorms_computes_the_same_function_with_the_batch_norms_gone(batch, channels, conv_bias, seed):
    tt.manual_seed(seed)
    model = tt.Sequential(tt.Conv2D(2, channels, 3, padding=1, bias=conv_bias), tt.BatchNorm2D(channels), tt.ReLU(),
                          tt.Sequential(tt.Flatten(), tt.Dense(channels * 16, 5), tt.BatchNorm1D(5)), tt.ReLU(),
                          tt.BatchNorm1D(5), tt.Dense(5, 2))
    for _ in range(2):  # running statistics away from 0 and 1
        model(tt.randn(4, 2, 4, 4) * 3 + 1)
    model.eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    folded = fold_batchnorms(model)
    assert [type(m).__name__ for m in folded] == ["Conv2D", "ReLU", "Flatten", "Dense", "ReLU", "BatchNorm1D", "Dense"]
    assert folded[0].bias is not None and not folded.training
    x = tt.randn(batch, 2, 4, 4)
    with tt.no_grad():
        np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched


@pytest.mark.parametrize("observer", ["minmax", "percentile", "histogram"])
def test_static_quantization_follows_the_float_model(observer):
    model = small_cnn()
    batches = [tt.randn(16, 3, 6, 6) for _ in range(4)]
    quantized = quantize_static(model, [(b, None) for b in batches], observer=observer)
    kinds = [type(m).__name__ for m in quantized]
    assert kinds == ["Quantize", "QuantizedConv2D", "QuantizedMaxPool2D", "QuantizedConv2D", "QuantizedFlatten",
                     "QuantizedDense", "QuantizedDense"]
    assert quantized[1].relu and quantized[3].relu and quantized[5].relu and not quantized[6].relu
    assert quantized[-1].out_scale is None  # float logits
    x = batches[0]
    with tt.no_grad():
        expected = model(x).numpy()
    got = quantized(x)
    assert isinstance(got, tt.Tensor) and got.dtype == np.float32
    assert np.abs(got.numpy() - expected).max() < 0.05 * np.abs(expected).max()
    weights = [m.weight.data for m in quantized if isinstance(m, (QuantizedConv2D, QuantizedDense))]
    assert all(w.dtype == np.int8 for w in weights)


def test_quantized_layers_compute_what_their_kernels_say():
    rng = np.random.default_rng(2)
    weight = rng.integers(-127, 128, (5, 7)).astype(np.int8)
    scale, bias = rng.uniform(0.01, 0.02, 5).astype(np.float32), rng.uniform(-1, 1, 5).astype(np.float32)
    layer = QuantizedDense(weight, scale, bias, out_scale=0.05, out_zero_point=-128, relu=True)
    x = QuantizedTensor(rng.integers(-128, 128, (3, 7)).astype(np.int8), 0.1, 3)
    out = layer(x)
    real = 0.1 * (x.values.astype(np.float64) - 3) @ (weight * scale[:, None].astype(np.float64)).T + bias
    expected = np.clip(np.floor(np.maximum(real, 0) / 0.05 + 0.5) - 128, -128, 127)
    assert np.abs(out.values.astype(int) - expected).max() <= 1  # bias rounding to int32 may move a tie
    assert (out.scale, out.zero_point) == (0.05, -128)
    with pytest.raises(TypeError, match=r"QuantizedDense\(7 -> 5.*got a Tensor; it takes a QuantizedTensor"):
        layer(tt.randn(3, 7))


def test_per_channel_beats_per_tensor_when_channels_differ_in_scale():
    tt.manual_seed(0)
    model = tt.Sequential(tt.Dense(16, 8)).eval()
    model[0].weight.data[:4] *= 100  # four large output channels, four small ones
    batches = [tt.randn(32, 16) for _ in range(3)]
    x = batches[0]
    expected = model(x).numpy()[:, 4:]
    errors = {}
    for per_channel in (True, False):
        q = quantize_static(model, batches, observer="minmax", per_channel=per_channel)
        errors[per_channel] = np.abs(q(x).numpy()[:, 4:] - expected).mean()
    assert errors[True] < errors[False] / 10  # one scale for all: the small channels keep ~3 levels


def test_static_quantization_refuses_what_it_cannot_convert():
    with pytest.raises(ValueError, match=r"layer 1 \(LayerNorm.*has no int8 version; supported: Conv2D, Dense"):
        quantize_static(tt.Sequential(tt.Dense(4, 4), tt.LayerNorm(4)), [np.zeros((2, 4), np.float32)])
    with pytest.raises(ValueError, match="calibration_data yielded no batches"):
        quantize_static(tt.Sequential(tt.Dense(4, 4)), [])


def test_a_model_ending_in_relu_stays_int8_to_the_end():
    tt.manual_seed(0)
    model = tt.Sequential(tt.Dense(5, 6), tt.ReLU(), tt.Flatten()).eval()
    q = quantize_static(model, [np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)])
    assert type(q[-1]).__name__ == "DeQuantize" and q[1].out_scale is not None
    x = tt.randn(3, 5)
    np.testing.assert_allclose(q(x).numpy(), model(x).numpy(), atol=0.05)


def test_dynamic_quantization_swaps_dense_layers_in_place_order():
    tt.manual_seed(1)
    mlp = tt.create_mlp(20, [16, 16], 3)
    q = quantize_dynamic(mlp)
    assert [type(m).__name__ for m in q] == ["DynamicQuantizedDense", "ReLU", "DynamicQuantizedDense", "ReLU",
                                           "DynamicQuantizedDense"]
    assert type(mlp[0]).__name__ == "Dense"  # the original is untouched
    x = tt.randn(7, 20)
    np.testing.assert_allclose(q(x).numpy(), mlp(x).numpy(), atol=0.03)
    layer = DynamicQuantizedDense.from_float(tt.Dense(20, 4))
    assert layer(tt.randn(2, 5, 20)).shape == (2, 5, 4)


def test_quantize_layer_weights_reports_real_int8_storage():
    tt.manual_seed(0)
    dense = tt.Dense(50, 25)
    quantized, info = quantize_layer_weights(dense)
    assert quantized.weight.dtype == np.int8 and info["quantized_bytes"] == 50 * 25 + 25 * 4
    assert info["memory_reduction"] == pytest.approx(50 * 25 * 4 / (50 * 25 + 100))
    assert 0 < info["max_error"] <= info["scale"].max() / 2 * 1.0001 and info["mse_error"] > 0
    conv, _ = quantize_layer_weights(tt.Conv2D(3, 4, 3, padding=1))
    assert conv(tt.randn(1, 3, 5, 5)).shape == (1, 4, 5, 5)
    with pytest.raises(TypeError, match="expected a Dense or Conv2D layer, got ReLU"):
        quantize_layer_weights(tt.ReLU())


def test_quantized_model_files_hold_int8_and_reload_exactly(tmp_path):
    model = small_cnn()
    q = quantize_static(model, [tt.randn(8, 3, 6, 6)])
    path = tmp_path / "model.npz"
    save_quantized(path, q, accuracy=0.5)
    loaded, extra = load_quantized(path)
    x = tt.randn(5, 3, 6, 6)
    np.testing.assert_array_equal(loaded(x).numpy(), q(x).numpy())
    assert extra == {"accuracy": 0.5} and architecture(loaded) == architecture(q)
    with np.load(path, allow_pickle=False) as archive:
        dtypes = {name: archive[name].dtype for name in archive.files if name != "__tinytorch__"}
    assert all(d == np.int8 for n, d in dtypes.items() if n.endswith(".weight"))
    assert all(d == np.int8 or n.endswith((".weight_scale", ".bias")) for n, d in dtypes.items())


def test_quantized_model_files_refuse_float_weights_and_pickles(tmp_path):
    q = quantize_static(small_cnn(), [tt.randn(8, 3, 6, 6)])
    state = {"quantized_model": {"version": 1, "architecture": architecture(q), "tensors": q.state_dict()}}
    state["quantized_model"]["tensors"]["1.weight"] = state["quantized_model"]["tensors"]["1.weight"].astype(np.float32)
    save_state(tmp_path / "float.npz", state)
    with pytest.raises(CheckpointError, match="1.weight has dtype float32; a quantized model holds int8 there"):
        load_quantized(tmp_path / "float.npz")
    import pickle

    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(CheckpointError, match="looks like a Python pickle"):
        load_quantized(tmp_path / "model.pkl")
    with pytest.raises(TypeError, match=r"Dense\(4 -> 2\) is neither a quantized layer nor a parameter-free one"):
        save_quantized(tmp_path / "x.npz", tt.Sequential(tt.Dense(4, 2)))
