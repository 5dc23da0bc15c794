"""The example programs run end to end (on the tiny fixtures) and record what they measured.

The full runs, on the real data sets, are recorded under examples/results/; these tests only prove
that each program works from a clean checkout and writes its report.
"""

import importlib
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "data"


@pytest.fixture
def fixture_data(tmp_path, monkeypatch):
    """A data folder laid out like the real one, holding the fixtures (trusted: their hashes are not official)."""
    root = tmp_path / "data"
    (root / "cifar10").mkdir(parents=True)
    shutil.copy(FIXTURES / "cifar10" / "cifar-10-binary.tar.gz", root / "cifar10")
    shutil.copytree(FIXTURES / "mnist", root / "mnist")
    shutil.copytree(FIXTURES / "mnist", root / "fashion-mnist")
    shutil.copytree(FIXTURES / "tinyshakespeare", root / "tinyshakespeare")
    monkeypatch.setenv("TINYTORCH_DATA", str(root))
    monkeypatch.setenv("TINYTORCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TINYTORCH_TRUST_LOCAL", "1")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    return tmp_path


@pytest.mark.parametrize(
    "program, batch_size",
    [("train_cifar10", 4), ("train_mnist", 2), ("train_fashion_mnist", 2)],
)
def test_example_runs_and_records_its_results(program, batch_size, fixture_data, capsys):
    module = importlib.import_module(program)
    out = fixture_data / "results"
    saved = fixture_data / "model.npz"
    extra = [f"--save={saved}"] if program == "train_cifar10" else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures are trusted local copies: the data module warns so
        test = module.main(["--epochs=2", f"--batch-size={batch_size}", f"--out={out}", "--quiet", *extra])
    assert 0.0 <= test["accuracy"] <= 1.0
    recorded = json.loads((out / "history.json").read_text())
    assert recorded["history"]["epoch"] == [1, 2]
    assert recorded["test"]["accuracy"] == test["accuracy"]
    report = (out / "README.md").read_text()
    assert f"Test accuracy: {100 * test['accuracy']:.2f} %" in report and "Confusion matrix" in report
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert recorded["resources"]["peak_rss_mib"] > 0 and recorded["resources"]["minor_page_faults"] > 0
    assert "Memory: peak RSS" in report
    assert sum(map(sum, recorded["confusion_matrix"])) == test["num_samples"]  # every test image, once
    assert "report in" in capsys.readouterr().out
    if extra:  # the trained model is saved where the compression and deployment examples read it
        from tinytorch.core.checkpoint import load_checkpoint

        state = load_checkpoint(saved, module.build_model())
        assert state["extra"]["test_accuracy"] == test["accuracy"]
    sys.modules.pop(program, None)


