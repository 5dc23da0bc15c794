"""Compress the trained CIFAR-10 CNN and record what every method costs: int8 quantization, magnitude and
structured pruning, distillation, memory-saving training, dynamic int8 on an MNIST MLP, int8 speed.

Usage:
  compress_cifar10.py [--model=<file>] [--out=<dir>] [--save-dir=<dir>] [--parts=<list>] [--finetune-epochs=<n>]
                      [--distill-epochs=<n>] [--seeds=<n>] [--batch-size=<n>] [--limit=<n>] [--test-limit=<n>]
                      [--calibration-batches=<n>] [--mnist-epochs=<n>] [--sparsities=<list>] [--memory-rounds=<n>]
                      [--quiet]
  compress_cifar10.py (-h | --help)

Options:
  --model=<file>             The trained float model, a safe checkpoint that load_checkpoint(path, build_model())
                             reads [default: examples/checkpoints/cifar10_cnn.npz]. Make it with
                             `python examples/train_cifar10.py` (about 13 minutes on two cores).
  --out=<dir>                Where the report (README.md), the figures (results.json) and the sparsity
                             curve go [default: examples/results/compression].
  --save-dir=<dir>           Where the compressed models go, for packaging and serving (int8, 90 % sparse,
                             channel-pruned) [default: examples/checkpoints].
  --parts=<list>             Comma-separated parts to run: quantize, prune, structured, distill, memory,
                             dynamic, speed [default: quantize,prune,structured,distill,memory,dynamic,speed].
  --finetune-epochs=<n>      Fine-tuning epochs after pruning [default: 3].
  --distill-epochs=<n>       Training epochs of each student [default: 6].
  --seeds=<n>                Paired seeds of the distillation comparison [default: 3].
  --batch-size=<n>           Training batch [default: 128].
  --limit=<n>                Fine-tune and distill on the first n training images [default: 50000].
  --test-limit=<n>           Evaluate on the first n test images [default: 10000].
  --calibration-batches=<n>  Batches of 64 training images that calibrate int8 activations [default: 32].
  --mnist-epochs=<n>         Training epochs of the MNIST MLP that dynamic int8 quantizes [default: 12].
  --sparsities=<list>        The points of the sparsity/accuracy curve
                             [default: 0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.85,0.9,0.95].
  --memory-rounds=<n>        Rounds of the memory-saving measurement; the first is not kept [default: 6].
  --quiet                    Print only the summary.

The data come from TINYTORCH_DATA (on the course machines: TINYTORCH_DATA=../shared/data). Accuracy
figures hold on any machine; speed figures (the ``speed`` and ``memory`` parts) are only meaningful
on an idle one: the speed part runs ``python -m benchmarks.compression``, which waits for one.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np
from docopt import docopt

from tinytorch.core import compression
from tinytorch.core.checkpoint import load_checkpoint, save_checkpoint
from tinytorch.core.data.transforms import Compose, RandomCrop, RandomHorizontalFlip
from tinytorch.core.dataloader import CIFAR10Dataset, DataLoader
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.metrics import Accuracy
from tinytorch.core.optimizers import SGD, OneCycleLR
from tinytorch.core.profiling import MemoryProfiler
from tinytorch.core.training import Trainer, evaluate_model

from reporting import _machine, write_atomically
from train_cifar10 import build_model, conv_block

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("quantize", "prune", "structured", "distill", "memory", "dynamic", "speed")
FINETUNED = (0.8, 0.9)
#: every convolution of build_model(), as indices into its list of layers, and the fraction of its channels removed
CHANNELS_REMOVED = {0: 0.5, 4: 0.5, 8: 0.5}
TEMPERATURE, ALPHA = 4.0, 0.9
#: (activation observer, per-channel weight scales, weight bits) of each static quantization; the first is the model saved
QUANTIZED_VARIANTS = (("percentile", True, 8), ("histogram", True, 8), ("minmax", True, 8), ("minmax", False, 8),
                      ("minmax", True, 4), ("minmax", False, 4))


def build_student() -> tt.Sequential:
    """The teacher's shape at half the width: 16-32-64 channels, dense 1024 -> 128 -> 10 (about a quarter of the parameters)."""
    return tt.Sequential(
        *conv_block(3, 16), tt.MaxPool2D(2),
        *conv_block(16, 32), tt.MaxPool2D(2),
        *conv_block(32, 64), tt.MaxPool2D(2),
        tt.Flatten(), tt.Dense(64 * 4 * 4, 128), tt.ReLU(), tt.Dense(128, 10),
    )


