"""Knowledge distillation: the loss against its closed form and PyTorch, its gradient by finite
differences, and the Distiller inside the Trainer; memory-saving training by recomputation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core.compression import DistillationLoss, Distiller, checkpoint_sequential, distillation_loss
from tinytorch.core.optimizers import SGD
from tinytorch.core.profiling import MemoryProfiler
from tinytorch.core.training import Trainer
from tinytorch.testing import gradcheck

from .kernel_checks import torch_oracle
from .strategies import float64_arrays


def closed_form(s, t, y, temperature, alpha):
    """Loss and gradient written out: KL term's gradient is T * (softmax(s/T) - softmax(t/T)) / N after T**2."""
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    n = s.shape[0]
    ps, pt, p = softmax(s / temperature), softmax(t / temperature), softmax(s)
    kl = np.sum(pt * (np.log(pt) - np.log(ps))) / n
    ce = -np.mean(np.log(p[np.arange(n), y]))
    onehot = np.eye(s.shape[1])[y]
    grad = alpha * temperature * (ps - pt) / n + (1 - alpha) * (p - onehot) / n
    return alpha * temperature**2 * kl + (1 - alpha) * ce, grad


@given(st.integers(1, 5), st.integers(2, 6), st.floats(0.5, 8.0), st.floats(0.0, 1.0), st.data())
def test_loss_and_gradient_match_the_closed_form_and_finite_differences(n, c, temperature, alpha, data):
    s = data.draw(float64_arrays((n, c), low=-4, high=4, layout="contiguous"))
    t = data.draw(float64_arrays((n, c), low=-4, high=4))
    y = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    student = tt.tensor(s, dtype=tt.float64, requires_grad=True)
    loss = distillation_loss(student, t, y, temperature, alpha)
    expected_loss, expected_grad = closed_form(s, t, y, temperature, alpha)
    assert loss.dtype == np.float64
    np.testing.assert_allclose(loss.item(), expected_loss, rtol=1e-10, atol=1e-12)
    loss.backward()
    np.testing.assert_allclose(student.grad.numpy(), expected_grad, rtol=1e-9, atol=1e-12)
    view = tt.tensor(np.asfortranarray(s), dtype=tt.float64, requires_grad=True)  # non-contiguous logits too
    assert gradcheck(lambda z: distillation_loss(z, t, y, temperature, alpha), view, name="distillation_loss")


def test_matches_pytorch():
    torch = torch_oracle()
    rng = np.random.default_rng(0)
    s, t, y = rng.standard_normal((6, 10)), rng.standard_normal((6, 10)) * 3, rng.integers(0, 10, 6)
    ts = torch.tensor(s, requires_grad=True)
    F = torch.nn.functional
    kl = F.kl_div(F.log_softmax(ts / 4.0, -1), F.log_softmax(torch.tensor(t) / 4.0, -1), reduction="batchmean", log_target=True)
    reference = 0.9 * 16.0 * kl + 0.1 * F.cross_entropy(ts, torch.tensor(y))
    reference.backward()
    student = tt.tensor(s, dtype=tt.float64, requires_grad=True)
    loss = DistillationLoss(temperature=4.0, alpha=0.9)(student, tt.tensor(t, dtype=tt.float64), tt.tensor(y))
    loss.backward()
    np.testing.assert_allclose(loss.item(), reference.item(), rtol=1e-12)
    np.testing.assert_allclose(student.grad.numpy(), ts.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_extremes_and_errors():
    s = tt.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    same = distillation_loss(s, s.detach(), [2], temperature=5.0, alpha=1.0)
    assert abs(same.item()) < 1e-6  # a student equal to its teacher has nothing to learn from it
    hard = distillation_loss(s, [[9.0, -9.0, 0.0]], [2], alpha=0.0).item()
    assert hard == pytest.approx(tt.core.losses.cross_entropy(s, tt.tensor([2])).item())
    with pytest.raises(ValueError, match="temperature must be a positive number, got 0"):
        DistillationLoss(temperature=0)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\], got 1.5"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(ValueError, match="must both be"):
        distillation_loss(s, [[1.0, 2.0]], [0])


