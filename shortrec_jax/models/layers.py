"""Building blocks of the CTR models: field embeddings, the linear ("wide") part, an MLP and
the Compressed Interaction Network (CIN) of xDeepFM.

Every module takes one frozen dataclass of hyperparameters. Parameters are float32; the
compute dtype (`dtype`: "float32" or "bfloat16") is what inputs and gathered embeddings are
cast to. Outputs that feed a loss (the [B] logits of `Linear` and `CIN`) are float32.

The feature modules read a CTR batch as defined in `shortrec_jax.schema`: "cat" [B, Fc]
int32, "multi" / "multi_mask" [B, Fm, L], "num" [B, Fn] float32, "dense" [B, Dd] float32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from shortrec_jax.schema import BatchLayout

COMPUTE_DTYPES = ("float32", "bfloat16")
POOLINGS = ("mean", "sum")
NORMS = (None, "batch", "layer")


def _identity(x: jax.Array) -> jax.Array:
    return x


#: Activations by the names that configs use.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": _identity,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
}

# Embedding-like tables start small, as in the xDeepFM authors' code (normal, std 0.01): the
# CIN multiplies embeddings layer after layer, so unit-scale vectors would blow up its output.
_EMBED_INIT = nn.initializers.normal(stddev=0.01)


def check_choice(field: str, value: object, choices: tuple[object, ...]) -> None:
    """Raises ValueError naming `field` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{field} must be one of {choices}, got {value!r}")


def check_sizes(field: str, sizes: tuple[int, ...], allow_empty: bool) -> None:
    """Raises ValueError naming `field` unless every layer size is >= 1 (and, unless
    `allow_empty`, there is at least one)."""
    if not allow_empty and not sizes:
        raise ValueError(f"{field} must name at least one layer, got {sizes!r}")
    # bool is an int subclass, and a command line can give strings or floats: refuse them here
    # rather than fail deep inside the module.
    if any(isinstance(size, bool) or not isinstance(size, int) or size < 1 for size in sizes):
        raise ValueError(f"{field} must be positive whole numbers, got {sizes!r}")


def check_ctr_batch(batch: Mapping[str, jax.Array], spec: BatchLayout) -> int:
    """Checks the feature arrays of a CTR batch against `spec` (shapes are static, so free).

    Args:
      batch: at least "cat" [B, Fc] int, "multi" [B, Fm, L] int, "multi_mask" [B, Fm, L],
        "num" [B, Fn], "dense" [B, Dd]; empty groups with a zero-sized axis.
      spec: the feature sizes the model was built for.

    Returns:
      B, the batch size.

    Raises:
      ValueError: naming the key whose array is missing or has the wrong shape or dtype.
    """
    trailing = {
        "cat": (len(spec.cat_fields),),
        "multi": (len(spec.multi_fields), spec.multi_len),
        "multi_mask": (len(spec.multi_fields), spec.multi_len),
        "num": (len(spec.numeric_fields),),
        "dense": (spec.dense_width,),
    }
    batch_size = None
    for key, tail in trailing.items():
        want = "[B, " + ", ".join(str(n) for n in tail) + "]"
        if key not in batch:
            raise ValueError(f"batch has no {key!r} array; expected {want} (see schema.py)")
        shape = tuple(batch[key].shape)
        if len(shape) != 1 + len(tail) or shape[1:] != tail:
            raise ValueError(f"batch[{key!r}] has shape {shape}, expected {want}")
        if batch_size is None:
            batch_size = shape[0]
        elif shape[0] != batch_size:
            raise ValueError(f"batch[{key!r}] has {shape[0]} rows, batch['cat'] {batch_size}")
    for key in ("cat", "multi"):
        if not jnp.issubdtype(batch[key].dtype, jnp.integer):
            raise ValueError(f"batch[{key!r}] must hold integer ids, got {batch[key].dtype}")
    return batch_size


