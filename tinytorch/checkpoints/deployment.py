"""Checkpoint 14, Deployment: "Can I deploy and monitor ML systems in production?"

Led to by lesson 15 (``sha256_manifest``, ``population_stability_index``, ``ks_statistic``,
``route_request``). Two versions of a classifier are trained and packaged (safetensors weights and
a manifest of hashes): the student's ``sha256_manifest`` must reproduce every hash the package
lists, and a package changed by one bit must be refused. Both versions are then served over HTTP
as an A/B test: every answer must come from the version the student's ``route_request`` assigns
to its request id, and equal that version's own prediction. Finally the deployed model is
monitored: the student's ``ks_statistic`` must find the inputs moved and the unmoved inputs not,
and the server's monitor, which computes the prediction PSI with their
``population_stability_index``, must raise an alert on the moved traffic and none on the normal.
Needs the ``serve`` and ``interchange`` extras (FastAPI and uvicorn, safetensors).
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from tinytorch.checkpoints.loop import fit_full_batch
from tinytorch.checkpoints.networks import spirals
from tinytorch.checkpoints.probe import CheckpointFailed, Probe

REQUESTS = 60
EXTRAS = 'pip install "tinytorch[serve,interchange]"'


def trained_classifier(x: np.ndarray, y: np.ndarray, steps: int):
    import tinytorch as tt

    tt.manual_seed(steps)
    model = tt.Sequential(tt.Dense(2, 32), tt.ReLU(), tt.Dense(32, 32), tt.ReLU(), tt.Dense(32, 3))
    fit_full_batch(model, tt.Adam(model.parameters(), lr=0.01), tt.CrossEntropyLoss(), x, y, steps)
    return model.eval()


def post(url: str, request_id: str, inputs: np.ndarray) -> dict:
    request = urllib.request.Request(url + "/predict", data=json.dumps({"inputs": inputs.tolist()}).encode(),
                                     headers={"Content-Type": "application/json", "X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run(probe: Probe) -> None:
    import tinytorch as tt
    from tinytorch.core import exercises
    from tinytorch.core.mlops import drift
    from tinytorch.core.mlops import manifest as manifests
    from tinytorch.core.mlops import (BackgroundServer, ModelMonitor, PackageError, ServerSettings, create_app, ks_statistic,
                                      load_package, package, route_request)

    rng = np.random.default_rng(0)
    x_train, y_train = spirals(500, rng)
    x_test, y_test = spirals(500, rng)
    probe.step("training two versions of a spiral classifier and packaging them")
    versions = {"v1": trained_classifier(x_train, y_train, 100), "v2": trained_classifier(x_train, y_train, 300)}
    with tt.no_grad():
        direct = {name: model(tt.tensor(x_test)).data for name, model in versions.items()}
    probe.measure("v2 held-out accuracy", float((direct["v2"].argmax(axis=1) == y_test).mean()), at_least=0.9)
    with tempfile.TemporaryDirectory(prefix="tinytorch-checkpoint-14-") as scratch:
        try:
            folders = {name: package(model, Path(scratch) / name, signature=x_test[:1]) for name, model in versions.items()}
        except ImportError as error:
            raise CheckpointFailed(f"deploying needs the serve and interchange extras: {error}. Install them: {EXTRAS}") from error

        probe.step("checking every file of the packages against its manifest with sha256_manifest")
        sha256_manifest = exercises.implementation(manifests.sha256_manifest)
        agreed = total = 0
        for folder in folders.values():
            listed = json.loads((folder / "manifest.json").read_text())["files"]
            files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
            digests = sha256_manifest(files)
            total += len(listed)
            agreed += sum(digests.get(name) == entry["sha256"] for name, entry in listed.items()) if set(digests) == set(listed) else 0
        probe.measure("package files whose hash was reproduced", agreed, at_least=total, unit=f"of {total}")
        tampered = Path(scratch) / "tampered"
        package(versions["v1"], tampered, signature=x_test[:1])
        weights = bytearray((tampered / "weights.safetensors").read_bytes())
        weights[-1] ^= 0x01
        (tampered / "weights.safetensors").write_bytes(bytes(weights))
        try:
            load_package(tampered)
            refused = False
        except PackageError:
            refused = True
        probe.check("a package changed by one bit is refused", refused, "load_package accepted a changed weights file")

        probe.step(f"serving both versions as an A/B test and sending {REQUESTS} requests")
        packages = [load_package(folders["v1"]), load_package(folders["v2"])]
        names = [p.name for p in packages]
        weights_ab, salt = (0.5, 0.5), "checkpoint-14"
        routed = matched = 0
        try:
            server = BackgroundServer(create_app(packages, ServerSettings(max_batch=8, max_delay_ms=2), weights=weights_ab, salt=salt))
            url = server.start()
        except ImportError as error:
            raise CheckpointFailed(f"serving needs the serve extra: {error}. Install it: {EXTRAS}") from error
        try:
            arms = []
            for i in range(REQUESTS):
                request_id = f"user-{i}"
                answer = post(url, request_id, x_test[i : i + 1])
                arm = route_request(request_id, weights_ab, salt)
                arms.append(arm)
                routed += answer["model"] == names[arm]
                version = "v1" if answer["model"] == names[0] else "v2"
                matched += bool(np.allclose(answer["outputs"], direct[version][i : i + 1], rtol=1e-5, atol=1e-6))
        finally:
            server.stop()
    probe.measure("answers from the version route_request chose", routed, at_least=REQUESTS, unit=f"of {REQUESTS}", headline=True)
    probe.measure("answers equal to that version's own prediction", matched, at_least=REQUESTS, unit=f"of {REQUESTS}")
    probe.measure("share of requests routed to v2", float(np.mean(arms)), at_least=0.3, at_most=0.7)

    probe.step("monitoring: comparing the inputs and the predictions of normal and moved traffic")
    moved = x_test + np.float32(0.6)
    framework_ks = getattr(drift.ks_statistic, "__wrapped__", drift.ks_statistic)
    same = max(ks_statistic(x_train[:, j], x_test[:, j]) for j in range(2))
    shifted = min(ks_statistic(x_train[:, j], moved[:, j]) for j in range(2))
    probe.measure("largest KS statistic, normal inputs", same, at_most=0.15)
    probe.measure("smallest KS statistic, moved inputs", shifted, at_least=0.3)
    difference = max(abs(ks_statistic(x_train[:, j], data[:, j]) - framework_ks(x_train[:, j], data[:, j]))
                     for j in range(2) for data in (x_test, moved))
    probe.measure("|ks_statistic - the framework's|", difference, at_most=1e-12)
    with tt.no_grad():
        reference = versions["v2"](tt.tensor(x_train)).data.argmax(axis=1)
        normal = versions["v2"](tt.tensor(x_test)).data.argmax(axis=1)
        drifted = versions["v2"](tt.tensor(moved)).data.argmax(axis=1)
    quiet = ModelMonitor(reference_predictions=reference, num_classes=3)
    quiet.record_predictions(normal)
    alarmed = ModelMonitor(reference_predictions=reference, num_classes=3)
    alarmed.record_predictions(drifted)
    probe.check("no alert on normal traffic", not quiet.alerts(), f"alerts: {[a.name for a in quiet.alerts()]}")
    probe.measure("prediction PSI of the moved traffic", alarmed.prediction_psi(), at_least=0.25)
    probe.check("the monitor raises the prediction-PSI alert on moved traffic",
                "prediction_psi" in [a.name for a in alarmed.alerts()], f"alerts: {[a.name for a in alarmed.alerts()]}")
