"""Judge one check: compare the student's outcome with the framework's, both as plain data.

Runs in the grader's process on two :class:`~tinytorch.grading.plaindata.Document` objects; no
object the student made ever exists here, so no ``__eq__`` of theirs is ever called. The rules:

- **Exceptions.** Where the framework raised, the student must raise an exception of the same
  built-in family (the framework's first built-in ancestor: ``DataFormatError`` is a
  ``ValueError``, so any ``ValueError`` passes). Where it returned, raising fails;
  ``NotImplementedError`` means "not written".
- **Arrays** must have the same class (``numpy.ndarray``, not a subclass), dtype and shape, and
  values equal (integers, booleans, strings) or close (floats: relative and absolute tolerances by
  precision, :data:`TOLERANCES`; NaN where the framework has NaN).
- **Numbers** compare by family (bool, int, float, complex) and value: a NumPy scalar stands for a
  Python number of its family. **Containers** compare by type (a tuple is not a list), length,
  keys and items. **Strings and bytes** must be equal.
- **Tensors** compare class, data, ``requires_grad``, whether they have a graph, and gradients.
  **Objects** (a model, a layer) compare class and attributes; inside a ``Module``, tensors compare
  by shape and dtype only, since a model's initial weights are random draws whose order the
  lesson does not fix. A TinyTorch class passes for its subclass or base class (a ``Sequential``
  where the framework returns an ``MLP``, as a lesson's ``isinstance`` check would), comparing the
  attributes both have.
- **Identity.** Tensors and objects are matched one to one: where the framework returns one of
  its inputs (``topological_order`` returns the graph's own tensors), the student must return that
  same input, and two references to one object (a shared layer) must not be two objects, or the
  other way round.
- **Arguments after the call** must match: in-place updates that should happen, and inputs that
  must stay untouched. When the result was back-propagated (see :mod:`.capture`), the inputs'
  gradients are compared too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .plaindata import Document, Malformed, scalar

#: (rtol, atol) by floating dtype character code
TOLERANCES = {"e": (1e-2, 1e-3), "f": (1e-4, 1e-6), "d": (1e-6, 1e-9), "g": (1e-6, 1e-9), "F": (1e-4, 1e-6), "D": (1e-6, 1e-9)}
PYTHON_FLOAT_TOLERANCE = (1e-6, 1e-9)
MODULE_CLASS = "tinytorch.core.module:Module"
UNAVAILABLE = "tinytorch.grading.capture:SolutionUnavailable"
_IDENTITY_KINDS = ("tensor", "node", "object")
_NUMERIC = {"bool": "bool", "int": "int", "float": "float", "complex": "complex"}


@dataclass
class Verdict:
    """The judgement of one check: passed, and if not, the first difference in words."""

    passed: bool
    message: str = ""
    not_written: bool = False
    delegated: bool = False


def exception_family(mro: list[str]) -> str:
    """The first built-in class in an exception's class hierarchy (``builtins:ValueError``)."""
    return next((name for name in mro if name.startswith("builtins:")), "builtins:BaseException")


