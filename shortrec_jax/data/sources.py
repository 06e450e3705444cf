"""`load(source, **options)`: the one entry point from a source name to a `Dataset`.

Source names:
  "ml-100k"                    the bundled MovieLens 100K (offline; the default everywhere).
  "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest", "ml-latest-small"
                               official GroupLens releases, read from `path=` (a folder or the
                               zip) or, with `download=True`, fetched into `cache_dir`.
  "grouplens:<path>"           a GroupLens folder or zip on disk (ml-100k's u.data form, the
                               `::` form of ml-1m/10m, or the CSV form of ml-20m and later).
  "atomic:<folder>"            RecBole atomic files (`<name>.inter`, `.user`, `.item`, ...).
  "kuairec:<folder>"           KuaiRec short-video logs (big_matrix.csv / small_matrix.csv, ...).
  "csv:<path>"                 a generic delimited file with a declared column mapping.
  "tfds:<name>"                tensorflow-datasets, e.g. "tfds:movielens/100k-ratings"
                               (extra `tfds`).
  "synthetic"                  a generated power-law log (options: num_users, num_items,
                               num_interactions, item_alpha, user_alpha, seed).
Options are passed to the loader, which rejects the ones it does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.grouplens_release import GROUPLENS_RELEASES, load_grouplens_release


def _bundled(**options: Any) -> Dataset:
    from shortrec_jax.data.atomic import load_ml100k

    return load_ml100k(**options)


def _synthetic(**options: Any) -> Dataset:
    from shortrec_jax.data.synthetic import synthetic_log

    return synthetic_log(**options)


def _release(release: str) -> Callable[..., Dataset]:
    def loader(**options: Any) -> Dataset:
        return load_grouplens_release(release, **options)

    loader.__name__ = f"load_{release}"
    return loader


def _with_path(module: str, function: str) -> Callable[..., Dataset]:
    def loader(path: str, **options: Any) -> Dataset:
        import importlib

        return getattr(importlib.import_module(module), function)(path, **options)

    loader.__name__ = function
    return loader


# Fixed names -> loader(**options); prefixes "kind:" -> loader(rest, **options).
SOURCES: dict[str, Callable[..., Dataset]] = {
    "ml-100k": _bundled,
    "synthetic": _synthetic,
    **{r: _release(r) for r in GROUPLENS_RELEASES},
}
PREFIXES: dict[str, Callable[..., Dataset]] = {
    "grouplens": _with_path("shortrec_jax.data.grouplens", "load_grouplens"),
    "atomic": _with_path("shortrec_jax.data.atomic", "load_atomic"),
    "kuairec": _with_path("shortrec_jax.data.kuairec", "load_kuairec"),
    "csv": _with_path("shortrec_jax.data.delimited", "load_delimited"),
    "tfds": _with_path("shortrec_jax.data.tfds_source", "load_tfds"),
}


def load(source: str = "ml-100k", **options: Any) -> Dataset:
    """Loads a data set by source name (see the module docstring for the names).

    Args:
      source: a fixed name ("ml-100k") or "kind:argument" ("atomic:/data/ml-1m").
      **options: loader options (e.g. `duplicates="mean"`, `download=True`).

    Returns:
      The validated `Dataset`.

    Raises:
      DataError: unknown source, bad option, or bad data (naming the file and line).
    """
    if source in SOURCES:
        loader, args = SOURCES[source], ()
    else:
        kind, sep, rest = source.partition(":")
        if not sep or kind not in PREFIXES or not rest:
            raise DataError(
                f"unknown data source {source!r}; expected one of {sorted(SOURCES)} or "
                f"'<kind>:<path>' with kind in {sorted(PREFIXES)}"
            )
        loader, args = PREFIXES[kind], (rest,)
    # A misspelled option fails in the loader's own signature, which names the keyword.
    return loader(*args, **options)
