"""MLOps (lesson 15): package a trained model, export it, serve it, watch it for drift, compare two versions.

One job per module:

- :mod:`.architecture`, :mod:`.signature`, :mod:`.manifest`, :mod:`.package`: model packages
  (safetensors weights + a JSON manifest with a sha256 per file), loaded without unpickling.
- :mod:`.onnx_export`: ONNX files checked by ``onnx.checker`` and onnxruntime.
- :mod:`.request_parsing`, :mod:`.batching`, :mod:`.metrics`, :mod:`.server`: the inference server
  (FastAPI on uvicorn) with micro-batching and Prometheus metrics, :mod:`.server_process` (it, as
  a child process); :mod:`.loadtest`: an open-loop load generator.
- :mod:`.drift`, :mod:`.image_features`: drift detection with evidently's default rules.
- :mod:`.monitor`, :mod:`.retraining`: the rolling monitor and when to retrain.
- :mod:`.ab`: deterministic A/B routing and the paired accuracy comparison.
- :mod:`.pipeline`: train -> package -> serve -> monitor -> retrain as one object.

The optional libraries (safetensors, onnx, onnxruntime, fastapi, uvicorn, scipy) are imported only
by the functions that need them.
"""

from .ab import ABRecorder, PairedComparison, paired_accuracy_comparison, route_request
from .architecture import ArchitectureError, architecture_config, model_from_config
from .batching import MicroBatcher
from .drift import DriftDetector, DriftReport, FeatureDrift, ks_statistic, population_stability_index
from .image_features import image_statistics
from .loadtest import LoadTestResult, arrival_times, load_test
from .manifest import PackageError, sha256_file, sha256_manifest
from .monitor import Alert, ModelMonitor, MonitorThresholds
from .onnx_export import check_onnx, export_onnx
from .package import ModelPackage, load_package, package
from .percentiles import summarize
from .pipeline import MLOpsPipeline, PipelineReport
from .retraining import RetrainingDecision, RetrainingTrigger
from .server import BackgroundServer, ServerSettings, create_app, serve
from .server_process import ServerProcess
from .signature import Signature, SignatureError, TensorSpec

__all__ = [
    "ABRecorder", "PairedComparison", "paired_accuracy_comparison", "route_request",
    "ArchitectureError", "architecture_config", "model_from_config",
    "MicroBatcher",
    "DriftDetector", "DriftReport", "FeatureDrift", "ks_statistic", "population_stability_index",
    "image_statistics",
    "LoadTestResult", "arrival_times", "load_test",
    "PackageError", "sha256_file", "sha256_manifest",
    "Alert", "ModelMonitor", "MonitorThresholds",
    "check_onnx", "export_onnx",
    "ModelPackage", "load_package", "package",
    "summarize",
    "MLOpsPipeline", "PipelineReport",
    "RetrainingDecision", "RetrainingTrigger",
    "BackgroundServer", "ServerSettings", "create_app", "serve", "ServerProcess",
    "Signature", "SignatureError", "TensorSpec",
]
