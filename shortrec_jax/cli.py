"""What every program shares: one start-up (`run`), one verbosity and exit-code policy.

Every program (train.py, evaluate.py, `python -m shortrec_jax.recommend`, the HTTP service,
the cold-start experiment) starts through `run(main)`; the argparse programs (the video
feature extractor) through `run_argparse`, with the same error policy:

- flags are parsed by absl; a bad flag or `app.UsageError` prints the usage and exits 1;
  positional arguments are refused (every program takes flags only);
- an unknown `--config.a.b` key is one line naming the key and exit status 1, like absl's
  own flag errors (ml_collections raises AttributeError, a KeyError inside, either when the
  flag is defined, since the default config file is read then, or when the command line is
  parsed; both would otherwise show a traceback from deep inside absl). The parsed config is
  then normalised once (`shortrec_jax.overrides`: "none", empty and comma-separated tuples,
  loader options);
- absl logging is set to WARNING unless `--verbosity` is given: Orbax logs every checkpoint
  save at INFO, which would bury the programs' own output (`--verbosity=0` brings it back);
- bad input met while the program runs (USER_ERRORS: a DataError naming a file and line, a
  missing run directory, a bad config value) is printed as one line `error: ...` with exit
  status 1; `--verbosity=1` shows the traceback;
- `main`'s return value is the exit status (None = 0); a program's own policy for a failure
  (e.g. 128 + the signal number of an interrupted training) is such a return value.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from shortrec_jax import overrides, platform


def _refuse(error: Exception) -> NoReturn:
    cause = error.args[0] if error.args else error
    detail = cause.args[0] if isinstance(cause, KeyError) and cause.args else str(cause)
    sys.exit(f"FATAL Flags parsing error: unknown config field {detail}")


# The overrides ml_collections cannot parse, taken out of the command line when --config is
# defined (it reads sys.argv then) and applied once the config is parsed.
_later: dict[str, Any] = {}


def define_config(default: str, help_text: str) -> flags.FlagHolder:
    """`--config`, a config file whose fields `--config.a.b=...` override."""
    global _later
    # Flag files are expanded first, so that their lines are normalised like the others.
    try:
        argv = flags.FLAGS.read_flags_from_files(sys.argv[1:], force_gnu=False)
    except flags.Error as e:
        sys.exit(f"FATAL Flags parsing error: {' '.join(str(e).split())}")
    # ml_collections needs --config before its overrides; a flag file may list them first.
    argv.sort(key=lambda a: not a.startswith("--config="))
    sys.argv[1:], _later = overrides.split_argv(argv)
    try:
        return config_flags.DEFINE_config_file("config", default, help_text)
    except (AttributeError, ValueError) as e:
        _refuse(e)


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        rest = app.parse_flags_with_usage(argv)
    except (AttributeError, ValueError) as e:
        _refuse(e)
    if "config" in flags.FLAGS and flags.FLAGS["config"].value is not None:
        try:
            overrides.normalise(flags.FLAGS["config"].value, _later)
        except overrides.OverrideError as e:
            sys.exit(f"FATAL Flags parsing error: {e}")
    return rest


# Bad input from the user (a missing or malformed file, an unknown id or key, an impossible
# config value): shown as one line. Everything else keeps its traceback, since it is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError)


def one_line(error: BaseException) -> str:
    """`error: <message>` on one line (a KeyError's message without its quotes)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    return "error: " + " ".join(str(message).split())


@contextlib.contextmanager
def user_errors(traceback: bool = False) -> Iterator[None]:
    """Turns USER_ERRORS into one line on stderr and exit status 1 (re-raised if `traceback`)."""
    try:
        yield
    except USER_ERRORS as e:
        if traceback:
            raise
        sys.exit(one_line(e))


def run(main: Callable[[], int | None]) -> None:
    """Parses the flags and calls `main()`, with the policy of the module docstring, on the
    automatic CPU layout (`platform.configure_cpu`: set before `main` starts JAX)."""

    def start(argv: list[str]) -> int | None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        with user_errors(traceback=flags.FLAGS["verbosity"].value >= 1):
            return main()

    platform.configure_cpu()
    app.run(start, flags_parser=_parse_flags)


def run_argparse(main: Callable[[list[str]], int]) -> NoReturn:
    """`sys.exit(main(argv))` for argparse programs, with bad input shown as one line;
    `--verbosity=1` (taken out of argv) shows the traceback instead, as in the absl programs."""
    argv = sys.argv[1:]
    verbose = [a for a in argv if a.startswith("--verbosity=")]
    argv = [a for a in argv if a not in verbose]
    traceback = any(a.partition("=")[2] not in ("", "0") for a in verbose)
    with user_errors(traceback=traceback):
        sys.exit(main(argv))
