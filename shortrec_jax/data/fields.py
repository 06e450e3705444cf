"""Declared features of the CTR models: `FieldSpec` and the default feature set.

Field kinds:
  "categorical"  one id per example from a user or item string column, or from the raw user or
                 item id itself (column "user_id" / "item_id"). Vocabulary: the values of the
                 users (items) that occur in training, sorted; local id 0 is reserved for a value
                 training never saw, a missing value ("") and an unknown user or item.
  "multi_hot"    the ids of an item token column (`Dataset.item_multi_hot[column]`, or column
                 "item_tags" for `Dataset.item_tags`), padded to L. A token training never saw
                 is left out (mask 0), as is every token past the first L known ones.
  "numeric"      an item number (`Dataset.item_numeric[column]`). With `buckets=0` it is
                 standardised, (x - mean) / std, with the mean and (population) std of the
                 training interactions, NaN and unknown items giving 0 (the training mean);
                 with `buckets=B` it is cut at the B-quantiles of the training interactions into
                 up to B buckets and becomes a categorical field (NaN -> reserved id 0).
  "dense"        an item vector: `Dataset.item_vectors` (column "item_vectors") or an external
                 [I, D] array passed to `fit` under the column's name, used as is; unknown items
                 get zeros.
  "statistic"    a number fitted on the training interactions (column one of STATISTICS): a
                 user's or item's rating count (log(1 + n)), mean rating, or share of ratings
                 >= `threshold`; means and shares are shrunk toward the training log's global
                 value by `prior` pseudo-ratings, so a user or item training never saw gets the
                 global value. Standardised, or bucketised with `buckets`, like "numeric".
  "history"      the user's training items as a bag (column one of HISTORIES: every item rated,
                 or those rated >= `threshold`), the `length` most recent; an example's own
                 item is never in its bag (see data/log_fields.py).
"""

from __future__ import annotations

import dataclasses

from shortrec_jax.data.dataset import DataError, Dataset

KINDS = ("categorical", "multi_hot", "numeric", "dense", "statistic", "history")
#: The columns of a "statistic" field: user or item, then what is counted.
STATISTICS = (
    "user_count",
    "user_mean",
    "user_like_share",
    "item_count",
    "item_mean",
    "item_like_share",
)
#: The columns of a "history" field: every item the user rated, or those rated >= threshold.
HISTORIES = ("rated", "liked")
SIDES = ("user", "item")
USER_ID = "user_id"
ITEM_ID = "item_id"
ITEM_TAGS = "item_tags"
ITEM_VECTORS = "item_vectors"


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One declared feature.

    Attributes:
      name: the field's name in `BatchLayout` and in error messages; unique in a feature set.
      kind: one of KINDS (see the module docstring).
      column: the column it reads; "" means `name`. Categorical: "user_id", "item_id", a
        `Dataset.user_features` or `Dataset.item_categorical` key. Multi-hot: an
        `item_multi_hot` key or "item_tags". Numeric: an `item_numeric` key. Dense:
        "item_vectors" or a key of `fit(..., item_arrays=...)`.
      side: "user" or "item" for a categorical column that both sides have; "" infers it.
      buckets: numeric and statistic only; 0 standardises the value, B >= 2 makes B quantile
        buckets.
      threshold: statistic and history only: a rating at or above it is a like.
      prior: statistic only: pseudo-ratings of the global value in a shrunk mean or share.
      length: history only: the most recent items kept in the bag (L of the batch).
      ids_of: history only: the name of the feature set's item id field (column "item_id"),
        whose ids, and so embeddings, the bag's items then take: a candidate and the items
        of its user's bag meet in one embedding space, where the CIN's and the DNN's products
        of the two are item-item similarities. "" = a vocabulary of the bag's own.
    """

    name: str
    kind: str
    column: str = ""
    side: str = ""
    buckets: int = 0
    threshold: float = 0.0
    prior: float = 0.0
    length: int = 0
    ids_of: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise DataError(f"a feature field needs a name, got {self}")
        if self.kind not in KINDS:
            raise DataError(f"field {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.side not in ("", *SIDES):
            raise DataError(f"field {self.name!r}: side {self.side!r} is not 'user' or 'item'")
        if self.side and self.kind != "categorical":
            raise DataError(f"field {self.name!r}: side applies to categorical fields only")
        if self.buckets and (self.kind not in ("numeric", "statistic") or self.buckets < 2):
            raise DataError(
                f"field {self.name!r}: buckets={self.buckets} needs kind 'numeric' or "
                "'statistic' and >= 2"
            )
        if self.kind == "statistic" and self.source not in STATISTICS:
            raise DataError(
                f"field {self.name!r}: statistic {self.source!r} is not in {STATISTICS}"
            )
        if self.kind == "history" and (self.source not in HISTORIES or self.length < 1):
            raise DataError(
                f"field {self.name!r}: a history needs a column in {HISTORIES} and length >= 1, "
                f"got {self.source!r} and {self.length}"
            )
        if self.prior < 0 or (self.prior and self.kind != "statistic"):
            raise DataError(f"field {self.name!r}: prior={self.prior} needs kind 'statistic', >= 0")
        if (self.length or self.ids_of) and self.kind != "history":
            raise DataError(f"field {self.name!r}: length and ids_of apply to history fields only")

    @property
    def source(self) -> str:
        """The column read: `column`, or `name` when `column` is empty."""
        return self.column or self.name

    @property
    def is_cat(self) -> bool:
        """Whether the field is a column of "cat" (categorical, or bucketised numeric)."""
        return self.kind == "categorical" or (
            self.kind in ("numeric", "statistic") and self.buckets > 0
        )


def default_ctr_fields(ds: Dataset, *, year_buckets: int = 0) -> list[FieldSpec]:
    """RecBole's ml-100k CTR features, for MovieLens-like data.

    user_id, item_id, then whichever of age, gender, occupation (user), year (numeric) and
    genres (multi-hot) the data set has: RecBole's (user_id, item_id, age, gender, occupation,
    release_year, genres).

    Args:
      ds: the data set whose columns decide which fields exist.
      year_buckets: when >= 2, also a bucketised "year_bucket" field with that many buckets.
    """
    fields = [FieldSpec(USER_ID, "categorical"), FieldSpec(ITEM_ID, "categorical")]
    fields += [
        FieldSpec(c, "categorical", side="user")
        for c in ("age", "gender", "occupation")
        if c in ds.user_features
    ]
    if "year" in ds.item_numeric:
        fields.append(FieldSpec("year", "numeric"))
        if year_buckets:
            fields.append(FieldSpec("year_bucket", "numeric", column="year", buckets=year_buckets))
    if "genres" in ds.item_multi_hot:
        fields.append(FieldSpec("genres", "multi_hot"))
    return fields
