"""The observer hooks the profiler builds on: every op's forward and backward and every kernel call is reported."""

import numpy as np

import tinytorch as tt
from tinytorch.core import autograd, kernels


class Recorder:
    def __init__(self):
        self.events = []

    def op_begin(self, name, phase, inputs):
        self.events.append(("begin", name, phase, tuple(np.shape(a) for a in inputs)))
        return len(self.events)

    def op_end(self, token, result):
        self.events.append(("end", token))

    def wrap_kernel(self, name, function):
        def call(*args, **kwargs):
            self.events.append(("kernel", name))
            return function(*args, **kwargs)

        return call


def test_every_forward_and_backward_is_reported_in_order():
    recorder = Recorder()
    x = tt.randn(2, 3, requires_grad=True)
    previous = autograd.set_observer(recorder)
    try:
        y = (x * 2.0).sum()
        y.backward()
    finally:
        assert autograd.set_observer(previous) is recorder
    begins = [(name, phase) for kind, name, phase, *_ in (e for e in recorder.events if e[0] == "begin")]
    assert begins == [
        ("Mul", "forward"), ("Sum", "forward"), ("Sum", "backward"), ("Mul", "backward"), ("AccumulateGrad", "accumulate")
    ]
    assert recorder.events[0][3] == ((2, 3), ())  # the forward sees the input arrays (and the constant)
    mul_backward = next(e for e in recorder.events if e[:3] == ("begin", "Mul", "backward"))
    assert mul_backward[3] == ((2, 3), (2, 3), ())  # the gradient, then the forward's inputs
    ends = [e for e in recorder.events if e[0] == "end"]
    assert [token for _, token in ends] == [1, 3, 5, 7, 9]  # each end closes the begin just before it
    assert np.allclose(x.grad.numpy(), 2.0)


def test_kernel_calls_are_wrapped_only_while_an_observer_is_set():
    recorder = Recorder()
    x = tt.randn(2, 5)
    previous = kernels.set_observer(recorder)
    try:
        x.softmax(axis=-1)
    finally:
        kernels.set_observer(previous)
    assert ("kernel", "softmax_forward") in recorder.events
    count = len(recorder.events)
    x.softmax(axis=-1)
    assert len(recorder.events) == count


class ModuleRecorder:
    def __init__(self):
        self.events = []

    def module_begin(self, module, args):
        self.events.append(("begin", type(module).__name__, tuple(np.shape(a.data) for a in args)))
        return module

    def module_end(self, token, output):
        self.events.append(("end", type(token).__name__, None if output is None else output.shape))


def test_module_calls_are_reported_nested_and_ended_even_when_forward_raises():
    from tinytorch.core import module

    model = tt.Sequential(tt.Dense(3, 2), tt.ReLU())
    recorder = ModuleRecorder()
    previous = module.set_observer(recorder)
    try:
        model(tt.randn(4, 3))
        try:
            model(tt.randn(4, 5))
        except ValueError:
            pass
    finally:
        assert module.set_observer(previous) is recorder
    assert recorder.events[:6] == [
        ("begin", "Sequential", ((4, 3),)), ("begin", "Dense", ((4, 3),)), ("end", "Dense", (4, 2)),
        ("begin", "ReLU", ((4, 2),)), ("end", "ReLU", (4, 2)), ("end", "Sequential", (4, 2)),
    ]  # fmt: skip
    assert recorder.events[6:] == [("begin", "Sequential", ((4, 5),)), ("begin", "Dense", ((4, 5),)),
                                   ("end", "Dense", None), ("end", "Sequential", None)]  # fmt: skip
