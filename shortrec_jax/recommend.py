"""Recommends from trained runs: `python -m shortrec_jax.recommend --ranker_workdir=RUN --user=1`.

Flags (one ranking model: --ranker_workdir or --workdir):
  --ranker_workdir    a trained ranker's run directory (`python -m
                      shortrec_jax.pipeline.train_ranker`): ranks by the model's own score.
  --workdir           an xDeepFM (or Wide & Deep) run directory: ranks by P(like) x the
                      recall share (see pipeline/config.py's RankConfig).
  --bert4rec_workdir  a BERT4Rec run directory for a sequence recaller (optional).
  --sequence_workdirs sequence run directories (BERT4Rec, SASRec), comma-separated: one
                      recaller each, named by its model (optional).
  --user              a raw user id; one the data set does not know is a new user.
  --history           raw item ids, oldest first, comma-separated: the live history.
  --demographics      user features of the ranking model, e.g. age=24,gender=F.
  --k                 list length.
  --stages            recall | recall+rank | recall+rank+rerank ("" = the pipeline config's).
  --pipeline          the pipeline's knobs, e.g. --pipeline.rerank.mmr_lambda=0.5
                      (see shortrec_jax/pipeline/config.py).

The data set is the ranking run's data source (its data section), every interaction of it.
Prints one Markdown table: each item's title, the final score and every stage's score, and
which recallers proposed it. The logic lives in `shortrec_jax.pipeline`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags
from ml_collections import config_flags

from shortrec_jax import cli
from shortrec_jax.pipeline.config import DEFAULT_K, STAGES, PipelineConfig, config_dict
from shortrec_jax.pipeline.recommender import Recommendation

# Characters of a title shown in the table.
TITLE_WIDTH = 40


def parse_demographics(pairs: Sequence[str]) -> dict[str, str]:
    """["age=24", "gender=F"] -> {"age": "24", "gender": "F"}; a pair without "=" fails."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--demographics entry {pair!r} must be column=value")
        out[key.strip()] = value.strip()
    return out


def format_table(recs: Sequence[Recommendation], recallers: Sequence[str]) -> str:
    """A Markdown table: rank, item, title, final score, recall (fused and per recaller),
    rank and rerank scores ("-" where a stage did not run or a recaller did not propose)."""
    columns = ["#", "item", "title", "score", "recall", *recallers, "rank", "rerank"]

    def number(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}g}"

    rows = []
    for position, rec in enumerate(recs, start=1):
        title = rec.title if len(rec.title) <= TITLE_WIDTH else rec.title[: TITLE_WIDTH - 1] + "…"
        rows.append(
            [
                str(position),
                rec.item_id,
                title,
                number(rec.score),
                number(rec.recall_score),
                *(number(rec.recall_scores.get(name)) for name in recallers),
                number(rec.rank_score),
                number(rec.rerank_score),
            ]
        )
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join(lines)


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so importing this module
    defines none that could clash with another program's)."""
    flags.DEFINE_string("workdir", "", "xDeepFM run directory (the ranking model).")
    flags.DEFINE_string("ranker_workdir", "", "Trained ranker run directory (the ranking model).")
    flags.DEFINE_string("bert4rec_workdir", "", "BERT4Rec run directory (optional).")
    flags.DEFINE_list("sequence_workdirs", [], "Sequence run directories (BERT4Rec, SASRec).")
    flags.DEFINE_string("user", "", "Raw user id.")
    flags.DEFINE_list("history", [], "Raw item ids, oldest first.")
    flags.DEFINE_list("demographics", [], "column=value pairs, e.g. age=24.")
    flags.DEFINE_integer("k", DEFAULT_K, "List length.")
    flags.DEFINE_enum("stages", "", ["", *STAGES], "Stages to run.")
    config_flags.DEFINE_config_dict("pipeline", config_dict(), "Pipeline knobs.")


def main() -> int:
    values = flags.FLAGS
    if not values.user and not values.history:
        raise app.UsageError("give --user, --history, or both")
    if bool(values.workdir) == bool(values.ranker_workdir):
        raise app.UsageError("give one ranking model: --workdir (xDeepFM) or --ranker_workdir")
    from shortrec_jax.pipeline.recommender import Recommender

    try:
        demographics = parse_demographics(values.demographics)
        config = PipelineConfig.from_dict(values.pipeline)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    rec = Recommender.from_runs(
        values.workdir or None,
        sequence_workdir=[p for p in [values.bert4rec_workdir, *values.sequence_workdirs] if p],
        ranker_workdir=values.ranker_workdir or None,
        config=config,
    )
    user = values.user or None
    history = values.history or None
    try:
        recs = rec.recommend(user, history, values.k, demographics, stages=values.stages or None)
    except ValueError as e:  # a bad k, unknown history items or demographic fields
        print(f"error: {e}", file=sys.stderr)
        return 2
    request = rec.resolve(user, history)
    if user is None:
        who = "anonymous"
    else:
        who = f"new user {user}" if request.user < 0 else f"user {user}"
    print(
        f"{who}, {request.recall.history.size} items of history; stages "
        f"{values.stages or config.stages}; ranker {rec.ranking_model}; recallers "
        f"{', '.join(rec.recallers)}\n"
    )
    print(format_table(recs, rec.recallers))
    return 0


if __name__ == "__main__":
    define_flags()
    cli.run(main)
