"""The real data sets, on the tiny fixtures in data/: formats, hashes, downloads, the unpack cache, errors."""

import dataclasses
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests

from tinytorch.core.data import files as data_files
from tinytorch.core.data import registry
from tinytorch.core.data.datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR10Dataset,
    FashionMNIST,
    MNIST,
    TinyShakespeare,
    dataset_status,
    download_cifar10,
    fetch,
)
from tinytorch.core.data.files import (
    DataFormatError,
    DataIntegrityError,
    DataUnavailableError,
    DerivedCopyWarning,
    data_root,
)
from tinytorch.core.data.formats import parse_cifar10_records, parse_idx
from tinytorch.core.data.registry import KnownCopy, RemoteFile

DATA = Path(__file__).resolve().parents[1] / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data from the project root

_spec = importlib.util.spec_from_file_location("make_fixtures", DATA / "make_fixtures.py")
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)

CIFAR_GZ, CIFAR_XZ = "cifar-10-binary.tar.gz", "cifar-10-binary.tar.xz"
IDX_FILES = tuple(
    f"{split}-{kind}-idx{n}-ubyte.gz" for split in ("train", "t10k") for kind, n in (("images", 3), ("labels", 1))
)


def _digest(path: Path, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, path.read_bytes()).hexdigest()}"


def _fake_url(folder: str, name: str) -> str:
    return f"https://data.example.org/{folder}/{name}"


@pytest.fixture(autouse=True)
def fixture_registry(tmp_path, monkeypatch):
    """The registry, with the fixtures' hashes in place of the official ones; a private unpack cache."""
    monkeypatch.delenv(data_files.DATA_ENV, raising=False)
    monkeypatch.delenv(data_files.TRUST_ENV, raising=False)
    monkeypatch.setenv(data_files.CACHE_ENV, str(tmp_path / "cache"))

    def remote(folder: str, source: str, name: str, copies=()) -> RemoteFile:
        return RemoteFile(name, (_fake_url(folder, name),), _digest(DATA / source / name, "md5"), copies)

    xz_copy = KnownCopy(CIFAR_XZ, _digest(DATA / "cifar10" / CIFAR_XZ, "sha256"), "the xz fixture")
    entries = {
        "cifar10": (remote("cifar10", "cifar10", CIFAR_GZ, (xz_copy,)),),
        "mnist": tuple(remote("mnist", "mnist", name) for name in IDX_FILES),
        "fashion-mnist": tuple(remote("fashion-mnist", "mnist", name) for name in IDX_FILES),
        "tinyshakespeare": (remote("tinyshakespeare", "tinyshakespeare", "input.txt"),),
    }
    for name, fixture_files in entries.items():
        monkeypatch.setitem(registry.DATASETS, name, dataclasses.replace(registry.DATASETS[name], files=fixture_files))


def make_root(tmp_path: Path, folder: str, names, source: str | None = None) -> Path:
    """A data root holding copies of fixture files ``names`` in ``<root>/<folder>/``."""
    root = tmp_path / "root"
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(DATA / (source or folder) / name, root / folder / name)
    return root


