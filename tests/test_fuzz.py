"""Fuzzing with hypothesis: bad input ends in a valid result or a clear error naming its source.

Loaders get mutated and random files in every layout they read; each call must return a
`Dataset` that passes `validate()` or raise `DataError` (a ValueError whose message names the
file, line or key): no other exception, no hang. Round-trip properties check that what loads is
what the file says (no id silently merged, cut or wrapped). The feature encoder gets unseen
values, empty fields and out-of-range users and items; configs get unknown keys and values of
the wrong type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import numpy as np
import pytest
from absl import flags
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ml_collections import ConfigDict, config_flags

from configs import bert4rec_ml100k, xdeepfm_ml100k
from shortrec_jax.baselines import BASELINES
from shortrec_jax.config_files import dotted_fields
from shortrec_jax.data import DataError, Dataset, Ragged
from shortrec_jax.data.atomic import load_atomic
from shortrec_jax.data.delimited import load_delimited
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.fields import FieldSpec
from shortrec_jax.data.grouplens import load_grouplens
from shortrec_jax.data.kuairec import load_kuairec
from shortrec_jax.evaluation.registry import make_method
from shortrec_jax.schema import BatchLayout
from shortrec_jax.training.task_common import model_config
from tests.test_grouplens import ML1M, ML10M, ML100K, ML_LATEST
from tests.test_kuairec import CATEGORIES, MATRIX, USERS
from tests.test_train_ctr import ROOT

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # CI replays the same examples every run, so a red build always reproduces; a developer's
    # run explores new ones.
    derandomize=bool(os.environ.get("CI")),
)
# The loaders are where bad bytes arrive, and a load of a few lines takes milliseconds.
LOADER_FUZZ = settings(FUZZ, max_examples=150)
# No single load of these few-line files may take longer: more is a hang.
TIME_LIMIT_S = 10.0


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises TimeoutError in the main thread when the block runs longer than `seconds`."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_or_data_error(load: Callable[[], Dataset]) -> Dataset | DataError:
    """The loaded and re-validated data set, or the DataError raised; anything else fails."""
    with time_limit(TIME_LIMIT_S):
        try:
            ds = load()
        except DataError as e:
            assert str(e), "a DataError must say what is wrong"
            return e
    assert isinstance(ds, Dataset)
    ds.validate()
    return ds


# -- loaders on mutated and random files ---------------------------------------------------------

ATOMIC = {
    "d.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t4\t881250949\n2\t10\t3\t881250950\n1\t20\t5\t881250951\n",
    "d.item": "item_id:token\ttitle:token_seq\tyear:token\tclass:token_seq\tlength:float\n"
    "10\tToy Story\t1995\tAnimation Comedy\t81\n20\tCafé\tunknown\tDrama\tnan\n",
    "d.user": "user_id:token\tage:token\tgender:token\n1\t24\tM\n2\t53\tF\n",
    "d.kg": "head_id:token\trelation_id:token\ttail_id:token\nm.1\tfilm.genre\tm.2\n",
    "d.link": "item_id:token\tentity_id:token\n10\tm.1\n",
}


def _text_files(files: dict[str, str]) -> dict[str, bytes]:
    return {name: text.encode() for name, text in files.items()}


# layout -> (file name -> valid contents, how the folder holding them is loaded)
LAYOUTS: dict[str, tuple[dict[str, bytes], Callable[[Path], Dataset]]] = {
    "atomic": (_text_files(ATOMIC), lambda folder: load_atomic(folder, "d")),
    "atomic.gz": (
        {"d.inter.gz": gzip.compress(ATOMIC["d.inter"].encode(), mtime=0)},
        lambda folder: load_atomic(folder, "d"),
    ),
    "csv with a header": (
        {"log.csv": b"uid,iid,stars,ts\nu1,i1,4.5,10\nu2,i1,3,11\nu1,i2,1,12\n"},
        lambda folder: load_delimited(
            folder / "log.csv",
            columns={"user": "uid", "item": "iid", "rating": "stars", "timestamp": "ts"},
        ),
    ),
    "user item per line": (
        {"seq.txt": b"1 2\n1 3\n2 3\n"},
        lambda folder: load_delimited(folder / "seq.txt"),
    ),
    "ml-100k": (_text_files(ML100K), load_grouplens),
    "ml-1m": (_text_files(ML1M), load_grouplens),
    "ml-10m": (_text_files(ML10M), load_grouplens),
    "ml-latest": (_text_files(ML_LATEST), load_grouplens),
    "kuairec": (
        _text_files(
            {
                "small_matrix.csv": MATRIX,
                "item_categories.csv": CATEGORIES,
                "user_features.csv": USERS,
            }
        ),
        load_kuairec,
    ),
}

# Bytes that mean something to some parser: delimiters, quotes, line ends, numbers that are
# not finite or not small, a NUL, invalid UTF-8.
SPECIAL = [
    b"\t", b",", b"::", b"|", b" ", b"\n", b"\r", b"\r\n", b'"', b"[", b"]", b"nan", b"inf",
    b"-1", b"1e400", b"1.5", b"99999999999999999999", b"\x00", b"\xff", b"\xc3", "é".encode(),
    "\u2028".encode(), b"\x85", b"\x0b",
]  # fmt: skip
PAYLOAD = st.one_of(
    st.sampled_from(SPECIAL), st.binary(max_size=6), st.text(max_size=4).map(str.encode)
)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few random edits: truncations, insertions, replacements, deletions."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "insert", "replace", "delete"]))
        at = draw(st.integers(0, len(data)))
        if op == "truncate":
            del data[at:]
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            payload = draw(PAYLOAD)
            end = at + len(payload) if op == "replace" else at
            data[at:end] = payload
    return bytes(data)


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (folder / name).write_bytes(content)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_fuzzed_files_load_before_they_are_mutated(tmp_path, layout):
    files, load = LAYOUTS[layout]
    _write(tmp_path, files)
    assert isinstance(load_or_data_error(lambda: load(tmp_path)), Dataset)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@LOADER_FUZZ
@given(data=st.data())
def test_loaders_on_mutated_or_random_files_give_a_valid_dataset_or_a_data_error(layout, data):
    files, load = LAYOUTS[layout]
    target = data.draw(st.sampled_from(sorted(files)), label="file")
    content = data.draw(st.one_of(mutated(files[target]), st.binary(max_size=200)), label="bytes")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write(folder, {**files, target: content})
        load_or_data_error(lambda: load(folder))


# -- round trips: what loads is what the file says -----------------------------------------------

# Ids as text: anything but the delimiter, line ends and quotes (empty and NUL included).
TEXT_ID = st.text(
    alphabet=st.characters(blacklist_characters=',\n\r"', blacklist_categories=("Cs",)),
    max_size=6,
)


def _valid_text_id(raw: str) -> bool:
    # An empty id is a broken row; a NUL cannot be held by NumPy strings: both are errors.
    return raw != "" and "\0" not in raw


@LOADER_FUZZ
@given(
    rows=st.lists(
        st.tuples(TEXT_ID, TEXT_ID, st.floats(allow_nan=True, allow_infinity=True)),
        min_size=1,
        max_size=6,
    )
)
def test_delimited_text_ids_and_ratings_load_as_written_less_surrounding_whitespace(rows):
    text = "".join(f"{u},{i},{r!r}\n" for u, i, r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        path.write_bytes(text.encode())
        got = load_or_data_error(
            lambda: load_delimited(
                path, columns=("user", "item", "rating"), delimiter=",", duplicates="keep"
            )
        )
    # As loaded: a byte-order mark at the start of the file is dropped, and the whitespace
    # around every id.
    rows = [(u.removeprefix("\ufeff") if k == 0 else u, i, r) for k, (u, i, r) in enumerate(rows)]
    rows = [(u.strip(), i.strip(), r) for u, i, r in rows]
    valid = all(
        _valid_text_id(u) and _valid_text_id(i) and abs(r) <= float(np.finfo(np.float32).max)
        for u, i, r in rows
    )
    if not valid:
        assert isinstance(got, DataError)
        return
    assert isinstance(got, Dataset), got
    assert got.user_ids[got.users].tolist() == [u for u, _, _ in rows]
    assert got.item_ids[got.items].tolist() == [i for _, i, _ in rows]
    np.testing.assert_array_equal(got.ratings, np.float32([r for _, _, r in rows]))


# GroupLens ids are whole numbers: up to 2**53 they load exactly, beyond they must be refused
# (a float64 table would merge neighbours and an int64 cast would wrap).
GROUPLENS_ID = st.one_of(st.integers(-(2**53), 2**53), st.integers(-(2**70), 2**70))
TIMESTAMP = st.one_of(st.integers(-(2**53), 2**53), st.sampled_from(["1e300", "nan", "-inf"]))
STARS = st.sampled_from(["0", "0.5", "1", "2.5", "4", "5", "5.5", "nan", "inf"])
# layout -> (ratings file, row format, inclusive rating range)
GROUPLENS_RATINGS = {
    "u.data": ("u.data", "{}\t{}\t{}\t{}\n", (1.0, 5.0)),
    "ratings.dat": ("ratings.dat", "{}::{}::{}::{}\n", (0.5, 5.0)),
    "ratings.csv": ("ratings.csv", "{},{},{},{}\n", (0.5, 5.0)),
}


@pytest.mark.parametrize("layout", sorted(GROUPLENS_RATINGS))
@LOADER_FUZZ
@given(
    rows=st.lists(
        st.tuples(GROUPLENS_ID, GROUPLENS_ID, STARS, TIMESTAMP),
        min_size=1,
        max_size=5,
        unique_by=lambda row: (row[0], row[1]),
    )
)
def test_grouplens_ids_ratings_and_times_load_exactly_or_are_refused(layout, rows):
    file, row_format, (low, high) = GROUPLENS_RATINGS[layout]
    header = "userId,movieId,rating,timestamp\n" if file == "ratings.csv" else ""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / file).write_text(header + "".join(row_format.format(*row) for row in rows))
        got = load_or_data_error(lambda: load_grouplens(folder))

    def fits(row: tuple) -> bool:
        user, item, stars, timestamp = row
        return (
            max(abs(user), abs(item)) <= 2**53
            and low <= float(stars) <= high
            and isinstance(timestamp, int)
        )

    if not all(fits(row) for row in rows):
        assert isinstance(got, DataError)
        return
    assert isinstance(got, Dataset), got
    assert got.user_ids[got.users].tolist() == [str(row[0]) for row in rows]
    assert got.item_ids[got.items].tolist() == [str(row[1]) for row in rows]
    np.testing.assert_array_equal(got.ratings, np.float32([float(row[2]) for row in rows]))
    assert got.timestamps.tolist() == [row[3] for row in rows]


# Tokens of an atomic file: anything but tab and line ends; Unicode line separators, vertical
# tabs and NEL are part of a token.
TOKEN = st.text(
    alphabet=st.characters(blacklist_characters="\t\n\r", blacklist_categories=("Cs",)),
    max_size=6,
)


@LOADER_FUZZ
@given(rows=st.lists(st.tuples(TOKEN, TOKEN), min_size=1, max_size=6))
def test_atomic_tokens_load_exactly_as_written(rows):
    text = "user_id:token\titem_id:token\n" + "".join(f"{u}\t{i}\n" for u, i in rows)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "d.inter").write_bytes(text.encode())
        got = load_or_data_error(lambda: load_atomic(folder, "d", duplicates="keep"))
    if not all(_valid_text_id(u) and _valid_text_id(i) for u, i in rows):
        assert isinstance(got, DataError)
        return
    assert isinstance(got, Dataset), got
    assert got.user_ids[got.users].tolist() == [u for u, _ in rows]
    assert got.item_ids[got.items].tolist() == [i for _, i in rows]


# -- the feature encoder: unseen values, empty fields, unknown users and items -------------------

VALUE = st.sampled_from(["", "F", "M", "X", "é", "a b", "\u2028"])
FIELDS = [
    FieldSpec("user_id", "categorical"),
    FieldSpec("item_id", "categorical"),
    FieldSpec("gender", "categorical", side="user"),
    FieldSpec("studio", "categorical", side="item"),
    FieldSpec("year", "numeric"),
    FieldSpec("genres", "multi_hot"),
]


@st.composite
def side_datasets(draw: st.DrawFn) -> Dataset:
    """Small data sets whose raw ids and side values overlap by chance."""
    num_users, num_items = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    n = draw(st.integers(1, 8))
    index = st.lists(st.integers(0, 10**6), min_size=n, max_size=n)

    def ids(prefix: str, count: int) -> np.ndarray:
        names = st.sampled_from([f"{prefix}{k}" for k in range(6)])
        return np.array(draw(st.lists(names, min_size=count, max_size=count, unique=True)))

    def column(values: st.SearchStrategy, count: int) -> list:
        return draw(st.lists(values, min_size=count, max_size=count))

    years = st.one_of(st.integers(1900, 2030).map(float), st.just(float("nan")))
    return Dataset(
        name="fuzz",
        users=np.array(draw(index), dtype=np.int32) % num_users,
        items=np.array(draw(index), dtype=np.int32) % num_items,
        ratings=np.ones(n, dtype=np.float32),
        timestamps=np.zeros(n, dtype=np.int64),
        user_ids=ids("u", num_users),
        item_ids=ids("i", num_items),
        user_features={"gender": np.array(column(VALUE, num_users), dtype=np.str_)},
        item_categorical={"studio": np.array(column(VALUE, num_items), dtype=np.str_)},
        item_numeric={"year": np.array(column(years, num_items), dtype=np.float32)},
        item_multi_hot={
            "genres": Ragged.from_lists(column(st.lists(VALUE, max_size=3), num_items))
        },
    )


def _expected_id(encoder: FeatureEncoder, field: str, value: str | None) -> int:
    """The global id of a raw value: 1 + its vocabulary position, or the field's reserved id
    for an unseen value, a missing one ("") or an unknown user or item (None)."""
    vocab = encoder.vocabulary(field).tolist()
    local = vocab.index(value) + 1 if value in vocab else 0
    return encoder.offset(field) + local


@FUZZ
@given(train=side_datasets(), served=side_datasets(), data=st.data())
def test_encoder_maps_unseen_empty_and_unknown_values_to_reserved_ids(train, served, data):
    encoder = FeatureEncoder.fit(train, FIELDS)
    n = data.draw(st.integers(1, 8))
    pairs = st.lists(st.integers(-3, 8), min_size=n, max_size=n)
    users, items = np.array(data.draw(pairs)), np.array(data.draw(pairs))
    batch = encoder.encode_pairs(users, items, served)

    spec = encoder.spec
    assert batch["cat"].shape == (n, len(spec.cat_fields)) and batch["cat"].dtype == np.int32
    assert batch["multi"].shape == (n, 1, spec.multi_len)
    assert np.all((batch["cat"] >= 0) & (batch["cat"] < spec.vocab_size))
    assert np.all((batch["multi"] >= 0) & (batch["multi"] < spec.vocab_size))
    assert np.all(np.isfinite(batch["num"]))
    mean, std = encoder.statistics("year")
    for row, (u, i) in enumerate(zip(users.tolist(), items.tolist(), strict=True)):
        known_user = 0 <= u < served.num_users
        known_item = 0 <= i < served.num_items
        raw = {
            "user_id": served.user_ids[u] if known_user else None,
            "gender": served.user_features["gender"][u] if known_user else None,
            "item_id": served.item_ids[i] if known_item else None,
            "studio": served.item_categorical["studio"][i] if known_item else None,
        }
        got = dict(zip(spec.cat_fields, batch["cat"][row].tolist(), strict=True))
        assert got == {f: _expected_id(encoder, f, raw[f]) for f in spec.cat_fields}
        # The first multi_len tokens that training saw; unseen and empty ones are left out.
        genres = served.item_multi_hot["genres"].row(i).tolist() if known_item else []
        known = [g for g in genres if g in encoder.vocabulary("genres")][: spec.multi_len]
        ids = batch["multi"][row, 0][batch["multi_mask"][row, 0] > 0]
        assert ids.tolist() == [_expected_id(encoder, "genres", g) for g in known]
        year = served.item_numeric["year"][i] if known_item else np.nan
        expected = 0.0 if np.isnan(year) else (float(year) - mean) / std
        np.testing.assert_allclose(batch["num"][row, 0], expected, rtol=1e-5, atol=1e-6)


# -- configs: unknown keys and wrong types, named ------------------------------------------------

CONFIG_FILES = {
    "xdeepfm": ROOT / "configs" / "xdeepfm_ml100k.py",
    "bert4rec": ROOT / "configs" / "bert4rec_ml100k.py",
}
KEY = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


# ml_collections loads config files with importlib's deprecated load_module(), once a parse.
QUIET_CONFIG_LOADS = pytest.mark.filterwarnings(
    r"ignore:the load_module\(\) method is deprecated:DeprecationWarning"
)


def _parse(config_file: Path, *overrides: str) -> ConfigDict:
    """Parses train.py's --config flag with overrides, as train.py does (a fresh flag set)."""
    argv = ["train.py", f"--config={config_file}", *overrides]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", str(config_file), flag_values=flag_values, sys_argv=argv
    )
    flag_values(argv)
    return flag_values.config