class Run:
    """The data, the settings and the figures of one run of this program."""

    def __init__(self, args: dict):
        self.args = args
        self.quiet = args["--quiet"]
        self.batch_size = int(args["--batch-size"])
        self.finetune_epochs = int(args["--finetune-epochs"])
        data = CIFAR10Dataset(train=True, normalize=True)
        limit, test_limit = int(args["--limit"]), int(args["--test-limit"])
        self.train_x, self.train_y = data.train_data[:limit], data.train_labels[:limit]
        self.test_loader = DataLoader(data.test_data[:test_limit], data.test_labels[:test_limit], batch_size=500)
        self.out, self.save_dir = Path(args["--out"]), Path(args["--save-dir"])
        self.out.mkdir(parents=True, exist_ok=True)
        self.save_dir.mkdir(parents=True, exist_ok=True)
        self.results: dict = {}
        self.started = time.perf_counter()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def accuracy(self, model: tt.Module) -> float:
        return float(evaluate_model(model, self.test_loader)["accuracy"])

    def train_loader(self) -> DataLoader:
        augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
        return DataLoader(self.train_x, self.train_y, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          transform=augment)

    def calibration_batches(self) -> list[np.ndarray]:
        count = int(self.args["--calibration-batches"])
        order = np.random.default_rng(0).permutation(len(self.train_x))[: 64 * count]
        return [self.train_x[order[i:i + 64]] for i in range(0, len(order), 64)]

    def fit(self, model: tt.Module, epochs: int, lr: float, loss=None, callbacks=()) -> None:
        """SGD with Nesterov momentum and a one-cycle schedule, crops and flips: train_cifar10.py's recipe."""
        loader = self.train_loader()
        optimizer = SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        schedule = OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=len(loader), pct_start=0.25)
        trainer = Trainer(model, loss or CrossEntropyLoss(label_smoothing=0.1), optimizer, scheduler=schedule,
                          callbacks=list(callbacks))
        trainer.fit(loader, epochs=epochs, verbose=0 if self.quiet else 2)


def file_size(path: Path) -> int:
    return path.stat().st_size


def quantize_part(run: Run, model: tt.Module, float_path: Path) -> None:
    """Static int8 with per-channel weights under each observer, and the per-tensor min-max ablation."""
    batches = run.calibration_batches()
    rows = []
    for observer, per_channel, bits in QUANTIZED_VARIANTS:
        started = time.perf_counter()
        quantized = compression.quantize_static(model, batches, observer=observer, per_channel=per_channel, bits=bits)
        convert_s = time.perf_counter() - started
        path = run.save_dir / f"cifar10_int8_{observer}{'' if per_channel else '_per_tensor'}_w{bits}.npz"
        compression.save_quantized(path, quantized, observer=observer, per_channel=per_channel, weight_bits=bits)
        reloaded, _ = compression.load_quantized(path)
        accuracy = run.accuracy(reloaded)
        rows.append({"observer": observer, "weights": "per-channel" if per_channel else "per-tensor", "weight_bits": bits,
                     "accuracy": accuracy, "bytes": file_size(path), "convert_seconds": convert_s, "file": path.name})
        run.say(f"int8 {observer} {rows[-1]['weights']} {bits}-bit weights: {100 * accuracy:.2f} %, {file_size(path):,} bytes")
        if (observer, per_channel, bits) == QUANTIZED_VARIANTS[0]:
            compression.save_quantized(run.save_dir / "cifar10_int8.npz", quantized, observer=observer,
                                       calibration_batches=len(batches), test_accuracy=accuracy)
    dtypes = {}
    with np.load(run.save_dir / "cifar10_int8.npz", allow_pickle=False) as archive:
        for name in archive.files:
            if name != "__tinytorch__":
                dtypes[name.rsplit("/", 1)[-1]] = str(archive[name].dtype)
    run.results["quantize"] = {"calibration_batches": len(batches), "float_bytes": file_size(float_path), "rows": rows,
                               "saved_dtypes": dtypes, "weight_snr": weight_snr(model)}


def weight_snr(model: tt.Module) -> list[dict]:
    """Signal-to-noise ratio (dB) of each layer's batch-norm-folded weights, quantized per channel and per tensor."""
    layers = compression.flat_layers(model)
    rows = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tt.Conv2D, tt.Dense)):
            continue
        bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], tt.BatchNorm2D) else None
        weight = compression.fold_batchnorm(layer, bn)[0]
        row = {"layer": f"{i} {layer.label()}"}
        for bits in (8, 4):
            q, scale = compression.quantize_per_channel(weight, bits=bits)
            q_t, scale_t = compression.quantize_per_tensor(weight, bits=bits)
            for key, restored in (("per-channel", compression.dequantize(q, scale, axis=0)),
                                  ("per-tensor", compression.dequantize(q_t, scale_t))):
                noise = np.sum((restored.astype(np.float64) - weight) ** 2)
                row[f"{key} {bits}-bit"] = float(10 * np.log10(np.sum(weight.astype(np.float64) ** 2) / noise))
        rows.append(row)
    return rows


