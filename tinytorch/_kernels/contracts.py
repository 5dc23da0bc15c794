"""Input checks shared by every kernel implementation.

A compiled kernel indexes raw memory without bounds checks, so its arguments are checked here, in
Python, before it drops the GIL: a wrong dtype or a shape mismatch becomes a clear error that names
the kernel, never a crash or a silently wrong answer. Non-contiguous input is copied once into a
C-contiguous array rather than rejected.
"""

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_input(kernel: str, name: str, x, ndim: int | None = None, dtype=None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32/float64 array, or raise naming ``kernel`` and ``name``.

    ``ndim`` checks the rank; ``dtype`` (when given) is the dtype ``x`` must share with another
    argument of the same kernel.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype}; expected float32 or float64")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype} but the other inputs are {np.dtype(dtype)}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")
    # np.ascontiguousarray would turn a 0-d array into shape (1,); a 0-d array is contiguous already
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def same_shape(kernel: str, name: str, x: np.ndarray, expected: tuple[int, ...]) -> None:
    """Raise unless ``x.shape == expected``."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{kernel}: {name} has shape {tuple(x.shape)}; expected {tuple(expected)}")


def matmul_inputs(kernel: str, a, b, out, accumulate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Check a matrix product's operands: ``a`` (M, K) and ``b`` (K, N) NumPy arrays, and ``out``.

    ``out``, when given, must be a C-contiguous (M, N) array of the product's dtype; ``accumulate``
    (``out += a @ b``) needs it. Any strides and dtypes are accepted for ``a`` and ``b``, as by ``np.matmul``.
    """
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{kernel}: {name} must be a NumPy array, got {type(x).__name__}")
        if x.ndim != 2:
            raise ValueError(f"{kernel}: {name} must be 2-D, got shape {x.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{kernel}: a has shape {a.shape} and b {b.shape}; a's columns must match b's rows")
    if out is None:
        if accumulate:
            raise ValueError(f"{kernel}: accumulate=True adds into out, so out must be given")
        return a, b
    expected = (a.shape[0], b.shape[1])
    if not isinstance(out, np.ndarray) or out.shape != expected or out.dtype != np.result_type(a, b):
        got = f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"{kernel}: out must be a {expected} array of {np.result_type(a, b)}, got {got}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{kernel}: out must be C-contiguous, got strides {out.strides}")
    return a, b


def int_pair(kernel: str, name: str, value, minimum: int) -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of Python ints, each at least ``minimum``, or raise naming ``kernel``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{kernel}: {name} must be an (h, w) pair of ints, got {value!r}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{kernel}: {name} must be an (h, w) pair of ints, got {value!r}")
    pair = (int(value[0]), int(value[1]))
    if min(pair) < minimum:
        raise ValueError(f"{kernel}: {name} must be at least {minimum} in each direction, got {pair}")
    return pair


