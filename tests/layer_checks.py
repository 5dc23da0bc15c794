"""Helpers shared by the layer tests: the PyTorch oracle, gradient checks of a whole module, torch copies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.testing import gradcheck

from .strategies import leaf

TORCH_REASON = "PyTorch is only an oracle for these comparisons; it is not installed here"


@pytest.fixture
def torch():
    """The torch module, or a skip with a reason when it is not installed."""
    return pytest.importorskip("torch", reason=TORCH_REASON)


def gradcheck_module(layer: tt.Module, x: np.ndarray, *, atol: float = 1e-6, rtol: float = 1e-4) -> bool:
    """Check the gradients of ``layer(x)`` with respect to ``x`` and to every parameter, in float64.

    ``x`` keeps its memory layout (it may be a non-contiguous view); the layer is converted to
    float64 in place.
    """
    layer.double()
    params = [p for p in layer.parameters() if p.requires_grad]
    return gradcheck(lambda inp, *_: layer(inp), leaf(x), *params, atol=atol, rtol=rtol, name=layer.label())


def copy_into_torch(torch_module: Any, module: tt.Module) -> None:
    """Load our module's state into a torch module with the same names (and dtype of our parameters)."""
    import torch

    state = {k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()}
    torch_module.load_state_dict(state, strict=True)
    torch_module.to(torch.float64 if module.parameters()[0].dtype == np.float64 else torch.float32)
