"""Training curves from run directories: a validation metric against the epoch.

  python -m shortrec_jax.training.curves --metric=ndcg@10 --out=curve.png RUN_DIR [RUN_DIR ...]

Reads each run's `metrics.jsonl` (the "valid" records the loop writes every epoch, or every
`train.eval_every_steps` steps at a fractional epoch) and draws one line per run. A resumed
run logs some validations twice; the last record of an epoch value wins.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from shortrec_jax.io import write_atomic
from shortrec_jax.training.logger import read_jsonl


def validation_curve(workdir: str | Path, metric: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of a validation metric, one value per validation, in epoch order."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{workdir} has no metrics.jsonl")
    by_epoch: dict[float, float] = {}
    for record in read_jsonl(path):
        if record.get("kind") == "valid" and metric in record:
            by_epoch[round(float(record["epoch"]), 6)] = float(record[metric])
    if not by_epoch:
        raise ValueError(f"{path} has no validation records of {metric!r}")
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def plot_curves(workdirs: list[str | Path], metric: str, out: str | Path) -> None:
    """Draws the validation curve of every run into one PNG at `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for workdir in workdirs:
        epochs, values = validation_curve(workdir, metric)
        ax.plot(epochs, values, label=Path(workdir).name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(out, buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="+", help="run directories")
    parser.add_argument("--metric", default="ndcg@10")
    parser.add_argument("--out", default="validation_curve.png")
    args = parser.parse_args()
    plot_curves(args.workdirs, args.metric, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
