"""xDeepFM / Wide & Deep and their layers: shapes, a hand-computed CIN, gradients, masks,
ablations, dtypes, config errors and a small learning test."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from shortrec_jax.models import MODELS, get_model, layers
from shortrec_jax.models.xdeepfm import (
    WideAndDeep,
    WideAndDeepConfig,
    XDeepFM,
    XDeepFMConfig,
    xdeepfm_flops_per_example,
)
from shortrec_jax.schema import BatchLayout

# Every feature group present: F = 2 cat + 1 multi + 1 numeric + 1 dense = 5 fields.
SPEC = BatchLayout(
    vocab_size=50,
    cat_fields=("user", "item"),
    multi_fields=("genres",),
    multi_len=3,
    numeric_fields=("year",),
    dense_fields=("content",),
    dense_dims=(4,),
)


def small_config(**overrides: object) -> XDeepFMConfig:
    fields = dict(spec=SPEC, embed_dim=4, cin_layers=(6, 4), cin_split_half=True, mlp_layers=(8,))
    fields.update(overrides)
    return XDeepFMConfig(**fields)


def random_batch(spec: BatchLayout, batch_size: int, seed: int) -> dict[str, jnp.ndarray]:
    rng = np.random.default_rng(seed)
    fm, length = len(spec.multi_fields), spec.multi_len
    mask = (rng.random((batch_size, fm, length)) < 0.6).astype(np.float32)
    mask[:, :, 0] = 1.0  # at least one real id per multi-hot field
    return {
        "cat": jnp.asarray(
            rng.integers(0, spec.vocab_size, (batch_size, len(spec.cat_fields))), jnp.int32
        ),
        "multi": jnp.asarray(rng.integers(0, spec.vocab_size, (batch_size, fm, length)), jnp.int32),
        "multi_mask": jnp.asarray(mask),
        "num": jnp.asarray(rng.normal(size=(batch_size, len(spec.numeric_fields))), jnp.float32),
        "dense": jnp.asarray(rng.normal(size=(batch_size, spec.dense_width)), jnp.float32),
        "label": jnp.asarray(rng.integers(0, 2, batch_size), jnp.float32),
        "weight": jnp.ones((batch_size,), jnp.float32),
    }


def init(model: XDeepFM, batch: dict[str, jnp.ndarray]) -> dict:
    return model.init(jax.random.key(0), batch, train=False)


@pytest.mark.parametrize(
    ("sizes", "split_half", "width"),
    [
        ((100, 100, 100), False, 300),  # 100 + 100 + 100
        ((100, 100, 100), True, 200),  # 50 + 50 + 100: the last layer pools all its maps
        ((200, 200, 200), True, 400),  # 100 + 100 + 200
        ((2, 2), True, 3),  # 1 + 2
        ((7,), True, 7),  # a single layer is the last layer: nothing is split
        ((6, 4), False, 10),  # 6 + 4
    ],
)
def test_cin_output_width(sizes: tuple[int, ...], split_half: bool, width: int) -> None:
    assert layers.cin_output_width(sizes, split_half) == width


def cin_numpy(x0, kernels, out_kernel, split_half, activation):
    """Eqs. 6, 8, 9 of Lian et al. (2018), written directly on [B, H, D] feature maps."""
    m = x0.shape[1]
    hidden, pooled = x0, []
    for k, kernel in enumerate(kernels):
        w = kernel.reshape(hidden.shape[1], m, -1)  # W[i, j, h] = W^{k,h}_{ij}, row i*m + j
        maps = activation(np.einsum("ijh,bid,bjd->bhd", w, hidden, x0))  # [B, H_k, D] Eq. 6
        if split_half and k < len(kernels) - 1:
            half = maps.shape[1] // 2
            hidden, direct = maps[:, :half], maps[:, half:]  # onward, to the output
        else:
            hidden, direct = maps, maps
        pooled.append(direct.sum(axis=2))  # [B, H] Eq. 8
    return np.concatenate(pooled, axis=1) @ out_kernel[:, 0]  # [B] Eq. 9 without sigmoid


@pytest.mark.parametrize(
    ("sizes", "split_half", "activation"),
    [
        ((3,), False, "identity"),
        ((2, 2), False, "identity"),
        ((2, 2), True, "identity"),
        ((4, 2, 3), True, "identity"),
        ((4, 2, 3), False, "identity"),
        ((2, 2), False, "tanh"),
        ((4, 2, 3), True, "relu"),
    ],
)
def test_cin_matches_numpy(sizes: tuple[int, ...], split_half: bool, activation: str) -> None:
    # With the identity, pooled-only maps come from the Gram matrix (never formed as maps);
    # the reference forms every map, so the two paths are checked against the same equations.
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(2, 3, 2)).astype(np.float32)  # B=2, m=3, D=2
    cin = layers.CIN(layers.CINConfig(sizes, activation=activation, split_half=split_half))
    params = cin.init(jax.random.key(3), jnp.asarray(x0))["params"]
    got = cin.apply({"params": params}, jnp.asarray(x0))
    np_act = {"identity": lambda x: x, "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}
    kernels = [np.asarray(params[f"layer_{k}"]["kernel"]) for k in range(len(sizes))]
    want = cin_numpy(
        x0, kernels, np.asarray(params["output"]["kernel"]), split_half, np_act[activation]
    )
    assert got.shape == (2,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def cin_jnp(x0, params, split_half):
    """cin_numpy's identity-activation CIN in jnp (every map formed), for gradients."""
    m, n = x0.shape[1], len(params) - 1
    hidden, pooled = x0, []
    for k in range(n):
        w = params[f"layer_{k}"]["kernel"].reshape(hidden.shape[1], m, -1)
        maps = jnp.einsum("ijh,bid,bjd->bhd", w, hidden, x0)
        half = maps.shape[1] // 2 if split_half and k < n - 1 else 0
        hidden, direct = (maps[:, :half], maps[:, half:]) if half else (maps, maps)
        pooled.append(direct.sum(axis=2))
    return jnp.concatenate(pooled, axis=1) @ params["output"]["kernel"][:, 0]


