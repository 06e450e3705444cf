"""Command-line config overrides, normalised once: "none", empty and comma-separated tuples,
and free-form loader options.

ml_collections parses `--config.a.b=VALUE` by the type of the field's current value, which
leaves several things a user needs out of reach. The entry points fix them in one pass:

  --config.a.b=none        sets an optional field to None (also "None"): one whose value is
                           None (a placeholder) or a string, e.g.
                           --config.protocol.diversity_feature=none or
                           --config.protocol.threshold=none. On a tuple field none is the
                           empty tuple. A number or flag with a value cannot be none.
  --config.a.b=            on a tuple field: the empty tuple (also `=()` and `=none`), e.g.
                           --config.data.user_fields= for no user fields.
  --config.a.b=x,y         on a tuple of strings: ("x", "y") (ml_collections would give
                           ("x,y",)); `=auto`, a one-entry tuple, is ("auto",).
  --config.data.source_options.KEY=VALUE
                           a keyword option of the data source's loader, which the config
                           file cannot declare in advance (each loader has its own); VALUE is
                           a Python literal (number, tuple, True) or else a string, and dotted
                           KEYs nest: --config.data.source_options.columns.user=user_id.

`split_argv` takes the none and source_options flags out of argv before absl parses it (absl
would refuse them); `normalise` applies them to the parsed config. Which fields the user set
on the command line is remembered (`given_on_command_line`), so that a method or metric named
there is an error when the data cannot support it, while the same from a config's default
list is skipped with a note.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from ml_collections import ConfigDict

NONE_SPELLINGS = ("none", "None")
SOURCE_OPTIONS = "data.source_options"
_PREFIX = "--config."

_given: frozenset[str] = frozenset()


class OverrideError(ValueError):
    """A command-line override that cannot apply; the message names the flag."""


def split_argv(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """(argv for absl, {config key: value} of the flags absl cannot parse itself).

    The second part holds `None` for every `--config.KEY=none` and the parsed value of every
    `--config.data.source_options.KEY=VALUE`. Also records every `--config.KEY` given.
    """
    global _given
    kept, later, given = [], {}, set()
    for arg in argv:
        if not arg.startswith(_PREFIX) or "=" not in arg:
            if arg.startswith(_PREFIX):
                given.add(arg[len(_PREFIX) :])
            kept.append(arg)
            continue
        key, _, value = arg[len(_PREFIX) :].partition("=")
        given.add(key)
        if key.startswith(SOURCE_OPTIONS + "."):
            later[key] = _literal(value)
        elif value in NONE_SPELLINGS:
            later[key] = None
        else:
            kept.append(arg)
    _given = frozenset(given)
    return kept, later


def given_on_command_line(key: str) -> bool:
    """Whether `--config.<key>=...` was on the command line of this process."""
    return key in _given


def _literal(value: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def normalise(config: ConfigDict, later: dict[str, Any]) -> None:
    """Applies the flags of `split_argv` to `config` and normalises its tuple fields.

    Tuples of strings are split at commas, with empty entries dropped: ("a,b",) -> ("a", "b")
    and ("",) -> () (what `--config.x=` gives).

    Raises:
      OverrideError: naming the flag of a key the config does not have.
    """
    for key, value in later.items():
        *parents, leaf = key.split(".")
        node = config
        for k, name in enumerate(parents):
            if name not in node:
                if ".".join(parents[: k + 1]).startswith(SOURCE_OPTIONS):
                    # Loader options are free-form: the config file cannot list them.
                    with node.unlocked():
                        node[name] = ConfigDict()
                else:
                    raise OverrideError(f"--config.{key}: unknown config field {key}")
            node = node[name]
        if not isinstance(node, ConfigDict):
            raise OverrideError(f"--config.{key}: {'.'.join(parents)} is not a config section")
        if key.startswith(SOURCE_OPTIONS + "."):
            with node.unlocked(), node.ignore_type():
                node[leaf] = value
            continue
        if leaf not in node:
            raise OverrideError(f"--config.{key}: unknown config field {key}")
        current = node[leaf]
        # A number or flag with a value is required by the code that reads it; a field that
        # may be empty holds None (a placeholder), a string or a tuple.
        if current is not None and not isinstance(current, (str, tuple)):
            raise OverrideError(
                f"--config.{key}=none: {key} is a {type(current).__name__} that cannot be none; "
                "give a value"
            )
        with node.ignore_type():
            node[leaf] = () if isinstance(node[leaf], tuple) else None
    _split_tuples(config)


def _split_tuples(node: ConfigDict) -> None:
    for name, value in node.items():
        if isinstance(value, ConfigDict):
            _split_tuples(value)
        elif isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
            parts = tuple(p.strip() for v in value for p in v.split(","))
            node[name] = tuple(p for p in parts if p)
