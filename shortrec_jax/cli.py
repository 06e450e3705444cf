"""What train.py and evaluate.py share: the config flag, parsed without tracebacks.

ml_collections reports an unknown `--config.a.b` key by raising AttributeError (a KeyError
inside), either when the flag is defined (the default config file is read then) or when the
command line is parsed; both would show the user a traceback from deep inside absl. Here
either becomes one line naming the key and exit status 1, like absl's own flag errors.
The parsed config is then normalised once (`shortrec_jax.overrides`: "none", empty and
comma-separated tuples, loader options).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

from absl import app, flags
from ml_collections import config_flags

from shortrec_jax import overrides


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
    sys.argv[1:], _later = overrides.split_argv(sys.argv[1:])
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


def run(main: Callable[[list[str]], Any]) -> None:
    """`absl.app.run(main)` with unknown config keys refused in one line."""
    app.run(main, flags_parser=_parse_flags)
