"""Evaluation protocols: every method trained and scored on the same splits and seeds.

Each protocol function takes a method factory, a `Dataset`, the methods to compare (name ->
hyperparameters), the seeds, its own keyword options and the shared ones
(`repeats.RankingOptions`; `repeats.SharedOptions` for CTR), and returns plain dicts of numbers:

  `paper_protocol`         the study's section 3 (its Fig. 6): random 80/20 split by
                           interaction; each user ranks only their own held-out items;
                           precision@N (accurate = rated >= 4) for N = 1..max_n.
  `size_protocol`          the same precision@N when the methods train on 10%, 20%, ... of the
                           training part (the study's Fig. 7; nested subsamples).
  `full_ranking_protocol`  per-user random split; each user ranks every item outside their
                           history; Precision/Recall/NDCG/HR/MRR/MAP at K (RecBole's top-K).
  `leave_one_out_protocol` each user's last interaction by time; HR/NDCG/MRR at K over the full
                           catalogue, and optionally against sampled negatives (BERT4Rec paper).
  `ctr_protocol`           AUC, LogLoss and per-user AUC on labelled pairs of a random split.

Every ranking protocol also reports, per repeat, beyond-accuracy metrics on each user's
top-K list and the accuracy metrics over two slices, cold users and rare items (see
`slices.py`; what the rare-items slice measures depends on the protocol, see each), and the
counts: "users" evaluated, and "<slice>/users" per slice.

Results. A protocol returns {"protocol", "options", "seeds", "dataset", "methods"}, where
methods[name] = {"mean": {metric: value}, "std": {metric: value}, "repeats": {seed: {metric:
value}}} (the size protocol nests this once more under "fractions"). The standard deviation is
the sample one (n - 1) over repeats, 0 for a single repeat; NaN metrics (an empty slice) are
left out of both and shown as None when none is left. Every repeat also records
"time/fit_seconds" and "time/eval_seconds".

Methods and seeds. `make_method(name, config, seed=, workdir=)` builds an unfitted `Method`
for one repeat; the protocol fits it on that repeat's training part (with the validation part
where the protocol has one, else None). Repeat r of a run uses seeds[r] for the split, for the
method (the factory decides how: e.g. initialisation, the random ranker's hash) and for
sampled negatives, so every method of a repeat sees the same split.

Restarts. Given a `store`, a repeat whose result is stored under the same key and fingerprint
(protocol, options, data, method config, seed, fraction) is not recomputed; results are
stored as soon as each repeat finishes.

Where the parts live: the measurement of one fitted method on one split in `measures.py`
(with `candidates.py` and `slices.py`), the repeat loop, restarts, aggregation and the
shared options in `repeats.py`; each protocol here only chooses its split, its measure and its
own options.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import (
    Split,
    leave_one_out,
    per_user_random_split,
    random_split,
    subsample,
)
from shortrec_jax.evaluation.measures import (
    evaluate_ctr,
    evaluate_full_ranking,
    evaluate_held_out,
    evaluate_leave_one_out,
)
from shortrec_jax.evaluation.repeats import (
    MethodFactory,
    ProtocolOptions,
    RankingOptions,
    RepeatLoop,
    SharedOptions,
    summarise,
)
from shortrec_jax.evaluation.slices import Numbers
from shortrec_jax.interface import Method


def _ranking_options(
    protocol: str,
    shared: Mapping[str, Any],
    ks: Sequence[int],
    split: Mapping[str, Any],
    measure: Mapping[str, Any],
) -> ProtocolOptions:
    """A ranking protocol's options: its own, then `RankingOptions(**shared)`; checks cut-offs."""
    common = RankingOptions(**shared)
    beyond_ks = common.beyond_ks
    if not ks or min(ks) < 1 or not beyond_ks or min(beyond_ks) < 1:
        raise ValueError(f"cut-offs must be integers >= 1, got ks={ks}, beyond_ks={beyond_ks}")
    return ProtocolOptions(protocol, split, measure, common)


def _train_only(split: Split, seed: int, fraction: float | None) -> tuple[Dataset, None]:
    return split.train, None


def _train_and_valid(
    split: Split, seed: int, fraction: float | None
) -> tuple[Dataset, Dataset | None]:
    return split.train, split.valid


