"""tito benchmark: a saved model, its architecture from a builder (or a package), the scenarios, the report."""

import json

import numpy as np
import pytest
from rich.console import Console

import tinytorch as tt
from tinytorch.cli import benchmark

BUILDER = """\
import tinytorch as tt
from sizes import HIDDEN          # a neighbour module, as examples/train_cifar10.py imports reporting.py


def build():
    return tt.Sequential(tt.Dense(4, HIDDEN), tt.ReLU(), tt.Dense(HIDDEN, 3))
"""


@pytest.fixture
def saved_model(tmp_path):
    (tmp_path / "sizes.py").write_text("HIDDEN = 8\n")
    (tmp_path / "nets.py").write_text(BUILDER)
    model = tt.Sequential(tt.Dense(4, 8), tt.ReLU(), tt.Dense(8, 3))
    tt.save_checkpoint(tmp_path / "net.npz", model)
    return tmp_path, model


def tito(args):
    console = Console(record=True, width=200)
    code = benchmark.main(["benchmark", *args], console)
    return code, console.export_text()


def test_all_four_scenarios_on_a_checkpoint_write_the_report(saved_model):
    folder, _ = saved_model
    out = folder / "out"
    code, text = tito([
        str(folder / "net.npz"), f"--builder={folder / 'nets.py'}:build", "--data=random", "--input-shape=4",
        "--min-duration=0", "--server-qps=400", "--offline-samples=256", "--batch-size=32", "--seed=3", f"--out={out}",
    ])  # fmt: skip
    assert code == 0, text
    assert "Scenario : SingleStream" in text and "Scenario : Offline" in text
    saved = json.loads((out / "results.json").read_text())
    results = saved["results"]
    assert list(results) == ["single_stream", "multi_stream", "server", "offline"]
    assert results["single_stream"]["queries"] >= 100 and results["single_stream"]["settings"]["seed"] == 3
    assert results["multi_stream"]["queries"] >= 662 and results["multi_stream"]["settings"]["samples_per_query"] == 8
    assert results["server"]["settings"]["server_target_qps"] == 400 and results["server"]["queries"] >= 459
    assert results["offline"]["samples"] == 256 and results["offline"]["metadata"]["batches"] == 8
    assert saved["command"].startswith("tito benchmark ") and "--server-qps=400" in saved["command"]
    assert saved["data"] == "1,024 random normal samples of shape (4,)"
    report = (out / "report.md").read_text()
    assert "| SingleStream |" in report and "| Offline |" in report and "- CPU: " in report


def test_labels_from_an_npz_give_accuracy_and_a_package_folder_needs_no_builder(saved_model):
    folder, model = saved_model
    inputs = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    with tt.no_grad():
        labels = model(tt.tensor(inputs)).numpy().argmax(axis=1)
    np.savez(folder / "data.npz", inputs=inputs, labels=labels)
    code, text = tito([str(folder / "net.npz"), f"--builder={folder / 'nets.py'}:build", f"--data={folder / 'data.npz'}",
                       "--scenarios=Offline", "--offline-samples=100", "--min-duration=0", f"--out={folder / 'a'}"])  # fmt: skip
    assert code == 0, text
    assert json.loads((folder / "a" / "results.json").read_text())["results"]["offline"]["accuracy"] == 1.0
    pytest.importorskip("safetensors", reason="model packages are safetensors files (the interchange extra)")
    from tinytorch.core.mlops.package import package

    package(model, folder / "pkg", signature=np.zeros((1, 4), np.float32))
    code, text = tito([str(folder / "pkg"), f"--data={folder / 'data.npz'}", "--scenarios=offline",
                       "--offline-samples=100", "--min-duration=0", f"--out={folder / 'b'}"])  # fmt: skip
    assert code == 0, text
    assert "model package" in text
    assert json.loads((folder / "b" / "results.json").read_text())["results"]["offline"]["accuracy"] == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.npz"], "no model at missing.npz: train one with examples/train_cifar10.py --save=missing.npz"),
        (["{net}", "--builder=nets.py"], "expected FILE.py:function or package.module:function"),
        (["{net}", "--builder={nets}:nothing"], "defines no function 'nothing'"),
        (["{net}", "--builder={nets}:build", "--scenarios=Batch"], "--scenarios='Batch': expected a comma-separated list"),
        (["{net}", "--builder={nets}:build", "--data=random", "--input-shape=4x4"], "expected comma-separated sizes"),
        (["{net}", "--builder={nets}:build", "--data=images.png"], "expected cifar10, random, or an existing .npz file"),
        (["{net}", "--builder={nets}:build", "--min-duration=-1"], "--min-duration=-1: must be at least 0.0"),
    ],
)
def test_bad_arguments_are_named(saved_model, args, message, monkeypatch):
    folder, _ = saved_model
    monkeypatch.chdir(folder)
    code, text = tito([a.format(net=folder / "net.npz", nets=folder / "nets.py") for a in args])
    assert code == 2
    assert message in " ".join(text.split())
