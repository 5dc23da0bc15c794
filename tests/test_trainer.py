"""Trainer: it really trains, modes and grad mode, schedules, callbacks, output, and exact resume."""

import doctest
import importlib

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.callbacks import Callback, EarlyStopping
from tinytorch.core.checkpoint import CheckpointError
from tinytorch.core.data.transforms import RandomTransform
from tinytorch.core.dataloader import DataLoader
from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.metrics import Accuracy
from tinytorch.core.optimizers import SGD, Adam, OneCycleLR, StepLR
from tinytorch.core.training import Trainer, evaluate_model, plot_training_history


def _quadrants(n=256, seed=0):
    """Points in the plane labelled by quadrant: separable, but not linearly by one line."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 2)).astype(np.float32)
    return x, ((x[:, 0] > 0).astype(np.int64) * 2 + (x[:, 1] > 0))


def _mlp(dropout=0.0):
    layers = [tt.Dense(2, 32), tt.ReLU()] + ([tt.Dropout(dropout)] if dropout else []) + [tt.Dense(32, 4)]
    return tt.Sequential(layers)


class _Jitter(RandomTransform):
    """Random noise on each point: an augmentation that draws from the loader's generator."""

    def apply(self, batch, rng):
        return batch + self._generator(rng).normal(0, 0.05, batch.shape).astype(batch.dtype)


def _loaders(batch_size=32, shuffle=True, seed=None):
    x, y = _quadrants()
    vx, vy = _quadrants(128, seed=1)
    transform = None if seed is None else _Jitter()
    train = DataLoader(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, transform=transform)
    return train, DataLoader(vx, vy, batch_size=64)


def test_training_reduces_the_loss_and_reaches_high_accuracy():
    train, val = _loaders()
    trainer = Trainer(_mlp(), CrossEntropyLoss(), Adam(lr=0.02), [Accuracy()])
    history = trainer.fit(train, val, epochs=8, verbose=False)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["val_accuracy"][-1] >= 0.9
    assert history["epoch"] == list(range(1, 9))
    assert set(history) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "epoch_time",
        "images_per_second",
    }
    assert all(len(v) == 8 for v in history.values()) and all(t > 0 for t in history["images_per_second"])


class Probe(tt.Module):
    """Records, per call, whether it ran in training mode and whether a graph was being built."""

    def __init__(self):
        super().__init__()
        self.inner = tt.Dense(2, 4)
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, tt.is_grad_enabled()))
        return self.inner(x)


def test_train_mode_with_graph_then_eval_mode_without():
    train, val = _loaders(batch_size=128)
    model = Probe()
    Trainer(model, CrossEntropyLoss(), SGD(lr=0.1)).fit(train, val, epochs=1, verbose=0)
    assert model.calls == [(True, True)] * 2 + [(False, False)] * 2
    assert model.training, "the model is left in training mode"


def test_an_unbound_optimizer_is_bound_to_the_model():
    model = _mlp()
    opt = Adam(lr=0.01)
    Trainer(model, CrossEntropyLoss(), opt)
    assert opt.parameters() == model.parameters()


def test_schedulers_step_per_batch_or_per_epoch():
    train, _ = _loaders(batch_size=64)  # 4 batches per epoch
    opt = SGD(lr=0.1, momentum=0.9)
    per_epoch = StepLR(opt, step_size=1, gamma=0.5)
    history = Trainer(_mlp(), CrossEntropyLoss(), opt, scheduler=per_epoch).fit(train, epochs=3, verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025]) and per_epoch.last_epoch == 3

    opt = SGD(lr=0.1, momentum=0.9)
    per_step = OneCycleLR(opt, max_lr=0.5, epochs=3, steps_per_epoch=4)
    Trainer(_mlp(), CrossEntropyLoss(), opt, scheduler=per_step).fit(train, epochs=3, verbose=0)
    assert per_step.last_epoch == 12  # one more step would be an error: every batch stepped it exactly once


def test_gradient_clipping_bounds_each_step():
    x, y = _quadrants(64)
    model = _mlp()
    before = [p.data.copy() for p in model.parameters()]
    Trainer(model, CrossEntropyLoss(), SGD(lr=1.0), grad_clip_norm=0.01).fit(
        DataLoader(x, y, batch_size=64), epochs=1, verbose=0
    )
    moved = np.sqrt(sum(np.sum((p.data - b) ** 2) for p, b in zip(model.parameters(), before)))
    assert 0.009 < moved <= 0.0100001


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_epoch_begin(self, trainer, epoch):
        self.events.append(f"epoch{epoch}")

    def on_batch_end(self, trainer, step, logs):
        self.events.append(f"batch{step}")

    def on_epoch_end(self, trainer, epoch, logs):
        self.events.append(f"end{epoch}:{sorted(logs)[0]}")

    def on_train_end(self, trainer):
        self.events.append("done")


