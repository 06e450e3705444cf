"""Generic delimited files and the table reader under every text loader."""

import subprocess
import sys

import numpy as np
import pytest

from shortrec_jax.data import DataError, load
from shortrec_jax.data.delimited import load_delimited
from shortrec_jax.data.grouplens import load_grouplens
from shortrec_jax.data.ids import canonical_ids
from shortrec_jax.data.text_table import read_table


def _file(tmp_path, text: str, name: str = "data.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_user_item_per_line_keeps_file_order_as_time(tmp_path):
    # The sequential-recommendation form: no rating, no time; (1, 10) is seen twice.
    path = _file(tmp_path, "1 10\n1 11\n2 10\n1 10\n", "Beauty.txt")
    ds = load_delimited(path, duplicates="keep")
    assert ds.name == "Beauty"
    assert ds.user_ids.tolist() == ["1", "2"]
    assert ds.item_ids.tolist() == ["10", "11"]
    assert ds.users.tolist() == [0, 0, 1, 0]
    assert ds.items.tolist() == [0, 1, 0, 0]
    assert ds.ratings.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert ds.timestamps.tolist() == [0, 1, 2, 3]
    # The default "last" keeps the later (1, 10), by line order.
    last = load_delimited(path)
    assert last.timestamps.tolist() == [1, 2, 3]
    assert last.items.tolist() == [1, 0, 0]


def test_header_mapping_by_names_with_quotes(tmp_path):
    text = 'ts,score,who,what\n100,4.5,"u, 1",a\n90,2,u2,b\n80,3,"u, 1",b\n'
    path = _file(tmp_path, text, "log.csv")
    ds = load(
        f"csv:{path}",
        columns={"user": "who", "item": "what", "rating": "score", "timestamp": "ts"},
    )
    assert ds.user_ids.tolist() == ["u, 1", "u2"]
    assert ds.users.tolist() == [0, 1, 0]
    assert ds.items.tolist() == [0, 1, 1]
    assert ds.ratings.tolist() == [4.5, 2.0, 3.0]
    assert ds.timestamps.tolist() == [100, 90, 80]


def test_positions_and_rating_column_with_auto_delimiter(tmp_path):
    path = _file(tmp_path, "a::x::3.5::7\nb::y::1::8\n", "r.dat")
    ds = load_delimited(path, columns={"user": 0, "item": 1}, rating_column=2, timestamp_column=3)
    assert ds.user_ids.tolist() == ["a", "b"]
    assert ds.ratings.tolist() == [3.5, 1.0]
    assert ds.timestamps.tolist() == [7, 8]
    named = load_delimited(
        _file(tmp_path, "u\ti\tr\n1\t2\t5\n", "r.tsv"),
        columns=("user", "item", "r"),
        header=True,
        rating_column="r",
        rating_range=(1, 5),
    )
    assert named.ratings.tolist() == [5.0]
    with_header = load_delimited(
        _file(tmp_path, "user_id,item_id\n1,2\n", "h.csv"), columns=("user", "item"), header=True
    )
    assert with_header.user_ids.tolist() == ["1"]


def test_blank_lines_are_skipped_and_lines_still_named_right(tmp_path):
    path = _file(tmp_path, "1,10,4\n\n2,11,5\n\n3,12,nan\n")
    columns = ("user", "item", "rating")
    with pytest.raises(DataError, match=r"data\.txt, line 5: rating must be finite, got nan"):
        load_delimited(path, columns=columns)
    ok = load_delimited(_file(tmp_path, "1,10,4\n\n2,11,5\n", "ok.txt"), columns=columns)
    assert ok.ratings.tolist() == [4.0, 5.0]


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        (
            "1\t10\t4\n",
            {"columns": ("user", "item", "rating"), "delimiter": ","},
            r"line 1: expected 3 fields \(user, item, rating\) separated by ',', got 1; "
            "the delimiter seems wrong",
        ),
        (
            "1,10,4\n2,11\n",
            {"columns": ("user", "item", "rating")},
            r"data\.txt, line 2: expected 3 fields",
        ),
        ("1,10,4\n2,11,4,9\n", {"columns": ("user", "item", "rating")}, r"line 2: .* got 4"),
        (
            "1,10,4\n2,11,good\n",
            {"columns": ("user", "item", "rating")},
            r"data\.txt, line 2: column 'rating' must be a number, got 'good'",
        ),
        (
            "u,i\n1,2\n",
            {"columns": {"user": "u", "item": "item"}},
            r"line 1: no column 'item' in the header \['u', 'i'\]",
        ),
        (
            "1,2\n",
            {"columns": {"user": "u", "item": 1}, "header": False},
            r"no field named 'u'.*needs header=True",
        ),
        ("1,2\n", {"columns": {"user": 0, "item": 5}}, r"item column position 5 is outside"),
        ("1,2\n", {"columns": {"user": 0, "movie": 1}}, r"unknown role\(s\) \['movie'\]"),
        ("1,2\n", {"columns": ("user", "rating")}, r"must name the item column"),
        ("12\n", {}, r"cannot tell the delimiter of '12'"),
        ("", {}, r"empty file"),
    ],
)
def test_bad_input(tmp_path, text, options, message):
    with pytest.raises(DataError, match=message):
        load_delimited(_file(tmp_path, text), **options)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_delimited(tmp_path / "nope.csv")


