"""Model packages: safetensors weights + a JSON manifest, verified by hash, rebuilt without unpickling."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.mlops import (ArchitectureError, PackageError, architecture_config, load_package, model_from_config,
                                  package, sha256_manifest)
from tinytorch.core.mlops.package import REFERENCE, WEIGHTS

from .layer_checks import TORCH_REASON
from .mlops_helpers import CLASSES, images, make_package, mlp, small_cnn, torch_twin

pytest.importorskip("safetensors", reason="packages need the interchange extra (safetensors); it is not installed")


def outputs(model, x):
    model.eval()
    with tt.no_grad():
        return model(tt.tensor(x)).numpy()


def rewrite_manifest(folder, change):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def rehash(folder, name):
    """Record the current hash of ``name`` in the manifest (to test what lies behind the hash check)."""
    digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    rewrite_manifest(folder, lambda m: m["files"][name].update(sha256=digest))


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = small_cnn()
    x = images(5)
    folder = make_package(tmp_path / "cnn", model, x[:1], metrics={"test_accuracy": 0.5},
                          metadata={"recipe": "test"}, reference={"predictions": np.arange(10)})
    loaded = load_package(folder)
    assert np.array_equal(outputs(loaded.model, x), outputs(model, x))
    assert not loaded.model.training
    assert repr(loaded.model) == repr(model)
    for name, value in model.state_dict().items():
        assert np.array_equal(loaded.model.state_dict()[name], value), name
    assert np.array_equal(loaded.reference["predictions"], np.arange(10))
    assert np.array_equal(loaded.predict(x), outputs(model, x))


def test_an_int8_model_packages_with_int8_weights_and_comes_back_exactly(tmp_path):
    from safetensors.numpy import load_file, save_file

    from tinytorch.core.compression import quantize_static

    model = small_cnn()
    model.eval()
    quantized = quantize_static(model, [images(8, seed=i) for i in range(3)])
    x = images(5)
    folder = make_package(tmp_path / "int8", quantized, x[:1])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["architecture"]["type"] == "quantized"
    stored = load_file(str(folder / WEIGHTS))
    floats = {name for name, a in stored.items() if a.dtype != np.int8}
    assert floats == {name for name in stored if name.endswith((".weight_scale", ".bias"))}
    assert all(stored[name].dtype == np.float32 for name in floats)
    assert sum(a.dtype == np.int8 for a in stored.values()) == 4  # the weights of two convolutions and two Dense layers
    loaded = load_package(folder)
    assert repr(loaded.model) == repr(quantized)
    assert np.array_equal(loaded.predict(x), outputs(quantized, x))
    stored[next(n for n in stored if n.endswith(".weight_scale"))] = np.ones(1, np.float64)  # a float64 scale
    save_file(stored, str(folder / WEIGHTS))
    rehash(folder, WEIGHTS)
    with pytest.raises(PackageError, match=r"weight_scale has dtype float64; a quantized model holds float32 or int8"):
        load_package(folder)


def test_manifest_records_everything(tmp_path):
    import safetensors

    folder = make_package(tmp_path / "mlp", metrics={"test_accuracy": np.float32(0.25)}, metadata={"owner": "me"},
                          name="digits")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "tinytorch-model-package" and manifest["format_version"] == 1
    assert manifest["framework"] == {"name": "tinytorch", "version": tt.__version__}
    assert manifest["versions"]["safetensors"] == safetensors.__version__
    assert manifest["created_utc"].endswith("+00:00")
    assert len(manifest["uuid"]) == 36 and manifest["name"] == "digits"
    assert manifest["architecture"] == architecture_config(mlp())
    assert manifest["signature"] == {"inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 12]}],
                                     "outputs": [{"name": "output", "dtype": "float32", "shape": [-1, 10]}]}
    assert manifest["classes"] == CLASSES
    assert manifest["metrics"] == {"test_accuracy": 0.25} and manifest["metadata"] == {"owner": "me"}
    assert manifest["parameters"] == 12 * 16 + 16 + 16 * 10 + 10
    assert set(manifest["files"]) == {WEIGHTS}
    assert manifest["files"][WEIGHTS]["sha256"] == sha256_manifest(folder)[WEIGHTS]
    assert manifest["files"][WEIGHTS]["bytes"] == (folder / WEIGHTS).stat().st_size
    # two packages of the same model are two different packages
    other = json.loads((make_package(tmp_path / "again") / "manifest.json").read_text())
    assert other["uuid"] != manifest["uuid"]


def test_sha256_manifest_hashes_content_recursively_and_skips_the_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub" / "b.txt").write_bytes(b"")
    (tmp_path / "manifest.json").write_text("{}")
    assert sha256_manifest(tmp_path) == {"a.bin": hashlib.sha256(b"abc").hexdigest(),
                                          "sub/b.txt": hashlib.sha256(b"").hexdigest()}
    as_data = {"sub/b.txt": b"", "manifest.json": b"{}", "a.bin": b"abc"}
    assert sha256_manifest(as_data) == sha256_manifest(tmp_path) and list(sha256_manifest(as_data)) == ["a.bin", "sub/b.txt"]


@pytest.mark.parametrize("name", [WEIGHTS, REFERENCE])
def test_a_changed_byte_is_an_error_naming_the_file(tmp_path, name):
    folder = make_package(tmp_path / "p", reference={"predictions": np.arange(10)})
    data = bytearray((folder / name).read_bytes())
    data[-3] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(PackageError, match=rf"{name} was changed after packaging"):
        load_package(folder)


def test_missing_and_added_files_are_named(tmp_path):
    folder = make_package(tmp_path / "p")
    (folder / "notes.txt").write_text("added later")
    with pytest.raises(PackageError, match="notes.txt not listed in manifest.json"):
        load_package(folder)
    (folder / "notes.txt").unlink()
    (folder / WEIGHTS).unlink()
    with pytest.raises(PackageError, match=f"{WEIGHTS} is listed in manifest.json but missing"):
        load_package(folder)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format_version=99), "format version 99"),
    (lambda m: m.update(format="other"), "not a tinytorch-model-package manifest"),
    (lambda m: m.pop("architecture"), "lacks 'architecture'"),
    (lambda m: m["architecture"]["layers"].append({"type": "os.system"}), "unknown layer type 'os.system'"),
    (lambda m: m["architecture"]["layers"].__setitem__(0, {"type": "Dense", "in_features": 12, "out_features": 17,
                                                          "bias": True}), "do not fit the architecture"),
])
def test_a_bad_manifest_is_a_clear_error(tmp_path, change, message):
    folder = make_package(tmp_path / "p")
    rewrite_manifest(folder, change)
    with pytest.raises(PackageError, match=message):
        load_package(folder)


def test_not_a_package(tmp_path):
    with pytest.raises(PackageError, match="has no manifest.json"):
        load_package(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(PackageError, match="not valid JSON"):
        load_package(tmp_path)


class _Exploit:
    """Unpickling this would create a file: the proof that loading executed code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_in_place_of_the_weights_is_never_unpickled(tmp_path):
    folder = make_package(tmp_path / "p")
    marker = tmp_path / "pwned"
    (folder / WEIGHTS).write_bytes(pickle.dumps({"0.weight": _Exploit(str(marker))}))
    rehash(folder, WEIGHTS)
    with pytest.raises(PackageError, match="not a valid safetensors file"):
        load_package(folder)
    assert not marker.exists()


