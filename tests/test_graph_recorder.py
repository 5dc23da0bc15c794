"""The compiled graph recorder (tinytorch/_kernels/graph.pyx) against the readable Function.apply.

Under the "compiled" backend ``Function.apply`` is the compiled twin; under "reference" it is the one
in autograd.py. Both must build the same graph: same nodes, same fields, same results, same errors.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core import autograd, kernels
from tinytorch.core.autograd import Context, Function, topological_order

from .strategies import broadcast_pairs, float64_arrays

pytestmark = pytest.mark.skipif(not kernels.compiled_available(), reason="the compiled kernels are not built")


def recorder() -> object:
    return Function.__dict__["apply"].__func__


def test_function_apply_follows_the_backend():
    compiled = autograd._compiled_graph.apply
    with kernels.use("compiled"):
        assert recorder() is compiled
        with kernels.use("reference"):
            assert recorder() is autograd.reference_apply.__func__
        assert recorder() is compiled
        kernels.use("reference")  # a plain call switches for good (until the with block ends)
        assert recorder() is autograd.reference_apply.__func__


def leaves():
    rng = np.random.default_rng(0)
    return {
        "a": tt.tensor(rng.standard_normal((3, 4)), dtype="float32", requires_grad=True),
        "b": tt.tensor(rng.standard_normal((3, 4)), dtype="float32"),
        "col": tt.tensor(rng.standard_normal((3, 1)), dtype="float32", requires_grad=True),
        "w": tt.tensor(rng.standard_normal((4, 2)), dtype="float32", requires_grad=True),
        "ints": tt.tensor(np.arange(12).reshape(3, 4)),
    }


# Each builds a small graph from the leaves; together they take every branch of the recorder: a
# constant (Python number, NumPy scalar, array), a leaf and a node as parents, an input needing no
# gradient, keyword parameters, a result that is not floating point, and no_grad.
GRAPHS = {
    "leaf times constant": lambda t: t["a"] * t["b"],
    "python and numpy scalars": lambda t: (2.0 * t["a"] + np.float64(3.0)) / np.float32(2.0),
    "broadcast": lambda t: t["a"] * t["col"] - t["col"],
    "keyword parameters": lambda t: t["a"].exp().sum(axis=1, keepdims=True) * t["col"],
    "matmul and activation": lambda t: (t["a"] @ t["w"]).relu() ** 2,  # no op with a kernel: results equal
    "numpy array operand": lambda t: t["a"] * np.arange(4, dtype=np.float32),
    "integer inputs": lambda t: t["ints"] * 2 + t["a"],
    "boolean result": lambda t: t["a"] > 0,
    "views": lambda t: t["a"][1:, ::2].reshape(-1) * 3,
}


def describe(out: tt.Tensor, named: dict) -> dict:
    """Everything the recorder decided, in a form two runs can be compared by: nodes by position."""
    names = {id(v): k for k, v in named.items()}
    order = topological_order(out)
    position = {id(node): i for i, node in enumerate(order)}
    clock = autograd.write_clock()

    def parent(p):
        if p is None:
            return None
        if isinstance(p, Context):
            return ("node", position[id(p)])
        return ("leaf", names[id(p)])

    nodes = [
        {
            "class": type(node),
            "fn": node.fn,
            "needs": node.needs_input_grad,
            "parents": tuple(parent(p) for p in node.parents),
            "saved": [None if s is None else np.asarray(s).tolist() for s in node.saved],
            "stamp from now": node.stamp - clock,
            "output": (node.output_shape, node.output_dtype),
            "retains": node.retains,
            "freed": node.freed,
            "attributes": sorted(vars(node)),
        }
        for node in order
    ]
    return {"data": out.data.tolist(), "dtype": out.dtype, "requires_grad": out.requires_grad, "nodes": nodes}


def build(backend: str, graph, grad_enabled: bool = True) -> tuple[dict, dict]:
    with kernels.use(backend):
        named = leaves()
        with autograd.enable_grad() if grad_enabled else autograd.no_grad():
            out = graph(named)
        graph_description = describe(out, named)
        grads = {}
        if out.requires_grad:
            out.backward(np.ones(out.shape, dtype=out.data.dtype))
            grads = {k: v.grad.data.tolist() for k, v in named.items() if v.grad is not None}
    return graph_description, grads


@pytest.mark.parametrize("grad_enabled", [True, False], ids=["recording", "no_grad"])
@pytest.mark.parametrize("name", list(GRAPHS))
def test_both_recorders_build_the_same_graph(name, grad_enabled):
    compiled = build("compiled", GRAPHS[name], grad_enabled)
    reference = build("reference", GRAPHS[name], grad_enabled)
    assert compiled == reference
    graph, grads = compiled
    assert all(node["class"] is Context for node in graph["nodes"])
    if grad_enabled and name != "boolean result":
        assert graph["nodes"] and grads  # the comparison above was about a recorded graph
    else:
        assert graph["nodes"] == [] and grads == {}


@given(data=st.data(), shapes=broadcast_pairs(), wants=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_both_recorders_agree_on_drawn_shapes_and_layouts(data, shapes, wants):
    """Broadcast pairs, size-1 axes and non-contiguous inputs: the same graph, values and gradients."""
    arrays = [data.draw(float64_arrays(shape)) for shape in shapes]

    def graph(t):
        return ((t["x"] * t["y"] - t["y"]) / 2.0).exp() + t["x"]

    def run(backend):
        with kernels.use(backend):
            named = {k: tt.Tensor(a, dtype=a.dtype, requires_grad=w) for k, a, w in zip("xy", arrays, wants)}
            out = graph(named)
            description = describe(out, named)
            out.backward(np.ones(out.shape))
            return description, {k: v.grad.data.tolist() for k, v in named.items() if v.grad is not None}

    compiled, reference = run("compiled"), run("reference")
    assert compiled == reference
    assert sorted(compiled[1]) == [k for k, w in zip("xy", wants) if w]


@pytest.mark.parametrize("backend", kernels.BACKENDS)
def test_a_stale_view_is_refused_by_both_recorders(backend):
    with kernels.use(backend):
        a = tt.randn(4, requires_grad=True)
        h = a * 1
        view = h[:2] * 1
        source = view[:1]  # a view of view's memory, made by GetItem
        view *= 2  # recorded in place on view: source's history is stale
        with pytest.raises(RuntimeError, match=r"Mul: .* made by GetItem was then rewritten by \*="):
            source * 3


@pytest.mark.parametrize("backend", kernels.BACKENDS)
def test_the_profiler_sees_every_op_under_both_recorders(backend):
    from tinytorch.profiler import Profiler

    a, b = tt.randn(4, 4, requires_grad=True), tt.randn(4, 4)
    with kernels.use(backend), Profiler() as prof:
        (a * b + b).sum().backward()
    names = [event.name for event in prof.events()]
    for op in ("Mul", "Add", "Sum"):
        assert names.count(op) == 1 and names.count(f"{op}Backward") == 1, names


def test_a_forward_that_raises_leaves_no_node_behind():
    class Fails(Function):
        @staticmethod
        def forward(ctx, a):
            raise ValueError("Fails: bad input")

    a = tt.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="Fails: bad input"):
        Fails.apply(a)
    assert a._node is None and a.grad is None
