"""examples/profile_cifar10.py runs end to end in a tiny configuration and records what it measured."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_profile_example_records_tables_flops_and_a_trace(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    import profile_cifar10

    out = tmp_path / "profile"
    record = profile_cifar10.main(["--batch-size=2", "--inference-batch=2", "--steps=1", "--peak-seconds=0.02", "--peak-size=64",
                                   f"--model={tmp_path / 'none.npz'}", f"--out={out}"])  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "profile.json", "trace.json"]
    assert record["forward_mflops_per_image"] == pytest.approx(21.697536)
    assert record["weights"].startswith("freshly initialised")
    names = [row["name"] for row in record["training"]]
    assert "kernels.conv2d_backward" in names and "Conv2DFunctionBackward" in names
    assert sum(row["self_share"] for row in record["training"]) == pytest.approx(1.0)
    conv = [row for row in record["products"] if row["name"] == "Conv2DFunction"]
    assert sorted(row["mflops"] for row in conv) == pytest.approx([2 * 1.769472, 2 * 9.437184, 2 * 9.437184])
    assert json.loads((out / "profile.json").read_text())["steps"] == 1
    assert any(e["name"] == "kernels.conv2d_forward" for e in json.loads((out / "trace.json").read_text())["traceEvents"])
    readme = (out / "README.md").read_text()
    assert "## Training step, batch 2" in readme and "| `kernels.conv2d_backward` |" in readme and "% of peak" in readme
