"""What a packaged model takes and returns: the dtype and shape of each input and output.

A shape holds ``-1`` where any size is accepted, always on the batch axis (the first). The server
checks every request against the input spec before the model sees it, so a wrong request is
answered with a message that names the field, what it got and what was expected, and never
reaches (or crashes) the model.

>>> import numpy as np
>>> spec = TensorSpec("input", "float32", (-1, 4))
>>> spec.check(np.zeros((2, 4))).shape
(2, 4)
>>> spec.check(np.zeros((2, 5)))
Traceback (most recent call last):
...
tinytorch.core.mlops.signature.SignatureError: inputs: got shape (2, 5); expected [-1, 4] (-1: any size)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..module import Module
from ..tensor import Tensor

__all__ = ["SignatureError", "TensorSpec", "Signature"]


class SignatureError(ValueError):
    """Input that does not match a signature; ``field`` names the part of the request that is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a signature: its name, dtype (a NumPy name) and shape (``-1``: any size).

    ``value_range`` is the inclusive (low, high) range of an integer input (token ids), or None;
    ``max_shape`` the largest size of each axis (-1: no limit; a language model's context length).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    value_range: tuple[int, int] | None = None
    max_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if not self.shape or any(n < -1 or n == 0 for n in self.shape):
            raise ValueError(f"TensorSpec {self.name!r}: shape must be positive sizes or -1, got {list(self.shape)}")
        if self.value_range is not None:
            object.__setattr__(self, "value_range", tuple(int(v) for v in self.value_range))
        if self.max_shape is not None:
            object.__setattr__(self, "max_shape", tuple(int(n) for n in self.max_shape))
            if len(self.max_shape) != len(self.shape):
                raise ValueError(f"TensorSpec {self.name!r}: max_shape {list(self.max_shape)} must have one entry per axis")

    def describe(self) -> str:
        return f"{self.dtype} {list(self.shape)}"

    def to_json(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.value_range is not None:
            out["value_range"] = list(self.value_range)
        if self.max_shape is not None:
            out["max_shape"] = list(self.max_shape)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "TensorSpec":
        max_shape = data.get("max_shape")
        return cls(data["name"], data["dtype"], tuple(data["shape"]), data.get("value_range"),
                   None if max_shape is None else tuple(max_shape))

    def check(self, array: Any, field: str = "inputs", exact_dtype: bool = False) -> np.ndarray:
        """``array`` as an array of this spec's dtype, or a :class:`SignatureError` naming ``field``.

        Parameters
        ----------
        array : array_like
            A batch: its first axis is the batch axis and must not be empty.
        field : str
            The request field the array came from, for the message.
        exact_dtype : bool
            Require this dtype exactly (binary ``.npy`` bodies). Otherwise numbers from JSON are
            accepted and converted: any int or float for a float spec, ints for an int spec.
        """
        want = np.dtype(self.dtype)
        try:
            array = np.asarray(array)
        except ValueError:  # ragged nested lists
            raise SignatureError(field, f"rows of different lengths; expected a rectangular {self.describe()} array") from None
        if array.dtype == object or array.dtype.kind in "USVb":
            kind = "booleans" if array.dtype.kind == "b" else "values that are not all numbers"
            raise SignatureError(field, f"got {kind} (dtype {array.dtype}); expected numbers of dtype {self.dtype}")
        if exact_dtype and array.dtype != want:
            raise SignatureError(field, f"got dtype {array.dtype}; expected {self.dtype} (convert with .astype(np.{self.dtype}))")
        if want.kind in "iu" and array.dtype.kind not in "iu":
            raise SignatureError(field, f"got dtype {array.dtype}; expected integers ({self.dtype})")
        if array.size == 0:
            raise SignatureError(field, f"is empty (shape {array.shape}); expected at least one example of {list(self.shape)}")
        if array.ndim != len(self.shape) or any(w != -1 and w != g for w, g in zip(self.shape, array.shape)):
            hint = " (a single example must be wrapped in a batch of one)" if array.ndim == len(self.shape) - 1 else ""
            raise SignatureError(field, f"got shape {array.shape}; expected {list(self.shape)} (-1: any size){hint}")
        if self.max_shape is not None and any(m != -1 and g > m for m, g in zip(self.max_shape, array.shape)):
            raise SignatureError(field, f"got shape {array.shape}; at most {list(self.max_shape)} (-1: no limit)")
        if array.dtype == want:
            converted = array
        else:
            with np.errstate(over="ignore"):
                converted = array.astype(want)
        if want.kind == "f" and not np.isfinite(converted).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(converted))[0])
            raise SignatureError(field, f"holds a NaN or infinite value (or one beyond {self.dtype}'s range) at index {list(where)}")
        if self.value_range is not None:
            low, high = self.value_range
            if array.min() < low or array.max() > high:
                bad = array.min() if array.min() < low else array.max()
                raise SignatureError(field, f"holds the value {int(bad)}; expected values in [{low}, {high}]")
        return np.ascontiguousarray(converted)


@dataclass(frozen=True)
class Signature:
    """The inputs and outputs of a model (one input and one output for the models TinyTorch packages)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default=())

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    def to_json(self) -> dict:
        return {"inputs": [s.to_json() for s in self.inputs], "outputs": [s.to_json() for s in self.outputs]}

    @classmethod
    def from_json(cls, data: dict) -> "Signature":
        return cls(tuple(TensorSpec.from_json(s) for s in data["inputs"]),
                   tuple(TensorSpec.from_json(s) for s in data.get("outputs", [])))

    @classmethod
    def infer(cls, model: Module, example: Any, input_name: str = "input", output_name: str = "output",
              value_range: tuple[int, int] | None = None, dynamic_axes: tuple[int, ...] = (0,),
              max_shape: tuple[int, ...] | None = None) -> "Signature":
        """The signature of ``model`` on a batch like ``example``: its dtype and shape, -1 on the dynamic axes.

        The model runs once on ``example`` (in eval mode, without a graph) to find the output's
        shape. ``dynamic_axes`` (default: the batch axis) become -1 in the input and the output; a
        language model adds its sequence axis, ``(0, 1)``, with ``max_shape=(-1, max_length)`` and
        ``value_range=(0, vocab_size - 1)``.
        """
        from ..autograd import no_grad

        array = np.asarray(example.data if isinstance(example, Tensor) else example)
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                out = model(Tensor(array, dtype=array.dtype))
        finally:
            model.train(was_training)
        out = np.asarray(out.data if isinstance(out, Tensor) else out)

        def free(shape: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(-1 if i in dynamic_axes else n for i, n in enumerate(shape))

        return cls(
            (TensorSpec(input_name, array.dtype.name, free(array.shape), value_range, max_shape),),
            (TensorSpec(output_name, out.dtype.name, free(out.shape)),),
        )
