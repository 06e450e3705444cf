"""What dropout's random numbers cost a BERT4Rec training step.

  python -m benchmarks.dropout [--rounds=2] [--steps=60]

Times the trainer's step on the shipped BERT4Rec config (`measure.train_throughput`) in one
process with three dropouts, taking turns round after round so that a change in the machine's
load falls on all of them alike: the library's (`shortrec_jax.models.transformer.dropout`,
16 random bits per element), `jax.random.bernoulli` (32 bits per element, what
`flax.linen.Dropout` draws), and none (every dropout rate 0: the model's arithmetic alone).
A row gives the best round's step time and its ratio to the library's. The process takes
`train.py`'s CPU layout (`shortrec_jax.platform.configure_cpu`) before JAX starts.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

VARIANTS = ("16-bit draws", "bernoulli", "no dropout")


def bernoulli_dropout(x: Any, rate: float, rng: Any) -> Any:
    """Inverted dropout with one 32-bit draw per element (flax.linen.Dropout's arithmetic)."""
    import jax
    import jax.numpy as jnp

    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


@contextlib.contextmanager
def _dropout(variant: str) -> Iterator[None]:
    """The transformer's dropout replaced for the duration (each measurement traces afresh)."""
    from shortrec_jax.models import transformer

    original = transformer.dropout
    if variant == "bernoulli":
        transformer.dropout = bernoulli_dropout
    try:
        yield
    finally:
        transformer.dropout = original


def measure_variant(variant: str, steps: int, peak: dict[str, Any]) -> dict[str, Any]:
    """`measure.train_throughput` of the shipped BERT4Rec config with one dropout variant."""
    from benchmarks import measure

    config = measure.make_config("bert4rec", measure.DATASETS["ml-100k"], "float32")
    if variant == "no dropout":
        config.model.dropout = 0.0
        config.model.attention_dropout = 0.0
    with _dropout(variant):
        return measure.train_throughput(config, steps=steps, warmup=3, peak=peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times each variant is measured")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    args = parser.parse_args()
    from shortrec_jax import platform

    layout = platform.configure_cpu()  # before anything starts JAX
    from benchmarks import measure
    from benchmarks.common import git_commit, machine_description, print_table

    print(f"commit {git_commit()}; machine: {machine_description()}; CPU layout: {layout}")
    peak = measure.peak_flops("float32")
    best: dict[str, dict[str, Any]] = {}
    for round_ in range(args.rounds):
        for variant in VARIANTS:
            result = measure_variant(variant, args.steps, peak)
            print(f"round {round_ + 1} {variant}: {result['step_s'] * 1e3:.1f} ms per step")
            if variant not in best or result["step_s"] < best[variant]["step_s"]:
                best[variant] = {"dropout": variant, **result}
    rows = [best[v] for v in VARIANTS]
    for row in rows:
        row["step_ms"] = row["step_s"] * 1e3
        row["ratio"] = row["step_s"] / rows[0]["step_s"]
    print(f"machine at the end: {machine_description()}")
    print_table(
        f"BERT4Rec training step by dropout (shipped config, ml-100k; best of {args.rounds} "
        "rounds)",
        rows,
        ["dropout", "step_ms", "ratio", "per_second", "cores_busy"],
    )


if __name__ == "__main__":
    main()