def _lookup_sparse(
    table: jax.Array,
    cat: jax.Array,
    multi: jax.Array,
    multi_mask: jax.Array,
    pooling: str,
    dtype: jnp.dtype,
) -> jax.Array:
    """Rows of `table` for the categorical ids and the pooled multi-hot ids, by one gather.

    Args:
      table: [V, W] float32.
      cat: [B, Fc] int ids.
      multi: [B, Fm, L] int ids.
      multi_mask: [B, Fm, L], 1 for a real id, 0 for padding.
      pooling: "mean" (sum / number of real ids, at least 1) or "sum".
      dtype: compute dtype the gathered rows are cast to.

    Returns:
      [B, Fc + Fm, W] in `dtype`; an all-padding multi-hot field gives a zero row.
    """
    batch, num_cat = cat.shape
    _, num_multi, length = multi.shape
    width = table.shape[1]
    # One gather (and one scatter-add in the backward pass) for every sparse field.
    ids = jnp.concatenate([cat, multi.reshape(batch, num_multi * length)], axis=1)  # [B, Fc+Fm*L]
    # mode="fill" turns an id outside the vocabulary into NaN, which the loss check of the
    # training loop reports, instead of silently clamping it onto another field's id.
    rows = jnp.take(table, ids, axis=0, mode="fill").astype(dtype)  # [B, Fc + Fm*L, W]
    cat_rows = rows[:, :num_cat]  # [B, Fc, W]
    multi_rows = rows[:, num_cat:].reshape(batch, num_multi, length, width)  # [B, Fm, L, W]
    mask = multi_mask.astype(dtype)
    pooled = jnp.einsum("bflw,bfl->bfw", multi_rows, mask)  # [B, Fm, W]
    if pooling == "mean":
        # At least 1 in the denominator: an all-padding field pools to 0, not 0/0 = NaN.
        count = jnp.sum(mask, axis=-1, keepdims=True)  # [B, Fm, 1]
        pooled = pooled / jnp.maximum(count, 1)
    return jnp.concatenate([cat_rows, pooled], axis=1)  # [B, Fc + Fm, W]


@dataclasses.dataclass(frozen=True)
class FieldEmbeddingConfig:
    """Hyperparameters of `FieldEmbedding`.

    Attributes:
      spec: the encoded feature groups.
      embed_dim: D, the width of every field embedding.
      pooling: how a multi-hot field's embeddings are combined: "mean" or "sum".
      dtype: compute dtype, "float32" or "bfloat16".
    """

    spec: BatchLayout
    embed_dim: int
    pooling: str = "mean"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("dtype", self.dtype, COMPUTE_DTYPES)
        if self.spec.num_fields < 1:
            raise ValueError(f"spec has no fields to embed: {self.spec}")


class FieldEmbedding(nn.Module):
    """Every field of a CTR batch as one D-dimensional vector: the "embedding layer" (Cao
    2024, Fig. 3; xDeepFM's field embeddings e_i, Lian et al. 2018, Sec. 2.1).

    - categorical ids: rows of ONE shared table [V, D] (the ids are already offset per field);
    - multi-hot fields: the same table's rows pooled under the mask;
    - numeric fields: value x a learned vector per field, [Fn, D];
    - dense vector fields: each projected to D by its own Dense without bias, so a missing
      (all-zero) vector maps to the zero embedding, like a numeric 0 and like an all-padding
      multi-hot field: absent information then adds no interaction term.
    """

    config: FieldEmbeddingConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """Embeds the fields of a batch.

        Args:
          batch: the feature arrays of `shortrec_jax.schema`.

        Returns:
          [B, F, D] in the compute dtype, fields in the order cat, multi, numeric, dense
          (F = spec.num_fields).
        """
        cfg = self.config
        spec = cfg.spec
        dtype = jnp.dtype(cfg.dtype)
        check_ctr_batch(batch, spec)
        parts = []
        if spec.num_sparse_fields:
            table = self.param("table", _EMBED_INIT, (spec.vocab_size, cfg.embed_dim), jnp.float32)
            parts.append(
                _lookup_sparse(
                    table,
                    batch["cat"],
                    batch["multi"],
                    batch["multi_mask"],
                    cfg.pooling,
                    dtype,
                )
            )  # [B, Fc + Fm, D]
        if spec.numeric_fields:
            vectors = self.param(
                "numeric", _EMBED_INIT, (len(spec.numeric_fields), cfg.embed_dim), jnp.float32
            )
            num = batch["num"].astype(dtype)
            parts.append(jnp.einsum("bf,fd->bfd", num, vectors.astype(dtype)))  # [B, Fn, D]
        start = 0
        for i, width in enumerate(spec.dense_dims):
            field = batch["dense"][:, start : start + width].astype(dtype)  # [B, width]
            start += width
            proj = nn.Dense(
                cfg.embed_dim,
                use_bias=False,
                dtype=dtype,
                param_dtype=jnp.float32,
                name=f"dense_{i}",
            )
            parts.append(proj(field)[:, None, :])  # [B, 1, D]
        return jnp.concatenate(parts, axis=1)  # [B, F, D]


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    """Hyperparameters of `Linear`.

    Attributes:
      spec: the encoded feature groups.
      pooling: how a multi-hot field's weights are combined: "mean" or "sum".
      use_bias: whether the module adds its own bias (off when a parent model owns the bias).
      dtype: compute dtype, "float32" or "bfloat16".
    """

    spec: BatchLayout
    pooling: str = "mean"
    use_bias: bool = True
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("dtype", self.dtype, COMPUTE_DTYPES)


