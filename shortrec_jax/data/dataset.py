"""The in-memory data set every loader produces and every later stage reads.

A `Dataset` is plain NumPy: integer-indexed interactions plus side information and the raw-id
vocabularies. Users and items are indexed contiguously from 0 in the order of their first
appearance in the source files, so the same files always give the same indices. Index 0 of an
encoder (the reserved unknown/padding id) is a concern of `features.py` and `sequences.py`, not
of this class: here every index is a real user or item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np


class DataError(ValueError):
    """Bad input data: the message names the file, row or key and what was expected."""


@dataclasses.dataclass(frozen=True)
class Ragged:
    """A list of variable-length string lists, stored flat (CSR layout).

    Row `i` is `values[offsets[i]:offsets[i + 1]]`.

    Attributes:
      values: [T] str, every token of every row, row after row.
      offsets: [R + 1] int64, start of each row in `values`; `offsets[0] == 0`.
    """

    values: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or self.offsets.size == 0 or self.offsets[0] != 0:
            raise DataError(f"Ragged offsets must be 1-d and start at 0, got {self.offsets[:3]}")
        if self.offsets[-1] != self.values.size or np.any(np.diff(self.offsets) < 0):
            raise DataError(
                f"Ragged offsets must be non-decreasing and end at len(values)={self.values.size}"
            )

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[str]]) -> Ragged:
        """Builds from a Python list of token lists."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.array([t for r in rows for t in r], dtype=np.str_)
        if values.size == 0:
            values = np.zeros(0, dtype="<U1")
        return cls(values=values, offsets=offsets)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def row(self, i: int) -> np.ndarray:
        """Tokens of row `i`: [n_i] str."""
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def to_lists(self) -> list[list[str]]:
        return [self.row(i).tolist() for i in range(len(self))]

    def lengths(self) -> np.ndarray:
        """[R] int64, the number of tokens in each row."""
        return np.diff(self.offsets)

    def row_ids(self) -> np.ndarray:
        """[T] int64, the row each token of `values` belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths())

    def vocabulary(self) -> np.ndarray:
        """Sorted distinct tokens: [V] str."""
        return np.unique(self.values)

    def take(self, rows: np.ndarray) -> Ragged:
        """The rows `rows` ([R'] int), in that order."""
        return Ragged.from_lists([self.row(int(i)).tolist() for i in rows])


def _index_of(raw_ids: np.ndarray) -> dict[str, int]:
    return {str(r): i for i, r in enumerate(raw_ids.tolist())}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Interactions and side information, indexed by contiguous integers.

    Attributes:
      name: where the data came from, e.g. "ml-100k".
      users: [N] int32, user index of each interaction, in [0, num_users).
      items: [N] int32, item index of each interaction, in [0, num_items).
      ratings: [N] float32, explicit rating, or the implicit label/strength (e.g. watch ratio).
      timestamps: [N] int64, unix seconds (0 where the source has no time).
      user_ids: [U] str, raw id of each user index.
      item_ids: [I] str, raw id of each item index.
      user_features: categorical user columns, name -> [U] str ("" = missing).
      item_categorical: categorical item columns, name -> [I] str ("" = missing).
      item_multi_hot: multi-valued item columns (e.g. genres), name -> Ragged with I rows.
      item_numeric: numeric item columns (e.g. year, duration), name -> [I] float32,
        NaN where the source gives no value (encoders impute; ratings may never be NaN).
      item_titles: [I] str, a human-readable name of each item ("" where unknown).
      item_tags: I rows of free-form tags (genres, user-written tags, video categories).
      kg_triples: [T, 3] str, (head entity, relation, tail entity) of a knowledge graph.
      item_entities: [I] str, the KG entity linked to each item ("" = no link).
      item_vectors: optional [I, D] float32 dense content vectors (e.g. 128-d SIFT vectors).
      extra: source-specific per-interaction columns, name -> [N] array
        (e.g. KuaiRec's play_duration and watch_ratio).
      dropped: rows the loader dropped by its documented policies, reason -> count
        (e.g. "duplicate interactions": 12); empty when nothing was dropped.
    """

    name: str
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_features: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    item_categorical: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    item_multi_hot: Mapping[str, Ragged] = dataclasses.field(default_factory=dict)
    item_numeric: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    item_titles: np.ndarray | None = None
    item_tags: Ragged | None = None
    kg_triples: np.ndarray | None = None
    item_entities: np.ndarray | None = None
    item_vectors: np.ndarray | None = None
    extra: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    dropped: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def num_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def num_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def num_interactions(self) -> int:
        return int(self.users.shape[0])

    # -- raw id <-> index ----------------------------------------------------------------------

    def user_index(self, raw_id: str | int) -> int:
        """Index of the raw user id; raises KeyError naming the id when unknown."""
        return self._raw_index("user", raw_id)

    def item_index(self, raw_id: str | int) -> int:
        """Index of the raw item id; raises KeyError naming the id when unknown."""
        return self._raw_index("item", raw_id)

    def _raw_index(self, kind: str, raw_id: str | int) -> int:
        """Index of a raw "user" or "item" id, by a table built on first use and kept."""
        cache = f"_{kind}_index"
        table = self.__dict__.get(cache)
        if table is None:
            table = _index_of(getattr(self, f"{kind}_ids"))
            object.__setattr__(self, cache, table)
        try:
            return table[str(raw_id)]
        except KeyError:
            raise KeyError(f"unknown {kind} id {raw_id!r} in data set {self.name!r}") from None

    # -- derived views -------------------------------------------------------------------------

    def take(self, rows: np.ndarray) -> Dataset:
        """A data set with only the interactions `rows` ([M] int or [N] bool).

        Vocabularies and side information are kept whole, so indices stay comparable between
        the parts of a split.
        """
        extra = {k: v[rows] for k, v in self.extra.items()}
        return dataclasses.replace(
            self,
            users=self.users[rows],
            items=self.items[rows],
            ratings=self.ratings[rows],
            timestamps=self.timestamps[rows],
            extra=extra,
        )

    def genres(self) -> Ragged | None:
        """The item genres (the multi-hot column named "genres"), if the source has them."""
        return self.item_multi_hot.get("genres")

    def summary(self) -> str:
        """A few lines that describe the data set, for logs and the README's first command."""
        lines = [
            f"{self.name}: {self.num_interactions:,} interactions, "
            f"{self.num_users:,} users, {self.num_items:,} items",
        ]
        if self.num_interactions:
            r = self.ratings
            density = self.num_interactions / max(1, self.num_users * self.num_items)
            lines.append(
                f"  ratings {r.min():g}..{r.max():g} (mean {r.mean():.3f}), density {density:.4%}"
            )
        if self.user_features:
            lines.append(f"  user features: {', '.join(self.user_features)}")
        item_cols = [*self.item_categorical, *self.item_multi_hot, *self.item_numeric]
        if item_cols:
            lines.append(f"  item features: {', '.join(item_cols)}")
        genres = self.genres()
        if genres is not None:
            lines.append(f"  genres: {genres.vocabulary().size} labels")
        if self.item_tags is not None:
            lines.append(f"  item tags: {self.item_tags.vocabulary().size} distinct")
        if self.kg_triples is not None:
            linked = int(np.sum(self.item_entities != "")) if self.item_entities is not None else 0
            relations = np.unique(self.kg_triples[:, 1]).size
            lines.append(
                f"  knowledge graph: {self.kg_triples.shape[0]:,} triples, {relations} relations, "
                f"{linked:,} items linked"
            )
        if self.item_vectors is not None:
            lines.append(f"  item vectors: {self.item_vectors.shape[1]}-d")
        for reason, count in self.dropped.items():
            lines.append(f"  dropped {count:,} rows: {reason}")
        return "\n".join(lines)

    # -- checks --------------------------------------------------------------------------------

    def validate(self) -> None:
        """Checks shapes, dtypes, index ranges and finiteness; raises DataError naming the field."""
        n = self.users.shape[0]
        for field, dtype in (
            ("users", np.int32),
            ("items", np.int32),
            ("ratings", np.float32),
            ("timestamps", np.int64),
        ):
            arr = getattr(self, field)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise DataError(f"{self.name}: {field} must be [N={n}], got shape {arr.shape}")
            if arr.dtype != dtype:
                raise DataError(f"{self.name}: {field} must be {np.dtype(dtype)}, got {arr.dtype}")
        if n and (self.users.min() < 0 or self.users.max() >= self.num_users):
            raise DataError(f"{self.name}: user index out of range [0, {self.num_users})")
        if n and (self.items.min() < 0 or self.items.max() >= self.num_items):
            raise DataError(f"{self.name}: item index out of range [0, {self.num_items})")
        if not np.all(np.isfinite(self.ratings)):
            bad = int(np.flatnonzero(~np.isfinite(self.ratings))[0])
            raise DataError(f"{self.name}: rating of interaction {bad} is {self.ratings[bad]}")
        for name, col in self.user_features.items():
            if col.shape != (self.num_users,):
                raise DataError(f"{self.name}: user feature {name!r} must be [U={self.num_users}]")
        for name, col in {**self.item_categorical, **self.item_numeric}.items():
            if col.shape != (self.num_items,):
                raise DataError(f"{self.name}: item feature {name!r} must be [I={self.num_items}]")
        for name, rag in self.item_multi_hot.items():
            if len(rag) != self.num_items:
                raise DataError(f"{self.name}: item feature {name!r} must have I rows")
        for name, col in self.item_numeric.items():
            if col.dtype != np.float32 or np.any(np.isinf(col)):
                raise DataError(f"{self.name}: item feature {name!r} must be finite float32")
        if self.item_tags is not None and len(self.item_tags) != self.num_items:
            raise DataError(f"{self.name}: item_tags must have I={self.num_items} rows")
        if self.kg_triples is not None and (
            self.kg_triples.ndim != 2 or self.kg_triples.shape[1] != 3
        ):
            raise DataError(f"{self.name}: kg_triples must be [T, 3], got {self.kg_triples.shape}")
        if self.item_entities is not None and self.item_entities.shape != (self.num_items,):
            raise DataError(f"{self.name}: item_entities must be [I={self.num_items}]")
        if self.item_vectors is not None:
            v = self.item_vectors
            if v.ndim != 2 or v.shape[0] != self.num_items or v.dtype != np.float32:
                raise DataError(
                    f"{self.name}: item_vectors must be [I={self.num_items}, D] float32, "
                    f"got {v.shape} {v.dtype}"
                )
            if not np.all(np.isfinite(v)):
                row = int(np.flatnonzero(~np.all(np.isfinite(v), axis=1))[0])
                raise DataError(
                    f"{self.name}: item_vectors row {row} (item {self.item_ids[row]}) is not finite"
                )
        for name, col in self.extra.items():
            if col.shape[0] != n:
                raise DataError(f"{self.name}: extra column {name!r} must have N={n} rows")
