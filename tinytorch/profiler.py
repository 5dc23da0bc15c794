"""The op profiler under PyTorch's names: ``with tt.profiler.profile() as prof: ...``.

>>> import tinytorch as tt
>>> model = tt.Sequential(tt.Dense(32, 16), tt.ReLU(), tt.Dense(16, 4))
>>> with tt.profiler.profile() as prof:
...     with tt.profiler.record_function("forward"):
...         out = model(tt.randn(8, 32))
>>> print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=3))   # doctest: +SKIP
>>> [row.key for row in prof.key_averages()]
['forward', 'LinearFunction', 'kernels.matmul', 'ReLU', 'kernels.relu_forward']

``profile`` is :class:`tinytorch.core.op_profiler.Profiler`; ``prof.key_averages()``,
``.table(sort_by=...)``, ``key_averages(group_by_input_shape=True)`` and
``prof.export_chrome_trace(path)`` behave as PyTorch's. FLOPs follow ``tinytorch.core.flops``.
"""

from .core.flops import FlopCounter, count_flops
from .core.op_profiler import Profiler, record_function
from .core.profiler_events import EventList, FunctionEvent, FunctionEventAvg

profile = Profiler

__all__ = ["profile", "Profiler", "record_function", "EventList", "FunctionEvent", "FunctionEventAvg", "count_flops", "FlopCounter"]
