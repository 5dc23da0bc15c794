"""Plain data: Python objects (arrays, Tensors, models, nested containers) as JSON plus one byte blob.

Everything the grader and a sandboxed child exchange goes through this module: the inputs of a
check, and what the student's function returned. A *document* is

- ``objects``: a flat list of entries, one per container or object, each naming its kind
  (``list``, ``tuple``, ``dict``, ``ndarray``, ``tensor``, ``node``, ``object``, ...) and its
  parts as *values*;
- a value is inline (``{"k": "int", "v": "3"}``, floats as exact hex strings, strings) or a
  reference ``{"k": "ref", "v": i}`` into ``objects``, so an object reached twice is one entry
  (aliasing and identity survive the trip) and a graph 10,000 tensors deep is a flat list, never a
  deep recursion;
- ``arrays``: dtype, shape, offset and length of each array's bytes in one shared ``blob``.

A bundle of documents is saved as an ``.npz`` file holding two ``uint8`` arrays, the JSON and the
blob, and loaded with ``allow_pickle=False`` after checking the zip's members, their sizes and
every array's bounds (:func:`load_bundle`): a file written by a hostile process is rejected or
decoded into plain values, never executed.

The grader only *compares* documents (:mod:`tinytorch.grading.compare`); objects are rebuilt
(:func:`decode`) only from documents the grader wrote itself, the inputs of its checks, and only
from classes of TinyTorch and NumPy.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import json
import os
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: dtype kinds an array may have: booleans, integers, floats, complex numbers, fixed-size strings
ARRAY_KINDS = "biufcUS"
#: modules whose classes and functions a decoded document may name
TRUSTED_MODULES = ("tinytorch", "numpy", "builtins", "math", "collections")
MAX_OBJECTS = 2_000_000
MAX_JSON_BYTES = 256 << 20


class Unencodable(TypeError):
    """An object that has no plain-data form (a lambda, an open file, an object array)."""


class Malformed(ValueError):
    """A document or bundle that does not follow the format (truncated, forged, oversized)."""


@dataclass
class Document:
    """One encoded object graph: named root values, the object table, and the arrays it refers to."""

    roots: dict[str, Any]
    objects: list[dict]
    arrays: list[np.ndarray]
    meta: dict = field(default_factory=dict)

    def entry(self, value: dict) -> dict | None:
        """The object-table entry a reference value points at (None for an inline value)."""
        return self.objects[value["v"]] if value.get("k") == "ref" else None

    def array(self, entry: dict) -> np.ndarray:
        return self.arrays[entry["a"]]

    def digest(self, with_meta: bool = True) -> str:
        """A hash of the content, the same for equal documents (used to drop duplicate checks)."""
        h = hashlib.sha256(json.dumps([self.roots, self.objects, self.meta if with_meta else None], sort_keys=True).encode())
        for a in self.arrays:
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.asarray(a, order="C").tobytes())
        return h.hexdigest()


def qualified_name(obj: Any) -> str:
    """``module:qualname`` of a class or function."""
    return f"{getattr(obj, '__module__', None) or '?'}:{getattr(obj, '__qualname__', None) or type(obj).__name__}"


@functools.lru_cache(maxsize=4096)
def resolve(name: str) -> Any:
    """The class or function a ``module:qualname`` names; only from :data:`TRUSTED_MODULES`."""
    module_name, _, qualname = name.partition(":")
    if module_name.split(".")[0] not in TRUSTED_MODULES or not qualname:
        raise Malformed(f"plain data: {name!r} is not a TinyTorch or NumPy name")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        if part.startswith("<"):
            raise Malformed(f"plain data: {name!r} cannot be imported")
        target = getattr(target, part)
    return target


def _is_importable(obj: Any) -> bool:
    try:
        return resolve(qualified_name(obj)) is obj
    except Exception:  # any failure means: not reachable by name
        return False


def _float(x: float) -> str:
    return float(x).hex()


class Encoder:
    """Turns objects into values of one document; ``strict`` refuses what it cannot rebuild exactly.

    Strict mode encodes a check's inputs, which the child must rebuild as they were. Otherwise
    (results) anything unknown becomes an ``opaque`` entry naming its type, since a result only
    needs to be compared.
    """

    def __init__(self, strict: bool):
        self.strict = strict
        self.objects: list[dict] = []
        self.arrays: list[np.ndarray] = []
        self._ids: dict[int, int] = {}
        self._keep: list[Any] = []  # keeps encoded objects alive so their ids stay unique
        self._pending: list[tuple[int, Any]] = []

    def encode(self, obj: Any) -> dict:
        """The value for ``obj``; every object it reaches is added to the table."""
        value = self._value(obj)
        while self._pending:
            index, item = self._pending.pop()
            self.objects[index] = self._entry(item)
            if len(self.objects) > MAX_OBJECTS:
                raise Unencodable(f"more than {MAX_OBJECTS} objects")
        return value

    def document(self, roots: dict[str, Any], meta: dict | None = None) -> Document:
        return Document(roots, self.objects, self.arrays, meta or {})

    def _value(self, x: Any) -> dict:
        if x is None:
            return {"k": "none"}
        kind = type(x)
        if kind is bool:
            return {"k": "bool", "v": x}
        if kind is int:
            return {"k": "int", "v": str(x)}
        if kind is float:
            return {"k": "float", "v": _float(x)}
        if kind is complex:
            return {"k": "complex", "v": [_float(x.real), _float(x.imag)]}
        if kind is str:
            return {"k": "str", "v": x}
        key = id(x)
        if key in self._ids:
            return {"k": "ref", "v": self._ids[key]}
        index = len(self.objects)
        self._ids[key] = index
        self._keep.append(x)
        self.objects.append({})
        self._pending.append((index, x))
        return {"k": "ref", "v": index}

    def _add_array(self, array: np.ndarray) -> int:
        if array.dtype.kind not in ARRAY_KINDS or array.dtype.fields is not None:
            raise Unencodable(f"arrays of dtype {array.dtype} have no plain form")
        self.arrays.append(np.array(array, order="C", copy=True))  # a snapshot: the call may change it later
        return len(self.arrays) - 1

    def _entry(self, x: Any) -> dict:
        try:
            return self._entry_or_raise(x)
        except Unencodable:
            if self.strict:
                raise
            return {"k": "opaque", "cls": qualified_name(type(x))}

    def _entry_or_raise(self, x: Any) -> dict:
        Tensor, Context = _framework_types()
        kind = type(x)
        if kind in (list, tuple, set, frozenset):
            return {"k": kind.__name__, "items": [self._value(v) for v in x]}
        if kind is dict:
            return {"k": "dict", "items": [[self._value(k), self._value(v)] for k, v in x.items()]}
        if kind in (bytes, bytearray):
            return {"k": kind.__name__, "a": self._add_array(np.frombuffer(bytes(x), dtype=np.uint8))}
        if kind in (slice, range):
            return {"k": kind.__name__, "parts": [self._value(x.start), self._value(x.stop), self._value(x.step)]}
        if isinstance(x, np.ndarray):
            layout = "C" if x.flags.c_contiguous else "F" if x.flags.f_contiguous else "strided"
            return {"k": "ndarray", "cls": qualified_name(kind), "a": self._add_array(np.asarray(x)), "layout": layout}
        if isinstance(x, np.generic):
            return {"k": "npscalar", "cls": qualified_name(kind), "a": self._add_array(np.asarray(x))}
        if isinstance(x, np.dtype):
            if x.kind not in ARRAY_KINDS or x.fields is not None:
                raise Unencodable(f"dtype {x} has no plain form")
            return {"k": "dtype", "v": x.str}
        if isinstance(x, Tensor):
            return {
                "k": "tensor",
                "cls": qualified_name(kind),
                "mro": _mro(kind),
                "data": self._value(x.data),
                "requires_grad": bool(x.requires_grad),
                "grad": self._value(x.grad),
                "node": self._value(x._node),
                "retains_grad": x._node is not None and x._node.retains is not None and x._node.retains() is x,
                "state": self._state(getattr(x, "__dict__", {})),
            }
        if isinstance(x, Context):
            return {
                "k": "node",
                "cls": qualified_name(kind),
                "fn": qualified_name(x.fn),
                "parents": self._value(tuple(x.parents)),
                "needs": self._value(tuple(x.needs_input_grad)),
                "saved": self._value(tuple(x.saved)),
                "freed": bool(x.freed),
                "output_shape": self._value(tuple(x.output_shape)),
                "output_dtype": self._value(x.output_dtype),
                # what an op keeps besides its arrays (an axis, a closure to re-run): kept when it has a plain form
                "state": self._state(vars(x), lenient=True),
            }
        if isinstance(x, type) or callable(x) and hasattr(x, "__qualname__"):
            if _is_importable(x):
                return {"k": "class" if isinstance(x, type) else "function", "v": qualified_name(x)}
            raise Unencodable(f"{qualified_name(x)} cannot be imported by name")
        if isinstance(x, BaseException):
            return {"k": "object", "cls": qualified_name(kind), "mro": _mro(kind), "state": self._state({"args": x.args})}
        if kind.__module__.split(".")[0] == "tinytorch" or not self.strict:
            return {"k": "object", "cls": qualified_name(kind), "mro": _mro(kind), "state": self._state(_object_state(x))}
        raise Unencodable(f"objects of type {qualified_name(kind)} have no plain form")

    def _state(self, attributes: dict, lenient: bool = False) -> list:
        state = []
        for name, value in attributes.items():
            if not isinstance(name, str):
                raise Unencodable("attribute names must be strings")
            if lenient and self.strict:
                try:
                    probe = Encoder(strict=True)
                    probe.encode(value)
                except Unencodable:
                    continue
            state.append([name, self._value(value)])
        return state


@functools.lru_cache(maxsize=1)
def _framework_types() -> tuple[type, type]:
    """Tensor and the autograd node class (imported late: this module is imported by the sandbox
    before TinyTorch is)."""
    from tinytorch.core.autograd import Context
    from tinytorch.core.tensor import Tensor

    return Tensor, Context


def write_clock() -> int:
    """The autograd write clock of this process (imported late, as above)."""
    from tinytorch.core.autograd import write_clock

    return write_clock()


@functools.lru_cache(maxsize=1024)
def _mro(kind: type) -> list[str]:
    return [qualified_name(c) for c in kind.__mro__]


def _object_state(x: Any) -> dict:
    """An object's attributes: its ``__dict__`` and its ``__slots__``."""
    state = dict(getattr(x, "__dict__", None) or {})
    for klass in type(x).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(x, slot):
                state.setdefault(slot, getattr(x, slot))
    return state