def paper_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    fractions: Sequence[float] = (0.8, 0.2),
    max_n: int = 20,
    threshold: float = 4.0,
    **shared: Any,
) -> dict[str, Any]:
    """The study's comparison (its Fig. 6): precision@N over random 80/20 splits.

    Per seed: `random_split(dataset, fractions, seed)`; each method is fitted on the training
    part (valid=None) and ranks each user's held-out items (`evaluate_held_out`).

    Args:
      make_method: builds each repeat's method (see `MethodFactory`).
      dataset: all interactions.
      methods: name -> hyperparameters, in the order of the report.
      seeds: one repeat per seed.
      fractions: (train, test) shares of the split.
      max_n: precision@N for N = 1..max_n.
      threshold: a recommendation is accurate when the rating is >= threshold.
      **shared: the fields of `repeats.RankingOptions` (slices, beyond accuracy, batch size,
        store, workdir, progress), each with its default there.

    Returns:
      See the module docstring; every repeat has "precision@1".."precision@{max_n}",
      "base_rate", the slices and the beyond-accuracy metrics.
    """
    measure = {"max_n": max_n, "threshold": threshold}
    options = _ranking_options("paper", shared, (max_n,), {"fractions": fractions}, measure)

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_held_out(method, train, split.test, **options.measure_args)

    repeats = RepeatLoop.start(options, make_method, dataset, methods, seeds)
    return repeats.summarised(
        lambda seed: random_split(dataset, fractions, seed=seed), _train_only, evaluate
    )


def size_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    train_fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    fractions: Sequence[float] = (0.8, 0.2),
    max_n: int = 20,
    threshold: float = 4.0,
    **shared: Any,
) -> dict[str, Any]:
    """Precision@N against the amount of training data (the study's Fig. 7).

    Per seed: the paper protocol's split; for each training fraction f the methods are fitted
    on `subsample(train, f, seed)` (nested: a larger f keeps every interaction a smaller one
    keeps) and evaluated on the same held-out part. Arguments as in `paper_protocol`, plus
    `train_fractions`.

    Returns:
      As `paper_protocol`, but methods[name] = {"fractions": {"0.1": summary, ...}}.
    """
    split_options = {"train_fractions": train_fractions, "fractions": fractions}
    measure = {"max_n": max_n, "threshold": threshold}
    options = _ranking_options("size", shared, (max_n,), split_options, measure)
    if not train_fractions or not all(0 < f <= 1 for f in train_fractions):
        raise ValueError(f"train_fractions must be in (0, 1], got {train_fractions}")
    repeats = RepeatLoop.start(options, make_method, dataset, methods, seeds)

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_held_out(method, train, split.test, **options.measure_args)

    results = repeats.run(
        prepare=lambda seed: random_split(dataset, fractions, seed=seed),
        fit_parts=lambda split, seed, fraction: (subsample(split.train, fraction, seed=seed), None),
        evaluate=evaluate,
        fractions=[float(f) for f in train_fractions],
    )
    summaries = {
        name: {"fractions": {f"{f:g}": summarise(r) for f, r in by.items()}}
        for name, by in results.items()
    }
    return repeats.output(summaries)


def full_ranking_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    ks: Sequence[int] = (5, 10, 20),
    threshold: float | None = None,
    exclude_valid: bool = True,
    **shared: Any,
) -> dict[str, Any]:
    """Top-K over the full catalogue on a per-user random split (RecBole's protocol).

    Per seed: `per_user_random_split(dataset, fractions, seed)`; methods are fitted on the
    training part with the validation part (None for a two-way split); `evaluate_full_ranking`.
    With the defaults this is the protocol behind RecBole's ItemKNN and Pop numbers in
    docs/references.md: 80/10/10 within each user, relevant = every test item, and (as RecBole
    does at test time) the user's training and validation items leave the candidates.

    Args:
      fractions: (train, [valid,] test) shares within each user.
      ks: cut-offs K of Precision/Recall/NDCG/HR/MRR/MAP.
      threshold: relevant = test items rated >= threshold; None = every test item.
      exclude_valid: also drop the user's validation items from the candidates.
      The rest as in `paper_protocol`.

    Returns:
      See the module docstring.
    """
    measure = {"ks": ks, "threshold": threshold, "exclude_valid": exclude_valid}
    options = _ranking_options("full_ranking", shared, ks, {"fractions": fractions}, measure)

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_full_ranking(method, split, **options.measure_args)

    repeats = RepeatLoop.start(options, make_method, dataset, methods, seeds)
    return repeats.summarised(
        lambda seed: per_user_random_split(dataset, fractions, seed=seed),
        _train_and_valid,
        evaluate,
    )