def test_tinygpt_example_runs_and_records_its_results(fixture_data, capsys):
    module = importlib.import_module("train_tinygpt")
    out, saved = fixture_data / "results", fixture_data / "tinygpt.npz"
    tiny = ["--iters=4", "--batch-size=2", "--block-size=8", "--layers=1", "--heads=2", "--width=8",
            "--eval-interval=2", "--eval-iters=1", "--sample-chars=30"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is a trusted local copy: the data module warns so
        final = module.main([*tiny, f"--out={out}", f"--save={saved}", "--quiet"])
    recorded = json.loads((out / "history.json").read_text())
    assert recorded["history"]["eval_step"] == [0, 2, 4] and len(recorded["history"]["step_loss"]) == 4
    assert recorded["command"].startswith("python examples/train_tinygpt.py --iters=4 ") and recorded["machine"]
    assert recorded["config"]["custom"] is True and recorded["config"]["limit"] is None
    assert recorded["final"]["val_loss"] == final["val_loss"] > 0 and final["tokens_per_second"] > 0
    report = (out / "README.md").read_text()
    assert f"Validation loss: {final['val_loss']:.4f}" in report and "tokens/s" in report
    assert "Target: none" in report and recorded["date"] in report
    assert len((out / "sample.txt").read_text()) == 30
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report in" in capsys.readouterr().out
    from tinytorch.tinygpt import TinyGPT

    model = TinyGPT.load(saved)
    assert model.saved_extra["val_loss"] == final["val_loss"] and model.config["d_model"] == 8
    sys.modules.pop("train_tinygpt", None)


def test_tinygpt_example_judges_a_full_run_against_its_target(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    module = importlib.import_module("train_tinygpt")
    assert "**met**" in module.target_line("nanogpt", False, 1.8712, 3.9)
    assert "**NOT met**" in module.target_line("nanogpt", False, 1.8712, 4.2)  # too slow
    assert "**NOT met**" in module.target_line("long", False, 1.66, 12.0)  # not low enough
    assert "Target: none" in module.target_line("long", True, 1.60, 12.0)  # a changed run proves nothing
    sys.modules.pop("train_tinygpt", None)


def test_tinygpt_example_layout_options(monkeypatch):
    """--bias and --tie-weights choose the model's layout; the configurations keep biases and an untied head."""
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    module = importlib.import_module("train_tinygpt")
    from docopt import docopt

    def settings(*argv):
        return module.settings(docopt(module.__doc__, argv=list(argv)))

    assert all(c["bias"] is True and c["tie_weights"] is False for c in module.CONFIGS.values())
    nanogpt_layout = settings("--bias=no", "--tie-weights=YES")
    assert nanogpt_layout["bias"] is False and nanogpt_layout["tie_weights"] is True
    assert settings("--bias=0", "--tie-weights=false")["bias"] is False
    with pytest.raises(SystemExit, match="--tie-weights takes yes or no, got 'maybe'"):
        settings("--tie-weights=maybe")
    sys.modules.pop("train_tinygpt", None)


def test_tinygpt_layouts_trains_every_layout_and_records_the_losses(fixture_data):
    """examples/tinygpt_layouts.py runs the example once per layout and seed; its table holds each run's
    exact validation loss, the figure the example itself reports for the same options."""
    layouts = importlib.import_module("tinygpt_layouts")
    module = importlib.import_module("train_tinygpt")
    tiny = "--iters=3 --batch-size=2 --block-size=8 --layers=1 --heads=2 --width=8 --eval-interval=3 --eval-iters=1"
    out = fixture_data / "layouts.md"
    losses = layouts.main(["--seeds=5", f"--train-options={tiny}", f"--out={out}"])
    assert list(losses) == list(layouts.LAYOUTS) and all(len(v) == 1 for v in losses.values())
    assert len(set(v[0] for v in losses.values())) == 4  # four different models
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is a trusted local copy: the data module warns so
        direct = module.main([*tiny.split(), "--seed=5", "--bias=no", "--tie-weights=yes", "--sample-chars=1",
                              f"--out={fixture_data / 'direct'}", f"--save={fixture_data / 'direct.npz'}", "--quiet"])
    nanogpt = losses["nanoGPT (no biases, tied head)"][0]
    assert nanogpt == pytest.approx(direct["val_loss"], rel=1e-6)
    report = out.read_text()
    assert f"| nanoGPT (no biases, tied head) | {nanogpt:.4f} | **{nanogpt:.4f}** |" in report
    assert "'--train-options=--iters=3 --batch-size=2" in report and "seed 5" in report
    assert report.count("(the example's)") == 1 and "| biases, untied head (the example's) |" in report
    sys.modules.pop("train_tinygpt", None)
    sys.modules.pop("tinygpt_layouts", None)


@pytest.mark.parametrize("argv, message", [
    (["--config=huge"], "unknown --config 'huge'; choose one of nanogpt, long"),
    (["--jobs=0"], "--jobs takes a positive whole number, got '0'"),
    (["--seeds=1,two"], "--seeds takes whole numbers separated by commas, got '1,two'"),
])
def test_tinygpt_layouts_rejects_bad_options_before_training(argv, message, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    layouts = importlib.import_module("tinygpt_layouts")
    with pytest.raises(SystemExit, match=message):
        layouts.main(argv)
    sys.modules.pop("tinygpt_layouts", None)
    sys.modules.pop("train_tinygpt", None)


def test_pytorch_replica_of_the_tinygpt_recipe_tracks_the_example(fixture_data):
    """examples/tinygpt_pytorch_replica.py, the oracle for the example's loss figure, trains the same model from
    the same weights on the same batches: after a few steps both frameworks' losses agree to rounding."""
    pytest.importorskip("torch", reason="the replica is the recipe in PyTorch, the test oracle")
    module = importlib.import_module("train_tinygpt")
    replica = importlib.import_module("tinygpt_pytorch_replica")
    tiny = ["--iters=3", "--batch-size=4", "--block-size=16", "--layers=2", "--heads=2", "--width=16", "--eval-iters=2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is a trusted local copy: the data module warns so
        ours = module.main([*tiny, "--sample-chars=10", f"--out={fixture_data / 'ours'}",
                            f"--save={fixture_data / 'gpt.npz'}", "--quiet"])
        theirs = replica.main([*tiny, f"--out={fixture_data / 'torch.json'}"])
    recorded = json.loads((fixture_data / "ours" / "history.json").read_text())["history"]
    assert [h["step"] for h in theirs["history"]] == [0, 3]
    np.testing.assert_allclose([h["val_loss"] for h in theirs["history"]], recorded["val_loss"], rtol=1e-5)
    assert abs(theirs["val_loss_exact"] - ours["val_loss"]) < 1e-4 and ours["val_loss"] < recorded["val_loss"][0]
    assert json.loads((fixture_data / "torch.json").read_text())["val_loss_exact"] == theirs["val_loss_exact"]
    sys.modules.pop("train_tinygpt", None)
    sys.modules.pop("tinygpt_pytorch_replica", None)
