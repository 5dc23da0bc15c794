"""Training: the loop that turns data, a model, a loss and an optimizer into a trained model (lesson 11).

:class:`Trainer` runs the loop every framework runs, one batch at a time::

    outputs = model(inputs)                  # forward (model.train(): dropout on, batch statistics)
    loss = loss_fn(outputs, labels)
    optimizer.zero_grad(); loss.backward()   # gradients of the loss for every parameter
    clip_grad_norm_(...)                     # optional
    optimizer.step(); scheduler.step()       # move the parameters; per batch or per epoch

then validates with ``model.eval()`` under ``no_grad()``, records the epoch in ``history`` and
runs its callbacks (early stopping, best-model checkpoints). A checkpoint holds everything a run
needs to continue exactly: weights, optimizer and scheduler state, the random generator, the
history, and (for one taken in the middle of an epoch) where in the epoch it was;
``fit(..., resume_from=path)`` picks up exactly there.

The same loop runs data-parallel under ``mpiexec`` (:mod:`tinytorch.distributed`): a model wrapped
in ``DistributedDataParallel`` carries its process group (``model.process_group``), and then only
rank 0 prints progress and writes checkpoints, and each epoch's loss and metrics are summed over
every rank's samples, so every rank logs (and its callbacks see) the numbers of the whole data set.

The losses (:mod:`~tinytorch.core.losses`), metrics (:mod:`~tinytorch.core.metrics`), callbacks
and checkpoint files (:mod:`~tinytorch.core.checkpoint`) live in their own modules and are
re-exported here, the module lesson 11 teaches.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from . import callbacks as _callbacks
from . import checkpoint as _checkpoint
from . import losses as _losses
from . import metrics as _metrics
from .autograd import no_grad
from .callbacks import Callback, EarlyStopping, ModelCheckpoint, PeriodicCheckpoint
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state,
    remove_stale_temporaries,
    restore_state,
    save_checkpoint,
    save_state,
)
from .dataloader import DataLoader  # where the original course imported it from
from ..distributed.sampler import shard_indices  # this lesson's exercise on data parallelism
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    BinaryCrossEntropy,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    MeanSquaredError,
    MSELoss,
    NLLLoss,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
    softmax_cross_entropy,
)
from .metrics import (
    Accuracy,
    F1Score,
    Metric,
    Precision,
    Recall,
    accuracy,
    compute_confusion_matrix,
    precision_recall_f1,
    predicted_classes,
)
from .module import Module
from .optimizers import Optimizer, clip_grad_norm_
from .progress import TrainingDisplay
from .random import get_rng_state, set_rng_state
from .tensor import Tensor

# Everything lesson 11 teaches is importable from here, including what lives in the helper modules.
__all__ = [
    "Trainer",
    "DataLoader",
    "evaluate_model",
    "plot_training_history",
    "shard_indices",
    *_callbacks.__all__,
    *_checkpoint.__all__,
    *_losses.__all__,
    *_metrics.__all__,
]

PLOT_INSTALL = 'pip install "tinytorch[plot]"'


def _batches(loader: Iterable[Any], owner: str) -> Iterable[tuple[Tensor, Tensor]]:
    """The ``(inputs, labels)`` pairs of ``loader`` as Tensors (arrays are wrapped, dtypes kept)."""
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(f"{owner}: expected batches of (inputs, labels), got {type(batch).__name__}")
        x, y = batch
        yield (x if isinstance(x, Tensor) else Tensor(x)), (y if isinstance(y, Tensor) else Tensor(y))


def _is_classification(outputs: Tensor, labels: Tensor) -> bool:
    """Scores (N, C > 1) with integer labels (N,): what cross-entropy and accuracy apply to."""
    return outputs.ndim == 2 and outputs.shape[1] > 1 and labels.ndim == 1 and labels.dtype.kind in "iu"


def _scalar_loss(owner: str, loss: Any) -> Tensor:
    if not isinstance(loss, Tensor) or loss.size != 1:
        shape = loss.shape if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(
            f"{owner}: the loss function must return a one-element tensor (reduction='mean' or 'sum'), got {shape}"
        )
    return loss


def evaluate_model(
    model: Module, dataloader: Iterable[Any], loss_fn: Any = None, metrics: Sequence[Metric] | None = None
) -> dict[str, float]:
    """Run ``model`` over every batch of ``dataloader`` in eval mode, without a graph, and score it.

    Returns a dict with ``loss`` (the mean per sample), each metric under its name
    (``accuracy``, ...) and ``num_samples``. With ``loss_fn=None`` and a classifier (outputs of
    shape (N, C) and integer labels) the loss is cross-entropy, otherwise mean squared error;
    with ``metrics=None`` a classifier is scored by :class:`Accuracy`. The model's train/eval
    mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    metrics = None if metrics is None else [copy.copy(m) for m in metrics]  # copies: the caller's keep their counts
    for m in metrics or []:
        m.reset()
    total_loss, count = 0.0, 0
    try:
        with no_grad():
            for x, y in _batches(dataloader, "evaluate_model"):
                outputs = model(x)
                if metrics is None or loss_fn is None:  # the first batch decides the defaults
                    classifier = _is_classification(outputs, y)
                    if metrics is None:
                        metrics = [Accuracy()] if classifier else []
                    if loss_fn is None:
                        loss_fn = CrossEntropyLoss() if classifier else MSELoss()
                n = len(y)
                total_loss += _scalar_loss("evaluate_model", loss_fn(outputs, y)).item() * n
                count += n
                for m in metrics:
                    m.update(outputs.data, y.data)
    finally:
        model.train(was_training)
    group = getattr(model, "process_group", None)
    if group is not None and group.world_size > 1 and _is_sharded(dataloader):
        total_loss, count = _sum_over_ranks(group, total_loss, count, metrics or [])
    if count == 0:
        raise ValueError("evaluate_model: the data loader yielded no batches")
    return {"loss": total_loss / count, **{m.name: m.compute() for m in metrics}, "num_samples": count}


