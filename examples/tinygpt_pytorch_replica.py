"""The Shakespeare recipe of examples/train_tinygpt.py run in PyTorch: the loss PyTorch reaches with it.

Usage: python examples/tinygpt_pytorch_replica.py [the options of examples/train_tinygpt.py]

The oracle for the example's loss figure. PyTorch starts from TinyGPT's initial weights (the same
seed gives the same draw), trains on the same random windows in the same order (the same NumPy
generator, drawn in the same sequence: the periodic estimates take their batches from it too),
with the same AdamW, warm-up + cosine schedule and gradient clipping, and its validation loss is
computed the same exact way, over every character of the validation text. The losses of the two
frameworks then differ only by floating-point rounding, which grows over 2000 steps; what this
settles is whether a loss target is within the recipe's reach at all, independent of TinyTorch.

It takes the example's own options (``--config``, ``--iters``, ``--block-size``, ``--seed``, ...)
and writes ``examples/results/tinygpt_<config>_pytorch.json`` (or the file ``--out`` names):
the command, the settings, the losses every ``eval_interval`` steps and the final exact validation
loss. Needs torch (the test and benchmark oracle) and the Tiny Shakespeare text (``TINYTORCH_DATA``).
Both frameworks live in this process, so it times nothing: it is about losses, not speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tinytorch as tt  # before NumPy, so that its BLAS setting applies (tinytorch.core.blas_wait)
import numpy as np
from docopt import docopt

from tinytorch.core.atomic_write import write_text_atomic
from tinytorch.core.dataloader import TinyShakespeare
from tinytorch.core.schedulers import cosine_lr
from tinytorch.tinygpt import CharTokenizer, TinyGPT

import train_tinygpt as ex  # the recipe itself: its configurations, batch sampler and constants
from reporting import _machine

ROOT = Path(__file__).resolve().parent.parent


def run(config_name: str, c: dict, seed: int, limit: int | None) -> dict:
    """Train with the example's settings ``c`` in PyTorch; the losses along the way and at the end."""
    import torch

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the PyTorch twin of TinyGPT that the tests check equal: benchmarks/torch_gpt.py
    from benchmarks.torch_gpt import TorchGPT

    tt.manual_seed(seed)
    rng = np.random.default_rng(seed)
    text = TinyShakespeare().text[:limit]
    tokenizer = CharTokenizer.from_text(text)
    cut = round(len(text) * 0.9)
    train_data, val_data = tokenizer.encode(text[:cut]), tokenizer.encode(text[cut:])
    shape = dict(vocab_size=tokenizer.vocab_size, d_model=c["width"], num_heads=c["heads"], num_layers=c["layers"],
                 max_length=c["block_size"], dropout=c["dropout"], bias=c["bias"], tie_weights=c["tie_weights"])
    ours = TinyGPT(**shape)  # drawn exactly as the example draws it, then copied into PyTorch
    model = TorchGPT(**shape)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": c["weight_decay"]},
                                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                  lr=c["lr"], betas=ex.BETAS)
    loss_of = torch.nn.functional.cross_entropy

    def batch_loss(x: np.ndarray, y: np.ndarray):
        logits = model(torch.from_numpy(x))
        return loss_of(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1))

    @torch.no_grad()
    def estimate(data: np.ndarray) -> float:
        model.eval()
        losses = [batch_loss(*ex.random_windows(data, c["batch_size"], c["block_size"], rng)).item()
                  for _ in range(c["eval_iters"])]
        model.train()
        return float(np.mean(losses))

    @torch.no_grad()
    def exact(data: np.ndarray, block: int, batch: int = 64) -> float:
        model.eval()
        windows = (len(data) - 1) // block
        x = data[: windows * block].reshape(windows, block)
        y = data[1: windows * block + 1].reshape(windows, block)
        return sum(batch_loss(x[i:i + batch], y[i:i + batch]).item() * len(x[i:i + batch])
                   for i in range(0, windows, batch)) / windows

    history = []
    for step in range(c["iters"] + 1):
        if step % c["eval_interval"] == 0 or step == c["iters"]:  # the example's evaluations, in its order
            history.append({"step": step, "train_loss": estimate(train_data), "val_loss": estimate(val_data)})
        if step == c["iters"]:
            break
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, c["iters"], c["lr"], c["min_lr"], c["warmup"])
        loss = batch_loss(*ex.random_windows(train_data, c["batch_size"], c["block_size"], rng))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, ex.CLIP_NORM)
        optimizer.step()
    return {"config": config_name, "settings": c, "seed": seed, "limit": limit,
            "history": history, "val_loss_exact": exact(val_data, c["block_size"]), "torch": torch.__version__}


def main(argv: list[str] | None = None) -> dict:
    args = docopt(ex.__doc__, argv=sys.argv[1:] if argv is None else argv)
    name = args["--config"]
    limit = None if args["--limit"] is None else int(args["--limit"])
    result = run(name, ex.settings(args), int(args["--seed"]), limit)
    result["command"] = " ".join(["python", "examples/tinygpt_pytorch_replica.py", *(sys.argv[1:] if argv is None else argv)])
    result["machine"] = _machine()
    out = Path(args["--out"] or ROOT / "examples" / "results" / f"tinygpt_{name}_pytorch.json")
    write_text_atomic(out, json.dumps(result, indent=1) + "\n")
    print(f"PyTorch, {name} recipe, seed {result['seed']}: exact validation loss {result['val_loss_exact']:.4f}")
    return result


if __name__ == "__main__":
    main()
