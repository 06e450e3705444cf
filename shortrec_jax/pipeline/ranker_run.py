"""The trained ranker (`pipeline/ranker.py`) as a run directory and as the served ranking stage.

Train once, serve from the directory:

  python -m shortrec_jax.pipeline.train_ranker --workdir=runs/ranker_ml100k \
      [--config.data.source=ml-100k] [--config.ranker.epochs=4] [--config.seed=0]
  python -m shortrec_jax.recommend --ranker_workdir=runs/ranker_ml100k --user=196

Training is evaluate.py's "ranker" method (`make_ranker_method`) fitted on every interaction
of the data source: its examples come from held-out slices of that history
(`ranker_data.build_examples`), and its recallers and statistics are then refit on all of it.
The directory holds two files, each written atomically, `ranker.json` last (so a directory
with `ranker.json` is complete):
  ranker_params.npz  the network's parameters, one array per parameter path ("a/b/kernel"),
                     read back with allow_pickle=False;
  ranker.json        the ranker's config (`RankerConfig`), the network's hyperparameters, the
                     seed, the data section (which source to serve), the SHA-256 of the
                     parameters file and of the raw user and item ids (the rows of the
                     network's embeddings), and the training loss per epoch.

Loading refits the recallers and statistics (`ranker_data.RankerInputs`, deterministic NumPy
fits) on the serving data, whose users and items must be the ones the network was trained on
(same raw ids, same order: the embeddings' rows).

`TrainedRanker` scores a request's candidates through the evaluation method's own path
(features from `RankerInputs.features`, probabilities and final score of
`TrainedRankerMethod`), so a served score is the score evaluate.py's "ranker" method gives the
same (user, candidates): one code path, and feature changes there reach serving unchanged.
Every device call has the method's fixed chunk shape, so no request compiles the network again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util
from ml_collections import ConfigDict

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.side_files import load_configured, side_file_config
from shortrec_jax.io import write_atomic, write_json_atomic
from shortrec_jax.pipeline.rank import UnknownDemographicError
from shortrec_jax.pipeline.ranker import (
    RankerConfig,
    TrainedRankerMethod,
    TwoHeadRanker,
    make_ranker_method,
)

RANKER_FILE = "ranker.json"
PARAMS_FILE = "ranker_params.npz"
#: The version of the directory layout above.
FORMAT = 1


def default_config() -> ConfigDict:
    """The training command's config: the data source, the seed and the ranker's fields."""
    config = ConfigDict()
    # Seeds the held-out slices, the sampled items, initialisation and shuffling.
    config.seed = 0
    config.data = ConfigDict()
    # A source name for shortrec_jax.data.load, its loader's options and side files.
    config.data.source = "ml-100k"
    config.data.source_options = ConfigDict()
    config.data.item_side = side_file_config()
    config.data.user_side = side_file_config()
    # Fields of pipeline/ranker.py's RankerConfig (its defaults), stages excepted.
    fields = dataclasses.asdict(RankerConfig())
    del fields["stages"]
    config.ranker = ConfigDict(fields)
    return config


def _digest(values: np.ndarray) -> str:
    """SHA-256 of raw ids in order (the rows of an embedding table)."""
    return hashlib.sha256("\n".join(map(str, values.tolist())).encode()).hexdigest()


def _module_fields(model: TwoHeadRanker) -> dict[str, Any]:
    """The network's constructor arguments (a Flax module is a dataclass)."""
    return {
        f.name: getattr(model, f.name)
        for f in dataclasses.fields(model)
        if f.init and f.name not in ("parent", "name")
    }


