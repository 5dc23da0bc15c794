"""The op profiler: events, self and total times, FLOPs, memory, the table and the Chrome trace."""

import json
import threading

import numpy as np
import pytest

import tinytorch as tt
from tinytorch import Conv2D, CrossEntropyLoss, Dense, Flatten, MaxPool2D, ReLU, Sequential
from tinytorch.core import autograd, kernels, module
from tinytorch.core.flops import count_flops
from tinytorch.core.profiler_events import format_memory, format_time

from .test_flops import reference_cnn


def small_cnn():
    return Sequential(Conv2D(3, 4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(4 * 4 * 4, 5))


def train_step(model, x, y):
    loss = CrossEntropyLoss()(model(x), y)
    loss.backward()
    return loss


def test_every_forward_backward_and_kernel_call_is_an_event_nested_in_its_op():
    model = small_cnn()
    x, y = tt.randn(2, 3, 8, 8), tt.tensor(np.array([1, 3]))
    with tt.profiler.profile() as prof:
        train_step(model, x, y)
    events = prof.events()
    names = [e.name for e in events]
    for op in ("Conv2DFunction", "ReLU", "MaxPool2DFunction", "LinearFunction", "_SoftmaxCrossEntropy"):
        assert names.count(op) == 1 and names.count(op + "Backward") == 1, op
    kernel = next(e for e in events if e.name == "kernels.conv2d_forward")
    assert kernel.parent.name == "Conv2DFunction" and kernel.kind == "kernel"
    backward_kernel = next(e for e in events if e.name == "kernels.conv2d_backward")
    assert backward_kernel.parent.name == "Conv2DFunctionBackward"
    conv = kernel.parent
    assert conv.input_shapes == ((2, 3, 8, 8), (4, 3, 3, 3), (4,))
    assert conv.start_ns <= kernel.start_ns and kernel.end_ns <= conv.end_ns
    assert conv.self_cpu_time_total == pytest.approx(conv.cpu_time_total - kernel.cpu_time_total)
    assert autograd.set_observer(None) is None and kernels.set_observer(None) is None and module.set_observer(None) is None


def test_self_times_count_each_instant_once():
    model = small_cnn()
    with tt.profiler.profile(with_modules=True) as prof:
        with tt.profiler.record_function("step"):
            train_step(model, tt.randn(2, 3, 8, 8), tt.tensor(np.array([0, 1])))
    events = prof.events()
    assert all(e.self_cpu_time_total >= 0 for e in events)
    top = [e for e in events if e.parent is None]
    assert [e.name for e in top] == ["step"]
    # the self times of all events add up exactly to the span of the top-level events
    assert prof.self_cpu_time_total == pytest.approx(sum(e.cpu_time_total for e in top), rel=1e-9)
    assert prof.self_cpu_time_total <= prof.wall_time_us
    for event in events:  # children lie inside their parent
        if event.parent is not None:
            assert event.parent.start_ns <= event.start_ns and event.end_ns <= event.parent.end_ns


def test_self_times_add_up_to_the_wall_time_when_ops_do_the_work():
    # Large products leave only microseconds of Python between ops, so the recorded events must
    # account for (nearly) all of the profiled wall time: within 5 %.
    # The results are kept alive: freeing a 576 KiB array returns its pages to the system between
    # two ops, tens of microseconds that belong to no op.
    # One profile is one sample (lesson 14): another process may take the CPU between two ops, so the
    # best of three profiles is judged.
    b = tt.randn(384, 384)
    coverage = []
    for _ in range(3):
        a, results = tt.randn(384, 384), []
        with tt.profiler.profile() as prof:
            for _ in range(12):
                c = a @ b
                a = c * 0.01
                results += [c, a]
        coverage.append(prof.self_cpu_time_total / prof.wall_time_us)
    assert max(coverage) >= 0.95, coverage


def test_flops_of_a_training_step_equal_count_flops():
    model = reference_cnn()
    x, y = tt.randn(4, 3, 32, 32), tt.tensor(np.arange(4))
    with tt.profiler.profile() as prof:
        train_step(model, x, y)
    rows = {row.key: row for row in prof.key_averages()}
    counted = count_flops(model, (4, 3, 32, 32))
    assert rows["Conv2DFunction"].flops + rows["LinearFunction"].flops == counted.forward
    assert rows["Conv2DFunctionBackward"].flops + rows["LinearFunctionBackward"].flops == counted.backward
    assert rows["Conv2DFunction"].count == 3 and rows["ReLU"].flops is None
    assert rows["kernels.conv2d_forward"].flops is None  # FLOPs belong to the op, never twice to its kernel


def test_grouping_by_input_shape_splits_rows():
    a, b = tt.randn(4, 8), tt.randn(8, 8)
    with tt.profiler.profile(record_shapes=True) as prof:
        a @ b
        a @ b
        b @ b
    plain = prof.key_averages()
    assert [(r.key, r.count) for r in plain] == [("MatMul", 3)]
    grouped = prof.key_averages(group_by_input_shape=True)
    assert [(r.key, r.input_shapes, r.count, r.flops) for r in grouped] == [
        ("MatMul", ((4, 8), (8, 8)), 2, 2 * 2 * 4 * 8 * 8),
        ("MatMul", ((8, 8), (8, 8)), 1, 2 * 8 * 8 * 8),
    ]
    table = grouped.table()
    assert "Input Shapes" in table and "[[4, 8], [8, 8]]" in table
    with tt.profiler.profile() as lean:  # without record_shapes only the ops FLOPs are counted for keep theirs
        (a @ b).relu()
    assert {e.name: e.input_shapes for e in lean.events()} == {"MatMul": ((4, 8), (8, 8)), "ReLU": (), "kernels.relu_forward": ()}


def test_the_table_has_pytorchs_columns_and_footer():
    model = small_cnn()
    with tt.profiler.profile(profile_memory=True) as prof:
        train_step(model, tt.randn(2, 3, 8, 8), tt.tensor(np.array([0, 1])))
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=5)
    lines = table.splitlines()
    header = [h.strip() for h in lines[1].split("  ") if h.strip()]
    assert header == [
        "Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg",
        "CPU Mem", "Self CPU Mem", "# of Calls", "Total KFLOPs", "GFLOP/s",
    ]  # fmt: skip
    assert len(lines) == 3 + 5 + 1 + 2  # rules and header, 5 rows, rule, two footer lines
    assert lines[-2].startswith("Self CPU time total: ")
    assert lines[-1].startswith("Profiled wall time: ") and "recorded events cover" in lines[-1]
    rows = prof.key_averages()
    shares = sum(r.self_cpu_time_total for r in rows) / prof.self_cpu_time_total
    assert shares == pytest.approx(1.0)
    totals = [r.cpu_time_total for r in sorted(rows, key=lambda r: r.cpu_time_total, reverse=True)[:5]]
    assert [line.split()[0] for line in lines[3:8]] == [r.key for r in sorted(rows, key=lambda r: r.cpu_time_total, reverse=True)[:5]]
    assert totals == sorted(totals, reverse=True)
    with pytest.raises(ValueError, match="cannot sort by 'speed'"):
        prof.key_averages().table(sort_by="speed")


