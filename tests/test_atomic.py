"""RecBole atomic files: the bundled MovieLens 100K and bad input on small fixture files."""

import numpy as np
import pytest

from shortrec_jax.data import DataError, load
from shortrec_jax.data.atomic import load_atomic, read_atomic

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
# (u1, i1) three times: at t=10 (rating 3), t=30 (5) and t=15 (1).
DUPLICATED = INTER_HEADER + (
    "u1\ti1\t3\t10\nu1\ti2\t4\t20\nu1\ti1\t5\t30\nu2\ti1\t2\t5\nu1\ti1\t1\t15\n"
)


def _atomic(tmp_path, name: str = "toy", **files: str):
    folder = tmp_path / name
    folder.mkdir()
    for ext, text in files.items():
        (folder / f"{name}.{ext}").write_text(text)
    return folder


def test_bundled_ml100k():
    ds = load("ml-100k")
    assert ds.name == "ml-100k"
    assert (ds.num_interactions, ds.num_users, ds.num_items) == (100_000, 943, 1_682)
    assert ds.ratings.min() == 1 and ds.ratings.max() == 5
    genres = ds.genres().vocabulary().tolist()
    assert len(genres) == 19 and "unknown" in genres
    assert ds.kg_triples.shape == (91_631, 3)
    assert int(np.sum(ds.item_entities != "")) == 1_598
    assert sorted(ds.user_features) == ["age", "gender", "occupation", "zip_code"]
    assert ds.dropped == {}


def test_side_files(tmp_path):
    folder = _atomic(
        tmp_path,
        inter=INTER_HEADER + "u1\ti1\t3\t10\nu2\ti2\t4\t20\n",
        user="user_id:token\tage:token\nu2\t30\nu1\t20\nu9\t99\n",
        item=(
            "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
            "i2\tHeat\tunknown\tAction Crime\ni1\tToy Story\t1995\tAnimation\ni3\tSolo\t2018\t\n"
        ),
    )
    ds = load(f"atomic:{folder}")
    assert ds.item_ids.tolist() == ["i1", "i2", "i3"]  # i3: described, never rated
    assert ds.user_features["age"].tolist() == ["20", "30"]
    assert ds.item_titles.tolist() == ["Toy Story", "Heat", "Solo"]
    np.testing.assert_array_equal(ds.item_numeric["year"], [1995, np.nan, 2018])
    assert ds.genres().to_lists() == [["Animation"], ["Action", "Crime"], []]


@pytest.mark.parametrize(
    ("policy", "ratings", "timestamps"),
    [
        # Rows kept in file order. last: the t=30 row; first: the t=10 row;
        # mean: (3 + 5 + 1) / 3 = 3 at the latest time.
        ("last", [4, 5, 2], [20, 30, 5]),
        ("first", [3, 4, 2], [10, 20, 5]),
        ("mean", [4, 3, 2], [20, 30, 5]),
        ("keep", [3, 4, 5, 2, 1], [10, 20, 30, 5, 15]),
    ],
)
def test_duplicate_policies(tmp_path, policy, ratings, timestamps):
    ds = load_atomic(_atomic(tmp_path, inter=DUPLICATED), duplicates=policy)
    assert ds.ratings.tolist() == ratings
    assert ds.timestamps.tolist() == timestamps
    dropped = 5 - len(ratings)
    key = f"duplicate interactions (duplicates={policy!r})"
    assert ds.dropped == ({key: dropped} if dropped else {})


def test_duplicate_policy_error_and_unknown(tmp_path):
    folder = _atomic(tmp_path, inter=DUPLICATED)
    with pytest.raises(DataError, match="interact more than once"):
        load_atomic(folder, duplicates="error")
    with pytest.raises(DataError, match="duplicates='newest' is not one of"):
        load_atomic(folder, duplicates="newest")


@pytest.mark.parametrize(
    ("inter", "message"),
    [
        (
            "user_id\titem_id:token\n",
            r"toy\.inter, line 1: header field 'user_id' must be 'name:type'",
        ),
        ("user_id:token\titem_id:int\n", r"line 1: header field 'item_id:int'"),
        ("user_id:token item_id:token\n", r"is the file tab-separated\?"),
        (INTER_HEADER + "u1\ti1\t3\t10\nu2\ti2\n", r"toy\.inter, line 3: expected 4 tab-separated"),
        (
            INTER_HEADER + "u1\ti1\t3\t10\nu2\ti2\tgood\t20\n",
            r"toy\.inter, line 3: column 'rating' must be a number, got 'good'",
        ),
        (
            INTER_HEADER + "u1\ti1\t3\t10\nu2\ti2\tnan\t20\n",
            r"toy\.inter, line 3: rating must be finite, got nan",
        ),
        ("item_id:token\ni1\n", r"missing column\(s\) \['user_id'\]"),
        ("", r"empty file"),
        (INTER_HEADER, r"toy\.inter: empty file \(no rows\)"),
        ("\ufeff" + INTER_HEADER + "\n", r"toy\.inter: empty file \(no rows\)"),
    ],
)
def test_bad_inter_file(tmp_path, inter, message):
    with pytest.raises(DataError, match=message):
        load_atomic(_atomic(tmp_path, inter=inter))


def test_rating_range(tmp_path):
    folder = _atomic(tmp_path, inter=INTER_HEADER + "u1\ti1\t3\t10\nu2\ti2\t6\t20\n")
    with pytest.raises(DataError, match=r"line 3: rating must be in \[1, 5\], got 6"):
        load_atomic(folder, rating_range=(1, 5))


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_atomic(tmp_path / "absent")
    with pytest.raises(DataError, match=r"no toy\.inter"):
        load_atomic(_atomic(tmp_path, item="item_id:token\ni1\n"))


def test_kg_needs_link(tmp_path):
    kg = "head_id:token\trelation_id:token\ttail_id:token\nm.1\tdirected_by\tm.2\n"
    folder = _atomic(tmp_path, inter=INTER_HEADER + "u1\ti1\t3\t10\n", kg=kg)
    with pytest.raises(DataError, match=r"toy\.kg needs a toy\.link file"):
        load_atomic(folder)
    (folder / "toy.link").write_text("item_id:token\tentity_id:token\ni1\tm.1\n")
    ds = load_atomic(folder)
    assert ds.kg_triples.tolist() == [["m.1", "directed_by", "m.2"]]
    assert ds.item_entities.tolist() == ["m.1"]


def test_read_atomic_column_types(tmp_path):
    path = tmp_path / "x.item"
    path.write_text(
        "item_id:token\ttags:token_seq\tscore:float\tvec:float_seq\ni1\ta b\t0.5\t1 2\n"
    )
    cols = read_atomic(path)
    assert cols["item_id"].tolist() == ["i1"]
    assert cols["tags"].to_lists() == [["a", "b"]]
    assert cols["score"].tolist() == [0.5]
    assert cols["vec"].to_lists() == [["1", "2"]]


def test_bad_rating_after_blank_lines_names_its_real_line(tmp_path):
    folder = tmp_path / "gaps"
    folder.mkdir()
    (folder / "gaps.inter").write_text(
        "user_id:token\titem_id:token\trating:float\n1\t2\t3\n\n\n2\t3\tnan\n"
    )
    with pytest.raises(DataError, match=r"gaps\.inter, line 5: rating must be finite"):
        load(f"atomic:{folder}")
