"""xDeepFM and Wide & Deep, the CTR ranking models of the study (Cao 2024, Sec. 2.1).

xDeepFM (Lian et al., KDD 2018; the study's Eq. 2 and Fig. 4) adds three logits over shared
field embeddings,

    y = sigmoid( w_linear^T a + w_dnn^T x_dnn^K + w_cin^T p+ + b ),

a linear part over the raw features, a DNN over the concatenated embeddings and a CIN over
the field embedding matrix. Wide & Deep (the study's Fig. 2) is the same model without the
CIN. The modules return the logit (float32); the sigmoid is applied by the loss or by
`XDeepFM.predict`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from shortrec_jax.models import layers
from shortrec_jax.schema import BatchLayout


@dataclasses.dataclass(frozen=True)
class XDeepFMConfig:
    """Hyperparameters of `XDeepFM`; every part can be switched off for ablations.

    Attributes:
      spec: the encoded feature groups (`shortrec_jax.schema.BatchLayout`).
      embed_dim: D, the width of every field embedding (the paper: 10).
      cin_layers: H_1..H_K, feature maps per CIN layer (the paper: 100, or 200 on Criteo).
      cin_activation: a key of `layers.ACTIVATIONS` (the paper: identity).
      cin_split_half: the authors' code's CIN, where every layer but the last pools half its
        maps and passes half on (RecBole's default too); the paper's CIN when False.
      mlp_layers: DNN hidden widths (the paper: 400 units per layer).
      mlp_activation: a key of `layers.ACTIVATIONS`.
      dropout: DNN dropout rate, in [0, 1).
      norm: DNN normalisation: None, "layer", or "batch" (the model then also has a
        "batch_stats" collection that the train step must carry; None and "layer" keep
        "params" as the only collection).
      use_linear: include the linear ("wide") part.
      use_cin: include the CIN.
      use_dnn: include the DNN.
      dtype: compute dtype, "float32" or "bfloat16"; parameters and logits stay float32.
      multi_hot_pooling: "mean" or "sum" over the real ids of a multi-hot field.
    """

    spec: BatchLayout
    embed_dim: int = 10
    cin_layers: tuple[int, ...] = (100, 100, 100)
    cin_activation: str = "identity"
    cin_split_half: bool = False
    mlp_layers: tuple[int, ...] = (400, 400)
    mlp_activation: str = "relu"
    dropout: float = 0.0
    norm: str | None = None
    use_linear: bool = True
    use_cin: bool = True
    use_dnn: bool = True
    dtype: str = "float32"
    multi_hot_pooling: str = "mean"

    def __post_init__(self) -> None:
        if not (self.use_linear or self.use_cin or self.use_dnn):
            raise ValueError("use_linear, use_cin and use_dnn are all False: no part is left")
        if self.spec.num_fields < 1:
            raise ValueError(f"spec has no fields: {self.spec}")
        if self.embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {self.embed_dim}")
        # Sizes are checked even for a part that is off; emptiness only where it is used.
        layers.check_sizes("cin_layers", self.cin_layers, allow_empty=not self.use_cin)
        layers.check_sizes("mlp_layers", self.mlp_layers, allow_empty=not self.use_dnn)
        if self.use_cin and self.cin_split_half and any(h % 2 for h in self.cin_layers[:-1]):
            raise ValueError(
                "cin_split_half needs even cin_layers sizes for every layer but the last, "
                f"got {self.cin_layers}"
            )
        layers.check_choice("cin_activation", self.cin_activation, tuple(layers.ACTIVATIONS))
        layers.check_choice("mlp_activation", self.mlp_activation, tuple(layers.ACTIVATIONS))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        layers.check_choice("norm", self.norm, layers.NORMS)
        layers.check_choice("dtype", self.dtype, layers.COMPUTE_DTYPES)
        layers.check_choice("multi_hot_pooling", self.multi_hot_pooling, layers.POOLINGS)


@dataclasses.dataclass(frozen=True)
class WideAndDeepConfig(XDeepFMConfig):
    """Hyperparameters of `WideAndDeep`: an `XDeepFMConfig` whose CIN is off."""

    use_cin: bool = False

    def __post_init__(self) -> None:
        if self.use_cin:
            raise ValueError("use_cin must be False for Wide & Deep (it has no CIN)")
        super().__post_init__()


class XDeepFM(nn.Module):
    """eXtreme Deep Factorization Machine (Lian et al., KDD 2018, Eq. 10; Cao 2024, Eq. 2).

    Parameters (each group only where its part is on and its features exist):
      params/bias [] (the b of Eq. 2); params/linear (`layers.Linear` without its own bias);
      params/embedding (`layers.FieldEmbedding`, shared by the CIN and the DNN);
      params/cin (`layers.CIN`); params/dnn (`layers.MLP`) and params/dnn_output [H, 1].
    With norm="batch" the DNN adds a "batch_stats" collection.
    """

    config: XDeepFMConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], train: bool) -> jax.Array:
        """Logits of the click probability.

        Args:
          batch: the feature arrays of `shortrec_jax.schema` ("label" and "weight" are
            not read).
          train: enables DNN dropout (rng collection "dropout") and batch statistics.

        Returns:
          [B] float32 logits (before the sigmoid of Eq. 2).
        """
        cfg = self.config
        batch_size = layers.check_ctr_batch(batch, cfg.spec)
        logit = jnp.broadcast_to(
            self.param("bias", nn.initializers.zeros, (), jnp.float32), (batch_size,)
        )  # [B]
        if cfg.use_linear:
            linear = layers.Linear(
                layers.LinearConfig(
                    spec=cfg.spec,
                    pooling=cfg.multi_hot_pooling,
                    use_bias=False,
                    dtype=cfg.dtype,
                ),
                name="linear",
            )
            logit = logit + linear(batch)
        if cfg.use_cin or cfg.use_dnn:
            embed = layers.FieldEmbedding(
                layers.FieldEmbeddingConfig(
                    spec=cfg.spec,
                    embed_dim=cfg.embed_dim,
                    pooling=cfg.multi_hot_pooling,
                    dtype=cfg.dtype,
                ),
                name="embedding",
            )
            fields = embed(batch)  # [B, F, D]
            if cfg.use_cin:
                cin = layers.CIN(
                    layers.CINConfig(
                        layer_sizes=cfg.cin_layers,
                        activation=cfg.cin_activation,
                        split_half=cfg.cin_split_half,
                        dtype=cfg.dtype,
                    ),
                    name="cin",
                )
                logit = logit + cin(fields)
            if cfg.use_dnn:
                dnn = layers.MLP(
                    layers.MLPConfig(
                        widths=cfg.mlp_layers,
                        activation=cfg.mlp_activation,
                        dropout=cfg.dropout,
                        norm=cfg.norm,
                        dtype=cfg.dtype,
                    ),
                    name="dnn",
                )
                flat = fields.reshape(batch_size, -1)  # [B, F*D]
                hidden = dnn(flat, train=train)  # [B, H]
                output = nn.Dense(
                    1,
                    use_bias=False,
                    dtype=jnp.dtype(cfg.dtype),
                    param_dtype=jnp.float32,
                    name="dnn_output",
                )
                logit = logit + output(hidden)[:, 0].astype(jnp.float32)
        return logit

    def predict(self, batch: Mapping[str, jax.Array]) -> jax.Array:
        """Click probabilities, sigmoid(logit) of Eq. 2, in evaluation mode.

        Use as `model.apply(variables, batch, method=XDeepFM.predict)`.

        Returns:
          [B] float32 in (0, 1).
        """
        return jax.nn.sigmoid(self(batch, train=False))


class WideAndDeep(XDeepFM):
    """Wide & Deep (Cheng et al., DLRS 2016; Cao 2024, Fig. 2): the linear ("wide") part plus
    the DNN over field embeddings. It is `XDeepFM` with the CIN off, so the two models share
    every layer and parameter name; the wide part sees the raw features, without the
    hand-made cross-product features of the original paper.
    """

    config: WideAndDeepConfig

    def __post_init__(self) -> None:
        # Guards against an XDeepFMConfig with its CIN on arriving under this name.
        if self.config.use_cin:
            raise ValueError("WideAndDeep needs config.use_cin=False (use WideAndDeepConfig)")
        super().__post_init__()


def xdeepfm_flops_per_example(config: XDeepFMConfig) -> int:
    """Forward-pass FLOPs of one example: 2 x the multiply-adds of every matrix product.

    Counted: the dense-field projections, the linear part's Dense over "dense", the CIN's
    products as `layers.CIN` computes them, the CIN output projection, the DNN layers and its
    output unit. A CIN layer's maps that go on to the next layer are one [D, H_{k-1}*m] x
    [H_{k-1}*m, maps] product; with the identity activation its pooled-only maps cost the
    Gram matrix (D * H_{k-1} * m) and one [H_{k-1}*m] x [H_{k-1}*m, maps] product, otherwise
    the same product as the others. Not counted: gathers, the CIN's outer products and sum
    pooling, pooling of multi-hot fields, activations, norms and biases. These are
    elementwise and a small share at the usual sizes (the outer product of a CIN layer is
    1 / (2 H_k) of its matrix product). A training step costs about 3x the forward pass.
    """
    spec = config.spec
    dim = config.embed_dim
    num_fields = spec.num_fields
    mult_adds = 0
    if config.use_linear:
        mult_adds += spec.dense_width
    if config.use_cin or config.use_dnn:
        mult_adds += spec.dense_width * dim
    if config.use_cin:
        h_prev = num_fields
        onwards = layers.cin_maps_onward(config.cin_layers, config.cin_split_half)
        for size, onward in zip(config.cin_layers, onwards, strict=True):
            pooled_only = size - onward if onward < size else 0
            mult_adds += dim * h_prev * num_fields * onward
            if config.cin_activation == "identity" and pooled_only:
                mult_adds += dim * h_prev * num_fields + h_prev * num_fields * pooled_only
            else:
                mult_adds += dim * h_prev * num_fields * pooled_only
            h_prev = onward
        mult_adds += layers.cin_output_width(config.cin_layers, config.cin_split_half)
    if config.use_dnn:
        widths = (num_fields * dim, *config.mlp_layers, 1)
        mult_adds += sum(a * b for a, b in itertools.pairwise(widths))
    return 2 * mult_adds
