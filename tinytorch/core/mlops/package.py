"""Model packages: a trained model as a folder of safetensors weights and a JSON manifest, and back.

:func:`package` writes::

    my_model/
      manifest.json          what the model is, what it takes and returns, a sha256 per file
      weights.safetensors    every parameter and buffer, under PyTorch's names and layouts
      reference.safetensors  optional: reference data for drift monitoring (e.g. predicted classes)

and :func:`load_package` reads it back: it checks every file's hash, rebuilds the model from the
architecture in the manifest, and loads the weights by name. Nothing is unpickled and nothing in
the folder is executed. Because names and layouts are PyTorch's, ``safetensors.torch.load_file``
reads the same weights straight into the equivalent ``torch.nn`` model.

An int8 model of :mod:`tinytorch.core.compression` (``quantize_static`` / ``quantize_dynamic``)
packages too: its weights stay int8 in the safetensors file (only scales and biases are float32),
and the manifest's architecture is ``{"type": "quantized", "model": ...}``, the description its
own checkpoint format uses, so it can be served and A/B-tested beside the float model.

>>> import tempfile, numpy as np, tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> net = tt.Sequential(tt.Dense(4, 8), tt.ReLU(), tt.Dense(8, 3))
>>> folder = package(net, tempfile.mkdtemp() + "/net", signature=np.zeros((1, 4), np.float32),
...                  classes=["a", "b", "c"])
>>> loaded = load_package(folder)
>>> loaded.signature.input.describe(), loaded.classes
('float32 [-1, 4]', ['a', 'b', 'c'])
>>> x = tt.randn(5, 4)
>>> bool(np.array_equal(loaded.model(x).numpy(), net(x).numpy()))
True

Needs the ``interchange`` extra (safetensors): ``pip install "tinytorch[interchange]"``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..module import Module
from ..tensor import Tensor
from .architecture import ArchitectureError, architecture_config, model_from_config
from .extras import require
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST, PackageError, read_manifest, sha256_file, verify_files
from .signature import Signature

__all__ = ["package", "load_package", "ModelPackage", "WEIGHTS", "REFERENCE"]

WEIGHTS = "weights.safetensors"
REFERENCE = "reference.safetensors"
QUANTIZED = "quantized"  # the architecture type of an int8 model (described by the compression package)


def _describe(model: Module) -> dict:
    """The manifest's architecture: :func:`architecture_config` for a float model, or the compression
    package's description of an int8 one."""
    try:
        return architecture_config(model)
    except ArchitectureError as float_error:
        from ..compression.serialization import architecture as quantized_architecture

        try:
            return {"type": QUANTIZED, "model": quantized_architecture(model)}
        except TypeError:
            raise float_error from None


def _rebuild(folder: Path, architecture: dict, state: dict[str, np.ndarray]) -> Module:
    """The model the manifest describes, holding ``state``; a PackageError names what does not fit."""
    if architecture.get("type") == QUANTIZED:
        from ..checkpoint import CheckpointError
        from ..compression.serialization import build_quantized

        try:
            return build_quantized(architecture.get("model"), state)
        except CheckpointError as error:
            raise PackageError(f"package {folder}: {error}") from None
    try:
        model = model_from_config(architecture)
    except ArchitectureError as error:
        raise PackageError(f"package {folder}: {error}") from None
    try:
        model.load_state_dict(state)
    except ValueError as error:
        raise PackageError(f"package {folder}: the weights do not fit the architecture: {error}") from None
    return model


@dataclass
class ModelPackage:
    """A loaded package: the model (in eval mode) and what its manifest says about it."""

    path: Path
    model: Module
    manifest: dict
    signature: Signature
    reference: dict[str, np.ndarray]

    @property
    def classes(self) -> list[str] | None:
        return self.manifest.get("classes")

    @property
    def uuid(self) -> str:
        return self.manifest["uuid"]

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)

    def predict(self, inputs: Any) -> np.ndarray:
        """The model's outputs for a batch, checked against the signature first (no graph is built)."""
        return self.predict_unchecked(self.signature.input.check(inputs, field="inputs"))

    def predict_unchecked(self, array: np.ndarray) -> np.ndarray:
        """The model's outputs for a batch already checked against the signature (what the server runs)."""
        from ..autograd import no_grad

        with no_grad():
            out = self.model(Tensor(array, dtype=array.dtype))
        return out.numpy() if isinstance(out, Tensor) else np.asarray(out)


def _versions() -> dict:
    import tinytorch

    safetensors = require("safetensors", "package")
    return {"tinytorch": tinytorch.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__,
            "python": platform.python_version()}


def _jsonable(value: Any, what: str) -> Any:
    """``value`` with NumPy scalars turned into Python numbers; anything else that JSON cannot hold is an error."""
    try:
        return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else _refuse(v)))
    except (TypeError, ValueError) as error:
        raise TypeError(f"package: {what} must be JSON (numbers, strings, lists, dicts): {error}") from None


def _refuse(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} is not JSON")


