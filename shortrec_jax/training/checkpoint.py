"""Orbax checkpoints of a run directory, and the run's config and encoders beside them.

Layout of a run directory:
  config.json        the full config of the run (written once, atomically)
  encoders/          what the model family needs to turn raw data into model inputs again
                     (feature encoder, vocabulary sizes), written once, atomically
  checkpoints/<step> one Orbax checkpoint per saved step: "state" (TrainState), "meta"
                     (JSON: epoch, metrics, best so far, early-stopping counter) and
                     "checksums" (JSON: of every array of the state and of the meta)
  corrupt_checkpoints/<step>  steps a resumed run found corrupt and moved aside
  metrics.jsonl      one JSON object per logged event; events.out.tfevents.* for TensorBoard

Resume order at start-up: restore the newest intact checkpoint if there is one (Orbax writes
each step to a temporary folder and renames it when complete, so a half-written step is never
listed), otherwise initialise from the seed.

Integrity: a step also holds "checksums" (JSON): two 32-bit sums of the bits of every array of
the state, computed on the device when the step is saved, and a SHA-256 of the meta JSON. A
restore recomputes them and checks that the state is finite; a step that fails, or cannot be
read at all, is skipped with a one-line warning and the next older one is tried. Complete
steps whose bytes were overwritten in place are thereby never trained on or served.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from ml_collections import ConfigDict

from shortrec_jax.training.parallel import path_names

PyTree = Any
# Where a resumed run moves the checkpoints it found corrupt (beside "checkpoints", which
# must list only steps that can be saved again).
CORRUPT_DIR = "corrupt_checkpoints"
# How a failed save caused by a full disk is reported.
_NO_SPACE = "no space left on the device"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, altered since it was saved, or non-finite."""


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
        self.best_mode = best_mode
        # The one-line report of a failed save, once one has failed.
        self.failure: str | None = None
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
            self.directory, options=options, item_names=("state", "meta", "checksums")
        )

    def _metric(self, metrics: dict[str, float]) -> float:
        return float(metrics[self.best_metric])

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def steps_by_metric(self) -> list[int]:
        """The steps saved with validation metrics, the best first."""
        scored = [(self._metric(m), s) for s in self.all_steps() if (m := self.manager.metrics(s))]
        scored.sort(reverse=self.best_mode == "max")
        # Orbax's own choice first, so that ties are broken as `best_step` breaks them.
        best = self.manager.best_step()
        return sorted((s for _, s in scored), key=lambda s: s != best)

    def save(
        self,
        step: int,
        state: PyTree,
        meta: dict[str, Any],
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Saves the state and JSON meta of `step`, with the metrics that rank checkpoints
        (None for a mid-epoch save, which is never chosen as the best), and their checksums."""
        self.check_saves()
        checksums = {"state": state_checksums(state), "meta": meta_checksum(meta)}
        try:
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state),
                    meta=ocp.args.JsonSave(meta),
                    checksums=ocp.args.JsonSave(checksums),
                ),
                metrics=None if metrics is None else {k: float(v) for k, v in metrics.items()},
            )
        except Exception as e:
            raise CheckpointError(self._save_failure(e)) from e

    def restore(self, step: int, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any]]:
        """Restores `step` onto the shardings of `abstract_state`, verified.

        Args:
          step: a saved step.
          abstract_state: the state's `jax.ShapeDtypeStruct` tree with target shardings
            (from `abstract_like`), which is what lets a checkpoint move to another device
            count.

        Raises:
          CheckpointError: one line naming the step's folder and what is wrong with it.
        """
        where = self.directory / str(step)
        items = {
            "state": ocp.args.StandardRestore(abstract_state),
            "meta": ocp.args.JsonRestore(),
        }
        # Checkpoints written before checksums were recorded are restored unverified.
        verified = (where / "checksums").is_dir()
        if verified:
            items["checksums"] = ocp.args.JsonRestore()
        # Orbax, TensorStore and json raise many kinds of error on bad bytes: any is caught.
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{where} cannot be read ({type(e).__name__}: {reason})") from e
        state, meta = restored["state"], dict(restored["meta"])
        if verified:
            expected = dict(restored["checksums"])
            if expected.get("meta") != meta_checksum(meta):
                raise CheckpointError(f"{where}: meta does not match its checksum")
            got = state_checksums(state)
            wrong = [k for k in got if expected.get("state", {}).get(k) != got[k]]
            if wrong or set(got) != set(expected.get("state", {})):
                name = wrong[0] if wrong else "the list of arrays"
                raise CheckpointError(f"{where}: {name} does not match its checksum")
        bad = non_finite_leaf(state)
        if bad is not None:
            raise CheckpointError(f"{where}: {bad} holds NaN or infinite values")
        return state, meta

    def restore_intact(
        self,
        abstract_state: PyTree,
        *,
        steps: Sequence[int] | None = None,
        set_aside: bool = False,
    ) -> tuple[int, PyTree, dict[str, Any]] | None:
        """Restores the first intact checkpoint of `steps` (default: newest first).

        Each one that fails `restore` is skipped with a one-line warning on stderr naming it.

        Args:
          abstract_state: as for `restore`.
          steps: the steps to try, in order.
          set_aside: once an intact step is found, move the failed newer ones to
            `<workdir>/corrupt_checkpoints/` (what a resumed run does, so that training can
            save those steps again); otherwise leave them.

        Returns:
          (step, state, meta), or None when there are no checkpoints at all.

        Raises:
          CheckpointError: there are checkpoints and none is intact (one line: what to do).
        """
        steps = sorted(self.all_steps(), reverse=True) if steps is None else list(steps)
        if not steps:
            return None
        failed: list[int] = []
        first_error = None
        for step in steps:
            try:
                state, meta = self.restore(step, abstract_state)
            except CheckpointError as e:
                first_error = first_error or e
                failed.append(step)
                print(f"warning: {e}; skipped", file=sys.stderr)
                continue
            # Only once an intact one is found: with none, the folder stays as it was.
            for bad in failed if set_aside else ():
                print(f"warning: {self._set_aside(bad)}", file=sys.stderr)
            return step, state, meta
        raise CheckpointError(
            f"no intact checkpoint in {self.directory} (the newest: {first_error}); delete "
            "the run directory to start again, or restore its checkpoints from a copy"
        )

    def _set_aside(self, step: int) -> str:
        """Moves a corrupt step out of the checkpoints folder; says what was done."""
        target = self.directory.parent / CORRUPT_DIR / str(step)
        if jax.process_index() == 0:
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                target = target.with_name(f"{step}-{len(os.listdir(target.parent))}")
            os.replace(self.directory / str(step), target)
        self.manager.reload()
        return f"moved the corrupt {self.directory / str(step)} to {target}"

    def check_saves(self) -> None:
        """Raises CheckpointError (one line: the cause and the last intact step) when an
        asynchronous save has failed since the last call."""
        try:
            self.manager.check_for_errors()
        except Exception as e:
            raise CheckpointError(self._save_failure(e)) from e

    def _save_failure(self, error: BaseException) -> str:
        """The one line that reports a failed save (also kept in `self.failure`)."""
        reason = _failure_reason(error)
        with contextlib.suppress(Exception):
            self.manager.reload()
        steps = self.all_steps()
        last = (
            f"the last complete checkpoint is {self.directory / str(max(steps))}"
            if steps
            else "no checkpoint was completed"
        )
        fix = "run the same command to resume"
        if reason == _NO_SPACE:
            fix = f"free space on the device holding {self.directory.parent} and {fix}"
        self.failure = f"saving a checkpoint in {self.directory} failed ({reason}); {last}; {fix}"
        return self.failure

    def wait(self) -> None:
        """Blocks until every asynchronous save has finished; CheckpointError if one failed."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise CheckpointError(self._save_failure(e)) from e
        self.check_saves()

    def close(self) -> None:
        """Waits for the saves and closes; after a reported failure, quietly (the failure is
        already on its way to the user, and a second report would hide it)."""
        if self.failure is None:
            try:
                self.wait()
            finally:
                self.manager.close()
            return
        with contextlib.suppress(Exception):
            self.manager.close()


def _failure_reason(error: BaseException) -> str:
    """The cause of a failed save in a few words: a full disk by name (Orbax and TensorStore
    wrap ENOSPC in errors of other kinds, with long paths), else the first line of the
    innermost error."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for e in chain:
        if getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e):
            return _NO_SPACE
    text = str(chain[-1]).strip()
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(chain[-1]).__name__}: {first}" if first else type(chain[-1]).__name__


def state_checksums(state: PyTree) -> dict[str, str]:
    """Array path ("params/embedding/table") -> its dtype, shape and a checksum of its bits.

    Two 32-bit sums per array: of its words, and of its words times odd weights (2i + 1).
    Any change of one word changes both; they cover the bytes Orbax writes for the array.
    On accelerators and across processes they are computed where the arrays are, so only two
    numbers per array come to the host; arrays already in this process's memory (CPU) are
    summed by NumPy, the same values without compiling a program (seconds on a 2-core CPU,
    paid at a run's first save and at every restore onto a new device layout).
    """
    with_paths = jax.tree_util.tree_leaves_with_path(state)
    leaves = [x for _, x in with_paths]
    if all(_in_host_memory(x) for x in leaves):
        sums = [_host_fingerprint(np.asarray(x)) for x in leaves]
    else:
        sums = jax.device_get(_fingerprints(leaves))
    return {
        "/".join(path_names(p)): f"{a.dtype}{list(a.shape)}:{int(s[0]):08x}{int(s[1]):08x}"
        for (p, a), s in zip(with_paths, sums, strict=True)
    }


@jax.jit
def _fingerprints(leaves: list[jax.Array]) -> list[jax.Array]:
    return [_fingerprint(x) for x in leaves]


def _fingerprint(x: jax.Array) -> jax.Array:
    """[2] uint32: the sum of the 32-bit words of `x` and their sum weighted by 2i + 1."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        words = x.astype(jnp.uint32)
    else:
        unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize]
        words = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
    words = words.reshape(-1)  # [N]
    weights = jnp.arange(words.size, dtype=jnp.uint32) * 2 + 1  # odd, so a product is 1-to-1
    return jnp.stack([jnp.sum(words, dtype=jnp.uint32), jnp.sum(words * weights, dtype=jnp.uint32)])


def _in_host_memory(x: Any) -> bool:
    """Whether `x` is a NumPy array, or a JAX array whole in this process on CPU devices."""
    if isinstance(x, np.ndarray):
        return True
    return (
        isinstance(x, jax.Array)
        and x.is_fully_addressable
        and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        and all(d.platform == "cpu" for d in x.sharding.device_set)
    )


def _host_fingerprint(x: np.ndarray) -> np.ndarray:
    """`_fingerprint` in NumPy: [2] uint32, the same two wrapping sums."""
    x = np.ascontiguousarray(x)
    if x.dtype == np.bool_:
        words = x.astype(np.uint32)
    else:
        unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32}[x.dtype.itemsize]
        words = x.view(unsigned).astype(np.uint32)
    words = words.reshape(-1)  # [N]
    weights = np.arange(words.size, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    return np.array(
        [np.sum(words, dtype=np.uint32), np.sum(words * weights, dtype=np.uint32)], np.uint32
    )


def meta_checksum(meta: dict[str, Any]) -> str:
    """SHA-256 of the meta JSON, written canonically."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def non_finite_leaf(state: PyTree) -> str | None:
    """The path of the first floating-point array of `state` with a NaN or infinity, or None."""
    floating = [
        (p, x)
        for p, x in jax.tree_util.tree_leaves_with_path(state)
        if jnp.issubdtype(x.dtype, jnp.floating)
    ]
    leaves = [x for _, x in floating]
    if all(_in_host_memory(x) for x in leaves):
        # As in `state_checksums`: no program to compile for arrays already in memory.
        finite = [bool(np.isfinite(np.asarray(x)).all()) for x in leaves]
    else:
        finite = jax.device_get(_all_finite(leaves))
    for (path, _), ok in zip(floating, finite, strict=True):
        if not ok:
            return "/".join(path_names(path))
    return None


@jax.jit
def _all_finite(leaves: list[jax.Array]) -> list[jax.Array]:
    return [jnp.all(jnp.isfinite(x)) for x in leaves]


def abstract_like(tree: PyTree, sharding: jax.sharding.Sharding) -> PyTree:
    """Shape/dtype structs of `tree` (arrays or structs) placed on `sharding`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
