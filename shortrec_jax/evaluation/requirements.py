"""Methods and metrics that need side information: adapted to the data set before a run.

A config's default method list names methods that need a knowledge graph (kg), genres or
tags (content, tag-cf), and a genre-diversity metric. On a data set without them:

  * from the config's defaults: the method (metric) is skipped, or a content method keeps the
    token sources the data set has (genres without the KG), with a one-line note printed and
    written to results.md;
  * named by the user on the command line (--config.method_names=kg,...,
    --config.methods.content.features=kg, --config.protocol.diversity_feature=genres): a
    one-line error, since silently running something else is worse than stopping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ml_collections import ConfigDict

from shortrec_jax.data.auto_fields import content_sources
from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.overrides import given_on_command_line


def token_sources(ds: Dataset) -> list[str]:
    """The item token sources of content and tag methods that `ds` has."""
    return [s for s in content_sources(ds) if s != "vectors"]


def _describe(ds: Dataset) -> str:
    has = token_sources(ds)
    return f"{ds.name!r} has {', '.join(has) if has else 'no genres, tags or knowledge graph'}"


def _sources_field(
    method: str, key: str, *, default: Callable[[Dataset], list[str]]
) -> Callable[[ConfigDict, Dataset, bool], tuple[bool, str]]:
    """A check for a method whose config field `key` lists token sources (None = default)."""

    def check(section: ConfigDict, ds: Dataset, named: bool) -> tuple[bool, str]:
        has = token_sources(ds)
        wanted = section[key]
        if wanted is None:
            if default(ds):
                return True, ""
            return _missing(method, "genres or tags", ds, named)
        wanted = [str(s) for s in wanted]
        missing = [s for s in wanted if s not in has]
        if not missing:
            return True, ""
        explicit = named or given_on_command_line(f"methods.{method.replace('-', '_')}.{key}")
        if explicit:
            raise DataError(
                f"methods.{method.replace('-', '_')}.{key} names {missing}, which "
                f"{_describe(ds)}; name only those"
            )
        kept = tuple(s for s in wanted if s in has)
        if not kept:
            ok, note = _missing(method, " or ".join(wanted), ds, named)
            field = f"--config.methods.{method.replace('-', '_')}.{key}"
            return ok, note + (f" ({field}={','.join(has)} uses what it has)" if has else "")
        section[key] = kept
        return True, f"{method}: uses {', '.join(kept)} only; {_describe(ds)}"

    return check


def _missing(method: str, what: str, ds: Dataset, named: bool) -> tuple[bool, str]:
    if named:
        raise DataError(
            f"method {method!r} needs {what}, which {ds.name!r} lacks; drop it from "
            "--config.method_names"
        )
    return False, f"skipped {method}: it needs {what}, which {ds.name!r} lacks"


def _kg(section: ConfigDict, ds: Dataset, named: bool) -> tuple[bool, str]:
    if "kg" in token_sources(ds):
        return True, ""
    return _missing("kg", "a knowledge graph", ds, named)


# Method name -> check(its config section, data set, named by the user) -> (run it, note);
# a check may narrow the section to what the data set has.
CHECKS: dict[str, Callable[[ConfigDict, Dataset, bool], tuple[bool, str]]] = {
    "kg": _kg,
    "kg-only": _kg,
    "content": _sources_field("content", "features", default=token_sources),
    "tag-cf": _sources_field(
        "tag-cf", "tag_sources", default=lambda ds: [s for s in token_sources(ds) if s != "kg"]
    ),
}


def adapt_methods(
    names: Sequence[str], methods: ConfigDict, ds: Dataset
) -> tuple[list[str], list[str]]:
    """(the methods that can run on `ds`, notes); narrows `methods` sections in place.

    Raises:
      DataError: a method the user named on the command line needs what `ds` lacks.
    """
    named = given_on_command_line("method_names")
    kept, notes = [], []
    for name in names:
        check = CHECKS.get(name)
        ok, note = (
            (True, "") if check is None else check(methods[name.replace("-", "_")], ds, named)
        )
        if ok:
            kept.append(name)
        if note:
            notes.append(note)
    if not kept:
        raise DataError(f"no method of config.method_names can run on {ds.name!r}: {notes}")
    return kept, notes


def adapt_diversity(protocol: ConfigDict, ds: Dataset) -> list[str]:
    """Sets protocol.diversity_feature to None when `ds` lacks it (a note), or raises.

    Raises:
      DataError: the user named the feature on the command line and `ds` lacks it.
    """
    feature = protocol.get("diversity_feature")
    if not feature:
        return []
    has = ds.item_vectors is not None if feature == "vectors" else feature in ds.item_multi_hot
    if has:
        return []
    if given_on_command_line("protocol.diversity_feature"):
        raise DataError(
            f"protocol.diversity_feature={feature!r}: {ds.name!r} has no such multi-hot item "
            f"column (it has {sorted(ds.item_multi_hot) or 'none'}); name one, or =none"
        )
    with protocol.ignore_type():
        protocol.diversity_feature = None
    return [f"skipped diversity: it needs item {feature}, which {ds.name!r} lacks"]
