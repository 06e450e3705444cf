"""Content vectors for data sets without videos: genres, year and knowledge-graph embeddings.

The study feeds a 128-d SIFT keyframe vector of each video into xDeepFM's embedding layer, so
that new videos, which have no interactions yet, still have a representation. MovieLens has
no videos; what it has per movie is its genres, its year and its place in the Freebase
knowledge graph. `content_vectors` turns those into one dense vector per item that plays the
same role: it goes into `Dataset.item_vectors` and from there into the xDeepFM encoder's
dense field, exactly as SIFT vectors from `shortrec_jax.features.video` would.

Only side information is used, never interactions, so a vector exists for every item,
including items held out of training entirely.
"""

from __future__ import annotations

import numpy as np

from shortrec_jax.baselines.kg import train_transe
from shortrec_jax.data.dataset import DataError, Dataset


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def genre_block(ds: Dataset) -> np.ndarray:
    """[I, G] float32: the multi-hot "genres" of each item, rows scaled to unit length."""
    genres = ds.genres()
    if genres is None:
        raise DataError(f"{ds.name}: no 'genres' item column for content vectors")
    vocab = genres.vocabulary()
    out = np.zeros((ds.num_items, vocab.size), dtype=np.float32)
    out[genres.row_ids(), np.searchsorted(vocab, genres.values)] = 1.0
    return _unit_rows(out)


def year_block(ds: Dataset) -> np.ndarray:
    """[I, 1] float32: the standardised year (0 where unknown), over the whole catalogue."""
    year = ds.item_numeric.get("year")
    if year is None:
        raise DataError(f"{ds.name}: no 'year' item column for content vectors")
    known = ~np.isnan(year)
    mean, std = year[known].mean(), max(float(year[known].std()), 1e-6)
    return np.where(known, (year - mean) / std, 0.0).astype(np.float32)[:, None]


def kg_block(ds: Dataset, *, dim: int = 32, epochs: int = 10, seed: int = 0) -> np.ndarray:
    """[I, dim] float32: each linked item's TransE entity embedding (zeros without a link).

    TransE is trained here on the whole knowledge graph (the KG method's `train_transe`), so
    items connected through directors, actors or subjects get nearby vectors.
    """
    if ds.kg_triples is None or ds.item_entities is None:
        raise DataError(f"{ds.name}: no knowledge graph for content vectors")
    entities, entity_index = np.unique(ds.kg_triples[:, [0, 2]], return_inverse=True)
    relations, relation_index = np.unique(ds.kg_triples[:, 1], return_inverse=True)
    entity_index = entity_index.reshape(-1, 2)
    triples = np.stack([entity_index[:, 0], relation_index.ravel(), entity_index[:, 1]], axis=1)
    model = train_transe(triples, entities.size, relations.size, dim=dim, epochs=epochs, seed=seed)
    pos = np.searchsorted(entities, ds.item_entities)
    linked = (ds.item_entities != "") & (pos < entities.size)
    linked &= entities[np.minimum(pos, entities.size - 1)] == ds.item_entities
    out = np.zeros((ds.num_items, dim), dtype=np.float32)
    out[linked] = model.entity[pos[linked]]
    return _unit_rows(out)


def content_vectors(
    ds: Dataset,
    *,
    parts: tuple[str, ...] = ("genres", "year", "kg"),
    kg_dim: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """One content vector per item from the named parts, concatenated.

    Args:
      ds: the data set (side information only is read).
      parts: any of "genres", "year", "kg".
      kg_dim: the TransE embedding size.
      seed: seeds TransE.

    Returns:
      [I, D] float32, ready for `dataclasses.replace(ds, item_vectors=...)`.
    """
    blocks = {
        "genres": lambda: genre_block(ds),
        "year": lambda: year_block(ds),
        "kg": lambda: kg_block(ds, dim=kg_dim, seed=seed),
    }
    unknown = sorted(set(parts) - set(blocks))
    if unknown or not parts:
        raise ValueError(
            f"content parts must be a non-empty subset of {sorted(blocks)}, got {parts}"
        )
    return np.concatenate([blocks[p]() for p in parts], axis=1)
