"""The entry point: parse, pick the device and precision, run one command, turn errors into one line."""

from __future__ import annotations

import contextlib
import sys
import traceback

from jaxdse.cli.parser import COMMANDS, build_parser
from jaxdse.cli.report import Report, UsageError, one_line
from jaxdse.io import InputError


def version() -> str:
    from jaxdse import __version__

    return __version__


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser(version())
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # --help, --version
            return int(done.code or 0)
        if args.command is None:
            parser.print_help()
            return 0
        return _run(args)
    except (UsageError, InputError, ValueError, TypeError, MemoryError, ImportError) as err:
        # The user's to fix: bad input or settings (the library's checks name the
        # argument), too little memory, a missing optional package.
        return _fail(err, debug, prog=_prog(argv))
    except KeyboardInterrupt:
        print("jaxdse: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last resort keeps the promise of one line
        if debug:
            traceback.print_exc()
        print(
            f"{_prog(argv)}: unexpected error: {type(err).__name__}: {one_line(err)} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 1


def _prog(argv):
    command = next((a for a in argv if a in COMMANDS), None)
    return f"jaxdse {command}" if command else "jaxdse"


def _fail(err, debug, *, prog) -> int:
    if debug:
        traceback.print_exc()
    print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
    return 2


def _run(args) -> int:
    import importlib

    import jax

    run = importlib.import_module(f"jaxdse.cli.{args.command}").run
    device = _select_device(args.device)
    x64 = jax.enable_x64(True) if args.x64 else contextlib.nullcontext()
    with x64, jax.default_device(device):
        report = Report(args, device, version())
        run(args, report)
        report.emit()
    return 0


def _select_device(name):
    import jax

    if name is None:
        return jax.devices()[0]
    try:
        return jax.devices(name)[0]
    except RuntimeError:
        available = sorted({d.platform for d in jax.devices()})
        raise UsageError(
            f"--device {name}: jax has no {name.upper()} here (available: {', '.join(available)}); "
            + ("install a CUDA-enabled jax, e.g. pip install 'jax[cuda12]'" if name == "gpu" else "")
        ) from None
