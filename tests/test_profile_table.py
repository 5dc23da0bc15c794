"""The README's profiler table: rendered from the recorded profile of the CIFAR-10 CNN, never copied by hand."""

from __future__ import annotations

import copy

import pytest

from benchmarks import profile_table, readme_table


def op(name: str, self_ms: float, calls: float, step_ms: float = 10.0) -> dict:
    # self_share is of all recorded self time; the hand-made record below records exactly step_ms of it
    return {"name": name, "calls": calls, "self_ms": self_ms, "self_share": self_ms / step_ms, "total_ms": self_ms,
            "mflops": None, "gflops_per_s": None, "input_shapes": None}  # fmt: skip


def product(name: str, gflops_per_s: float) -> dict:
    return {**op(name, 0.1, 1), "mflops": 10.0, "gflops_per_s": gflops_per_s}


@pytest.fixture
def record() -> dict:
    """A small profile record: every op the table names, plus two it does not; 10 ms recorded of a 12.5 ms step."""
    self_ms = {"kernels.conv2d_backward": 3.0, "kernels.conv2d_forward": 2.0, "kernels.batchnorm_backward": 0.4,
               "kernels.batchnorm_forward_train": 0.3, "kernels.maxpool2d_forward": 0.5, "kernels.maxpool2d_backward": 0.6,
               "kernels.relu_forward": 0.25, "kernels.relu_backward": 0.25, "LinearFunction": 0.9,
               "LinearFunctionBackward": 1.1, "kernels.sgd_step": 0.2, "AccumulateGrad": 0.3, "Mean": 0.2}  # fmt: skip
    assert sum(self_ms.values()) == pytest.approx(10.0)
    return {
        "environment": {"date": "2026-01-02 03:04 UTC", "cpu": "Test CPU", "logical_cores": "4",
                        "kernels": "compiled, OpenMP on, 4 threads"},
        "command": "python examples/profile_cifar10.py --steps=3",
        "steps": 3, "batch_size": 8, "inference_batch": 16, "step_ms": 12.5, "inference_ms": 4.0,
        "matmul_peak_gflops": 200.0, "forward_mflops_per_image": 1.5, "load_average_before_after": [0.25, 0.5],
        "training": [op(name, ms, 2 if name == "AccumulateGrad" else 1) for name, ms in self_ms.items()],
        "inference": [op("kernels.conv2d_fused_forward", 3.6, 3, step_ms=4.0), op("Reshape", 0.4, 1, step_ms=4.0)],
        "products": [product("Conv2DFunction", 40.0), product("Conv2DFunctionBackward", 100.0),
                     product("LinearFunction", 150.0), product("LinearFunctionBackward", 20.0)],
    }  # fmt: skip


def test_readme_profiler_table_is_generated_from_the_record():
    readme = readme_table.README.read_text(encoding="utf-8")
    block = profile_table.table(profile_table.load())
    assert readme_table.replace_block(readme, block) == readme, (
        "README.md's profiler table is stale or edited by hand; run python -m benchmarks.readme_table"
    )


def test_the_profiler_table_adds_up_and_orders_the_ops_of_a_hand_made_record(record):
    lines = profile_table.table(record).split("\n")
    assert lines[0] == profile_table.BEGIN and lines[-1] == profile_table.END
    assert lines[2] == (
        "Batch 8, 3 steps, 12.5 ms per step; the recorded events cover 80.0 % of it. Forward FLOPs: 1.50 MFLOP per "
        "image (a multiply-add counted as 2, equal to `torch.utils.flop_counter`). The machine's measured matmul peak "
        "in the same run: 200.0 GFLOP/s; the convolutions reach 20–50 % of it, the Dense layers 10–75 %."
    )
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| op ")]
    assert rows == [
        "| `kernels.conv2d_backward` | 30.0 % | 3.00 | 1 |",
        "| `kernels.conv2d_forward` | 20.0 % | 2.00 | 1 |",
        "| `LinearFunction` + `LinearFunctionBackward` (both Dense layers) | 20.0 % | 2.00 | 2 |",
        "| `kernels.maxpool2d_forward` / `maxpool2d_backward` | 11.0 % | 1.10 | 2 |",
        "| `kernels.relu_forward` / `relu_backward` | 5.0 % | 0.50 | 2 |",
        "| `kernels.batchnorm_backward` | 4.0 % | 0.40 | 1 |",
        "| `kernels.batchnorm_forward_train` | 3.0 % | 0.30 | 1 |",
        "| `kernels.sgd_step` | 2.0 % | 0.20 | 1 |",
        "| the 2 other ops | 5.0 % | 0.50 | 3 |",
    ]
    assert "In inference (batch 16, 4.0 ms) `kernels.conv2d_fused_forward` is 90.0 % of the time." in lines
    assert lines[-3] == ("`python examples/profile_cifar10.py --steps=3`: 2026-01-02 03:04 UTC, Test CPU, 4 logical cores, "
                         "kernels compiled, OpenMP on, 4 threads; load average (1 min) before / after: 0.25 / 0.50.")  # fmt: skip


def test_the_profiler_table_refuses_a_record_without_an_op_it_names(record):
    renamed = copy.deepcopy(record)
    renamed["training"] = [r for r in renamed["training"] if r["name"] != "kernels.relu_backward"]
    with pytest.raises(SystemExit, match="kernels.relu_backward"):
        profile_table.table(renamed)
    no_products = {**record, "products": [r for r in record["products"] if not r["name"].startswith("Linear")]}
    with pytest.raises(SystemExit, match="LinearFunction"):
        profile_table.table(no_products)


def test_replace_block_swaps_only_the_part_between_the_blocks_markers(record):
    block = profile_table.table(record)
    stale = f"intro\n{profile_table.BEGIN}\nold figures\n{profile_table.END}\noutro\n"
    assert readme_table.replace_block(stale, block) == f"intro\n{block}\noutro\n"
    with pytest.raises(SystemExit, match="marker lines"):
        readme_table.replace_block("intro\noutro\n", block)


def test_a_convolution_rate_above_the_matmul_peak_is_explained(record):
    """Winograd's convolutions do fewer multiplications than the FLOPs counted, so their rate can pass the peak."""
    assert "above 100 %" not in profile_table.table(record)
    record["products"][0]["gflops_per_s"] = 210.0  # Conv2DFunction, peak 200
    assert "the convolutions reach 50–105 % (above 100 %: the 3x3 convolutions go through Winograd's transform" in (
        profile_table.table(record).replace("\n", " "))
