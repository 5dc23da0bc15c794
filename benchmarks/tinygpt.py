"""TinyGPT against PyTorch: a training step, generation with the KV cache, and attention, each framework in its own process.

    python -m benchmarks.tinygpt [--repeats N] [--only TEXT] [--no-wait] [--threads N] [--output NAME]

The model (``gpt_specs.py``): vocabulary 65, 4 layers, 4 heads, width 128, context 128, pre-LayerNorm
blocks with exact GELU, tied head. Both frameworks load the same initial weights; PyTorch's model
(``torch_gpt.py``) uses ``F.scaled_dot_product_attention`` and a preallocated KV cache.

1. **Training step**, 32 sequences of 128 tokens: forward, cross-entropy, backward, AdamW. Target 1.0x PyTorch.
2. **Generation**, batch 1: 127 tokens sampled after a one-token prompt, with the KV cache. Target 1.5x.
3. **Attention** forward and backward through the tensor API, (16, 4, 128, 32), causal. Target 1.0x
   ``F.scaled_dot_product_attention``.
4. **Same losses**: the first two training losses of each side, from the same weights and batch.

Results: stdout, ``benchmarks/results/<NAME>.md`` and ``.json`` (default ``tinygpt``).
"""

from __future__ import annotations

from . import gpt_specs as specs
from .harness import Case, Impl, Target, call_in_fresh_process, format_table, log, run_case, suite_arguments, wait_for_idle, write_results

TRAIN = f"GPT training step, batch {specs.TRAIN_BATCH} x {specs.TRAIN_BLOCK} tokens"
GENERATE = f"GPT generation, batch 1, KV cache, {specs.NEW_TOKENS} new tokens"
ATTENTION = "attention fwd+bwd B{batch} H{heads} T{length} D{head_dim} causal, tensor API".format(**specs.ATTENTION)


def _case(name: str, factory: str, params: dict, target: float) -> Case:
    impls = {"compiled": Impl(f"benchmarks.tinygpt_tinytorch:{factory}"), "torch": Impl(f"benchmarks.tinygpt_torch:{factory}")}
    return Case(name, params, impls, (Target("torch", target),))


def cases() -> list[Case]:
    return [
        _case(TRAIN, "train_step", {"batch": specs.TRAIN_BATCH, "block": specs.TRAIN_BLOCK}, 1.0),
        _case(GENERATE, "generate", {"new_tokens": specs.NEW_TOKENS}, 1.5),
        _case(ATTENTION, "attention", dict(specs.ATTENTION), 1.0),
    ]


def throughput(result) -> str:
    """Tokens per second of each side, for the two model cases."""
    tokens = {TRAIN: specs.TRAIN_BATCH * specs.TRAIN_BLOCK, GENERATE: specs.NEW_TOKENS}.get(result.case.name)
    if tokens is None:
        return ""
    sides = ", ".join(f"{'TinyTorch' if label == 'compiled' else 'PyTorch'} {tokens / result.median(label):,.0f} tokens/s"
                      for label in result.labels)
    return f"- {result.case.name}: {sides}."


def main(argv: list[str] | None = None) -> None:
    parser = suite_arguments("python -m benchmarks.tinygpt", __doc__.split("\n\n")[0], "tinygpt")
    args = parser.parse_args(argv)
    chosen = [case for case in cases() if args.only in case.name]
    if not chosen:
        parser.error(f"no case name contains {args.only!r}")
    idle = wait_for_idle(timeout=0) if args.no_wait else wait_for_idle()
    losses = {}
    if any(case.name == TRAIN for case in chosen):
        losses = {side: call_in_fresh_process(f"benchmarks.tinygpt_{side}:first_losses", args.threads)
                  for side in ("tinytorch", "torch")}
    results = [run_case(case, threads=args.threads, repeats=args.repeats, warm_calls=args.warm_calls) for case in chosen]
    lines = ["## Throughput", "", *filter(None, (throughput(r) for r in results))]
    if losses:
        same = "; ".join(f"step {i + 1}: TinyTorch {a:.6f}, PyTorch {b:.6f}"
                         for i, (a, b) in enumerate(zip(losses["tinytorch"], losses["torch"])))
        lines.append(f"- Same weights, same batch, same losses: {same}.")
    notes = "\n".join(lines)
    print(format_table(results))
    print()
    print(notes)
    output = args.output or (None if args.only else "tinygpt")
    if output:
        log(f"wrote {write_results(output, results, idle, args.threads, notes, {'first_losses': losses})}")


if __name__ == "__main__":
    main()