def _parses_as(text: str, kind: type) -> bool:
    if kind is bool:
        return text.lower() in ("true", "t", "1", "false", "f", "0")
    try:
        kind(text)
    except ValueError:
        return False
    return True


@QUIET_CONFIG_LOADS
@pytest.mark.parametrize("name", sorted(CONFIG_FILES))
@FUZZ
@given(data=st.data())
def test_unknown_config_keys_are_refused_naming_the_key(name, data):
    config = _parse(CONFIG_FILES[name])
    sections = [k for k, v in config.items() if isinstance(v, ConfigDict)]
    section = data.draw(st.sampled_from(sections))
    key = data.draw(KEY.filter(lambda k: k not in config[section]))
    # ml_collections raises its own AttributeError here, naming the key and a near miss (a
    # ValueError for a Python keyword such as "as").
    refused = (flags.Error, AttributeError, KeyError, ValueError)
    with pytest.raises(refused, match=rf"(?<![a-z0-9_]){key}(?![a-z0-9_])"):
        _parse(CONFIG_FILES[name], f"--config.{section}.{key}=3")


@QUIET_CONFIG_LOADS
@pytest.mark.parametrize("name", sorted(CONFIG_FILES))
@FUZZ
@given(data=st.data())
def test_config_values_of_the_wrong_type_are_refused_naming_the_key(name, data):
    typed = {
        path: type(value)
        for path, value in dotted_fields(_parse(CONFIG_FILES[name])).items()
        if type(value) in (int, float, bool)
    }
    path = data.draw(st.sampled_from(sorted(typed)))
    text = data.draw(
        st.text(alphabet="abcdefxyz.,-_ 1", min_size=1, max_size=8).filter(
            lambda t: not _parses_as(t, typed[path])
        )
    )
    with pytest.raises(flags.IllegalFlagValueError, match=f"--config.{path}="):
        _parse(CONFIG_FILES[name], f"--config.{path}={text}")