def compare(expected: Document, got: Document) -> Verdict:
    """Does ``got`` (the student's outcome) match ``expected`` (the framework's)?"""
    try:
        return _compare(expected, got)
    except (Malformed, KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
        return Verdict(False, f"the result could not be read ({type(error).__name__}: {error})")


def _compare(expected: Document, got: Document) -> Verdict:
    e_meta, g_meta = expected.meta, got.meta
    g_status = g_meta.get("status")
    if g_status == "raised":
        exc = g_meta.get("exception") or {}
        mro = [m for m in exc.get("mro", []) if isinstance(m, str)]
        name = str(exc.get("type", "?")).split(":")[-1]
        message = str(exc.get("message", ""))[:300]
        raised = f"raised {name}" + (f": {message}" if message else "")
        if UNAVAILABLE in mro:
            return Verdict(False, f"calls the framework's own solution, which is not available while grading ({message})", delegated=True)
        if mro[:1] == ["builtins:NotImplementedError"]:
            return Verdict(False, "not written: raises NotImplementedError", not_written=True)
        if e_meta.get("status") == "raised":
            family = exception_family(expected.meta["exception"]["mro"])
            if family in mro:
                return Verdict(True)
            return Verdict(False, f"{raised}; expected a {family.split(':')[1]}")
        return Verdict(False, raised)
    if g_status != "returned":
        return Verdict(False, f"no result ({g_status or 'the outcome is malformed'})")
    if e_meta.get("status") == "raised":
        family = exception_family(expected.meta["exception"]["mro"]).split(":")[1]
        return Verdict(False, f"returned {render(got, got.roots['value'])}; expected it to raise {family}")
    matcher = _Matcher(expected, got)
    args_difference = None
    for path, e_arg, g_arg in _arguments(expected, got):
        args_difference = args_difference or matcher.match(e_arg, g_arg, path, in_args=True)
    value_difference = matcher.match(expected.roots["value"], got.roots["value"], "result")
    if value_difference:
        return Verdict(False, value_difference)
    e_back, g_back = e_meta.get("backward"), g_meta.get("backward")
    if e_back == "ok" and g_back != "ok":
        return Verdict(False, f"back-propagating through the result {g_back or 'was not possible'}")
    if args_difference:
        when = "after back-propagating through the result, " if e_back == "ok" else "after the call, "
        return Verdict(False, when + args_difference)
    return Verdict(True)


def _arguments(expected: Document, got: Document) -> list[tuple[str, dict, dict]]:
    """The arguments after the call, side by side: ("argument 0", expected, got), ("argument axis", ...)."""
    e_root, g_root = expected.entry(expected.roots["args"]), got.entry(got.roots["args"])
    if g_root is None or g_root.get("k") != "dict":
        return [("the arguments", expected.roots["args"], got.roots["args"])]
    e_parts, g_parts = dict((scalar(k), v) for k, v in e_root["items"]), dict((scalar(k), v) for k, v in g_root["items"])
    pairs = []
    for part, label in (("args", "argument {}"), ("kwargs", "argument {}")):
        e_part, g_part = expected.entry(e_parts[part]), got.entry(g_parts.get(part, {"k": "none"}))
        if g_part is None or g_part.get("k") != e_part["k"]:
            return [("the arguments", expected.roots["args"], got.roots["args"])]
        if part == "args":
            if len(e_part["items"]) != len(g_part["items"]):
                return [("the arguments", expected.roots["args"], got.roots["args"])]
            pairs += [(label.format(i), a, b) for i, (a, b) in enumerate(zip(e_part["items"], g_part["items"]))]
        else:
            g_named = {scalar(k): v for k, v in g_part["items"]}
            for k, v in e_part["items"]:
                name = scalar(k)
                if name not in g_named:
                    return [("the arguments", expected.roots["args"], got.roots["args"])]
                pairs.append((label.format(name), v, g_named[name]))
    return pairs


class _Matcher:
    """Walks two documents side by side (iteratively: graphs may be thousands deep) to the first difference."""

    def __init__(self, expected: Document, got: Document):
        self.e, self.g = expected, got
        self.e_to_g: dict[int, tuple[int, str]] = {}
        self.g_to_e: dict[int, tuple[int, str]] = {}
        self.done: set[tuple] = set()

    def match(self, e_value: dict, g_value: dict, path: str, in_args: bool = False) -> str | None:
        stack = [(e_value, g_value, path, False, in_args)]
        while stack:
            ev, gv, path, shape_only, args = stack.pop()
            difference, children = self._pair(ev, gv, path, shape_only, args)
            if difference:
                return difference
            stack.extend(reversed(children))
        return None

    def _pair(self, ev: dict, gv: dict, path: str, shape_only: bool, args: bool) -> tuple[str | None, list]:
        e_entry = self.e.entry(ev)
        g_entry = self.g.entry(gv) if isinstance(gv, dict) else None
        e_num, g_num = _number(self.e, ev, e_entry), _number(self.g, gv, g_entry)
        if e_num is not None or g_num is not None:
            return self._numbers(e_num, g_num, ev, gv, path), []
        if e_entry is None or g_entry is None:
            if e_entry is None and g_entry is None and scalar(ev) == scalar(gv):
                return None, []
            return f"{path}: expected {render(self.e, ev)}, got {render(self.g, gv)}", []
        ek, gk = e_entry["k"], g_entry["k"]
        if ek in _IDENTITY_KINDS or gk in _IDENTITY_KINDS:
            clash = self._identity(ev["v"], gv["v"], path)
            if clash is not False:
                return clash, []
        key = (ev["v"], gv["v"], shape_only, args)
        if key in self.done:
            return None, []
        self.done.add(key)
        if ek != gk:
            return f"{path}: expected {render(self.e, ev)}, got {render(self.g, gv)}", []
        return getattr(self, f"_{ek}")(e_entry, g_entry, path, shape_only, args)

    def _identity(self, ei: int, gi: int, path: str) -> str | None | bool:
        """None: this pair was matched before; False: a new pair, now matched; a string: a mismatch."""
        if ei in self.e_to_g:
            mapped, first = self.e_to_g[ei]
            if mapped == gi:
                return None
            return f"{path}: expected the same object as at {first}, got a different one"
        if gi in self.g_to_e:
            _, first = self.g_to_e[gi]
            return f"{path}: expected a different object from the one at {first}, got the same one"
        self.e_to_g[ei] = (gi, path)
        self.g_to_e[gi] = (ei, path)
        return False

    def _numbers(self, e_num, g_num, ev, gv, path) -> str | None:
        if e_num is None or g_num is None or e_num[0] != g_num[0]:
            return f"{path}: expected {render(self.e, ev)}, got {render(self.g, gv)}"
        family, e_val, e_dtype = e_num
        g_val = g_num[1]
        if family in ("float", "complex"):
            rtol, atol = TOLERANCES.get(e_dtype, PYTHON_FLOAT_TOLERANCE) if e_dtype else PYTHON_FLOAT_TOLERANCE
            if np.isnan(e_val) if family == "float" else np.isnan(complex(e_val)):
                same = bool(np.isnan(g_val) if family == "float" else np.isnan(complex(g_val)))
            else:
                same = bool(np.isclose(g_val, e_val, rtol=rtol, atol=atol))
        else:
            same = e_val == g_val
        return None if same else f"{path}: expected {_short(e_val)}, got {_short(g_val)}"

    # -- one method per entry kind: (difference or None, child pairs to compare) ----------------------
    def _items(self, e, g, path, shape_only, args, what):
        ei, gi = e["items"], g["items"]
        if len(ei) != len(gi):
            return f"{path}: expected a {what} of {len(ei)} items, got {len(gi)}", []
        return None, [(a, b, f"{path}[{i}]", shape_only, args) for i, (a, b) in enumerate(zip(ei, gi))]

    def _list(self, e, g, path, shape_only, args):
        return self._items(e, g, path, shape_only, args, "list")

    def _tuple(self, e, g, path, shape_only, args):
        return self._items(e, g, path, shape_only, args, "tuple")

    def _set(self, e, g, path, shape_only, args):
        e_keys, g_keys = _canonical_items(self.e, e["items"]), _canonical_items(self.g, g["items"])
        if e_keys is not None and g_keys is not None:
            return (None if sorted(e_keys) == sorted(g_keys) else f"{path}: the elements differ"), []
        return self._items(e, g, path, shape_only, args, "set")

    _frozenset = _set

    def _dict(self, e, g, path, shape_only, args):
        e_keys = _canonical_items(self.e, [k for k, _ in e["items"]])
        g_keys = _canonical_items(self.g, [k for k, _ in g["items"]])
        if e_keys is None or g_keys is None:
            return self._items({"items": [v for _, v in e["items"]]}, {"items": [v for _, v in g["items"]]}, path, shape_only, args, "dict")
        if sorted(e_keys) != sorted(g_keys):
            missing = sorted(set(e_keys) - set(g_keys))
            extra = sorted(set(g_keys) - set(e_keys))
            detail = "; ".join(part for part in (f"missing keys {missing}" if missing else "", f"unexpected keys {extra}" if extra else "") if part)
            return f"{path}: {detail}", []
        g_by_key = dict(zip(g_keys, (v for _, v in g["items"])))
        return None, [(v, g_by_key[k], f"{path}[{render(self.e, key)}]", shape_only, args) for k, (key, v) in zip(e_keys, e["items"])]

    def _bytes(self, e, g, path, shape_only, args):
        same = np.array_equal(self.e.array(e), self.g.array(g))
        return (None if same else f"{path}: the bytes differ"), []

    _bytearray = _bytes

    def _parts(self, e, g, path, shape_only, args):
        names = ("start", "stop", "step")
        return None, [(a, b, f"{path}.{n}", shape_only, args) for n, a, b in zip(names, e["parts"], g["parts"])]

    _slice = _range = _parts

    def _ndarray(self, e, g, path, shape_only, args):
        if e["cls"] != g["cls"]:
            return f"{path}: expected a {_cls(e['cls'])}, got a {_cls(g['cls'])}", []
        return compare_arrays(self.e.array(e), self.g.array(g), path, shape_only), []

    def _npscalar(self, e, g, path, shape_only, args):  # reached only for non-numeric kinds (strings)
        return compare_arrays(self.e.array(e), self.g.array(g), path, shape_only), []

    def _dtype(self, e, g, path, shape_only, args):
        return (None if e["v"] == g["v"] else f"{path}: expected dtype {np.dtype(e['v'])}, got {g['v']}"), []

    def _named(self, e, g, path, shape_only, args):
        return (None if e["v"] == g["v"] else f"{path}: expected {_cls(e['v'])}, got {_cls(g['v'])}"), []

    _class = _function = _named

    def _opaque(self, e, g, path, shape_only, args):
        return (None if e["cls"] == g["cls"] else f"{path}: expected a {_cls(e['cls'])}, got a {_cls(g['cls'])}"), []

    def _tensor(self, e, g, path, shape_only, args):
        if e["cls"] != g["cls"] and not _related(e, g):
            return f"{path}: expected a {_cls(e['cls'])}, got a {_cls(g['cls'])}", []
        if e["requires_grad"] != g["requires_grad"]:
            return f"{path}: expected requires_grad={e['requires_grad']}, got {g['requires_grad']}", []
        e_graph, g_graph = e["node"]["k"] != "none", g["node"]["k"] != "none"
        if e_graph != g_graph and not shape_only:
            if e_graph:
                return f"{path}: expected a tensor computed from the inputs (with a graph for backward), got one without a graph", []
            return f"{path}: expected a leaf tensor, got one computed by an op", []
        children = [(e["data"], g["data"], path, shape_only, args)]
        if not shape_only:
            children.append((e["grad"], g["grad"], f"{path}.grad", shape_only, args))
            if args and e_graph:
                children.append((e["node"], g["node"], f"{path}.grad_fn", shape_only, args))
        return None, children

    def _node(self, e, g, path, shape_only, args):
        if e["fn"] != g["fn"]:
            return f"{path}: expected the op {_cls(e['fn'])}, got {_cls(g['fn'])}", []
        return None, [(e["parents"], g["parents"], f"{path}.parents", shape_only, args)]

    def _object(self, e, g, path, shape_only, args):
        if not _related(e, g):
            return f"{path}: expected a {_cls(e['cls'])}, got a {_cls(g['cls'])}", []
        e_state, g_state = dict(e["state"]), dict(g["state"])
        if e["cls"] != g["cls"]:  # a subclass or a base class of the framework's: compare what both have
            e_state = {k: v for k, v in e_state.items() if k in g_state}
            g_state = {k: v for k, v in g_state.items() if k in e_state}
        if set(e_state) != set(g_state):
            missing, extra = sorted(set(e_state) - set(g_state)), sorted(set(g_state) - set(e_state))
            detail = "; ".join(p for p in (f"missing attributes {missing}" if missing else "", f"unexpected attributes {extra}" if extra else "") if p)
            return f"{path}: {detail}", []
        inside_module = shape_only or MODULE_CLASS in e.get("mro", [])
        return None, [(v, g_state[name], f"{path}.{name}", inside_module, args) for name, v in e["state"] if name in e_state]


def _related(e: dict, g: dict) -> bool:
    """The same class, or one a subclass of the other among TinyTorch's classes (an ``MLP`` is a
    ``Sequential``; a ``Parameter`` is a ``Tensor``): what an ``isinstance`` check in a lesson accepts."""
    if e["cls"] == g["cls"]:
        return True
    e_mro = [m for m in e.get("mro", [e["cls"]]) if m.startswith("tinytorch.")]
    g_mro = [m for m in g.get("mro", [g["cls"]]) if m.startswith("tinytorch.")]
    return bool(e_mro and g_mro) and (e["cls"] in g_mro or g["cls"] in e_mro)


def compare_arrays(e: np.ndarray, g: np.ndarray, path: str, shape_only: bool = False) -> str | None:
    """The difference between two arrays in words, or None when they match (see the module's rules)."""
    if e.dtype != g.dtype:
        return f"{path}: expected dtype {e.dtype}, got {g.dtype}"
    if e.shape != g.shape:
        return f"{path}: expected shape {e.shape}, got {g.shape}"
    if shape_only or e.size == 0:
        return None
    if e.dtype.kind in "fc":
        rtol, atol = TOLERANCES.get(e.dtype.char, PYTHON_FLOAT_TOLERANCE)
        with np.errstate(all="ignore"):
            ok = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    else:
        ok = g == e
    ok = np.asarray(ok, dtype=bool)
    if ok.all():
        return None
    bad = np.argwhere(~ok)
    where = tuple(int(i) for i in bad[0])
    first = f" at index {where}" if e.ndim else ""
    e_val, g_val = e[where] if e.ndim else e[()], g[where] if g.ndim else g[()]
    count = f"{len(bad)} of {e.size} values differ; first" if e.size > 1 else "the value differs"
    return f"{path}: {count}{first}: expected {_short(e_val)}, got {_short(g_val)}"


def _number(doc: Document, value: Any, entry: dict | None) -> tuple[str, Any, str | None] | None:
    """(family, value, dtype char) for a Python number or a numeric NumPy scalar; None otherwise."""
    if not isinstance(value, dict):
        return None
    if entry is None:
        family = _NUMERIC.get(value.get("k"))
        return (family, scalar(value), None) if family else None
    if entry["k"] == "npscalar":
        array = doc.array(entry)
        family = {"b": "bool", "i": "int", "u": "int", "f": "float", "c": "complex"}.get(array.dtype.kind)
        return (family, array[()].item(), array.dtype.char) if family else None
    return None


def _canonical_items(doc: Document, values: list) -> list[str] | None:
    """Sortable keys for set elements or dict keys that are plain scalars (or tuples of them); None otherwise."""
    keys = []
    for v in values:
        key = _canonical(doc, v)
        if key is None:
            return None
        keys.append(key)
    return keys


def _canonical(doc: Document, v: dict) -> str | None:
    entry = doc.entry(v)
    if entry is None:
        return json.dumps([v["k"], v.get("v")])
    if entry["k"] == "tuple":
        parts = [_canonical(doc, item) for item in entry["items"]]
        return None if any(p is None for p in parts) else "(" + ",".join(parts) + ")"
    number = _number(doc, v, entry)
    return json.dumps([number[0], repr(number[1])]) if number else None


def _cls(name: str) -> str:
    return name.replace(":", ".").split(".")[-1] if not name.startswith("tinytorch") else name.split(":")[-1]


def _short(x: Any, limit: int = 60) -> str:
    text = repr(x.item() if isinstance(x, np.generic) else x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render(doc: Document, value: Any, entry: dict | None = None, budget: int = 160) -> str:
    """A short, readable description of a value in a document (for messages and feedback)."""
    try:
        return _render(doc, value, entry, budget, depth=0)
    except (KeyError, TypeError, ValueError, IndexError, Malformed):
        return "<unreadable>"


def _render(doc: Document, value: Any, entry: dict | None, budget: int, depth: int) -> str:
    if entry is None:
        if not isinstance(value, dict):
            return "<unreadable>"
        entry = doc.entry(value)
        if entry is None:
            return _short(scalar(value), budget)
    k = entry["k"]
    if depth > 3:
        return "..."
    if k in ("list", "tuple", "set", "frozenset"):
        parts, used = [], 0
        for item in entry["items"]:
            text = _render(doc, item, None, budget, depth + 1)
            used += len(text) + 2
            if used > budget:
                parts.append("...")
                break
            parts.append(text)
        open_, close = {"list": "[]", "tuple": "()", "set": "{}", "frozenset": "{}"}[k]
        comma = "," if k == "tuple" and len(entry["items"]) == 1 else ""
        return open_ + ", ".join(parts) + comma + close
    if k == "dict":
        inner = ", ".join(f"{_render(doc, a, None, 40, depth + 1)}: {_render(doc, b, None, 40, depth + 1)}" for a, b in entry["items"][:6])
        return "{" + inner + (", ..." if len(entry["items"]) > 6 else "") + "}"
    if k in ("ndarray", "npscalar"):
        return _render_array(doc.array(entry), budget, entry.get("cls", "numpy:ndarray"))
    if k == "tensor":
        data = doc.entry(entry["data"])
        array = doc.array(data)
        grad = ", requires_grad=True" if entry["requires_grad"] else ""
        return f"{_cls(entry['cls'])}({_render_array(array, budget - 20, 'numpy:ndarray')}{grad})"
    if k in ("bytes", "bytearray"):
        raw = doc.array(entry).tobytes()
        return _short(raw if k == "bytes" else bytearray(raw), budget)
    if k in ("slice", "range"):
        return f"{k}(" + ", ".join(_render(doc, p, None, 20, depth + 1) for p in entry["parts"]) + ")"
    if k == "dtype":
        return f"dtype('{np.dtype(entry['v'])}')"
    if k in ("class", "function"):
        return _cls(entry["v"])
    if k == "node":
        return f"<{_cls(entry['fn'])} node>"
    return f"a {_cls(entry.get('cls', '?'))}"


def _render_array(array: np.ndarray, budget: int, cls: str) -> str:
    if array.ndim == 0:
        return _short(array[()], budget)
    text = np.array2string(array, threshold=40, edgeitems=2, max_line_width=1_000_000, separator=", ")
    text = " ".join(text.split())
    name = "array" if cls == "numpy:ndarray" else cls.split(":")[-1]
    if len(text) <= budget:
        suffix = "" if array.dtype in (np.float64, np.int64, np.bool_) else f", dtype={array.dtype}"
        return f"{name}({text}{suffix})"
    return f"{name} of shape {array.shape}, dtype {array.dtype}"
