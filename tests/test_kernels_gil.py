"""Every compiled kernel lets go of the GIL while its loops run, so other Python threads go on.

A ``nogil`` Cython function called with the GIL held keeps it: the server's event loop (which
parses the next request while the model runs in a worker thread) or a thread loading the next
batch would wait for the whole kernel. The check: a worker thread calls the kernel while this
thread counts, timestamping every few iterations. The longest stretch of one call in which this
thread got nothing done is the time the kernel kept the GIL. A kernel that releases it leaves
gaps no longer than a scheduler hiccup; one that holds it leaves a gap as long as itself, which
the control (``sum`` over a ``range``, one long C call that holds the GIL) shows the check sees.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable

import numpy as np
import pytest

from tinytorch.core import kernels

pytestmark = pytest.mark.skipif(not kernels.compiled_available(), reason="the compiled kernels are not built")

CALLS = 5  # calls per kernel; the verdict is on the freest call (noise only ever lengthens a stall)
HELD = 0.5  # a call is judged to hold the GIL when this thread stood still for half of it or more


def longest_stall(call: Callable[[], object], calls: int = CALLS) -> float:
    """The least, over ``calls`` worker-thread calls, of (longest stretch this thread made no progress) / (call time).

    A kernel that keeps the GIL stalls this thread for the whole of its loop in every call, whatever
    else the machine does; a busy machine (or another Python thread taking the GIL) can only make a
    releasing kernel's stalls longer, so the freest call is the one that tells them apart.
    """
    spans: list[tuple[float, float]] = []
    stamps: list[float] = []
    started, finished = threading.Event(), threading.Event()

    def worker() -> None:
        started.wait()
        for _ in range(calls):
            begin = time.perf_counter()
            call()
            spans.append((begin, time.perf_counter()))
        finished.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # a thread waiting for the GIL gets it within half a millisecond of asking
    thread = threading.Thread(target=worker)
    thread.start()
    try:
        started.set()
        now = time.perf_counter
        while not finished.is_set():
            stamps.append(now())
            for _ in range(50):
                pass
    finally:
        thread.join()
        sys.setswitchinterval(interval)
    marks = np.asarray(stamps)
    ratios = []
    for begin, end in spans:
        inside = marks[(marks > begin) & (marks < end)]
        edges = np.concatenate([[begin], inside, [end]])
        ratios.append(float(np.diff(edges).max() / (end - begin)))
    return float(min(ratios))


def _f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _int8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-128, 128, shape, dtype=np.int8)


def kernel_calls() -> dict[str, Callable[[Callable[[str], Callable]], Callable[[], object]]]:
    """For every kernel: given the compiled implementations, a call on inputs big enough to take milliseconds."""
    rng = np.random.default_rng(0)
    rows, image, small = _f32(rng, 2048, 2048), _f32(rng, 32, 32, 64, 64), _f32(rng, 32, 32, 32, 32)
    weight, bias, grad_conv = _f32(rng, 64, 32, 3, 3), _f32(rng, 64), _f32(rng, 32, 64, 32, 32)
    heads = [_f32(rng, 8, 8, 256, 32) for _ in range(3)]
    qkv, cached_q = _f32(rng, 8, 256, 3 * 256), _f32(rng, 8, 8, 64, 32)
    params = [_f32(rng, 4_000_000) for _ in range(4)]
    channels = np.ones(32, np.float32)
    table: dict[str, Callable] = {}

    def on(name: str, build: Callable[[Callable[[str], Callable]], Callable[[], object]]) -> None:
        table[name] = build

    on("matmul", lambda k: lambda: k("matmul")(rows[:1024], rows[:, :1024]))
    on("softmax_forward", lambda k: lambda: k("softmax_forward")(rows))
    on("log_softmax_forward", lambda k: lambda: k("log_softmax_forward")(rows))
    on("softmax_backward", lambda k: (lambda y: lambda: k("softmax_backward")(y, rows))(k("softmax_forward")(rows)))
    on("log_softmax_backward",
       lambda k: (lambda y: lambda: k("log_softmax_backward")(y, rows))(k("log_softmax_forward")(rows)))
    on("conv2d_forward", lambda k: lambda: k("conv2d_forward")(small, weight, bias, (1, 1), (1, 1)))
    on("conv2d_fused_forward",
       lambda k: lambda: k("conv2d_fused_forward")(small, weight, bias, (1, 1), (1, 1), relu=True, pool=(2, 2)))
    on("conv2d_backward", lambda k: lambda: k("conv2d_backward")(small, weight, grad_conv, (1, 1), (1, 1)))
    pool = ((2, 2), (2, 2), (0, 0))
    planes = _f32(rng, 64, 64, 64, 64)  # the 2x2 pool is fast: four times the image, for a call of milliseconds
    on("maxpool2d_forward", lambda k: lambda: k("maxpool2d_forward")(planes, *pool))
    on("maxpool2d_backward", lambda k: (lambda out: lambda: k("maxpool2d_backward")(out[0], out[1], planes.shape))(
        k("maxpool2d_forward")(planes, *pool)))
    on("avgpool2d_forward", lambda k: lambda: k("avgpool2d_forward")(image, (3, 3), (1, 1), (1, 1)))
    on("avgpool2d_backward", lambda k: lambda: k("avgpool2d_backward")(image, image.shape, (3, 3), (1, 1), (1, 1)))
    on("global_avgpool2d_forward", lambda k: lambda: k("global_avgpool2d_forward")(image))
    on("global_avgpool2d_backward",
       lambda k: lambda: k("global_avgpool2d_backward")(image.mean(axis=(2, 3)), image.shape))
    on("relu_forward", lambda k: lambda: k("relu_forward")(image))
    on("relu_backward", lambda k: lambda: k("relu_backward")(image, image))
    on("gelu_forward", lambda k: lambda: k("gelu_forward")(image))
    on("gelu_backward", lambda k: lambda: k("gelu_backward")(image, image))
    width = np.ones(2048, np.float32)
    on("layer_norm_forward", lambda k: lambda: k("layer_norm_forward")(rows, width, width, 1e-5))
    on("layer_norm_backward", lambda k: (lambda out: lambda: k("layer_norm_backward")(rows, rows, out[1], out[2], width))(
        k("layer_norm_forward")(rows, width, width, 1e-5)))
    on("batchnorm_forward_train", lambda k: lambda: k("batchnorm_forward_train")(image, channels, channels, 1e-5))
    on("batchnorm_forward_eval",
       lambda k: lambda: k("batchnorm_forward_eval")(image, channels * 0, channels, channels, channels, 1e-5))
    on("batchnorm_backward", lambda k: (lambda out: lambda: k("batchnorm_backward")(image, image, out[1], out[2], channels))(
        k("batchnorm_forward_train")(image, channels, channels, 1e-5)))
    on("attention_forward", lambda k: lambda: k("attention_forward")(*heads, causal=True))
    on("attention_backward", lambda k: (lambda out: lambda: k("attention_backward")(
        heads[0], *heads, out[1], out[2], 32 ** -0.5, 0.0, causal=True))(k("attention_forward")(*heads, causal=True)))
    on("attention_cached", lambda k: lambda: k("attention_cached")(cached_q, heads[1], heads[2], 256))
    on("attention_packed_forward", lambda k: lambda: k("attention_packed_forward")(qkv, 8, causal=True))
    on("attention_packed_backward", lambda k: (lambda out: lambda: k("attention_packed_backward")(
        qkv[..., :256], qkv, 8, out[1], out[2], 32 ** -0.5, 0.0, causal=True))(
        k("attention_packed_forward")(qkv, 8, causal=True)))
    on("sgd_step", lambda k: lambda: k("sgd_step")(params[0], params[1], params[2], 1e-3, momentum=0.9))
    on("adam_step", lambda k: lambda: k("adam_step")(params[0], params[1], params[2], np.abs(params[3]), 1, 1e-3,
                                                     0.9, 0.999, 1e-8))
    on("rmsprop_step", lambda k: lambda: k("rmsprop_step")(params[0], params[1], np.abs(params[2]), 1e-3))
    q_rows, q_weight = _int8(rng, 1024, 2048), _int8(rng, 1024, 2048)
    on("int8_linear", lambda k: lambda: k("int8_linear")(q_rows, 3, q_weight, None))
    q_image, q_filters = _int8(rng, 16, 32, 32, 32), _int8(rng, 64, 32, 3, 3)
    on("int8_conv2d", lambda k: lambda: k("int8_conv2d")(q_image, 3, q_filters, None, (1, 1), (1, 1)))
    accumulators = rng.integers(-2**20, 2**20, (64, 64, 64, 64), dtype=np.int32)
    on("int8_requantize", lambda k: lambda: k("int8_requantize")(
        accumulators, np.full(64, 2**30, np.int32), np.full(64, 40, np.int32), 0, relu=True))
    q_planes = _int8(rng, 32, 64, 64, 64)
    on("int8_maxpool2d", lambda k: lambda: k("int8_maxpool2d")(q_planes, (2, 2), (2, 2), (0, 0)))
    return table


@pytest.fixture(scope="module")
def call_builders():
    """The calls, with their inputs (a few hundred MB), made once for this module and freed after it."""
    return kernel_calls()


def test_every_kernel_has_a_call(call_builders):
    assert sorted(call_builders) == sorted(kernels.KERNEL_NAMES)


def test_the_check_sees_a_call_that_keeps_the_gil():
    assert longest_stall(lambda: sum(range(3_000_000))) > HELD


@pytest.fixture
def one_kernel_thread():
    """One OpenMP thread for the kernel: on two cores this thread keeps the other one to itself."""
    before = kernels.get_num_threads()
    kernels.set_num_threads(1)
    yield
    kernels.set_num_threads(before)


@pytest.mark.parametrize("name", kernels.KERNEL_NAMES)
def test_compiled_kernel_releases_the_gil(name, one_kernel_thread, call_builders):
    with kernels.use("compiled"):
        implementation = {n: kernels.implementation(n) for n in kernels.KERNEL_NAMES}
    call = call_builders[name](implementation.__getitem__)
    call()  # warm: scratch buffers, first-touch pages
    stall = longest_stall(call)
    assert stall < HELD, f"{name}: this thread stood still for {stall:.0%} of a call: the kernel kept the GIL"
