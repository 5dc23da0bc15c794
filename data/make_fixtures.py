"""Write the tiny test fixtures of this folder, in the real formats, the same bytes every run.

    python data/make_fixtures.py

The tests import this file to know what the fixtures must decode to (:func:`cifar10_batch`,
:func:`idx_split`, :data:`SHAKESPEARE`), so parser and fixture are checked against one definition.
Archives are made reproducible: fixed tar metadata, gzip with mtime 0, xz with default settings.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import struct
import tarfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_RECORDS_PER_BATCH = 3
IDX_COUNTS = {"train": 5, "t10k": 3}

SHAKESPEARE = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.
"""


def cifar10_batch(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (3, 3, 32, 32) uint8 and labels (3,) uint8 of batch ``index`` (0..5, 5 = test_batch).

    Smooth ramps that differ by image, channel, row and column (so a swapped axis shows) and
    compress to almost nothing.
    """
    n = CIFAR10_RECORDS_PER_BATCH
    image, channel, row, col = np.meshgrid(np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    first = index * n
    images = ((first + image) * 37 + channel * 80 + row * 3 + col) % 256
    labels = (first + np.arange(n)) % 10
    return images.astype(np.uint8), labels.astype(np.uint8)


def cifar10_tar() -> bytes:
    """An uncompressed tar holding ``cifar-10-batches-bin/`` as the official archive does."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        members = {"batches.meta.txt": "\n".join(CIFAR10_CLASSES).encode() + b"\n"}
        for index, name in enumerate(CIFAR10_BATCHES):
            images, labels = cifar10_batch(index)
            records = np.concatenate([labels[:, None], images.reshape(len(images), -1)], axis=1)
            members[f"{name}.bin"] = records.tobytes()
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size, info.mtime, info.mode = len(payload), 0, 0o644
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def idx_split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of the ``"train"`` or ``"t10k"`` split."""
    n = IDX_COUNTS[prefix]
    image, row, col = np.meshgrid(np.arange(n), np.arange(28), np.arange(28), indexing="ij")
    offset = 0 if prefix == "train" else 100
    images = (image * 50 + row * 5 + col + offset) % 256
    labels = (np.arange(n) * 3 + offset) % 10
    return images.astype(np.uint8), labels.astype(np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) as an IDX file: magic 00 00 08 ndim, big-endian sizes, then the values."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write(path: Path, payload: bytes) -> None:
    """Write atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def main() -> None:
    tar = cifar10_tar()
    write(HERE / "cifar10" / "cifar-10-binary.tar.gz", gzip.compress(tar, mtime=0))
    write(HERE / "cifar10" / "cifar-10-binary.tar.xz", lzma.compress(tar, format=lzma.FORMAT_XZ))
    for prefix in IDX_COUNTS:
        images, labels = idx_split(prefix)
        write(HERE / "mnist" / f"{prefix}-images-idx3-ubyte.gz", gzip.compress(idx_bytes(images), mtime=0))
        write(HERE / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(labels), mtime=0))
    write(HERE / "tinyshakespeare" / "input.txt", SHAKESPEARE.encode("utf-8"))


if __name__ == "__main__":
    main()