@pytest.mark.parametrize("split_half", [False, True])
def test_cin_gradients_match_every_map_formed(split_half: bool) -> None:
    # The Gram shortcut must train the same model: gradients for the kernels and the
    # embeddings equal those of the direct form of Eqs. 6-9.
    x0 = jnp.asarray(np.random.default_rng(2).normal(size=(5, 4, 3)), jnp.float32)
    cin = layers.CIN(layers.CINConfig((6, 4, 2), split_half=split_half))
    params = cin.init(jax.random.key(0), x0)["params"]
    got = jax.grad(lambda p, x: jnp.sum(cin.apply({"params": p}, x) ** 2), (0, 1))(params, x0)
    want = jax.grad(lambda p, x: jnp.sum(cin_jnp(x, p, split_half) ** 2), (0, 1))(params, x0)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5)


def test_parameter_tree_shapes() -> None:
    variables = init(XDeepFM(small_config()), random_batch(SPEC, 2, 0))
    assert set(variables) == {"params"}  # norm=None: nothing but params
    shapes = jax.tree_util.tree_map(lambda x: x.shape, variables["params"])
    # V = 50, D = 4, m = F = 5, CIN (6, 4) split in half, DNN (8,).
    assert shapes == {
        "bias": (),
        "linear": {"table": (50, 1), "numeric": (1,), "dense": {"kernel": (4, 1)}},
        "embedding": {"table": (50, 4), "numeric": (1, 4), "dense_0": {"kernel": (4, 4)}},
        "cin": {
            "layer_0": {"kernel": (25, 6)},  # H_0 * m = 5 * 5 -> 6 maps
            "layer_1": {"kernel": (15, 4)},  # (6 / 2 passed on) * 5 -> 4 maps
            "output": {"kernel": (7, 1)},  # 6 / 2 + 4 pooled maps
        },
        "dnn": {"layer_0": {"kernel": (20, 8), "bias": (8,)}},  # F * D = 5 * 4 inputs
        "dnn_output": {"kernel": (8, 1)},
    }
    dtypes = {x.dtype for x in jax.tree_util.tree_leaves(variables)}
    assert dtypes == {jnp.dtype(jnp.float32)}


