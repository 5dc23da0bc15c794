"""The open-loop load generator and the tito serve / tito loadtest commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinytorch.cli import main
from tinytorch.core.mlops import (BackgroundServer, ServerProcess, ServerSettings, arrival_times, create_app,
                                  load_package, load_test)

from .mlops_helpers import make_package

pytest.importorskip("fastapi", reason="the server needs the serve extra (fastapi, uvicorn, httpx)")
pytest.importorskip("uvicorn", reason="the server needs the serve extra (fastapi, uvicorn, httpx)")


def test_poisson_arrivals_are_exponential_and_constant_arrivals_are_even():
    stats = pytest.importorskip("scipy.stats", reason="the KS test comes from scipy (the stats extra)")
    times = arrival_times(rate=200.0, duration_s=50.0, arrivals="poisson", seed=1)
    gaps = np.diff(times)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 200)).pvalue > 0.01  # 10,000 draws
    assert abs(len(times) / 50.0 - 200) / 200 < 0.03 and times.max() < 50.0
    assert not np.array_equal(arrival_times(200.0, 5.0, seed=2), arrival_times(200.0, 5.0, seed=3))
    assert np.array_equal(arrival_times(200.0, 5.0, seed=2), arrival_times(200.0, 5.0, seed=2))
    assert np.allclose(np.diff(arrival_times(50.0, 2.0, "constant")), 0.02) and len(arrival_times(50.0, 2.0, "constant")) == 100
    with pytest.raises(ValueError, match="poisson"):
        arrival_times(1.0, 1.0, "bursty")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = make_package(tmp_path_factory.mktemp("load") / "mlp")
    with BackgroundServer(create_app(load_package(folder), ServerSettings(max_batch=4, max_delay_ms=2))) as url:
        yield url, folder


def test_load_test_measures_every_scheduled_request(server):
    url, _ = server
    result = load_test(url, rate=80, duration_s=1.0, arrivals="constant", warmup_s=0.2)
    assert result.scheduled == 80 and result.completed == 80 and result.failed == 0
    assert result.status_counts == {"200": 80}
    lat = result.latency_s
    assert lat["count"] == 80 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert 40 < result.achieved_rate <= 81  # below the offered rate only by the last requests' latency
    assert result.batch_sizes["max"] >= 1 and "achieved" in result.describe()
    json.dumps(result.to_json())


def test_load_test_counts_rejected_requests_as_failures(server):
    url, _ = server
    result = load_test(url + "/predict", rate=20, duration_s=0.5, arrivals="constant", warmup_s=0,
                       body=b'{"inputs": [[1]]}', content_type="application/json")
    assert result.completed == 0 and result.failed == 10 and result.status_counts == {"422": 10}
    assert "expected [-1, 12]" in result.errors[0]


def test_load_test_json_body_and_batches(server):
    url, _ = server
    result = load_test(url, rate=30, duration_s=0.5, warmup_s=0, batch=3, body_format="json", seed=4)
    assert result.failed == 0 and result.completed == result.scheduled


def test_tito_loadtest_prints_and_records(server, tmp_path, capsys):
    url, _ = server
    record = tmp_path / "load.json"
    code = main(["loadtest", url, "--rate=40", "--duration=0.5", "--warmup=0", "--arrivals=constant", f"--json={record}"])
    out = capsys.readouterr().out
    assert code == 0 and "20 of 20 succeeded" in " ".join(out.split()) and "p99.9" in out
    assert json.loads(record.read_text())["completed"] == 20
    assert main(["loadtest", url, "--rate=-1"]) == 2
    assert main(["loadtest", "http://127.0.0.1:9", "--duration=0.2", "--warmup=0"]) == 1  # nothing listens there


def test_tito_serve_runs_a_real_server_process(server):
    _, folder = server
    with ServerProcess([folder], max_batch=1, max_delay_ms=3) as process:
        assert process.url.startswith("http://127.0.0.1:") and not process.url.endswith(":0")
        assert process.get("/metadata")["batching"] == {"max_batch": 1, "max_delay_ms": 3.0}
        before = process.cpu_seconds()
        result = load_test(process.url, rate=40, duration_s=0.5, arrivals="constant", warmup_s=0)
        assert result.completed == 20
        if before is not None:  # Linux: the child's CPU time, read from /proc, grew while it served
            assert process.cpu_seconds() > before
        running = process.process
    assert running.poll() is not None  # stopped on leaving
    assert "max batch 1" in "".join(process.output)


def test_tito_serve_refuses_bad_arguments_and_packages(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--max-batch=0"]) == 2
    assert "--max-batch must be an integer of at least 1" in capsys.readouterr().out
    assert main(["serve", str(tmp_path), "--split=2", "--ab", str(tmp_path)]) == 2
    assert main(["serve", str(tmp_path)]) == 1
    assert "has no manifest.json" in capsys.readouterr().out


def test_load_test_does_not_reuse_a_connection_the_server_has_closed():
    # A server closes a keep-alive connection it thinks idle (uvicorn: after 5 s); a request sent on it
    # would fail although the server is healthy. This one closes every connection 50 ms after answering.
    import asyncio

    from tinytorch.core.mlops.loadtest import _run

    async def scenario() -> list:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            results, _, _ = await _run(f"http://127.0.0.1:{port}/predict", np.array([0.0, 0.2, 0.4]), b"{}",
                                       "application/json", 5.0, 4, "t-")
        return results

    results = asyncio.run(scenario())
    assert [status for _, _, status, _, _ in results] == [200, 200, 200], [error for *_, error in results]