def test_read_table_chunks_give_the_same_table(tmp_path, monkeypatch):
    # Small chunks force the chunked path: the table and line numbers must not change.
    data = b"".join(b"%d,%d,%d.5\n" % (i, i * 7 % 13, i % 5) for i in range(1000)) + b"\n7,7,7\n"
    names = ("u", "i", "r")
    whole, whole_lines = read_table(data, source="x", names=names, delimiter=",", numeric=True)
    monkeypatch.setattr("shortrec_jax.data.text_table._CHUNK_BYTES", 64)
    chunked, lines = read_table(data, source="x", names=names, delimiter=",", numeric=True)
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(lines, whole_lines)
    assert lines[-1] == 1002 and whole.shape == (1001, 3)
    bad = data + b"8,8,oops\n"
    with pytest.raises(DataError, match=r"x, line 1003: column 'r' must be a number"):
        read_table(bad, source="x", names=names, delimiter=",", numeric=True)


# NumPy 2.4's integer parser crashed the process on the first table (a segmentation fault
# found by tests/test_fuzz.py) and read "\U00066f2a\U00066f2a30" alone as a number; every
# one must be a DataError naming line 4.
NON_ASCII_IDS = [
    (
        "1\\t10\\t4\\t881250949\\n2\\t10\\t3\\t881250950\\n1\\t20\\t5\\t881250951\\n"
        "3\\t\U000dac78\u00c5\x11\U00066f2a30\\t1\\t881250952\\n",
        4,
    ),
    ("1\\t10\\t4\\n2\\t10\\t3\\n1\\t20\\t5\\n3\\t\U00066f2a\U00066f2a30\\t1\\n", 3),
    ("1\\t10\\t4\\n2\\t10\\t3\\n1\\t20\\t5\\n3\\t\u00c5\x1130\\t1\\n", 3),
]


@pytest.mark.parametrize(("rows", "width"), NON_ASCII_IDS)
def test_non_ascii_in_an_id_field_is_a_data_error_naming_the_line(rows, width):
    # In a child process, so that a crash fails this test rather than ending the run.
    names = ("u", "i", "r", "t")[:width]
    code = (
        "from shortrec_jax.data import DataError\n"
        "from shortrec_jax.data.text_table import read_table\n"
        f"data = '{rows}'.encode()\n"
        "try:\n"
        f"    read_table(data, source='r.dat', names={names!r}, delimiter='\\t',\n"
        "               numeric=True, int_columns=(0, 1))\n"
        "except DataError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.startswith("r.dat, line 4: column 'i' must be a whole-number id"), (
        done.stdout
    )


def test_non_ascii_outside_the_numeric_columns_still_loads():
    data = "1,10,caf\u00e9 \U00066f2a\n2,11,\u00c5\n".encode()
    table, lines = read_table(
        data,
        source="x",
        names=("u", "i", "title"),
        delimiter=",",
        numeric=True,
        usecols=(0, 1),
        int_columns=(0, 1),
    )
    np.testing.assert_array_equal(table, [[1, 10], [2, 11]])
    np.testing.assert_array_equal(lines, [1, 2])


def test_read_table_empty_fields_and_usecols():
    data = b"1,,3\n,5,\n"
    table, lines = read_table(
        data, source="x", names=("a", "b", "c"), delimiter=",", numeric=True, empty_as_nan=True
    )
    np.testing.assert_array_equal(table, [[1, np.nan, 3], [np.nan, 5, np.nan]])
    assert lines.tolist() == [1, 2]
    with pytest.raises(DataError, match=r"x, line 1: column 'b' must be a number, got ''"):
        read_table(data, source="x", names=("a", "b", "c"), delimiter=",", numeric=True)
    table, _ = read_table(
        b"1,skip,2\n",
        source="x",
        names=("a", "b", "c"),
        delimiter=",",
        numeric=True,
        usecols=[2, 0],
    )
    assert table.tolist() == [[2.0, 1.0]]