def _tuples(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples the frozen configs hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


class TrainedRanker:
    """The served ranking stage: a fitted `TrainedRankerMethod` scoring a user's candidates.

    It ranks users the data set knows (its features are the user's statistics, history and
    embedding); a new user has none of them and is served by the cold-start path (the recall
    order, `Recommender.run`). Demographics are not among its features.

    Args:
      method: a fitted method (`TrainedRankerMethod.fit`, or `load_ranker`).
    """

    demographic_fields: tuple[str, ...] = ()

    def __init__(self, method: TrainedRankerMethod) -> None:
        if method.config.stages != "recall+rank" or not hasattr(method, "params"):
            raise ValueError("TrainedRanker needs a ranker fitted with stages='recall+rank'")
        self.method = method

    @property
    def data(self) -> Dataset:
        """The interactions its recallers and statistics were fitted on (index space)."""
        return self.method.inputs.data

    def compilations(self) -> int:
        """How many input shapes the network has been compiled for (1 once warm; never more)."""
        return self.method.compilations()

    def check_demographics(self, demographics: Mapping[str, object]) -> None:
        """Raises UnknownDemographicError: the trained ranker uses no demographic field."""
        if demographics:
            raise UnknownDemographicError(
                f"unknown demographic fields {sorted(demographics)}; the trained ranker uses none"
            )

    def check_catalogue(self, data: Dataset) -> None:
        """Raises ValueError unless `data` has the users and items it was fitted on, in order."""
        for side, own, other in (
            ("users", self.data.user_ids, data.user_ids),
            ("items", self.data.item_ids, data.item_ids),
        ):
            if own.size != other.size or _digest(own) != _digest(other):
                raise ValueError(
                    f"the trained ranker was fitted on {own.size} {side}; the pipeline's data "
                    f"have {other.size} {side} or other ids: serve it with the data it was "
                    "trained on"
                )

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The final score of each user's candidates.

        Args:
          users: [B] int user indices (known users).
          items: [B, C] int item indices, -1 for padding.

        Returns:
          [B, C] float32: P(watch) ("watch" objective; with the listwise loss, the softmax
          over the row's valid candidates) or P(watch) x P(like | watch) ("like").
        """
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        if items.ndim != 2 or users.shape != items.shape[:1]:
            raise ValueError(
                f"users [B] and items [B, C] expected, got {users.shape}, {items.shape}"
            )
        # The code path of evaluate.py's `ranker` method after its recall.
        return self.method.final_scores(users, items)

    def score(
        self, user: int, items: np.ndarray, demographics: Mapping[str, object] | None = None
    ) -> np.ndarray:
        """[C] float32 final scores of one known user's [C] candidates (the `Ranker` call)."""
        self.check_demographics(demographics or {})
        items = np.asarray(items, np.int64)
        if items.ndim != 1:
            raise ValueError(f"items must be [C], got shape {items.shape}")
        if not 0 <= user < self.data.num_users:
            raise ValueError(f"user index {user}: the trained ranker scores known users only")
        if items.size == 0:
            return np.zeros(0, np.float32)
        return self.scores(np.asarray([user]), items[None, :])[0]

    def warm_up(self) -> None:
        """Compiles the network (one call of its fixed shape)."""
        if self.data.num_users and self.data.num_items:
            self.score(0, np.zeros(1, np.int64))


def save_ranker(workdir: str | Path, method: TrainedRankerMethod, data: ConfigDict) -> None:
    """Writes a fitted method into `workdir` (module docstring: the two files).

    Args:
      workdir: the run directory (created).
      method: fitted with stages="recall+rank".
      data: the data section it was fitted with (what `load_ranker` loads to serve).
    """
    ranker = TrainedRanker(method)
    workdir = Path(workdir)
    flat = traverse_util.flatten_dict(jax.device_get(method.params), sep="/")
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in flat.items()})
    payload = buffer.getvalue()
    write_atomic(workdir / PARAMS_FILE, payload)
    write_json_atomic(
        workdir / RANKER_FILE,
        {
            "format": FORMAT,
            "seed": method.seed,
            "ranker": dataclasses.asdict(method.config),
            "network": _module_fields(method.model),
            "data": data.to_dict() if isinstance(data, ConfigDict) else dict(data),
            "params_sha256": hashlib.sha256(payload).hexdigest(),
            "users_sha256": _digest(ranker.data.user_ids),
            "items_sha256": _digest(ranker.data.item_ids),
            "losses": [float(x) for x in method.losses],
        },
    )


def read_meta(workdir: str | Path) -> dict[str, Any]:
    """The `ranker.json` of a ranker run directory (FileNotFoundError naming what is missing)."""
    path = Path(workdir) / RANKER_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{workdir} is not a trained ranker's run directory: no {path.name}"
        )
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}")
    return meta


def load_ranker(workdir: str | Path, data: Dataset | None = None) -> TrainedRanker:
    """Restores a ranker run directory over `data` (None: its data section's source, every
    interaction), refitting the recallers and statistics on `data`.

    Raises:
      FileNotFoundError: not a ranker run directory.
      ValueError: the parameters file does not match its checksum, or `data` has other users
        or items than the network was trained on.
    """
    workdir = Path(workdir)
    meta = read_meta(workdir)
    payload = (workdir / PARAMS_FILE).read_bytes()
    if hashlib.sha256(payload).hexdigest() != meta["params_sha256"]:
        raise ValueError(f"{workdir / PARAMS_FILE} does not match the checksum in {RANKER_FILE}")
    if data is None:
        data = load_configured(ConfigDict(meta["data"]))
    for side, ids in (("users", data.user_ids), ("items", data.item_ids)):
        if _digest(ids) != meta[f"{side}_sha256"]:
            raise ValueError(
                f"{workdir}: the network was trained on other {side} than the data's "
                f"{ids.size} ({data.name!r}); serve it with the data it was trained on"
            )
    with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
        params = traverse_util.unflatten_dict({k: arrays[k] for k in arrays.files}, sep="/")
    method = TrainedRankerMethod.restore(
        RankerConfig(**_tuples(meta["ranker"])),
        TwoHeadRanker(**_tuples(meta["network"])),
        jax.tree.map(jax.numpy.asarray, params),
        data,
        losses=np.asarray(meta["losses"], np.float64),
        seed=int(meta["seed"]),
    )
    return TrainedRanker(method)


def train_ranker_run(config: ConfigDict, workdir: str | Path) -> TrainedRanker:
    """Fits the ranker on every interaction of `config.data` and saves it into `workdir`.

    Args:
      config: `default_config()` with overrides.
      workdir: the run directory.

    Returns:
      The served stage of the fitted ranker.
    """
    data = load_configured(config.data)
    method = make_ranker_method("ranker", config.ranker, seed=int(config.seed))
    method.fit(data)
    save_ranker(workdir, method, config.data)
    return TrainedRanker(method)
