"""The inference server: an ASGI app on uvicorn serving one package, or two side by side (A/B).

Endpoints:

- ``GET /health``: ``{"status": "ok", ...}`` once the models are loaded.
- ``GET /metadata``: the input/output signature from the manifest, the classes, the recorded
  metrics, the package's uuid and versions, and the batching settings.
- ``POST /predict``: a batch as JSON (``{"inputs": [...], "id": ..., "labels": [...]}``) or as a
  ``.npy`` body (see :mod:`.request_parsing`); answers JSON with the outputs, the predicted
  classes and their confidence, or ``.npy`` outputs when the request says
  ``Accept: application/x-npy``. A bad request gets a 4xx naming the field; the server goes on.
- ``GET /metrics``: Prometheus text: request counts by status, latency and batch-size
  histograms, predictions per class, and the monitor's rolling percentiles, error rate,
  prediction PSI, confidence, alerts and retraining triggers.
- ``GET /monitor``: the monitor's snapshot as JSON; ``GET /ab``: the A/B report (two packages).

``/predict`` is a bare ASGI handler placed in front of a FastAPI app that serves the other endpoints
(:mod:`.asgi_predict`: the framework's middleware and router cost a fifth of a request's time).
Requests are micro-batched (:class:`~.batching.MicroBatcher`, adaptive: a request on an idle
server runs at once; concurrent ones share batches); with ``max_batch=1`` every request runs alone. :func:`serve` runs the app in the foreground (``tito serve``); :class:`BackgroundServer`
runs it in a thread on a free port (tests, lessons, the pipeline).

Needs the ``serve`` extra: ``pip install "tinytorch[serve]"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import numpy as np

from .ab import ABRecorder, route_request
from .asgi_predict import Answer, PredictFirst, error_answer
from .batching import MicroBatcher
from .extras import require
from .metrics import CONTENT_TYPE, LATENCY_BUCKETS, Counter, Gauge, Histogram, MetricsRegistry, Summary
from .monitor import ModelMonitor, MonitorThresholds
from .package import ModelPackage
from .request_parsing import JSON_TYPE, NPY_TYPE, RequestError, parse_predict_body
from .retraining import RetrainingTrigger

__all__ = ["create_app", "serve", "BackgroundServer", "ServerSettings"]

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TRIGGER_CHECK_S = 1.0  # how often, at most, requests re-evaluate the retraining trigger


@dataclass(frozen=True)
class ServerSettings:
    """How the server batches and what it accepts."""

    max_batch: int = 32
    max_delay_ms: float = 5.0
    max_body_bytes: int = 16 * 2**20
    max_rows: int = 4096
    monitor_window: int = 1000


def _output_kind(package: ModelPackage) -> str:
    """Whether the model ends in logits, probabilities or log-probabilities (from its last layer)."""
    config = package.manifest["architecture"]
    while config.get("type") == "Sequential" and config.get("layers"):
        config = config["layers"][-1]
    return {"Softmax": "probabilities", "LogSoftmax": "log_probabilities"}.get(config.get("type"), "logits")


def _probabilities(outputs: np.ndarray, kind: str) -> np.ndarray:
    if kind == "probabilities":
        return outputs
    if kind == "log_probabilities":
        return np.exp(outputs)
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class _Arm:
    """One served model: its package, batcher and monitor."""

    def __init__(self, name: str, package: ModelPackage, settings: ServerSettings, metrics: "_ServerMetrics",
                 thresholds: MonitorThresholds | None):
        self.name, self.package = name, package
        self.kind = _output_kind(package)
        self.classifier = len(package.signature.outputs) > 0 and len(package.signature.outputs[0].shape) == 2
        self.batcher = MicroBatcher(self.run, settings.max_batch, settings.max_delay_ms / 1000,
                                    on_batch=lambda rows, s: metrics.batch(name, rows, s))
        classes = package.classes
        self.monitor = ModelMonitor(package.reference.get("predictions"), len(classes) if classes else None,
                                    window=settings.monitor_window, thresholds=thresholds)

    def describe(self) -> dict:
        m = self.package.manifest
        return {"name": self.name, "uuid": m["uuid"], "created_utc": m.get("created_utc"), "signature": m["signature"],
                "classes": m.get("classes"), "metrics": m.get("metrics"), "framework": m.get("framework"),
                "versions": m.get("versions"), "parameters": m.get("parameters"), "outputs_are": self.kind}

    def summarize(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(predicted class, confidence) per row of a classifier's outputs, else None."""
        if not self.classifier or outputs.ndim != 2:
            return None
        probabilities = _probabilities(outputs.astype(np.float64), self.kind)
        return probabilities.argmax(axis=1), probabilities.max(axis=1)

    def run(self, inputs: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model on a batch, in the batcher's worker thread: the outputs, and for a classifier each row's class and confidence.

        The summary is computed here once per batch, off the event loop, which would otherwise
        compute it once per request while other requests wait to be parsed.
        """
        outputs = self.package.predict_unchecked(inputs)
        summary = self.summarize(outputs)
        return outputs if summary is None else (outputs, *summary)

    @staticmethod
    def split(result: np.ndarray | tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """A request's share of :meth:`run`'s result as (outputs, (class, confidence) or None)."""
        return (result[0], result[1:]) if isinstance(result, tuple) else (result, None)


class _ServerMetrics:
    """The Prometheus metrics of the server; the monitor's are refreshed at every scrape."""

    def __init__(self) -> None:
        r = self.registry = MetricsRegistry()
        self.requests = r.add(Counter("tinytorch_requests_total", "Requests answered, by model and HTTP status.",
                                      ["model", "status"]))
        self.errors = r.add(Counter("tinytorch_request_errors_total", "Rejected or failed requests, by the field at fault.",
                                    ["status", "field"]))
        self.latency = r.add(Histogram("tinytorch_request_latency_seconds", "Time from request to response.",
                                       LATENCY_BUCKETS, ["model"]))
        self.batch_rows = r.add(Histogram("tinytorch_batch_size", "Examples per model call.", BATCH_BUCKETS, ["model"]))
        self.compute = r.add(Histogram("tinytorch_model_seconds", "Time of one model call.", LATENCY_BUCKETS, ["model"]))
        self.predictions = r.add(Counter("tinytorch_predictions_total", "Predicted classes.", ["model", "class"]))
        self.rolling = r.add(Summary("tinytorch_rolling_latency_seconds",
                                     "Latency over the monitor's window of recent requests.", ["model"]))
        self.error_rate = r.add(Gauge("tinytorch_rolling_error_rate", "Share of recent requests that failed.", ["model"]))
        self.psi = r.add(Gauge("tinytorch_prediction_psi",
                               "Population stability index of recent predicted classes against the reference.", ["model"]))
        self.confidence = r.add(Gauge("tinytorch_mean_confidence", "Mean top-class probability of recent predictions.",
                                      ["model"]))
        self.accuracy = r.add(Gauge("tinytorch_rolling_accuracy", "Accuracy on recent labelled requests.", ["model"]))
        self.alerts = r.add(Gauge("tinytorch_alert", "1 while the monitor's alert is raised.", ["model", "alert"]))
        self.retraining = r.add(Counter("tinytorch_retraining_triggered_total", "Times the retraining trigger fired."))

    def batch(self, model: str, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows, model=model)
        self.compute.observe(seconds, model=model)

    def refresh(self, arms: Sequence[_Arm]) -> None:
        for arm in arms:
            m, name = arm.monitor, arm.name
            latency = m.latency_summary()
            if latency["count"]:
                self.rolling.set({0.5: latency["p50"], 0.9: latency["p90"], 0.99: latency["p99"]},
                                 latency["count"], latency["mean"] * latency["count"], model=name)
            for gauge, value in ((self.error_rate, m.error_rate()), (self.psi, m.prediction_psi()),
                                 (self.confidence, m.mean_confidence()), (self.accuracy, m.accuracy())):
                if value is not None:
                    gauge.set(value, model=name)
            raised = {a.name for a in m.alerts()}
            for alert in raised | {k[1] for k in self.alerts.values if k[0] == name}:
                self.alerts.set(1 if alert in raised else 0, model=name, alert=alert)


def create_app(packages: ModelPackage | Sequence[ModelPackage], settings: ServerSettings = ServerSettings(), *,
               weights: Sequence[float] | None = None, salt: str = "", trigger: RetrainingTrigger | None = None,
               thresholds: MonitorThresholds | None = None) -> Any:
    """The ASGI app serving ``packages`` (one, or two for an A/B test): FastAPI, with ``/predict`` ahead of it.

    Parameters
    ----------
    packages : ModelPackage or a sequence of two
        Loaded packages (:func:`~.package.load_package`). Two packages must take the same input.
    settings : ServerSettings
        Batching (``max_batch``, ``max_delay_ms``) and limits.
    weights : sequence of float, optional
        Traffic shares of the arms (default equal); requests are routed by
        :func:`~.ab.route_request` on their id, and requests without an id get a new one (unique, so the split holds).
    salt : str
        The A/B experiment's salt.
    trigger : RetrainingTrigger, optional
        Checked against the monitors' alerts (at most once a second, and at every scrape).
    thresholds : MonitorThresholds, optional
        The monitors' alert thresholds.
    """
    fastapi = require("fastapi", "the inference server")
    responses = require("fastapi.responses", "the inference server")
    packages = [packages] if isinstance(packages, ModelPackage) else list(packages)
    if not 1 <= len(packages) <= 2:
        raise ValueError(f"create_app: serve one package, or two for an A/B test; got {len(packages)}")
    spec = packages[0].signature.input
    if any(p.signature.input != spec for p in packages[1:]):
        raise ValueError(f"create_app: A/B arms must take the same input; got "
                         f"{[p.signature.input.describe() for p in packages]}")
    metrics = _ServerMetrics()
    names = [p.name for p in packages] if len({p.name for p in packages}) == len(packages) else ["a", "b"][: len(packages)]
    arms = [_Arm(n, p, settings, metrics, thresholds) for n, p in zip(names, packages)]
    weights = tuple(float(w) for w in (weights or [1.0] * len(arms)))
    if len(weights) != len(arms):
        raise ValueError(f"create_app: {len(weights)} weights for {len(arms)} models")
    recorder = ABRecorder(tuple(names), weights)
    trigger = trigger or RetrainingTrigger()
    state = {"last_trigger_check": 0.0, "started": time.time(), "shadow_tasks": set()}
    # ids for requests that bring none: unique across servers (the random prefix) and cheap (a uuid4 each costs a
    # tenth of the loop's time per request)
    id_prefix, request_count = uuid.uuid4().hex[:16], itertools.count(1)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        for arm in arms:
            await arm.batcher.start()
        try:
            yield
        finally:
            for arm in arms:
                await arm.batcher.stop()

    app = fastapi.FastAPI(title="TinyTorch inference server", lifespan=lifespan)
    app.state.arms, app.state.recorder, app.state.trigger, app.state.metrics = arms, recorder, trigger, metrics

    def check_trigger(force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - state["last_trigger_check"] < TRIGGER_CHECK_S:
            return
        state["last_trigger_check"] = now
        for arm in arms:
            if trigger.check(arm.monitor.alerts()) is not None:
                metrics.retraining.inc()

    def error(bad: RequestError) -> Answer:
        metrics.errors.inc(status=str(bad.status), field=bad.field)
        return error_answer(bad)

    def error_response(bad: RequestError) -> Any:
        status, content, media_type, _ = error(bad)
        return responses.Response(content, status_code=status, media_type=media_type)

    async def shadow(arm: _Arm, other: _Arm, inputs: np.ndarray, labels: np.ndarray, routed_correct: np.ndarray) -> None:
        try:
            result, _ = await other.batcher.submit(inputs)
        except Exception:  # the shadow run is best effort: the client already has its answer
            return
        summary = other.split(result)[1]
        if summary is not None:
            recorder.record_labelled({arm.name: routed_correct, other.name: summary[0] == labels})

    # Plain routes (the handler reads the Request itself): no per-request parameter parsing.
    async def health(request: Any) -> Any:
        return responses.JSONResponse({"status": "ok", "models": names, "uptime_s": round(time.time() - state["started"], 3)})

    async def metadata(request: Any) -> Any:
        described = [arm.describe() for arm in arms]
        out = {**described[0], "batching": {"max_batch": settings.max_batch, "max_delay_ms": settings.max_delay_ms},
               "limits": {"max_body_bytes": settings.max_body_bytes, "max_rows": settings.max_rows},
               "request_formats": [JSON_TYPE, NPY_TYPE]}
        if len(arms) > 1:
            out["ab"] = {"arms": described, "weights": list(weights), "salt": salt}
        return responses.JSONResponse(out)

    async def predict(headers: dict[str, str], read: Callable[[], Awaitable[bytes]]) -> Answer:
        started = time.perf_counter()
        arm = None
        try:
            body = await read()
            parsed = parse_predict_body(body, headers.get("content-type", ""), spec, headers.get("x-request-id"),
                                        settings.max_rows)
            request_id = parsed.request_id or f"{id_prefix}-{next(request_count)}"
            arm = arms[route_request(request_id, weights, salt)] if len(arms) > 1 else arms[0]
            result, info = await arm.batcher.submit(parsed.inputs)
            outputs, summary = arm.split(result)
            extra = {"X-Request-ID": request_id, "X-Model": arm.name, "X-Batch-Size": str(info.batch_rows)}
            if NPY_TYPE in headers.get("accept", ""):
                buffer = io.BytesIO()
                np.save(buffer, outputs, allow_pickle=False)
                answer = (200, buffer.getvalue(), NPY_TYPE, extra)
            else:
                payload: dict[str, Any] = {"id": request_id, "model": arm.name, "model_uuid": arm.package.uuid,
                                           "outputs": outputs.tolist()}
                if summary is not None:
                    payload["predictions"] = summary[0].tolist()
                    payload["confidence"] = [round(c, 6) for c in summary[1].tolist()]
                    if arm.package.classes:
                        payload["labels"] = [arm.package.classes[i] for i in summary[0]]
                answer = (200, json.dumps(payload).encode(), JSON_TYPE, extra)
            if summary is not None:
                correct = None if parsed.labels is None else summary[0] == parsed.labels
                arm.monitor.record_predictions(summary[0], summary[1], parsed.labels)
                for c in summary[0]:
                    metrics.predictions.inc(model=arm.name, **{"class": str(arm.package.classes[c]) if arm.package.classes else str(c)})
                if correct is not None and len(arms) == 2:
                    other = arms[1] if arm is arms[0] else arms[0]
                    task = asyncio.get_running_loop().create_task(shadow(arm, other, parsed.inputs, parsed.labels, correct))
                    state["shadow_tasks"].add(task)
                    task.add_done_callback(state["shadow_tasks"].discard)
        except RequestError as bad:
            answer = error(bad)
        except Exception as fault:  # a fault of ours, not the client's: say so, and keep serving
            metrics.errors.inc(status="500", field="server")
            answer = (500, json.dumps({"error": f"internal error: {type(fault).__name__}: {fault}", "field": "server",
                                       "status": 500}).encode(), JSON_TYPE, {})
        status = answer[0]
        latency = time.perf_counter() - started
        model = arm.name if arm is not None else "none"
        metrics.requests.inc(model=model, status=str(status))
        metrics.latency.observe(latency, model=model)
        if arm is not None:
            arm.monitor.record_request(latency, failed=status >= 400)
            recorder.record_request(arm.name, latency)
        check_trigger()
        return answer

    async def prometheus(request: Any) -> Any:
        check_trigger(force=True)
        metrics.refresh(arms)
        return responses.Response(metrics.registry.render(), media_type=CONTENT_TYPE)

    async def monitor(request: Any) -> Any:
        return responses.JSONResponse({"models": {arm.name: arm.monitor.snapshot() for arm in arms},
                                       "retraining": [{"at": d.at, "reasons": d.reasons} for d in trigger.history]})

    async def ab(request: Any) -> Any:
        if len(arms) < 2:
            return error_response(RequestError(404, "path", "this server runs one model; /ab needs two (tito serve A --ab B)"))
        return responses.JSONResponse(recorder.report())

    for path, endpoint, method in (("/health", health, "GET"), ("/metadata", metadata, "GET"),
                                   ("/metrics", prometheus, "GET"), ("/monitor", monitor, "GET"), ("/ab", ab, "GET")):
        app.add_route(path, endpoint, methods=[method])
    return PredictFirst(app, predict, settings.max_body_bytes)


def _bound_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket on (host, port); port 0 lets the kernel pick a free one, with no race."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve(paths: Sequence[str], host: str = "127.0.0.1", port: int = 8000, settings: ServerSettings = ServerSettings(),
          weights: Sequence[float] | None = None, log_level: str = "warning",
          on_ready: Callable[[str], None] | None = None) -> None:
    """Load the packages at ``paths`` and serve them until interrupted (what ``tito serve`` runs).

    ``port=0`` picks a free port; ``on_ready`` is called with the real address once the server
    accepts requests.
    """
    from .package import load_package

    uvicorn = require("uvicorn", "tito serve")
    app = create_app([load_package(p) for p in paths], settings, weights=weights)
    sock = _bound_socket(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
    if on_ready is not None:
        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.01)
            if server.started:
                on_ready(url)
        threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


class BackgroundServer:
    """Run an app on loopback in a background thread, on a free port; a context manager that always stops it.

    ``with BackgroundServer(create_app(load_package(path))) as url:`` gives the base URL
    (``http://127.0.0.1:<port>``) once the server accepts requests, and stops it on leaving.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 30.0):
        self.app, self.host, self.port, self.timeout = app, host, port, startup_timeout_s
        self.server: Any = None
        self.thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        uvicorn = require("uvicorn", "BackgroundServer")
        sock = _bound_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name=f"tinytorch-server-{self.port}")
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"BackgroundServer: the server did not start on {self.host}:{self.port}")
            time.sleep(0.005)
        self.url = f"http://{self.host}:{self.port}"
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=self.timeout)
        self.server = self.thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
