"""Repeats of a protocol: seeds x fractions x methods, with restarts and aggregation.

Given a `store`, a repeat whose result is stored under the same key and fingerprint
(protocol, options, data, method config, seed, fraction) is not recomputed; results are
stored as soon as each repeat finishes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import concat
from shortrec_jax.evaluation.slices import Numbers
from shortrec_jax.interface import Method


class MethodFactory(Protocol):
    """Builds an unfitted method for one repeat.

    Args:
      name: the method's name, e.g. "item-cf", "xdeepfm", "random".
      config: its hyperparameters (config.methods.<name> of an evaluate config).
      seed: the repeat's seed.
      workdir: a folder the method may use for this repeat (checkpoints), or None.
    """

    def __call__(
        self, name: str, config: Mapping[str, Any], *, seed: int, workdir: Path | None
    ) -> Method: ...


class Store(Protocol):
    """Where finished repeats are kept across restarts (see `report.RepeatStore`)."""

    def get(self, key: str, fingerprint: str) -> Numbers | None:
        """The stored result of `key`, or None if absent or stored under another fingerprint."""

    def put(self, key: str, fingerprint: str, result: Numbers) -> None:
        """Stores (durably) the result of `key`."""


def _plain(obj: Any) -> Any:
    """Config values as JSON types (ConfigDict and mappings -> dict, tuples -> list)."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def dataset_fingerprint(ds: Dataset) -> str:
    """A SHA-256 of the interactions and vocabulary sizes: the data a repeat depends on."""
    h = hashlib.sha256(f"{ds.name}|{ds.num_users}|{ds.num_items}".encode())
    for arr in (ds.users, ds.items, ds.ratings, ds.timestamps):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _fingerprint(**parts: Any) -> str:
    text = json.dumps(_plain(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def summarise(repeats: Mapping[str, Numbers]) -> dict[str, Any]:
    """Mean and sample standard deviation of every metric over repeats (NaN values left out).

    Args:
      repeats: repeat label -> metric -> value.

    Returns:
      {"mean": {metric: float | None}, "std": {metric: float | None}, "repeats": repeats}.
    """
    names = list(dict.fromkeys(k for r in repeats.values() for k in r))
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for name in names:
        values = np.array([r[name] for r in repeats.values() if name in r], dtype=np.float64)
        values = values[np.isfinite(values)]
        mean[name] = float(values.mean()) if values.size else None
        std[name] = float(values.std(ddof=1)) if values.size > 1 else (0.0 if values.size else None)
    return {"mean": mean, "std": std, "repeats": dict(repeats)}


@dataclasses.dataclass(frozen=True)
class SharedOptions:
    """The keyword options every protocol takes besides its own; their defaults live here.

    Attributes:
      cold_user_max_ratings: the cold-user slice: at most this many training ratings.
      head_fraction: share of the catalogue in the popular head (the rest is the long tail).
      batch_size: users per scoring call.
      store: finished repeats (restart support), or None.
      workdir: the run folder; each repeat's method gets `workdir/methods/<key>`.
      progress: show a progress bar.
    """

    cold_user_max_ratings: int = 20
    head_fraction: float = 0.2
    batch_size: int = 256
    store: Store | None = None
    workdir: str | Path | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def slices(self) -> dict[str, Any]:
        """The slice options: keyword options of the measure, recorded after the protocol's."""
        return {
            "cold_user_max_ratings": self.cold_user_max_ratings,
            "head_fraction": self.head_fraction,
        }


@dataclasses.dataclass(frozen=True)
class RankingOptions(SharedOptions):
    """`SharedOptions` and the beyond-accuracy metrics, which every ranking protocol reports.

    Attributes:
      beyond_ks: list lengths of the beyond-accuracy metrics.
      diversity_feature: item vectors of the diversity metric ("genres", another multi-hot
        column, "vectors"), or None to skip it.
    """

    beyond_ks: Sequence[int] = (10,)
    diversity_feature: str | None = "genres"

    def slices(self) -> dict[str, Any]:
        return {
            "beyond_ks": self.beyond_ks,
            **super().slices(),
            "diversity_feature": self.diversity_feature,
        }


@dataclasses.dataclass(frozen=True)
class ProtocolOptions:
    """The options of one protocol run, set up the same way by every protocol.

    Attributes:
      protocol: the protocol's name ("paper", "size", ...), the first part of every repeat key.
      split: options that choose the split and the training part (e.g. "fractions").
      measure: the protocol's own keyword options of its measure (`measures.evaluate_held_out`,
        ...); the slice options of `shared` follow them.
      shared: the options every protocol takes (slices, batch size, store, workdir, progress).
    """

    protocol: str
    split: Mapping[str, Any]
    measure: Mapping[str, Any]
    shared: SharedOptions

    @property
    def recorded(self) -> dict[str, Any]:
        """The options a result depends on: reported under "options" and fingerprinted."""
        return {**self.split, **self.measure, **self.shared.slices()}

    @property
    def measure_args(self) -> dict[str, Any]:
        """The keyword arguments of the measure: its options and the batch size."""
        return {**self.measure, **self.shared.slices(), "batch_size": self.shared.batch_size}


@dataclasses.dataclass(frozen=True)
class RepeatLoop:
    """The repeat loop shared by the protocols: seeds x fractions x methods, with restarts."""

    options: ProtocolOptions
    make_method: MethodFactory
    dataset: Dataset
    methods: Mapping[str, Mapping[str, Any]]
    seeds: Sequence[int]
    data_fingerprint: str

    @classmethod
    def start(
        cls,
        options: ProtocolOptions,
        make_method: MethodFactory,
        dataset: Dataset,
        methods: Mapping[str, Mapping[str, Any]],
        seeds: Sequence[int],
    ) -> RepeatLoop:
        """Checks the methods and seeds and fingerprints the data set."""
        if not methods:
            raise ValueError("no methods to evaluate")
        if not seeds:
            raise ValueError("no seeds: need at least one repeat")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {list(seeds)}")
        return cls(
            options=options,
            make_method=make_method,
            dataset=dataset,
            methods=methods,
            seeds=[int(s) for s in seeds],
            data_fingerprint=dataset_fingerprint(dataset),
        )

    def run(
        self,
        prepare: Callable[[int], Any],
        fit_parts: Callable[[Any, int, float | None], tuple[Dataset, Dataset | None]],
        evaluate: Callable[[Method, Any, Dataset, int], Numbers],
        fractions: Sequence[float | None] = (None,),
    ) -> dict[str, dict[float | None, dict[str, Numbers]]]:
        """Runs (or restores) every repeat.

        Args:
          prepare: seed -> the split (built once per seed, only if a repeat needs it).
          fit_parts: (split, seed, fraction) -> (train, valid) to fit on.
          evaluate: (fitted method, split, train it saw, seed) -> metrics.
          fractions: training fractions (size protocol) or (None,).

        Returns:
          method -> fraction -> str(seed) -> metrics.
        """
        store = self.options.shared.store
        results: dict[str, dict[float | None, dict[str, Numbers]]] = {
            name: {f: {} for f in fractions} for name in self.methods
        }
        total = len(self.seeds) * len(fractions) * len(self.methods)
        protocol = self.options.protocol
        with tqdm(
            total=total, desc=protocol, unit="repeat", disable=not self.options.shared.progress
        ) as bar:
            for seed in self.seeds:
                split = None
                for fraction in fractions:
                    for name, config in self.methods.items():
                        key = f"{protocol}/{name}/seed={seed}"
                        if fraction is not None:
                            key += f"/fraction={fraction:g}"
                        fingerprint = self._fingerprint(name, config, seed, fraction)
                        result = None if store is None else store.get(key, fingerprint)
                        if result is None:
                            bar.set_postfix_str(key)
                            if split is None:
                                split = prepare(seed)
                            train, valid = fit_parts(split, seed, fraction)
                            result = self._one(
                                name, config, seed, key, split, train, valid, evaluate
                            )
                            if store is not None:
                                store.put(key, fingerprint, result)
                        results[name][fraction][str(seed)] = result
                        bar.update()
        return results

    def _fingerprint(
        self, name: str, config: Mapping[str, Any], seed: int, fraction: float | None
    ) -> str:
        """What a stored repeat must match to be reused."""
        return _fingerprint(
            protocol=self.options.protocol,
            options=self.options.recorded,
            data=self.data_fingerprint,
            method=name,
            config=config,
            seed=seed,
            fraction=fraction,
        )

    def _one(
        self,
        name: str,
        config: Mapping[str, Any],
        seed: int,
        key: str,
        split: Any,
        train: Dataset,
        valid: Dataset | None,
        evaluate: Callable[[Method, Any, Dataset, int], Numbers],
    ) -> Numbers:
        root = self.options.shared.workdir
        workdir = None if root is None else Path(root) / "methods" / key
        method = self.make_method(name, config, seed=seed, workdir=workdir)
        started = time.perf_counter()
        if (
            self.options.split.get("valid_as_history")
            and valid is not None
            and not method.uses_valid
        ):
            # The validation part is the users' latest history at test time: a method that
            # tunes nothing on it learns from it, as the sequence models see it.
            method.fit(concat([train, valid]), None)
        else:
            method.fit(train, valid)
        fitted = time.perf_counter()
        result = evaluate(method, split, train, seed)
        result["time/fit_seconds"] = fitted - started
        result["time/eval_seconds"] = time.perf_counter() - fitted
        return result

    def summarised(
        self,
        prepare: Callable[[int], Any],
        fit_parts: Callable[[Any, int, float | None], tuple[Dataset, Dataset | None]],
        evaluate: Callable[[Method, Any, Dataset, int], Numbers],
    ) -> dict[str, Any]:
        """Runs (or restores) every repeat of a protocol without training fractions and
        returns its result, each method's repeats summarised (arguments as in `run`)."""
        results = self.run(prepare=prepare, fit_parts=fit_parts, evaluate=evaluate)
        return self.output({name: summarise(r[None]) for name, r in results.items()})

    def output(self, summaries: Mapping[str, Mapping[str, Any]]) -> dict:
        """The protocol's result (see `protocols`) from each method's summary."""
        dataset = self.dataset
        return {
            "protocol": self.options.protocol,
            "options": _plain(self.options.recorded),
            "seeds": list(self.seeds),
            "dataset": {
                "name": dataset.name,
                "users": dataset.num_users,
                "items": dataset.num_items,
                "interactions": dataset.num_interactions,
                "fingerprint": self.data_fingerprint,
            },
            "methods": {name: dict(by) for name, by in summaries.items()},
        }
