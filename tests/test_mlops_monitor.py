"""The rolling monitor, its alerts, the retraining trigger, and the Prometheus metrics they feed."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinytorch.core.mlops import Alert, ModelMonitor, MonitorThresholds, RetrainingTrigger, summarize
from tinytorch.core.mlops.drift import DriftReport, FeatureDrift
from tinytorch.core.mlops.metrics import Counter, Gauge, Histogram, MetricsRegistry, Summary

pytest.importorskip("scipy.stats", reason="the monitor's drift statistics come from scipy (the stats extra)")

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
                    r'(-?[0-9.e+-]+|NaN|\+Inf|-Inf)$')


def assert_exposition_format(text: str) -> None:
    """Every line is a HELP/TYPE comment or a sample of the Prometheus text format (0.0.4)."""
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or SAMPLE.match(line), line


def test_summaries_use_loadgens_percentiles():
    summary = summarize(range(1, 101))
    assert (summary["p50"], summary["p90"], summary["p99"], summary["p99.9"]) == (51, 91, 100, 100)
    assert summary["count"] == 100 and summary["mean"] == 50.5 and summary["max"] == 100
    assert summarize([3.0])["p99.9"] == 3.0 and summarize([]) == {"count": 0}


def test_monitor_statistics_over_a_rolling_window():
    monitor = ModelMonitor(window=100, min_samples=10)
    for i in range(150):
        monitor.record_request(i / 1000, failed=i % 10 == 0)
    assert monitor.latency_summary()["count"] == 100 and monitor.latency_summary()["p50"] == 0.1
    assert monitor.error_rate() == 0.1 and monitor.requests_seen == 150
    monitor.record_predictions([1, 2, 2], confidences=[0.9, 0.6, 0.3], labels=[1, 2, 0])
    assert monitor.mean_confidence() == pytest.approx(0.6) and monitor.accuracy() == pytest.approx(2 / 3)
    assert monitor.prediction_psi() is None  # no reference
    assert monitor.class_shares().tolist() == pytest.approx([0, 1 / 3, 2 / 3])


def test_alerts_fire_only_past_thresholds_and_with_enough_samples():
    rng = np.random.default_rng(0)
    thresholds = MonitorThresholds(latency_p99_s=0.05, error_rate=0.2, min_confidence=0.5, min_accuracy=0.8)
    monitor = ModelMonitor(rng.integers(0, 4, 1000), num_classes=4, min_samples=50, thresholds=thresholds)
    monitor.record_predictions(np.zeros(10, int), confidences=np.full(10, 0.1), labels=np.ones(10, int))
    assert monitor.alerts() == []  # 10 samples are not enough to say anything
    for _ in range(60):
        monitor.record_request(0.2, failed=True)
    monitor.record_predictions(np.zeros(60, int), confidences=np.full(60, 0.1), labels=np.ones(60, int))
    names = [a.name for a in monitor.alerts()]
    assert names == ["latency_p99", "error_rate", "prediction_psi", "low_confidence", "accuracy"]
    assert all(a.value is not None and a.message for a in monitor.alerts())
    assert monitor.snapshot()["alerts"][0]["name"] == "latency_p99"


def test_retraining_trigger_watches_model_alerts_with_a_cooldown():
    now = [0.0]
    fired = []
    trigger = RetrainingTrigger(cooldown_s=10, callback=fired.append, clock=lambda: now[0])
    assert trigger.check([Alert("error_rate", 0.5, 0.05, "errors")]) is None
    drift = DriftReport((FeatureDrift("a", "ks", 0.001, 0.05, True), FeatureDrift("b", "ks", 0.5, 0.05, False)), 0.5, 100, 100)
    decision = trigger.check([], drift)
    assert decision is not None and decision.alerts[0].name == "input_drift" and "a" in decision.reasons[0]
    now[0] = 5.0
    assert trigger.check([Alert("accuracy", 0.5, 0.8, "worse")]) is None
    now[0] = 10.5
    assert trigger.check([Alert("accuracy", 0.5, 0.8, "worse")]).reasons == ["worse"]
    assert len(fired) == 2 and len(trigger.history) == 2


def test_metric_types_render_the_exposition_format():
    registry = MetricsRegistry()
    c = registry.add(Counter("t_requests_total", "Requests.", ["status"]))
    g = registry.add(Gauge("t_psi", "PSI."))
    h = registry.add(Histogram("t_latency_seconds", "Latency.", [0.01, 0.1], ["model"]))
    s = registry.add(Summary("t_rolling_seconds", "Rolling.", ["model"]))
    c.inc(status='we"ird\\')
    g.set(float("nan"))
    for value in (0.005, 0.05, 0.5):
        h.observe(value, model="m")
    s.set({0.5: 0.01, 0.99: 0.2}, 10, 0.3, model="m")
    text = registry.render()
    assert_exposition_format(text)
    assert 't_requests_total{status="we\\"ird\\\\"} 1' in text and "t_psi NaN" in text
    assert 't_latency_seconds_bucket{model="m",le="0.01"} 1' in text
    assert 't_latency_seconds_bucket{model="m",le="0.1"} 2' in text
    assert 't_latency_seconds_bucket{model="m",le="+Inf"} 3' in text and 't_latency_seconds_count{model="m"} 3' in text
    assert 't_rolling_seconds{model="m",quantile="0.99"} 0.2' in text
    edges = Histogram("t_edges", "Bounds are inclusive; NaN is under no bound.", [0.01, 0.1])
    for value in (0.01, 0.1, float("nan")):
        edges.observe(value)
    assert edges.counts[()] == [1, 1, 1]
    with pytest.raises(ValueError, match="cannot decrease"):
        c.inc(-1, status="x")
    with pytest.raises(ValueError, match="labels"):
        c.inc(model="x")
    with pytest.raises(ValueError, match="already registered"):
        registry.add(Gauge("t_psi", "again"))
