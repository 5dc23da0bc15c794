"""The compression example runs end to end on the tiny fixtures and records every part; the speed
benchmark's two sides compute the same model.

The full run, on the trained CIFAR-10 model, is recorded in examples/results/compression/.
"""

import importlib
import json
import sys
import warnings

import numpy as np
import pytest

from .test_examples import fixture_data  # noqa: F401  (the fixture data sets, laid out like the real ones)


def test_compress_example_records_every_part(fixture_data, capsys):  # noqa: F811
    module = importlib.import_module("compress_cifar10")
    import tinytorch as tt
    from tinytorch.core.checkpoint import save_checkpoint

    tt.manual_seed(0)
    model_path = fixture_data / "cifar10_cnn.npz"
    save_checkpoint(model_path, module.build_model())
    out, saved = fixture_data / "results", fixture_data / "checkpoints"
    parts = "quantize,prune,structured,distill,memory,dynamic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixtures are trusted local copies: the data module warns so
        results = module.main([f"--model={model_path}", f"--out={out}", f"--save-dir={saved}", f"--parts={parts}",
                               "--finetune-epochs=1", "--distill-epochs=1", "--seeds=2", "--batch-size=4", "--limit=8",
                               "--calibration-batches=1", "--mnist-epochs=1", "--sparsities=0,0.5,0.9",
                               "--memory-rounds=2", "--quiet"])
    recorded = json.loads((out / "results.json").read_text())
    assert recorded["float"]["accuracy"] == results["float"]["accuracy"]
    rows = {(r["observer"], r["weights"], r["weight_bits"]): r for r in recorded["quantize"]["rows"]}
    assert set(rows) == {("percentile", "per-channel", 8), ("histogram", "per-channel", 8), ("minmax", "per-channel", 8),
                         ("minmax", "per-tensor", 8), ("minmax", "per-channel", 4), ("minmax", "per-tensor", 4)}
    assert recorded["quantize"]["float_bytes"] / rows[("percentile", "per-channel", 8)]["bytes"] > 3.9
    snr = recorded["quantize"]["weight_snr"]
    assert len(snr) == 5 and all(40 < w["per-channel 8-bit"] < 60 and 15 < w["per-tensor 4-bit"] < 30 for w in snr)
    assert set(recorded["quantize"]["saved_dtypes"].values()) == {"int8", "float32"}
    assert [c["sparsity"] for c in recorded["prune"]["curve"]] == [0.0, 0.5, 0.9]
    ninety = next(t for t in recorded["prune"]["finetuned"] if t["sparsity"] == 0.9)
    assert ninety["round_trip_exact"] and ninety["float_bytes"] / ninety["sparse_bytes"] > 7
    assert ninety["float_bytes"] / ninety["sparse_int8_bytes"] > 15
    assert recorded["structured"]["slim_flops"] / recorded["structured"]["flops"] == pytest.approx(6.13 / 21.70, abs=1e-3)
    assert len(recorded["distill"]["rows"]) == 2 and set(recorded["distill"]["summary"]) == {"alone", "distilled", "gain"}
    modes = [row["mode"] for row in recorded["memory"]["rows"]]
    assert modes == ["plain", "checkpoint (4 segments)", "checkpoint + float16 boundaries"]
    full, half = recorded["memory"]["half"]
    assert half["stored_mib"] * 2 == pytest.approx(full["stored_mib"]) and half["masters_mib"] == pytest.approx(full["stored_mib"])
    assert full["masters_mib"] == 0 and half["step_peak"] > 0 and half["infer_peak"] > 0
    assert half["file_bytes"] < 0.55 * full["file_bytes"]
    assert 0 <= recorded["dynamic"]["int8_accuracy"] <= 1 and recorded["dynamic"]["float_bytes"] > 3.5 * recorded["dynamic"]["int8_bytes"]
    report = (out / "README.md").read_text()
    for heading in ("## int8 post-training quantization", "## Magnitude pruning", "## Structured (channel) pruning",
                    "## Distillation", "## Memory-saving training", "## Dynamic int8"):
        assert heading in report
    assert (out / "sparsity_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("cifar10_int8.npz", "cifar10_pruned90.npz", "cifar10_channels_pruned.npz"):
        assert (saved / name).is_file()
    assert "report in" in capsys.readouterr().out
    # a later run of one part keeps the other parts' records
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module.main([f"--model={model_path}", f"--out={out}", f"--save-dir={saved}", "--parts=dynamic",
                     "--mnist-epochs=1", "--quiet"])
    merged = json.loads((out / "results.json").read_text())
    assert merged["prune"] == recorded["prune"] and [r["parts"] for r in merged["runs"]] == [parts.split(","), ["dynamic"]]
    sys.modules.pop("compress_cifar10", None)


def test_compress_example_says_how_to_make_the_model(fixture_data, tmp_path):  # noqa: F811
    module = importlib.import_module("compress_cifar10")
    with pytest.raises(SystemExit, match="train_cifar10.py --save="):
        module.main([f"--model={tmp_path / 'missing.npz'}", f"--out={tmp_path}"])
    with pytest.raises(SystemExit, match="unknown parts"):
        module.main([f"--model={tmp_path / 'missing.npz'}", "--parts=quantize,zip"])
    sys.modules.pop("compress_cifar10", None)


@pytest.mark.parametrize("variant", ["int8", "channels_pruned"])
def test_speed_benchmark_sides_compute_the_same_model(variant):
    from benchmarks.compression_side import cnn_forward, dense

    baseline, compressed = cnn_forward(4, "float32")(), cnn_forward(4, variant)()
    assert baseline.shape == compressed.shape == (4, 10)
    if variant == "channels_pruned":  # folding the batch norms changes neither side's function
        np.testing.assert_allclose(cnn_forward(4, "float32", folded=True)().numpy(), baseline.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(cnn_forward(4, variant, folded=True)().numpy(), compressed.numpy(), rtol=1e-4, atol=1e-5)
    if variant == "int8":  # int8 follows float32 closely; the channel-pruned model is another model
        assert np.abs(baseline.numpy() - compressed.numpy()).max() < 0.05 * np.abs(baseline.numpy()).max()
        float_dense, int8_dense = dense(64, 32, 1, int8=False)(), dense(64, 32, 1, int8=True)()
        assert np.abs(float_dense.numpy() - int8_dense.numpy()).max() < 0.02 * np.abs(float_dense.numpy()).max()
