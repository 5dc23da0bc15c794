"""Half-precision weight storage: float16 parameters, float32 compute and gradients, float32 master weights."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core.checkpoint import load_checkpoint, save_checkpoint
from tinytorch.core.compression import HalfPrecision, MasterWeights, half_precision, master_weights_sgd
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam
from tinytorch.core.profiling import MemoryProfiler
from tinytorch.core.schedulers import StepLR
from tinytorch.core.training import Trainer


def small_cnn() -> tt.Sequential:
    return tt.Sequential(tt.Conv2D(3, 4, 3, padding=1, bias=False), tt.BatchNorm2D(4), tt.ReLU(), tt.MaxPool2D(2),
                         tt.Flatten(), tt.Dense(4 * 4 * 4, 3))


def rounded_float32_twin(model: tt.Module, half: HalfPrecision) -> tt.Module:
    """``model`` (float32) holding exactly the float16 values ``half`` stores."""
    model.load_state_dict(half.state_dict())
    return model


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 4), features=st.integers(1, 9), hidden=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_forward_and_gradients_are_the_float32_model_on_the_rounded_weights(batch, features, hidden, seed):
    tt.manual_seed(seed)
    layout = lambda: tt.Sequential(tt.Dense(features, hidden), tt.Tanh(), tt.Dense(hidden, 2))  # noqa: E731
    half = half_precision(layout())
    twin = rounded_float32_twin(layout(), half)
    x = np.random.default_rng(seed).standard_normal((batch, features)).astype(np.float32)
    x_half, x_twin = tt.tensor(x[:, ::-1].copy()[:, ::-1], requires_grad=True), tt.tensor(x, requires_grad=True)
    out, expected = half(x_half), twin(x_twin)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    cotangent = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(np.float32)
    (out * tt.tensor(cotangent)).sum().backward()
    (expected * tt.tensor(cotangent)).sum().backward()
    np.testing.assert_array_equal(x_half.grad.numpy(), x_twin.grad.numpy())
    for p, q in zip(half.parameters(), twin.parameters()):
        assert p.dtype == np.float16
        # without a float32 buffer the leaf rounds its gradient to float16 (as PyTorch's half leaves)
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-3, atol=1e-7)


def test_master_weights_give_float32_gradients_equal_to_the_float32_model():
    tt.manual_seed(0)
    half = half_precision(small_cnn())
    twin = rounded_float32_twin(small_cnn(), half)
    optimizer = MasterWeights(SGD(half.parameters(), lr=0.1))
    x, y = tt.randn(5, 3, 8, 8), np.array([0, 1, 2, 1, 0])
    optimizer.zero_grad()
    CrossEntropyLoss()(half(x), y).backward()
    CrossEntropyLoss()(twin(x), y).backward()
    for p, q in zip(half.parameters(), twin.parameters()):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-7)
    # one SGD step: the masters take the float32 update, the storage is the master rounded
    expected = [(q.data - 0.1 * q.grad.data).astype(np.float16) for q in twin.parameters()]
    optimizer.step()
    for p, want in zip(half.parameters(), expected):
        np.testing.assert_array_equal(p.data, want)
        assert p.dtype == np.float16


def test_a_shared_parameter_is_cast_once_and_gets_both_gradients():
    dense = tt.Dense(3, 3)
    half = half_precision(tt.Sequential(dense, tt.ReLU(), dense))
    assert len(half.parameters()) == 2
    MasterWeights(SGD(half.parameters(), lr=0.1))
    x = tt.randn(2, 3)
    half(x).sum().backward()
    twin = rounded_float32_twin(tt.Sequential(shared := tt.Dense(3, 3), tt.ReLU(), shared), half)
    twin(x).sum().backward()
    np.testing.assert_allclose(dense.weight.grad.numpy(), shared.weight.grad.numpy(), rtol=1e-6)


def test_updates_below_half_an_ulp_vanish_on_float16_weights_but_accumulate_through_masters():
    lr, steps = 1e-4, 100  # each update 1e-4, under half the float16 spacing at 1.0 (2**-11 = 4.9e-4)
    direct = np.ones(3, dtype=np.float16)
    through_master = tt.Parameter(np.ones(3), dtype=np.float16)
    through_master.grad = tt.tensor(np.ones(3, dtype=np.float16))
    with pytest.raises(TypeError, match="float16"):  # the optimizers' kernels refuse float16 weights outright
        SGD([through_master], lr=lr).step()
    mastered = MasterWeights(SGD([through_master], lr=lr))
    for _ in range(steps):
        direct -= np.float16(lr) * np.ones(3, dtype=np.float16)  # what stepping float16 weights would do
        mastered.zero_grad()
        through_master.grad.data[...] = 1.0
        mastered.step()
    np.testing.assert_array_equal(direct, np.ones(3, dtype=np.float16))  # every update lost
    np.testing.assert_array_equal(through_master.data, np.full(3, 0.99, dtype=np.float16))
    np.testing.assert_allclose(mastered.masters[0].data, 0.99, atol=1e-5)
    # the one-array form: the same result
    grads = [np.ones(3, dtype=np.float32)] * steps
    np.testing.assert_array_equal(master_weights_sgd(np.ones(3, dtype=np.float16), grads, lr), through_master.data)


def test_master_weights_train_through_a_trainer_with_a_scheduler_and_adam():
    tt.manual_seed(0)
    half = half_precision(small_cnn())
    optimizer = MasterWeights(Adam(lr=0.01))  # unbound: the Trainer binds it to the float16 parameters
    schedule = StepLR(optimizer, step_size=1, gamma=0.5)
    x = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > 0).astype(np.int64)
    from tinytorch.core.dataloader import DataLoader

    trainer = Trainer(half, CrossEntropyLoss(), optimizer, scheduler=schedule)
    history = trainer.fit(DataLoader(x, y, batch_size=8), epochs=3, verbose=0)
    losses = history["train_loss"] if isinstance(history, dict) else [h["train_loss"] for h in history]
    assert losses[-1] < losses[0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3)
    assert all(p.dtype == np.float16 for p in half.parameters())
    assert all(m.dtype == np.float32 for m in optimizer.masters) and len(optimizer.masters) == 5
    for p, m in zip(optimizer.storage, optimizer.masters):
        np.testing.assert_array_equal(p.data, m.data.astype(np.float16))
    assert optimizer.parameters() == half.parameters()


def test_checkpoints_keep_float16_and_load_into_a_float32_model_widened(tmp_path):
    tt.manual_seed(0)
    half = half_precision(small_cnn())
    optimizer = MasterWeights(SGD(half.parameters(), lr=0.1, momentum=0.9))
    half(tt.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "half.npz", half, optimizer)
    with np.load(tmp_path / "half.npz", allow_pickle=False) as saved:
        assert {saved[k].dtype for k in saved.files if k.startswith("model") and k.endswith("weight")} == {np.dtype(np.float16)}
    again = half_precision(small_cnn())
    again_optimizer = MasterWeights(SGD(again.parameters(), lr=0.1, momentum=0.9))
    load_checkpoint(tmp_path / "half.npz", again, again_optimizer)
    for p, q in zip(half.parameters(), again.parameters()):
        assert q.dtype == np.float16
        np.testing.assert_array_equal(p.data, q.data)
    for m, n in zip(optimizer.masters, again_optimizer.masters):
        np.testing.assert_array_equal(m.data, n.data)
    plain = small_cnn()
    load_checkpoint(tmp_path / "half.npz", plain)
    for p, q in zip(half.parameters(), plain.parameters()):
        assert q.dtype == np.float32
        np.testing.assert_array_equal(p.data.astype(np.float32), q.data)
    sizes = []
    for name, model in (("plain", tt.Dense(128, 128)), ("half", half_precision(tt.Dense(128, 128)))):
        save_checkpoint(tmp_path / f"{name}.npz", model)
        sizes.append((tmp_path / f"{name}.npz").stat().st_size)
    assert sizes[1] < 0.55 * sizes[0]


def test_inference_keeps_half_the_weight_bytes_and_casts_one_layer_at_a_time():
    tt.manual_seed(0)
    layers = lambda: tt.Sequential(*[layer for _ in range(4) for layer in (tt.Dense(256, 256), tt.ReLU())])  # noqa: E731
    plain, half = layers().eval(), half_precision(layers()).eval()
    assert sum(p.data.nbytes for p in half.parameters()) * 2 == sum(p.data.nbytes for p in plain.parameters())
    x = tt.randn(1, 256)
    peaks = {}
    for name, model in (("plain", plain), ("half", half)):
        with tt.no_grad():
            model(x)  # scratch buffers
            profiler = MemoryProfiler()
            with profiler.measure(name) as record:
                model(x)
        peaks[name] = record.peak_mb
    one_layer = 256 * 256 * 4 / 2**20
    assert peaks["half"] < 1.5 * one_layer  # all four casts at once would take 4 layers' float32 copies


def test_a_failing_forward_leaves_the_float16_parameters_in_place():
    half = half_precision(tt.Sequential(tt.Dense(4, 2)))
    with pytest.raises(ValueError, match="Dense"):
        half(tt.randn(3, 5))
    layer = half.module[0]
    assert isinstance(layer.weight, tt.Parameter) and layer.weight.dtype == np.float16
    assert half.float() is half.module and layer.weight.dtype == np.float32


def test_bad_arguments_get_clear_errors():
    with pytest.raises(TypeError, match="half_precision: expected a Module"):
        half_precision(np.zeros(3))
    half = half_precision(tt.Dense(2, 2))
    with pytest.raises(TypeError, match="already stored in half precision"):
        half_precision(half)
    with pytest.raises(TypeError, match="MasterWeights: expected an optimizer"):
        MasterWeights(half.parameters())
    plain = tt.Dense(2, 2)
    optimizer = SGD(plain.parameters(), lr=0.1, momentum=0.9)
    plain(tt.randn(1, 2)).sum().backward()
    optimizer.step()
    with pytest.raises(ValueError, match="already taken steps"):
        MasterWeights(optimizer)
    with pytest.raises(ValueError, match="MasterWeights.load_state_dict"):
        MasterWeights(SGD(half.parameters(), lr=0.1)).load_state_dict({"state": {}, "param_groups": []})
