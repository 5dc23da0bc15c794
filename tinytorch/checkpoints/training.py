"""Checkpoint 10, Training: "Can I build complete training loops for end-to-end learning?"

Led to by lesson 11 (``softmax_cross_entropy``, ``accuracy``, ``compute_confusion_matrix``). The
``Trainer`` trains a classifier of real handwritten digits end to end: its loss is the student's
``softmax_cross_entropy``, its accuracy their ``accuracy``, its precision their confusion matrix.
The run is checkpointed after the first epoch and carried on; a fresh model and optimizer resumed
from that file must end on exactly the same weights. The classifier must reach 88 % on 1,000
held-out digits, and the confusion matrix must account for every one of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tinytorch.checkpoints.data import real_images
from tinytorch.checkpoints.probe import Probe

TRAIN, HELD_OUT, EPOCHS, BATCH = 3000, 1000, 3, 50


def setup():
    import tinytorch as tt

    model = tt.Sequential(tt.Dense(784, 64), tt.ReLU(), tt.Dense(64, 10))
    return tt.Trainer(model, tt.CrossEntropyLoss(), tt.Adam(lr=0.002), metrics=[tt.Accuracy(), tt.Precision()])


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core.metrics import compute_confusion_matrix

    x_train, y_train, x_test, y_test = real_images("mnist", TRAIN, HELD_OUT, flatten=True)
    train_loader = tt.DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True)
    test_loader = tt.DataLoader(x_test, y_test, batch_size=250)

    with tempfile.TemporaryDirectory(prefix="tinytorch-checkpoint-10-") as scratch:
        saved = Path(scratch) / "after_epoch_1.npz"
        probe.step(f"training an MLP on {TRAIN} digits for one epoch and saving a checkpoint")
        tt.manual_seed(0)
        trainer = setup()
        trainer.fit(train_loader, test_loader, epochs=1, save_best=True, checkpoint_path=saved, verbose=0)
        probe.check("the checkpoint file was written", saved.is_file(), f"no file at {saved}")
        probe.step(f"carrying on to epoch {EPOCHS}")
        history = trainer.fit(train_loader, test_loader, epochs=EPOCHS, verbose=0)
        probe.step(f"resuming a fresh model and optimizer from the checkpoint, to epoch {EPOCHS}")
        tt.manual_seed(123)  # a different state: everything the run needs must come from the file
        resumed = setup()
        resumed.fit(train_loader, test_loader, epochs=EPOCHS, resume_from=saved, verbose=0)
    difference = max(
        float(np.abs(a.data - b.data).max()) for a, b in zip(trainer.model.parameters(), resumed.model.parameters())
    )
    probe.measure("largest weight difference, resumed vs uninterrupted", difference, at_most=0.0)

    losses = history["train_loss"]
    probe.measure("training loss, last epoch / first epoch", losses[-1] / losses[0], at_most=0.7)
    accuracy = probe.measure("held-out accuracy (Trainer)", history["val_accuracy"][-1], at_least=0.88, headline=True)

    probe.step("scoring the held-out digits with a confusion matrix")
    with tt.no_grad():
        trainer.model.eval()
        predicted = trainer.model(tt.tensor(x_test)).data.argmax(axis=1)
    confusion = np.asarray(compute_confusion_matrix(y_test, predicted, 10))
    probe.check("the confusion matrix counts every held-out digit once", confusion.shape == (10, 10) and int(confusion.sum()) == HELD_OUT,
                f"shape {confusion.shape}, total {int(confusion.sum())}")
    expected = np.zeros((10, 10), dtype=np.int64)
    np.add.at(expected, (y_test, predicted), 1)
    probe.check("each cell counts (true class, predicted class) pairs", np.array_equal(confusion, expected), "the counts differ")
    probe.measure("|diagonal share - accuracy|", abs(np.trace(confusion) / HELD_OUT - accuracy), at_most=1e-9)
    probe.measure("held-out precision (Trainer, from the confusion matrix)", history["val_precision"][-1], at_least=0.85)
