"""MLOpsPipeline: train -> package -> serve -> observe -> retrain and redeploy, on one address."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.mlops import MLOpsPipeline, RetrainingTrigger, load_package

pytest.importorskip("uvicorn", reason="the pipeline serves over HTTP (the serve extra)")
pytest.importorskip("scipy", reason="the pipeline's drift checks use scipy (the stats extra)")


def train(model, data):
    inputs, labels = data
    trainer = tt.Trainer(model, tt.CrossEntropyLoss(), tt.Adam(lr=0.05))
    trainer.fit(tt.DataLoader(inputs, labels, batch_size=100, shuffle=True), epochs=1, verbose=0)
    return {"rows": len(inputs)}


def metadata(url):
    with urllib.request.urlopen(url + "/metadata") as response:
        return json.loads(response.read())


def test_the_loop_redeploys_a_retrained_version_on_the_same_address(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    fired = []
    pipeline = MLOpsPipeline(lambda: tt.Sequential(tt.Dense(3, 8), tt.ReLU(), tt.Dense(8, 2)), train, tmp_path,
                             example_input=x[:1], classes=["no", "yes"],
                             trigger=RetrainingTrigger(cooldown_s=0, callback=fired.append))
    try:
        url = pipeline.deploy((x[:400], y[:400]), reference_inputs=x[400:600])
        first = metadata(url)
        assert first["metrics"] == {"rows": 400} and first["classes"] == ["no", "yes"]
        calm = pipeline.observe(x[600:], labels=y[600:], retrain_with=(x, y))
        assert not calm.drift.dataset_drifted and calm.decision is None and calm.retrained_version is None
        assert calm.served == 2 and calm.errors == []
        moved = x[600:] * 3 + 2
        report = pipeline.observe(moved, retrain_with=(moved, (moved[:, 0] > 2).astype(np.int64)))
        assert report.drift.dataset_drifted and report.retrained_version == "v2" and len(fired) == 1
        assert pipeline.url == url  # redeployed where clients already send their requests
        second = metadata(url)
        assert second["uuid"] != first["uuid"] and second["metrics"] == {"rows": 100}
        assert load_package(tmp_path / "v1").uuid == first["uuid"] and load_package(tmp_path / "v2").uuid == second["uuid"]
        # the new version's reference is the data it was retrained for: the same traffic no longer drifts
        assert not pipeline.observe(moved).drift.dataset_drifted
    finally:
        pipeline.stop()
    with pytest.raises(RuntimeError, match="deploy"):
        pipeline.observe(x)
