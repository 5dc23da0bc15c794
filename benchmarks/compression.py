"""Compressed models against float32, each in its own process: int8 Dense at batch 1, the int8 CNN and the
channel-pruned CNN at batch 64.

    python -m benchmarks.compression [--repeats N] [--only TEXT] [--no-wait] [--threads N] [--output NAME]

Cases (factories in ``compression_side.py``; the method is ``harness.py``'s: one worker process per
implementation, alternating rounds, medians of per-round ratios, above 1 the first is faster):

- **Dense 4096 -> 4096, batch 1**: a float32 Dense layer against the same layer with int8 weights,
  its input quantized per call (``DynamicQuantizedDense``), float output. Target: int8 >= 1.2x.
- **Dense 2048 -> 256, batch 1**: the same for the CIFAR CNN's first Dense layer.
- **CIFAR CNN inference, batch 64**: the reference CNN (conv-BN-ReLU-pool x3, dense 2048 -> 256
  -> 10) in evaluation mode against its static int8 version (``quantize_static``: batch norm
  folded, ReLU fused, the int8 kernels), float input and float logits on both sides. Target: int8
  >= 0.5x; stretch 1.0x.
- **channel-pruned CNN, batch 64**: the same float CNN against the copy with half the channels of
  every convolution removed (``prune_channels``), as trained (batch norms in evaluation mode) and
  with each batch norm folded into its convolution on both sides (``fold_batchnorms``, the usual
  deployment form). The notes give the FLOP cut (the profiler's ``count_flops``) and the fraction
  of it the measured time cut reaches; target 0.7.

Results: stdout, ``benchmarks/results/<NAME>.md`` and ``.json`` (default ``compression``);
``examples/compress_cifar10.py`` copies them into its record.
"""

from __future__ import annotations

from .harness import Case, Impl, Target, call_in_fresh_process, format_table, log, run_case, suite_arguments, wait_for_idle, write_results

SIDE = "benchmarks.compression_side"
LATENCY_OF_FLOP_CUT = 0.7  # the channel-pruned CNN's time cut must reach this fraction of its FLOP cut


def dense_case(in_features: int, out_features: int, target: float | None) -> Case:
    return Case(
        f"Dense {in_features} -> {out_features}, batch 1",
        {"in_features": in_features, "out_features": out_features, "batch": 1},
        {"int8": Impl(f"{SIDE}:dense", int8=True), "float32": Impl(f"{SIDE}:dense", int8=False)},
        targets=(Target("float32", target, of="int8"),) if target else (),
        compare=(("int8", "float32"),),
    )


CASES = [
    dense_case(4096, 4096, 1.2),
    dense_case(2048, 256, None),
    Case("CIFAR CNN inference, batch 64: static int8", {"batch": 64},
         {"int8": Impl(f"{SIDE}:cnn_forward", variant="int8"), "float32": Impl(f"{SIDE}:cnn_forward", variant="float32")},
         targets=(Target("float32", 0.5, of="int8"),), compare=(("int8", "float32"),)),
    *(Case(f"CIFAR CNN inference, batch 64: channel-pruned{suffix}", {"batch": 64},
           {"channels_pruned": Impl(f"{SIDE}:cnn_forward", variant="channels_pruned", folded=folded),
            "float32": Impl(f"{SIDE}:cnn_forward", variant="float32", folded=folded)},
           compare=(("channels_pruned", "float32"),))
      for suffix, folded in (("", False), (", batch norm folded", True))),
]


def flop_note(results: list, flops: dict) -> tuple[str, dict]:
    """The channel-pruned cases' FLOP cut against their measured time cut (the first case, batch norms as
    trained, is the summary's; the folded one is under ``"folded"``)."""
    pruned = [r for r in results if "channel-pruned" in r.case.name]
    if not pruned:
        return "", {}
    notes, summary = [], {**flops, "target_share": LATENCY_OF_FLOP_CUT}
    for result in pruned:
        latency_cut = 1 - 1 / result.speedup("float32", "channels_pruned")
        share = latency_cut / flops["cut"]
        folded = "folded" in result.case.name
        figures = {"latency_cut": latency_cut, "share_of_flop_cut": share}
        if folded:
            summary["folded"] = figures
        else:
            summary.update(figures)
        notes.append(f"{'with batch norms folded' if folded else 'as trained'}: measured time {100 * latency_cut:.1f} % "
                     f"less, {share:.2f} of the FLOP cut ({'met' if share >= LATENCY_OF_FLOP_CUT else 'MISSED'})")
    note = (f"Channel pruning (half the channels of every convolution): forward FLOPs per image "
            f"{flops['flops'] / 1e6:.2f} M -> {flops['channels_pruned_flops'] / 1e6:.2f} M "
            f"({100 * flops['cut']:.1f} % fewer, `count_flops`; folding a batch norm changes no convolution's FLOPs); "
            f"target: the time cut >= {LATENCY_OF_FLOP_CUT} of the FLOP cut. " + "; ".join(notes) + ".")
    return note, summary


def main(argv: list[str] | None = None) -> None:
    parser = suite_arguments("python -m benchmarks.compression", __doc__.split("\n\n")[0], "compression")
    args = parser.parse_args(argv)
    chosen = [case for case in CASES if args.only in case.name]
    if not chosen:
        parser.error(f"no case name contains {args.only!r}")
    idle = wait_for_idle(timeout=0) if args.no_wait else wait_for_idle()
    results = [run_case(case, threads=args.threads, repeats=args.repeats, warm_calls=args.warm_calls) for case in chosen]
    flops = call_in_fresh_process(f"{SIDE}:forward_flops", args.threads)
    note, summary = flop_note(results, flops)
    print(format_table(results))
    print(note)
    output = args.output or (None if args.only else "compression")
    if output:
        log(f"wrote {write_results(output, results, idle, args.threads, note, {'channel_pruning': summary})}")


if __name__ == "__main__":
    main()