def test_every_parameter_gets_a_gradient() -> None:
    # LayerNorm and dropout on, so that their parameters and paths are covered as well.
    model = XDeepFM(small_config(norm="layer", dropout=0.1))
    batch = random_batch(SPEC, 16, 0)
    params = init(model, batch)["params"]

    def loss(p):
        logits = model.apply({"params": p}, batch, train=True, rngs={"dropout": jax.random.key(1)})
        return optax.sigmoid_binary_cross_entropy(logits, batch["label"]).mean()

    grads = jax.grad(loss)(params)
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    # bias 1 + linear 3 + embedding 3 + cin 3 + dnn (kernel, bias, scale, norm bias) 4
    # + dnn_output 1 = 15 arrays.
    assert len(flat) == 15
    for path, grad in flat:
        assert bool(jnp.all(jnp.isfinite(grad))), jax.tree_util.keystr(path)
        assert bool(jnp.any(grad != 0)), f"no gradient for {jax.tree_util.keystr(path)}"


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_multi_hot_mask_is_respected(pooling: str) -> None:
    model = XDeepFM(small_config(multi_hot_pooling=pooling))
    batch = random_batch(SPEC, 4, 0)
    mask = np.asarray(batch["multi_mask"]).copy()
    mask[0, 0, 1:] = 0.0
    mask[1, 0, :] = 0.0  # row 1: an all-padding multi-hot field
    batch["multi_mask"] = jnp.asarray(mask)
    variables = init(model, batch)
    logits = model.apply(variables, batch, train=False)

    changed = np.asarray(batch["multi"]).copy()
    changed[0, 0, 1:] = (changed[0, 0, 1:] + 7) % SPEC.vocab_size  # only masked-out slots
    changed[1, 0, :] = (changed[1, 0, :] + 7) % SPEC.vocab_size
    logits_changed = model.apply(variables, {**batch, "multi": jnp.asarray(changed)}, train=False)
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(logits_changed))
    assert bool(jnp.all(jnp.isfinite(logits)))

    embed = layers.FieldEmbedding(layers.FieldEmbeddingConfig(SPEC, 4, pooling=pooling))
    fields = embed.apply({"params": variables["params"]["embedding"]}, batch)
    assert fields.shape == (4, 5, 4)  # [B, F, D]
    np.testing.assert_array_equal(np.asarray(fields[1, 2]), np.zeros(4))  # pooled padding = 0


def test_mean_pooling_averages_the_real_ids() -> None:
    spec = BatchLayout(vocab_size=6, cat_fields=(), multi_fields=("tags",), multi_len=3)
    embed = layers.FieldEmbedding(layers.FieldEmbeddingConfig(spec, 2))
    batch = {
        "cat": jnp.zeros((1, 0), jnp.int32),
        "multi": jnp.asarray([[[1, 4, 5]]], jnp.int32),
        "multi_mask": jnp.asarray([[[1.0, 1.0, 0.0]]]),
        "num": jnp.zeros((1, 0)),
        "dense": jnp.zeros((1, 0)),
    }
    params = embed.init(jax.random.key(0), batch)["params"]
    table = np.asarray(params["table"])
    got = embed.apply({"params": params}, batch)
    np.testing.assert_allclose(np.asarray(got[0, 0]), (table[1] + table[4]) / 2, rtol=1e-6)


@pytest.mark.parametrize(
    ("flags", "groups"),
    [
        ({}, {"bias", "linear", "embedding", "cin", "dnn", "dnn_output"}),
        ({"use_linear": False, "use_dnn": False}, {"bias", "embedding", "cin"}),
        ({"use_dnn": False}, {"bias", "linear", "embedding", "cin"}),
        ({"use_cin": False}, {"bias", "linear", "embedding", "dnn", "dnn_output"}),
        ({"use_cin": False, "use_dnn": False}, {"bias", "linear"}),
    ],
)
def test_ablation_flags_select_parameter_groups(flags: dict, groups: set[str]) -> None:
    model = XDeepFM(small_config(**flags))
    batch = random_batch(SPEC, 3, 0)
    variables = init(model, batch)
    assert set(variables["params"]) == groups
    logits = model.apply(variables, batch, train=False)
    assert logits.shape == (3,) and logits.dtype == jnp.float32


