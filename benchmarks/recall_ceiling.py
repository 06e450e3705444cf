"""How far above EASE can signals that EASE does not use take full ranking on MovieLens 100K?

  python -m benchmarks.recall_ceiling [--seeds=2020,2021,2022]

An accuracy analysis, not a speed benchmark: it asks whether the ranking stage has anything to
learn that EASE (Steck 2019) has not already got. On the full-ranking protocol's split (per user
80/10/10 at random, configs/full_ranking_ml100k.py) it scores the VALIDATION part (never the
test part) with NDCG@10 over every item the user did not rate in training, for:

  - EASE at several L2 penalties and DLAE (Steck 2020) at several dropout rates;
  - signals a ranker could add to EASE: item-CF and user-CF (binary, summed, 100 neighbours),
    RP3beta (Paudel et al. 2017), items rated near each other in time by the same users
    (co-occurrence within 10 positions of each user's time-ordered history), what everyone
    rated on the days the user was rating (time-local popularity, a 7-day kernel), what the
    user's age x gender group rated, and EASE fitted on liked items (rating >= 4) only;
  - each signal alone and blended with EASE: z-scores per user, EASE + w x signal, with the
    best w of {0.1, 0.25, 0.5, 1} chosen on the same validation data. Choosing w on the data
    it is scored on flatters the blend, so the blend column is an upper bound of what a
    linear combination of the two adds.

Prints one table: mean validation NDCG@10 over the seeds, and the ratio to EASE (l2 500, the
library's default and the recaller of the trained ranker).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from benchmarks.common import print_table
from shortrec_jax.baselines import DLAE, EASE, ItemCF, UserCF
from shortrec_jax.baselines.similarity import binary_matrix, rating_matrix
from shortrec_jax.data import load
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import per_user_random_split
from shortrec_jax.metrics.ranking import ranking_metrics

SECONDS_PER_DAY = 86_400
WEIGHTS = (0.1, 0.25, 0.5, 1.0)
#: Age bands of the MovieLens 100K users (years, lower bounds after the first).
AGE_BANDS = (18, 25, 35, 45, 50, 56)


def _binary(train: Dataset) -> np.ndarray:
    """[U, I] float64 1 where the user rated the item in `train` (the baselines' matrix)."""
    return binary_matrix(rating_matrix(train), None).toarray().astype(np.float64)


def rp3beta(train: Dataset, alpha: float = 1.0, beta: float = 0.5) -> np.ndarray:
    """[U, I] RP3beta scores: 3-step random walk user -> item -> user -> item, each item's
    arrival divided by its popularity^beta (Paudel et al., TiiS 2017)."""
    x = _binary(train)
    pop = x.sum(axis=0)
    p_ui = (x / np.maximum(x.sum(axis=1, keepdims=True), 1.0)) ** alpha
    p_iu = (x / np.maximum(pop, 1.0)).T ** alpha
    w = (p_iu @ p_ui) / np.maximum(pop, 1.0)[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    return x @ w


def session_cooccurrence(train: Dataset, window: int = 10, decay: float = 0.8) -> np.ndarray:
    """[U, I] scores from items rated within `window` positions of each other in the same
    users' time-ordered histories (weight decay^(distance - 1)), cosine-normalised."""
    order = np.lexsort((train.items, train.timestamps, train.users))
    users, items = train.users[order], train.items[order]
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        same = users[d:] == users[:-d]
        a, b = items[:-d][same], items[d:][same]
        w = np.full(a.size, decay ** (d - 1))
        rows += [a, b]
        cols += [b, a]
        vals += [w, w]
    shape = (train.num_items, train.num_items)
    sim = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape)
    x = _binary(train)
    norm = 1.0 / np.sqrt(x.sum(axis=0) + 1e-9)
    return x @ (sim.multiply(norm[:, None]).multiply(norm[None, :])).toarray()


def time_local_popularity(train: Dataset, tau_days: float = 7.0) -> np.ndarray:
    """[U, I] log(1 + sum over the user's rating days d and the item's rating days e of
    exp(-|d - e| / tau)), the user's days weighted to sum to 1."""
    day = (train.timestamps - train.timestamps.min()) // SECONDS_PER_DAY
    num_days = int(day.max()) + 1
    user_days = np.zeros((train.num_users, num_days))
    np.add.at(user_days, (train.users, day), 1.0)
    item_days = np.zeros((train.num_items, num_days))
    np.add.at(item_days, (train.items, day), 1.0)
    gap = np.abs(np.arange(num_days)[:, None] - np.arange(num_days)[None, :])
    user_days /= np.maximum(user_days.sum(axis=1, keepdims=True), 1.0)
    return np.log1p(user_days @ np.exp(-gap / tau_days) @ item_days.T)


def group_popularity(train: Dataset) -> np.ndarray:
    """[U, I] share of the user's age-band x gender group (the user left out) who rated the
    item."""
    features = train.user_features
    age = np.digitize(features["age"].astype(np.float64), AGE_BANDS)
    gender = np.unique(features["gender"], return_inverse=True)[1]
    group = age * (gender.max() + 1) + gender
    x = _binary(train)
    members = np.zeros((group.max() + 1, train.num_users))
    members[group, np.arange(train.num_users)] = 1.0
    counts = members @ x  # [G, I]
    size = members.sum(axis=1)
    return (counts[group] - x) / np.maximum(size[group] - 1.0, 1.0)[:, None]


def _zscore(scores: np.ndarray) -> np.ndarray:
    """[U, I] -> per-user standardised scores."""
    return (scores - scores.mean(axis=1, keepdims=True)) / (
        scores.std(axis=1, keepdims=True) + 1e-9
    )


def validation_ndcg(scores: np.ndarray, train: Dataset, valid: Dataset) -> float:
    """Mean NDCG@10 of [U, I] scores on the validation items, the training items excluded."""
    seen = _binary(train) > 0
    relevant = np.zeros_like(seen)
    relevant[valid.users, valid.items] = True
    ndcg = ranking_metrics(scores, relevant, (10,), mask=~seen)["ndcg@10"]
    return float(np.nanmean(ndcg))


def _methods(train: Dataset) -> dict[str, Callable[[], np.ndarray]]:
    """Name -> a function giving [U, I] scores fitted on `train`."""
    users = np.arange(train.num_users)

    def fitted(method) -> Callable[[], np.ndarray]:
        return lambda: method.fit(train).score_all(users).astype(np.float64)

    return {
        **{f"EASE l2={l2:g}": fitted(EASE(l2=l2)) for l2 in (100.0, 300.0, 500.0, 800.0)},
        **{
            f"DLAE p={p:g} l2={l2:g}": fitted(DLAE(l2=l2, dropout=p))
            for p in (0.25, 0.5)
            for l2 in (100.0, 300.0)
        },
        "item-CF": fitted(ItemCF(values="binary", aggregate="sum", k=None, max_neighbours=100)),
        "user-CF": fitted(UserCF(values="binary", aggregate="sum", k=None, max_neighbours=100)),
        "RP3beta": lambda: rp3beta(train),
        "session co-occurrence": lambda: session_cooccurrence(train),
        "time-local popularity": lambda: time_local_popularity(train),
        "age x gender popularity": lambda: group_popularity(train),
        "EASE on liked items": fitted(EASE(l2=500.0, like_threshold=4.0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="2020,2021,2022", help="comma-separated split seeds")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    data = load("ml-100k")
    alone: dict[str, list[float]] = {}
    blend: dict[str, list[float]] = {}
    for seed in seeds:
        split = per_user_random_split(data, (0.8, 0.1, 0.1), seed=seed)
        train, valid = split.train, split.valid
        methods = _methods(train)
        ease = _zscore(methods.pop("EASE l2=500")())
        alone.setdefault("EASE l2=500", []).append(validation_ndcg(ease, train, valid))
        for name, make in methods.items():
            scores = make()
            alone.setdefault(name, []).append(validation_ndcg(scores, train, valid))
            z = _zscore(scores)
            best = max(validation_ndcg(ease + w * z, train, valid) for w in WEIGHTS)
            blend.setdefault(name, []).append(best)
        print(f"seed {seed} done", flush=True)

    reference = float(np.mean(alone["EASE l2=500"]))
    columns = ["signal", "alone", "/ EASE", "EASE + best w x signal", "/ EASE (blend)"]
    rows = []
    for name, values in alone.items():
        mixed = blend.get(name)
        rows.append(
            {
                "signal": name,
                "alone": f"{np.mean(values):.4f}",
                "/ EASE": f"{np.mean(values) / reference:.3f}",
                "EASE + best w x signal": "" if mixed is None else f"{np.mean(mixed):.4f}",
                "/ EASE (blend)": "" if mixed is None else f"{np.mean(mixed) / reference:.3f}",
            }
        )
    print_table(f"Validation NDCG@10, ml-100k full ranking, seeds {args.seeds}", rows, columns)


if __name__ == "__main__":
    main()
