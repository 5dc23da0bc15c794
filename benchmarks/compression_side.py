"""The compressed models' side of the compression benchmark: factories that build a model and return the
timed forward pass (float32 layers, int8 layers, the channel-pruned CNN).

Imported only by a benchmark worker process (``benchmarks/worker.py``). Every model gets the same
inputs (``specs.py``, seeded); weights are random, since the kernels' work does not depend on the
values. TinyTorch's thread setting and description are ``tinytorch_side``'s.
"""

from __future__ import annotations

from typing import Callable

import tinytorch as tt
from tinytorch.core.compression import DynamicQuantizedDense, fold_batchnorms, prune_channels, quantize_static

from . import specs
from .tinytorch_side import cnn, describe, pin_threads  # noqa: F401  (the worker calls pin_threads and describe)

Run = Callable[[], object]
#: every convolution of the reference CNN (layer indices) and the fraction of its channels removed
CHANNELS_REMOVED = {0: 0.5, 4: 0.5, 8: 0.5}


def _forward(model: tt.Module, x: tt.Tensor) -> Run:
    def run():
        with tt.no_grad():
            return model(x)

    return run


def dense(in_features: int, out_features: int, batch: int, int8: bool) -> Run:
    """A Dense layer's forward pass; with ``int8`` the same layer with int8 weights, its float input
    quantized per call (dynamic quantization), float output."""
    tt.manual_seed(0)
    layer = tt.Dense(in_features, out_features)
    model = DynamicQuantizedDense.from_float(layer) if int8 else layer
    return _forward(model, tt.from_numpy(specs.normal((batch, in_features), 5)))


def calibrated_int8_cnn() -> tt.Module:
    """The reference CNN converted to static int8 (batch norm folded, ReLU fused), calibrated on two batches."""
    return quantize_static(cnn().eval(), [specs.cnn_batch(64, seed)[0] for seed in (2, 3)])


def cnn_forward(batch: int, variant: str, folded: bool = False) -> Run:
    """The reference CNN in evaluation mode without a graph: ``"float32"``, ``"int8"`` (static int8)
    or ``"channels_pruned"`` (half the channels of every convolution removed); with ``folded`` (float
    variants) each batch norm folded into the convolution before it (``fold_batchnorms``)."""
    if variant == "int8":
        model = calibrated_int8_cnn()
    elif variant == "channels_pruned":
        model = prune_channels(cnn(), CHANNELS_REMOVED).eval()
    else:
        model = cnn().eval()
    if folded:
        model = fold_batchnorms(model)
    return _forward(model, tt.from_numpy(specs.cnn_batch(batch, seed=1)[0]))


def forward_flops() -> dict[str, float]:
    """Forward FLOPs per image of the reference CNN and of its channel-pruned copy (the profiler's counter)."""
    from tinytorch.core.profiling import count_flops

    full = count_flops(cnn(), (1, 3, 32, 32), backward=False).forward
    slim = count_flops(prune_channels(cnn(), CHANNELS_REMOVED), (1, 3, 32, 32), backward=False).forward
    return {"flops": float(full), "channels_pruned_flops": float(slim), "cut": 1 - slim / full}
