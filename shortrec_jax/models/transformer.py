"""The Transformer encoder that BERT4Rec and SASRec share, and next-item scoring.

Vocabulary (`shortrec_jax.vocabulary.ItemVocabulary`): item index i is id i + 1, id 0 is
padding and id `num_items + 1` is the mask token, so the input vocabulary has `num_items + 2`
ids. Sequences are left-padded `[B, L]` int32 with the most recent item at the right end; to
ask for the next item the mask token is appended after the history (`eval_inputs`), for both
models: BERT4Rec reads its state at the mask token, SASRec (causal) at the last history item.

`SequenceTransformer` (Fig. 5 of the study for BERT4Rec; Kang and McAuley 2018 for SASRec):

- Embedding: item embedding `E [V, H]` plus a learned position embedding, then LayerNorm and
  dropout. Positions count from the right end of the input (the last position row is always
  the most recent slot), so a window shorter than `max_len` keeps the positions it was trained
  with, and left padding never shifts a real item's position.
- `num_layers` post-LN Transformer layers: A = LN(X + Dropout(MH(X))),
  out = LN(A + Dropout(FFN(A))), FFN(x) = GELU(x W1 + b1) W2 + b2. Keys at padded positions
  are masked out, so padding never changes a real position's output. Attention is
  bidirectional, or causal (`config.causal`: a position sees itself and earlier ones only).
  With `config.pre_norm` the layers are pre-LN instead: A = X + Dropout(MH(LN(X))),
  out = A + Dropout(FFN(LN(A))), and one LayerNorm follows the last layer. With
  `config.relative_bias` each layer adds a learned bias per head and query-key distance to
  the attention logits (started at ALiBi's recency penalties); distances, unlike absolute
  positions, are the same whatever the padding.
- Output: z = LN(GELU(h W_P + b_P)); logits = z E^T + b_O, with `E` the SAME item table as
  the input (tied) and `b_O` one bias per vocabulary id. Logits are float32; the pad and mask
  columns are -inf, so a softmax runs over real items only.

The output head's LayerNorm follows the BERT4Rec authors' code (BERT's masked-LM head). GELU
is the exact (erf) form. SASRec's paper scores h E^T directly and uses pre-LN blocks; here it
keeps the shared post-LN blocks and head (one code path, measured in the README); the shipped
BERT4Rec config uses the pre-LN layers and the relative bias (configs/bert4rec_ml100k.py).

Attention uses `jax.nn.dot_product_attention`, so `attention_implementation="cudnn"` selects
cuDNN's fused kernel on NVIDIA GPUs. That function has no dropout, so when training with
`attention_dropout > 0` the attention is computed explicitly with dropout on the
probabilities, as in BERT; `attention_dropout=0.0` keeps the fused path in training too.
Every dropout here is `dropout`, which draws 16 random bits per element (rates are rounded to
multiples of 2**-16): with 32-bit draws the random-number generator took about an eighth of
a BERT4Rec training step on CPU.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from shortrec_jax.vocabulary import ItemVocabulary

_COMPUTE_DTYPES = ("float32", "bfloat16")
_ATTENTION_IMPLEMENTATIONS = (None, "xla", "cudnn")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters of a `SequenceTransformer` (subclassed per model, with its defaults).

    Attributes:
      num_items: catalogue size I; the vocabulary has I + 2 ids (pad 0, items 1..I, mask I + 1).
      max_len: the longest input sequence N, the size of the position table.
      hidden: model width H (embeddings, attention, output head).
      num_layers: Transformer layers L.
      num_heads: attention heads; must divide `hidden`.
      inner: width of the position-wise feed-forward layer (4H in the BERT4Rec paper).
      dropout: dropout on the embeddings and on each sub-layer's output before add & norm.
      attention_dropout: dropout on the attention probabilities. Above 0, training computes
        attention explicitly (no fused kernel); 0.0 keeps the fused kernel.
      layer_norm_eps: LayerNorm epsilon (1e-12 as in BERT; statistics are float32).
      dtype: compute dtype, "float32" or "bfloat16" (parameters stay float32, logits float32).
      init_std: standard deviation of the truncated-normal (+-2 std) initialiser of every
        kernel and embedding, as in BERT; biases start at 0.
      attention_implementation: passed to `jax.nn.dot_product_attention`: None (JAX chooses),
        "xla", or "cudnn" (NVIDIA GPUs, float16/bfloat16 only).
      pre_norm: False = post-LN layers (BERT, the BERT4Rec paper); True = pre-LN layers
        (LayerNorm before each sub-layer, one more after the last layer, as SASRec's code):
        the residual path stays an identity, which trains faster from a small initialisation.
      relative_bias: add to each layer's attention logits a learned bias per head and signed
        distance between query and key, started at ALiBi's -m_h |i - j| (Press et al. 2022)
        with slopes m_h = 1, 1/2, 1/4, ...: from the first step a position (the mask token
        above all) attends most to its neighbours, the recency prior that a position table
        alone takes hundreds of steps to learn.
    """

    #: True: each position attends to itself and earlier positions only (SASRec).
    causal: ClassVar[bool] = False

    num_items: int
    max_len: int = 200
    hidden: int = 64
    num_layers: int = 2
    num_heads: int = 2
    inner: int = 256
    dropout: float = 0.2
    attention_dropout: float = 0.2
    layer_norm_eps: float = 1e-12
    dtype: Any = "float32"
    init_std: float = 0.02
    attention_implementation: str | None = None
    pre_norm: bool = False
    relative_bias: bool = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("num_items", "max_len", "hidden", "num_layers", "num_heads", "inner"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}.{field} must be a positive int, got {value!r}")
        if self.hidden % self.num_heads:
            raise ValueError(
                f"{name}.hidden={self.hidden} must be divisible by num_heads={self.num_heads}"
            )
        for field in ("dropout", "attention_dropout"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}.{field} must be in [0, 1), got {value!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"{name}.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if not self.init_std > 0:
            raise ValueError(f"{name}.init_std must be > 0, got {self.init_std!r}")
        try:
            dtype_name = jnp.dtype(self.dtype).name
        except TypeError:
            dtype_name = None
        if dtype_name not in _COMPUTE_DTYPES:
            raise ValueError(f"{name}.dtype must be one of {_COMPUTE_DTYPES}, got {self.dtype!r}")
        if self.attention_implementation not in _ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"{name}.attention_implementation must be one of "
                f"{_ATTENTION_IMPLEMENTATIONS}, got {self.attention_implementation!r}"
            )

    @property
    def vocab_size(self) -> int:
        """Input/output vocabulary V = num_items + 2 (pad, items, mask)."""
        return ItemVocabulary(self.num_items).size

    @property
    def mask_id(self) -> int:
        """The mask token's id, num_items + 1."""
        return ItemVocabulary(self.num_items).mask_id

    @property
    def compute_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)