def test_memory_columns_measure_what_an_op_leaves_allocated():
    x = tt.randn(512, 1024)  # float32
    with tt.profiler.profile(profile_memory=True) as prof:
        kept = x * 2.0  # leaves one 2 MiB array behind
        (x * 3.0).sum()  # a temporary: allocated and freed inside the block, but left alive by Mul itself
    mul = [e for e in prof.events() if e.name == "Mul"]
    assert mul[0].cpu_memory_usage == pytest.approx(2 * 2**20, abs=4096)
    assert mul[0].self_cpu_memory_usage == mul[0].cpu_memory_usage  # no events inside it
    assert kept.shape == (512, 1024)


def test_chrome_trace_is_valid_trace_event_json(tmp_path):
    model = small_cnn()
    with tt.profiler.profile() as prof:
        train_step(model, tt.randn(2, 3, 8, 8), tt.tensor(np.array([0, 1])))
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]  # no temporary left behind
    document = json.loads(path.read_text())
    complete = [e for e in document["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == len(prof.events())
    assert all({"name", "cat", "pid", "tid", "ts", "dur", "args"} <= set(e) for e in complete)
    assert {e["cat"] for e in complete} == {"cpu_op", "kernel"}
    conv = next(e for e in complete if e["name"] == "Conv2DFunction")
    assert conv["args"]["Input Shapes"] == [[2, 3, 8, 8], [4, 3, 3, 3], [4]]
    assert conv["args"]["FLOPs"] == 2 * 2 * 4 * 8 * 8 * 3 * 9
    kernel = next(e for e in complete if e["name"] == "kernels.conv2d_forward")
    assert conv["ts"] <= kernel["ts"] and kernel["ts"] + kernel["dur"] <= conv["ts"] + conv["dur"] + 1e-3
    assert min(e["ts"] for e in complete) >= 0
    with pytest.raises(TypeError, match="needs the events themselves"):
        prof.key_averages().export_chrome_trace(tmp_path / "averages.json")


def test_record_function_as_block_and_decorator_and_outside_a_profiler():
    @tt.profiler.record_function("double")
    def double(t):
        return t * 2.0

    double(tt.ones(3))  # no profiler: nothing to record, nothing breaks
    with tt.profiler.profile() as prof:
        with tt.profiler.record_function("outer"):
            double(tt.ones(3))
    assert [(e.name, e.kind, e.parent.name if e.parent else None) for e in prof.events()] == [
        ("outer", "user", None), ("double", "user", "outer"), ("Mul", "op", "double"),
    ]  # fmt: skip


def test_an_op_that_raises_leaves_the_recording_consistent():
    with tt.profiler.profile() as prof:
        with pytest.raises(ValueError):
            tt.randn(2, 3) @ tt.randn(4, 5)
        tt.randn(2, 3) + 1.0
    events = prof.events()
    assert [e.name for e in events] == ["MatMul", "Add"]
    assert all(e.parent is None and e.end_ns >= e.start_ns for e in events)


def test_module_events_with_modules():
    model = Sequential(Dense(4, 3), ReLU())
    with tt.profiler.profile(with_modules=True) as prof:
        model(tt.randn(2, 4))
    events = prof.events()
    assert [(e.name, e.parent.name if e.parent else None) for e in events][:3] == [
        ("Sequential.forward", None), ("Dense.forward", "Sequential.forward"), ("LinearFunction", "Dense.forward"),
    ]  # fmt: skip
    with tt.profiler.profile() as quiet:
        model(tt.randn(2, 4))
    assert not any(e.kind == "module" for e in quiet.events())


def test_ops_in_another_thread_are_recorded_on_their_own_thread():
    with tt.profiler.profile() as prof:
        worker = threading.Thread(target=lambda: tt.randn(3, 3) @ tt.randn(3, 3))
        worker.start()
        worker.join()
        tt.randn(2) * 2.0
    by_name = {e.name: e for e in prof.events()}
    assert by_name["MatMul"].thread != by_name["Mul"].thread
    assert by_name["MatMul"].parent is None


def test_a_profiler_runs_once_and_answers_only_after_it_stopped():
    prof = tt.profiler.profile()
    with pytest.raises(RuntimeError, match="still running"):
        with prof:
            prof.events()
    with pytest.raises(RuntimeError, match="already run"):
        prof.start()
    with pytest.raises(ValueError, match="record_shapes=True"):
        with tt.profiler.profile() as bare:
            tt.ones(2) * 2.0
        bare.key_averages(group_by_input_shape=True)


def test_formats_match_pytorchs():
    assert [format_time(t) for t in (12.3456, 12345.6, 2.5e6)] == ["12.346us", "12.346ms", "2.500s"]
    assert [format_memory(b) for b in (100, 3 * 1024, 12 * 2**20, -(2**31))] == ["100 b", "3.00 Kb", "12.00 Mb", "-2.00 Gb"]


def test_a_backward_whose_forward_ran_before_profiling_is_recorded():
    model = Sequential(Dense(4, 3), ReLU())
    loss = model(tt.randn(2, 4)).sum()
    with tt.profiler.profile() as prof:
        loss.backward()
    backward = {e.name: e for e in prof.events()}
    assert {"SumBackward", "ReLUBackward", "LinearFunctionBackward"} <= set(backward)
    assert backward["LinearFunctionBackward"].flops in (None, 2 * 2 * 3 * 4)  # known only if the forward's inputs were kept
    assert model[0].weight.grad is not None


def test_gradient_accumulation_into_leaves_is_an_event_of_its_own():
    # As in PyTorch's profiler: adding a gradient into a leaf's .grad (a fresh array the first time)
    # is backward's work, shown as AccumulateGrad rather than lost between two ops.
    w = tt.randn(3, 4, requires_grad=True)
    x = tt.randn(5, 4)
    with tt.profiler.profile() as prof:
        (x @ w.T).sum().backward()
    counts = {row.key: row.count for row in prof.key_averages()}
    assert counts["AccumulateGrad"] == 1
    assert "AccumulateGradBackward" not in counts
    assert w.grad.shape == (3, 4) and np.allclose(w.grad.data, np.ones((5, 3)).T @ x.data)


def test_an_optimizer_step_and_zero_grad_are_events_named_as_pytorch_names_them():
    model = small_cnn()
    optimizer = tt.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = tt.randn(2, 3, 8, 8), tt.tensor(np.array([0, 1]))
    with tt.profiler.profile() as prof:
        optimizer.zero_grad()
        tt.CrossEntropyLoss()(model(x), y).backward()
        optimizer.step()
    events = {event.name: event for event in prof.events()}
    step = events["Optimizer.step#SGD.step"]
    assert "Optimizer.zero_grad#SGD.zero_grad" in events
    kernel_calls = [e for e in prof.events() if e.name.startswith("kernels.sgd")]
    assert kernel_calls and all(e.parent is step for e in kernel_calls)  # the update kernels run inside the step
