"""What every example program records about its run: a Markdown report, the history as JSON, the
training curve and the confusion matrix, written atomically into one folder."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np

from tinytorch.core.metrics import compute_confusion_matrix
from tinytorch.core.training import plot_training_history


def predictions(model: tt.Module, loader) -> np.ndarray:
    """The predicted class of every image of ``loader`` (in its order), in eval mode and without a graph."""
    model.eval()
    with tt.no_grad():
        return np.concatenate([model(x).argmax(axis=1).numpy() for x, _ in loader])


def resources() -> dict:
    """Peak resident memory and page faults of this process so far (Linux and macOS: ``getrusage``)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024  # macOS reports bytes
    return {"peak_rss_mib": kib / 1024, "minor_page_faults": usage.ru_minflt, "major_page_faults": usage.ru_majflt}


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _machine() -> str:
    import os
    import platform

    from tinytorch.system import run_checks

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    checks = {c.name: c.detail for c in run_checks()}
    return f"{cpu}, {os.cpu_count()} cores; {checks['Python']}; {checks['NumPy']}; OpenMP {checks['OpenMP']}"


def record_run(out: Path, title: str, setup: str, model: tt.Module, history: dict, test: dict,
               test_loader, test_labels: np.ndarray, classes: tuple, seconds: dict, notes: list[str] = (),
               predicted: np.ndarray | None = None) -> str:
    """Write README.md, history.json and training_curve.png into ``out``; return the report's text.

    ``notes`` are more lines for the report's list (how the run was distributed, say). The confusion
    matrix counts ``predicted`` classes when given (predictions made another way, with test-time
    augmentation say), else the model's predictions on ``test_loader``.
    """
    out.mkdir(parents=True, exist_ok=True)
    matrix = compute_confusion_matrix(
        test_labels, predictions(model, test_loader) if predicted is None else predicted, num_classes=len(classes))
    used = resources()
    lines = [
        f"# {title}",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Command: `{' '.join(['python', *sys.argv])}`",
        f"- Machine: {_machine()}",
        f"- Model: {model.num_parameters():,} parameters; {setup}",
        f"- Wall time: training {seconds['train'] / 60:.1f} min (with the per-epoch test evaluation), "
        f"data loading {seconds['data']:.1f} s, whole program {seconds['total'] / 60:.1f} min",
        f"- Memory: peak RSS {used['peak_rss_mib']:,.0f} MiB; page faults: {used['minor_page_faults']:,} minor, "
        f"{used['major_page_faults']:,} major",
        *notes,
        f"- **Test accuracy: {100 * test['accuracy']:.2f} %** on the {len(test_labels):,} test images "
        f"(loss {test['loss']:.4f})",
        "",
        "## Per epoch",
        "",
        "| epoch | train loss | train acc | test loss | test acc | lr at start | seconds | images/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, epoch in enumerate(history["epoch"]):
        lines.append(
            f"| {epoch} | {history['train_loss'][i]:.4f} | {100 * history['train_accuracy'][i]:.2f} % "
            f"| {history['val_loss'][i]:.4f} | {100 * history['val_accuracy'][i]:.2f} % | {history['lr'][i]:.5f} "
            f"| {history['epoch_time'][i]:.1f} | {history['images_per_second'][i]:.0f} |"
        )
    lines += ["", "## Confusion matrix (rows: true class, columns: predicted)", "",
              "| | " + " | ".join(c[:5] for c in classes) + " | recall |", "|---" * (len(classes) + 2) + "|"]
    for i, (name, row) in enumerate(zip(classes, matrix)):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {100 * row[i] / max(row.sum(), 1):.1f} % |")
    lines += ["", "![training curve](training_curve.png)", ""]
    report = "\n".join(lines)
    plot_training_history(history, out / "training_curve.png")
    write_atomically(out / "history.json", json.dumps(
        {"history": history, "test": test, "seconds": seconds, "resources": used, "confusion_matrix": matrix.tolist()},
        indent=2))
    write_atomically(out / "README.md", report)
    return report


def train_and_record(trainer: "tt.core.training.Trainer", train_loader, test_loader, epochs: int, quiet: bool,
                     out: Path, title: str, setup: str, test_labels: np.ndarray,
                     classes: tuple, started: float, loaded: float, main_process: bool = True,
                     record_loader=None, notes=None, resume_from=None) -> dict:
    """Fit, evaluate on the test set, record everything in ``out``; returns the test scores.

    ``started`` and ``loaded`` are ``time.perf_counter()`` readings taken when the program began
    and when its data were in memory. Data-parallel, every rank fits and evaluates on its shard
    (``test_loader``) and only the ``main_process`` writes, reading the whole test set through
    ``record_loader`` for the confusion matrix, with the lines ``notes()`` returns in its report.
    ``resume_from``: a checkpoint of the run to continue from (``Trainer.fit``'s).
    """
    from tinytorch.core.training import evaluate_model

    # progress bars on a terminal, one line per epoch into a log file, nothing when quiet
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    history = trainer.fit(train_loader, test_loader, epochs=epochs, verbose=verbose, resume_from=resume_from)
    trained = time.perf_counter()
    test = evaluate_model(trainer.model, test_loader)
    seconds = {"data": loaded - started, "train": trained - loaded, "total": time.perf_counter() - started}
    if not main_process:
        return test
    record_run(out, title, setup, trainer.model, history, test, record_loader or test_loader, test_labels, classes,
               seconds, notes() if notes else ())
    print(f"{title}: test accuracy {100 * test['accuracy']:.2f} % after {seconds['total'] / 60:.1f} min; report in {out}")
    return test