def test_distiller_trains_only_the_student():
    tt.manual_seed(0)
    teacher = tt.create_mlp(6, [16], 3)
    student = tt.create_mlp(6, [4], 3)
    teacher_before = {k: v.copy() for k, v in teacher.state_dict().items()}
    distiller = Distiller(student, teacher, temperature=2.0, alpha=0.7)
    assert distiller.num_parameters() == student.num_parameters()
    assert set(distiller.state_dict()) == {f"student.{k}" for k in student.state_dict()}
    x, y = tt.randn(32, 6), tt.randint(0, 3, (32,))
    loader = [(x[:16], y[:16]), (x[16:], y[16:])]
    with tt.no_grad():
        first_loss = DistillationLoss(2.0, 0.7)(student(x), teacher(x), y).item()
    Trainer(distiller, distiller.loss, SGD(distiller.parameters(), lr=0.5)).fit(loader, loader, epochs=15, verbose=0)
    for name, value in teacher.state_dict().items():
        np.testing.assert_array_equal(value, teacher_before[name])
    with tt.no_grad():
        assert DistillationLoss(2.0, 0.7)(student(x), teacher(x), y).item() < first_loss
    distiller.eval()
    assert distiller.loss(distiller(x), y).item() == pytest.approx(tt.core.losses.cross_entropy(student(x), y).item())


def cnn():
    tt.manual_seed(0)
    layers = []
    for c_in, c_out in ((3, 16), (16, 16), (16, 16)):
        layers += [tt.Conv2D(c_in, c_out, 3, padding=1, bias=False), tt.BatchNorm2D(c_out), tt.ReLU()]
    return tt.Sequential(*layers, tt.Flatten(), tt.Dense(16 * 12 * 12, 4))


def test_checkpointed_training_gives_the_same_gradients_with_less_memory():
    x = tt.randn(16, 3, 12, 12)
    warm = cnn().train()
    (warm(x) ** 2).sum().backward()  # the kernels' scratch buffers exist before anything is measured
    grads, kept, peaks = {}, {}, {}
    for label, run in (("plain", lambda m: m(x)), ("checkpoint", lambda m: checkpoint_sequential(m, x, segments=4)),
                       ("half", lambda m: checkpoint_sequential(m, x, segments=4, half_precision=True))):
        model = cnn().train()
        profiler = MemoryProfiler()
        with profiler.measure("step"):
            with profiler.measure("forward"):
                out = run(model)
            (out * out).sum().backward()
        kept[label] = profiler.records["forward"].net_mb  # what the forward pass leaves for backward
        peaks[label] = profiler.records["step"].peak_mb
        grads[label] = [p.grad.numpy() for p in model.parameters()]
    for plain, recomputed in zip(grads["plain"], grads["checkpoint"]):
        np.testing.assert_allclose(recomputed, plain, rtol=1e-4, atol=1e-6)
    for plain, half in zip(grads["plain"], grads["half"]):  # float16 keeps ~3 digits; batch norm's backward cancels some
        assert np.linalg.norm(half - plain) < 0.05 * np.linalg.norm(plain)
    assert kept["checkpoint"] < 0.6 * kept["plain"] and peaks["checkpoint"] < 0.95 * peaks["plain"]
    # segments 1|2 and 2|3 meet at two (16, 16, 12, 12) activations, now two bytes per value instead of four
    halved = 2 * 16 * 16 * 12 * 12 * 2 / 2**20
    assert kept["checkpoint"] - kept["half"] > 0.9 * halved
    with pytest.raises(ValueError, match="segments must be an integer from 1 to 11"):
        checkpoint_sequential(cnn(), x, segments=12)
