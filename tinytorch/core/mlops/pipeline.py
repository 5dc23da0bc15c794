"""The whole loop in one object: train, package, serve, monitor, and retrain when the data moves.

:class:`MLOpsPipeline` holds the pieces of this package together the way a deployment does:

1. :meth:`~MLOpsPipeline.deploy` trains a fresh model (your ``train`` function), packages it as
   version ``v1`` (with reference predictions and input features from held-out data), and serves
   it over HTTP on loopback.
2. :meth:`~MLOpsPipeline.observe` sends production traffic to the server as real requests,
   compares the traffic's features with the reference (:class:`~.drift.DriftDetector`), reads
   the server's monitor alerts, and asks the :class:`~.retraining.RetrainingTrigger` whether to
   retrain. When it fires and retraining data is given, the pipeline trains ``v2``, packages it,
   and redeploys it on the same address.

>>> import numpy as np, tinytorch as tt, tempfile
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(600, 4)).astype(np.float32)
>>> y = (x[:, 0] > 0).astype(np.int64)
>>> def train(model, data):
...     inputs, labels = data
...     trainer = tt.Trainer(model, tt.CrossEntropyLoss(), tt.Adam(model.parameters(), lr=0.05))
...     trainer.fit(tt.DataLoader(inputs, labels, batch_size=64, shuffle=True), epochs=3, verbose=0)
...     return {"train_accuracy": float((model(tt.tensor(inputs)).argmax(axis=1).numpy() == labels).mean())}
>>> pipeline = MLOpsPipeline(lambda: tt.Sequential(tt.Dense(4, 16), tt.ReLU(), tt.Dense(16, 2)), train,
...                          tempfile.mkdtemp(), example_input=x[:1], classes=["neg", "pos"])
>>> url = pipeline.deploy((x[:400], y[:400]), reference_inputs=x[400:])
>>> pipeline.observe(rng.normal(size=(200, 4)).astype(np.float32)).retrained_version   # same data: nothing to do
>>> moved = rng.normal(size=(200, 4)).astype(np.float32) + 2.0                          # the world moved
>>> report = pipeline.observe(moved, retrain_with=(moved, (moved[:, 0] > 2).astype(np.int64)))
>>> report.drift.dataset_drifted, report.retrained_version
(True, 'v2')
>>> pipeline.stop()
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..autograd import no_grad
from ..module import Module
from ..tensor import Tensor
from .drift import DriftDetector, DriftReport
from .image_features import image_statistics
from .monitor import Alert, MonitorThresholds
from .package import ModelPackage, load_package, package
from .retraining import RetrainingDecision, RetrainingTrigger
from .server import BackgroundServer, ServerSettings, create_app

__all__ = ["MLOpsPipeline", "PipelineReport", "default_features"]


def default_features(inputs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """What drift detection compares: the columns of tabular (N, F) input, summary statistics of images."""
    if inputs.ndim == 2:
        return [f"x{i}" for i in range(inputs.shape[1])], inputs
    if inputs.ndim == 4:
        return image_statistics(inputs)
    raise ValueError(f"MLOpsPipeline: no default features for inputs of shape {inputs.shape}; pass featurize=")


@dataclass
class PipelineReport:
    """What :meth:`MLOpsPipeline.observe` found: the drift report, the server's alerts, and any retraining."""

    drift: DriftReport
    alerts: list[Alert]
    decision: RetrainingDecision | None
    retrained_version: str | None = None
    served: int = 0
    errors: list[str] = field(default_factory=list)


