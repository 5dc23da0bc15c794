"""The optional libraries MLOps uses, imported only by the function that needs them.

``import tinytorch`` never imports them; a feature whose library is missing says which extra
installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: the extra of pyproject.toml that installs each library
EXTRA_OF = {
    "safetensors": "interchange",
    "onnx": "interchange",
    "onnxruntime": "interchange",
    "fastapi": "serve",
    "uvicorn": "serve",
    "httpx": "serve",
    "scipy": "stats",
}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"safetensors.numpy"``) or raise an ImportError naming the extra that installs it."""
    library = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRA_OF.get(library, "dev")
        raise ImportError(f'{feature} needs {library}, an optional extra: pip install "tinytorch[{extra}]"') from None