def prune_part(run: Run, model: tt.Module, float_path: Path) -> None:
    """The sparsity/accuracy curve, fine-tuning at 80 and 90 %, and the compact files at 90 %."""
    curve = []
    for target in (float(v) for v in run.args["--sparsities"].split(",")):
        pruned = copy.deepcopy(model)
        report = compression.prune_magnitude(pruned, target) if target else compression.layer_sparsity(pruned)
        curve.append({"sparsity": target, "accuracy": run.accuracy(pruned), "layers": report})
        run.say(f"pruned {100 * target:.0f} %: {100 * curve[-1]['accuracy']:.2f} %")
    tuned = []
    for target in FINETUNED:
        pruned = copy.deepcopy(model)
        compression.prune_magnitude(pruned, target)
        before = run.accuracy(pruned)
        started = time.perf_counter()
        run.fit(pruned, run.finetune_epochs, lr=0.02, callbacks=[compression.KeepPruned()])
        row = {"sparsity": target, "before": before, "after": run.accuracy(pruned), "epochs": run.finetune_epochs,
               "measured_sparsity": compression.sparsity(pruned), "seconds": time.perf_counter() - started}
        if target == 0.9:
            row.update(sparse_files(run, pruned, float_path))
        tuned.append(row)
        run.say(f"pruned {100 * target:.0f} % and fine-tuned: {100 * row['after']:.2f} %")
    run.results["prune"] = {"curve": curve, "finetuned": tuned, "finetune_lr": 0.02}
    plot_curve(run, curve, tuned)


def sparse_files(run: Run, pruned: tt.Module, float_path: Path) -> dict:
    dense = run.save_dir / "cifar10_pruned90_dense.npz"
    sparse = run.save_dir / "cifar10_pruned90.npz"
    sparse_int8 = run.save_dir / "cifar10_pruned90_int8.npz"
    save_checkpoint(dense, pruned)
    compression.save_sparse(sparse, pruned, sparsity=0.9)
    compression.save_sparse(sparse_int8, pruned, values="int8", sparsity=0.9)
    restored, approx = build_model(), build_model()
    compression.load_sparse(sparse, restored)
    compression.load_sparse(sparse_int8, approx)
    exact = all(np.array_equal(a, b) for a, b in zip(pruned.state_dict().values(), restored.state_dict().values()))
    return {"float_bytes": file_size(float_path), "dense_bytes": file_size(dense), "sparse_bytes": file_size(sparse),
            "sparse_int8_bytes": file_size(sparse_int8), "round_trip_exact": exact,
            "sparse_int8_accuracy": run.accuracy(approx)}


def plot_curve(run: Run, curve: list, tuned: list) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit('the sparsity curve needs matplotlib: pip install "tinytorch[plot]"') from None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([100 * c["sparsity"] for c in curve], [100 * c["accuracy"] for c in curve], "o-", label="pruned, no fine-tuning")
    ax.plot([100 * t["sparsity"] for t in tuned], [100 * t["after"] for t in tuned], "s", markersize=8,
            label=f"after {run.finetune_epochs} fine-tuning epochs")
    ax.set_xlabel("weights pruned (global magnitude), %")
    ax.set_ylabel("test accuracy, %")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = run.out / "sparsity_curve.tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(run.out / "sparsity_curve.png")


def forward_flops(model: tt.Module) -> float:
    """Forward FLOPs per image (a multiply-add counts 2), from the profiler's counter."""
    from tinytorch.core.profiling import count_flops

    return float(count_flops(model, (1, 3, 32, 32), backward=False).forward)


def structured_part(run: Run, model: tt.Module) -> None:
    """Half the channels of every convolution removed, fine-tuned; FLOPs and parameters before and after."""
    slim = compression.prune_channels(model, CHANNELS_REMOVED)
    before = run.accuracy(slim)
    started = time.perf_counter()
    run.fit(slim, run.finetune_epochs, lr=0.02)
    after = run.accuracy(slim)
    path = run.save_dir / "cifar10_channels_pruned.npz"
    save_checkpoint(path, slim, layers=[repr(layer) for layer in slim])
    run.results["structured"] = {
        "removed": {str(k): v for k, v in CHANNELS_REMOVED.items()},
        "flops": forward_flops(model), "slim_flops": forward_flops(slim),
        "parameters": model.num_parameters(), "slim_parameters": slim.num_parameters(),
        "before_finetune": before, "after_finetune": after, "epochs": run.finetune_epochs,
        "seconds": time.perf_counter() - started, "file": path.name,
    }
    run.say(f"channel-pruned: {100 * after:.2f} % after fine-tuning")


