"""shortrec-jax: personalised short-video recommendation in JAX/Flax.

xDeepFM, Wide & Deep and BERT4Rec, the traditional methods they are compared against (cosine
collaborative filtering, a knowledge-graph method, tag-weight CF), and a recall -> ranking ->
reranking pipeline, after Cao, "Research on Deep Learning-Based Personalized Recommendation
Systems", IJCSIT 4(1), 2024.
"""

__version__ = "0.1.0"
