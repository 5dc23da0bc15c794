"""Call an exercise function on a check's inputs and capture what happened, as plain data.

The same code runs on both sides of a check: in the grader's process with the framework's own
function (the expected outcome, computed once by ``tito grade setup``) and in the sandboxed child
with the student's function. An *outcome* is one :class:`~tinytorch.grading.plaindata.Document`
with two roots, encoded together so that a result which *is* one of the inputs is recorded as a
reference to it:

- ``args``: the positional and keyword arguments *after* the call (an exercise that must update a
  gradient in place, or must leave its inputs alone, is judged on them);
- ``value``: what the function returned;

and ``meta``: ``status`` (``"returned"`` or ``"raised"``), the exception's class hierarchy and
message when it raised, and ``backward``: when the function returned new tensors that require
grad, each is back-propagated with a fixed random cotangent (drawn from the check's seed), so the
inputs' ``.grad`` in ``args`` carry the vector-Jacobian product, and whether that backward pass
raised.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np

from .plaindata import Document, decode, encode, qualified_name

MESSAGE_CHARS = 2000


class SolutionUnavailable(RuntimeError):
    """Raised, while grading, by the framework's own function for an exercise being graded."""


def inputs_document(args: tuple, kwargs: dict) -> Document:
    """The plain-data form of a call's arguments (raises ``Unencodable`` for what cannot be replayed)."""
    return encode({"args": list(args), "kwargs": dict(kwargs)}, strict=True)


def rebuild_inputs(doc: Document) -> tuple[list, dict, set[int]]:
    """Fresh argument objects for one call, and the ids of every object that was rebuilt."""
    roots = decode(doc)
    return roots["args"], roots["kwargs"], _reachable_ids(roots)


def seed_everything(seed: int) -> None:
    """The framework's, NumPy's legacy and Python's generators, so random draws match on both sides."""
    import tinytorch

    tinytorch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def capture(fn: Callable, doc: Document, seed: int) -> Document:
    """Run ``fn`` on the inputs in ``doc`` and return the outcome document; never raises for ``fn``'s sake."""
    args, kwargs, input_ids = rebuild_inputs(doc)
    seed_everything(seed)
    meta: dict[str, Any] = {"status": "returned", "backward": None}
    value = None
    try:
        value = fn(*args, **kwargs)
    except BaseException as error:  # a student's function may raise anything, SystemExit included
        meta.update(status="raised", exception=describe_exception(error))
    if meta["status"] == "returned":
        meta["backward"] = backward_probe(value, input_ids, seed)
    return encode({"args": {"args": args, "kwargs": kwargs}, "value": value}, strict=False, meta=meta)


def describe_exception(error: BaseException) -> dict:
    try:
        message = str(error)[:MESSAGE_CHARS]
    except BaseException:  # a hostile __str__
        message = "<the exception's message could not be read>"
    return {"type": qualified_name(type(error)), "mro": [qualified_name(c) for c in type(error).__mro__], "message": message}


def new_tensors(value: Any, input_ids: set[int]) -> list:
    """Tensors the call made (not among its inputs) that require grad and have a graph: the result
    itself, or the items of a returned tuple, list or dict."""
    from tinytorch.core.tensor import Tensor

    items = value.values() if type(value) is dict else value if type(value) in (tuple, list) else [value]
    return [t for t in items if type(t) is Tensor and id(t) not in input_ids and t.requires_grad and t._node is not None]


def backward_probe(value: Any, input_ids: set[int], seed: int) -> str | None:
    """Back-propagate a seeded random cotangent through each new tensor; None when there is none."""
    tensors = new_tensors(value, input_ids)
    if not tensors:
        return None
    rng = np.random.default_rng(seed + 7919)
    try:
        for t in tensors:
            t.backward(rng.standard_normal(t.shape).astype(t.dtype), retain_graph=True)
    except BaseException as error:  # the student's graph may fail in backward: that is the finding
        info = describe_exception(error)
        return f"raised {info['type'].split(':')[-1]}: {info['message']}"
    return "ok"


def _reachable_ids(roots: dict) -> set[int]:
    """Ids of every object reachable from the rebuilt inputs (to tell a returned input from a new result)."""
    from tinytorch.core.autograd import Context
    from tinytorch.core.tensor import Tensor

    seen: set[int] = set()
    stack = list(roots.values())
    while stack:
        x = stack.pop()
        if x is None or isinstance(x, (bool, int, float, complex, str)) or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, Tensor):
            stack.extend([x.data, x.grad, x._node])
        elif isinstance(x, Context):
            stack.extend([x.parents, x.saved])
        elif hasattr(x, "__dict__") and not isinstance(x, type):
            stack.extend(vars(x).values())
    return seen