def distill_part(run: Run, teacher: tt.Module) -> None:
    """The same student trained alone and distilled from the teacher, seed by seed (same start, same batches)."""
    epochs, rows = int(run.args["--distill-epochs"]), []
    for seed in range(int(run.args["--seeds"])):
        row = {"seed": seed}
        for mode in ("alone", "distilled"):
            tt.manual_seed(seed)  # the same initial weights, shuffling and augmentation in both runs
            student = build_student()
            started = time.perf_counter()
            if mode == "alone":
                run.fit(student, epochs, lr=0.1)
            else:
                distiller = compression.Distiller(student, teacher, temperature=TEMPERATURE, alpha=ALPHA)
                run.fit(distiller, epochs, lr=0.1, loss=distiller.loss)
            row[mode] = run.accuracy(student)
            row[f"{mode}_seconds"] = time.perf_counter() - started
        rows.append(row)
        run.say(f"student seed {seed}: alone {100 * row['alone']:.2f} %, distilled {100 * row['distilled']:.2f} %")
    gains = [r["distilled"] - r["alone"] for r in rows]
    summary = {key: {"mean": statistics.mean(values), "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}
               for key, values in (("alone", [r["alone"] for r in rows]), ("distilled", [r["distilled"] for r in rows]),
                                   ("gain", gains))}
    run.results["distill"] = {"temperature": TEMPERATURE, "alpha": ALPHA, "epochs": epochs, "rows": rows,
                              "summary": summary, "teacher_accuracy": run.results["float"]["accuracy"],
                              "student_parameters": build_student().num_parameters()}


def memory_part(run: Run) -> None:
    """Peak memory and time of a training step: plain, recomputed in segments, and with float16 boundaries; and
    half-precision weight storage against float32 weights, training and inference."""
    x = tt.tensor(run.train_x[:128])
    y = tt.tensor(run.train_y[:128])
    loss_fn = CrossEntropyLoss()
    modes = {"plain": lambda m: m(x),
             "checkpoint (4 segments)": lambda m: compression.checkpoint_sequential(m, x, segments=4),
             "checkpoint + float16 boundaries": lambda m: compression.checkpoint_sequential(m, x, segments=4,
                                                                                          half_precision=True)}
    model = build_model().train()
    stats: dict = {name: {"peak": [], "kept": [], "seconds": []} for name in modes}
    rounds = int(run.args["--memory-rounds"])
    if rounds < 2:
        raise SystemExit("--memory-rounds must be at least 2 (the first round only allocates scratch buffers)")
    for round_ in range(rounds):  # alternating, so that a slow moment of the machine hits every mode
        for name, forward in modes.items():
            model.zero_grad()
            profiler = MemoryProfiler()
            started = time.perf_counter()
            with profiler.measure("step") as step:
                with profiler.measure("forward") as kept:
                    out = forward(model)
                loss_fn(out, y).backward()
            seconds = time.perf_counter() - started
            if round_ > 0:  # the first round allocates the kernels' scratch buffers
                stats[name]["peak"].append(step.peak_mb)
                stats[name]["kept"].append(kept.net_mb)
                stats[name]["seconds"].append(seconds)
    rows = [{"mode": name, "peak_mib": statistics.median(s["peak"]), "kept_mib": statistics.median(s["kept"]),
             "seconds": statistics.median(s["seconds"])} for name, s in stats.items()]
    weights = sum(p.data.nbytes for p in model.parameters()) / 2**20
    run.results["memory"] = {"batch": len(x), "rounds": rounds - 1, "weights_mib": weights, "rows": rows,
                             "half": half_precision_rows(run, x, y, rounds)}


def half_precision_rows(run: Run, x: tt.Tensor, y: tt.Tensor, rounds: int) -> list[dict]:
    """float32 weights against float16 storage with float32 masters: bytes held, peak and time of a training
    step (forward, backward, SGD step) and of inference at batch 1 (where the weights are most of the memory)."""
    loss_fn = CrossEntropyLoss()
    image = tt.tensor(run.train_x[:1])
    sides = {}
    for name in ("float32 weights", "float16 storage + float32 masters"):
        tt.manual_seed(0)
        model = build_model().train()
        if name.startswith("float16"):
            model = compression.half_precision(model)
            optimizer = compression.MasterWeights(SGD(model.parameters(), lr=0.01, momentum=0.9))
        else:
            optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9)
        sides[name] = (model, optimizer, {"step_peak": [], "step_seconds": [], "infer_peak": [], "infer_seconds": []})

    def step(model: tt.Module, optimizer) -> None:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    def infer(model: tt.Module) -> None:
        with tt.no_grad():
            model.eval()(image)
        model.train()

    for round_ in range(rounds):
        for model, optimizer, stats in sides.values():
            for label, work in (("step", lambda: step(model, optimizer)), ("infer", lambda: infer(model))):
                profiler = MemoryProfiler()
                started = time.perf_counter()
                with profiler.measure(label) as record:
                    work()
                seconds = time.perf_counter() - started
                if round_ > 0:
                    stats[f"{label}_peak"].append(record.peak_mb)
                    stats[f"{label}_seconds"].append(seconds)
    rows = []
    for name, (model, optimizer, stats) in sides.items():
        stored = sum(p.data.nbytes for p in model.parameters())
        masters = sum(m.data.nbytes for m in getattr(optimizer, "masters", []))
        momentum = sum(v.nbytes for s in optimizer.state.values() for v in s.values() if isinstance(v, np.ndarray))
        path = run.save_dir / ("cifar10_memory_float16.npz" if masters else "cifar10_memory_float32.npz")
        save_checkpoint(path, model)
        rows.append({"mode": name, "stored_mib": stored / 2**20, "masters_mib": masters / 2**20,
                     "file_bytes": file_size(path),
                     "optimizer_state_mib": momentum / 2**20,
                     **{key: statistics.median(values) for key, values in stats.items()}})
    return rows


