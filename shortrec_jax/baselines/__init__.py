"""The study's traditional methods and the floors every method must clear, in NumPy/SciPy.

Every class is a `shortrec_jax.interface.Method` built from keyword hyperparameters with
documented defaults, e.g. `BASELINES["item-cf"](k=30, shrink=10.0).fit(train)`. The defaults
of the neighbourhood methods suit the study's protocol (rank each user's held-out items); for
full-catalogue top-K use aggregate="sum" (see `cosine_cf`), e.g.
`ItemCF(values="binary", aggregate="sum", k=None, max_neighbours=100)`.
"""

from shortrec_jax.baselines.cosine_cf import ContentCF, ItemCF, UserCF
from shortrec_jax.baselines.ease import DLAE, EASE
from shortrec_jax.baselines.kg import KnowledgeGraphCF, TransE, train_transe
from shortrec_jax.baselines.popularity import ItemMean, Popularity, RandomRanker
from shortrec_jax.baselines.recency import RecencyItemCF
from shortrec_jax.baselines.tag_cf import TagCF
from shortrec_jax.interface import Method

BASELINES: dict[str, type[Method]] = {
    "item-cf": ItemCF,
    # The study's Eq. 1 taken literally: cosine of raw ratings, weighted sum, no baseline.
    "item-cf-eq1": ItemCF,
    "user-cf": UserCF,
    "content": ContentCF,
    "kg": KnowledgeGraphCF,
    "tag-cf": TagCF,
    "pop": Popularity,
    "random": RandomRanker,
    "item-mean": ItemMean,
    "ease": EASE,
    "dlae": DLAE,
    "recency-cf": RecencyItemCF,
}

__all__ = [
    "BASELINES",
    "DLAE",
    "EASE",
    "ContentCF",
    "ItemCF",
    "ItemMean",
    "KnowledgeGraphCF",
    "Popularity",
    "RandomRanker",
    "RecencyItemCF",
    "TagCF",
    "TransE",
    "UserCF",
    "train_transe",
]