def test_grouplens_ids_beyond_2_53_are_refused_before_rounding(tmp_path):
    # 2**53 + 1 rounds to 2**53 as a float64: parsed through floats, the two users were one
    # and the second row was dropped as a duplicate.
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text(f"{2**53}\t1\t5\t1\n{2**53 + 1}\t1\t4\t2\n")
    with pytest.raises(
        DataError, match=r"u\.data, line 2: column 'user id' must be a whole-number id.*"
    ):
        load_grouplens(folder)
    (folder / "u.data").write_text(f"{2**53}\t1\t5\t1\n{2**53 - 1}\t1\t4\t2\n-{2**53}\t2\t3\t3\n")
    ds = load_grouplens(folder)
    assert ds.user_ids[ds.users].tolist() == [str(2**53), str(2**53 - 1), str(-(2**53))]


def test_integer_id_columns_are_read_as_integers():
    data = b"9007199254740993,2.5\n 7,1\n"
    with pytest.raises(DataError, match=r"x, line 1: column 'u' must be a whole-number id"):
        read_table(data, source="x", names=("u", "r"), delimiter=",", numeric=True, int_columns=[0])
    table, _ = read_table(
        b"9007199254740991,2.5\n 7,1\n",
        source="x",
        names=("u", "r"),
        delimiter=",",
        numeric=True,
        int_columns=[0],
    )
    assert table[:, 0].astype(np.int64).tolist() == [2**53 - 1, 7]
    assert table[:, 1].tolist() == [2.5, 1.0]
    for bad in (b"7.5,1\n", b"1e3,1\n", b",1\n", b"99999999999999999999,1\n"):
        with pytest.raises(DataError, match=r"x, line 1: column 'u' must be a whole-number id"):
            read_table(
                bad, source="x", names=("u", "r"), delimiter=",", numeric=True, int_columns=[0]
            )


def test_canonical_ids_are_exact():
    lines = np.arange(1, 4)
    got = canonical_ids(np.array(["007", " 7.0", str(2**53)]), source="s", column="c", lines=lines)
    assert got.tolist() == ["7", "7", str(2**53)]
    with pytest.raises(DataError, match=r"s, line 2: column 'c' must be a whole-number id"):
        canonical_ids(np.array(["1", f"{2**53 + 1}.0"]), source="s", column="c", lines=lines[:2])


def test_byte_order_mark_is_dropped_with_or_without_a_header(tmp_path):
    headerless = tmp_path / "a.csv"
    headerless.write_bytes("\ufeff1,10\n1,11\n".encode())
    ds = load(f"csv:{headerless}")
    assert ds.user_ids.tolist() == ["1"]
    with_header = tmp_path / "b.csv"
    with_header.write_bytes("\ufeffuserId,movieId\n1,10\n".encode())
    ds = load_delimited(with_header, columns={"user": "userId", "item": "movieId"})
    assert ds.user_ids.tolist() == ["1"] and ds.item_ids.tolist() == ["10"]
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(
        "\ufeffuserId,movieId,rating,timestamp\n1,10,4,5\n".encode()
    )
    assert load_grouplens(folder).user_ids.tolist() == ["1"]


def test_whitespace_around_ids_is_stripped_by_default(tmp_path):
    path = _file(tmp_path, "1, 10\n2,10\n 1 ,11\n")
    ds = load_delimited(path)
    assert ds.user_ids.tolist() == ["1", "2"] and ds.item_ids.tolist() == ["10", "11"]
    with pytest.raises(DataError, match=r"dup\.txt: user 0 and item 0 .* more than once"):
        load_delimited(_file(tmp_path, "1,10\n1, 10\n", "dup.txt"), duplicates="error")
    kept = load_delimited(path, strip_ids=False)
    assert kept.item_ids.tolist() == [" 10", "10", "11"]


@pytest.mark.parametrize("text", ["", "\n \n", "userId,movieId\n", "\ufeffuserId,movieId\n\n"])
def test_header_only_is_an_empty_file(tmp_path, text):
    path = tmp_path / "h.csv"
    path.write_bytes(text.encode())
    with pytest.raises(DataError, match=r"h\.csv: empty file \(no rows\), expected rows with"):
        load_delimited(path, columns={"user": "userId", "item": "movieId"})
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(
        text.replace("userId,movieId", "userId,movieId,rating,timestamp").encode()
    )
    with pytest.raises(DataError, match=r"ratings\.csv: empty file \(no rows\)|line 1: missing"):
        load_grouplens(folder)
