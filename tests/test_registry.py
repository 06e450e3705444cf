"""One model registry: every model name resolves in every layer, and mapping -> dataclass."""

from __future__ import annotations

import dataclasses

import pytest
from ml_collections import ConfigDict

from shortrec_jax.config_files import CONFIG_DIR, config_path, dataclass_from_mapping
from shortrec_jax.evaluation.registry import DEEP_METHODS, FAMILY_METHODS, METHOD_NAMES
from shortrec_jax.models import FAMILIES, MODELS, get_model
from shortrec_jax.training.sequence_tasks import ClozeTask, NextItemTask
from shortrec_jax.training.tasks import TASKS, make_task


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_resolves_in_every_layer(name):
    entry = get_model(name)
    assert dataclasses.is_dataclass(entry.config) and entry.family in FAMILIES
    config = ConfigDict({"model": {"name": name}})
    task = make_task(config)
    assert isinstance(task, TASKS[entry.family]) and task.family == entry.family
    assert DEEP_METHODS[name] is FAMILY_METHODS[entry.family] and name in METHOD_NAMES


def test_a_causal_sequence_model_trains_on_next_item_targets_a_bidirectional_one_on_cloze():
    def task(name):
        return type(make_task(ConfigDict({"model": {"name": name}})))

    assert task("sasrec") is NextItemTask and task("bert4rec") is ClozeTask


def test_every_family_has_a_task_and_a_method():
    assert set(TASKS) == set(FAMILY_METHODS) == set(FAMILIES)


def test_an_unknown_model_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*bert4rec"):
        make_task(ConfigDict({"model": {"name": "nope"}}))


@dataclasses.dataclass(frozen=True)
class _Knobs:
    sizes: tuple[int, ...] = ()
    rate: float = 0.1
    width: int = 1


def test_dataclass_from_mapping_converts_lists_and_refuses_unknown_and_reserved_keys():
    knobs = dataclass_from_mapping(_Knobs, {"sizes": [1, 2], "rate": 0.5}, "x", width=3)
    assert knobs == _Knobs(sizes=(1, 2), rate=0.5, width=3)
    with pytest.raises(ValueError, match=r"^x\.y: unknown fields \['speed'\]; _Knobs has"):
        dataclass_from_mapping(_Knobs, {"speed": 1}, "x.y")
    with pytest.raises(ValueError, match=r"unknown fields \['width'\]"):
        dataclass_from_mapping(_Knobs, {"width": 2}, "x", width=3)


def test_config_files_are_found_by_path_or_by_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the packaged ones answer
    packaged = CONFIG_DIR / "xdeepfm_ml100k.py"
    assert config_path("configs/xdeepfm_ml100k.py") == packaged
    assert config_path("xdeepfm_ml100k.py") == packaged
    own = tmp_path / "configs" / "xdeepfm_ml100k.py"
    own.parent.mkdir()
    own.write_text("")
    assert config_path("configs/xdeepfm_ml100k.py").resolve() == own  # a real path wins
    with pytest.raises(FileNotFoundError, match=r"no config file configs/nope\.py"):
        config_path("configs/nope.py")


def test_an_example_budget_sets_a_ctr_models_epochs_by_the_size_of_its_part():
    from types import SimpleNamespace

    from shortrec_jax.evaluation.budget import BudgetedCTRMethod
    from shortrec_jax.evaluation.registry import make_method

    section = {
        "train_config": "configs/xdeepfm_ml100k.py",
        "example_budget": 288_000,
        "max_epochs": 40,
    }
    method = make_method("xdeepfm", section, seed=0)
    assert isinstance(method, BudgetedCTRMethod) and method.valid_fraction == 0.1

    def part(n: int) -> SimpleNamespace:
        return SimpleNamespace(num_interactions=n)

    # 90% of a part trains (the rest validates): 80,000 -> 72,000 examples, 288,000 / 72,000
    # = 4 epochs; 20,000 -> 18,000, 16 epochs; 50,000 -> 45,000, 6.4 -> 7; 8,000 -> 7,200,
    # 40; 4,000 -> 3,600 would be 80, capped at 40. A given validation part: all of it trains.
    epochs = [method.epochs_for(part(n)) for n in (80_000, 20_000, 50_000, 8_000, 4_000)]
    assert epochs == [4, 16, 7, 40, 40]
    assert method.epochs_for(part(72_000), valid=part(8_000)) == 4
    with pytest.raises(ValueError, match="only CTR models"):
        make_method("bert4rec", {**section, "train_config": "configs/bert4rec_ml100k.py"}, seed=0)
    plain = make_method("xdeepfm", {"train_config": "configs/xdeepfm_ml100k.py"}, seed=0)
    assert not isinstance(plain, BudgetedCTRMethod)
    # CTRMethod's own options still reach it.
    assert make_method("xdeepfm", {**section, "refit": True}, seed=0).refit is True
    with pytest.raises(ValueError, match="unknown fields"):
        make_method("xdeepfm", {**section, "refit_epochs": 3}, seed=0)
