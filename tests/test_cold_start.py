"""Content vectors from side information, and the new-item cold-start experiment."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from configs import cold_start_ml100k
from shortrec_jax.data import DataError, Ragged, load
from shortrec_jax.data.build import build_dataset
from shortrec_jax.evaluation import cold_start
from shortrec_jax.features.content import content_vectors, genre_block, kg_block, year_block


def _toy():
    ds = build_dataset(
        "toy", np.array(["u", "u", "v"]), np.array(["a", "b", "c"]), np.ones(3), source="t"
    )
    return dataclasses.replace(
        ds,
        item_multi_hot={"genres": Ragged.from_lists([["Drama"], ["Comedy", "Drama"], []])},
        item_numeric={"year": np.array([1990.0, np.nan, 2000.0], np.float32)},
        kg_triples=np.array([["e1", "r", "e2"], ["e2", "r", "e3"]]),
        item_entities=np.array(["e1", "e3", ""]),
    )


def test_genre_and_year_blocks_by_hand():
    ds = _toy()
    # Vocabulary (Comedy, Drama); rows scaled to unit length; an item without genres is zero.
    np.testing.assert_allclose(genre_block(ds), [[0, 1], [2**-0.5, 2**-0.5], [0, 0]], rtol=1e-6)
    # Known years 1990 and 2000: mean 1995, std 5; the unknown year is 0.
    np.testing.assert_allclose(year_block(ds)[:, 0], [-1.0, 0.0, 1.0], rtol=1e-6)


def test_kg_block_gives_linked_items_unit_vectors_and_others_zeros():
    v = kg_block(_toy(), dim=4, epochs=2, seed=0)
    assert v.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(v[:2], axis=1), 1.0, rtol=1e-5)
    assert not v[2].any()
    np.testing.assert_array_equal(v, kg_block(_toy(), dim=4, epochs=2, seed=0))


def test_content_vectors_errors_name_what_is_missing():
    ds = dataclasses.replace(_toy(), kg_triples=None, item_entities=None)
    with pytest.raises(DataError, match="knowledge graph"):
        content_vectors(ds)
    with pytest.raises(ValueError, match="content parts"):
        content_vectors(ds, parts=("pixels",))
    assert content_vectors(ds, parts=("genres", "year")).shape == (3, 3)


def test_cold_item_split_holds_items_out_entirely():
    ds = load("ml-100k")
    train, test, held = cold_start.cold_item_split(ds, 0.2, seed=0)
    assert held.size == round(0.2 * ds.num_items)
    assert not np.isin(train.items, held).any()
    assert np.isin(test.items, held).all()
    assert train.num_interactions + test.num_interactions == ds.num_interactions


def test_cold_start_run_writes_results_for_every_variant(tmp_path):
    config = cold_start_ml100k.get_config()
    config.repeats = 1
    config.content.parts = ("genres", "year")
    config.data.subsample = 0.2
    config.train_overrides = {
        "model": {"embed_dim": 4, "cin_layers": (8, 8), "mlp_layers": (16,)},
        # 8 simulated devices share 2 cores: keep one step in flight (see DESIGN.md).
        "train": {"batch_size": 512, "num_epochs": 2, "warmup_steps": 2, "max_steps_in_flight": 1},
    }
    results = cold_start.run(config, tmp_path)
    assert set(results["summary"]) == {"ids", "features", "content"}
    saved = json.loads((tmp_path / "results.json").read_text())
    for variant in ("ids", "features", "content"):
        assert 0.0 <= saved["summary"][variant]["auc"]["mean"] <= 1.0
    assert "| content |" in (tmp_path / "results.md").read_text()