def _train_py(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    # train.py parses its flags before it imports JAX: a refused flag costs well under a second.
    return subprocess.run(
        [sys.executable, "train.py", f"--workdir={tmp_path / 'run'}", *args],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("--config.train.batch_size=abc", "config.train.batch_size"),
        ("--config.checkpoint.async_save=maybe", "config.checkpoint.async_save"),
        ("--config.model.cin_layer=3", "cin_layer"),
    ],
)
def test_train_py_refuses_a_bad_flag_naming_it_without_a_traceback(tmp_path, flag, key):
    done = _train_py(tmp_path, flag)
    assert done.returncode != 0
    assert key in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "run").exists(), "nothing is written for a refused command"


# What the tasks pass to `model_config` besides config.model: (config module, fixed fields).
MODEL_FIXED = {
    "xdeepfm": (xdeepfm_ml100k, {"spec": BatchLayout(vocab_size=10, cat_fields=("a", "b"))}),
    "bert4rec": (bert4rec_ml100k, {"num_items": 10, "max_len": 8}),
}


@pytest.mark.parametrize("name", sorted(MODEL_FIXED))
@FUZZ
@given(key=KEY)
def test_model_config_refuses_unknown_model_fields_naming_them(name, key):
    module, fixed = MODEL_FIXED[name]
    config = module.get_config()
    assume(key not in config.model and key not in fixed)
    config.model[key] = 3
    with pytest.raises(ValueError, match=rf"model: unknown fields \['{key}'\]"):
        model_config(config, **fixed)