def _write_safetensors(path: Path, arrays: Mapping[str, np.ndarray], metadata: dict[str, str] | None) -> None:
    st = require("safetensors.numpy", "package")
    contiguous = {name: np.require(a, requirements="C") for name, a in arrays.items()}  # 0-d stays 0-d
    path.write_bytes(st.save(contiguous, metadata=metadata))


def package(
    model: Module,
    path: str | os.PathLike,
    *,
    signature: Signature | np.ndarray | Tensor,
    metadata: Mapping[str, Any] | None = None,
    classes: list[str] | None = None,
    metrics: Mapping[str, float] | None = None,
    reference: Mapping[str, np.ndarray] | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a package folder at ``path``; returns the path.

    Parameters
    ----------
    model : Module
        A Sequential of the framework's layers (see :mod:`.architecture`) or a model that
        describes itself; saved in eval mode.
    path : path
        The folder to create. It must not exist unless ``overwrite``.
    signature : Signature, or an example batch
        What the model takes and returns; from an example batch it is inferred (the model runs
        once on it), with -1 on the batch axis.
    metadata : mapping, optional
        Anything else to record (JSON values): the training recipe, the data set, an owner.
    classes : list of str, optional
        The name of each output class, in order.
    metrics : mapping, optional
        Measured scores, e.g. ``{"test_accuracy": 0.8169}``.
    reference : mapping of arrays, optional
        Reference data for monitoring (say ``{"predictions": ..., "features": ...}`` on held-out
        data), stored in ``reference.safetensors``.
    name : str, optional
        The model's name (default: the folder's name).
    overwrite : bool
        Replace an existing package at ``path``.

    The folder is written beside ``path`` under a temporary name and renamed into place when
    complete, so a crash never leaves a half-written package.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"package: {path} already exists (pass overwrite=True to replace it)")
    if not isinstance(signature, Signature):
        signature = Signature.infer(model, signature)
    architecture = _describe(model)  # fails before anything is written
    state = model.state_dict()
    if any(a.dtype == object for a in state.values()):
        raise TypeError("package: the model holds non-numeric arrays")
    versions = _versions()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name or path.name,
        "uuid": str(uuid.uuid4()),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "framework": {"name": "tinytorch", "version": versions["tinytorch"]},
        "versions": versions,
        "architecture": architecture,
        "signature": signature.to_json(),
        "classes": list(classes) if classes is not None else None,
        "metrics": _jsonable(dict(metrics or {}), "metrics"),
        "metadata": _jsonable(dict(metadata or {}), "metadata"),
        "parameters": int(sum(a.size for a in state.values())),
        "weights": {"file": WEIGHTS, "tensors": {k: {"dtype": a.dtype.name, "shape": list(a.shape)} for k, a in state.items()}},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _write_safetensors(staging / WEIGHTS, state, {"producer": f"tinytorch {versions['tinytorch']}", "layout": "pytorch"})
        if reference:
            _write_safetensors(staging / REFERENCE, {k: np.asarray(v) for k, v in reference.items()}, {"role": "reference"})
        manifest["files"] = {n: {"sha256": sha256_file(staging / n), "bytes": (staging / n).stat().st_size}
                             for n in sorted(p.name for p in staging.iterdir())}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if path.exists():
            old = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:8]}")
            path.rename(old)
            staging.rename(path)
            shutil.rmtree(old)
        else:
            staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _read_safetensors(folder: Path, name: str, sha256: str) -> dict[str, np.ndarray]:
    """The arrays of one safetensors file, parsed from the very bytes whose hash was checked."""
    st = require("safetensors.numpy", "load_package")
    data = (folder / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise PackageError(f"package {folder}: {name} changed while it was being loaded")
    try:
        return st.load(data)
    except Exception as error:  # safetensors raises its own error type for malformed headers
        raise PackageError(f"package {folder}: {name} is not a valid safetensors file ({error})") from None


def load_package(path: str | os.PathLike, *, verify: bool = True) -> ModelPackage:
    """Read a package written by :func:`package`: the model rebuilt, its weights loaded, in eval mode.

    Parameters
    ----------
    path : path
        The package folder.
    verify : bool
        Check every file against the manifest's sha256 first (default). The weights' own hash is
        checked regardless.

    Raises
    ------
    PackageError
        A missing, changed or unexpected file (named), a malformed manifest, or weights that do
        not fit the architecture.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    files = manifest["files"]
    if verify:
        verify_files(folder, files)
    if WEIGHTS not in files:
        raise PackageError(f"package {folder}: the manifest lists no {WEIGHTS}")
    state = _read_safetensors(folder, WEIGHTS, files[WEIGHTS]["sha256"])
    model = _rebuild(folder, manifest["architecture"], state)
    model.eval()
    reference = _read_safetensors(folder, REFERENCE, files[REFERENCE]["sha256"]) if REFERENCE in files else {}
    try:
        signature = Signature.from_json(manifest["signature"])
    except (KeyError, TypeError, ValueError) as error:
        raise PackageError(f"package {folder}: malformed signature in {MANIFEST} ({error})") from None
    return ModelPackage(folder, model, manifest, signature, reference)
