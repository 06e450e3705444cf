"""Item side information as sparse matrices: genre and tag bags, knowledge-graph neighbours.

Content-based CF, tag-weight CF and the knowledge-graph method all describe an item by a bag
of tokens (genres, user tags, the entities one hop from the item's entity in the knowledge
graph); this module turns a `Dataset`'s side information into [I, V] count matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from shortrec_jax.baselines.similarity import ragged_arange
from shortrec_jax.data.dataset import Dataset

#: The token sources an item bag can be built from.
TOKEN_SOURCES = ("genres", "tags", "kg")


def item_kg_edges(
    dataset: Dataset, relations: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (item, relation, entity) edges one hop from each item's linked entity.

    A triple (h, r, t) gives an edge (item of h, r, t) and an edge (item of t, r, h). Knowledge
    graphs such as Freebase store most facts twice, once per direction
    (film.film.directed_by and film.director.film); an (item, entity) pair is therefore kept
    once, with the relation of the triple in which the item is the head when there is one.

    Args:
      dataset: a data set with `kg_triples` and `item_entities`.
      relations: relation names to follow; None follows every relation.

    Returns:
      (items [M] int64, relations [M] str, entities [M] str), sorted by item, then entity.
    """
    if dataset.kg_triples is None or dataset.item_entities is None:
        raise ValueError(
            f"data set {dataset.name!r} has no knowledge graph (kg_triples and item_entities)"
        )
    triples = dataset.kg_triples
    if relations is not None:
        unknown = sorted(set(relations) - set(np.unique(triples[:, 1]).tolist()))
        if unknown:
            raise ValueError(
                f"relations {unknown} are not in the knowledge graph of {dataset.name!r}"
            )
        triples = triples[np.isin(triples[:, 1], np.asarray(relations))]
    head_rows, head_items = _join(triples[:, 0], dataset.item_entities)
    tail_rows, tail_items = _join(triples[:, 2], dataset.item_entities)
    items = np.concatenate([head_items, tail_items])
    rels = np.concatenate([triples[head_rows, 1], triples[tail_rows, 1]])
    ents = np.concatenate([triples[head_rows, 2], triples[tail_rows, 0]])
    vocab, codes = np.unique(ents, return_inverse=True)
    key = items * max(1, vocab.size) + codes
    # np.unique returns the first occurrence of each pair, and the head-side edges come first.
    _, first = np.unique(key, return_index=True)
    return items[first], rels[first], ents[first]


def token_counts(
    rows: np.ndarray, tokens: np.ndarray, num_rows: int
) -> tuple[sp.csr_array, np.ndarray]:
    """Counts of each token in each row.

    Args:
      rows: [M] int row of each occurrence.
      tokens: [M] str token of each occurrence.
      num_rows: R.

    Returns:
      (counts [R, V] float32 CSR, vocabulary [V] str, sorted).
    """
    vocab, codes = np.unique(tokens, return_inverse=True)
    counts = sp.coo_array(
        (np.ones(rows.size, np.float32), (rows.astype(np.int64), codes.astype(np.int64))),
        shape=(num_rows, vocab.size),
    ).tocsr()  # sums the duplicates: a token twice in a row counts 2
    return counts, vocab


def item_token_counts(
    dataset: Dataset, sources: Sequence[str], kg_relations: Sequence[str] | None = None
) -> tuple[sp.csr_array, np.ndarray]:
    """One bag of tokens per item, pooled over several sources.

    Genres and user tags share one namespace (a genre given both as a genre and as a tag
    counts twice); KG entities are prefixed with "kg:" so an entity id never merges with a tag.

    Args:
      dataset: the data set (only its item side information is read).
      sources: names from TOKEN_SOURCES.
      kg_relations: relations followed for the "kg" source; None follows all.

    Returns:
      (counts [I, V] float32 CSR, vocabulary [V] str).
    """
    rows, tokens = [], []
    for source in sources:
        if source == "genres":
            ragged = dataset.genres()
            if ragged is None:
                raise ValueError(f"data set {dataset.name!r} has no item_multi_hot['genres']")
            rows.append(ragged.row_ids())
            tokens.append(ragged.values.astype(np.str_))
        elif source == "tags":
            if dataset.item_tags is None:
                raise ValueError(f"data set {dataset.name!r} has no item_tags")
            rows.append(dataset.item_tags.row_ids())
            tokens.append(dataset.item_tags.values.astype(np.str_))
        elif source == "kg":
            items, _, entities = item_kg_edges(dataset, kg_relations)
            rows.append(items)
            tokens.append(np.char.add("kg:", entities.astype(np.str_)))
        else:
            raise ValueError(f"token source {source!r} is not one of {TOKEN_SOURCES}")
    if not rows:
        raise ValueError("at least one token source is needed")
    return token_counts(np.concatenate(rows), np.concatenate(tokens), dataset.num_items)


def tf_idf(counts: sp.csr_array) -> sp.csr_array:
    """Term frequency x inverse document frequency of a [R, V] count matrix.

    tf = count / (tokens in the row); idf = log(R / rows holding the token), so a token found
    in every row weighs 0: it tells the rows apart no more than no token does.

    Returns:
      [R, V] float32 CSR, same pattern.
    """
    num_rows = counts.shape[0]
    row_totals = np.asarray(counts.sum(axis=1)).ravel()
    doc_freq = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log(num_rows / np.maximum(doc_freq, 1))
    out = counts.copy()
    row_of = np.repeat(np.arange(num_rows), np.diff(counts.indptr))
    out.data = (counts.data / row_totals[row_of] * idf[counts.indices]).astype(np.float32)
    return out


def _join(keys: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (position in keys, position in table) with equal non-empty strings.

    Args:
      keys: [T] str.
      table: [I] str, "" = no entry.

    Returns:
      (key positions [M] int64, table positions [M] int64).
    """
    linked = np.flatnonzero(table != "")
    order = linked[np.argsort(table[linked], kind="stable")]
    sorted_table = table[order]
    lo = np.searchsorted(sorted_table, keys, side="left")
    hi = np.searchsorted(sorted_table, keys, side="right")
    key_pos = np.repeat(np.arange(keys.size, dtype=np.int64), hi - lo)
    return key_pos, order[ragged_arange(lo, hi)].astype(np.int64)
