"""The KG method's alpha and relation weights chosen on validation data: an informative
relation is found and a useless one left out; the choice never sees the test part."""

from __future__ import annotations

import numpy as np
import pytest

from shortrec_jax.baselines import KnowledgeGraphCF
from shortrec_jax.data import Dataset
from shortrec_jax.data.build import build_dataset
from shortrec_jax.data.splits import random_split
from shortrec_jax.evaluation.protocols import paper_protocol
from shortrec_jax.evaluation.registry import make_method
from shortrec_jax.interface import Method

NUM_USERS, NUM_FILMS, DIRECTORS, NOISE = 60, 40, 5, 4


def _film_kg(seed: int) -> np.ndarray:
    """Film f is directed_by director f % 5 (informative: the ratings follow it) and has_tag a
    tag drawn at random (useless: independent of the ratings)."""
    tags = np.random.default_rng(seed).integers(NOISE, size=NUM_FILMS)
    rows = [(f"f{f}", "directed_by", f"d{f % DIRECTORS}") for f in range(NUM_FILMS)]
    rows += [(f"f{f}", "has_tag", f"t{tags[f]}") for f in range(NUM_FILMS)]
    return np.array(rows)


def _ratings(seed: int, flip: np.ndarray | None = None) -> Dataset:
    """User u rates a random 35% of the films: 5 the films of director u % 5, 1 or 2 the
    others. `flip`: [N] bool, interactions whose rating r becomes 6 - r."""
    rng = np.random.default_rng(seed)
    rated = rng.random((NUM_USERS, NUM_FILMS)) < 0.35
    users, films = np.nonzero(rated)
    ratings = np.where(
        films % DIRECTORS == users % DIRECTORS, 5.0, rng.integers(1, 3, size=users.size)
    )
    if flip is not None:
        ratings = np.where(flip, 6.0 - ratings, ratings)
    return build_dataset(
        "films",
        users.astype(str),
        films.astype(str),
        ratings.astype(np.float32),
        source="test",
        user_ids=np.arange(NUM_USERS).astype(str),
        item_ids=np.arange(NUM_FILMS).astype(str),
        side=[
            lambda _u, _i: {
                "kg_triples": _film_kg(seed),
                "item_entities": np.array([f"f{f}" for f in range(NUM_FILMS)]),
            }
        ],
    )


def test_validation_gives_the_informative_relation_weight_and_the_useless_one_none():
    train = _ratings(0)
    model = KnowledgeGraphCF(k=10, epochs=2, seed=3, validation_weights=True).fit(train)
    fit = model.validation_fit
    weights = fit["weights"]
    assert weights["directed_by"] > 0.1
    assert weights["has_tag"] < 0.01 * weights["directed_by"]
    # The KG part is used (alpha > 0) and predicts the held-out ratings better than item-CF.
    assert fit["alpha"] > 0.1 and fit["alpha"] == model.alpha
    assert fit["mse"] < fit["mse_item_cf"]
    # 10% of the 60 x 40 x 0.35 training ratings were held out to choose them.
    assert fit["pairs"] == int(0.1 * train.num_interactions)
    # The method is built with what was chosen.
    assert model.feature_weights == pytest.approx(weights)


def test_a_single_alpha_fits_the_weights_for_it_kg_only():
    train = _ratings(1)
    only = KnowledgeGraphCF(k=10, epochs=2, seed=3, validation_weights=True, alpha_grid=(1.0,))
    fit = only.fit(train).validation_fit
    assert only.alpha == 1.0 and fit["alpha"] == 1.0
    assert fit["weights"]["directed_by"] > 0.1
    assert fit["weights"]["has_tag"] < 0.01 * fit["weights"]["directed_by"]
    assert only.feature_weights == pytest.approx(fit["weights"])
    with pytest.raises(ValueError, match="aggregate"):
        KnowledgeGraphCF(validation_weights=True, aggregate="sum")


def test_the_choice_never_sees_the_test_part():
    # Two data sets that differ only in the ratings of the test part of seed 7's 80/20 split:
    # the protocol's results differ, the choices of alpha and the weights must not.
    seed = 7
    plain = _ratings(2)
    # random_split's test part is the last 20% of its seeded permutation.
    order = np.random.default_rng(seed).permutation(plain.num_interactions)
    test_size = random_split(plain, (0.8, 0.2), seed=seed).test.num_interactions
    flip = np.zeros(plain.num_interactions, bool)
    flip[order[-test_size:]] = True
    flipped = _ratings(2, flip=flip)
    fitted: list[Method] = []

    def spy(name, config, *, seed, workdir):
        method = make_method(name, config, seed=seed, workdir=workdir)
        fitted.append(method)
        return method

    config = {"k": 10, "epochs": 2, "validation_weights": True, "alpha_grid": (0.0, 0.5, 1.0)}
    results = [
        paper_protocol(
            spy, ds, {"kg": config}, [seed], max_n=3, beyond_ks=(2,), diversity_feature=None
        )
        for ds in (plain, flipped)
    ]
    first, second = fitted
    assert first.validation_fit == second.validation_fit
    assert first.validation_scores == second.validation_scores
    # The flipped ratings are the test part's: the measured precision changes.
    precision = [r["methods"]["kg"]["mean"]["precision@1"] for r in results]
    assert precision[0] != precision[1]
