"""``mispec`` command line: a thin layer over ``mispec.api``; renderers live beside each verb.

Exit codes: 0 ok, 1 a machine fault (disk full, a killed worker) or an internal error (or
differences with ``diff --exit-code``), 2 bad input, 3 a claim failed (``run --check``,
``check``), 130 interrupted (SIGINT), 143 SIGTERM.
No traceback unless ``-v``. Heavy libraries (torch, transformer_lens, dask) load lazily.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mispec import __version__

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mispec",
        description="Declarative experiment specs for mechanistic interpretability over training "
        "checkpoints: validate, plan, run, diff and plot.",
    )
    parser.add_argument("--version", action="version", version=f"mispec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from mispec.cli import commands, completion, discover, model_verbs, store_verbs

    for register in [
        *commands.REGISTER,
        *discover.REGISTER,
        *store_verbs.REGISTER,
        *model_verbs.REGISTER,
        *completion.REGISTER,
    ]:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    stop_on_sigterm()
    if argv is None:  # the mispec program: end at once after the command, see the function
        import atexit

        from mispec.runtime.exit import end_without_gc_walk

        atexit.register(end_without_gc_walk)  # the last exit handler to run
    return run_command(args.func, args)


def plain_warning(message, category, filename, lineno, line=None) -> str:  # type: ignore[no-untyped-def]
    """A warning as the user reads it: ``warning: <message>``, not Python's
    ``path:line: UserWarning: ...`` with a source line (``-v`` keeps Python's form)."""
    return f"warning: {message}\n"


class Terminated(KeyboardInterrupt):
    """SIGTERM: stopped like an interrupt (workers told to stop, finished entries kept)."""


def stop_on_sigterm() -> None:
    """Make SIGTERM stop a run as Ctrl-C does (exit 143), not end the process on the spot
    with its lane workers left running."""
    import signal
    import threading

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)


def run_command(func: Command, args: argparse.Namespace) -> int:
    import warnings

    from mispec.errors import MispecError

    python_form = warnings.formatwarning
    if not args.verbose:
        warnings.formatwarning = plain_warning
    try:
        return func(args)
    except MispecError as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"error: {exc}" if "\n" not in str(exc) else f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"{what}: finished cells are kept in the store; re-run to continue", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # a bug in mispec or a plugin
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc}\n(run with -v for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        warnings.formatwarning = python_form


if __name__ == "__main__":
    sys.exit(main())
