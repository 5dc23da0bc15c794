"""Checkpoint 05, Learning: "Can I process spatial data like images with convolutional operations?"

Led to by lesson 06 (``conv2d_output_shape``, ``im2col``). A small CNN (two convolution-ReLU-pool
stages and a Dense classifier) learns to read real handwritten digits: it trains for two epochs
on 3,000 MNIST digits and must classify 1,000 others correctly at least 90 % of the time. With a
workspace, every convolution (forward, weight gradient and input gradient) runs on the student's
``im2col``, and the student's ``conv2d_output_shape`` must predict each stage's output size.
"""

from __future__ import annotations

import numpy as np

from tinytorch.checkpoints.data import real_images
from tinytorch.checkpoints.loop import held_out_accuracy, train_epochs
from tinytorch.checkpoints.probe import Probe

TRAIN, HELD_OUT, EPOCHS, BATCH = 3000, 1000, 2, 50


def build_model():
    import tinytorch as tt

    return tt.Sequential(
        tt.Conv2D(1, 8, kernel_size=3, padding=1), tt.ReLU(), tt.MaxPool2D(2),
        tt.Conv2D(8, 16, kernel_size=3, padding=1), tt.ReLU(), tt.MaxPool2D(2),
        tt.Flatten(), tt.Dense(16 * 7 * 7, 10),
    )


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core.spatial import conv2d_output_shape, im2col

    x_train, y_train, x_test, y_test = real_images("mnist", TRAIN, HELD_OUT)
    model = build_model()

    probe.step("predicting each stage's output size with conv2d_output_shape")
    size, mismatches = (28, 28), []
    x = tt.tensor(x_test[:2])
    with tt.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, (tt.Conv2D, tt.MaxPool2D)):
                kernel = getattr(layer, "kernel_size")
                stride = getattr(layer, "stride")
                padding = getattr(layer, "padding")
                size = tuple(conv2d_output_shape(size, kernel, stride, padding))
                if size != tuple(x.shape[2:]):
                    mismatches.append(f"{layer!r} gave {tuple(x.shape[2:])}, predicted {size}")
    probe.check("every stage's size predicted", not mismatches, "; ".join(mismatches))

    probe.step("checking that a convolution is im2col followed by one matrix product")
    conv = model[0]
    with tt.no_grad():
        out = conv(tt.tensor(x_test[:4])).data
    cols = np.asarray(im2col(x_test[:4], conv.kernel_size, conv.stride, conv.padding))
    product = (cols @ conv.weight.data.reshape(8, -1).T + conv.bias.data).reshape(4, 28, 28, 8).transpose(0, 3, 1, 2)
    probe.measure("largest |conv - im2col @ W|", float(np.abs(out - product).max()), at_most=1e-4)

    probe.step(f"training on {TRAIN} MNIST digits for {EPOCHS} epochs (batches of {BATCH})")
    optimizer, loss_fn = tt.Adam(model.parameters(), lr=0.003), tt.CrossEntropyLoss()
    loader = tt.DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)
    probe.measure("last batch's training loss", train_epochs(model, optimizer, loss_fn, loader, EPOCHS), at_most=1.0)
    accuracy = held_out_accuracy(model, x_test, y_test)
    probe.measure(f"accuracy on {HELD_OUT} held-out digits", accuracy, at_least=0.9, headline=True)
