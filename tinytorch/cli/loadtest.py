"""tito loadtest: open-loop load on a TinyTorch server's /predict, with latency percentiles.

Usage:
  tito loadtest <url> [--rate=<rps>] [--duration=<s>] [--arrivals=<kind>] [--batch=<n>] [--format=<fmt>]
                [--warmup=<s>] [--timeout=<s>] [--connections=<n>] [--seed=<n>] [--json=<file>]

Options:
  --rate=<rps>         Requests per second offered [default: 100].
  --duration=<s>       Seconds of measured load [default: 10].
  --arrivals=<kind>    poisson (independent users) or constant [default: poisson].
  --batch=<n>          Examples per request (a random batch matching the server's signature) [default: 1].
  --format=<fmt>       Request body: npy or json [default: npy].
  --warmup=<s>         Seconds of load before the measured run, not recorded [default: 1].
  --timeout=<s>        A request not answered in this time fails [default: 30].
  --connections=<n>    Open connections at most [default: 256].
  --seed=<n>           Seed of the arrival times and of the batch [default: 0].
  --json=<file>        Also write the full result as JSON.

Requests leave on schedule whether or not earlier ones have returned (open loop), and each latency
is measured from its scheduled send time, so a slow server shows up in the tail instead of slowing
the test down. Percentiles are nearest-rank (MLPerf LoadGen's), never interpolated.
"""

from __future__ import annotations

import json

from docopt import docopt
from rich.console import Console


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    from tinytorch.core.mlops.loadtest import load_test

    try:
        rate, duration, warmup, timeout = (float(args[k]) for k in ("--rate", "--duration", "--warmup", "--timeout"))
        batch, connections, seed = (int(args[k]) for k in ("--batch", "--connections", "--seed"))
    except ValueError as error:
        console.print(f"[red]tito loadtest: {error}[/]")
        return 2
    if rate <= 0 or duration <= 0 or batch < 1 or connections < 1:
        console.print("[red]tito loadtest: --rate, --duration, --batch and --connections must be positive[/]")
        return 2
    if args["--arrivals"] not in ("poisson", "constant") or args["--format"] not in ("npy", "json"):
        console.print("[red]tito loadtest: --arrivals is poisson or constant; --format is npy or json[/]")
        return 2
    try:
        result = load_test(args["<url>"], rate, duration, arrivals=args["--arrivals"], batch=batch,
                           body_format=args["--format"], warmup_s=warmup, timeout_s=timeout,
                           max_connections=connections, seed=seed)
    except (OSError, ValueError, ImportError) as error:
        console.print(f"[red]tito loadtest: {args['<url>']}: {type(error).__name__}: {error}[/]", highlight=False)
        return 1
    except Exception as error:  # httpx's connection errors are not OSErrors
        console.print(f"[red]tito loadtest: cannot reach {args['<url>']}: {type(error).__name__}: {error}[/]", highlight=False)
        return 1
    console.print(result.describe(), highlight=False)
    if args["--json"]:
        from tinytorch.core.atomic_write import write_text_atomic

        write_text_atomic(args["--json"], json.dumps(result.to_json(), indent=2) + "\n")
    return 0 if result.completed else 1
