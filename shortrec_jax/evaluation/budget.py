"""A CTR model trained for a number of examples rather than of epochs (Fig. 7's recipe).

The size protocol trains every method on 10%, 20%, ... of a training part. A fixed epoch
count gives a 10% share a tenth of the optimiser steps of the whole part, so a deep model
there is undertrained rather than short of data. `BudgetedCTRMethod` instead trains each
share for about the same number of examples as the whole part gets: ceil(budget / examples)
epochs of its own training examples, capped at `max_epochs`, with the config's early
stopping on the validation slice still in force (a small share that overfits stops early and
is scored from its best epoch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.evaluation.deep import CTRMethod


class BudgetedCTRMethod(CTRMethod):
    """`CTRMethod` whose epochs are set by the size of the part it is fitted on.

    Args:
      train_config: the training config; its train.num_epochs is replaced at each fit.
      workdir: as `CTRMethod`.
      example_budget: training examples to see, summed over epochs (e.g. 4 epochs of the
        whole part's 72,000 training examples: 288,000).
      max_epochs: the most epochs any fit trains.
      **options: `CTRMethod`'s (valid_fraction, score_batch, refit).
    """

    def __init__(
        self,
        train_config: ConfigDict,
        workdir: str | Path | None = None,
        *,
        example_budget: int,
        max_epochs: int,
        **options: Any,
    ) -> None:
        if example_budget < 1 or max_epochs < 1:
            raise ValueError(
                f"example_budget={example_budget} and max_epochs={max_epochs} must be >= 1"
            )
        super().__init__(train_config, workdir, **options)
        self.example_budget = example_budget
        self.max_epochs = max_epochs

    def epochs_for(self, train: Dataset, valid: Dataset | None = None) -> int:
        """The epochs a fit on `train` trains: the examples it trains on are all of `train`
        when `valid` is given, else what `valid_fraction` leaves of it."""
        examples = train.num_interactions
        if valid is None:
            examples = max(1, math.floor(examples * (1.0 - self.valid_fraction)))
        return min(self.max_epochs, max(1, math.ceil(self.example_budget / examples)))

    def fit(self, train: Dataset, valid: Dataset | None = None) -> BudgetedCTRMethod:
        self.config.train.num_epochs = self.epochs_for(train, valid)
        super().fit(train, valid)
        return self