def encode(roots: dict[str, Any], strict: bool = True, meta: dict | None = None) -> Document:
    """One document holding ``roots`` (encoded in order, so later roots refer to earlier objects)."""
    encoder = Encoder(strict)
    values = {name: encoder.encode(obj) for name, obj in roots.items()}
    return encoder.document(values, meta)


def scalar(value: dict) -> Any:
    """The Python object of an inline value (None, bool, int, float, complex, str)."""
    k = value["k"]
    if k == "none":
        return None
    if k == "bool":
        return bool(value["v"])
    if k == "int":
        return int(value["v"])
    if k == "float":
        return float.fromhex(value["v"])
    if k == "complex":
        return complex(float.fromhex(value["v"][0]), float.fromhex(value["v"][1]))
    if k == "str":
        return str(value["v"])
    raise Malformed(f"plain data: {k!r} is not an inline value")


_IMMUTABLE = ("tuple", "frozenset", "slice", "range", "bytes", "ndarray", "npscalar", "dtype", "class", "function")


def decode(doc: Document) -> dict[str, Any]:
    """Rebuild the root objects of a document the grader wrote (the inputs of a check).

    Mutable objects (lists, dicts, tensors, modules) are made first as empty shells so that
    references between them, cycles included, resolve; immutable ones (tuples, arrays) are built
    once the entries they contain exist; then the shells are filled.
    """
    Tensor, Context = _framework_types()
    built: dict[int, Any] = {}
    for i, entry in enumerate(doc.objects):
        k = entry["k"]
        if k == "list":
            built[i] = []
        elif k == "dict":
            built[i] = {}
        elif k == "set":
            built[i] = set()
        elif k == "bytearray":
            built[i] = bytearray(doc.array(entry).tobytes())
        elif k in ("tensor", "object", "node"):
            cls = resolve(entry["cls"])
            if k == "tensor" and not issubclass(cls, Tensor) or k == "node" and not issubclass(cls, Context):
                raise Malformed(f"plain data: {entry['cls']} is not a {k}")
            built[i] = cls.__new__(cls)
        elif k == "opaque":
            raise Malformed(f"plain data: an opaque {entry['cls']} cannot be rebuilt")

    def value(v: dict) -> Any:
        return built[v["v"]] if v["k"] == "ref" else scalar(v)

    def children(entry: dict) -> list[dict]:
        if entry["k"] in ("tuple", "frozenset"):
            return entry["items"]
        if entry["k"] in ("slice", "range"):
            return entry["parts"]
        return []

    # Immutable entries, children first (iteratively: tuples may nest deeply).
    for start in range(len(doc.objects)):
        if start in built:
            continue
        stack = [(start, False)]
        while stack:
            i, expanded = stack.pop()
            if i in built:
                continue
            entry = doc.objects[i]
            refs = [c["v"] for c in children(entry) if c["k"] == "ref" and c["v"] not in built]
            if not expanded and refs:
                stack.append((i, True))
                stack.extend((r, False) for r in refs)
                continue
            built[i] = _immutable(entry, doc, value)

    retaining = []
    for i, entry in enumerate(doc.objects):
        obj, k = built[i], entry["k"]
        if k == "list":
            obj.extend(value(v) for v in entry["items"])
        elif k == "set":
            obj.update(value(v) for v in entry["items"])
        elif k == "dict":
            obj.update((value(a), value(b)) for a, b in entry["items"])
        elif k == "tensor":
            obj.data = value(entry["data"])
            obj.requires_grad = entry["requires_grad"]
            obj.grad = value(entry["grad"])
            obj._node = value(entry["node"])
            if entry["retains_grad"]:
                retaining.append(obj)
            for name, v in entry["state"]:
                object.__setattr__(obj, name, value(v))
        elif k == "node":
            for name, v in entry["state"]:
                object.__setattr__(obj, name, value(v))
            obj.fn = resolve(entry["fn"])
            obj.parents = value(entry["parents"])
            obj.needs_input_grad = value(entry["needs"])
            obj.saved = value(entry["saved"])
            obj.freed = entry["freed"]
            obj.output_shape = value(entry["output_shape"])
            obj.output_dtype = value(entry["output_dtype"])
            obj.retains = None
            obj.stamp = write_clock()  # recorded now, in this process: later in-place writes count against it
        elif k == "object":
            for name, v in entry["state"]:
                object.__setattr__(obj, name, value(v))
    for tensor in retaining:  # after every node is filled: retain_grad() lives on the tensor's node
        tensor._node.retains = weakref.ref(tensor)
    return {name: value(v) for name, v in doc.roots.items()}


