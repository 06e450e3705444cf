"""The optimiser and learning-rate schedule, built from the config's `train` section."""

from __future__ import annotations

import optax
from ml_collections import ConfigDict

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear")


def learning_rate_schedule(train: ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 over `warmup_steps`, then constant, cosine or linear decay.

    Args:
      train: needs learning_rate, warmup_steps, schedule, final_lr_fraction.
      total_steps: the steps the run will take (decay reaches its end there).
    """
    if train.schedule not in SCHEDULES:
        raise ValueError(f"train.schedule={train.schedule!r} is not one of {SCHEDULES}")
    if train.learning_rate <= 0:
        raise ValueError(f"train.learning_rate must be > 0, got {train.learning_rate}")
    peak = train.learning_rate
    warmup = max(0, min(int(train.warmup_steps), total_steps))
    rest = max(1, total_steps - warmup)
    end = peak * train.final_lr_fraction
    if train.schedule == "constant":
        decay = optax.constant_schedule(peak)
    elif train.schedule == "cosine":
        decay = optax.cosine_decay_schedule(peak, rest, alpha=train.final_lr_fraction)
    else:
        decay = optax.linear_schedule(peak, end, rest)
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def make_optimizer(train: ConfigDict, total_steps: int) -> optax.GradientTransformation:
    """Gradient clipping -> L2 -> Adam or AdamW with the schedule.

    `l2` is the L2 regularisation of the xDeepFM paper: it adds `l2 * w` to each gradient,
    the gradient of `l2 / 2 * ||w||^2` in the loss, before Adam's scaling (coupled). AdamW's
    `weight_decay` instead shrinks the weights after the scaling (decoupled, Loshchilov and
    Hutter 2019); use one or the other.

    Args:
      train: needs optimizer, learning_rate, schedule, warmup_steps, final_lr_fraction,
        clip_norm (0 = off), l2, weight_decay, b1, b2, eps.
      total_steps: steps in the whole run.
    """
    if train.optimizer not in OPTIMIZERS:
        raise ValueError(f"train.optimizer={train.optimizer!r} is not one of {OPTIMIZERS}")
    if train.optimizer == "adam" and train.weight_decay:
        raise ValueError("train.weight_decay is AdamW's; set train.optimizer='adamw' or use l2")
    schedule = learning_rate_schedule(train, total_steps)
    parts = []
    if train.clip_norm:
        parts.append(optax.clip_by_global_norm(train.clip_norm))
    if train.l2:
        parts.append(optax.add_decayed_weights(train.l2))
    if train.optimizer == "adam":
        parts.append(optax.adam(schedule, b1=train.b1, b2=train.b2, eps=train.eps))
    else:
        parts.append(
            optax.adamw(
                schedule, b1=train.b1, b2=train.b2, eps=train.eps, weight_decay=train.weight_decay
            )
        )
    return optax.chain(*parts)