def _header(entries: dict) -> bytes:
    text = json.dumps(entries).encode()
    return struct.pack("<Q", len(text)) + text


@pytest.mark.parametrize("data", [
    _header({"0.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "0.bias": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}) + b"\0" * 12,     # overlapping
    _header({"0.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}) + b"\0" * 8,     # file too short
    _header({"0.weight": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}) + b"\0" * 8,      # size != numel
    struct.pack("<Q", 200_000_000) + b"{}",                                                          # header too large
], ids=["overlap", "short", "numel", "huge-header"])
def test_malformed_safetensors_are_rejected(tmp_path, data):
    folder = make_package(tmp_path / "p")
    (folder / WEIGHTS).write_bytes(data)
    rehash(folder, WEIGHTS)
    with pytest.raises(PackageError, match="not a valid safetensors file"):
        load_package(folder)


def test_safetensors_bytes_match_the_format_golden_vector(tmp_path):
    from tinytorch.core.mlops.package import _write_safetensors

    _write_safetensors(tmp_path / "g.safetensors", {"attn.0": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}, None)
    golden = (b'@\x00\x00\x00\x00\x00\x00\x00{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'
              + np.arange(6, dtype="<f4").tobytes())
    assert (tmp_path / "g.safetensors").read_bytes() == golden and len(golden) == 96


def test_the_safetensors_library_reads_the_weights(tmp_path):
    from safetensors.numpy import load_file

    model = small_cnn()
    folder = make_package(tmp_path / "p", model, images(1))
    state = load_file(str(folder / WEIGHTS))
    assert set(state) == set(model.state_dict())
    assert all(np.array_equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("build, shape", [(small_cnn, (4, 3, 8, 8)), (mlp, (4, 12))], ids=["cnn", "mlp"])
def test_torch_loads_the_weights_into_the_equivalent_model(tmp_path, build, shape):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    from safetensors.torch import load_file

    model = build()
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    folder = make_package(tmp_path / "p", model, x[:1])
    twin = torch_twin(json.loads((folder / "manifest.json").read_text())["architecture"])
    twin.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    twin.eval()
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(outputs(load_package(folder).model, x), expected, rtol=1e-4, atol=1e-5)


def test_architecture_round_trip_of_every_layer_type():
    model = tt.Sequential(
        tt.Conv2D(3, 4, (3, 5), stride=(1, 2), padding=(1, 2), bias=False), tt.BatchNorm2D(4, eps=1e-3, momentum=None),
        tt.LeakyReLU(0.2), tt.AvgPool2D(2, stride=1, padding=1), tt.MaxPool2D(3), tt.GELU("tanh"),
        tt.GlobalAvgPool2D(), tt.Sequential(tt.Dense(4, 6, bias=False), tt.Sigmoid()), tt.BatchNorm1D(6, affine=False),
        tt.Tanh(), tt.LayerNorm(6, elementwise_affine=False), tt.LayerNorm(6, bias=False), tt.Dropout(0.3), tt.Identity(), tt.Softmax(axis=1),
        tt.LogSoftmax(), tt.Flatten(start_axis=0),
    )
    rebuilt = model_from_config(json.loads(json.dumps(architecture_config(model))))
    assert repr(rebuilt) == repr(model)
    assert [type(m) for m in rebuilt.modules()] == [type(m) for m in model.modules()]
    named = tt.Sequential({"features": tt.Dense(2, 3), "act": tt.ReLU()})
    again = model_from_config(architecture_config(named))
    assert [n for n, _ in again.named_children()] == ["features", "act"]
    assert [n for n, _ in model_from_config(architecture_config(tt.Embedding(5, 2))).named_parameters()] == ["weight"]


def test_what_cannot_be_described_or_built_is_named():
    class Custom(tt.Module):
        def forward(self, x):
            return x

    with pytest.raises(ArchitectureError, match="cannot describe a Custom"):
        architecture_config(tt.Sequential(tt.Dense(2, 2), Custom()))
    with pytest.raises(ArchitectureError, match="cannot build Dense"):
        model_from_config({"type": "Dense", "in_features": -1, "out_features": 2})
    for path in ("subprocess.Popen", "tinytorch.core.tensor.Tensor", "builtins.eval"):
        with pytest.raises(ArchitectureError):
            model_from_config({"type": path, "config": {}})


def test_existing_folders_are_kept_unless_overwrite(tmp_path):
    first = make_package(tmp_path / "p")
    uuid = json.loads((first / "manifest.json").read_text())["uuid"]
    with pytest.raises(FileExistsError, match="already exists"):
        make_package(tmp_path / "p")
    assert json.loads((first / "manifest.json").read_text())["uuid"] == uuid
    make_package(tmp_path / "p", overwrite=True)
    assert json.loads((first / "manifest.json").read_text())["uuid"] != uuid
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no staging or replaced folder left behind


def test_a_failed_package_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="metadata must be JSON"):
        make_package(tmp_path / "p", metadata={"when": object()})
    assert list(tmp_path.iterdir()) == []
