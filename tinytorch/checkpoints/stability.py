"""Checkpoint 07, Stability: "Can I stabilize training with normalization techniques?"

Led to by lesson 08 (``batch_slices``, ``parse_cifar10_records``, ``crop_batch``, ``flip_batch``):
the data pipeline that feeds every training run. Real images of clothing (3,000 from
Fashion-MNIST) are written as CIFAR-10 binary records (32x32, three channels) and read back with
the student's parser, which must return every pixel and label exactly. Batches then come from a
``DataLoader`` (the student's ``batch_slices``) with random crops and mirror flips (their
``crop_batch`` and ``flip_batch``; a mirrored shirt is still a shirt), and feed two deep networks:
eight sigmoid layers, with and without batch normalisation, trained identically for two epochs.
The sigmoid's gradients vanish through eight layers, so the plain network must stay near chance
(10 %), while the normalised one must learn (at least 60 % on 1,000 held-out images).
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.data import real_images
from tinytorch.checkpoints.loop import held_out_accuracy, train_epochs
from tinytorch.checkpoints.probe import Probe

TRAIN, HELD_OUT, EPOCHS, BATCH, DEPTH, WIDTH, LR = 3000, 1000, 2, 50, 8, 64, 0.2
CROP = 28  # = the images' own size: the crops shift them by up to two pixels


def as_cifar_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Grey (N, 1, 28, 28) images in [0, 1] as CIFAR-10 binary records: a label byte, then 32x32 red,
    green and blue bytes (the image, centred, in all three)."""
    pixels = np.round(images[:, 0] * 255).astype(np.uint8)
    framed = np.zeros((len(pixels), 3, 32, 32), dtype=np.uint8)
    framed[:, :, 2:30, 2:30] = pixels[:, None]
    return np.concatenate([labels.astype(np.uint8)[:, None], framed.reshape(len(pixels), -1)], axis=1).tobytes()


def deep_network(normalized: bool):
    import tinytorch as tt

    layers = [tt.Flatten(), tt.Dense(3 * CROP * CROP, WIDTH)]
    for i in range(DEPTH):
        layers += ([tt.BatchNorm1d(WIDTH)] if normalized else []) + [tt.Sigmoid()]
        layers.append(tt.Dense(WIDTH, WIDTH if i < DEPTH - 1 else 10))
    return tt.Sequential(*layers)


def train_and_score(normalized: bool, train_set, x_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
    """Train one network on ``train_set``; return its last batch loss and held-out accuracy."""
    import tinytorch as tt

    tt.manual_seed(0)
    model = deep_network(normalized)
    optimizer, loss_fn = tt.SGD(model.parameters(), lr=LR, momentum=0.9), tt.CrossEntropyLoss()
    augment = tt.transforms.Compose([tt.transforms.RandomCrop(CROP), tt.transforms.RandomHorizontalFlip(0.5)])
    loader = tt.DataLoader(*train_set, batch_size=BATCH, shuffle=True, transform=augment, seed=0)
    last_loss = train_epochs(model, optimizer, loss_fn, loader, EPOCHS)
    return last_loss, held_out_accuracy(model, x_test, y_test)


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core.dataloader import batch_slices, parse_cifar10_records

    x_train, y_train, x_test, y_test = real_images("fashion-mnist", TRAIN, HELD_OUT)

    probe.step(f"writing {TRAIN} Fashion-MNIST images as CIFAR-10 binary records and reading them back with parse_cifar10_records")
    raw = as_cifar_records(x_train, y_train)
    images, labels = parse_cifar10_records(raw)
    expected = np.frombuffer(raw, dtype=np.uint8).reshape(TRAIN, -1)
    probe.check("every label read back", np.array_equal(np.asarray(labels), y_train), "the labels differ from the records'")
    probe.check(
        "every pixel read back, channels and rows in place",
        np.asarray(images).shape == (TRAIN, 3, 32, 32) and np.array_equal(np.asarray(images).reshape(TRAIN, -1), expected[:, 1:]),
        f"got images of shape {np.asarray(images).shape}; expected (3000, 3, 32, 32) holding each record's pixels",
    )
    probe.check(
        "batch_slices covers the epoch once",
        [s.stop - s.start for s in batch_slices(TRAIN, BATCH)] == [BATCH] * (TRAIN // BATCH),
        f"batch_slices({TRAIN}, {BATCH}) gave {batch_slices(TRAIN, BATCH)[:3]}...",
    )

    train_set = (tt.transforms.ToFloat()(np.ascontiguousarray(images)), np.asarray(labels).astype(np.int64))
    centre = np.repeat(x_test, 3, axis=1)  # the held-out images as the centred 28x28 crop of their records

    probe.step(f"training {DEPTH} sigmoid layers without normalisation (SGD lr {LR}, random crops and flips)")
    plain_loss, plain = train_and_score(False, train_set, centre, y_test)
    probe.measure("without batch norm: held-out accuracy", plain, at_most=0.3)
    probe.step("training the same network with BatchNorm1d before every sigmoid")
    normed_loss, normed = train_and_score(True, train_set, centre, y_test)
    probe.measure("with batch norm: last training loss", normed_loss, at_most=1.5)
    probe.measure("with batch norm: held-out accuracy", normed, at_least=0.6)
    probe.measure("accuracy gained by normalisation", normed - plain, at_least=0.3, headline=True)