def test_wide_and_deep_is_xdeepfm_without_cin() -> None:
    batch = random_batch(SPEC, 3, 0)
    config = WideAndDeepConfig(spec=SPEC, embed_dim=4, mlp_layers=(8,))
    wd_params = init(WideAndDeep(config), batch)["params"]
    assert set(wd_params) == {"bias", "linear", "embedding", "dnn", "dnn_output"}
    xd = XDeepFM(small_config(use_cin=False))
    np.testing.assert_array_equal(
        np.asarray(WideAndDeep(config).apply({"params": wd_params}, batch, train=False)),
        np.asarray(xd.apply({"params": wd_params}, batch, train=False)),
    )
    with pytest.raises(ValueError, match="use_cin"):
        WideAndDeep(small_config())


def test_registry() -> None:
    assert {"xdeepfm", "widedeep"} <= set(MODELS)  # other models are registered beside them
    entry = get_model("widedeep")
    assert (entry.config, entry.module) == (WideAndDeepConfig, WideAndDeep)
    assert MODELS["xdeepfm"].module is XDeepFM
    with pytest.raises(ValueError, match="xdeepfm"):
        get_model("deepfm")


def test_bfloat16_compute_close_to_float32() -> None:
    batch = random_batch(SPEC, 8, 0)
    model = XDeepFM(small_config())
    variables = init(model, batch)
    # Non-zero linear weights, so that every part contributes to the comparison.
    variables = jax.tree_util.tree_map(lambda x: x + 0.05, variables)
    want = model.apply(variables, batch, train=False)
    got = XDeepFM(small_config(dtype="bfloat16")).apply(variables, batch, train=False)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=3e-2, atol=3e-2)


def test_predict_dropout_and_batch_norm() -> None:
    batch = random_batch(SPEC, 8, 0)
    model = XDeepFM(small_config(dropout=0.5, norm="batch"))
    variables = init(model, batch)
    assert set(variables) == {"params", "batch_stats"}
    probs = model.apply(variables, batch, method=XDeepFM.predict)
    logits = model.apply(variables, batch, train=False)
    np.testing.assert_allclose(np.asarray(probs), np.asarray(jax.nn.sigmoid(logits)), rtol=1e-6)

    def train_apply(seed: int) -> jnp.ndarray:
        out, updates = model.apply(
            variables,
            batch,
            train=True,
            rngs={"dropout": jax.random.key(seed)},
            mutable=["batch_stats"],
        )
        assert set(updates) == {"batch_stats"}
        return out

    assert not np.array_equal(np.asarray(train_apply(1)), np.asarray(train_apply(2)))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"use_linear": False, "use_cin": False, "use_dnn": False}, "use_linear"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"cin_layers": (10, -1)}, "cin_layers"),
        ({"cin_layers": ()}, "cin_layers"),
        ({"cin_layers": (3, 4)}, "cin_split_half"),
        ({"mlp_layers": (0,)}, "mlp_layers"),
        ({"mlp_layers": ()}, "mlp_layers"),
        ({"cin_activation": "swish"}, "cin_activation"),
        ({"mlp_activation": "elu"}, "mlp_activation"),
        ({"dropout": 1.0}, "dropout"),
        ({"norm": "group"}, "norm"),
        ({"dtype": "float16"}, "dtype"),
        ({"multi_hot_pooling": "max"}, "multi_hot_pooling"),
        ({"spec": BatchLayout(vocab_size=1, cat_fields=())}, "spec"),
    ],
)
def test_impossible_configs_raise(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        small_config(**overrides)


def test_ablated_parts_may_leave_their_layers_empty() -> None:
    config = small_config(use_cin=False, cin_layers=())
    assert dataclasses.replace(config, use_dnn=False, mlp_layers=()).mlp_layers == ()
    with pytest.raises(ValueError, match="use_cin"):
        WideAndDeepConfig(spec=SPEC, use_cin=True)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cat", jnp.zeros((2, 3), jnp.int32)),
        ("cat", jnp.zeros((2, 2), jnp.float32)),
        ("multi_mask", jnp.zeros((2, 1, 4))),
        ("dense", jnp.zeros((2, 5))),
        ("num", jnp.zeros((3, 1))),
    ],
)
def test_batch_contract_errors_name_the_key(key: str, value: jnp.ndarray) -> None:
    model = XDeepFM(small_config())
    batch = random_batch(SPEC, 2, 0)
    variables = init(model, batch)
    with pytest.raises(ValueError, match=key):
        model.apply(variables, {**batch, key: value}, train=False)
    del batch["dense"]
    with pytest.raises(ValueError, match="dense"):
        model.apply(variables, batch, train=False)


