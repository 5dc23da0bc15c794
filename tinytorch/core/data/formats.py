"""Readers for the on-disk formats of the data sets: CIFAR-10's binary records and IDX files.

Both formats are fixed-size records, so a whole file becomes an array with one
``np.frombuffer`` and a reshape: no per-image Python loop and no unpickling.

CIFAR-10 binary (``cifar-10-batches-bin/*.bin``): each record is 1 label byte followed by 3,072
pixel bytes, the 1,024 red values of a 32x32 image (row-major), then green, then blue.

IDX (MNIST, Fashion-MNIST): a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the values in C order (type ``0x08`` is uint8).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..exercises import exercise
from .files import DataFormatError

CIFAR10_SHAPE = (3, 32, 32)
CIFAR10_RECORD_BYTES = 1 + int(np.prod(CIFAR10_SHAPE))

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@exercise
def parse_cifar10_records(raw: bytes, source: str = "CIFAR-10 data") -> tuple[np.ndarray, np.ndarray]:
    """Split the bytes of a CIFAR-10 binary batch file into images and labels.

    Parameters
    ----------
    raw : bytes
        The whole file: N records of 3,073 bytes.
    source : str
        What the bytes are, for error messages (a file name).

    Returns
    -------
    images : ndarray of uint8, shape (N, 3, 32, 32)
        A read-only view into ``raw`` (channels red, green, blue; rows top to bottom).
    labels : ndarray of uint8, shape (N,)
        Class indices 0..9, also a view.

    >>> record = bytes([7]) + bytes(range(256)) * 12
    >>> images, labels = parse_cifar10_records(record * 2)
    >>> images.shape, labels.tolist(), int(images[0, 0, 0, 1]), int(images[1, 2, 31, 31])
    ((2, 3, 32, 32), [7, 7], 1, 255)
    """
    records = np.frombuffer(raw, dtype=np.uint8)
    if records.size == 0 or records.size % CIFAR10_RECORD_BYTES:
        raise DataFormatError(
            f"{source} holds {records.size} bytes, which is not a whole number of {CIFAR10_RECORD_BYTES}-byte "
            "CIFAR-10 records (1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10 binary"
        )
    records = records.reshape(-1, CIFAR10_RECORD_BYTES)
    return records[:, 1:].reshape(-1, *CIFAR10_SHAPE), records[:, 0]


def parse_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """The array stored in the bytes of an (uncompressed) IDX file, in native byte order.

    >>> parse_idx(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(
            f"{source} is not an IDX file: it starts with {raw[:4].hex(' ') or 'nothing'}, "
            "expected the magic number 00 00 <type> <ndim> (for example 00 00 08 03 for images)"
        )
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{source} is truncated: its header needs {header} bytes, the file has {len(raw)}")
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(
            f"{source}: its header announces shape {shape} ({expected} bytes of values), but it holds "
            f"{len(raw) - header} bytes after the header; the file is truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values if dtype.isnative else values.astype(dtype.newbyteorder("="))


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The array in IDX file ``path`` (gzip-compressed when its name ends in ``.gz``), of ``ndim`` dimensions."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise DataFormatError(f"{path} is not a complete gzip file ({type(error).__name__}: {error})") from None
    array = parse_idx(raw, source=str(path))
    if array.ndim != ndim:
        raise DataFormatError(f"{path} holds an array of shape {array.shape}; expected {ndim} dimensions")
    return array
