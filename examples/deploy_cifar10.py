"""Deploy the trained CIFAR-10 CNN: package it, export it to ONNX, serve it under load, watch it for
drift, and A/B-test it against its compressed twin. Every figure of the record is measured here.

Usage:
  deploy_cifar10.py [--model=<file>] [--out=<dir>] [--packages=<dir>] [--limit=<n>] [--rate=<rps>]
                    [--duration=<s>] [--max-batch=<n>] [--max-delay-ms=<ms>] [--splits=<n>] [--trials=<n>]
                    [--drift-rows=<n>] [--seed=<n>] [--warmup=<s>] [--server-threads=<n>] [--int8=<file>]
                    [--in-process]
  deploy_cifar10.py (-h | --help)

Options:
  --model=<file>      The trained model, a safe checkpoint written by train_cifar10.py --save
                      [default: examples/checkpoints/cifar10_cnn.npz].
  --out=<dir>         Where the report (README.md) and results.json go [default: examples/results/deploy].
  --packages=<dir>    Where the model packages go [default: examples/checkpoints/packages].
  --limit=<n>         Use the first n test images [default: 10000].
  --rate=<rps>        Poisson request rate of the load tests [default: 50].
  --duration=<s>      Seconds of each load test [default: 20].
  --max-batch=<n>     Examples per model call of the micro-batching server [default: 32].
  --max-delay-ms=<ms>  Its batching delay [default: 10].
  --splits=<n>        Random no-shift splits of the test set for the false-alarm rates [default: 1000].
  --trials=<n>        Random draws per shift for the detection power [default: 200].
  --drift-rows=<n>    Rows in each reference and current sample of the small-sample (KS) checks [default: 500].
  --seed=<n>          Seed of the splits and draws [default: 0].
  --warmup=<s>        Seconds of load before each measured load test [default: 1].
  --server-threads=<n>  BLAS/OpenMP threads of each server's model (1 leaves a core of two to the server's
                      event loop and the load generator) [default: 1].
  --int8=<file>       The int8 model that examples/compress_cifar10.py writes, A/B-tested against the float
                      one; when the file does not exist, the float model's weights rounded to float16 take
                      its place [default: examples/checkpoints/cifar10_int8.npz].
  --in-process        Run the servers in threads of this process instead of tito serve processes (quick
                      smoke runs only: the load generator then shares their interpreter).

The data come from TINYTORCH_DATA (on the course machines: TINYTORCH_DATA=../shared/data). The
servers run as separate processes (tito serve), the load generator in this one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np
from docopt import docopt

from tinytorch.core.checkpoint import load_checkpoint
from tinytorch.core.compression import load_quantized
from tinytorch.core.data.datasets import CIFAR10_MEAN, CIFAR10_STD
from tinytorch.core.dataloader import CIFAR10Dataset
from tinytorch.core.mlops import (BackgroundServer, DriftDetector, PackageError, ServerProcess, ServerSettings,
                                  check_onnx, create_app, export_onnx, image_statistics, load_package, load_test, package,
                                  paired_accuracy_comparison, population_stability_index)

from reporting import _machine, write_atomically
from train_cifar10 import build_model

MEAN, STD = np.array(CIFAR10_MEAN, np.float32)[:, None, None], np.array(CIFAR10_STD, np.float32)[:, None, None]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def predict(model: tt.Module, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits of every image, in eval mode and without a graph."""
    model.eval()
    with tt.no_grad():
        return np.concatenate([model(tt.tensor(images[i:i + batch_size])).numpy() for i in range(0, len(images), batch_size)])


def in_pixel_space(images: np.ndarray, change) -> np.ndarray:
    """Apply ``change`` to the [0, 1] pixels behind standardised images, clip, and standardise again."""
    pixels = np.clip(change(images * STD + MEAN), 0.0, 1.0)
    return ((pixels - MEAN) / STD).astype(np.float32)