@pytest.mark.parametrize(
    ("name", "key"), [(name, key) for name, (_, fixed) in MODEL_FIXED.items() for key in fixed]
)
def test_model_config_refuses_model_fields_that_the_task_sets(name, key):
    module, fixed = MODEL_FIXED[name]
    config = module.get_config()
    config.model[key] = 3
    with pytest.raises(ValueError, match=rf"model: unknown fields \['{key}'\]"):
        model_config(config, **fixed)


@pytest.mark.parametrize("sizes", [("8", "8"), (8.5,), (True,)])
def test_layer_sizes_of_the_wrong_type_are_refused_naming_the_field(sizes):
    config = xdeepfm_ml100k.get_config()
    config.model.cin_layers = sizes
    try:
        model_config(config, spec=BatchLayout(vocab_size=10, cat_fields=("a", "b")))
    except (ValueError, TypeError) as e:
        assert isinstance(e, ValueError) and "cin_layers" in str(e), repr(e)
    else:
        raise AssertionError(f"cin_layers={sizes!r} was accepted")


@pytest.mark.parametrize("name", sorted(BASELINES))
@FUZZ
@given(key=KEY)
def test_evaluation_methods_refuse_unknown_fields_naming_them(name, key):
    assume(key not in {f.name for f in dataclasses.fields(BASELINES[name])})
    with pytest.raises(ValueError, match=rf"methods\.{name}: unknown fields \['{key}'\]"):
        make_method(name, {key: 1}, seed=0)


@FUZZ
@given(key=KEY)
def test_deep_evaluation_methods_refuse_unknown_fields_and_overrides(key):
    train_config = "configs/xdeepfm_ml100k.py"
    if key not in ("train_config", "overrides"):
        with pytest.raises(ValueError, match=rf"unknown fields \['{key}'\]"):
            make_method("xdeepfm", {"train_config": train_config, key: 1}, seed=0)
    if key not in xdeepfm_ml100k.get_config().train:
        with pytest.raises(ValueError, match=rf"override train\.{key} is not a field"):
            make_method(
                "xdeepfm", {"train_config": train_config, "overrides": {"train": {key: 1}}}, seed=0
            )


def test_a_deep_evaluation_method_without_train_config_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"methods\.xdeepfm.*train_config"):
        make_method("xdeepfm", {}, seed=0)
