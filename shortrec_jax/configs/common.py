"""The sections configs share: data, train, checkpoint, parallel and log; the evaluate protocols'
slices.

Each experiment's config sets its own values (batch size, learning rate, ...) through these
functions' arguments; the fields, their comments and the shared defaults live here once.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from shortrec_jax.data.side_files import side_file_config


def data(source: str = "ml-100k", *, subsample: bool = True) -> ConfigDict:
    """Where the interactions come from; each config adds its split and feature fields."""
    section = ConfigDict()
    # A source name for shortrec_jax.data.load (see shortrec_jax/data/sources.py).
    section.source = source
    # Keyword options of that source's loader (e.g. duplicates="mean", download=True).
    section.source_options = ConfigDict()
    # Video (item) and user metadata files joined by id (shortrec_jax/data/side_files.py), e.g.
    # --config.data.item_side.path=videos.csv --config.data.item_side.id_column=video_id
    # --config.data.item_side.columns=duration:numeric,category:categorical; path "" = none.
    section.item_side = side_file_config()
    section.user_side = side_file_config()
    if subsample:
        # Use this seeded fraction of the interactions (1.0 = all; smaller for quick runs).
        section.subsample = 1.0
    return section


def train(
    *,
    batch_size: int,
    num_epochs: int,
    optimizer: str,
    learning_rate: float,
    warmup_steps: int,
    weight_decay: float,
    clip_norm: float,
    b2: float,
    early_stopping_patience: int,
    log_every_steps: int,
    schedule: str = "cosine",
    eval_every_steps: int = 0,
    **extra: object,
) -> ConfigDict:
    """The optimiser, schedule and loop settings; `extra` adds a model's own fields."""
    section = ConfigDict()
    section.batch_size = batch_size
    section.num_epochs = num_epochs
    # "adam" or "adamw".
    section.optimizer = optimizer
    section.learning_rate = learning_rate
    # "constant", "cosine" or "linear" decay after a linear warm-up.
    section.schedule = schedule
    section.warmup_steps = warmup_steps
    section.final_lr_fraction = 0.05
    # L2 on every parameter, as in the xDeepFM paper (gradient += l2 * w); 0 = off.
    section.l2 = 0.0
    # AdamW's decoupled weight decay (optimizer="adamw" only).
    section.weight_decay = weight_decay
    # Gradient clipping by global norm; 0 = off.
    section.clip_norm = clip_norm
    section.b1 = 0.9
    section.b2 = b2
    section.eps = 1e-8
    # Validate, test, checkpoint-select and serve an exponential moving average of the
    # parameters with this decay per step (bias-corrected; e.g. 0.99 averages about the last
    # 100 steps); 0 = the trained parameters themselves.
    section.ema_decay = 0.0
    # Stop after this many validations without a better validation metric; 0 = never.
    section.early_stopping_patience = early_stopping_patience
    # Validate every this many steps (saving only new bests); 0 = after every epoch.
    section.eval_every_steps = eval_every_steps
    # Host synchronisation (loss check, logging) every this many steps.
    section.log_every_steps = log_every_steps
    # Steps queued on the devices before the host waits for the oldest.
    section.max_steps_in_flight = 4
    # Host batches prepared ahead in a background thread.
    section.prefetch = 2
    for key, value in extra.items():
        section[key] = value
    return section


def checkpoint() -> ConfigDict:
    """Orbax checkpointing of the run directory."""
    section = ConfigDict()
    # Keep this many latest checkpoints, plus the best one by the validation metric.
    section.keep = 2
    section.async_save = True
    # Also save every this many steps inside an epoch (0 = at epoch ends only).
    section.every_steps = 0
    return section


def parallel() -> ConfigDict:
    """Device layout."""
    section = ConfigDict()
    # Devices along the "model" mesh axis that split the rows of the vocabulary-sized tables
    # (xDeepFM's embedding and linear tables; BERT4Rec's item table and output bias, whose
    # num_items + 2 rows it must divide), for vocabularies too large for one device; must
    # divide the device count. 1 = every device holds every parameter (data parallelism).
    section.model_axis_size = 1
    return section


def log() -> ConfigDict:
    """What the trainer writes besides metrics.jsonl."""
    section = ConfigDict()
    # TensorBoard event files (written without TensorFlow).
    section.tensorboard = True
    section.progress_bar = True
    return section


def slice_options(protocol: ConfigDict) -> None:
    """Sets the beyond-accuracy slices and the scoring batch every evaluate protocol shares."""
    # List lengths of coverage, novelty, diversity and long-tail share.
    protocol.beyond_ks = (10,)
    # Cold-user slice: users with at most this many training ratings.
    protocol.cold_user_max_ratings = 20
    # Popular head = this share of the items, by training ratings; the rest is the long tail.
    protocol.head_fraction = 0.2
    # Item vectors of intra-list diversity: a multi-hot item column or "vectors".
    protocol.diversity_feature = "genres"
    # Users per scoring call.
    protocol.batch_size = 256