def leave_one_out_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    ks: Sequence[int] = (5, 10, 20),
    exclude_valid: bool = True,
    valid_as_history: bool = True,
    sampled_negatives: int = 0,
    negative_sampling: str = "popularity",
    **shared: Any,
) -> dict[str, Any]:
    """Next-item evaluation: each user's last interaction by time, ranked over the catalogue.

    The split (`leave_one_out`: last item test, second to last validation) is the same for
    every seed; seeds vary the methods' randomness and the sampled negatives. Methods are
    fitted on the training part with the validation part. A sequential method should score
    the test item from the history including the validation item (that is the method's
    concern: it receives both parts in `fit`).

    Args:
      ks: cut-offs of HR/NDCG/MRR.
      exclude_valid: drop the validation item from the candidates too (it is history).
      valid_as_history: fit the methods that learn nothing from a validation part
        (`Method.uses_valid` False: EASE, the neighbourhood methods, popularity, ...) on the
        training and validation parts together, so that they, like the sequence models, know
        each user's validation item at test time; False fits them on the training part.
      sampled_negatives: n > 0 also ranks the test item against n sampled negatives, keys
        "sampled{n}_pop/..." (BERT4Rec paper: 100, popularity) or "sampled{n}_uniform/...".
      negative_sampling: "popularity" (by training interactions) or "uniform".
      The rest as in `paper_protocol`.

    Returns:
      See the module docstring.
    """
    measure = {
        "ks": ks,
        "exclude_valid": exclude_valid,
        "sampled_negatives": sampled_negatives,
        "negative_sampling": negative_sampling,
    }
    split = {"valid_as_history": valid_as_history}
    options = _ranking_options("leave_one_out", shared, ks, split, measure)
    if sampled_negatives < 0:
        raise ValueError(f"sampled_negatives must be >= 0, got {sampled_negatives}")

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_leave_one_out(method, split, seed=seed, **options.measure_args)

    repeats = RepeatLoop.start(options, make_method, dataset, methods, seeds)
    return repeats.summarised(
        lambda seed: leave_one_out(dataset, with_valid=True), _train_and_valid, evaluate
    )


def ctr_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    threshold: float = 4.0,
    **shared: Any,
) -> dict[str, Any]:
    """Click-through evaluation: AUC, LogLoss, GAUC on a random split of all ratings.

    Per seed: `random_split(dataset, fractions, seed)` (80/10/10, RecBole's CTR protocol in
    docs/references.md); methods are fitted with the validation part; `evaluate_ctr` on the
    test pairs, label = rating >= threshold. `**shared`: the fields of `repeats.SharedOptions`
    (no beyond-accuracy metrics: there are no lists).

    Returns:
      See the module docstring.
    """
    measure = {"threshold": threshold}
    options = ProtocolOptions("ctr", {"fractions": fractions}, measure, SharedOptions(**shared))

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_ctr(method, split, **options.measure_args)

    repeats = RepeatLoop.start(options, make_method, dataset, methods, seeds)
    return repeats.summarised(
        lambda seed: random_split(dataset, fractions, seed=seed),
        _train_and_valid,
        evaluate,
    )


# Protocols by the name an evaluate config uses (config.protocol.name).
PROTOCOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "paper": paper_protocol,
    "size": size_protocol,
    "full_ranking": full_ranking_protocol,
    "leave_one_out": leave_one_out_protocol,
    "ctr": ctr_protocol,
}
# The shared keyword options of each protocol (`**shared`): CTR has no top-K lists to measure.
_SHARED: dict[str, type[SharedOptions]] = {
    "paper": RankingOptions,
    "size": RankingOptions,
    "full_ranking": RankingOptions,
    "leave_one_out": RankingOptions,
    "ctr": SharedOptions,
}


def protocol_keywords(name: str) -> set[str]:
    """Every keyword option protocol `name` takes: its own and those of its shared options."""
    params = inspect.signature(PROTOCOLS[name]).parameters.values()
    own = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    shared = _SHARED[name]
    return own | {f.name for f in dataclasses.fields(shared)}
