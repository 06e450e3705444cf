"""BERT4Rec: a bidirectional Transformer trained with the cloze task.

Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations
from Transformer", CIKM 2019; section 2.2, Eqs. 3-6 and Fig. 5 of the study (Cao, IJCSIT 2024).

The encoder, the tied two-layer GELU output head and next-item scoring are shared with SASRec
(`shortrec_jax.models.transformer`); the losses live in `shortrec_jax.models.seq_losses`.
BERT4Rec's attention is bidirectional: training hides items behind the mask token and recovers
them (`shortrec_jax.data.sequences.cloze_mask`); to predict the next item the mask token is
appended after the history and the model reads its state there.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from shortrec_jax.models.transformer import SequenceTransformer, TransformerConfig


@dataclasses.dataclass(frozen=True)
class BERT4RecConfig(TransformerConfig):
    """Hyperparameters of `BERT4Rec` (defaults: the paper's MovieLens settings); the fields
    are `TransformerConfig`'s."""

    causal: ClassVar[bool] = False


class BERT4Rec(SequenceTransformer):
    """BERT4Rec encoder with the tied two-layer GELU output head (Sun et al. 2019, Fig. 5)."""

    config: BERT4RecConfig
