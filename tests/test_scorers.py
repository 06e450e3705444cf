"""The trained-run scorers: one compiled shape, padding that changes nothing, exclusions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shortrec_jax.config_files import load_config_file, merge_overrides
from shortrec_jax.data import load
from shortrec_jax.data.auto_fields import resolve_ctr_fields
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.splits import subsample
from shortrec_jax.training.run import untrained_run
from shortrec_jax.training.scorers import CTRScorer, SequenceScorer
from shortrec_jax.vocabulary import ItemVocabulary

TINY_CTR = {"model": {"embed_dim": 4, "cin_layers": (8,), "mlp_layers": (8,)}}
TINY_SEQ = {
    "data": {"max_len": 6, "window_stride": 3},
    "model": {"hidden": 8, "inner": 16, "num_layers": 1},
}


@pytest.fixture(scope="module")
def data():
    return subsample(load("ml-100k"), 0.05, seed=0)


@pytest.fixture(scope="module")
def ctr_run(data, tmp_path_factory):
    config = load_config_file("configs/xdeepfm_ml100k.py")
    merge_overrides(config, TINY_CTR)
    workdir = tmp_path_factory.mktemp("ctr")
    FeatureEncoder.fit(data, resolve_ctr_fields(config.data, data)).save(
        workdir / "encoders" / "features.json"
    )
    return untrained_run(workdir, config)


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    config = load_config_file("configs/bert4rec_ml100k.py")
    merge_overrides(config, TINY_SEQ)
    workdir = tmp_path_factory.mktemp("seq")
    (workdir / "encoders").mkdir()
    item_ids = [str(i) for i in range(1, 21)]  # I = 20
    (workdir / "encoders" / "sequences.json").write_text(
        json.dumps({"num_items": 20, "item_ids": item_ids})
    )
    return untrained_run(workdir, config)


def test_vocabulary_contract():
    vocab = ItemVocabulary(5)
    assert (vocab.pad_id, vocab.mask_id, vocab.size) == (0, 6, 7)
    np.testing.assert_array_equal(vocab.ids(np.array([0, 4])), [1, 5])


def test_ctr_scorer_matches_one_call_and_compiles_once(ctr_run, data):
    users = np.array([0, 1, 2, 3, 4, -1, 5], np.int64)
    items = np.array([0, 3, 1, 2, 7, 4, -1], np.int64)
    batch = ctr_run.encoder.encode_pairs(users, items, data)
    direct = np.asarray(ctr_run.predict(ctr_run.params, batch))
    scorer = CTRScorer(ctr_run, batch_size=3)  # 7 pairs: chunks of 3, 3 and 1 padded to 3
    np.testing.assert_allclose(scorer.score_pairs(users, items, data), direct, rtol=1e-5)
    assert scorer.compilations() == 1


def test_ctr_scorer_overrides_a_column(ctr_run, data):
    users, items = np.zeros(4, np.int64), np.arange(4)
    batch = ctr_run.encoder.encode_pairs(users, items, data)
    batch["cat"][:, 0] = 0  # the reserved unknown id of the first field (user_id)
    direct = np.asarray(ctr_run.predict(ctr_run.params, batch))
    out = CTRScorer(ctr_run, 8).score_pairs(users, items, data, cat_overrides={0: 0})
    np.testing.assert_allclose(out, direct, rtol=1e-5)


def test_ctr_scorer_refuses_a_sequence_run(seq_run):
    with pytest.raises(ValueError, match="CTRScorer needs a CTR run"):
        CTRScorer(seq_run, 8)


def test_sequence_scorer_pads_chunks_without_changing_scores(seq_run):
    histories = [np.array([0, 1, 2]), np.array([], np.int64), np.array([19, 5]), np.array([7])]
    one = SequenceScorer(seq_run, batch_size=1).score(histories)
    three = SequenceScorer(seq_run, batch_size=3)
    out = three.score(histories)
    assert out.shape == (4, 20) and three.compilations() == 1
    np.testing.assert_allclose(out, one, rtol=1e-5, atol=1e-6)
    # The inputs follow the vocabulary: ids = index + 1, left padding 0, the mask (21) last.
    np.testing.assert_array_equal(three.inputs(histories[:1]), [[0, 0, 1, 2, 3, 21]])


def test_sequence_scorer_excludes_index_lists(seq_run):
    scorer = SequenceScorer(seq_run, batch_size=2)
    histories = [np.array([0, 1]), np.array([3])]
    plain = scorer.score(histories)
    out = scorer.score(histories, exclude=[np.array([0, 1, 5]), np.array([], np.int64)])
    assert np.isneginf(out[0, [0, 1, 5]]).all()
    np.testing.assert_array_equal(np.delete(out[0], [0, 1, 5]), np.delete(plain[0], [0, 1, 5]))
    np.testing.assert_array_equal(out[1], plain[1])


def test_sequence_scorer_refuses_a_ctr_run(ctr_run):
    with pytest.raises(ValueError, match="SequenceScorer needs a sequence run"):
        SequenceScorer(ctr_run, 8)