def shifted_sets(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The real shifts a deployed camera model meets, applied to the whole test set."""
    animals = np.isin(labels, [2, 3, 4, 5, 6, 7])  # bird, cat, deer, dog, frog, horse
    return {
        "brightness +0.1": (in_pixel_space(images, lambda p: p + 0.1), labels),
        "brightness +0.2": (in_pixel_space(images, lambda p: p + 0.2), labels),
        "gaussian noise sd 0.05": (in_pixel_space(images, lambda p: p + rng.normal(0, 0.05, p.shape)), labels),
        "gaussian noise sd 0.1": (in_pixel_space(images, lambda p: p + rng.normal(0, 0.1, p.shape)), labels),
        "class mix: animals only": (images[animals], labels[animals]),
    }


def false_alarms(features: np.ndarray, names: list[str], predicted: np.ndarray, rows: int, splits: int,
                 rng: np.random.Generator) -> dict:
    """Drift verdicts on random splits of the *same* data: every alarm is a false one."""
    per_feature, dataset, psi_alarms = np.zeros(len(names)), 0, 0
    tests = set()
    for _ in range(splits):
        order = rng.permutation(len(features))
        ref, cur = order[:rows], order[rows:2 * rows]
        report = DriftDetector(features[ref], feature_names=names).detect(features[cur])
        per_feature += [f.drifted for f in report.features]
        dataset += report.dataset_drifted
        tests |= {f.test for f in report.features}
        psi_alarms += population_stability_index(predicted[ref], predicted[cur], categorical=True) >= 0.1
    return {"rows": rows, "splits": splits, "tests": sorted(tests),
            "per_feature_rate": dict(zip(names, (per_feature / splits).round(4).tolist())),
            "mean_feature_rate": float(per_feature.sum() / (splits * len(names))),
            "dataset_rate": dataset / splits, "prediction_psi_rate": psi_alarms / splits}


def detection_power(clean: np.ndarray, clean_pred: np.ndarray, shifted: np.ndarray, shifted_pred: np.ndarray,
                    names: list[str], rows: int, trials: int, rng: np.random.Generator) -> dict:
    """How often a shift is caught: reference = clean test images, current = shifted ones (other images)."""
    detected, shares, psis = 0, [], []
    rows = min(rows, len(clean) // 2, len(shifted))
    for _ in range(trials):
        ref = rng.choice(len(clean), rows, replace=False)
        cur = rng.choice(len(shifted), rows, replace=False)
        report = DriftDetector(clean[ref], feature_names=names).detect(shifted[cur])
        detected += report.dataset_drifted
        shares.append(report.share_drifted)
        psis.append(population_stability_index(clean_pred[ref], shifted_pred[cur], categorical=True))
    return {"rows": rows, "trials": trials, "power": detected / trials, "mean_share_drifted": float(np.mean(shares)),
            "prediction_psi_median": float(np.median(psis)), "prediction_psi_alarm_rate": float(np.mean(np.array(psis) >= 0.1))}


def post(url: str, body: bytes, content_type: str) -> dict:
    request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def served_accuracy(url: str, images: np.ndarray, labels: np.ndarray, batch: int = 250) -> float:
    """Accuracy of the *server's* answers: every test image through HTTP, as .npy batches."""
    predicted = np.concatenate([post(url, npy(images[i:i + batch]), "application/x-npy")["predictions"]
                                for i in range(0, len(images), batch)])
    return float((predicted == labels).mean())


@contextlib.contextmanager
def running_server(folders: list[Path], max_batch: int, max_delay_ms: float, in_process: bool, threads: int = 1):
    """A server on the packages, as a ``tito serve`` child process (or, for smoke runs, a thread); yields its URL."""
    if not in_process:
        with ServerProcess(folders, max_batch=max_batch, max_delay_ms=max_delay_ms, threads=threads) as server:
            yield server.url
        return
    app = create_app([load_package(f) for f in folders], ServerSettings(max_batch=max_batch, max_delay_ms=max_delay_ms))
    with BackgroundServer(app) as url:
        yield url


def get(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=60) as response:
        return json.loads(response.read())


def challenger_model(model_path: str, int8_path: str) -> tuple[tt.Module, str, str]:
    """The model to A/B-test against, a description and a package name: the int8 model of
    compress_cifar10.py when it exists, otherwise the same weights rounded to float16 (half the storage)."""
    if Path(int8_path).exists():
        model, _ = load_quantized(int8_path)
        return model, f"its int8 model (static quantization, `{int8_path}`)", "cifar10_cnn_int8"
    model = build_model()
    load_checkpoint(model_path, model)
    for p in model.parameters():
        p.data[...] = p.data.astype(np.float16).astype(np.float32)
    return model, "the same CNN with its weights rounded to float16", "cifar10_cnn_fp16"


def ms(value: float) -> str:
    return f"{value * 1e3:.2f}"


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    started = time.perf_counter()
    out, packages = Path(args["--out"]), Path(args["--packages"])
    limit, rate, duration = int(args["--limit"]), float(args["--rate"]), float(args["--duration"])
    max_batch, max_delay = int(args["--max-batch"]), float(args["--max-delay-ms"])
    splits, trials, drift_rows = int(args["--splits"]), int(args["--trials"]), int(args["--drift-rows"])
    warmup, in_process, threads = float(args["--warmup"]), args["--in-process"], int(args["--server-threads"])
    rng = np.random.default_rng(int(args["--seed"]))
    record: dict = {"command": " ".join(["python", *sys.argv]) if argv is None else "deploy_cifar10.main(" + repr(argv) + ")",
                    "load_average_at_start": os.getloadavg()[0], "server_threads": threads}

    data = CIFAR10Dataset(train=False, normalize=True)
    images, labels = data.test_data[:limit], data.test_labels[:limit]
    model = build_model()
    load_checkpoint(args["--model"], model)
    logits = predict(model, images)
    predicted = logits.argmax(axis=1)
    accuracy = float((predicted == labels).mean())
    names, features = image_statistics(images)
    log(f"test accuracy {100 * accuracy:.2f} % on {len(images)} images")

    # 1. the package: weights, manifest, reference data for monitoring
    folder = package(model, packages / "cifar10_cnn", signature=images[:1], classes=list(data.classes),
                     metrics={"test_accuracy": accuracy, "test_images": len(images)},
                     reference={"predictions": predicted, "features": features},
                     metadata={"source": str(args["--model"]), "input": "CIFAR-10 images standardised per channel",
                               "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD), "feature_names": names},
                     overwrite=True)
    loaded = load_package(folder)
    reloaded_equal = bool(np.array_equal(predict(loaded.model, images[:256]), predict(model, images[:256])))
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(shutil.copytree(folder, Path(scratch) / "tampered"))
        weights = bytearray((copy / "weights.safetensors").read_bytes())
        weights[len(weights) // 2] ^= 0x01
        (copy / "weights.safetensors").write_bytes(bytes(weights))
        try:
            load_package(copy)
            tamper = "NOT DETECTED"
        except PackageError as error:
            tamper = str(error).replace(str(copy), "<copy>")
    manifest = loaded.manifest
    record["package"] = {"files": manifest["files"], "uuid": manifest["uuid"], "parameters": manifest["parameters"],
                         "signature": manifest["signature"], "reloaded_outputs_identical": reloaded_equal,
                         "one_flipped_bit": tamper}

    # 2. ONNX, checked by onnx.checker (in export_onnx) and onnxruntime
    onnx_path = export_onnx(model, images[:1], packages / "cifar10_cnn.onnx")
    onnx_errors = {str(n): check_onnx(onnx_path, model, images[:n], rtol=1e-3, atol=1e-5) for n in (1, 64, 256) if n <= len(images)}
    record["onnx"] = {"bytes": onnx_path.stat().st_size, "max_abs_error_by_batch": onnx_errors}
    log(f"ONNX: max |onnxruntime - tinytorch| {max(onnx_errors.values()):.2e}")

    # 3. serving: one request at a time, then micro-batched; the load generator is this process
    serving = {}
    for label, batch in (("batch-1 server", 1), (f"micro-batching server (max batch {max_batch}, {max_delay:g} ms)", max_batch)):
        with running_server([folder], batch, max_delay, in_process, threads) as url:
            if batch == 1:
                record["served_accuracy"] = served_accuracy(url, images, labels)
            result = load_test(url, rate, duration, arrivals="poisson", warmup_s=warmup, seed=int(args["--seed"]))
            monitor = get(url, "/monitor")["models"]["cifar10_cnn"]
            serving[label] = {**result.to_json(), "monitor_prediction_psi": monitor["prediction_psi"]}
            log(f"{label}: {result.describe()}")
    record["serving"] = serving

    # 4. drift: false alarms on no-shift splits, power on real shifts
    half = max(1, min(drift_rows, len(images) // 2))
    large = max(1, len(images) // 2)
    record["false_alarms"] = {
        "small samples (statistical tests)": false_alarms(features, names, predicted, half, splits, rng),
        "large samples (distances)": false_alarms(features, names, predicted, large, splits, rng),
    }
    shifts = {}
    for name, (shifted_images, shifted_labels) in shifted_sets(images, labels, rng).items():
        if len(shifted_images) == 0:  # a tiny smoke run may hold no animal at all
            continue
        shifted_logits = predict(model, shifted_images)
        shifted_pred = shifted_logits.argmax(axis=1)
        _, shifted_features = image_statistics(shifted_images)
        shifts[name] = {
            "accuracy": float((shifted_pred == shifted_labels).mean()),
            "small samples": detection_power(features, predicted, shifted_features, shifted_pred, names, half, trials, rng),
            "large samples": detection_power(features, predicted, shifted_features, shifted_pred, names, large,
                                             max(1, trials // 10), rng),
        }
        log(f"{name}: power {shifts[name]['small samples']['power']:.2f} at {half} rows")
    record["shifts"] = shifts

    # 5. A/B: the model against its compressed twin, served side by side, paired on labelled traffic
    challenger, description, challenger_name = challenger_model(args["--model"], args["--int8"])
    challenger_logits = predict(challenger, images)
    challenger_folder = package(challenger, packages / challenger_name, signature=images[:1], classes=list(data.classes),
                                metrics={"test_accuracy": float((challenger_logits.argmax(1) == labels).mean())},
                                reference={"predictions": challenger_logits.argmax(1)}, metadata={"what": description},
                                overwrite=True)
    with running_server([folder, challenger_folder], max_batch, max_delay, in_process, threads) as url:
        for i in range(0, len(images), 10):
            body = json.dumps({"inputs": images[i:i + 10].tolist(), "labels": labels[i:i + 10].tolist(), "id": f"img-{i}"})
            post(url, body.encode(), "application/json")
        for _ in range(200):
            ab = get(url, "/ab")
            if ab["labelled_examples"] == len(images):
                break
            time.sleep(0.05)
    offline = paired_accuracy_comparison(predicted == labels, challenger_logits.argmax(1) == labels)
    record["ab"] = {"challenger": description, "server": ab, "offline_paired": offline.to_json()}

    record["load_average_at_end"] = os.getloadavg()[0]
    record["machine"] = _machine()
    record["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    record["seconds"] = time.perf_counter() - started
    record["test_accuracy"] = accuracy
    write_record(out, record)
    print(f"deployment record in {out}: accuracy {100 * accuracy:.2f} %, served {100 * record['served_accuracy']:.2f} %")
    return record


def write_record(out: Path, r: dict) -> None:
    """results.json with everything, and README.md with the tables a reader wants."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Deploying the CIFAR-10 CNN", "",
        f"- Date: {r['date']}", f"- Command: `{r['command']}`", f"- Machine: {r['machine']}",
        f"- Whole program: {r['seconds'] / 60:.1f} min; one-minute load average {r['load_average_at_start']:.2f} at the "
        f"start, {r['load_average_at_end']:.2f} at the end (the latencies and wall times are an idle machine's only "
        f"when these are well below the core count); servers' model threads: {r['server_threads']}", "",
        "## Package", "",
        f"- Test accuracy of the model: **{100 * r['test_accuracy']:.2f} %**; of the server's answers over HTTP: "
        f"**{100 * r['served_accuracy']:.2f} %**",
        f"- Files: " + ", ".join(f"`{n}` ({v['bytes']:,} bytes, sha256 {v['sha256'][:12]}...)" for n, v in r["package"]["files"].items()),
        f"- Reloaded model gives identical outputs: {r['package']['reloaded_outputs_identical']}",
        f"- One flipped bit in the weights: `{r['package']['one_flipped_bit']}`",
        f"- ONNX ({r['onnx']['bytes']:,} bytes): max |onnxruntime - TinyTorch| by batch size "
        + ", ".join(f"{n}: {e:.2e}" for n, e in r["onnx"]["max_abs_error_by_batch"].items()) + " (tolerance rtol 1e-3, atol 1e-5)",
        "", "## Serving (Poisson arrivals, latency from the scheduled send time)", "",
        "| server | offered rps | achieved rps | completed | failed | p50 ms | p90 ms | p99 ms | p99.9 ms | mean batch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, s in r["serving"].items():
        lat = s["latency_s"]
        lines.append(f"| {label} | {s['offered_rate']:g} | {s['achieved_rate']:.1f} | {s['completed']} | {s['failed']} | "
                     + (" | ".join(ms(lat[k]) for k in ("p50", "p90", "p99", "p99.9")) if lat.get("count") else "— | — | — | —")
                     + f" | {s['batch_sizes'].get('mean', float('nan')):.2f} |")
    lines += ["", "## Drift: false alarms on no-shift splits of the test set", "",
              "| regime | rows per side | splits | tests | feature alarms (mean) | data-set alarms | prediction PSI >= 0.1 |",
              "|---|---|---|---|---|---|---|"]
    for label, f in r["false_alarms"].items():
        lines.append(f"| {label} | {f['rows']} | {f['splits']} | {', '.join(f['tests'])} | {100 * f['mean_feature_rate']:.2f} % | "
                     f"{100 * f['dataset_rate']:.2f} % | {100 * f['prediction_psi_rate']:.2f} % |")
    lines += ["", "Per feature (small samples): " + ", ".join(
        f"{n} {100 * v:.1f} %" for n, v in r["false_alarms"]["small samples (statistical tests)"]["per_feature_rate"].items()),
        "", "## Drift: detection of real shifts", "",
        "| shift | model accuracy | power, small samples | share of features drifted | power, large samples | median prediction PSI |",
        "|---|---|---|---|---|---|"]
    for name, s in r["shifts"].items():
        small, large = s["small samples"], s["large samples"]
        lines.append(f"| {name} | {100 * s['accuracy']:.2f} % | {100 * small['power']:.1f} % ({small['trials']} draws of "
                     f"{small['rows']}) | {small['mean_share_drifted']:.2f} | {100 * large['power']:.1f} % "
                     f"({large['trials']} draws of {large['rows']}) | {small['prediction_psi_median']:.3f} |")
    ab, offline = r["ab"]["server"], r["ab"]["offline_paired"]
    lines += ["", "## A/B: the model against " + r["ab"]["challenger"], ""]
    for arm, a in ab["arms"].items():
        lat = a["latency_s"]
        lines.append(f"- {arm}: {a['requests']} requests ({100 * (a['share'] or 0):.1f} %), latency ms p50 {ms(lat['p50'])}, "
                     f"p99 {ms(lat['p99'])}" if lat.get("count") else f"- {arm}: no requests")
    if "paired_accuracy" in ab:
        p = ab["paired_accuracy"]
        lines.append(f"- Paired accuracy on {p['n']:,} labelled images (served arm + shadow): {p['difference_is']} "
                     f"{100 * p['difference']:+.2f} points, 95 % CI [{100 * p['ci'][0]:+.2f}, {100 * p['ci'][1]:+.2f}], "
                     f"McNemar p = {p['p_value']:.3g} ({p['only_a']} images only the first got right, {p['only_b']} only the second)")
    lines.append(f"- Offline, same images: {100 * offline['difference']:+.2f} points, 95 % CI "
                 f"[{100 * offline['ci'][0]:+.2f}, {100 * offline['ci'][1]:+.2f}]")
    lines.append("")
    write_atomically(out / "results.json", json.dumps(r, indent=2))
    write_atomically(out / "README.md", "\n".join(lines))


if __name__ == "__main__":
    main()