class MLOpsPipeline:
    """Train -> package -> serve -> monitor -> retrain, driven by one object.

    Parameters
    ----------
    build_model : callable
        Returns a fresh, untrained model.
    train : callable
        ``train(model, data) -> metrics dict``: trains ``model`` in place on ``data`` (whatever your
        function takes, e.g. ``(inputs, labels)``) and returns what it measured.
    root : path
        Where the package versions go (``root/v1``, ``root/v2``, ...).
    example_input : array
        A batch like the production input (fixes the signature).
    classes : list of str, optional
    featurize : callable, optional
        ``featurize(inputs) -> (names, table)``: what drift detection compares (default:
        :func:`default_features`).
    settings : ServerSettings
    thresholds : MonitorThresholds, optional
    trigger : RetrainingTrigger, optional
        Default: fires on drifted inputs or predictions, with no cooldown (each observation is a
        deliberate check).
    """

    def __init__(self, build_model: Callable[[], Module], train: Callable[[Module, Any], dict], root: str | os.PathLike,
                 *, example_input: Any, classes: list[str] | None = None,
                 featurize: Callable[[np.ndarray], tuple[list[str], np.ndarray]] = default_features,
                 settings: ServerSettings = ServerSettings(), thresholds: MonitorThresholds | None = None,
                 trigger: RetrainingTrigger | None = None):
        self.build_model, self.train_fn, self.root = build_model, train, Path(root)
        self.example_input = np.asarray(example_input)
        self.classes, self.featurize, self.settings, self.thresholds = classes, featurize, settings, thresholds
        self.trigger = trigger or RetrainingTrigger(cooldown_s=0.0)
        self.versions: list[Path] = []
        self.current: ModelPackage | None = None
        self.detector: DriftDetector | None = None
        self.server: BackgroundServer | None = None
        self.url: str | None = None

    # -- the steps --------------------------------------------------------------------------------
    def train(self, data: Any) -> tuple[Module, dict]:
        """A fresh model trained on ``data``, and the metrics ``train`` returned."""
        model = self.build_model()
        metrics = self.train_fn(model, data) or {}
        model.eval()
        return model, dict(metrics)

    def package(self, model: Module, metrics: dict, reference_inputs: Any) -> Path:
        """Package ``model`` as the next version, with reference predictions and features from ``reference_inputs``."""
        reference_inputs = np.asarray(reference_inputs, dtype=self.example_input.dtype)
        with no_grad():
            outputs = model(Tensor(reference_inputs, dtype=reference_inputs.dtype)).numpy()
        names, features = self.featurize(reference_inputs)
        path = self.root / f"v{len(self.versions) + 1}"
        package(model, path, signature=self.example_input, classes=self.classes, metrics=metrics,
                reference={"predictions": outputs.argmax(axis=1), "features": features.astype(np.float64)},
                metadata={"pipeline_version": path.name, "feature_names": names}, overwrite=True)
        self.versions.append(path)
        return path

    def serve(self, path: Path) -> str:
        """(Re)start the server on ``path``'s package; the address stays the same across versions."""
        self.current = load_package(path)
        reference = self.current.reference["features"]
        self.detector = DriftDetector(reference, feature_names=self.current.manifest["metadata"]["feature_names"])
        port = self.server.port if self.server is not None else 0
        self.stop()
        self.server = BackgroundServer(create_app(self.current, self.settings, thresholds=self.thresholds), port=port)
        self.url = self.server.start()
        return self.url

    def deploy(self, train_data: Any, reference_inputs: Any) -> str:
        """Train, package and serve a new version; returns the server's URL."""
        model, metrics = self.train(train_data)
        return self.serve(self.package(model, metrics, reference_inputs))

    def observe(self, inputs: Any, labels: Any = None, retrain_with: Any = None, batch_size: int = 64) -> PipelineReport:
        """Send ``inputs`` to the server as requests, check drift and alerts, and retrain if the trigger fires.

        Parameters
        ----------
        inputs : array
            A batch of production traffic (sent in requests of ``batch_size``).
        labels : array of int, optional
            Their true classes, if known (labelled traffic: the monitor tracks accuracy).
        retrain_with : optional
            Training data for a new version, used only if the trigger fires.
        """
        if self.url is None or self.detector is None:
            raise RuntimeError("MLOpsPipeline.observe: deploy() first")
        inputs = np.asarray(inputs, dtype=self.example_input.dtype)
        served, errors = 0, []
        for start in range(0, len(inputs), batch_size):
            payload: dict[str, Any] = {"inputs": inputs[start:start + batch_size].tolist()}
            if labels is not None:
                payload["labels"] = np.asarray(labels[start:start + batch_size]).tolist()
            try:
                self._post("/predict", payload)
                served += 1
            except urllib.error.HTTPError as error:
                errors.append(f"{error.code}: {error.read()[:200].decode('utf-8', 'replace')}")
        drift = self.detector.detect(self.featurize(inputs)[1])
        alerts = [a for arm in self.server.app.state.arms for a in arm.monitor.alerts()]
        decision = self.trigger.check(alerts, drift)
        report = PipelineReport(drift, alerts, decision, served=served, errors=errors)
        if decision is not None and retrain_with is not None:
            self.deploy(retrain_with, inputs)
            report.retrained_version = self.versions[-1].name
        return report

    def stop(self) -> None:
        """Stop the server (the packages stay on disk)."""
        if self.server is not None:
            self.server.stop()
        self.url = None

    def _post(self, path: str, payload: dict) -> dict:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
