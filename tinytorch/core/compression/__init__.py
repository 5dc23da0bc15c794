"""Compression (lesson 12): make a trained model smaller and cheaper, and measure what it costs.

* **Pruning** (:mod:`.pruning`, :mod:`.structured`, :mod:`.sparse`): zero the smallest weights
  (globally or per layer) and keep them zero through fine-tuning; remove whole channels so the
  model really computes less; store a pruned model as bitmask + values so its file shrinks.
* **Quantization** (:mod:`.quantization`, :mod:`.observers`, :mod:`.quantized`, :mod:`.convert`,
  :mod:`.serialization`): int8 weights with a scale per output channel, int8 activations
  calibrated on real batches, int8 x int8 -> int32 kernels with integer requantization, and files
  that hold int8 (only scales and biases stay float32).
* **Distillation** (:mod:`.distillation`): a small student trained on a large teacher's softened
  predictions.
* **Memory-saving training** (:mod:`.memory`, :mod:`.half`): recomputation, half-precision activations,
  and half-precision weight storage trained through float32 master weights.

The original course's entry points are here too: :func:`prune_weights_by_magnitude`,
:func:`quantize_layer_weights`, :func:`calculate_sparsity`, :class:`DistillationLoss`,
:func:`compute_neuron_importance`, :func:`prune_layer_neurons`.

>>> import numpy as np
>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> layer = tt.Dense(64, 32)
>>> quantized, info = quantize_layer_weights(layer)
>>> quantized.weight.dtype, round(info["memory_reduction"], 2)   # 4x, less the 32 float32 scales
(dtype('int8'), 3.76)
>>> x = tt.randn(5, 64)
>>> float(np.abs(quantized(x).numpy() - layer(x).numpy()).max()) < 0.02
True
"""

from .convert import calibration_inputs, flat_layers, fold_batchnorm, fold_batchnorms, quantize_dynamic, quantize_layer_weights, quantize_static
from .distillation import DistillationLoss, Distiller, distillation_loss
from .half import HalfPrecision, MasterWeights, half_precision, master_weights_sgd
from .memory import checkpoint_sequential
from .observers import HistogramObserver, MinMaxObserver, Observer, PercentileObserver
from .pruning import (
    KeepPruned,
    apply_masks,
    calculate_sparsity,
    layer_sparsity,
    magnitude_mask,
    prune_magnitude,
    prune_weights_by_magnitude,
    remove_masks,
    sparsity,
)
from .quantization import (
    QuantizedTensor,
    affine_qparams,
    dequantize,
    quantize_affine,
    quantize_per_channel,
    quantize_per_tensor,
    requantization_multiplier,
)
from .quantized import (
    DeQuantize,
    DynamicQuantizedConv2D,
    DynamicQuantizedDense,
    Quantize,
    QuantizedConv2D,
    QuantizedDense,
    QuantizedFlatten,
    QuantizedMaxPool2D,
    QuantizedReLU,
)
from .serialization import architecture, build_quantized, load_quantized, save_quantized
from .sparse import load_sparse, save_sparse
from .structured import channel_importance, compute_neuron_importance, prune_channels, prune_layer_neurons

__all__ = [
    "prune_magnitude", "magnitude_mask", "apply_masks", "remove_masks", "sparsity", "layer_sparsity", "KeepPruned",
    "prune_weights_by_magnitude", "calculate_sparsity",
    "prune_channels", "channel_importance", "compute_neuron_importance", "prune_layer_neurons",
    "save_sparse", "load_sparse",
    "quantize_per_channel", "quantize_per_tensor", "dequantize", "affine_qparams", "quantize_affine",
    "requantization_multiplier", "QuantizedTensor",
    "Observer", "MinMaxObserver", "PercentileObserver", "HistogramObserver",
    "Quantize", "DeQuantize", "QuantizedConv2D", "QuantizedDense", "QuantizedMaxPool2D", "QuantizedFlatten",
    "QuantizedReLU", "DynamicQuantizedDense", "DynamicQuantizedConv2D",
    "quantize_static", "quantize_dynamic", "quantize_layer_weights", "fold_batchnorm", "fold_batchnorms", "calibration_inputs", "flat_layers",
    "save_quantized", "load_quantized", "architecture", "build_quantized",
    "distillation_loss", "DistillationLoss", "Distiller",
    "checkpoint_sequential", "half_precision", "HalfPrecision", "MasterWeights", "master_weights_sgd",
]