def _init(config: TransformerConfig) -> nn.initializers.Initializer:
    return nn.initializers.truncated_normal(stddev=config.init_std)


#: Dropout draws one 16-bit number per element: rates are multiples of 2**-16.
_DROPOUT_LEVELS = 2**16


def dropout(x: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
    """Inverted dropout that draws 16 random bits per element instead of 32.

    `jax.random.bernoulli` spends one 32-bit threefry output on each element; on CPUs the
    generator then took about an eighth of a BERT4Rec training step (benchmarks/RESULTS.md).
    Here each 32-bit output is split in two 16-bit numbers u, and an element is kept when
    u >= round(rate * 2**16): the drop rate is `rate` rounded to a multiple of 2**-16, and
    kept elements are scaled by the inverse of that exact keep rate (the expectation is x).
    Only the last axis is regrouped, so a sharded batch axis stays sharded.

    Args:
      x: [..., D] values.
      rate: drop probability in [0, 1); a rate that rounds to 1 (above 1 - 2**-17) is refused.
      rng: a PRNG key.

    Returns:
      x's shape and dtype, each element 0 or x / keep_rate.
    """
    threshold = round(rate * _DROPOUT_LEVELS)
    if threshold >= _DROPOUT_LEVELS:
        raise ValueError(f"dropout rate {rate} rounds to 1 at 16-bit resolution: nothing kept")
    if threshold == 0:
        return x
    width = x.shape[-1]
    words = jax.random.bits(rng, (*x.shape[:-1], -(-width // 2)), jnp.uint32)  # [..., ceil(D/2)]
    halves = jax.lax.bitcast_convert_type(words, jnp.uint16)  # [..., ceil(D/2), 2]
    draws = halves.reshape(*x.shape[:-1], -1)[..., :width]  # [..., D]
    scale = _DROPOUT_LEVELS / (_DROPOUT_LEVELS - threshold)
    return jnp.where(draws >= threshold, x * scale, 0).astype(x.dtype)


class Dropout(nn.Module):
    """`dropout` as a Flax module, drawing its key from the "dropout" rng collection (the
    interface of `flax.linen.Dropout`)."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        """x: [..., D]. Returns x unchanged when `deterministic` or the rate is 0."""
        if deterministic or self.rate == 0.0:
            return x
        return dropout(x, self.rate, self.make_rng("dropout"))


def masked_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: jax.Array,
    dropout_rate: float,
    dropout_rng: jax.Array | None,
    bias: jax.Array | None = None,
) -> jax.Array:
    """Multi-head attention computed explicitly, with dropout on the probabilities.

    The same arithmetic as `jax.nn.dot_product_attention` (float32 logits and softmax, masked
    logits set to a large finite negative so a row with every key masked stays finite), plus
    the attention-probability dropout the fused function lacks.

    Args:
      q, k, v: [B, T, N, D] queries, keys, values (compute dtype).
      mask: bool, broadcastable to [B, N, T, T]; True = the key takes part.
      dropout_rate: probability of dropping an attention weight.
      dropout_rng: key for the dropout; None or a rate of 0 means no dropout.
      bias: float32, broadcastable to [B, N, T, T], added to the scaled logits; None = none.

    Returns:
      [B, T, N, D] in the dtype of `v`.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    logits = jnp.einsum("btnd,bsnd->bnts", q, k, preferred_element_type=jnp.float32)  # [B,N,T,T]
    logits = logits * scale if bias is None else logits * scale + bias
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1)  # [B, N, T, T] float32
    if dropout_rate > 0.0 and dropout_rng is not None:
        probs = dropout(probs, dropout_rate, dropout_rng)
    return jnp.einsum("bnts,bsnd->btnd", probs.astype(v.dtype), v)  # [B, T, N, D]


def alibi_init(key: jax.Array, shape: tuple[int, int], dtype: Any = jnp.float32) -> jax.Array:
    """ALiBi's distance penalties as a [N, 2 * max_len - 1] table of biases by signed distance.

    Column c holds distance d = c - (max_len - 1) (query minus key position); head h starts
    at -|d| / 2**h. Deterministic: `key` is unused.
    """
    del key
    heads, width = shape
    distance = jnp.abs(jnp.arange(width) - (width - 1) // 2)  # [2 * max_len - 1]
    slopes = 0.5 ** jnp.arange(heads)  # [N]
    return (-slopes[:, None] * distance[None, :]).astype(dtype)


class _SelfAttention(nn.Module):
    """Multi-head self-attention under a given key mask (and an optional relative bias)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x: jax.Array, key_mask: jax.Array, train: bool) -> jax.Array:
        """x: [B, T, H]; key_mask: [B, 1, T, T] bool (True = the key is used). Returns [B, T, H]."""
        cfg = self.config
        head_dim = cfg.hidden // cfg.num_heads
        # One fused projection for Q, K and V: a single matmul instead of three.
        qkv = nn.DenseGeneral(
            features=(3, cfg.num_heads, head_dim),
            dtype=cfg.compute_dtype,
            kernel_init=_init(cfg),
            name="qkv",
        )(x)  # [B, T, 3, N, D]
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # each [B, T, N, D]
        bias = None
        if cfg.relative_bias:
            table = self.param(
                "relative_bias", alibi_init, (cfg.num_heads, 2 * cfg.max_len - 1), jnp.float32
            )
            length = x.shape[1]
            # Signed distance query - key, shifted to a column of the table: [T, T].
            column = jnp.arange(length)[:, None] - jnp.arange(length)[None, :] + cfg.max_len - 1
            bias = table[:, column][None]  # [1, N, T, T]
        if train and cfg.attention_dropout > 0.0:
            context = masked_attention(
                q, k, v, key_mask, cfg.attention_dropout, self.make_rng("dropout"), bias
            )
        else:
            context = jax.nn.dot_product_attention(
                q, k, v, bias=bias, mask=key_mask, implementation=cfg.attention_implementation
            )  # [B, T, N, D]
        return nn.DenseGeneral(
            features=cfg.hidden,
            axis=(-2, -1),
            dtype=cfg.compute_dtype,
            kernel_init=_init(cfg),
            name="out",
        )(context)  # [B, T, H]


class TransformerLayer(nn.Module):
    """One Transformer layer: attention, then the GELU feed-forward, each with a residual
    connection and a LayerNorm (after the sum, or with `pre_norm` before the sub-layer)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x: jax.Array, key_mask: jax.Array, train: bool) -> jax.Array:
        """x: [B, T, H]; key_mask: [B, 1, T, T] bool. Returns [B, T, H]."""
        cfg = self.config
        dense = dict(dtype=cfg.compute_dtype, kernel_init=_init(cfg))
        norm = dict(epsilon=cfg.layer_norm_eps, dtype=cfg.compute_dtype)
        dropout_layer = Dropout(cfg.dropout)

        def drop(y: jax.Array) -> jax.Array:
            return dropout_layer(y, deterministic=not train)

        attention_norm = nn.LayerNorm(**norm, name="attention_norm")
        ffn_norm = nn.LayerNorm(**norm, name="ffn_norm")

        def ffn(y: jax.Array) -> jax.Array:
            y = nn.Dense(cfg.inner, **dense, name="ffn_in")(y)  # [B, T, inner]
            y = nn.gelu(y, approximate=False)
            return nn.Dense(cfg.hidden, **dense, name="ffn_out")(y)  # [B, T, H]

        attention = _SelfAttention(cfg, name="attention")
        if cfg.pre_norm:
            x = x + drop(attention(attention_norm(x), key_mask, train))
            return x + drop(ffn(ffn_norm(x)))
        x = attention_norm(x + drop(attention(x, key_mask, train)))
        return ffn_norm(x + drop(ffn(x)))


class SequenceTransformer(nn.Module):
    """Item + position embeddings, Transformer layers and the tied two-layer GELU head.

    `__call__` gives full-vocabulary logits at every position (and creates every parameter at
    `init`); training and scoring use `encode` once, then `logits` or `candidate_logits` only
    at the positions that need them. `next_state` is the state that predicts the next item.
    """

    config: TransformerConfig

    def setup(self) -> None:
        cfg = self.config
        self.item_embed = nn.Embed(
            cfg.vocab_size,
            cfg.hidden,
            dtype=cfg.compute_dtype,
            embedding_init=_init(cfg),
            name="item_embed",
        )
        self.position_embedding = self.param(
            "position_embedding", _init(cfg), (cfg.max_len, cfg.hidden), jnp.float32
        )
        self.embed_norm = nn.LayerNorm(
            epsilon=cfg.layer_norm_eps, dtype=cfg.compute_dtype, name="embed_norm"
        )
        self.embed_dropout = Dropout(cfg.dropout)
        self.layers = [TransformerLayer(cfg, name=f"layer_{i}") for i in range(cfg.num_layers)]
        # Pre-LN layers leave the residual sum un-normalised: one LayerNorm after the last.
        self.final_norm = (
            nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=cfg.compute_dtype, name="final_norm")
            if cfg.pre_norm
            else None
        )
        self.head_dense = nn.Dense(
            cfg.hidden, dtype=cfg.compute_dtype, kernel_init=_init(cfg), name="head_dense"
        )
        self.head_norm = nn.LayerNorm(
            epsilon=cfg.layer_norm_eps, dtype=cfg.compute_dtype, name="head_norm"
        )
        self.output_bias = self.param(
            "output_bias", nn.initializers.zeros_init(), (cfg.vocab_size,), jnp.float32
        )

    def __call__(self, ids: jax.Array, train: bool) -> jax.Array:
        """Full-vocabulary logits at every position.

        Args:
          ids: [B, T] int32 left-padded ids, T <= max_len.
          train: enables dropout (needs a "dropout" rng).

        Returns:
          [B, T, V] float32; columns 0 (pad) and V - 1 (mask) are -inf.
        """
        return self.logits(self.encode(ids, train))

    def encode(self, ids: jax.Array, train: bool) -> jax.Array:
        """The Transformer's final hidden states.

        Args:
          ids: [B, T] int32 left-padded ids, T <= max_len.
          train: enables dropout (needs a "dropout" rng).

        Returns:
          [B, T, H] in the compute dtype. Padded positions carry values too; they never
          influence real positions.
        """
        cfg = self.config
        if ids.ndim != 2:
            raise ValueError(f"ids must be [B, T], got shape {ids.shape}")
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
        length = ids.shape[1]
        if length > cfg.max_len:
            raise ValueError(
                f"ids has length {length} > {type(cfg).__name__}.max_len={cfg.max_len}"
            )

        # Right-aligned positions: the last row of the table is always the most recent slot.
        positions = self.position_embedding[cfg.max_len - length :]  # [T, H]
        x = self.item_embed(ids) + positions.astype(cfg.compute_dtype)  # [B, T, H]
        x = self.embed_dropout(self.embed_norm(x), deterministic=not train)

        # Keys at padded positions are masked for every query and head. Spelled out over both
        # sequence axes because cuDNN's fused kernel accepts no other mask shape.
        key_mask = jnp.broadcast_to(
            (ids != 0)[:, None, None, :], (ids.shape[0], 1, length, length)
        )  # [B, 1, T, T]
        if cfg.causal:
            key_mask = key_mask & jnp.tril(jnp.ones((length, length), bool))  # [B, 1, T, T]
        for layer in self.layers:
            x = layer(x, key_mask, train)
        return x if self.final_norm is None else self.final_norm(x)

    def next_state(self, ids: jax.Array) -> jax.Array:
        """The encoder state that predicts the item after each history (no dropout).

        Args:
          ids: [B, T] int32 left-padded histories followed by the mask token (column T - 1),
            as `shortrec_jax.data.sequences.eval_inputs` builds them.

        Returns:
          [B, H]: bidirectional models read the mask token's state; causal ones were trained
          to predict the next item at every position, so they read the last history item's
          state (the mask column is dropped, and positions stay right-aligned).
        """
        if ids.ndim != 2:
            raise ValueError(f"ids must be [B, T], got shape {ids.shape}")
        if self.config.causal:
            return self.encode(ids[:, :-1], False)[:, -1]
        return self.encode(ids, False)[:, -1]

    def head(self, h: jax.Array) -> jax.Array:
        """The output head's transform z = LN(GELU(h W_P + b_P)): [..., H] -> [..., H]."""
        return self.head_norm(nn.gelu(self.head_dense(h), approximate=False))

    def logits(self, h: jax.Array) -> jax.Array:
        """Full-vocabulary logits z E^T + b_O of encoder states.

        Args:
          h: [..., H] encoder states.

        Returns:
          [..., V] float32; columns 0 (pad) and V - 1 (mask) are -inf, so a softmax over them
          is a softmax over the real items only.
        """
        cfg = self.config
        z = self.head(h)
        table = self.item_embed.embedding.astype(cfg.compute_dtype)  # [V, H], tied input table
        # float32 accumulation: bfloat16 logits would round scores of close items together.
        scores = jnp.einsum("...h,vh->...v", z, table, preferred_element_type=jnp.float32)
        scores = scores + self.output_bias  # [..., V]
        ids = jnp.arange(cfg.vocab_size)
        is_item = (ids != 0) & (ids != cfg.mask_id)
        return jnp.where(is_item, scores, -jnp.inf)

    def candidate_logits(self, h: jax.Array, ids: jax.Array) -> jax.Array:
        """Logits of given candidate ids only (no -inf masking; pass real item ids).

        Args:
          h: [..., H] encoder states.
          ids: int vocabulary ids, either [C] (the same candidates for every state) or
            [..., C] with the leading dimensions of `h` (candidates per state).

        Returns:
          [..., C] float32.
        """
        z = self.head(h)
        rows = self.item_embed(ids)  # [C, H] or [..., C, H], the tied table
        if ids.ndim == 1:
            scores = jnp.einsum("...h,ch->...c", z, rows, preferred_element_type=jnp.float32)
        elif ids.shape[:-1] == h.shape[:-1]:
            scores = jnp.einsum("...h,...ch->...c", z, rows, preferred_element_type=jnp.float32)
        else:
            raise ValueError(
                f"ids must be [C] or {(*h.shape[:-1], 'C')} for h of shape {h.shape}, "
                f"got {ids.shape}"
            )
        return scores + self.output_bias[ids]  # [..., C]


def apply(
    model: SequenceTransformer,
    params: Any,
    *args: Any,
    rng: jax.Array | None = None,
    **kwargs: Any,
) -> Any:
    """`model.apply` on a parameter tree, with `rng` as the dropout key when given."""
    rngs = {"dropout": rng} if rng is not None else {}
    return model.apply({"params": params}, *args, rngs=rngs, **kwargs)


def next_item_scores(model: SequenceTransformer, params: Any, inputs: jax.Array) -> jax.Array:
    """Scores of every item as the next one after each history.

    Args:
      model: the module (BERT4Rec or SASRec).
      params: its parameter tree.
      inputs: [B, L] int32 left-padded histories followed by the mask token
        (`TransformerConfig.mask_id`), as the sequences module builds them.

    Returns:
      [B, num_items] float32; column i scores item index i (vocabulary id i + 1).
    """
    h = apply(model, params, inputs, method=SequenceTransformer.next_state)  # [B, H]
    logits = apply(model, params, h, method=SequenceTransformer.logits)  # [B, V]
    return logits[:, 1 : model.config.num_items + 1]


def candidate_scores(
    model: SequenceTransformer, params: Any, inputs: jax.Array, items: jax.Array
) -> jax.Array:
    """Next-item scores of given candidates only (the ranking stage's call).

    Args:
      model: the module.
      params: its parameter tree.
      inputs: [B, L] int32 histories ending with the mask token, as in `next_item_scores`.
      items: [B, C] int item indices (0..num_items-1) to score for each row.

    Returns:
      [B, C] float32, equal to `next_item_scores` at those columns.
    """
    if inputs.ndim != 2 or items.ndim != 2 or items.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"inputs must be [B, L] and items [B, C]; got {inputs.shape} and {items.shape}"
        )
    h = apply(model, params, inputs, method=SequenceTransformer.next_state)  # [B, H]
    return apply(model, params, h, items + 1, method=SequenceTransformer.candidate_logits)


def transformer_flops_per_sequence(
    config: TransformerConfig, predictions: int | None = None
) -> int:
    """Matmul FLOPs of one forward pass over a `max_len` sequence (2 per multiply-add).

    Counts the projections, attention scores and mixing, the feed-forward layers and the
    output head; ignores the elementwise work (LayerNorm, GELU, softmax, dropout), which is
    a few percent at these widths. A training step costs about 3x the forward pass.

    Args:
      config: the model.
      predictions: positions the output head scores per sequence (`max_predictions` in the
        losses); None means all `max_len`.

    Returns:
      FLOPs per sequence.
    """
    n, h, v = config.max_len, config.hidden, config.vocab_size
    p = n if predictions is None else predictions
    per_token_layer = (
        2 * h * 3 * h  # fused Q, K, V projection
        + 2 * n * h * 2  # Q K^T and the probabilities times V
        + 2 * h * h  # attention output projection
        + 2 * 2 * h * config.inner  # feed-forward in and out
    )
    per_prediction = 2 * h * h + 2 * h * v  # head dense, then the tied vocabulary matmul
    return n * config.num_layers * per_token_layer + p * per_prediction
