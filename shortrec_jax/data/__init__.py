"""Host-side data: loading, splits, feature encoding, sequences and batching (NumPy only)."""

from shortrec_jax.data.dataset import DataError, Dataset, Ragged
from shortrec_jax.data.sources import SOURCES, load

__all__ = ["SOURCES", "DataError", "Dataset", "Ragged", "load"]
