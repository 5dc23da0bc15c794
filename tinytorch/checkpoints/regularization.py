"""Checkpoint 11, Regularization: "Can I prevent overfitting and build robust models?"

Led to by lesson 12 (``magnitude_mask``, ``quantize_per_channel``, ``dequantize``,
``distillation_loss``): a model that keeps its accuracy when most of it is taken away. An MLP
learns 3,000 real handwritten digits; then 80 % of its weights are pruned (the student's
``magnitude_mask``, through ``prune_magnitude``) and the rest fine-tuned for one epoch with the
zeros held in place; then it is quantized to int8 (the student's ``quantize_per_channel`` for the
weights, their ``dequantize`` for the float logits) and saved as bitmask + int8 values. That file
must be at least 10 times smaller than the float32 one, and the pruned int8 model must stay within
3 points of the original on 1,000 held-out digits. Last, a student network with an eighth of the
hidden units learns from the original's softened predictions (the student's
``distillation_loss``) and must reach 85 %.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np

from tinytorch.checkpoints.data import real_images
from tinytorch.checkpoints.loop import held_out_accuracy, train_epochs
from tinytorch.checkpoints.probe import Probe

TRAIN, HELD_OUT, EPOCHS, BATCH, SPARSITY = 3000, 1000, 3, 50, 0.8


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core import compression

    x_train, y_train, x_test, y_test = real_images("mnist", TRAIN, HELD_OUT, flatten=True)
    loader = tt.DataLoader(x_train, y_train, batch_size=BATCH, shuffle=True, seed=0)

    probe.step(f"training an MLP (784 -> 256 -> 10) on {TRAIN} digits for {EPOCHS} epochs")
    tt.manual_seed(0)
    model = tt.Sequential(tt.Dense(784, 256), tt.ReLU(), tt.Dense(256, 10))
    train_epochs(model.train(), tt.Adam(model.parameters(), lr=0.002), tt.CrossEntropyLoss(), loader, EPOCHS)
    original = probe.measure("float32 held-out accuracy", held_out_accuracy(model, x_test, y_test), at_least=0.85)

    probe.step(f"pruning {SPARSITY:.0%} of the weights by magnitude (magnitude_mask) and fine-tuning one epoch")
    pruned = copy.deepcopy(model)
    compression.prune_magnitude(pruned, SPARSITY)
    probe.measure("weights pruned", compression.sparsity(pruned), at_least=SPARSITY - 1e-3, at_most=SPARSITY + 1e-3)
    optimizer = tt.SGD(pruned.parameters(), lr=0.05, momentum=0.9)
    for images, labels in loader:  # one epoch, the pruned weights put back to zero after every step
        optimizer.zero_grad()
        tt.CrossEntropyLoss()(pruned.train()(images), labels).backward()
        optimizer.step()
        compression.apply_masks(pruned)
    probe.measure("weights still zero after fine-tuning", compression.sparsity(pruned), at_least=SPARSITY - 1e-3)

    probe.step("quantizing the pruned model to int8 (quantize_per_channel, dequantize) and saving it compactly")
    calibration = [x_train[i:i + 250] for i in range(0, 1000, 250)]
    int8_model = compression.quantize_static(pruned, calibration, observer="percentile")
    weights = [m.weight.data for m in int8_model if isinstance(m, compression.QuantizedDense)]
    probe.check("the quantized weights are int8", all(w.dtype == np.int8 for w in weights),
                f"got weight dtypes {[str(w.dtype) for w in weights]}")
    compressed_accuracy = held_out_accuracy(int8_model, x_test, y_test)
    probe.measure("pruned int8 model: held-out accuracy lost", original - compressed_accuracy, at_most=0.03)
    with tempfile.TemporaryDirectory(prefix="tinytorch-checkpoint-11-") as scratch:
        dense, compact = Path(scratch) / "float32.npz", Path(scratch) / "pruned_int8.npz"
        tt.save_checkpoint(dense, model)
        compression.save_sparse(compact, pruned, values="int8")
        ratio = dense.stat().st_size / compact.stat().st_size
        restored = tt.Sequential(tt.Dense(784, 256), tt.ReLU(), tt.Dense(256, 10))
        compression.load_sparse(compact, restored)
    probe.measure("file size, float32 / pruned with int8 values", ratio, at_least=10.0, unit="x", headline=True)
    probe.measure("reloaded compact model: held-out accuracy lost", original - held_out_accuracy(restored, x_test, y_test),
                  at_most=0.03)

    probe.step("distilling the MLP into one with 32 hidden units (distillation_loss, T = 4)")
    tt.manual_seed(0)
    student = tt.Sequential(tt.Dense(784, 32), tt.ReLU(), tt.Dense(32, 10))
    model.eval()
    distiller = compression.Distiller(student, model, temperature=4.0, alpha=0.7)
    train_epochs(distiller.train(), tt.Adam(distiller.parameters(), lr=0.005), distiller.loss, loader, EPOCHS)
    probe.measure("distilled student (32 hidden units): held-out accuracy", held_out_accuracy(student, x_test, y_test),
                  at_least=0.85)