def shape_tuple(kernel: str, name: str, value, ndim: int) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ``ndim`` non-negative Python ints (an array shape), or raise naming ``kernel``."""
    shape = tuple(value) if isinstance(value, (tuple, list)) else None
    if shape is None or len(shape) != ndim or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in shape):
        raise ValueError(f"{kernel}: {name} must be a shape of {ndim} non-negative ints, got {value!r}")
    return tuple(int(v) for v in shape)


def window_output_size(
    kernel: str, size: tuple[int, int], window: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> tuple[int, int]:
    """``(Ho, Wo)`` of a sliding window over an ``(H, W)`` plane: ``(H + 2 ph - KH) // sh + 1`` each way.

    Raises naming ``kernel`` when the window is larger than the padded input.
    """
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    if window[0] > padded[0] or window[1] > padded[1]:
        raise ValueError(
            f"{kernel}: the {window[0]}x{window[1]} window is larger than the padded input "
            f"{padded[0]}x{padded[1]} (input {size[0]}x{size[1]}, padding {padding})"
        )
    return (padded[0] - window[0]) // stride[0] + 1, (padded[1] - window[1]) // stride[1] + 1


def pool_padding(kernel: str, window: tuple[int, int], padding: tuple[int, int]) -> None:
    """Raise unless ``padding`` is at most half the pooling window (as in PyTorch), so no window is all padding."""
    if padding[0] > window[0] // 2 or padding[1] > window[1] // 2:
        raise ValueError(f"{kernel}: padding {padding} must be at most half the {window[0]}x{window[1]} window")


def channel_vector(kernel: str, name: str, v, channels: int, dtype) -> np.ndarray:
    """Return ``v`` as a C-contiguous ``(channels,)`` array of ``dtype``, or raise naming ``kernel``."""
    v = float_input(kernel, name, v, ndim=1, dtype=dtype)
    same_shape(kernel, name, v, (channels,))
    return v


def conv_weight_fits(kernel: str, x_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> None:
    """Raise unless a (F, C, KH, KW) weight with a non-empty kernel reads the C channels of (N, C, H, W) input."""
    if weight_shape[1] != x_shape[1]:
        raise ValueError(
            f"{kernel}: weight of shape {weight_shape} expects {weight_shape[1]} input channels, "
            f"but x of shape {x_shape} has {x_shape[1]}"
        )
    if min(weight_shape[2:]) < 1:
        raise ValueError(f"{kernel}: weight of shape {weight_shape} has an empty kernel")


def conv2d_inputs(kernel: str, x, weight, stride, padding):
    """Check a convolution's x (N, C, H, W) and weight (F, C, KH, KW) and its stride and padding.

    Returns ``(x, weight, stride, padding, (Ho, Wo))`` with the arrays C-contiguous.
    """
    x = float_input(kernel, "x", x, ndim=4)
    weight = float_input(kernel, "weight", weight, ndim=4, dtype=x.dtype)
    conv_weight_fits(kernel, x.shape, weight.shape)
    stride = int_pair(kernel, "stride", stride, 1)
    padding = int_pair(kernel, "padding", padding, 0)
    out_size = window_output_size(kernel, x.shape[2:], weight.shape[2:], stride, padding)
    return x, weight, stride, padding, out_size


def conv2d_fused_inputs(kernel: str, x, weight, stride, padding, pool):
    """Check a fused convolution's inputs (as :func:`conv2d_inputs`) and its max-pool window.

    The pool is non-overlapping and unpadded: windows of ``pool`` (>= 1 each, at most the
    convolution's output) taken ``pool`` apart. Returns ``(x, weight, stride, padding, (Ho, Wo),
    pool, (Hq, Wq))``, (Ho, Wo) the convolution's output size and (Hq, Wq) the pooled one.
    """
    x, weight, stride, padding, out_size = conv2d_inputs(kernel, x, weight, stride, padding)
    pool = int_pair(kernel, "pool", pool, 1)
    pooled = window_output_size(kernel, out_size, pool, pool, (0, 0))
    return x, weight, stride, padding, out_size, pool, pooled


def pool_geometry(kernel: str, input_shape, window, stride, padding):
    """Check a pooling window over an (N, C, H, W) input; returns ``(window, stride, padding, (Ho, Wo))``."""
    if min(input_shape[2:]) < 1:
        raise ValueError(f"{kernel}: the input of shape {tuple(input_shape)} has empty (H, W) planes")
    window = int_pair(kernel, "kernel", window, 1)
    stride = int_pair(kernel, "stride", stride, 1)
    padding = int_pair(kernel, "padding", padding, 0)
    pool_padding(kernel, window, padding)
    return window, stride, padding, window_output_size(kernel, input_shape[2:], window, stride, padding)


def argmax_input(kernel: str, argmax, expected: tuple[int, ...]) -> np.ndarray:
    """Return ``argmax`` as a C-contiguous int64 array of shape ``expected``, or raise naming ``kernel``."""
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int64:
        kind = argmax.dtype if isinstance(argmax, np.ndarray) else type(argmax).__name__
        raise TypeError(f"{kernel}: argmax must be an int64 array (from maxpool2d_forward), got {kind}")
    same_shape(kernel, "argmax", argmax, expected)
    return np.ascontiguousarray(argmax)


def batchnorm_inputs(kernel: str, x, **vectors) -> tuple[np.ndarray, ...]:
    """Return ``x`` (N, C, ...) and then each named (C,) vector, all C-contiguous and of x's dtype.

    Raises naming ``kernel`` unless x has a channel axis and every vector has one value per channel.
    """
    x = float_input(kernel, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{kernel}: x must be (N, C) or (N, C, H, W), got shape {x.shape}")
    return (x, *(channel_vector(kernel, name, v, x.shape[1], x.dtype) for name, v in vectors.items()))


def epsilon(kernel: str, eps) -> float:
    """Return ``eps`` as a non-negative Python float, or raise naming ``kernel``."""
    value = float(eps)
    if not value >= 0:
        raise ValueError(f"{kernel}: eps must be a non-negative number, got {eps!r}")
    return value


GELU_APPROXIMATIONS = ("none", "tanh")


def gelu_approximation(kernel: str, approximate) -> str:
    """Return ``approximate`` ("none": exact, through erf; "tanh": GPT-2's formula), or raise naming ``kernel``."""
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"{kernel}: approximate must be one of {GELU_APPROXIMATIONS}, got {approximate!r}")
    return approximate


def optional_row_vector(kernel: str, name: str, v, length: int, dtype) -> np.ndarray | None:
    """None, or ``v`` as a C-contiguous ``(length,)`` array of ``dtype`` (a layer norm's weight or bias)."""
    if v is None:
        return None
    v = float_input(kernel, name, v, ndim=1, dtype=dtype)
    same_shape(kernel, name, v, (length,))
    return v


def layer_norm_inputs(kernel: str, x, weight, bias) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Check a layer norm's x (N, D) and its optional (D,) weight and bias; return them C-contiguous."""
    x = float_input(kernel, "x", x, ndim=2)
    d = x.shape[1]
    return x, optional_row_vector(kernel, "weight", weight, d, x.dtype), optional_row_vector(kernel, "bias", bias, d, x.dtype)


def layer_norm_saved(kernel: str, grad, x, mean, invstd, weight) -> tuple:
    """Check what a layer norm's backward receives; return (grad, x, mean, invstd, weight) C-contiguous."""
    x = float_input(kernel, "x", x, ndim=2)
    grad = float_input(kernel, "grad", grad, dtype=x.dtype)
    same_shape(kernel, "grad", grad, x.shape)
    mean = float_input(kernel, "mean", mean, ndim=1, dtype=x.dtype)
    invstd = float_input(kernel, "invstd", invstd, ndim=1, dtype=x.dtype)
    same_shape(kernel, "mean", mean, x.shape[:1])
    same_shape(kernel, "invstd", invstd, x.shape[:1])
    return grad, x, mean, invstd, optional_row_vector(kernel, "weight", weight, x.shape[1], x.dtype)
