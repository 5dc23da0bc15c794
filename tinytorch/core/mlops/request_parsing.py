"""Turning a ``POST /predict`` body into a checked batch, or into a 4xx that says what is wrong.

Two body formats:

- JSON (``Content-Type: application/json``): ``{"inputs": [[...], ...], "id": "...", "labels": [...]}``.
  ``inputs`` is a batch (a list of examples) matching the input signature; ``id`` (optional)
  routes the request in an A/B test; ``labels`` (optional, one int per example) marks labelled
  traffic, for accuracy monitoring.
- NumPy ``.npy`` (``Content-Type: application/x-npy``): the batch as one array, for large batches
  (a 256-image CIFAR batch is 3 MB as .npy, 10+ MB and much slower to parse as JSON). It is read
  with ``allow_pickle=False``. The id goes in the ``X-Request-ID`` header. A server sees the same
  header (dtype and shape) in request after request, and NumPy parses it with ``ast.literal_eval``
  (a third of a small request's parsing time): :func:`read_npy` parses each distinct header once
  (NumPy's own header reader, cached) and copies the data with ``np.frombuffer``.

Every problem becomes a :class:`RequestError` with an HTTP status and a message naming the field:
400 not JSON or a malformed .npy, 413 too large, 415 another content type, 422 a body that parses
but does not match the signature (shape, dtype, NaN, empty).

>>> import numpy as np
>>> from tinytorch.core.mlops.signature import TensorSpec
>>> spec = TensorSpec("input", "float32", (-1, 2))
>>> parse_predict_body(b'{"inputs": [[1, 2]], "id": "r1"}', "application/json", spec).inputs
array([[1., 2.]], dtype=float32)
>>> parse_predict_body(b'{"inputs": [[1, NaN]]}', "application/json", spec)
Traceback (most recent call last):
...
tinytorch.core.mlops.request_parsing.RequestError: 422 inputs: holds a NaN or infinite value (or one beyond float32's range) at index [0, 1]
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .signature import SignatureError, TensorSpec

__all__ = ["RequestError", "PredictRequest", "parse_predict_body", "read_npy", "JSON_TYPE", "NPY_TYPE"]

JSON_TYPE = "application/json"
NPY_TYPE = "application/x-npy"
MAX_ID_LENGTH = 200
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


@functools.lru_cache(maxsize=64)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    """(dtype, shape, Fortran order) of one .npy header (magic and length included), parsed by NumPy."""
    stream = io.BytesIO(header)
    version = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(stream)
    return dtype, shape, fortran_order


def read_npy(body: bytes) -> np.ndarray:
    """The array of an ``.npy`` body; never unpickles. Raises ValueError for a malformed or pickled one.

    >>> buffer = io.BytesIO(); np.save(buffer, np.arange(6, dtype=np.float32).reshape(2, 3))
    >>> read_npy(buffer.getvalue())
    array([[0., 1., 2.],
           [3., 4., 5.]], dtype=float32)
    """
    if body[:6] != _NPY_MAGIC or len(body) < 10:
        raise ValueError("the .npy magic string is missing")
    version = body[6]
    if version == 3:  # UTF-8 field names: rare; NumPy's reader handles it
        return np.load(io.BytesIO(body), allow_pickle=False)
    offset = 10 + int.from_bytes(body[8:10], "little") if version == 1 else 12 + int.from_bytes(body[8:12], "little")
    dtype, shape, fortran_order = _npy_header(bytes(body[:offset]))
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    count = math.prod(shape)
    if len(body) - offset != count * dtype.itemsize:
        raise ValueError(f"the header says {count} values of {dtype} ({count * dtype.itemsize} bytes), "
                         f"the data holds {len(body) - offset} bytes")
    flat = np.frombuffer(body, dtype, count, offset)
    return (flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)).copy()


class RequestError(Exception):
    """A bad request: the HTTP status to answer with, the field at fault, and a message for the client."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{status} {field}: {message}")
        self.status, self.field, self.message = status, field, message

    def to_json(self) -> dict:
        return {"error": self.message, "field": self.field, "status": self.status}


@dataclass
class PredictRequest:
    """A checked request: the batch (of the signature's dtype), its labels if any, and its id if any."""

    inputs: np.ndarray
    labels: np.ndarray | None
    request_id: str | None


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _labels(value: Any, rows: int) -> np.ndarray:
    try:
        labels = np.asarray(value)
    except ValueError:
        labels = np.asarray([], dtype=object)
    if labels.dtype.kind not in "iu" or labels.shape != (rows,):
        raise RequestError(422, "labels", f"expected {rows} integer class labels (one per example), got {json.dumps(value)[:80]}")
    return labels.astype(np.int64)


def _request_id(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool) or len(str(value)) > MAX_ID_LENGTH:
        raise RequestError(422, field, f"expected a string or integer of at most {MAX_ID_LENGTH} characters")
    return str(value)


def parse_predict_body(body: bytes, content_type: str, spec: TensorSpec, header_id: str | None = None,
                       max_rows: int = 4096) -> PredictRequest:
    """Parse and check a ``/predict`` body against ``spec``; raises :class:`RequestError` for anything wrong."""
    media = _media_type(content_type or "")
    if not body:
        raise RequestError(400, "body", "the request body is empty; send JSON {\"inputs\": [...]} or a .npy array")
    if media in (NPY_TYPE, "application/octet-stream"):
        if body.startswith(_ZIP_MAGIC):
            raise RequestError(400, "body", "expected one .npy array, got an .npz archive")
        try:
            array = read_npy(body)
        except (ValueError, OSError, EOFError, SyntaxError) as error:
            raise RequestError(400, "body", f"not a valid .npy array ({str(error)[:120]}); pickled arrays are refused") from None
        inputs, labels, request_id, exact = array, None, _request_id(header_id, "X-Request-ID"), True
    elif media == JSON_TYPE or media.endswith("+json"):
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(400, "body", f"not valid JSON: {error}") from None
        except RecursionError:
            raise RequestError(400, "body", "JSON nested too deeply") from None
        if not isinstance(payload, dict) or "inputs" not in payload:
            raise RequestError(422, "inputs", f"missing; expected a JSON object {{\"inputs\": <batch of {spec.describe()}>}}")
        unknown = sorted(set(payload) - {"inputs", "id", "labels"})
        if unknown:
            raise RequestError(422, unknown[0], "unknown field; the fields are inputs, id and labels")
        inputs, exact = payload["inputs"], False
        request_id = _request_id(payload.get("id"), "id") or _request_id(header_id, "X-Request-ID")
        labels = payload.get("labels")
    else:
        raise RequestError(415, "Content-Type", f"got {media or 'none'}; send {JSON_TYPE} or {NPY_TYPE}")
    try:
        checked = spec.check(inputs, field="inputs", exact_dtype=exact)
    except SignatureError as error:
        raise RequestError(422, error.field, str(error).split(": ", 1)[1]) from None
    if checked.shape[0] > max_rows:
        raise RequestError(413, "inputs", f"a batch of {checked.shape[0]} examples; at most {max_rows} per request")
    return PredictRequest(checked, None if labels is None else _labels(labels, checked.shape[0]), request_id)
