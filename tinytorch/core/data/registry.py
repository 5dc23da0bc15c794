"""The registry of downloadable data sets: one table of names, addresses and hashes (DESIGN §5).

Each data set lives in its own folder under the data root (``<root>/mnist/...``), holding its
files under their original names, so a folder laid out like ``../shared/data`` can be used as it
is. A file's ``hash`` is the official one, written the way pooch writes hashes (``"md5:..."``).
``copies`` lists known copies that are *not* the official file (another name, another hash):
they are accepted with a :class:`~tinytorch.core.data.files.DerivedCopyWarning` that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KnownCopy:
    """A known copy of a file that differs from the official one."""

    name: str  # its file name, beside the official name in the data set's folder
    hash: str  # "sha256:..." of this copy
    note: str  # how it differs from the official file, shown when it is used


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: where it comes from and what its bytes must hash to."""

    name: str
    urls: tuple[str, ...]  # the official address first, then mirrors
    hash: str
    copies: tuple[KnownCopy, ...] = ()

    @property
    def url(self) -> str:
        """The official address."""
        return self.urls[0]


@dataclass(frozen=True)
class DatasetInfo:
    """A data set: its folder under the data root, its files and its class names."""

    name: str
    title: str
    folder: str
    files: tuple[RemoteFile, ...]
    classes: tuple[str, ...] = field(default=())

    def file(self, name: str) -> RemoteFile:
        """The registered file called ``name``."""
        for remote in self.files:
            if remote.name == name:
                return remote
        raise KeyError(f"{self.title} has no file {name!r}; it has {[f.name for f in self.files]}")


def _idx_files(hashes: dict[str, str], *bases: str) -> tuple[RemoteFile, ...]:
    """The four IDX files of an MNIST-style set, each fetched from ``bases`` in order."""
    return tuple(RemoteFile(name, tuple(base + name for base in bases), "md5:" + md5) for name, md5 in hashes.items())


CIFAR10_DERIVED_NOTE = (
    "this is the JPEG-derived CIFAR-10 copy of the offline machines (../shared/data/README.md): "
    "the real split and labels, pixels rebuilt from JPEG (about quality 75), training order shuffled; "
    "accuracy on it is close to, and usually a little below, accuracy on the original"
)

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="cifar10",
            title="CIFAR-10",
            folder="cifar10",
            files=(
                RemoteFile(
                    "cifar-10-binary.tar.gz",
                    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
                    "md5:c32a1d4ab5d03f1284b67883e8d87530",
                    copies=(
                        KnownCopy(
                            "cifar-10-binary.tar.xz",
                            "sha256:8fb81189449e28d273edb5a9a37edef717bb9ac8ce4b1b823677825fa6243819",
                            CIFAR10_DERIVED_NOTE,
                        ),
                    ),
                ),
            ),
            classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        ),
        DatasetInfo(
            name="mnist",
            title="MNIST",
            folder="mnist",
            files=_idx_files(
                {
                    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
                },
                "https://yann.lecun.com/exdb/mnist/",
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
            ),
            classes=tuple(str(digit) for digit in range(10)),
        ),
        DatasetInfo(
            name="fashion-mnist",
            title="Fashion-MNIST",
            folder="fashion-mnist",
            files=_idx_files(
                {
                    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
                },
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            ),
            classes=(
                "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
            ),
        ),
        DatasetInfo(
            name="tinyshakespeare",
            title="Tiny Shakespeare",
            folder="tinyshakespeare",
            files=(
                RemoteFile(
                    "input.txt",
                    ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",),
                    "md5:6fb458f1232090904fb40fe944165e91",
                ),
            ),
        ),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of data set ``name`` (``"cifar10"``, ``"mnist"``, ...)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}") from None
