"""The deployment example runs end to end on the tiny fixtures (the real run is recorded in examples/results/deploy/)."""

from __future__ import annotations

import importlib
import json
import sys
import warnings

import numpy as np
import pytest

from .test_examples import ROOT, fixture_data  # noqa: F401  (the fixture)

for extra, module in (("interchange", "safetensors"), ("interchange", "onnxruntime"), ("serve", "uvicorn"),
                      ("stats", "scipy")):
    pytest.importorskip(module, reason=f"the deployment example needs the {extra} extra ({module})")


def test_deploy_example_runs_and_records(fixture_data, capsys):  # noqa: F811
    import tinytorch as tt
    from tinytorch.core.checkpoint import save_checkpoint

    sys.modules.pop("train_cifar10", None)
    deploy = importlib.import_module("deploy_cifar10")
    model_file = fixture_data / "cnn.npz"
    tt.manual_seed(0)
    model = deploy.build_model()
    save_checkpoint(model_file, model)
    from tinytorch.core.compression import quantize_static, save_quantized

    int8_file = fixture_data / "cnn_int8.npz"  # what compress_cifar10.py writes, the A/B's challenger
    model.eval()
    save_quantized(int8_file, quantize_static(model, [np.random.default_rng(1).normal(size=(4, 3, 32, 32)).astype(np.float32)]))
    out, packages = fixture_data / "deploy", fixture_data / "packages"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures are trusted local copies: the data module warns so
        record = deploy.main([f"--model={model_file}", f"--out={out}", f"--packages={packages}", "--rate=10",
                              "--duration=0.5", "--splits=5", "--trials=3", "--max-batch=4", "--max-delay-ms=2",
                              "--warmup=0", f"--int8={int8_file}", "--in-process"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["test_accuracy"] == record["test_accuracy"] == record["served_accuracy"]
    assert saved["package"]["reloaded_outputs_identical"] is True
    assert "weights.safetensors was changed after packaging" in saved["package"]["one_flipped_bit"]
    assert max(saved["onnx"]["max_abs_error_by_batch"].values()) < 1e-4
    assert all(s["failed"] == 0 and s["completed"] > 0 for s in saved["serving"].values())
    assert saved["false_alarms"]["small samples (statistical tests)"]["splits"] == 5
    assert "brightness +0.2" in saved["shifts"]
    assert saved["ab"]["server"]["labelled_examples"] == 3 and saved["ab"]["challenger"].startswith("its int8 model")
    assert (packages / "cifar10_cnn_int8" / "weights.safetensors").exists()
    report = (out / "README.md").read_text()
    assert "## Serving" in report and "## A/B" in report and "Paired accuracy on 3 labelled images" in report
    assert "deployment record in" in capsys.readouterr().out
    sys.modules.pop("deploy_cifar10", None)
