"""A synthetic interaction log with power-law popularity, for scale and throughput tests.

Real logs are long-tailed: a few items and users account for most interactions. Here item
popularity and user activity both follow Zipf-like laws (weight of the r-th most popular item
proportional to r^-alpha), interactions are drawn independently from them, and every item gets
MovieLens-like side information (genres, a year) plus a few user columns, so the same feature
encoder, models and baselines run on it unchanged. Ratings depend on a hidden user taste for
the item's first genre, so models have something to learn.
"""

from __future__ import annotations

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset, Ragged

NUM_GENRES = 18


def _zipf_weights(n: int, alpha: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return w / w.sum()


def synthetic_log(
    num_users: int = 10_000,
    num_items: int = 2_000,
    num_interactions: int = 1_000_000,
    *,
    item_alpha: float = 1.0,
    user_alpha: float = 0.8,
    seed: int = 0,
) -> Dataset:
    """Draws a synthetic log.

    Args:
      num_users, num_items, num_interactions: sizes (interactions may repeat a pair, as
        repeated views do in real logs).
      item_alpha, user_alpha: Zipf exponents of item popularity and user activity.
      seed: seeds `np.random.default_rng`.

    Returns:
      A `Dataset` named "synthetic": ratings 1..5, timestamps increasing with the row,
      user features "age"/"gender"/"occupation", item "genres" (1-3 each) and "year".
    """
    if min(num_users, num_items, num_interactions) < 1:
        raise DataError(
            f"synthetic sizes must be >= 1, got users={num_users}, items={num_items}, "
            f"interactions={num_interactions}"
        )
    rng = np.random.default_rng(seed)
    # Popularity ranks are shuffled so that index order carries no information.
    item_rank = rng.permutation(num_items)
    user_rank = rng.permutation(num_users)
    items = item_rank[
        rng.choice(num_items, num_interactions, p=_zipf_weights(num_items, item_alpha))
    ]
    users = user_rank[
        rng.choice(num_users, num_interactions, p=_zipf_weights(num_users, user_alpha))
    ]

    n_genres = rng.integers(1, 4, size=num_items)
    genre_ids = rng.integers(0, NUM_GENRES, size=int(n_genres.sum()))
    offsets = np.zeros(num_items + 1, dtype=np.int64)
    np.cumsum(n_genres, out=offsets[1:])
    first_genre = genre_ids[offsets[:-1]]
    taste = rng.normal(size=(num_users, NUM_GENRES)).astype(np.float32)
    quality = rng.normal(scale=0.5, size=num_items).astype(np.float32)
    noise = rng.normal(scale=0.8, size=num_interactions).astype(np.float32)
    score = 3.5 + taste[users, first_genre[items]] + quality[items] + noise
    ratings = np.clip(np.rint(score), 1, 5).astype(np.float32)

    genre_names = np.array([f"genre{g:02d}" for g in range(NUM_GENRES)])
    return Dataset(
        name="synthetic",
        users=users.astype(np.int32),
        items=items.astype(np.int32),
        ratings=ratings,
        timestamps=(1_000_000_000 + np.arange(num_interactions, dtype=np.int64) * 7),
        user_ids=np.arange(num_users).astype(np.str_),
        item_ids=np.arange(num_items).astype(np.str_),
        user_features={
            "age": rng.choice(np.array(["18", "25", "35", "45", "56"]), num_users),
            "gender": rng.choice(np.array(["F", "M"]), num_users),
            "occupation": np.char.add("occ", rng.integers(0, 21, num_users).astype(np.str_)),
        },
        item_multi_hot={"genres": Ragged(values=genre_names[genre_ids], offsets=offsets)},
        item_numeric={"year": rng.integers(1950, 2024, num_items).astype(np.float32)},
        item_tags=Ragged(values=genre_names[genre_ids], offsets=offsets),
    )