def test_callbacks_run_at_each_point():
    train, _ = _loaders(batch_size=128)
    recorder = Recorder()
    Trainer(_mlp(), CrossEntropyLoss(), SGD(lr=0.1), callbacks=[recorder]).fit(train, epochs=2, verbose=0)
    assert recorder.events == [
        "begin",
        "epoch1",
        "batch1",
        "batch2",
        "end1:epoch_time",
        "epoch2",
        "batch3",
        "batch4",
        "end2:epoch_time",
        "done",
    ]


def test_early_stopping_stops_when_nothing_improves():
    train, val = _loaders(batch_size=128)
    trainer = Trainer(_mlp(), CrossEntropyLoss(), SGD(lr=0.0))  # lr 0: the loss never changes
    history = trainer.fit(train, val, epochs=20, early_stopping_patience=2, verbose=0)
    assert history["epoch"] == [1, 2, 3]
    stopper = EarlyStopping("val_loss", patience=1)
    with pytest.raises(KeyError, match="monitors 'val_loss', but the epoch logged only"):
        Trainer(_mlp(), CrossEntropyLoss(), SGD(lr=0.1), callbacks=[stopper]).fit(train, epochs=1, verbose=0)


def test_save_best_writes_the_best_epoch(tmp_path):
    train, val = _loaders(batch_size=64)
    path = tmp_path / "best_model.pkl"
    trainer = Trainer(_mlp(), CrossEntropyLoss(), Adam(lr=0.02), [Accuracy()])
    history = trainer.fit(train, val, epochs=4, save_best=True, checkpoint_path=path, monitor="val_accuracy", verbose=0)
    best_epoch = int(np.argmax(history["val_accuracy"])) + 1
    resumed = Trainer(_mlp(), CrossEntropyLoss(), Adam(lr=0.02), [Accuracy()])
    resumed.load_checkpoint(path)
    assert resumed.epoch == best_epoch and resumed.history["val_accuracy"] == history["val_accuracy"][:best_epoch]
    assert path.read_bytes()[:2] == b"PK"


def _run(epochs, resume_from=None, save_to=None, loader_seed=None):
    """A run with dropout, shuffling, Adam and a schedule: everything random that a resume must restore."""
    tt.manual_seed(123)
    model = _mlp(dropout=0.3)
    opt = Adam(lr=0.01)
    trainer = Trainer(model, CrossEntropyLoss(), opt, [Accuracy()], scheduler=StepLR(opt, step_size=1, gamma=0.7))
    train, val = _loaders(batch_size=48, seed=loader_seed)
    trainer.fit(train, val, epochs=epochs, verbose=0, resume_from=resume_from)
    if save_to is not None:
        trainer.save_checkpoint(save_to)
    return trainer


@pytest.mark.parametrize("loader_seed", [None, 7], ids=["framework-generator", "seeded-loader-with-augmentation"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, loader_seed):
    straight = _run(epochs=4, loader_seed=loader_seed)
    _run(epochs=2, save_to=tmp_path / "half.ckpt", loader_seed=loader_seed)
    tt.manual_seed(999)  # whatever happens to the generator in between, the checkpoint restores it
    tt.rand(10)
    resumed = _run(epochs=4, resume_from=tmp_path / "half.ckpt", loader_seed=loader_seed)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    for key in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
        assert straight.history[key] == resumed.history[key], key
    assert resumed.global_step == straight.global_step == 4 * 6
    ours, theirs = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    np.testing.assert_array_equal(ours["state"][0]["exp_avg_sq"], theirs["state"][0]["exp_avg_sq"])


def test_resume_refuses_a_checkpoint_that_does_not_fit(tmp_path):
    _run(epochs=1, save_to=tmp_path / "c.npz")
    no_scheduler = Trainer(_mlp(0.3), CrossEntropyLoss(), Adam(lr=0.01))
    with pytest.raises(CheckpointError, match="has scheduler state, but this Trainer has no scheduler"):
        no_scheduler.load_checkpoint(tmp_path / "c.npz")
    tt.save_checkpoint(tmp_path / "model_only.npz", _mlp())
    with pytest.raises(CheckpointError, match="holds no training state"):
        no_scheduler.load_checkpoint(tmp_path / "model_only.npz")


def test_verbosity(capsys):
    train, _ = _loaders(batch_size=128)
    Trainer(_mlp(), CrossEntropyLoss(), SGD(lr=0.1)).fit(train, epochs=2, verbose=False)
    assert capsys.readouterr() == ("", "")
    Trainer(_mlp(), CrossEntropyLoss(), SGD(lr=0.1), [Accuracy()]).fit(train, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0:2] for line in lines] == [["Epoch", "1/2"], ["Epoch", "2/2"]]
    assert "train_accuracy" in lines[0] and "img/s" in lines[0]
    Trainer(_mlp(), CrossEntropyLoss(), SGD(lr=0.1)).fit(train, epochs=1, verbose=True)
    assert "Epoch 1/1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="verbose must be 0, 1"):
        Trainer(_mlp(), CrossEntropyLoss(), SGD(lr=0.1)).fit(train, epochs=1, verbose=5)


