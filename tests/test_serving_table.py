"""The README's serving figures: rendered from the recorded serving benchmark, never copied by hand."""

from __future__ import annotations

import pytest

from benchmarks import readme_table, serving_table

RECORD = """# Benchmark: serving

- Date: 2026-01-02 03:04 UTC
- Command: `python -m benchmarks.serving --probe 2`
- Test CPU; 4 logical cores; memory 8.0 GiB

## Verdicts

- MLP batch-1 p99 at 100 requests/s: 3.00 ms (target <= 10 ms): met
- CNN micro-batching throughput at saturation: 2.50x batch-1 (target >= 2x): met

## Latency at a fixed rate (batch-1 server, Poisson arrivals)

| model | offered rps | achieved rps | completed | failed | p50 ms | p90 ms | p99 ms | p99.9 ms | machine before |
|---|---|---|---|---|---|---|---|---|---|
| Tiny MLP | 100 | 99.0 | 990 | 0 | 1.50 | 2.00 | 3.00 | 4.00 | idle |

## Throughput at saturation: Tiny MLP

- Model time in this process: batch 1 0.10 ms; batch 32 0.40 ms (0.01 ms per example)
- Latency bound: max delay 10 ms + one batch time = 10.40 ms (p99)
- **Saturation throughput: batch-1 200 requests/s, micro-batching 500 requests/s (2.50x)**

| server | offered rps |
|---|---|
"""


def test_readme_serving_figures_are_generated_from_the_record():
    readme = readme_table.README.read_text(encoding="utf-8")
    block = serving_table.table(serving_table.load())
    assert readme_table.replace_block(readme, block) == readme, (
        "README.md's serving figures are stale or edited by hand; run python -m benchmarks.readme_table"
    )


def test_figures_come_from_the_record_lines():
    block = serving_table.table(RECORD)
    assert "| Tiny MLP | 200 requests/s | 500 requests/s | 2.50× | 10.40 ms |" in block
    assert "| Tiny MLP | 100 | 0 | 1.50 | 3.00 |" in block
    assert "- CNN micro-batching throughput at saturation: 2.50x batch-1 (target >= 2x): met" in block
    assert "`python -m benchmarks.serving --probe 2`: 2026-01-02 03:04 UTC, Test CPU; 4 logical cores" in block
    assert block.startswith(serving_table.BEGIN) and block.endswith(serving_table.END)


@pytest.mark.parametrize("line, message", [
    ("- **Saturation throughput: batch-1 200 requests/s, micro-batching 500 requests/s (2.50x)**", "saturation or bound"),
    ("- Date: 2026-01-02 03:04 UTC", "date line"),
    ("| Tiny MLP | 100 | 99.0 | 990 | 0 | 1.50 | 2.00 | 3.00 | 4.00 | idle |", "fixed-rate table has no rows"),
])
def test_a_missing_line_is_an_error_naming_it(line, message):
    assert line in RECORD
    with pytest.raises(SystemExit, match=message):
        serving_table.table(RECORD.replace(line, ""))
