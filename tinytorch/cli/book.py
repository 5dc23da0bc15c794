"""tito book: the course book, the lessons as one HTML site.

Usage:
  tito book build [--out=<dir>] [--strict]

Options:
  --out=<dir>  Where to build it [default: build/book]; the site is <dir>/html, open <dir>/html/index.html.
  --strict     Treat Sphinx's warnings as errors.

Needs the docs and plot extras: pip install "tinytorch[docs,plot]".
"""

from __future__ import annotations

from docopt import docopt
from rich.console import Console
from rich.markup import escape


def main(argv: list[str], console: Console) -> int:
    from tinytorch.book import BookError, build

    args = docopt(__doc__, argv=argv)
    try:
        index = build(args["--out"], warnings_as_errors=args["--strict"])
    except (BookError, ImportError) as error:
        console.print(f"[red]{escape(str(error))}[/]")
        return 1
    console.print(f"built the book: open {index}")
    return 0