def test_a_diverging_loss_stops_with_advice():
    x, y = _quadrants(64)
    model = _mlp()
    with pytest.raises(FloatingPointError, match="the loss became nan at epoch 1, step 1; lower the learning rate"):
        Trainer(model, lambda out, labels: out.sum() * np.nan, SGD(lr=0.1)).fit(DataLoader(x, y), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda m: Trainer(m, CrossEntropyLoss(), "adam"), TypeError, "optimizer must be an Optimizer"),
        (lambda m: Trainer(object(), CrossEntropyLoss(), SGD(lr=0.1)), TypeError, "model must be a Module"),
        (
            lambda m: Trainer(m, CrossEntropyLoss(), SGD(lr=0.1), [Accuracy(), Accuracy()]),
            ValueError,
            "two metrics share a name",
        ),
        (
            lambda m: Trainer(m, CrossEntropyLoss(), SGD(lr=0.1), grad_clip_norm=0),
            ValueError,
            "grad_clip_norm must be positive",
        ),
        (
            lambda m: Trainer(m, CrossEntropyLoss(reduction="none"), SGD(lr=0.1)).fit(
                _loaders()[0], epochs=1, verbose=0
            ),
            ValueError,
            r"must return a one-element tensor .* got \(32,\)",
        ),
        (
            lambda m: Trainer(m, CrossEntropyLoss(), SGD(lr=0.1)).fit([np.ones(2)], epochs=1, verbose=0),
            TypeError,
            r"expected batches of \(inputs, labels\)",
        ),
    ],
)
def test_bad_input_is_a_clear_error(make, error, message):
    with pytest.raises(error, match=message):
        make(_mlp())


def test_evaluate_model_defaults_and_restores_the_mode():
    x, y = _quadrants(100)
    model = _mlp()
    scores = evaluate_model(model, DataLoader(x, y, batch_size=30))
    logits = model(tt.tensor(x)).data
    assert scores["num_samples"] == 100
    assert scores["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    assert scores["loss"] == pytest.approx(CrossEntropyLoss()(tt.tensor(logits), y).item(), rel=1e-5)
    assert model.training
    regression = tt.Sequential([tt.Dense(2, 1)])
    targets = x[:, :1] * 2
    scores = evaluate_model(regression.eval(), DataLoader(x, targets, batch_size=100))
    assert set(scores) == {"loss", "num_samples"} and not regression.training
    assert scores["loss"] == pytest.approx(MSELoss()(regression(tt.tensor(x)), targets).item(), rel=1e-5)
    with pytest.raises(ValueError, match="yielded no batches"):
        evaluate_model(model, [])


def test_plot_training_history_writes_a_png(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plotting is the optional extra tinytorch[plot]")
    history = {
        "epoch": [1, 2, 3],
        "train_loss": [1.0, 0.6, 0.4],
        "val_loss": [1.1, 0.8, 0.7],
        "train_accuracy": [0.5, 0.7, 0.8],
        "lr": [0.1, 0.05, 0.01],
        "epoch_time": [1.0, 1.0, 1.0],
    }
    path = plot_training_history(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    monkeypatch.chdir(tmp_path)
    assert plot_training_history(history).resolve() == (tmp_path / "training_history.png").resolve()
    with pytest.raises(ValueError, match="no train_\\*/val_\\* curves"):
        plot_training_history({"epoch": [1]})


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` fail
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r'pip install "tinytorch\[plot\]"'):
        plot_training_history({"train_loss": [1.0]})


@pytest.mark.parametrize(
    "module", ["optimizers", "schedulers", "losses", "metrics", "checkpoint", "callbacks", "progress", "training"]
)
def test_module_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the checkpoint module's example writes a file
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(f"tinytorch.core.{module}"), optionflags=flags)
    assert result.failed == 0