def test_flops_per_example() -> None:
    # D = 4, m = 5, CIN (6, 4) split, DNN (8,), dense width 4; multiply-adds with the identity
    # (pooled-only maps from the Gram matrix): linear dense 4 + dense projection 4*4
    # + CIN layer 0: 3 maps onward 4*5*5*3, Gram 4*5*5, 3 pooled 25*3
    # + CIN layer 1: Gram 4*3*5, 4 pooled 15*4 + output 7 + DNN 20*8 + 8*1
    # = 4 + 16 + 300 + 100 + 75 + 60 + 60 + 7 + 168 = 790.
    assert xdeepfm_flops_per_example(small_config()) == 2 * 790
    # With relu every map is formed: CIN 4*5*5*6 + 4*3*5*4, so 4 + 16 + 600 + 240 + 7 + 168.
    assert xdeepfm_flops_per_example(small_config(cin_activation="relu")) == 2 * 1035
    # Without the CIN: 4 + 16 + 168.
    assert xdeepfm_flops_per_example(small_config(use_cin=False)) == 2 * 188


def xor_data() -> tuple[BatchLayout, dict[str, jnp.ndarray]]:
    """Two fields of four values each (ids 1-4 and 6-9; 0 and 5 are the reserved ids); the
    label is the XOR of their parities, so every id alone is a coin flip."""
    spec = BatchLayout(vocab_size=10, cat_fields=("a", "b"))
    a, b = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    a, b = np.tile(a.ravel(), 16), np.tile(b.ravel(), 16)  # 256 rows, each pair 16 times
    batch = {
        "cat": jnp.asarray(np.stack([1 + a, 6 + b], axis=1), jnp.int32),
        "multi": jnp.zeros((256, 0, 1), jnp.int32),
        "multi_mask": jnp.zeros((256, 0, 1)),
        "num": jnp.zeros((256, 0)),
        "dense": jnp.zeros((256, 0)),
        "label": jnp.asarray((a % 2) ^ (b % 2), jnp.float32),
    }
    return spec, batch


def train_accuracy(config: XDeepFMConfig, batch: dict[str, jnp.ndarray], steps: int) -> float:
    model = XDeepFM(config)
    params = init(model, batch)["params"]
    optimizer = optax.adam(0.03)

    @jax.jit
    def step(params, opt_state):
        def loss(p):
            logits = model.apply({"params": p}, batch, train=True)
            return optax.sigmoid_binary_cross_entropy(logits, batch["label"]).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    for _ in range(steps):
        params, opt_state = step(params, opt_state)
    logits = model.apply({"params": params}, batch, train=False)
    return float(jnp.mean((logits > 0) == (batch["label"] > 0.5)))


@pytest.mark.parametrize(
    ("flags", "min_accuracy", "max_accuracy"),
    [
        ({}, 0.99, 1.0),  # xDeepFM
        ({"use_linear": False, "use_dnn": False}, 0.99, 1.0),  # the CIN alone
        ({"use_cin": False}, 0.99, 1.0),  # Wide & Deep
        ({"use_cin": False, "use_dnn": False}, 0.0, 0.75),  # first order cannot learn XOR
    ],
)
def test_learns_a_field_interaction(flags: dict, min_accuracy: float, max_accuracy: float) -> None:
    spec, batch = xor_data()
    config = XDeepFMConfig(spec, embed_dim=4, cin_layers=(4,), mlp_layers=(16,), **flags)
    accuracy = train_accuracy(config, batch, steps=300)
    assert min_accuracy <= accuracy <= max_accuracy
