"""Peak memory of a piece of work, measured the same way for every framework (Linux only).

The resident set (RSS) before is the baseline; the kernel's high-water mark is reset
(``/proc/self/clear_refs``), the work runs, and the peak is the high-water mark minus the
baseline: parameters, gradients, optimizer state, activations, temporaries and any allocator
caching, whoever allocated them. Run it in a fresh process, so nothing earlier is counted or cached.
"""

from __future__ import annotations

import gc
from typing import Callable


def status_kib(key: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def peak_rss_growth(make: Callable[[], Callable[[], object]], steps: int) -> dict[str, float]:
    """Peak RSS growth (MiB) over ``step = make()`` and ``steps`` calls of ``step()``."""
    gc.collect()
    baseline = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    step = make()
    for _ in range(steps):
        step()
    return {"peak_mib": (status_kib("VmHWM") - baseline) / 1024, "baseline_mib": baseline / 1024}