def _is_sharded(loader: Any) -> bool:
    """True when each rank's ``loader`` reads only its part of the data (a DistributedSampler's shard)."""
    return getattr(getattr(loader, "sampler", None), "num_replicas", 1) > 1


def _sum_over_ranks(group: Any, total_loss: float, count: int, metrics: Sequence[Metric]) -> tuple[float, int]:
    """The loss sum and sample count of all ranks together; ``metrics`` are loaded with everyone's counts."""
    state = group.sum_state({"loss": total_loss, "count": count, "metrics": [m.state_dict() for m in metrics]})
    for m, counts in zip(metrics, state["metrics"]):
        m.load_state_dict(counts)
    return state["loss"], state["count"]


class Trainer:
    """Trains a model: the loop, validation, history, callbacks and checkpoints.

    Parameters
    ----------
    model : Module
    loss_fn : callable
        ``loss_fn(outputs, labels)`` returning a one-element Tensor (``CrossEntropyLoss()``).
    optimizer : Optimizer
        Bound to ``model.parameters()`` here if it was made without parameters (``Adam(lr=1e-3)``).
    metrics : list of Metric, optional
        Scored on training and validation data every epoch (``[Accuracy()]``); classes are instantiated.
    scheduler : LRScheduler, optional
        Stepped after every batch or every epoch, as its ``interval`` says.
    grad_clip_norm : float, optional
        Clip the gradients' joint norm to this before each step (:func:`clip_grad_norm_`).
    callbacks : list of Callback, optional

    ``history`` maps ``epoch``, ``train_loss``, ``train_<metric>``, ``val_loss``,
    ``val_<metric>``, ``lr`` (the rate at the epoch's start), ``epoch_time`` (seconds) and
    ``images_per_second`` (training samples per second, of all ranks together) to one value per epoch.

    Data parallelism: when ``model`` has a ``process_group`` (``DistributedDataParallel`` does),
    only rank 0 prints and writes checkpoints, each rank calls ``set_epoch`` on its loader's
    sampler before every epoch, and the epoch's numbers (and validation on sharded loaders) are
    summed over the ranks. Every rank must call ``save_checkpoint`` (callbacks do): in the middle of
    an epoch it sums the ranks' running numbers.
    """

    def __init__(
        self,
        model: Module,
        loss_fn: Any,
        optimizer: Optimizer,
        metrics: Sequence[Metric | type] | None = None,
        scheduler: Any = None,
        grad_clip_norm: float | None = None,
        callbacks: Sequence[Callback] | None = None,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a Module, got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"Trainer: optimizer must be an Optimizer (Adam(lr=0.001), ...), got {type(optimizer).__name__}"
            )
        if not optimizer.is_bound:
            optimizer.bind(model.parameters())
        self.metrics = [m() if isinstance(m, type) else m for m in (metrics or [])]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"Trainer: two metrics share a name: {names}")
        if scheduler is not None and getattr(scheduler, "interval", None) not in ("step", "epoch"):
            raise ValueError(
                "Trainer: the scheduler's interval must be 'step' or 'epoch', "
                f"got {getattr(scheduler, 'interval', None)!r}"
            )
        if grad_clip_norm is not None and not grad_clip_norm > 0:
            raise ValueError(f"Trainer: grad_clip_norm must be positive, got {grad_clip_norm!r}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.scheduler = scheduler
        self.grad_clip_norm = grad_clip_norm
        self.callbacks = list(callbacks or [])
        self.history: dict[str, list[float]] = {}
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken
        self.stop_training = False
        self._active_callbacks: list[Callback] = list(self.callbacks)
        self._saved_callback_state: dict[str, Any] = {}
        self._train_loader: Any = None
        self._group = getattr(model, "process_group", None)
        self._epoch_state: dict[str, Any] | None = None  # where the running epoch is (for mid-epoch checkpoints)
        self._resume_epoch: dict[str, Any] | None = None  # a mid-epoch checkpoint's, until that epoch resumes

    @property
    def world_size(self) -> int:
        """How many processes train this model together (1 without data parallelism)."""
        return 1 if self._group is None else self._group.world_size

    @property
    def is_main_process(self) -> bool:
        """True on the process that prints and writes files: rank 0, or the only process."""
        return self._group is None or self._group.rank == 0

    # -- training ---------------------------------------------------------------------------------
    def fit(
        self,
        train_dataloader: Iterable[Any],
        val_dataloader: Iterable[Any] | None = None,
        epochs: int = 10,
        save_best: bool = False,
        checkpoint_path: str | os.PathLike = "best_model.npz",
        early_stopping_patience: int | None = None,
        verbose: bool | int = True,
        resume_from: str | os.PathLike | None = None,
        monitor: str | None = None,
    ) -> dict[str, list[float]]:
        """Train until ``epochs`` epochs are done in total (counting those of a resumed run).

        ``save_best`` writes a full checkpoint to ``checkpoint_path`` whenever ``monitor``
        improves (default ``val_loss``, or ``train_loss`` without validation data); the file is
        ``.npz`` whatever its suffix, never a pickle. ``early_stopping_patience`` stops after that
        many epochs without improvement. ``verbose``: 0 silent, 1 progress bars, 2 one line per
        epoch. ``resume_from`` loads a checkpoint first and continues where it was taken (after its
        epoch, or at its batch for a :class:`PeriodicCheckpoint` taken mid-epoch): the result is
        bit-identical to an uninterrupted run. The
        framework's random generator is saved, which covers dropout and a DataLoader's shuffling
        and augmentation when it draws from it (the default); a loader with a generator of its own
        is resumed exactly when it offers ``state_dict()`` / ``load_state_dict()``. Returns
        :attr:`history`.
        """
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"Trainer.fit: epochs must be a non-negative integer, got {epochs!r}")
        display = TrainingDisplay(verbose if self.is_main_process else 0)
        monitor = monitor or ("val_loss" if val_dataloader is not None else "train_loss")
        callbacks = list(self.callbacks)
        if early_stopping_patience is not None:
            callbacks.append(EarlyStopping(monitor, patience=early_stopping_patience))
        if save_best:
            callbacks.append(ModelCheckpoint(str(checkpoint_path), monitor))
        self._active_callbacks = callbacks
        self._train_loader = train_dataloader
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        self._restore_callbacks()
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin(self)
        while self.epoch < epochs and not self.stop_training:
            if self._resume_epoch is None:  # a resumed epoch has begun already
                for cb in callbacks:
                    cb.on_epoch_begin(self, self.epoch + 1)
            started = time.perf_counter()
            with display.epoch(self.epoch + 1, epochs, _length(train_dataloader)):
                logs = self._train_epoch(train_dataloader, display)
            if val_dataloader is not None:
                scores = self.evaluate(val_dataloader)
                logs.update({f"val_{k}": v for k, v in scores.items() if k != "num_samples"})
            logs["epoch_time"] = time.perf_counter() - started
            self.epoch += 1
            for key, value in {"epoch": self.epoch, **logs}.items():
                self.history.setdefault(key, []).append(value)
            display.summary(self.epoch, epochs, logs)
            for cb in callbacks:
                cb.on_epoch_end(self, self.epoch, logs)
        for cb in callbacks:
            cb.on_train_end(self)
        return self.history

    def _train_epoch(self, loader: Iterable[Any], display: TrainingDisplay) -> dict[str, float]:
        self.model.train()
        for m in self.metrics:
            m.reset()
        lr = float(self.optimizer.param_groups[0]["lr"])
        total_loss, count = 0.0, 0
        resume, self._resume_epoch = self._resume_epoch, None
        if resume is not None:
            lr = resume["lr"]
            if self.is_main_process:  # the ranks' sums so far; the other ranks add theirs from 0
                total_loss, count = resume["loss_sum"], resume["count"]
                for m, counts in zip(self.metrics, resume["metrics"]):
                    m.load_state_dict(counts)
        batches = self._epoch_batches(loader, resume)
        state = self._epoch_state
        state.update(lr=lr, loss_sum=total_loss, count=count)
        started = time.perf_counter()
        for x, y in _batches(batches, "Trainer.fit"):
            outputs = self.model(x)
            loss = _scalar_loss("Trainer.fit", self.loss_fn(outputs, y))
            self.optimizer.zero_grad()
            loss.backward()
            if self.grad_clip_norm is not None:
                clip_grad_norm_(self.optimizer.parameters(), self.grad_clip_norm)
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler.interval == "step":
                self.scheduler.step()
            self.global_step += 1
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"Trainer.fit: the loss became {value} at epoch {self.epoch + 1}, step {self.global_step}; "
                    "lower the learning rate or clip the gradients (grad_clip_norm=1.0)"
                )
            n = len(y)
            total_loss, count = total_loss + value * n, count + n
            state.update(batches=state["batches"] + 1, loss_sum=total_loss, count=count)
            for m in self.metrics:
                m.update(outputs.data, y.data)
            if display.live:
                running = {"loss": total_loss / count, **{m.name: m.compute() for m in self.metrics}}
                display.advance({**running, "images_per_second": count / (time.perf_counter() - started)})
            for cb in self._active_callbacks:
                cb.on_batch_end(self, self.global_step, {"loss": value})
        seconds = time.perf_counter() - started
        self._epoch_state = None
        if self.world_size > 1:
            total_loss, count = _sum_over_ranks(self._group, total_loss, count, self.metrics)
        if count == 0:
            raise ValueError("Trainer.fit: the training data loader yielded no batches")
        if self.scheduler is not None and self.scheduler.interval == "epoch":
            self.scheduler.step()
        logs = {"train_loss": total_loss / count, **{f"train_{m.name}": m.compute() for m in self.metrics}}
        return {**logs, "lr": lr, "images_per_second": count / seconds}

    def _epoch_batches(self, loader: Iterable[Any], resume: dict[str, Any] | None) -> Iterator[Any]:
        """This epoch's batches from where training stands: the start, or where a checkpoint was taken.

        A sampler with ``set_epoch`` (DistributedSampler) is told the epoch, so each epoch has its own
        order, the same on every rank. Resuming on as many ranks as the checkpoint was taken on
        replays the epoch's start: the random state as it was when the epoch began, the loader
        re-created and the batches already trained on read again and skipped, so the shuffling and
        augmentation go on exactly as in an unbroken run. On another number of ranks the sampler
        starts after the samples the whole job had trained on (``set_epoch(epoch, start=...)``).
        """
        sampler = getattr(loader, "sampler", None)
        set_epoch = getattr(sampler, "set_epoch", None)
        if resume is None:
            start, skip = 0, 0
            begun = {"rng": get_rng_state(), "loader": _state_of(loader)}
        else:
            begun = resume["begun"]
            if resume["world_size"] == self.world_size:
                start, skip = resume["start"], resume["batches"]
            else:
                start, skip = resume["samples"], 0
        self._epoch_state = {"begun": begun, "start": start, "batches": skip}
        if resume is not None:
            now = get_rng_state()  # restored by load_checkpoint: as it was when the checkpoint was taken
            set_rng_state(begun["rng"])
            _restore_state_of(loader, begun["loader"])
        if callable(set_epoch):
            if start:
                try:
                    set_epoch(self.epoch, start=start)
                except TypeError:
                    raise CheckpointError(
                        f"Trainer.fit: the checkpoint was taken on {resume['world_size']} ranks in the middle of an "
                        f"epoch; continuing on {self.world_size} needs a sampler whose set_epoch(epoch, start=...) "
                        "skips the samples already trained on (tinytorch.distributed.DistributedSampler)"
                    ) from None
            else:
                set_epoch(self.epoch)
        elif start:
            raise CheckpointError(
                f"Trainer.fit: the checkpoint was taken on {resume['world_size']} ranks in the middle of an epoch; "
                f"this run has {self.world_size}, and its loader has no sampler that can start mid-epoch"
            )
        batches = iter(loader)
        for _ in range(skip):
            next(batches)  # read and dropped: its random draws happen as in the unbroken run
        if resume is not None:
            set_rng_state(now)
        return batches

    def _epoch_progress(self) -> dict[str, Any]:
        """Where the running epoch stands, for a checkpoint: the ranks' running sums and the position."""
        state = self._epoch_state
        total_loss, count = state["loss_sum"], state["count"]
        metrics = [copy.deepcopy(m) for m in self.metrics]
        if self.world_size > 1:
            total_loss, count = _sum_over_ranks(self._group, total_loss, count, metrics)
        return {
            "begun": state["begun"],
            "start": state["start"],
            "batches": state["batches"],
            "samples": count,  # of the whole job in this epoch, counting those before an earlier resume
            "world_size": self.world_size,
            "lr": state["lr"],
            "loss_sum": total_loss,
            "count": count,
            "metrics": [m.state_dict() for m in metrics],
        }

    def evaluate(self, dataloader: Iterable[Any]) -> dict[str, float]:
        """:func:`evaluate_model` with this trainer's model, loss and metrics."""
        return evaluate_model(self.model, dataloader, self.loss_fn, self.metrics)

    # -- checkpoints ------------------------------------------------------------------------------
    def _callback_keys(self) -> list[str]:
        return [f"{i}:{type(cb).__name__}" for i, cb in enumerate(self._active_callbacks)]

    def _restore_callbacks(self) -> None:
        for key, cb in zip(self._callback_keys(), self._active_callbacks):
            if key in self._saved_callback_state:
                cb.load_state_dict(self._saved_callback_state[key])
        self._saved_callback_state = {}

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write everything needed to continue this run to ``path`` (one ``.npz`` file, no pickle).

        Called during an epoch (by :class:`PeriodicCheckpoint`), it also records where in the epoch
        training is, so a resume continues from that batch. Under data parallelism every rank calls
        it and rank 0 writes the file.
        """
        trainer = {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history,
            "rng": get_rng_state(),
            "callbacks": {k: cb.state_dict() for k, cb in zip(self._callback_keys(), self._active_callbacks)},
        }
        loader_state = _state_of(self._train_loader)
        if loader_state is not None:
            trainer["loader"] = loader_state
        if self._epoch_state is not None:  # taken in the middle of an epoch
            trainer["epoch_progress"] = self._epoch_progress()
        if self.is_main_process:
            save_checkpoint(path, self.model, self.optimizer, self.scheduler, trainer=trainer)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a :meth:`save_checkpoint` file: weights, optimizer, scheduler, random state, history, epoch.

        Temporary files that saves to ``path`` killed midway left behind are removed.
        """
        remove_stale_temporaries(path)
        state = load_state(path)
        if "trainer" not in state.get("extra", {}):
            raise CheckpointError(
                f"Trainer.load_checkpoint: {path} holds no training state (saved by save_checkpoint()?)"
            )
        if (self.scheduler is None) != ("scheduler" not in state):
            has = "has" if "scheduler" in state else "has no"
            raise CheckpointError(
                f"Trainer.load_checkpoint: {path} {has} scheduler state, "
                f"but this Trainer {'has no' if self.scheduler is None else 'has a'} scheduler"
            )
        restore_state(state, path, self.model, self.optimizer, self.scheduler)
        trainer = state["extra"]["trainer"]
        self.epoch, self.global_step = int(trainer["epoch"]), int(trainer["global_step"])
        self.history = {k: list(v) for k, v in trainer["history"].items()}
        set_rng_state(trainer["rng"])
        self._saved_callback_state = dict(trainer["callbacks"])
        if "loader" in trainer:
            _restore_state_of(self._train_loader, trainer["loader"])
        self._resume_epoch = trainer.get("epoch_progress")


