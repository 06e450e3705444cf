"""The item vocabulary of the sequential models, defined once.

Sequence ids: 0 is padding, item index i (0..I-1) is id i + 1, and I + 1 is the mask token
the cloze task hides items with and the next-item query ends with; so a model embeds I + 2
ids. The sequences module, the sequential models, their training task and the sequence
scorer all read the contract from here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PAD_ID = 0


@dataclasses.dataclass(frozen=True)
class ItemVocabulary:
    """Sequence ids of a catalogue of `num_items` items: pad 0, items 1..I, mask I + 1.

    Attributes:
      num_items: I.
    """

    num_items: int

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def mask_id(self) -> int:
        """The mask token, I + 1."""
        return self.num_items + 1

    @property
    def size(self) -> int:
        """Ids a model embeds: padding, the items and the mask token (I + 2)."""
        return self.num_items + 2

    @property
    def index_pad(self) -> int:
        """The item index (not id) that pads lists of item indices, such as the seen items of
        an evaluation batch: I, one past the last item, so a [.., I + 1] mask built from such a
        list drops the padding with its last column."""
        return self.num_items

    def ids(self, items: np.ndarray) -> np.ndarray:
        """[...] int item indices 0..I-1 -> [...] int32 sequence ids 1..I."""
        return (np.asarray(items) + 1).astype(np.int32)