def dynamic_part(run: Run) -> None:
    """Dynamic int8 (weights int8, inputs quantized per batch) on the MNIST MLP of train_mnist.py."""
    import train_mnist
    from tinytorch.core.dataloader import MNIST

    tt.manual_seed(0)
    train_set, test_set = MNIST(train=True, flatten=True), MNIST(train=False, flatten=True)
    epochs = int(run.args["--mnist-epochs"])
    mlp = train_mnist.build_model()
    train = DataLoader(train_set.data, train_set.labels, batch_size=128, shuffle=True)
    test = DataLoader(test_set.data, test_set.labels, batch_size=1000)
    optimizer = tt.Adam(mlp.parameters(), lr=1e-3)  # train_mnist.py's recipe
    trainer = Trainer(mlp, CrossEntropyLoss(), optimizer, [Accuracy()],
                      scheduler=tt.CosineAnnealingLR(optimizer, T_max=epochs))
    trainer.fit(train, epochs=epochs, verbose=0 if run.quiet else 2)
    quantized = compression.quantize_dynamic(mlp)
    float_path, int8_path = run.save_dir / "mnist_mlp.npz", run.save_dir / "mnist_mlp_int8.npz"
    save_checkpoint(float_path, mlp)
    compression.save_quantized(int8_path, quantized)
    run.results["dynamic"] = {
        "epochs": epochs, "float_accuracy": float(evaluate_model(mlp, test)["accuracy"]),
        "int8_accuracy": float(evaluate_model(compression.load_quantized(int8_path)[0], test)["accuracy"]),
        "float_bytes": file_size(float_path), "int8_bytes": file_size(int8_path),
    }


def speed_part(run: Run) -> None:
    """int8 and channel-pruned models against float32, each in its own process: runs benchmarks/compression.py
    (which waits for an idle machine) and keeps its record."""
    subprocess.run([sys.executable, "-m", "benchmarks.compression"], cwd=ROOT, check=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)})
    record = json.loads((ROOT / "benchmarks" / "results" / "compression.json").read_text())
    cases = {}
    for result in record["results"]:
        label = next(l for l in result["median_seconds"] if l != "float32")
        ratio = result["ratios"][f"{label} vs float32"]
        target = next((t for t in result["targets"]), None)
        cases[result["case"]] = {"label": label, "float32_ms": 1e3 * result["median_seconds"]["float32"],
                                 "ms": 1e3 * result["median_seconds"][label], "ratio": ratio,
                                 "target": f">= {target['at_least']}x" if target else "", "met": target["met"] if target else None,
                                 "outside_load": result["outside_load"], "rounds_dropped": result["rounds_dropped"]}
    run.results["speed"] = {"command": record["command"], "date": record["date"], "threads": record["threads"],
                            "idle_check": record["idle_check"], "cases": cases,
                            "channel_pruning": record.get("channel_pruning", {})}


