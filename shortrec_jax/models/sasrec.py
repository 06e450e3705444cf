"""SASRec: a causal Transformer trained to predict the next item at every position.

Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018, trained with a full
softmax cross-entropy over the catalogue instead of the paper's one sampled negative
(Klenitskiy and Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than
SASRec?", RecSys 2023), which is what makes it the strongest simple sequential model.

The encoder and tied output head are BERT4Rec's (`shortrec_jax.models.transformer`) with a
causal attention mask: position t sees items 1..t only, so one pass over a window trains
every position on the item after it (`shortrec_jax.data.sequences.next_item_targets`), and the
state at the last history item scores the next one.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from shortrec_jax.models.transformer import SequenceTransformer, TransformerConfig


@dataclasses.dataclass(frozen=True)
class SASRecConfig(TransformerConfig):
    """Hyperparameters of `SASRec`; the fields are `TransformerConfig`'s, with SASRec's
    MovieLens-scale defaults (length 50, dropout 0.2)."""

    causal: ClassVar[bool] = True

    max_len: int = 50


class SASRec(SequenceTransformer):
    """SASRec: causal self-attention over the history, next-item logits at every position."""

    config: SASRecConfig
