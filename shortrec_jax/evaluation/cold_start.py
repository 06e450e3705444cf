"""Cold start for new items: can xDeepFM rank items it never saw in training?

The study's claim for its keyframe vectors (section 2.1.4): content features in the embedding
layer make the model hold up for new videos. The experiment holds a random share of the items
out of training entirely; every interaction with them is the test set. Three xDeepFM variants
train on the rest, everything else equal:

  "ids"      user_id and item_id only: a new item is the reserved unknown id, so the model
             can only fall back on what it knows about the user;
  "features" the default fields (user age, gender, occupation; item genres and year);
  "content"  the default fields plus a dense content vector per item (`Dataset.item_vectors`,
             projected into the embedding space), here `features.content.content_vectors`:
             genres, year and TransE embeddings of the knowledge graph; SIFT keyframe
             vectors from `features.video` take the same path for real videos.

Reported per variant on the new items: AUC of "rating >= 4" over all their interactions
(chance 0.5) and per-user AUC (each user's new items ranked among themselves).

  python -m shortrec_jax.evaluation.cold_start --config=configs/cold_start_ml100k.py
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.config_files import config_path, load_config_file, merge_overrides
from shortrec_jax.data import Dataset
from shortrec_jax.data.side_files import load_configured
from shortrec_jax.data.splits import subsample
from shortrec_jax.evaluation.deep import CTRMethod
from shortrec_jax.features.content import content_vectors
from shortrec_jax.io import write_json_atomic
from shortrec_jax.metrics import auc, gauc

VARIANTS = ("ids", "features", "content")


def cold_item_split(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset, np.ndarray]:
    """Holds a random `fraction` of the items out of training entirely.

    Returns:
      (train: interactions with the other items, test: every interaction with a held-out
       item, held_out [H] int item indices).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(ds.num_items, round(fraction * ds.num_items), replace=False))
    is_new = np.isin(ds.items, held)
    return ds.take(~is_new), ds.take(is_new), held


def variant_config(base: ConfigDict, variant: str, seed: int) -> ConfigDict:
    """The training config of one variant (see the module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
    config = ConfigDict(base.to_dict())
    config.seed = seed
    config.log.progress_bar = False
    if variant == "ids":
        config.data.user_fields = ()
        config.data.item_categorical = ()
        config.data.item_multi_hot = ()
        config.data.item_numeric = ()
    if variant == "content":
        config.data.item_dense = ("item_vectors",)
    return config


def run(config: ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Runs every (seed, variant) and writes `results.json` and `results.md` to `workdir`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ds = load_configured(config.data)
    if config.data.subsample < 1.0:
        ds = subsample(ds, config.data.subsample, seed=config.seed)
    vectors = content_vectors(ds, parts=tuple(config.content.parts), seed=config.seed)
    ds = dataclasses.replace(ds, item_vectors=vectors)
    base = load_config_file(config.train_config)
    merge_overrides(base, config.train_overrides.to_dict())
    per_seed: dict[str, dict[str, dict[str, float]]] = {v: {} for v in config.variants}
    for r in range(config.repeats):
        seed = config.seed + r
        train, test, held = cold_item_split(ds, config.held_out_fraction, seed)
        labels = (test.ratings >= base.data.label_threshold).astype(np.float32)
        for variant in config.variants:
            method = CTRMethod(
                variant_config(base, variant, seed), workdir / variant / f"seed={seed}"
            )
            method.fit(train)
            scores = method.score(test.users, test.items[:, None])[:, 0]
            per_seed[variant][str(seed)] = {
                "auc": auc(labels, scores),
                "gauc": gauc(test.users, labels, scores),
                "new_items": int(held.size),
                "test_interactions": int(test.num_interactions),
            }
            print(f"seed {seed} {variant}: {per_seed[variant][str(seed)]}", flush=True)
    summary = {
        variant: {
            metric: {
                "mean": float(np.mean([s[metric] for s in seeds.values()])),
                "std": float(np.std([s[metric] for s in seeds.values()], ddof=1))
                if len(seeds) > 1
                else 0.0,
            }
            for metric in ("auc", "gauc")
        }
        for variant, seeds in per_seed.items()
    }
    results = {"config": json.loads(config.to_json()), "repeats": per_seed, "summary": summary}
    write_json_atomic(workdir / "results.json", results)
    lines = ["| variant | AUC on new items | per-user AUC |", "| --- | --- | --- |"]
    for variant, m in summary.items():
        lines.append(
            f"| {variant} | {m['auc']['mean']:.4f} ± {m['auc']['std']:.4f} | "
            f"{m['gauc']['mean']:.4f} ± {m['gauc']['std']:.4f} |"
        )
    (workdir / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


def main() -> None:
    from absl import flags

    run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
    from absl import flags

    from shortrec_jax import cli

    cli.define_config(
        str(config_path("configs/cold_start_ml100k.py")), "Cold-start experiment config."
    )
    flags.DEFINE_string("workdir", "runs/cold_start_ml100k", "Run directory.")
    cli.run(main)
