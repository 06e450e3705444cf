"""Exact whole-number ids: parsed as integers, never through a float, refused beyond 2**53.

`integer_ids` checks the float64 ids of a numeric table; `canonical_ids` writes ids read as
text the way `build_dataset` names integer ids ("007" and "7.0" -> "7").
"""

from __future__ import annotations

import re

import numpy as np

from shortrec_jax.data.dataset import DataError

# The largest whole number up to which float64 holds every integer exactly.
MAX_EXACT_ID = 2**53
# A whole-number id as written: optional spaces and sign, decimal digits.
_INTEGER_ID = re.compile(r"\s*[+-]?[0-9]+\s*")
# A zero fraction ("7.0", "7."), which side files may write after a whole-number id.
_WHOLE_ZERO = re.compile(r"(?<=[0-9])\.0*$")


def check_integer_id(value: str, *, where: str, column: str) -> None:
    """A DataError unless `value` is a whole number of at most 2**53 in magnitude."""
    if not _INTEGER_ID.fullmatch(value) or abs(int(value)) > MAX_EXACT_ID:
        raise DataError(
            f"{where}: column {column!r} must be a whole-number id of at most 2**53 in "
            f"magnitude, got {value[:40]!r}"
        )


def integer_ids(values: np.ndarray, *, source: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Checks that float64 ids are whole numbers and returns them as int64.

    The ids should come from `read_table`'s `int_columns`, which parses them as integers and
    refuses those beyond 2**53 before any rounding; this check is the second guard.

    Args:
      values: [N] float64 parsed ids; lines: [N] the file line of each.

    Returns:
      [N] int64.
    """
    # Beyond 2**53 float64 no longer holds every whole number, so two different ids could
    # become one (and beyond 2**63 the cast to int64 wraps): such ids are refused.
    limit = float(MAX_EXACT_ID)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > limit)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}, line {lines[i]}: column {column!r} must be a whole-number id of at "
            f"most 2**53 in magnitude, got {float(values[i]):g}"
        )
    return values.astype(np.int64)


def canonical_ids(values: np.ndarray, *, source: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Whole-number ids written as text -> their canonical strings ("007" and "7.0" -> "7").

    Side files (movies, categories, users) are matched to the vocabulary that integer ids of
    a numeric table get in `build_dataset`, which writes them this way. The digits are read
    as integers, never through a float, so neighbours beyond 2**53 are refused, not merged.

    Args:
      values: [N] str; lines: [N] the file line of each.

    Returns:
      [N] str.
    """
    out = []
    for value, line in zip(np.asarray(values).tolist(), np.asarray(lines).tolist(), strict=True):
        whole = _WHOLE_ZERO.sub("", value.strip())
        check_integer_id(whole, where=f"{source}, line {line}", column=column)
        out.append(str(int(whole)))
    return np.asarray(out, dtype=np.str_) if out else np.zeros(0, dtype="<U1")
