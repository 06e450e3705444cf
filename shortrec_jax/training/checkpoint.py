"""Orbax checkpoints of a run directory, and the run's config and encoders beside them.

Layout of a run directory:
  config.json        the full config of the run (written once, atomically)
  encoders/          what the model family needs to turn raw data into model inputs again
                     (feature encoder, vocabulary sizes), written once, atomically
  checkpoints/<step> one Orbax checkpoint per saved step: "state" (TrainState) and "meta"
                     (JSON: epoch, metrics, best so far, early-stopping counter)
  metrics.jsonl      one JSON object per logged event; events.out.tfevents.* for TensorBoard

Resume order at start-up: restore the latest complete checkpoint if there is one (Orbax
writes each step to a temporary folder and renames it when complete, so a half-written step
is never listed), otherwise initialise from the seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from ml_collections import ConfigDict

PyTree = Any


def config_to_json(config: ConfigDict) -> dict[str, Any]:
    """The config as plain JSON types (tuples become lists)."""
    return json.loads(config.to_json())


class Checkpointer:
    """One Orbax `CheckpointManager` per run: keep the last N steps and the best one.

    Args:
      workdir: the run directory.
      keep: how many of the latest checkpoints to keep.
      best_metric: the validation metric that picks the best checkpoint (kept as well).
      best_mode: "max" or "min".
      async_save: save in a background thread while training goes on.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        keep: int = 2,
        best_metric: str = "auc",
        best_mode: str = "max",
        async_save: bool = True,
    ) -> None:
        if keep < 1:
            raise ValueError(f"checkpoint.keep must be >= 1, got {keep}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
        self.best_metric = best_metric
        policies = ocp.checkpoint_managers
        # With a best_fn alone, max_to_keep would keep the N best, not the latest: combine a
        # LatestN and a BestN policy to keep both.
        options = ocp.CheckpointManagerOptions(
            best_fn=self._metric,
            best_mode=best_mode,
            preservation_policy=policies.AnyPreservationPolicy(
                [
                    policies.LatestN(n=keep),
                    # Mid-epoch saves carry no validation metrics: only LatestN keeps them.
                    policies.BestN(
                        get_metric_fn=self._metric,
                        reverse=best_mode == "min",
                        n=1,
                        keep_checkpoints_without_metrics=False,
                    ),
                ]
            ),
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.directory = Path(workdir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def _metric(self, metrics: dict[str, float]) -> float:
        return float(metrics[self.best_metric])

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(
        self,
        step: int,
        state: PyTree,
        meta: dict[str, Any],
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Saves the state and JSON meta of `step`, with the metrics that rank checkpoints
        (None for a mid-epoch save, which is never chosen as the best)."""
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            metrics=None if metrics is None else {k: float(v) for k, v in metrics.items()},
        )

    def restore(self, step: int, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any]]:
        """Restores `step` onto the shardings of `abstract_state`.

        Args:
          step: a saved step.
          abstract_state: the state's `jax.ShapeDtypeStruct` tree with target shardings
            (from `abstract_like`), which is what lets a checkpoint move to another device
            count.
        """
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["meta"])

    def wait(self) -> None:
        """Blocks until every asynchronous save has finished."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_like(tree: PyTree, sharding: jax.sharding.Sharding) -> PyTree:
    """Shape/dtype structs of `tree` (arrays or structs) placed on `sharding`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
