"""Plain data: what the grader and the sandbox exchange survives the trip, and a forged file is refused."""

import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytorch as tt
from tinytorch.grading import plaindata
from tinytorch.grading.capture import capture, inputs_document
from tinytorch.grading.compare import compare
from tinytorch.grading.plaindata import Malformed, Unencodable, decode, encode, load_bundle, save_bundle

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=8),
    st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e6),
)  # fmt: skip
arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
values = st.recursive(
    st.one_of(scalars, arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=10,
)


def same(a, b) -> bool:
    """Exact equality, type for type, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    return a == b


def round_trip(value, tmp_path):
    path = tmp_path / "bundle.npz"
    save_bundle(path, [encode({"x": value})])
    (doc,) = load_bundle(path)
    return decode(doc)["x"]


@given(values)
def test_nested_values_survive_a_save_and_load(tmp_path_factory, value):
    assert same(round_trip(value, tmp_path_factory.mktemp("rt")), value)


def test_aliasing_identity_and_layout_survive(tmp_path):
    shared = np.arange(6.0).reshape(2, 3)
    transposed = np.arange(6.0).reshape(2, 3).T
    out = round_trip({"a": shared, "b": shared, "t": transposed, "s": slice(1, None, 2), "r": range(3), "raw": b"\x00\xff"}, tmp_path)
    assert out["a"] is out["b"]  # one object, referenced twice
    assert not out["t"].flags.c_contiguous and np.array_equal(out["t"], transposed)
    assert out["s"] == slice(1, None, 2) and out["r"] == range(3) and out["raw"] == b"\x00\xff"


def test_a_graph_thousands_of_tensors_deep_is_flat(tmp_path):
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    deep = x
    for _ in range(3_000):  # three times Python's recursion limit
        deep = deep * 1.0
    rebuilt = round_trip(deep, tmp_path)
    depth, parent = 0, rebuilt.grad_fn
    while not isinstance(parent, tt.Tensor):  # each node's first parent is the node before it, down to the leaf
        parent = parent.parents[0]
        depth += 1
    assert depth == 3_000 and parent.requires_grad and np.array_equal(parent.data, [1.0, 2.0])
    rebuilt.sum().backward()  # the rebuilt graph can be differentiated: saved arrays came along
    assert np.array_equal(parent.grad.data, [1.0, 1.0])


def test_models_and_classes_are_rebuilt():
    net = tt.create_mlp(3, [4], 2, activation=tt.Tanh)
    doc = inputs_document((net, tt.ReLU), {"k": np.float32(2.5)})
    args = decode(doc)["args"]
    assert type(args[0]) is type(net) and args[1] is tt.ReLU
    assert np.array_equal(args[0][0].weight.data, net[0].weight.data)
    assert args[0](tt.ones(1, 3)).shape == (1, 2)


def test_inputs_that_cannot_be_replayed_are_refused():
    with pytest.raises(Unencodable):
        inputs_document((lambda v: v,), {})
    with pytest.raises(Unencodable):
        inputs_document((np.array([object()]),), {})


def test_results_of_any_kind_are_encoded_for_comparison():
    class Mine:
        def __eq__(self, other):
            return True

    doc = encode({"v": [Mine(), lambda: 0, len]}, strict=False)
    kinds = [doc.objects[item["v"]]["k"] for item in doc.objects[doc.roots["v"]["v"]]["items"]]
    assert kinds == ["object", "opaque", "function"]


def _bundle_bytes(tree: dict, blob: bytes = b"", compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, tree=np.frombuffer(json.dumps(tree).encode(), np.uint8), blob=np.frombuffer(blob, np.uint8)) if compress else np.savez(
        buffer, tree=np.frombuffer(json.dumps(tree).encode(), np.uint8), blob=np.frombuffer(blob, np.uint8)
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    "forged, why",
    [
        (b"not a zip at all", "not a valid bundle"),
        (_bundle_bytes({"format": "other"}), "format"),
        (_bundle_bytes({"format": "tinytorch-plain-1", "documents": [], "arrays": [{"dtype": "<f8", "shape": [10], "offset": 0, "nbytes": 80}]}), "outside the blob"),
        (_bundle_bytes({"format": "tinytorch-plain-1", "documents": [], "arrays": [{"dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8}]}, b"\0" * 8), "not allowed"),
        (_bundle_bytes({"format": "tinytorch-plain-1", "documents": [{"roots": {"v": {"k": "ref", "v": 5}}, "objects": [], "arrays": []}], "arrays": []}), "outside the document"),
        (_bundle_bytes({"format": "tinytorch-plain-1", "documents": [{"roots": {"v": {"k": "exec", "v": "rm"}}, "objects": [], "arrays": []}], "arrays": []}), "malformed"),
        (_bundle_bytes({"format": "tinytorch-plain-1", "documents": [], "arrays": []}, compress=True), "compressed"),
    ],
)
def test_forged_bundles_are_refused(forged, why):
    with pytest.raises(Malformed, match=why):
        load_bundle(forged)


def test_extra_members_and_oversized_files_are_refused(tmp_path):
    good = _bundle_bytes({"format": "tinytorch-plain-1", "documents": [], "arrays": []})
    buffer = io.BytesIO(good)
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr("evil.npy", b"x")
    with pytest.raises(Malformed, match="exactly"):
        load_bundle(buffer.getvalue())
    with pytest.raises(Malformed, match="larger than"):
        load_bundle(good, max_bytes=10)
    assert load_bundle(good) == []


def test_only_tinytorch_and_numpy_names_are_resolved():
    assert plaindata.resolve("tinytorch.core.activations:ReLU") is tt.ReLU
    with pytest.raises(Malformed):
        plaindata.resolve("os:system")


def test_capture_records_in_place_changes_and_the_gradient_of_a_result():
    def doubles_grad(p):
        p.grad.data *= 2.0

    def leaves_it(p):
        return None

    p = tt.Parameter(np.ones(2))
    p.grad = tt.tensor([1.0, 3.0])
    doc = inputs_document((p,), {})
    expected = capture(doubles_grad, doc, seed=0)
    assert compare(expected, capture(doubles_grad, doc, seed=0)).passed
    verdict = compare(expected, capture(leaves_it, doc, seed=0))
    assert not verdict.passed and verdict.message.startswith("after the call, argument 0.grad:")

    x = tt.tensor([1.0, -2.0], requires_grad=True)
    doc = inputs_document((x,), {})
    square = capture(lambda t: t * t, doc, seed=3)
    half = capture(lambda t: t * t.detach(), doc, seed=3)  # the same values, half the gradient
    assert square.meta["backward"] == "ok" and half.meta["backward"] == "ok"
    verdict = compare(square, half)
    assert not verdict.passed and verdict.message.startswith("after back-propagating through the result, argument 0.grad:")
    detached = capture(lambda t: tt.tensor(t.data * t.data, requires_grad=True), doc, seed=3)
    assert "without a graph" in compare(square, detached).message