def _immutable(entry: dict, doc: Document, value) -> Any:
    k = entry["k"]
    if k == "tuple":
        return tuple(value(v) for v in entry["items"])
    if k == "frozenset":
        return frozenset(value(v) for v in entry["items"])
    if k == "slice":
        return slice(*(value(v) for v in entry["parts"]))
    if k == "range":
        start, stop, step = (value(v) for v in entry["parts"])
        return range(start, stop, step)
    if k == "bytes":
        return doc.array(entry).tobytes()
    if k == "ndarray":
        array = doc.array(entry).copy()
        if entry.get("layout") != "C" and array.ndim >= 2:
            array = np.asfortranarray(array)  # the same values in a layout that is not C-contiguous, as given
        return array
    if k == "npscalar":
        return doc.array(entry)[()]
    if k == "dtype":
        return np.dtype(entry["v"])
    if k in ("class", "function"):
        return resolve(entry["v"])
    raise Malformed(f"plain data: unknown entry kind {k!r}")


def save_bundle(path: Path, documents: list[Document]) -> None:
    """Write documents to one ``.npz`` (JSON and blob), atomically: a temporary file, then a rename."""
    arrays_index, chunks, offset = [], [], 0
    trees = []
    for doc in documents:
        refs = []
        for a in doc.arrays:
            raw = np.asarray(a, order="C").tobytes()
            refs.append(len(arrays_index))
            arrays_index.append({"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "nbytes": len(raw)})
            chunks.append(raw)
            offset += len(raw)
        trees.append({"roots": doc.roots, "objects": doc.objects, "meta": doc.meta, "arrays": refs})
    text = json.dumps({"format": "tinytorch-plain-1", "documents": trees, "arrays": arrays_index}, allow_nan=False)
    blob = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, tree=np.frombuffer(text.encode("utf-8"), dtype=np.uint8), blob=blob)
    os.replace(tmp, path)


def load_bundle(source: Path | bytes, max_bytes: int = 512 << 20) -> list[Document]:
    """Read a bundle written by :func:`save_bundle` (a path, or its bytes), trusting nothing in it.

    Raises :class:`Malformed` for anything but two stored (uncompressed) ``uint8`` members within
    ``max_bytes``, valid JSON of the expected shape, and arrays that lie inside the blob.
    """
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            size = Path(source).stat().st_size
        except OSError as error:
            raise Malformed(f"no result file ({error.strerror})") from None
        if size > max_bytes:
            raise Malformed(f"result file of {size} bytes is larger than the limit of {max_bytes}")
        data = Path(source).read_bytes()
    if len(data) > max_bytes:
        raise Malformed(f"result file of {len(data)} bytes is larger than the limit of {max_bytes}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if sorted(m.filename for m in members) != ["blob.npy", "tree.npy"]:
                raise Malformed("result file does not hold exactly the members tree and blob")
            if any(m.compress_type != zipfile.ZIP_STORED or m.file_size > max_bytes for m in members):
                raise Malformed("result file members are compressed or too large")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            tree_bytes, blob = npz["tree"], npz["blob"]
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as error:
        raise Malformed(f"result file is not a valid bundle: {error}") from None
    if tree_bytes.dtype != np.uint8 or blob.dtype != np.uint8 or tree_bytes.ndim != 1 or blob.ndim != 1:
        raise Malformed("result file members are not byte arrays")
    if tree_bytes.size > MAX_JSON_BYTES:
        raise Malformed("result file's JSON is too large")
    try:
        tree = json.loads(tree_bytes.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise Malformed(f"result file's JSON is invalid: {error}") from None
    return _documents(tree, blob)


def _documents(tree: Any, blob: np.ndarray) -> list[Document]:
    if not isinstance(tree, dict) or tree.get("format") != "tinytorch-plain-1":
        raise Malformed("result file is not in the tinytorch-plain-1 format")
    index, docs = tree.get("arrays"), tree.get("documents")
    if not isinstance(index, list) or not isinstance(docs, list):
        raise Malformed("result file lacks its documents or arrays")
    arrays = [_array(spec, blob) for spec in index]
    out = []
    for d in docs:
        if not isinstance(d, dict) or not isinstance(d.get("objects"), list) or not isinstance(d.get("roots"), dict):
            raise Malformed("a document lacks its objects or roots")
        refs = d.get("arrays")
        if not isinstance(refs, list) or not all(isinstance(r, int) and 0 <= r < len(arrays) for r in refs):
            raise Malformed("a document refers to arrays that do not exist")
        objects = d["objects"]
        if len(objects) > MAX_OBJECTS:
            raise Malformed("a document holds too many objects")
        doc = Document(d["roots"], objects, [arrays[r] for r in refs], d.get("meta") if isinstance(d.get("meta"), dict) else {})
        validate(doc)
        out.append(doc)
    return out


def _array(spec: Any, blob: np.ndarray) -> np.ndarray:
    try:
        dtype = np.dtype(spec["dtype"])
        shape = tuple(int(n) for n in spec["shape"])
        offset, nbytes = int(spec["offset"]), int(spec["nbytes"])
    except (TypeError, KeyError, ValueError) as error:
        raise Malformed(f"an array entry is invalid: {error}") from None
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.itemsize == 0 and dtype.kind not in "US":
        raise Malformed(f"arrays of dtype {dtype} are not allowed")
    if any(n < 0 for n in shape) or offset < 0 or nbytes < 0 or offset + nbytes > blob.size:
        raise Malformed("an array lies outside the blob")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize != nbytes:
        raise Malformed("an array's shape does not match its length")
    return np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape)


_VALUE_KINDS = {"none", "bool", "int", "float", "complex", "str", "ref"}


def validate(doc: Document) -> None:
    """Check that every value is well formed and every reference and array index is in range."""
    n_objects, n_arrays = len(doc.objects), len(doc.arrays)

    def check_value(v: Any) -> None:
        if not isinstance(v, dict) or v.get("k") not in _VALUE_KINDS:
            raise Malformed(f"a value is malformed: {str(v)[:80]}")
        k = v["k"]
        if k == "ref":
            if not isinstance(v.get("v"), int) or not 0 <= v["v"] < n_objects:
                raise Malformed("a reference points outside the document")
        elif k != "none":
            try:
                scalar(v)
            except (TypeError, ValueError, KeyError, IndexError, OverflowError) as error:
                raise Malformed(f"a {k} value is malformed: {error}") from None

    for v in doc.roots.values():
        check_value(v)
    for entry in doc.objects:
        if not isinstance(entry, dict) or not isinstance(entry.get("k"), str):
            raise Malformed("an object entry is malformed")
        if "items" in entry:
            if not isinstance(entry["items"], list):
                raise Malformed("an object's items are malformed")
            for item in entry["items"]:
                if entry["k"] == "dict" and not (isinstance(item, list) and len(item) == 2):
                    raise Malformed("a dict entry is malformed")
                for v in item if entry["k"] == "dict" else [item]:
                    check_value(v)
        for key in ("data", "grad", "node", "parents", "needs", "saved", "output_shape", "output_dtype"):
            if key in entry:
                check_value(entry[key])
        for key in ("parts",):
            if key in entry:
                if not isinstance(entry[key], list) or len(entry[key]) != 3:
                    raise Malformed("a slice or range is malformed")
                for v in entry[key]:
                    check_value(v)
        if "state" in entry:
            if not isinstance(entry["state"], list) or not all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in entry["state"]
            ):
                raise Malformed("an object's state is malformed")
            for _, v in entry["state"]:
                check_value(v)
        if "a" in entry and (not isinstance(entry["a"], int) or not 0 <= entry["a"] < n_arrays):
            raise Malformed("an object refers to an array that does not exist")
        for key in ("cls", "fn", "v"):
            if key in entry and not isinstance(entry[key], str):
                raise Malformed("an object's class name is malformed")
        if "mro" in entry and not (isinstance(entry["mro"], list) and all(isinstance(m, str) for m in entry["mro"])):
            raise Malformed("an object's class hierarchy is malformed")
