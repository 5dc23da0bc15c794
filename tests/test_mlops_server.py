"""The inference server over real HTTP on loopback: good, bad and concurrent requests, metrics, A/B."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.compression import quantize_static
from tinytorch.core.mlops import BackgroundServer, MonitorThresholds, ServerSettings, create_app, load_package
from tinytorch.core.mlops import route_request

from .mlops_helpers import CLASSES, make_package, mlp, npy_bytes
from .test_mlops_monitor import assert_exposition_format

httpx = pytest.importorskip("httpx", reason="the server tests need the serve extra (fastapi, uvicorn, httpx)")
pytest.importorskip("fastapi", reason="the server needs the serve extra (fastapi, uvicorn, httpx)")
pytest.importorskip("uvicorn", reason="the server needs the serve extra (fastapi, uvicorn, httpx)")

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One MLP package served with batching and a small body limit, for the whole module."""
    tt.manual_seed(3)
    model = mlp()
    folder = make_package(tmp_path_factory.mktemp("pkg") / "mlp", model,
                          reference={"predictions": np.zeros(500, np.int64)})
    package = load_package(folder)
    settings = ServerSettings(max_batch=8, max_delay_ms=20, max_body_bytes=LIMIT, max_rows=100)
    app = create_app(package, settings, thresholds=MonitorThresholds(prediction_psi=0.25))
    with BackgroundServer(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, package


def expected(package, x):
    return package.predict(x)


def good(client, package, rows=2, seed=0):
    x = np.random.default_rng(seed).normal(size=(rows, 12)).astype(np.float32)
    response = client.post("/predict", json={"inputs": x.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["outputs"], expected(package, x), rtol=1e-6, atol=1e-6)
    assert body["predictions"] == expected(package, x).argmax(axis=1).tolist()
    assert body["labels"] == [CLASSES[i] for i in body["predictions"]]
    probabilities = np.exp(expected(package, x)) / np.exp(expected(package, x)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(body["confidence"], probabilities.max(axis=1), atol=1e-6)
    return body


def test_health_and_metadata(served):
    client, package = served
    assert client.get("/health").json()["status"] == "ok"
    meta = client.get("/metadata").json()
    assert meta["signature"] == package.manifest["signature"] and meta["uuid"] == package.uuid
    assert meta["classes"] == CLASSES and meta["batching"] == {"max_batch": 8, "max_delay_ms": 20}
    assert meta["outputs_are"] == "logits"


def test_json_and_npy_requests(served):
    client, package = served
    body, again = good(client, package, rows=3), good(client, package, rows=1)
    assert body["model"] == "mlp" and body["id"] and again["id"] != body["id"]  # a request without an id gets a new one
    x = np.random.default_rng(5).normal(size=(4, 12)).astype(np.float32)
    response = client.post("/predict", content=npy_bytes(x),
                           headers={"content-type": "application/x-npy", "accept": "application/x-npy",
                                    "x-request-id": "abc"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "abc"
    outputs = np.load(io.BytesIO(response.content), allow_pickle=False)
    np.testing.assert_array_equal(outputs, expected(package, x))
    as_json = client.post("/predict", content=npy_bytes(x), headers={"content-type": "application/x-npy"}).json()
    np.testing.assert_allclose(as_json["outputs"], outputs, rtol=1e-6)


BAD = [
    ("wrong shape", {"json": {"inputs": [[1.0, 2.0]]}}, 422, "inputs", "expected [-1, 12]"),
    ("single example", {"json": {"inputs": [0.5] * 12}}, 422, "inputs", "wrapped in a batch of one"),
    ("ragged rows", {"json": {"inputs": [[0.0] * 12, [0.0] * 11]}}, 422, "inputs", "rows of different lengths"),
    ("strings", {"json": {"inputs": [["a"] * 12]}}, 422, "inputs", "not all numbers"),
    ("nulls", {"json": {"inputs": [[None] * 12]}}, 422, "inputs", "not all numbers"),
    ("NaN", {"content": b'{"inputs": [[NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}',
             "headers": {"content-type": "application/json"}}, 422, "inputs", "NaN or infinite value"),
    ("overflow", {"json": {"inputs": [[1e300] * 12]}}, 422, "inputs", "beyond float32's range"),
    ("empty batch", {"json": {"inputs": []}}, 422, "inputs", "is empty"),
    ("empty body", {"content": b"", "headers": {"content-type": "application/json"}}, 400, "body", "body is empty"),
    ("not JSON", {"content": b"{inputs: [1,", "headers": {"content-type": "application/json"}}, 400, "body", "not valid JSON"),
    ("deep JSON", {"content": b"[" * 50_000, "headers": {"content-type": "application/json"}}, 400, "body", "JSON"),
    ("no inputs", {"json": {"data": [[0.0] * 12]}}, 422, "inputs", "missing"),
    ("unknown field", {"json": {"inputs": [[0.0] * 12], "extra": 1}}, 422, "extra", "unknown field"),
    ("bad labels", {"json": {"inputs": [[0.0] * 12], "labels": ["cat"]}}, 422, "labels", "integer class labels"),
    ("bad id", {"json": {"inputs": [[0.0] * 12], "id": {"a": 1}}}, 422, "id", "string or integer"),
    ("too many rows", {"json": {"inputs": [[0.0] * 12] * 101}}, 413, "inputs", "at most 100 per request"),
    ("npy float64", {"content": npy_bytes(np.zeros((1, 12))), "headers": {"content-type": "application/x-npy"}},
     422, "inputs", "dtype float64; expected float32"),
    ("npy ints", {"content": npy_bytes(np.zeros((1, 12), np.int32)), "headers": {"content-type": "application/x-npy"}},
     422, "inputs", "dtype int32"),
    ("npy garbage", {"content": b"\x93NUMPY garbage", "headers": {"content-type": "application/x-npy"}}, 400, "body",
     "not a valid .npy"),
    ("npy empty", {"content": b"", "headers": {"content-type": "application/x-npy"}}, 400, "body", "body is empty"),
    ("content type", {"content": b"1,2,3", "headers": {"content-type": "text/csv"}}, 415, "Content-Type", "got text/csv"),
    ("declared too large", {"content": b"x" * (LIMIT + 1), "headers": {"content-type": "application/json"}}, 413,
     "body", "the limit is 65,536"),
]


def npy_bytes_object():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize("name, sent, status, field, message", BAD, ids=[b[0] for b in BAD])
def test_each_bad_request_gets_a_4xx_naming_the_field_and_the_server_goes_on(served, name, sent, status, field, message):
    client, package = served
    good(client, package, seed=1)
    response = client.post("/predict", **sent)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and message in body["error"], body
    good(client, package, seed=2)


def test_a_pickled_npy_is_refused_unread(served):
    client, package = served
    response = client.post("/predict", content=npy_bytes_object(), headers={"content-type": "application/x-npy"})
    assert response.status_code == 400 and "pickled arrays are refused" in response.json()["error"]


def test_a_streamed_body_over_the_limit_is_cut_off(served):
    client, package = served

    def chunks():
        for _ in range(20):
            yield b" " * 8192  # 160 KiB, sent without a Content-Length (chunked)

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "more than 65,536 bytes" in response.json()["error"]
    good(client, package)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(served):
    client, package = served
    inputs = [np.random.default_rng(100 + i).normal(size=(1 + i % 3, 12)).astype(np.float32) for i in range(16)]
    results: dict[int, httpx.Response] = {}
    start = threading.Barrier(16)

    def send(i):  # one client, shared by the threads (httpx.Client is thread-safe)
        start.wait()
        results[i] = client.post("/predict", json={"inputs": inputs[i].tolist(), "id": f"c{i}"})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, response in results.items():
        assert response.status_code == 200 and response.json()["id"] == f"c{i}"
        np.testing.assert_allclose(response.json()["outputs"], expected(package, inputs[i]), rtol=1e-6, atol=1e-6)
    batch_sizes = [int(r.headers["x-batch-size"]) for r in results.values()]
    assert max(batch_sizes) > 3 and max(batch_sizes) <= 8 + 2  # batched; a request is never split


def parse_metrics(text):
    values = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_count_what_happened(served):
    client, package = served
    before = parse_metrics(client.get("/metrics").text)
    for seed in range(3):
        good(client, package, rows=2, seed=seed)
    client.post("/predict", json={"inputs": [[1.0]]})
    text = client.get("/metrics").text
    assert_exposition_format(text)
    after = parse_metrics(text)

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    assert delta('tinytorch_requests_total{model="mlp",status="200"}') == 3
    assert delta('tinytorch_requests_total{model="none",status="422"}') == 1
    assert delta('tinytorch_request_errors_total{status="422",field="inputs"}') == 1
    assert delta('tinytorch_request_latency_seconds_count{model="mlp"}') == 3
    assert sum(delta(k) for k in after if k.startswith("tinytorch_predictions_total")) == 6
    assert after['tinytorch_batch_size_count{model="mlp"}'] >= 3
    for name in ("tinytorch_rolling_latency_seconds", "tinytorch_rolling_error_rate", "tinytorch_mean_confidence"):
        assert name in text
    assert after['tinytorch_rolling_latency_seconds{model="mlp",quantile="0.99"}'] > 0


def test_monitor_alerts_and_the_retraining_trigger_reach_the_metrics(served):
    client, package = served
    # the reference predicted class 0 only; this traffic is predicted as whatever the model says
    x = np.random.default_rng(9).normal(size=(100, 12)).astype(np.float32) * 5
    assert client.post("/predict", json={"inputs": x.tolist()}).status_code == 200
    snapshot = client.get("/monitor").json()
    assert snapshot["models"]["mlp"]["prediction_psi"] > 0.25
    assert "prediction_psi" in [a["name"] for a in snapshot["models"]["mlp"]["alerts"]]
    metrics = parse_metrics(client.get("/metrics").text)
    assert metrics['tinytorch_alert{model="mlp",alert="prediction_psi"}'] == 1
    assert metrics["tinytorch_retraining_triggered_total"] >= 1
    assert client.get("/monitor").json()["retraining"][0]["reasons"]
    assert client.get("/ab").status_code == 404


def test_a_failing_model_fails_its_batch_and_the_batcher_goes_on():
    import asyncio

    from tinytorch.core.mlops import MicroBatcher

    def run(x):
        if (x < 0).any():
            raise RuntimeError("model failure")
        return x + 1

    async def scenario():
        batcher = MicroBatcher(run, max_batch=4, max_delay_s=0.01)
        await batcher.start()
        bad = await asyncio.gather(batcher.submit(-np.ones((1, 2))), batcher.submit(np.ones((1, 2))),
                                   return_exceptions=True)
        good_after, info = await batcher.submit(np.zeros((1, 2)))
        await batcher.stop()
        return bad, good_after, info

    bad, good_after, info = asyncio.run(scenario())
    assert all(isinstance(b, RuntimeError) for b in bad)  # both shared the failing batch
    assert good_after.tolist() == [[1.0, 1.0]] and info.batch_rows == 1


@pytest.fixture(scope="module")
def ab_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ab")
    tt.manual_seed(4)
    champion = mlp()
    a = load_package(make_package(folder / "champion", champion))
    calibration = [np.random.default_rng(i).normal(size=(16, 12)).astype(np.float32) for i in range(4)]
    b = load_package(make_package(folder / "challenger", quantize_static(champion, calibration)))  # its int8 copy
    with BackgroundServer(create_app([a, b], ServerSettings(max_batch=16, max_delay_ms=2))) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client, a, b


def test_ab_routes_by_id_and_compares_paired_accuracy(ab_server):
    client, a, b = ab_server
    rng = np.random.default_rng(0)
    labelled = 0
    for i in range(60):
        x = rng.normal(size=(2, 12)).astype(np.float32)
        labels = rng.integers(0, 10, 2)
        response = client.post("/predict", json={"inputs": x.tolist(), "id": f"user-{i}", "labels": labels.tolist()})
        arm = response.json()["model"]
        assert arm == ["champion", "challenger"][route_request(f"user-{i}")]
        np.testing.assert_allclose(response.json()["outputs"], (a if arm == "champion" else b).predict(x), rtol=1e-6,
                                   atol=1e-6)
        labelled += 2
    for _ in range(100):  # the shadow runs finish just after their responses
        report = client.get("/ab").json()
        if report["labelled_examples"] == labelled:
            break
        time.sleep(0.02)
    assert report["labelled_examples"] == labelled
    assert sum(arm["requests"] for arm in report["arms"].values()) == 60
    assert report["arms"]["champion"]["latency_s"]["count"] == report["arms"]["champion"]["requests"]
    paired = report["paired_accuracy"]
    assert paired["n"] == labelled and paired["difference_is"] == "challenger minus champion"
    assert paired["ci"][0] <= paired["difference"] <= paired["ci"][1]
    meta = client.get("/metadata").json()
    assert [arm["name"] for arm in meta["ab"]["arms"]] == ["champion", "challenger"]


def test_ab_arms_must_take_the_same_input(tmp_path):
    a = load_package(make_package(tmp_path / "a"))
    other = load_package(make_package(tmp_path / "b", tt.Sequential(tt.Dense(5, 10)), np.zeros((1, 5), np.float32)))
    with pytest.raises(ValueError, match="must take the same input"):
        create_app([a, other])