def _state_of(loader: Any) -> dict | None:
    """The loader's ``state_dict()`` when it has one (its own generator), else None."""
    state = getattr(loader, "state_dict", None)
    return state() if callable(state) else None


def _restore_state_of(loader: Any, state: dict | None) -> None:
    restore = getattr(loader, "load_state_dict", None)
    if state is not None and callable(restore):
        restore(state)


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def plot_training_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike | None = None) -> Path:
    """Draw the loss and each metric per epoch (training and validation side by side) into a PNG.

    ``path`` defaults to ``training_history.png``. Needs matplotlib (``pip install "tinytorch[plot]"``);
    it draws on an off-screen canvas, so it works without a display. Returns the file's path.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"plot_training_history needs matplotlib, an optional extra: {PLOT_INSTALL}") from None
    names = sorted({k.split("_", 1)[1] for k in history if k.startswith(("train_", "val_"))})
    names.sort(key=lambda name: name != "loss")  # the loss first
    if not names:
        raise ValueError(
            f"plot_training_history: the history has no train_*/val_* curves; its keys are {sorted(history)}"
        )
    panels = names + (["lr"] if len(set(history.get("lr", []))) > 1 else [])
    fig = Figure(figsize=(4.5 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    for i, name in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        keys = (
            ["lr"]
            if name == "lr"
            else [f"{split}_{name}" for split in ("train", "val") if f"{split}_{name}" in history]
        )
        for key in keys:
            values = list(history[key])
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title("learning rate" if name == "lr" else name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path if path is not None else "training_history.png")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
