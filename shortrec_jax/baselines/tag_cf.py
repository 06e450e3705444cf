"""Tag-weight collaborative filtering: bipartite-graph diffusion weighted by tag similarity.

Lei et al., "Collaborative filtering algorithm based on tag weight", Journal of Computer
Applications 39(3), 2019, builds item-tag, user-tag and user-user tag-weight matrices and
recommends by resource diffusion on the user-item graph; the diffusion is the hybrid of mass
diffusion and heat conduction of Zhou et al., "Solving the apparent diversity-accuracy
dilemma of recommender systems", PNAS 107(10), 2010.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from shortrec_jax.baselines.item_tokens import TOKEN_SOURCES, item_token_counts, tf_idf
from shortrec_jax.baselines.similarity import batches_by_cost, binary_matrix, rating_matrix
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.interface import Method

# Elements of the dense [B, U] user-user blocks of one scoring batch (32 MiB of float32).
_USER_BLOCK_ELEMENTS = 1 << 23


@dataclasses.dataclass(eq=False, kw_only=True)
class TagCF(Method):
    """Hybrid mass-diffusion / heat-conduction recommendation weighted by tag similarity.

    Lei et al., Journal of Computer Applications 39(3), 2019; diffusion of Zhou et al., PNAS
    2010. With a [U, I] 0/1 links (a_ui = 1 when u rated, or liked, i), degrees k_u, k_i:

      item-tag weights    w_it = tf-idf of tag t on item i (`features.tf_idf`)
      user-tag weights    p_ut = sum_i r_ui w_it / sum_i r_ui   (rating-weighted mean)
      user association    c_uv = cos(p_u, p_v)
      resource u -> v     m_uv = sum_b a_ub a_vb / k_b^lambda
      score               f_u(i) = k_i^(lambda - 1) sum_v m_uv ((1 - theta) + theta c_uv)
                                   a_vi / k_v

    With theta = 0 this is exactly Zhou et al.'s hybrid W_ib = k_i^(lambda-1) k_b^(-lambda)
    sum_v a_vi a_vb / k_v applied to u's items: lambda = 1 is mass diffusion (ProbS: each of
    u's items spreads one unit evenly over its users, who spread it evenly over their items;
    favours popular items), lambda = 0 heat conduction (HeatS: each item takes the average of
    its users, each user the average of their items; favours niche items). The tag weighting
    theta scales the resource passing through user v by v's tag affinity with u, so a user
    who watches the same kind of films (not merely some of the same films) passes on more:
    that is where the paper's user-user tag-weight matrix enters the diffusion.

    Tags: "tags" (`Dataset.item_tags`, e.g. user-written tags or video categories), "genres",
    "kg" (the entities one hop from the item's knowledge-graph entity: directors, actors,
    subjects, ...). Default: the data set's item_tags (its genres when it has none) plus the
    KG entities when it has a KG. On MovieLens 100K the item_tags are the genres.

    Attributes:
      lambda_: the hybrid parameter in [0, 1] (0.5).
      tag_weight: theta in [0, 1], how much the tag association weighs the diffusion (0.5).
      tag_sources: token sources of the tags; None = the default above.
      kg_relations: relations followed for "kg"; None follows every relation.
      like_threshold: a rating >= like_threshold is a link; None = every interaction.
    """

    uses_valid: ClassVar[bool] = False

    name: ClassVar[str] = "tag-cf"
    lambda_: float = 0.5
    tag_weight: float = 0.5
    tag_sources: Sequence[str] | None = None
    kg_relations: Sequence[str] | None = None
    like_threshold: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_ <= 1.0 or not 0.0 <= self.tag_weight <= 1.0:
            raise ValueError(
                f"lambda_={self.lambda_} and tag_weight={self.tag_weight} must be in [0, 1]"
            )
        if self.tag_sources is not None:
            unknown = [s for s in self.tag_sources if s not in TOKEN_SOURCES]
            if unknown or not self.tag_sources:
                raise ValueError(
                    f"tag_sources={tuple(self.tag_sources)!r} must be a non-empty subset of "
                    f"{TOKEN_SOURCES}"
                )

    def _sources(self, train: Dataset) -> tuple[str, ...]:
        if self.tag_sources is not None:
            return tuple(self.tag_sources)
        sources = ["tags" if train.item_tags is not None else "genres"]
        if train.kg_triples is not None and train.item_entities is not None:
            sources.append("kg")
        return tuple(sources)

    def fit(self, train: Dataset, valid: Dataset | None = None) -> TagCF:
        """Builds the links, degrees and user-tag weights from `train`; `valid` is not used."""
        ratings = rating_matrix(train)
        links = binary_matrix(ratings, self.like_threshold)  # [U, I]
        item_deg = np.asarray(links.sum(axis=0)).ravel()
        user_deg = np.asarray(links.sum(axis=1)).ravel()
        lam = self.lambda_
        positive = item_deg > 0
        # Items nobody links receive no resource; 0 instead of 0 ** negative powers.
        send = np.where(positive, np.maximum(item_deg, 1.0) ** -lam, 0.0)
        self._receive = np.where(positive, np.maximum(item_deg, 1.0) ** (lam - 1.0), 0.0)
        self._links_sent = (links @ sp.diags_array(send)).tocsr()  # a_ub / k_b^lambda
        self._links_t = links.T.tocsr()  # [I, U]
        per_user = np.divide(1.0, user_deg, out=np.zeros_like(user_deg), where=user_deg > 0)
        self._spread_t = (sp.diags_array(per_user) @ links).T.tocsr()  # [I, U] a_vi / k_v

        counts, _ = item_token_counts(train, self._sources(train), self.kg_relations)
        item_tags = tf_idf(counts)  # [I, T]
        totals = np.asarray(ratings.sum(axis=1)).ravel()
        inv_totals = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals != 0)
        mixing = (sp.diags_array(inv_totals) @ ratings).tocsr()  # [U, I] r_ui / sum_i r_ui
        # p_u . p_v through the smaller inner dimension: the T tags (P P^T), or the I items
        # (M (W W^T) M^T with M the rating mixing above and W W^T the items' tag Gram matrix):
        # with thousands of KG entities as tags the second is far cheaper.
        if item_tags.shape[1] <= item_tags.shape[0]:
            left = (mixing @ item_tags).tocsr()  # [U, T] p_u
            right = left.T.tocsr()
        else:
            left = (mixing @ (item_tags @ item_tags.T)).tocsr()  # [U, I] rows of M W W^T
            right = mixing.T.tocsr()  # [I, U]
        norms = np.sqrt(np.asarray(left.multiply(right.T).sum(axis=1)).ravel())
        self._inv_norms = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        self._assoc_left, self._assoc_right = left, right
        return self

    def association(self, users: np.ndarray) -> np.ndarray:
        """c_uv, the cosine of the user-tag weight vectors: [B] users -> [B, U] float32."""
        users = np.asarray(users, dtype=np.int64)
        dots = (self._assoc_left[users] @ self._assoc_right).toarray()
        return (dots * self._inv_norms[users, None] * self._inv_norms[None, :]).astype(np.float32)

    def score_all(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        num_users = self._links_t.shape[1]
        out = np.zeros((users.size, self._links_t.shape[0]), dtype=np.float32)
        theta = self.tag_weight
        for part in batches_by_cost(np.full(users.size, num_users), _USER_BLOCK_ELEMENTS):
            batch = users[part]
            resource = (self._links_sent[batch] @ self._links_t).toarray()  # [b, U] m_uv
            if theta > 0:
                resource *= (1.0 - theta) + theta * self.association(batch)  # [b, U]
            # [I, U] @ [U, b] -> [I, b]: what the users pass on to each item.
            received = (self._spread_t @ resource.T).T
            out[part] = received * self._receive
        return out
