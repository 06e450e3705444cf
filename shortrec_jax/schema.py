"""The contract between the feature encoder (host, NumPy) and the CTR models (device, Flax).

On the ground floor, so that `data/` (which writes batches) and `models/` (which reads them)
both use it without models importing data. `FieldSpec` (data/fields.py) declares one input
field to encode; `BatchLayout` here is the result: the groups and sizes of an encoded batch.

A CTR batch is a flat dict of arrays (B = batch size):

  "cat":        [B, Fc] int32   one id per categorical field, already offset into one shared
                                vocabulary of `BatchLayout.vocab_size` ids. Each field owns the id
                                range [offset, offset + size); its first id (offset + 0) is the
                                field's reserved unknown/padding id.
  "multi":      [B, Fm, L] int32 ids of the multi-hot fields (e.g. genres), same shared
                                vocabulary, padded to L with the field's id 0.
  "multi_mask": [B, Fm, L] float32 1 for a real id, 0 for padding.
  "num":        [B, Fn] float32 normalised numeric fields (e.g. year, duration).
  "dense":      [B, Dd] float32 every dense vector field (e.g. a 128-d content vector),
                                concatenated in `BatchLayout.dense_dims` order.
  "label":      [B] float32     the target (1 = positive), training and evaluation only.
  "weight":     [B] float32     1 for a real example, 0 for batch padding.

Arrays for empty field groups are present with a zero-sized axis ([B, 0], [B, 0, L]), so
that every batch of a run has the same pytree structure and no step recompiles.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """The groups and sizes of an encoded CTR batch; what a CTR model builds its tables from.

    Attributes:
      vocab_size: ids in the shared categorical + multi-hot vocabulary (reserved ids included).
      cat_fields: names of the categorical fields, in column order of "cat".
      multi_fields: names of the multi-hot fields, in order of axis 1 of "multi".
      multi_len: L, the padded length of each multi-hot field.
      numeric_fields: names of the numeric fields, in column order of "num".
      dense_fields: names of the dense vector fields.
      dense_dims: the width of each dense field; "dense" is their concatenation.
    """

    vocab_size: int
    cat_fields: tuple[str, ...]
    multi_fields: tuple[str, ...] = ()
    multi_len: int = 1
    numeric_fields: tuple[str, ...] = ()
    dense_fields: tuple[str, ...] = ()
    dense_dims: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.dense_fields) != len(self.dense_dims):
            raise ValueError(
                f"dense_fields {self.dense_fields} and dense_dims {self.dense_dims} differ in "
                "length"
            )
        if self.vocab_size < 1 or self.multi_len < 1:
            raise ValueError(f"vocab_size and multi_len must be >= 1, got {self}")

    @property
    def num_sparse_fields(self) -> int:
        """Fields that have ids (categorical + multi-hot): what the linear part sums over."""
        return len(self.cat_fields) + len(self.multi_fields)

    @property
    def num_fields(self) -> int:
        """F, the number of field embeddings [B, F, D] that the CIN and DNN see."""
        return self.num_sparse_fields + len(self.numeric_fields) + len(self.dense_fields)

    @property
    def dense_width(self) -> int:
        return sum(self.dense_dims)