def expected_cifar10(split: str) -> tuple[np.ndarray, np.ndarray]:
    indices = range(5) if split == "train" else [5]
    batches = [make_fixtures.cifar10_batch(i) for i in indices]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def tree(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


# CIFAR-10 ---------------------------------------------------------------------------------------


def test_cifar10_reads_the_binary_layout_from_the_official_archive_name(tmp_path):
    ds = CIFAR10Dataset(root=make_root(tmp_path, "cifar10", [CIFAR_GZ]))
    for split in ("train", "test"):
        images, labels = expected_cifar10(split)
        data = getattr(ds, f"{split}_data")
        assert data.dtype == np.float32 and data.shape == (len(images), 3, 32, 32)
        np.testing.assert_array_equal(data, images.astype(np.float32) / np.float32(255))
        assert getattr(ds, f"{split}_labels").dtype == np.int64
        np.testing.assert_array_equal(getattr(ds, f"{split}_labels"), labels)
    assert len(ds) == 15 and ds.data is ds.train_data
    x, y = ds[4]
    np.testing.assert_array_equal(x.data, ds.train_data[4])
    assert y.item() == expected_cifar10("train")[1][4]


def test_a_dataloader_batches_cifar10_as_float32_images_and_int64_labels(tmp_path):
    from tinytorch.core.dataloader import DataLoader

    ds = CIFAR10Dataset(root=make_root(tmp_path, "cifar10", [CIFAR_GZ]))
    batches = list(DataLoader(ds, batch_size=4, shuffle=True, seed=2))
    assert [len(y) for _, y in batches] == [4, 4, 4, 3]
    x, y = batches[0]
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    order = np.random.default_rng(2).permutation(15)[:4]
    np.testing.assert_array_equal(x.data, ds.train_data[order])


def test_cifar10_xz_copy_is_used_with_a_warning_that_it_is_not_official(tmp_path):
    root = make_root(tmp_path, "cifar10", [CIFAR_XZ])
    with pytest.warns(DerivedCopyWarning, match=r"not the official cifar-10-binary.tar.gz: the xz fixture"):
        ds = CIFAR10Dataset(root=root, train=False)
    images, labels = expected_cifar10("test")
    np.testing.assert_array_equal(ds.data, images / np.float32(255))
    np.testing.assert_array_equal(ds.labels, labels)


def test_cifar10_flatten_keeps_red_then_green_then_blue(tmp_path):
    ds = CIFAR10Dataset(root=make_root(tmp_path, "cifar10", [CIFAR_GZ]), flatten=True)
    images, _ = expected_cifar10("train")
    assert ds.train_data.shape == (15, 3072)
    np.testing.assert_array_equal(ds.train_data[2, 1024:2048], images[2, 1].ravel() / np.float32(255))


def test_cifar10_normalize_standardises_each_channel(tmp_path):
    ds = CIFAR10Dataset(root=make_root(tmp_path, "cifar10", [CIFAR_GZ]), normalize=True, train=False)
    images, _ = expected_cifar10("test")
    mean, std = np.array(CIFAR10_MEAN).reshape(1, 3, 1, 1), np.array(CIFAR10_STD).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(ds.test_data, (images / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_cifar10_uint8_keeps_the_stored_pixels_and_converts_per_batch(tmp_path):
    from tinytorch.core.data.transforms import Compose, Normalize, ToFloat

    ds = CIFAR10Dataset(root=make_root(tmp_path, "cifar10", [CIFAR_GZ]), dtype=np.uint8)
    images, _ = expected_cifar10("train")
    assert ds.train_data.dtype == np.uint8
    np.testing.assert_array_equal(ds.train_data, images)
    floats = CIFAR10Dataset(root=make_root(tmp_path / "again", "cifar10", [CIFAR_GZ]), normalize=True)
    per_batch = Compose([ToFloat(), Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    np.testing.assert_allclose(per_batch(ds.train_data[:4]), floats.train_data[:4], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="normalize=True needs float32 pixels"):
        CIFAR10Dataset(root=make_root(tmp_path / "third", "cifar10", [CIFAR_GZ]), dtype=np.uint8, normalize=True)
    with pytest.raises(ValueError, match="dtype must be float32 or uint8, got float64"):
        CIFAR10Dataset(root=make_root(tmp_path / "fourth", "cifar10", [CIFAR_GZ]), dtype=np.float64)


def test_archive_is_unpacked_once_and_the_cache_is_reused(tmp_path, monkeypatch):
    root = make_root(tmp_path, "cifar10", [CIFAR_GZ])
    folder = download_cifar10(root)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{b}.bin" for b in make_fixtures.CIFAR10_BATCHES)
    assert folder.parent.name == _digest(root / "cifar10" / CIFAR_GZ, "md5").replace(":", "-")
    stamps = tree(tmp_path / "cache")

    def no_second_unpacking(*args, **kwargs):
        raise AssertionError("the archive was opened again")

    monkeypatch.setattr(data_files.tarfile, "open", no_second_unpacking)
    ds = CIFAR10Dataset(root=root)
    np.testing.assert_array_equal(ds.train_labels, expected_cifar10("train")[1])
    assert tree(tmp_path / "cache") == stamps


def test_an_interrupted_unpacking_leaves_nothing_half_written(tmp_path, monkeypatch):
    root = make_root(tmp_path, "cifar10", [CIFAR_GZ])
    real_copy, copies = shutil.copyfileobj, []

    def copy_then_fail(*args, **kwargs):
        copies.append(1)
        if len(copies) == 3:
            raise OSError("disk full")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(data_files.shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        download_cifar10(root)
    assert list((tmp_path / "cache").iterdir()) == []  # no staging folder, no partial unpacking
    monkeypatch.setattr(data_files.shutil, "copyfileobj", real_copy)
    assert len(list(download_cifar10(root).iterdir())) == 6


def test_a_read_only_data_root_is_never_written(tmp_path):
    root = make_root(tmp_path, "cifar10", [CIFAR_GZ])
    before = tree(root)
    for path in [root / "cifar10" / CIFAR_GZ, root / "cifar10", root]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        ds = CIFAR10Dataset(root=root, train=False)
    finally:
        for path in [root, root / "cifar10"]:
            path.chmod(0o755)
    assert len(ds) == 3
    assert tree(root) == before
    assert any((tmp_path / "cache").iterdir())


def test_hash_mismatch_is_refused_unless_local_copies_are_trusted(tmp_path, monkeypatch):
    root = make_root(tmp_path, "cifar10", [CIFAR_GZ])
    info = registry.DATASETS["cifar10"]
    wrong = dataclasses.replace(info.files[0], hash="md5:" + "0" * 32)
    monkeypatch.setitem(registry.DATASETS, "cifar10", dataclasses.replace(info, files=(wrong,)))
    with pytest.raises(DataIntegrityError) as refused:
        CIFAR10Dataset(root=root)
    message = str(refused.value)
    actual = _digest(root / "cifar10" / CIFAR_GZ, "md5")
    path = str(root / "cifar10" / CIFAR_GZ)
    for part in (path, actual, "md5:" + "0" * 32, "trust_local=True", "TINYTORCH_TRUST_LOCAL"):
        assert part in message
    with pytest.warns(DerivedCopyWarning, match="trusted"):
        assert len(CIFAR10Dataset(root=root, trust_local=True)) == 15
    monkeypatch.setenv(data_files.TRUST_ENV, "1")
    with pytest.warns(DerivedCopyWarning, match="trusted"):
        assert len(CIFAR10Dataset(root=root, train=False)) == 3


def test_an_archive_without_the_batch_files_is_a_format_error(tmp_path, monkeypatch):
    root = make_root(tmp_path, "cifar10", [])
    (root / "cifar10" / CIFAR_GZ).write_bytes((DATA / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    with pytest.warns(DerivedCopyWarning), pytest.raises(DataFormatError, match="not a readable tar archive"):
        CIFAR10Dataset(root=root, trust_local=True)
    truncated = (DATA / "cifar10" / CIFAR_GZ).read_bytes()[:-200]
    (root / "cifar10" / CIFAR_GZ).write_bytes(truncated)
    with pytest.warns(DerivedCopyWarning), pytest.raises(DataFormatError, match=CIFAR_GZ):
        CIFAR10Dataset(root=root, trust_local=True)
    assert not any((tmp_path / "cache").glob("md5-*"))


def test_cifar10_records_of_the_wrong_length_are_a_format_error():
    with pytest.raises(DataFormatError, match=r"3074 bytes.*3073-byte"):
        parse_cifar10_records(bytes(3074), source="batch.bin")
    with pytest.raises(DataFormatError, match="0 bytes"):
        parse_cifar10_records(b"")


# downloads ----------------------------------------------------------------------------------------


class _Response:
    """What pooch's HTTP downloader reads from ``requests.get``."""

    def __init__(self, payload: bytes):
        self.payload, self.headers = payload, {"content-length": str(len(payload))}

    def raise_for_status(self):
        return None

    def iter_content(self, chunk_size):
        return [self.payload[i : i + chunk_size] for i in range(0, len(self.payload), chunk_size)]


def test_a_missing_file_is_downloaded_once_with_pooch_and_verified(tmp_path, monkeypatch):
    requested = []

    def serve(url, **kwargs):
        requested.append(url)
        return _Response((DATA / "tinyshakespeare" / "input.txt").read_bytes())

    monkeypatch.setattr(requests, "get", serve)
    root = tmp_path / "root"
    assert TinyShakespeare(root=root).text == make_fixtures.SHAKESPEARE
    assert requested == [_fake_url("tinyshakespeare", "input.txt")]
    assert (root / "tinyshakespeare" / "input.txt").is_file()
    TinyShakespeare(root=root)
    assert len(requested) == 1  # present and verified: never fetched again


def test_a_download_with_the_wrong_hash_is_rejected_and_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(requests, "get", lambda url, **kwargs: _Response(b"an error page"))
    root = tmp_path / "root"
    with pytest.raises(DataUnavailableError, match="input.txt") as failed:
        TinyShakespeare(root=root)
    assert "hash" in str(failed.value).lower()
    assert not (root / "tinyshakespeare" / "input.txt").exists()


def test_offline_without_a_copy_the_error_names_file_address_and_folder(tmp_path, monkeypatch):
    def offline(url, **kwargs):
        raise requests.exceptions.ConnectionError(f"no network to reach {url}")

    monkeypatch.setattr(requests, "get", offline)
    root = tmp_path / "root"
    with pytest.raises(DataUnavailableError) as failed:
        CIFAR10Dataset(root=root)
    message = str(failed.value)
    where = str(root / "cifar10" / CIFAR_GZ)
    for part in (CIFAR_GZ, _fake_url("cifar10", CIFAR_GZ), where, "TINYTORCH_DATA", "ConnectionError"):
        assert part in message
    assert isinstance(failed.value, FileNotFoundError)


def test_download_false_with_no_copy_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("download=False must not touch the network"))
    missing = r"t10k-images-idx3-ubyte.gz is not in .* and download=False"
    with pytest.raises(DataUnavailableError, match=missing) as failed:
        MNIST(root=tmp_path / "root", train=False, download=False)
    assert _fake_url("mnist", "t10k-images-idx3-ubyte.gz") in str(failed.value)


def test_data_root_is_the_argument_then_the_environment_then_the_pooch_cache(tmp_path, monkeypatch):
    import pooch

    assert data_root() == Path(pooch.os_cache("tinytorch"))
    monkeypatch.setenv(data_files.DATA_ENV, str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


# MNIST-style IDX sets ------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_mnist_reads_idx_files(tmp_path, split):
    names = [n for n in IDX_FILES if n.startswith(split)]  # only the chosen split's files need to be there
    ds = MNIST(root=make_root(tmp_path, "mnist", names), train=split == "train", download=False)
    images, labels = make_fixtures.idx_split(split)
    assert ds.data.dtype == np.float32 and ds.data.shape == (len(images), 1, 28, 28)
    np.testing.assert_array_equal(ds.data[:, 0], images / np.float32(255))
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.labels.dtype == np.int64 and len(ds) == len(images)


def test_fashion_mnist_has_its_own_folder_and_classes(tmp_path):
    ds = FashionMNIST(root=make_root(tmp_path, "fashion-mnist", IDX_FILES, source="mnist"), flatten=True)
    assert ds.data.shape == (5, 784) and ds.classes[9] == "Ankle boot"


@pytest.mark.parametrize(
    "payload, match",
    [
        (bytes([0, 0, 8, 3]) + bytes(8), r"truncated: its header needs 16 bytes"),
        (bytes([1, 2, 8, 1, 0, 0, 0, 1, 7]), r"not an IDX file: it starts with 01 02 08 01"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), r"announces shape \(5,\).*holds 2 bytes"),
        (b"", "starts with nothing"),
    ],
)
def test_corrupt_idx_bytes_are_a_format_error(payload, match):
    with pytest.raises(DataFormatError, match=match):
        parse_idx(payload, source="labels.idx")


def test_a_truncated_idx_file_is_a_format_error_naming_it(tmp_path):
    names = [n for n in IDX_FILES if n.startswith("t10k")]
    root = make_root(tmp_path, "mnist", names)
    path = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.warns(DerivedCopyWarning), pytest.raises(DataFormatError, match=str(path)):
        MNIST(root=root, train=False, trust_local=True)


def test_idx_files_with_a_wrong_rank_are_refused(tmp_path):
    root = make_root(tmp_path, "mnist", ["t10k-labels-idx1-ubyte.gz"])
    shutil.copyfile(DATA / "mnist" / "t10k-labels-idx1-ubyte.gz", root / "mnist" / "t10k-images-idx3-ubyte.gz")
    with pytest.warns(DerivedCopyWarning), pytest.raises(DataFormatError, match="expected 3 dimensions"):
        MNIST(root=root, train=False, trust_local=True)


def test_big_endian_idx_values_come_back_in_native_order():
    payload = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2]) + (258).to_bytes(2, "big") + (-2).to_bytes(2, "big", signed=True)
    values = parse_idx(payload)
    assert values.dtype.isnative and values.tolist() == [258, -2]


# text and tito data --------------------------------------------------------------------------------


def test_tiny_shakespeare_text_and_split(tmp_path):
    corpus = TinyShakespeare(root=make_root(tmp_path, "tinyshakespeare", ["input.txt"]))
    assert corpus.text == make_fixtures.SHAKESPEARE and len(corpus) == len(make_fixtures.SHAKESPEARE)
    train, val = corpus.split(0.25)
    assert train + val == corpus.text and len(val) == round(len(corpus) * 0.25)
    with pytest.raises(ValueError, match="val_fraction"):
        corpus.split(1.0)


def test_dataset_status_reports_each_file(tmp_path):
    root = make_root(tmp_path, "cifar10", [CIFAR_XZ])
    make_root(tmp_path, "mnist", IDX_FILES[:2])
    (root / "mnist" / IDX_FILES[1]).write_bytes(b"not labels")
    rows = {(r["dataset"], r["file"]): r for r in dataset_status(root)}
    assert len(rows) == 10
    cifar = rows["cifar10", CIFAR_GZ]
    assert (cifar["present"], cifar["verified"], cifar["status"], cifar["path"]) == (
        True, True, "known copy", str(root / "cifar10" / CIFAR_XZ))
    assert rows["mnist", IDX_FILES[0]]["status"] == "official"
    assert (rows["mnist", IDX_FILES[1]]["status"], rows["mnist", IDX_FILES[1]]["verified"]) == ("hash mismatch", False)
    missing = rows["tinyshakespeare", "input.txt"]
    assert (missing["present"], missing["verified"], missing["status"]) == (False, False, "missing")
    assert missing["path"] == str(root / "tinyshakespeare" / "input.txt")
    assert missing["url"] == _fake_url("tinyshakespeare", "input.txt")


def test_fetch_returns_the_verified_files_and_names_unknown_sets(tmp_path):
    root = make_root(tmp_path, "mnist", IDX_FILES)
    assert fetch("mnist", root) == {name: root / "mnist" / name for name in IDX_FILES}
    with pytest.raises(KeyError, match="unknown data set 'imagenet'.*cifar10"):
        fetch("imagenet", root)


# the real registry and the shared copies of the offline machines -----------------------------------


def test_the_real_registry_has_the_official_addresses_and_hashes(monkeypatch):
    monkeypatch.undo()  # drop the fixture registry
    cifar = registry.dataset_info("cifar10").file(CIFAR_GZ)
    assert cifar.url == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert cifar.hash == "md5:c32a1d4ab5d03f1284b67883e8d87530"
    assert [(c.name, c.hash) for c in cifar.copies] == [
        (CIFAR_XZ, "sha256:8fb81189449e28d273edb5a9a37edef717bb9ac8ce4b1b823677825fa6243819")]
    mnist = registry.dataset_info("mnist").file("train-images-idx3-ubyte.gz")
    assert mnist.hash == "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873" and mnist.url.startswith("https://yann.lecun.com/")
    assert registry.dataset_info("tinyshakespeare").files[0].hash == "md5:6fb458f1232090904fb40fe944165e91"
    assert [len(registry.dataset_info(n).classes) for n in ("cifar10", "mnist", "fashion-mnist")] == [10, 10, 10]


@pytest.mark.skipif(
    not (SHARED / "mnist").is_dir(), reason="the real data sets of the course machines (../shared/data) are not on this machine"
)
def test_shared_mnist_files_verify_against_the_official_md5(monkeypatch):
    monkeypatch.undo()  # the real registry, with the official hashes
    monkeypatch.delenv(data_files.TRUST_ENV, raising=False)
    monkeypatch.setenv(data_files.CACHE_ENV, os.devnull)  # MNIST needs no unpacking
    ds = MNIST(root=SHARED, train=False, download=False)
    assert ds.data.shape == (10000, 1, 28, 28) and np.bincount(ds.labels).tolist()[:2] == [980, 1135]
    statuses = {(r["dataset"], r["file"]): r["status"] for r in dataset_status(SHARED)}
    exact = ("mnist", "fashion-mnist", "tinyshakespeare")
    assert {status for (name, _), status in statuses.items() if name in exact} == {"official"}
    assert statuses["cifar10", CIFAR_GZ] == "known copy"