def report(run: Run) -> str:
    r = run.results
    base = r["float"]
    lines = ["# Compressing the CIFAR-10 CNN", ""]
    for earlier in r["runs"]:
        lines += [f"- `{earlier['command']}` ({', '.join(earlier['parts'])}): {earlier['date']}, "
                  f"{earlier['seconds'] / 60:.1f} min on {earlier['machine']}"]
    lines += [
        f"- Float32 model: {base['parameters']:,} parameters, test accuracy **{100 * base['accuracy']:.2f} %** on "
        f"{base['test_images']:,} test images, file {base['bytes']:,} bytes (`save_checkpoint`)",
        "",
    ]
    if "quantize" in r:
        q = r["quantize"]
        lines += ["## int8 post-training quantization (static)", "",
                  f"Activations calibrated on {q['calibration_batches']} batches of 64 training images; weights int8 "
                  "with one scale per output channel (per tensor in the ablation); batch norm folded, ReLU fused. "
                  "Sizes are of the saved files (`save_quantized`: int8 arrays + JSON).", "",
                  "| activations observer | weight scales | weight bits | test accuracy | vs float32 | file bytes | smaller by |",
                  "|---|---|---|---|---|---|---|"]
        for row in q["rows"]:
            lines.append(f"| {row['observer']} | {row['weights']} | {row['weight_bits']} | {100 * row['accuracy']:.2f} % | "
                         f"{100 * (row['accuracy'] - base['accuracy']):+.2f} pt | {row['bytes']:,} | "
                         f"{q['float_bytes'] / row['bytes']:.2f}x |")
        lines += ["", "(4-bit weights are stored in int8 all the same: the rows show what the coarser grid costs.) "
                  "Signal-to-noise ratio of each layer's folded weights after quantization, in dB:", "",
                  "| layer | per-channel 8-bit | per-tensor 8-bit | per-channel 4-bit | per-tensor 4-bit |",
                  "|---|---|---|---|---|"]
        lines += [f"| {w['layer']} | {w['per-channel 8-bit']:.1f} | {w['per-tensor 8-bit']:.1f} | "
                  f"{w['per-channel 4-bit']:.1f} | {w['per-tensor 4-bit']:.1f} |" for w in q["weight_snr"]]
        floats = sorted(n for n, d in q["saved_dtypes"].items() if d != "int8")
        lines += ["", f"Arrays in the saved int8 model that are not int8: {', '.join(floats) or 'none'} "
                  f"({', '.join(sorted(set(q['saved_dtypes'][n] for n in floats))) or '-'}).", ""]
    if "prune" in r:
        p = r["prune"]
        lines += ["## Magnitude pruning (global, unstructured)", "",
                  "| weights pruned | test accuracy (no fine-tuning) |", "|---|---|"]
        lines += [f"| {100 * c['sparsity']:.0f} % | {100 * c['accuracy']:.2f} % |" for c in p["curve"]]
        lines += ["", f"Fine-tuned with the pruned weights held at zero (`KeepPruned`), SGD one-cycle peak lr "
                  f"{p['finetune_lr']}, crops and flips:", "",
                  "| weights pruned | before fine-tuning | after | epochs | vs float32 |", "|---|---|---|---|---|"]
        for t in p["finetuned"]:
            lines.append(f"| {100 * t['measured_sparsity']:.1f} % | {100 * t['before']:.2f} % | {100 * t['after']:.2f} % | "
                         f"{t['epochs']} | {100 * (t['after'] - base['accuracy']):+.2f} pt |")
        files = next((t for t in p["finetuned"] if "sparse_bytes" in t), None)
        if files:
            lines += ["", "Files of the 90 % model:", "", "| format | bytes | smaller than the float32 file by |",
                      "|---|---|---|",
                      f"| float32 checkpoint of the unpruned model | {files['float_bytes']:,} | 1.00x |",
                      f"| float32 checkpoint of the pruned model (zeros stored) | {files['dense_bytes']:,} | "
                      f"{files['float_bytes'] / files['dense_bytes']:.2f}x |",
                      f"| bitmask + float32 values (`save_sparse`) | {files['sparse_bytes']:,} | "
                      f"{files['float_bytes'] / files['sparse_bytes']:.2f}x |",
                      f"| bitmask + int8 values (`save_sparse(values='int8')`) | {files['sparse_int8_bytes']:,} | "
                      f"{files['float_bytes'] / files['sparse_int8_bytes']:.2f}x |",
                      "", f"The float32-valued file reloads bit for bit: {files['round_trip_exact']}. With int8 values "
                      f"the model scores {100 * files['sparse_int8_accuracy']:.2f} %.", ""]
        lines += ["![sparsity curve](sparsity_curve.png)", ""]
    if "structured" in r:
        s = r["structured"]
        cut = 1 - s["slim_flops"] / s["flops"]
        lines += ["## Structured (channel) pruning", "",
                  "Half the output channels of every convolution removed (smallest L1 norm of the batch-norm-folded "
                  "filter), with the batch norms and the next layers' inputs; then fine-tuned.", "",
                  "| | float32 model | channel-pruned |", "|---|---|---|",
                  f"| forward FLOPs per image | {s['flops'] / 1e6:.2f} M | {s['slim_flops'] / 1e6:.2f} M ({100 * cut:.1f} % fewer) |",
                  f"| parameters | {s['parameters']:,} | {s['slim_parameters']:,} |",
                  f"| test accuracy | {100 * base['accuracy']:.2f} % | {100 * s['before_finetune']:.2f} % before, "
                  f"{100 * s['after_finetune']:.2f} % after {s['epochs']} epochs |"]
        timed = r.get("speed", {}).get("channel_pruning")
        if timed and timed.get("channels_pruned_flops") != s["slim_flops"]:
            lines.append("| inference time, batch 64 | 1 | not yet measured for this recipe: run the speed part |")
            timed = None  # the speed record is of an earlier pruning recipe
        if timed:
            for label, figures in (("", timed), (", batch norms folded on both sides", timed.get("folded"))):
                if figures:
                    lines.append(f"| inference time, batch 64{label} (`benchmarks/compression.py`) | 1 | "
                                 f"{1 - figures['latency_cut']:.2f}x ({100 * figures['latency_cut']:.1f} % less: "
                                 f"{figures['share_of_flop_cut']:.2f} of the FLOP cut, target >= {timed['target_share']}) |")
        lines.append("")
    if "distill" in r:
        d = r["distill"]
        s = d["summary"]
        lines += ["## Distillation", "",
                  f"Student: the teacher's layout at half the width ({d['student_parameters']:,} parameters), "
                  f"{d['epochs']} epochs of the same recipe, alone and distilled from the float32 model "
                  f"({100 * d['teacher_accuracy']:.2f} %) with T = {d['temperature']}, alpha = {d['alpha']}; each seed "
                  "gives both runs the same initial weights, batches and augmentation.", "",
                  "| seed | alone | distilled | difference |", "|---|---|---|---|"]
        lines += [f"| {row['seed']} | {100 * row['alone']:.2f} % | {100 * row['distilled']:.2f} % | "
                  f"{100 * (row['distilled'] - row['alone']):+.2f} pt |" for row in d["rows"]]
        lines += [f"| mean ± sd | {100 * s['alone']['mean']:.2f} ± {100 * s['alone']['stdev']:.2f} % | "
                  f"{100 * s['distilled']['mean']:.2f} ± {100 * s['distilled']['stdev']:.2f} % | "
                  f"{100 * s['gain']['mean']:+.2f} ± {100 * s['gain']['stdev']:.2f} pt |", ""]
    if "memory" in r:
        m = r["memory"]
        plain = next(row for row in m["rows"] if row["mode"] == "plain")
        lines += ["## Memory-saving training", "",
                  f"One training step of the float32 CNN at batch {m['batch']}, measured with `MemoryProfiler` "
                  f"(NumPy allocations), median of {m['rounds']} alternating rounds in one process. The weights are "
                  f"{m['weights_mib']:.1f} MiB.", "",
                  "| mode | peak MiB | kept for backward MiB | step time | vs plain |", "|---|---|---|---|---|"]
        lines += [f"| {row['mode']} | {row['peak_mib']:.1f} | {row['kept_mib']:.1f} | {row['seconds'] * 1e3:.0f} ms | "
                  f"{row['seconds'] / plain['seconds']:.2f}x |" for row in m["rows"]]
        lines.append("")
        if "half" in m:
            full = m["half"][0]
            lines += ["Half-precision weight storage (`half_precision(model)`, trained through "
                      "`MasterWeights(SGD(..., momentum=0.9))`): the parameters are stored as float16 and cast to "
                      "float32 layer by layer for every forward pass; the optimizer updates float32 master copies "
                      "and rounds them into the storage. Weights held between steps, and the peak of what one "
                      f"training step (batch {m['batch']}: forward, backward, SGD step) and one inference (batch 1, "
                      "no graph) allocate on top, same rounds:", "",
                      "| weights | file bytes | stored MiB | masters MiB | momentum MiB | training step peak MiB | "
                      "step time | inference peak MiB | inference time |", "|---|---|---|---|---|---|---|---|---|"]
            lines += [f"| {row['mode']} | {row['file_bytes']:,} | {row['stored_mib']:.2f} | {row['masters_mib']:.2f} | "
                      f"{row['optimizer_state_mib']:.2f} | {row['step_peak']:.1f} | {row['step_seconds'] * 1e3:.0f} ms "
                      f"({row['step_seconds'] / full['step_seconds']:.2f}x) | {row['infer_peak']:.2f} | "
                      f"{row['infer_seconds'] * 1e3:.2f} ms ({row['infer_seconds'] / full['infer_seconds']:.2f}x) |"
                      for row in m["half"]]
            half = m["half"][-1]
            lines += ["", f"Training holds {half['stored_mib'] + half['masters_mib']:.2f} MiB of weights instead of "
                      f"{full['stored_mib']:.2f} (2 + 4 bytes per parameter against 4): with masters, float16 storage "
                      "saves nothing in training. It halves the weights at rest (memory and file), but while a layer "
                      "runs its float32 copy exists: at batch 1 inference holds weights + peak = "
                      f"{half['stored_mib'] + half['infer_peak']:.2f} MiB against {full['stored_mib'] + full['infer_peak']:.2f} "
                      "for float32, since the Dense 2048 -> 256 layer is 84 % of the parameters and its 2 MiB copy "
                      "is the peak (a kernel that reads float16 weights directly would avoid it). The masters are "
                      "what lets training work at all: an update smaller than half the float16 spacing around a "
                      "weight (4.9e-4 at 1.0) is rounded away when applied to the float16 value, and accumulates "
                      "in float32.", ""]
    if "dynamic" in r:
        d = r["dynamic"]
        lines += ["## Dynamic int8 on a Dense-only model", "",
                  f"The MNIST MLP of `train_mnist.py` ({d['epochs']} epochs), its Dense layers swapped for "
                  "`DynamicQuantizedDense` (int8 weights, each batch's input quantized on the fly):", "",
                  "| | float32 | dynamic int8 |", "|---|---|---|",
                  f"| test accuracy | {100 * d['float_accuracy']:.2f} % | {100 * d['int8_accuracy']:.2f} % "
                  f"({100 * (d['int8_accuracy'] - d['float_accuracy']):+.2f} pt) |",
                  f"| file bytes | {d['float_bytes']:,} | {d['int8_bytes']:,} ({d['float_bytes'] / d['int8_bytes']:.2f}x smaller) |", ""]
    if "speed" in r:
        sp = r["speed"]
        lines += ["## Speed: compressed against float32", "",
                  f"From `{sp['command']}` ({sp['date']}; `benchmarks/results/compression.md`): each model in its own "
                  f"process, {sp['threads']} threads, alternating rounds, the median of per-round ratios (above 1 the "
                  f"compressed model is faster). Machine before the run: {sp['idle_check']}.", "",
                  "| case | float32 | compressed | ratio | target | outside load (cores) |", "|---|---|---|---|---|---|"]
        for name, case in sp["cases"].items():
            met = "" if case["met"] is None else (" met" if case["met"] else " MISSED")
            load = "—" if case["outside_load"] is None else f"{max(l for l in case['outside_load'] if l is not None):.2f}"
            lines.append(f"| {name} | {case['float32_ms']:.3f} ms | {case['ms']:.3f} ms ({case['label']}) | "
                         f"{case['ratio']:.2f}x | {case['target']}{met} | {load} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = docopt(__doc__, argv=argv)
    parts = [p.strip() for p in args["--parts"].split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    model_path = Path(args["--model"])
    if not model_path.is_file():
        raise SystemExit(f"no trained model at {model_path}: make it with `python examples/train_cifar10.py --save={model_path}` "
                         "(about 13 minutes on two cores), or pass --model=<file>")
    run = Run(args)
    model = build_model()
    load_checkpoint(model_path, model)
    model.eval()
    float_path = run.save_dir / "cifar10_float.npz"
    save_checkpoint(float_path, model)  # the same writer as every other file here, for a fair size comparison
    run.results["float"] = {"accuracy": run.accuracy(model), "parameters": model.num_parameters(),
                            "bytes": file_size(float_path), "test_images": len(run.test_loader.dataset)}
    run.say(f"float32: {100 * run.results['float']['accuracy']:.2f} %")
    steps = {"quantize": lambda: quantize_part(run, model, float_path), "prune": lambda: prune_part(run, model, float_path),
             "structured": lambda: structured_part(run, model), "distill": lambda: distill_part(run, model),
             "memory": lambda: memory_part(run), "dynamic": lambda: dynamic_part(run),
             "speed": lambda: speed_part(run)}
    for part in PARTS:
        if part in parts:
            steps[part]()
    command = " ".join(["python", *sys.argv]) if argv is None else " ".join(["python examples/compress_cifar10.py", *argv])
    this_run = {"command": command, "parts": [p for p in PARTS if p in parts], "machine": _machine(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": time.perf_counter() - run.started}
    run.results = merged_with_earlier_runs(run.out / "results.json", run.results, this_run)
    write_atomically(run.out / "results.json", json.dumps(run.results, indent=2))
    write_atomically(run.out / "README.md", report(run))
    print(f"compression: report in {run.out}")
    return run.results


def merged_with_earlier_runs(path: Path, results: dict, this_run: dict) -> dict:
    """This run's parts, plus the parts an earlier run recorded in ``path`` on the same model and test set
    (parts can run separately: the accuracy parts on any machine, the speed part on an idle one)."""
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    if earlier.get("float") != results["float"]:
        earlier = {}
    merged = {part: earlier[part] for part in PARTS if part in earlier and part not in this_run["parts"]}
    merged.update(results)
    merged["runs"] = [r for r in earlier.get("runs", []) if set(r["parts"]) - set(this_run["parts"])] + [this_run]
    return merged


if __name__ == "__main__":
    main()
