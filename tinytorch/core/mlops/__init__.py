"""MLOps (lesson 15): package a trained model, export it, serve it, watch it for drift, compare two versions.

One job per module:

- :mod:`.architecture`, :mod:`.signature`, :mod:`.manifest`, :mod:`.package`: model packages
  (safetensors weights + a JSON manifest with a sha256 per file), loaded without unpickling.
- :mod:`.onnx_export`: ONNX files checked by ``onnx.checker`` and onnxruntime.
- :mod:`.request_parsing`, :mod:`.batching`, :mod:`.metrics`, :mod:`.server`: the inference server
  (FastAPI on uvicorn) with micro-batching and Prometheus metrics; :mod:`.loadtest`: an open-loop
  load generator.
- :mod:`.drift`, :mod:`.image_features`: drift detection with evidently's default rules.
- :mod:`.monitor`, :mod:`.retraining`: the rolling monitor and when to retrain.
- :mod:`.ab`: deterministic A/B routing and the paired accuracy comparison.
- :mod:`.pipeline`: train -> package -> serve -> monitor -> retrain as one object.

The optional libraries (safetensors, onnx, onnxruntime, fastapi, uvicorn, scipy) are imported only
by the functions that need them.
"""

from .architecture import ArchitectureError, architecture_config, model_from_config
from .manifest import PackageError, sha256_file, sha256_manifest
from .onnx_export import check_onnx, export_onnx
from .package import ModelPackage, load_package, package
from .signature import Signature, SignatureError, TensorSpec

__all__ = [
    "ArchitectureError", "architecture_config", "model_from_config",
    "PackageError", "sha256_file", "sha256_manifest",
    "check_onnx", "export_onnx",
    "ModelPackage", "load_package", "package",
    "Signature", "SignatureError", "TensorSpec",
]
