"""BERT4Rec: parameter shapes, the tied table, masking properties, losses, and a learned task."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from shortrec_jax.models.bert4rec import BERT4Rec, BERT4RecConfig
from shortrec_jax.models.seq_losses import (
    log_q,
    sample_negatives,
    sampled_softmax_loss,
    softmax_loss,
)
from shortrec_jax.models.transformer import (
    TransformerLayer,
    _SelfAttention,
    alibi_init,
    candidate_scores,
    dropout,
    masked_attention,
    next_item_scores,
    transformer_flops_per_sequence,
)
from tests.small_runs import softmax_step

TINY = BERT4RecConfig(
    num_items=10,
    max_len=8,
    hidden=16,
    num_layers=2,
    num_heads=2,
    inner=32,
    dropout=0.1,
    attention_dropout=0.1,
)
PAD = 0
MASK = TINY.mask_id  # 11


# Everything runs jit-compiled: on CPU, compiling a whole Transformer once is much faster than
# dispatching it op by op.
def init(config: BERT4RecConfig, seed: int = 0):
    model = BERT4Rec(config)
    return model, init_params(model, jax.random.key(seed))


@functools.partial(jax.jit, static_argnames="model")
def init_params(model, key):
    ids = jnp.zeros((1, model.config.max_len), jnp.int32)
    return model.init(key, ids, train=False)["params"]


@functools.partial(jax.jit, static_argnames=("model", "train"))
def encode(model, params, ids, train=False, rng=None):
    rngs = {"dropout": rng} if rng is not None else {}
    return model.apply({"params": params}, ids, train, method=BERT4Rec.encode, rngs=rngs)


@functools.partial(jax.jit, static_argnames="model")
def logits_of(model, params, ids):
    return model.apply({"params": params}, ids, train=False)


cloze = jax.jit(softmax_loss, static_argnames=("model", "train", "max_predictions"))
sampled = jax.jit(
    sampled_softmax_loss, static_argnames=("model", "train", "num_negatives", "sampler")
)
scores_of = jax.jit(next_item_scores, static_argnames="model")
candidates_of = jax.jit(candidate_scores, static_argnames="model")
attention = jax.jit(masked_attention, static_argnames="dropout_rate")


def batch():
    """Two left-padded sequences with masked slots, their labels and weights."""
    inputs = np.array(
        [[PAD, PAD, PAD, 3, MASK, 5, MASK, 7], [1, MASK, 3, 4, 5, 6, 7, MASK]], np.int32
    )
    labels = np.array([[0, 0, 0, 0, 4, 0, 6, 0], [0, 2, 0, 0, 0, 0, 0, 8]], np.int32)
    weights = (inputs == MASK).astype(np.float32)
    return inputs, labels, weights


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_items": 0}, "num_items"),
        ({"max_len": -1}, "max_len"),
        ({"hidden": 10, "num_heads": 3}, "hidden"),
        ({"num_layers": 1.5}, "num_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_dropout": -0.1}, "attention_dropout"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        ({"init_std": 0.0}, "init_std"),
        ({"dtype": "float16"}, "dtype"),
        ({"dtype": "no-such-type"}, "dtype"),
        ({"attention_implementation": "flash"}, "attention_implementation"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    base = {"num_items": 10}
    with pytest.raises(ValueError, match=field):
        BERT4RecConfig(**{**base, **kwargs})


def test_param_tree_shapes():
    _, params = init(TINY)
    shapes = jax.tree.map(lambda p: p.shape, params)
    # V = num_items + 2 = 12, H = 16, N = 2 heads of D = 8, inner 32, max_len 8.
    layer = {
        "attention": {
            "qkv": {"kernel": (16, 3, 2, 8), "bias": (3, 2, 8)},  # H -> (Q, K, V) x N x D
            "out": {"kernel": (2, 8, 16), "bias": (16,)},  # N x D -> H
        },
        "attention_norm": {"scale": (16,), "bias": (16,)},
        "ffn_in": {"kernel": (16, 32), "bias": (32,)},
        "ffn_out": {"kernel": (32, 16), "bias": (16,)},
        "ffn_norm": {"scale": (16,), "bias": (16,)},
    }
    assert shapes == {
        "item_embed": {"embedding": (12, 16)},
        "position_embedding": (8, 16),
        "embed_norm": {"scale": (16,), "bias": (16,)},
        "layer_0": layer,
        "layer_1": layer,
        "head_dense": {"kernel": (16, 16), "bias": (16,)},
        "head_norm": {"scale": (16,), "bias": (16,)},
        "output_bias": (12,),
    }
    # 192 item + 128 position + 32 norm + 2 layers x (768 + 48 + 256 + 16 + 32 + 544 + 528 + 32
    # = 2224) + 272 head dense + 32 head norm + 12 output bias = 5116.
    assert sum(p.size for p in jax.tree.leaves(params)) == 5116
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))


def test_one_item_table_is_tied_to_the_output():
    model, params = init(TINY)
    tables = [p for p in jax.tree.leaves(params) if p.shape == (TINY.vocab_size, TINY.hidden)]
    assert len(tables) == 1

    inputs, _, _ = batch()
    h = encode(model, params, inputs)
    z = model.apply({"params": params}, h, method=BERT4Rec.head)
    expected = z @ params["item_embed"]["embedding"].T + params["output_bias"]
    logits = logits_of(model, params, inputs)
    np.testing.assert_allclose(logits[..., 1:MASK], expected[..., 1:MASK], rtol=1e-5, atol=1e-5)
    assert np.all(np.isneginf(logits[..., PAD])) and np.all(np.isneginf(logits[..., MASK]))


# The encoder's options: post-LN (the paper), pre-LN, and the learned relative attention bias.
VARIANTS = [
    TINY,
    dataclasses.replace(TINY, pre_norm=True),
    dataclasses.replace(TINY, relative_bias=True),
    dataclasses.replace(TINY, pre_norm=True, relative_bias=True),
]


@pytest.mark.parametrize("config", VARIANTS, ids=["post-ln", "pre-ln", "bias", "pre-ln+bias"])
def test_padding_never_changes_real_positions(config):
    model, params = init(config)
    inputs, _, _ = batch()
    real = inputs != PAD
    h = encode(model, params, inputs)

    # Whatever the padding id embeds to, real positions see the same thing.
    moved = jax.tree.map(lambda p: p, params)
    moved["item_embed"]["embedding"] = params["item_embed"]["embedding"].at[PAD].set(5.0)
    h_moved = encode(model, moved, inputs)
    np.testing.assert_allclose(h_moved[real], h[real], rtol=1e-6, atol=1e-6)

    # Less left padding (a shorter window) leaves the real positions' outputs as they were.
    short = inputs[:1, 2:]  # [[PAD, 3, MASK, 5, MASK, 7]]
    h_short = encode(model, params, short)
    np.testing.assert_allclose(h_short[0, 1:], h[0, 3:], rtol=1e-5, atol=1e-5)

    # A row that is all padding stays finite.
    assert np.all(np.isfinite(encode(model, params, np.zeros((1, 8), np.int32))))


def test_attention_is_bidirectional():
    model, params = init(TINY)
    inputs, _, _ = batch()
    h = encode(model, params, inputs)
    changed = inputs.copy()
    changed[1, 6] = 9  # a later item
    h_changed = encode(model, params, changed)
    assert np.abs(h_changed[1, :6] - h[1, :6]).min() > 0  # every earlier position moves
    np.testing.assert_array_equal(h_changed[0], h[0])


def test_explicit_attention_matches_the_fused_function():
    q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 5, 2, 4))
    mask = jnp.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)[:, None, None, :]
    expected = jax.nn.dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(attention(q, k, v, mask, 0.0, None), expected, atol=1e-6)
    dropped = attention(q, k, v, mask, 0.5, jax.random.key(1))
    assert dropped.shape == expected.shape and not np.allclose(dropped, expected)

    # With a bias, both add it to the scaled logits of the keys that take part.
    bias = jax.random.normal(jax.random.key(2), (1, 2, 5, 5))
    expected = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask)
    np.testing.assert_allclose(attention(q, k, v, mask, 0.0, None, bias), expected, atol=1e-6)


def test_alibi_table_by_hand():
    # 2 heads, max_len 3: columns are the distances -2..2; slopes 1 and 1/2.
    table = alibi_init(jax.random.key(0), (2, 5))
    np.testing.assert_array_equal(table, [[-2, -1, 0, -1, -2], [-1, -0.5, 0, -0.5, -1]])


def test_relative_bias_starts_as_alibi_on_the_attention_logits():
    config = dataclasses.replace(TINY, relative_bias=True, num_layers=1)
    _, params = init(config)
    attention_params = jax.tree.map(jnp.zeros_like, params["layer_0"]["attention"])
    attention_params["relative_bias"] = params["layer_0"]["attention"]["relative_bias"]
    assert attention_params["relative_bias"].shape == (2, 2 * 8 - 1)
    # Q = K = 0, so the logits are the bias alone. Position t carries a 1 in dimensions t and
    # 8 + t, V is the identity (head h reads dimensions 8h..8h+7) and so is the output
    # projection: output dimension 8h + t is head h's attention weight on key t.
    eye = jnp.eye(16)
    attention_params["qkv"]["kernel"] = (
        attention_params["qkv"]["kernel"].at[:, 2].set(eye.reshape(16, 2, 8))
    )
    attention_params["out"]["kernel"] = eye.reshape(2, 8, 16)
    x = jnp.concatenate([jnp.eye(8), jnp.eye(8)], axis=1)[None]  # [1, T, H]
    inputs = np.array([[PAD, PAD, PAD, PAD, 3, 4, 5, MASK]], np.int32)
    key_mask = jnp.broadcast_to((inputs != PAD)[:, None, None, :], (1, 1, 8, 8))
    out = _SelfAttention(config).apply({"params": attention_params}, x, key_mask, False)
    # The mask token (query 7) over the real keys 4..7, at distances 3, 2, 1, 0; slopes 1, 1/2.
    for head, slope in enumerate((1.0, 0.5)):
        weights = np.exp(-slope * np.array([3.0, 2.0, 1.0, 0.0]))
        np.testing.assert_allclose(
            out[0, 7, 8 * head : 8 * head + 8],
            [0, 0, 0, 0, *(weights / weights.sum())],
            atol=1e-6,
        )


def test_pre_norm_layers_keep_the_residual_path_an_identity():
    # With every sub-layer's output projection at zero, a pre-LN layer passes its input
    # through unchanged; a post-LN layer normalises it.
    x = jax.random.normal(jax.random.key(0), (2, 8, 16)) * 3.0 + 1.0
    key_mask = jnp.ones((2, 1, 8, 8), bool)
    for pre_norm in (True, False):
        layer = TransformerLayer(dataclasses.replace(TINY, pre_norm=pre_norm))
        params = layer.init(jax.random.key(1), x, key_mask, False)["params"]
        params["attention"]["out"] = jax.tree.map(jnp.zeros_like, params["attention"]["out"])
        params["ffn_out"] = jax.tree.map(jnp.zeros_like, params["ffn_out"])
        out = layer.apply({"params": params}, x, key_mask, False)
        if pre_norm:
            np.testing.assert_allclose(out, x, rtol=1e-6)
        else:
            np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
            np.testing.assert_allclose(out.std(-1), 1.0, rtol=1e-3)


def test_dropout_only_in_training():
    model, params = init(TINY)
    inputs, _, _ = batch()
    h_eval = encode(model, params, inputs)
    h_a = encode(model, params, inputs, train=True, rng=jax.random.key(1))
    h_b = encode(model, params, inputs, train=True, rng=jax.random.key(2))
    assert not np.allclose(h_a, h_eval) and not np.allclose(h_a, h_b)

    # With every dropout at 0, training takes the fused path and equals evaluation.
    plain = BERT4Rec(dataclasses.replace(TINY, dropout=0.0, attention_dropout=0.0))
    h_train = encode(plain, params, inputs, train=True, rng=jax.random.key(1))
    np.testing.assert_allclose(h_train, encode(plain, params, inputs), atol=1e-6)


def test_dropout_keeps_each_element_at_the_keep_rate_and_the_expectation():
    x = jnp.full((4, 50_000, 5), 2.0)  # an odd last axis: one 16-bit draw left unused per row
    out = np.asarray(jax.jit(dropout, static_argnums=1)(x, 0.1, jax.random.key(3)))
    # round(0.1 * 2**16) = 6554 of the 65,536 values drop: keep 58,982 / 65,536.
    keep = 58_982 / 65_536
    np.testing.assert_allclose(np.unique(out), [0.0, 2.0 / keep], rtol=1e-6)
    kept = out > 0
    # 1,000,000 draws: the kept share is within 5 standard deviations (0.0015) of the rate,
    # the mean within as many of x, and the rows and columns are not copies of each other.
    assert abs(kept.mean() - keep) < 0.0015
    assert abs(out.mean() - 2.0) < 0.01
    assert 0.89 < kept[..., 4].mean() < 0.91 and 0.89 < kept[3].mean() < 0.91
    assert not np.array_equal(kept[0], kept[1]) and not np.array_equal(kept[..., 0], kept[..., 1])
    again = dropout(x, 0.1, jax.random.key(3))
    np.testing.assert_array_equal(again, out)
    assert not np.array_equal(dropout(x, 0.1, jax.random.key(4)), out)
    assert dropout(x, 1e-6, jax.random.key(3)) is x  # rounds to no drop at all
    with pytest.raises(ValueError, match="rounds to 1"):
        dropout(x, 1 - 1e-6, jax.random.key(3))


def test_rejects_bad_ids():
    model, params = init(TINY)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        encode(model, params, np.ones((8,), np.int32))
    with pytest.raises(ValueError, match="max_len"):
        encode(model, params, np.ones((1, 9), np.int32))
    with pytest.raises(ValueError, match="integers"):
        encode(model, params, np.ones((1, 8), np.float32))


def test_cloze_loss_by_hand():
    # Zeroed head LayerNorm => z = 0, so the logits are the output bias: over items 1..3,
    # biases (0, ln 2, 0) give softmax (1/4, 1/2, 1/4).
    config = BERT4RecConfig(num_items=3, max_len=4, hidden=4, num_heads=1, inner=8)
    model, params = init(config)
    params["head_norm"] = jax.tree.map(jnp.zeros_like, params["head_norm"])
    params["output_bias"] = jnp.array([7.0, 0.0, math.log(2.0), 0.0, 7.0])
    inputs = np.array([[0, 4, 2, 4], [4, 1, 3, 4]], np.int32)
    labels = np.array([[0, 1, 0, 2], [2, 0, 0, 3]], np.int32)
    weights = np.array([[0, 1, 0, 1], [1, 0, 0, 0]], np.float32)
    loss, count = cloze(model, params, inputs, labels, weights, jax.random.key(0))
    # -log(1/4) - log(1/2) - log(1/2) = 4 ln 2 over 3 masked positions.
    np.testing.assert_allclose(loss, 4 * math.log(2.0), rtol=1e-6)
    assert count == 3 and loss.dtype == count.dtype == jnp.float32


def test_cloze_loss_counts_masked_positions_only():
    model, params = init(TINY)
    inputs, labels, weights = batch()
    loss, count = cloze(model, params, inputs, labels, weights, None, train=False)
    assert count == 4

    other = labels.copy()
    other[weights == 0] = np.arange(1, 13)[: (weights == 0).sum()] % 10 + 1
    loss_other, _ = cloze(model, params, inputs, other, weights, None, train=False)
    assert loss_other == loss

    # Against a softmax over real items computed from the full logits.
    logits = np.asarray(logits_of(model, params, inputs))[..., 1:MASK]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    rows, cols = np.nonzero(weights)
    expected = -log_p[rows, cols, labels[rows, cols] - 1].sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_max_predictions_gathers_the_same_positions():
    model, params = init(TINY)
    inputs, labels, weights = batch()
    full = cloze(model, params, inputs, labels, weights, None, train=False)
    gathered = cloze(model, params, inputs, labels, weights, None, train=False, max_predictions=3)
    np.testing.assert_allclose(gathered, full, rtol=1e-6)
    # Two masks per sequence fit two slots exactly.
    exact = cloze(model, params, inputs, labels, weights, None, train=False, max_predictions=2)
    np.testing.assert_allclose(exact, full, rtol=1e-6)


def test_gradients_reach_every_parameter():
    model, params = init(TINY)
    inputs, labels, weights = batch()

    def loss(p):
        return cloze(model, p, inputs, labels, weights, jax.random.key(3))[0]

    grads = jax.jit(jax.grad(loss))(params)
    norms = {
        jax.tree_util.keystr(k): float(jnp.abs(g).sum())
        for k, g in jax.tree_util.tree_leaves_with_path(grads)
    }
    assert all(n > 0 for n in norms.values()), norms


def test_bfloat16_compute_gives_float32_logits():
    bf16 = dataclasses.replace(TINY, dtype="bfloat16")
    model, params = init(bf16)
    inputs, labels, weights = batch()
    assert encode(model, params, inputs).dtype == jnp.bfloat16
    logits = logits_of(model, params, inputs)
    assert logits.dtype == jnp.float32
    assert scores_of(model, params, inputs).dtype == jnp.float32
    reference = logits_of(BERT4Rec(TINY), params, inputs)
    np.testing.assert_allclose(logits[..., 1:MASK], reference[..., 1:MASK], atol=0.05)
    loss, _ = cloze(model, params, inputs, labels, weights, jax.random.key(0))
    assert loss.dtype == jnp.float32 and np.isfinite(loss)


def test_next_item_scores_reads_the_last_position():
    model, params = init(TINY)
    inputs, _, _ = batch()
    scores = scores_of(model, params, inputs)
    logits = logits_of(model, params, inputs)
    assert scores.shape == (2, TINY.num_items) and scores.dtype == jnp.float32
    np.testing.assert_allclose(scores, logits[:, -1, 1:MASK], rtol=1e-6, atol=1e-6)

    items = np.array([[0, 9, 4], [3, 3, 1]], np.int32)
    picked = candidates_of(model, params, inputs, items)
    assert picked.shape == (2, 3) and picked.dtype == jnp.float32
    np.testing.assert_allclose(picked, np.take_along_axis(scores, items, 1), rtol=1e-5, atol=1e-5)


def test_sampled_softmax_loss_by_hand():
    model, params = init(TINY)
    inputs, labels, weights = batch()
    rng = jax.random.key(7)
    for sampler in ("uniform", "log_uniform"):
        loss, count = sampled(
            model, params, inputs, labels, weights, rng, False, num_negatives=6, sampler=sampler
        )
        # The same negatives, from the documented split of rng.
        negatives, neg_log_q = sample_negatives(jax.random.split(rng)[1], 10, 6, sampler)
        negatives, neg_log_q = np.asarray(negatives), np.asarray(neg_log_q)
        logits = np.asarray(logits_of(model, params, inputs))
        expected = 0.0
        for b, t in zip(*np.nonzero(weights), strict=True):
            label = labels[b, t]
            pos = logits[b, t, label] - math.log(6) - float(log_q(jnp.array(label), 10, sampler))
            neg = logits[b, t, negatives] - math.log(6) - neg_log_q
            neg = neg[negatives != label]  # accidental hits removed
            both = np.concatenate([[pos], neg])
            expected += np.log(np.exp(both).sum()) - pos
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
        assert count == 4


def test_log_uniform_sampler_matches_its_probabilities():
    num_items = 10
    q = np.exp(np.asarray(log_q(jnp.arange(1, num_items + 1), num_items, "log_uniform")))
    np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-6)
    ids, _ = sample_negatives(jax.random.key(0), num_items, 100_000, "log_uniform")
    freq = np.bincount(np.asarray(ids), minlength=num_items + 1)[1:] / 100_000
    np.testing.assert_allclose(freq, q, atol=0.005)


def test_flops_by_hand():
    config = BERT4RecConfig(num_items=8, max_len=4, hidden=4, num_layers=1, num_heads=2, inner=8)
    # Per token: QKV 2*4*12 = 96, scores and mixing 2*4*4*2 = 64, out 2*4*4 = 32,
    # FFN 2*2*4*8 = 128 -> 320, x 4 tokens = 1280. Per prediction: head 2*4*4 = 32,
    # vocabulary 2*4*10 = 80 -> 112, x 4 = 448; x 1 = 112.
    assert transformer_flops_per_sequence(config) == 1280 + 448
    assert transformer_flops_per_sequence(config, predictions=1) == 1280 + 112


def cycle_batch(rng: np.random.Generator, size: int, num_items: int, length: int):
    """Sequences that walk a ring of items forwards or backwards from a random start.

    The next item depends on the last two (the direction), so the model has to use order.
    Each row holds 3..length items, left-padded to `length`.
    """
    start = rng.integers(0, num_items, size)
    step = rng.choice([-1, 1], size)
    real = rng.integers(3, length + 1, size)
    t = np.arange(length)[None, :] - (length - real[:, None])  # position within the walk
    ids = (start[:, None] + step[:, None] * t) % num_items + 1
    return np.where(t >= 0, ids, PAD).astype(np.int32)


def test_learns_cyclic_sequences():
    num_items, length = 20, 8
    config = BERT4RecConfig(
        num_items=num_items,
        max_len=length,
        hidden=32,
        num_layers=2,
        num_heads=2,
        inner=64,
        dropout=0.1,
        attention_dropout=0.1,
    )
    model, params = init(config, seed=1)
    tx = optax.adam(5e-3)
    opt_state = tx.init(params)

    step = softmax_step(model, tx)
    rng = np.random.default_rng(0)
    key = jax.random.key(0)
    for i in range(600):
        ids = cycle_batch(rng, 64, num_items, length)
        # Cloze masks: 30% of real items, and the last item in half the rows so that
        # predicting past the end of a sequence is practised too (as in the paper).
        masked = (rng.random(ids.shape) < 0.3) & (ids != PAD)
        masked[:, -1] |= rng.random(64) < 0.5
        inputs = np.where(masked, config.mask_id, ids).astype(np.int32)
        params, opt_state, loss = step(
            params, opt_state, inputs, ids, masked.astype(np.float32), jax.random.fold_in(key, i)
        )
    assert np.isfinite(loss)

    # Hold out each walk's last item and put the mask token in its place.
    ids = cycle_batch(np.random.default_rng(1), 500, num_items, length)
    history = np.concatenate([ids[:, :-1], np.full((500, 1), config.mask_id, np.int32)], axis=1)
    scores = scores_of(model, params, history)
    hit_at_1 = np.mean(np.asarray(scores).argmax(axis=1) + 1 == ids[:, -1])
    assert hit_at_1 > 0.95, hit_at_1
