"""A synthetic class: student folders to try the grading workflow on (and to benchmark it).

``write_class(folder, n)`` writes ``n`` student folders, ``student-001`` ..., each holding lesson
02's workspace (and lesson 06's with ``lessons=("02", "06")``), cycling through kinds:

- ``correct``: the exercises written independently of the framework, with reflection answers;
- ``partial``: one exercise right, one wrong in a way a student might get it wrong;
- ``stub``: the workspace as released, nothing written;
- ``hostile``: code that attacks the grader (an infinite loop, reaching for the framework's own
  solution, ``os._exit`` inside an exercise, printing a fake result).

    python -c "from tinytorch.grading.synthetic import write_class; write_class('submissions', 8)"
"""

from __future__ import annotations

from pathlib import Path

from tinytorch.lesson import load_lesson, stub_source

KINDS = ("correct", "partial", "stub", "hostile")

_ANSWER = " ".join(["Strides say how many bytes to step along each axis, so a view shares memory."] * 14)
REFLECTIONS = f"\n\nREFLECTIONS = {{1: {_ANSWER!r}, 2: {_ANSWER!r}, 3: 'Too short.'}}\n"

BROADCAST_SHAPE = '''
def broadcast_shape(shape_a, shape_b):
    a, b = tuple(shape_a), tuple(shape_b)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise ValueError(f"shapes {shape_a} and {shape_b} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)
'''
CONTIGUOUS_STRIDES = '''
def contiguous_strides(shape, itemsize):
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))
'''
WRONG_BROADCAST_SHAPE = '''
def broadcast_shape(shape_a, shape_b):
    return tuple(max(x, y) for x, y in zip(shape_a, shape_b))   # forgets to align the trailing axes
'''
CONV2D_OUTPUT_SHAPE = '''
def _pair(value, minimum, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return pair


def conv2d_output_shape(input_hw, kernel_size, stride=1, padding=0):
    (h, w), (kh, kw) = tuple(input_hw), _pair(kernel_size, 1, "kernel_size")
    (sh, sw), (ph, pw) = _pair(stride, 1, "stride"), _pair(padding, 0, "padding")
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a padded {h}x{w} input")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
'''
IM2COL = '''
import numpy as np


def im2col(x, kernel_size, stride=1, padding=0):
    x = np.asarray(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = (_pair(v, m, "") for v, m in ((kernel_size, 1), (stride, 1), (padding, 0)))
    ho, wo = conv2d_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw))
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    rows = np.empty((n, ho, wo, c, kh, kw), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            rows[:, i, j] = padded[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
    return rows.reshape(n * ho * wo, c * kh * kw)
'''
WRONG_IM2COL = '''
import numpy as np


def im2col(x, kernel_size, stride=1, padding=0):
    x = np.asarray(x)
    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    return np.stack([x[0, 0, i : i + k, j : j + k].ravel() for i in range(x.shape[2] - k + 1) for j in range(x.shape[3] - k + 1)])
'''

#: lesson -> kind -> workspace source (a stub comes from the lesson itself)
SOURCES = {
    "02": {
        "correct": BROADCAST_SHAPE + CONTIGUOUS_STRIDES + REFLECTIONS,
        "partial": WRONG_BROADCAST_SHAPE + CONTIGUOUS_STRIDES,
        "hostile": "import os\nimport time\n" + CONTIGUOUS_STRIDES + "\ndef broadcast_shape(a, b):\n    while True:\n        pass\n",
    },
    "06": {
        "correct": CONV2D_OUTPUT_SHAPE + IM2COL + REFLECTIONS,
        "partial": CONV2D_OUTPUT_SHAPE + WRONG_IM2COL,
        "hostile": "from tinytorch.core.spatial import conv2d_output_shape, im2col   # the framework's own solution\n",
    },
}
#: further hostile submissions of lesson 02, taken in turn
HOSTILE_02 = (
    SOURCES["02"]["hostile"],
    "from tinytorch.core.tensor import broadcast_shape, contiguous_strides\n",
    "import os\n" + CONTIGUOUS_STRIDES + "\ndef broadcast_shape(a, b):\n    os._exit(0)\n",
    'print(\'{"exercise": "broadcast_shape", "passed": true, "score": 1}\')\n' + CONTIGUOUS_STRIDES + "\ndef broadcast_shape(a, b):\n    return (0,)\n",
)


def source(lesson: str, kind: str, index: int = 0) -> str:
    """The workspace of one synthetic student."""
    if kind == "stub":
        return stub_source(load_lesson(lesson))
    if kind == "hostile" and lesson == "02":
        return HOSTILE_02[index % len(HOSTILE_02)]
    return SOURCES[lesson][kind]


def write_class(folder: Path | str, students: int, lessons: tuple[str, ...] = ("02",), kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str]]:
    """Write ``students`` folders into ``folder``; returns (student, kind) for each."""
    folder = Path(folder)
    written = []
    for i in range(students):
        kind = kinds[i % len(kinds)]
        student = f"student-{i + 1:03d}"
        for lesson in lessons:
            path = folder / student / f"{load_lesson(lesson).name}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source(lesson, kind, i // len(kinds)), encoding="utf-8")
        written.append((student, kind))
    return written
