"""tito serve: serve a model package over HTTP (or two, side by side, for an A/B test).

Usage:
  tito serve <package> [--ab=<package>] [--split=<share>] [--host=<host>] [--port=<port>]
             [--max-batch=<n>] [--max-delay-ms=<ms>] [--max-body-mb=<mb>] [--log-level=<level>]

Options:
  --ab=<package>       A second package: requests are routed between the two by request id.
  --split=<share>      The second package's share of the traffic [default: 0.5].
  --host=<host>        Address to listen on (loopback by default; 0.0.0.0 for every interface) [default: 127.0.0.1].
  --port=<port>        Port to listen on [default: 8000].
  --max-batch=<n>      Examples per model call: concurrent requests are batched up to this many; 1 turns
                       batching off [default: 32].
  --max-delay-ms=<ms>  The longest a request waits for its batch to fill [default: 5].
  --max-body-mb=<mb>   Larger request bodies are refused with 413 [default: 16].
  --log-level=<level>  uvicorn's log level: critical, error, warning, info, debug [default: warning].

Batching is adaptive: when the model is free, the requests queued run at once (a request on an idle
server is not held back); a batch waits to fill, for at most --max-delay-ms, only while requests
arrive fast enough to fill it in that time; requests that arrive while the model is busy form the
next batch.

Endpoints: GET /health, GET /metadata, POST /predict (JSON {"inputs": [...]} or an .npy body),
GET /metrics (Prometheus), GET /monitor, GET /ab. A package is a folder written by
tinytorch.core.mlops.package(); its hashes are checked before it is served. The model's threads
follow OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (on a 2-core machine, 1 leaves a core to the
server's event loop).
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console


def _number(args: dict, option: str, kind: type, console: Console, minimum: float) -> float | int | None:
    try:
        value = kind(args[option])
    except ValueError:
        value = None
    if value is None or value < minimum:
        what = "an integer" if kind is int else "a number"
        console.print(f"[red]tito serve: {option} must be {what} of at least {minimum}, got {args[option]!r}[/]")
        return None
    return value


def main(argv: list[str], console: Console) -> int:
    args = docopt(__doc__, argv=argv)
    from tinytorch.core.mlops.manifest import PackageError
    from tinytorch.core.mlops.server import ServerSettings, serve

    numbers = [_number(args, "--port", int, console, 0), _number(args, "--max-batch", int, console, 1),
               _number(args, "--max-delay-ms", float, console, 0), _number(args, "--max-body-mb", float, console, 0),
               _number(args, "--split", float, console, 0)]
    if any(n is None for n in numbers):
        return 2
    port, max_batch, max_delay_ms, max_body_mb, split = numbers
    if split > 1:
        console.print(f"[red]tito serve: --split is the second package's share, between 0 and 1; got {split}[/]")
        return 2
    paths = [args["<package>"]] + ([args["--ab"]] if args["--ab"] else [])
    settings = ServerSettings(max_batch=max_batch, max_delay_ms=max_delay_ms, max_body_bytes=int(max_body_mb * 2**20))
    weights = [1 - split, split] if args["--ab"] else None
    try:
        serve(paths, host=args["--host"], port=port, settings=settings, weights=weights, log_level=args["--log-level"],
              on_ready=lambda url: console.print(f"serving {', '.join(paths)} at {url} (max batch {max_batch}, "
                                                 f"max delay {max_delay_ms:g} ms); Ctrl-C stops", highlight=False))
    except (PackageError, FileNotFoundError, ValueError, ImportError) as error:
        console.print(f"[red]tito serve: {error}[/]", highlight=False)
        return 1
    return 0