class Linear(nn.Module):
    """The first-order ("wide") part: w^T a + b over the raw features a (the linear term of
    xDeepFM, Lian et al. 2018 Eq. 10; the wide component of Wide & Deep, Cao 2024 Fig. 2).

    A scalar weight per id of the shared vocabulary ([V, 1] table; multi-hot fields pooled
    under the mask like their embeddings), a weight per numeric field, a Dense(1) over the
    dense vectors, and a bias. All start at zero: the model begins as a constant predictor
    and a plain logistic regression is recovered when this is the only part.
    """

    config: LinearConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """The linear logit of each example.

        Args:
          batch: the feature arrays of `shortrec_jax.schema`.

        Returns:
          [B] float32.
        """
        cfg = self.config
        spec = cfg.spec
        dtype = jnp.dtype(cfg.dtype)
        batch_size = check_ctr_batch(batch, spec)
        zeros = nn.initializers.zeros
        logit = jnp.zeros((batch_size,), jnp.float32)
        if spec.num_sparse_fields:
            table = self.param("table", zeros, (spec.vocab_size, 1), jnp.float32)
            weights = _lookup_sparse(
                table, batch["cat"], batch["multi"], batch["multi_mask"], cfg.pooling, dtype
            )  # [B, Fc + Fm, 1]
            logit += jnp.sum(weights[..., 0].astype(jnp.float32), axis=1)
        if spec.numeric_fields:
            weights = self.param("numeric", zeros, (len(spec.numeric_fields),), jnp.float32)
            num_logit = batch["num"].astype(dtype) @ weights.astype(dtype)  # [B]
            logit += num_logit.astype(jnp.float32)
        if spec.dense_dims:
            dense = nn.Dense(
                1,
                use_bias=False,
                dtype=dtype,
                param_dtype=jnp.float32,
                kernel_init=zeros,
                name="dense",
            )
            logit += dense(batch["dense"].astype(dtype))[:, 0].astype(jnp.float32)
        if cfg.use_bias:
            logit += self.param("bias", zeros, (), jnp.float32)
        return logit


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """Hyperparameters of `MLP`.

    Attributes:
      widths: units of each hidden layer, e.g. (400, 400).
      activation: a key of `ACTIVATIONS`.
      dropout: drop rate after each layer's activation, in [0, 1).
      norm: None, "batch" (BatchNorm: adds a "batch_stats" collection) or "layer".
      dtype: compute dtype, "float32" or "bfloat16".
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    norm: str | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_sizes("widths", self.widths, allow_empty=False)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_choice("norm", self.norm, NORMS)
        check_choice("dtype", self.dtype, COMPUTE_DTYPES)


class MLP(nn.Module):
    """The DNN ("deep") part: Dense -> optional norm -> activation -> dropout, per layer.

    BatchNorm keeps running statistics in the "batch_stats" collection (apply with
    mutable=["batch_stats"] when train=True); it normalises over each device's shard only.
    """

    config: MLPConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        """Applies the layers.

        Args:
          x: [B, In] features.
          train: enables dropout (rng collection "dropout") and batch statistics.

        Returns:
          [B, H] in the compute dtype, H = widths[-1].
        """
        if x.ndim != 2:
            raise ValueError(f"MLP expects [B, In] inputs, got shape {x.shape}")
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        activation = ACTIVATIONS[cfg.activation]
        x = x.astype(dtype)
        for i, width in enumerate(cfg.widths):
            x = nn.Dense(width, dtype=dtype, param_dtype=jnp.float32, name=f"layer_{i}")(x)
            if cfg.norm == "batch":
                x = nn.BatchNorm(
                    use_running_average=not train,
                    dtype=dtype,
                    param_dtype=jnp.float32,
                    name=f"norm_{i}",
                )(x)
            elif cfg.norm == "layer":
                x = nn.LayerNorm(dtype=dtype, param_dtype=jnp.float32, name=f"norm_{i}")(x)
            x = activation(x)
            if cfg.dropout > 0.0:
                x = nn.Dropout(rate=cfg.dropout, deterministic=not train)(x)
        return x  # [B, H]


def cin_output_width(layer_sizes: tuple[int, ...], split_half: bool) -> int:
    """The length of the CIN's pooled vector p+ (Lian et al. 2018, Eq. 8).

    Without `split_half` every feature map of every layer is pooled: sum(layer_sizes). With
    it, each layer but the last sends half its maps to the output: sum(H_k / 2 for k < K)
    plus H_K.
    """
    if not layer_sizes:
        return 0
    if not split_half:
        return sum(layer_sizes)
    return sum(size // 2 for size in layer_sizes[:-1]) + layer_sizes[-1]


def cin_maps_onward(layer_sizes: tuple[int, ...], split_half: bool) -> tuple[int, ...]:
    """How many of each CIN layer's feature maps go on to the next layer: all of them (or the
    first half with `split_half`) for every layer but the last, none for the last. The maps
    after them are only pooled; without `split_half` the maps passed on are pooled too."""
    last = len(layer_sizes) - 1
    return tuple(
        0 if k == last else size // 2 if split_half else size for k, size in enumerate(layer_sizes)
    )


@dataclasses.dataclass(frozen=True)
class CINConfig:
    """Hyperparameters of `CIN`.

    Attributes:
      layer_sizes: H_1..H_K, the feature maps of each layer, e.g. (100, 100, 100).
      activation: a key of `ACTIVATIONS`; the paper uses the identity.
      split_half: the authors' code (not the paper): every layer but the last passes its
        first half of feature maps on to the next layer and pools the second half into the
        output; those layer sizes must be even.
      dtype: compute dtype, "float32" or "bfloat16".
    """

    layer_sizes: tuple[int, ...] = (100, 100, 100)
    activation: str = "identity"
    split_half: bool = False
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_sizes("layer_sizes", self.layer_sizes, allow_empty=False)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if self.split_half and any(size % 2 for size in self.layer_sizes[:-1]):
            raise ValueError(
                f"split_half needs even sizes for every layer but the last, got {self.layer_sizes}"
            )
        check_choice("dtype", self.dtype, COMPUTE_DTYPES)


class _CINKernel(nn.Module):
    """One CIN layer's kernel, [H_{k-1} * m, H_k] (row i*m + j): nn.Dense's layout, name and
    initialiser, so parameters and checkpoints are those of a Dense layer."""

    features: int

    @nn.compact
    def __call__(self, fan_in: int) -> jax.Array:
        shape = (fan_in, self.features)
        return self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)


def _outer(hidden: jax.Array, x0: jax.Array) -> jax.Array:
    """[B, D, H] and [B, D, m] -> [B, D, H*m], the Hadamard products X^{k-1}_i o X^0_j at
    index i*m + j."""
    batch, dim, h = hidden.shape
    return (hidden[:, :, :, None] * x0[:, :, None, :]).reshape(batch, dim, h * x0.shape[-1])


class CIN(nn.Module):
    """Compressed Interaction Network (Lian et al., "xDeepFM", KDD 2018, Sec. 3.2).

    With X^0 [m, D] the field embeddings, layer k computes (Eq. 6)

        X^k_{h,*} = act( sum_i sum_j W^{k,h}_{ij} (X^{k-1}_{i,*} o X^0_{j,*}) ),

    i in [H_{k-1}], j in [m], o the Hadamard product, W^{k,h} in R^{H_{k-1} x m}. Each feature
    map is sum-pooled over the embedding dimension, p^k_h = sum_d X^k_{h,d} (Eq. 8), the
    pooled vectors are concatenated into p+ and projected to a logit w^T p+ (Eq. 9, without
    its sigmoid and bias: the bias is the whole model's, the sigmoid is in the loss).
    The paper's CIN layers have no bias term, and neither do these.

    Layout: activations are kept as [B, D, H] so that the outer products of one layer form
    one [B, D, H_{k-1}*m] array (index i*m + j) that a single matrix product with the layer
    kernel [H_{k-1}*m, H_k] contracts; on CPU this measured about 2x faster than two einsums.

    With the identity activation (the paper's and the default), a map that is only pooled
    (the last layer's, and with `split_half` the second half of every other layer's) is never
    formed: pooling is linear, so p^k_h = sum_{i,j} W^{k,h}_{ij} G_{ij} with the Gram matrix
    G_{ij} = sum_d X^{k-1}_{i,d} X^0_{j,d}, [B, H_{k-1}*m]. That contracts the kernel once per
    example instead of once per embedding dimension: the same function and parameters at
    about a third of the CIN's multiply-adds for RecBole's sizes (7 fields, D = 10, 100-100-100
    split in half; benchmarks/RESULTS.md), and without split_half the last layer's share.
    """

    config: CINConfig

    @nn.compact
    def __call__(self, fields: jax.Array) -> jax.Array:
        """The CIN logit.

        Args:
          fields: [B, m, D] field embeddings X^0.

        Returns:
          [B] float32.
        """
        if fields.ndim != 3:
            raise ValueError(f"CIN expects [B, m, D] field embeddings, got shape {fields.shape}")
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        activation = ACTIVATIONS[cfg.activation]
        batch, num_fields, _ = fields.shape
        x0 = jnp.swapaxes(fields.astype(dtype), 1, 2)  # [B, D, m]
        hidden = x0  # X^{k-1} as [B, D, H_{k-1}]
        pooled = []
        onwards = cin_maps_onward(cfg.layer_sizes, cfg.split_half)
        for k, (size, onward) in enumerate(zip(cfg.layer_sizes, onwards, strict=True)):
            h_prev = hidden.shape[-1]
            kernel = _CINKernel(size, name=f"layer_{k}")(h_prev * num_fields).astype(dtype)
            # Maps [0, onward) go on to the next layer; maps [first_pooled, size) are pooled.
            first_pooled = onward if onward < size else 0
            if cfg.activation == "identity" and onward < size:
                gram = jnp.einsum("bdi,bdj->bij", hidden, x0)  # [B, H_{k-1}, m]
                pooled.append(gram.reshape(batch, -1) @ kernel[:, first_pooled:])  # Eq. 8
                if onward:
                    hidden = _outer(hidden, x0) @ kernel[:, :onward]  # [B, D, H_k/2]
            else:
                maps = activation(_outer(hidden, x0) @ kernel)  # [B, D, H_k]  (Eq. 6)
                pooled.append(jnp.sum(maps[..., first_pooled:], axis=1))  # (Eq. 8)
                hidden = maps[..., :onward]
        p_plus = jnp.concatenate(pooled, axis=-1)  # [B, cin_output_width]
        output = nn.Dense(1, use_bias=False, dtype=dtype, param_dtype=jnp.float32, name="output")
        return output(p_plus)[:, 0].astype(jnp.float32)  # [B]
