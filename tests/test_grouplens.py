"""GroupLens MovieLens loader: the three layouts, zips, errors, the cache and the download."""

import contextlib
import functools
import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from shortrec_jax.data import DataError, load
from shortrec_jax.data.grouplens import load_grouplens
from shortrec_jax.data.grouplens_release import default_cache_dir, load_grouplens_release
from shortrec_jax.data.grouplens_side import ML100K_GENRES, title_year

# -- fixtures in the three layouts -------------------------------------------------------------


CHILDRENS = "Children's"


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


ML100K = {
    # user item rating timestamp; item 40 is in u.item but never rated.
    "u.data": (
        "1\t10\t4\t881250949\n2\t10\t3\t881250950\n1\t20\t5\t881250951\n3\t30\t1\t881250952\n"
    ),
    "u.genre": "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n",
    "u.item": (
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{_flags('Animation', CHILDRENS, 'Comedy')}\n"
        f"20|Café (2001)|01-Jan-2001||http://x|{_flags('Drama')}\n"
        f"30|unknown||||{_flags('unknown')}\n"
        f"40|Heat|15-Dec-1995||http://x|{_flags('Action', 'Crime', 'Thriller')}\n"
    ),
    "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n",
}
ML1M = {
    "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    "movies.dat": (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "2000::Lethal Weapon (1987)::Action|Comedy|Crime|Drama\n"
    ),
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
}
ML10M = {
    "ratings.dat": "1::122::4.5::838985046\n1::185::0.5::838983525\n2::122::3::838983392\n",
    "movies.dat": "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action|Crime\n",
    # A tag is free text: "a::b" holds the delimiter; repeated tags count once.
    "tags.dat": (
        "15::122::dark hero::1215184630\n"
        "20::122::dark hero::1215184631\n"
        "20::185::a::b::1188263867\n"
    ),
}
ML_LATEST = {
    "ratings.csv": (
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n6,1,0.5,845553522\n"
    ),
    "movies.csv": (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '3,"American President, The (1995)",Comedy|Drama|Romance\n'
        '9,"Say ""Hi"" (2006–2007)",(no genres listed)\n'
    ),
    "tags.csv": (
        "userId,movieId,tag,timestamp\n"
        "2,1,pixar,1445714994\n"
        '2,3,"funny, witty",1445714996\n'
        "7,1,pixar,1445715000\n"
        "7,1,fun,1445715001\n"
    ),
    "links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n",
}


def _write(folder: Path, files: dict[str, str], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text.encode(encoding))
    return folder


def _zip(path: Path, top: str, files: dict[str, str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"{top}/{name}", text.encode(encoding))
    return path


def _genres(ds) -> list[list[str]]:
    return ds.item_multi_hot["genres"].to_lists()


# -- the three layouts -------------------------------------------------------------------------


def test_ml100k_layout_latin1_genres_from_u_genre_and_user_features(tmp_path):
    ds = load_grouplens(_write(tmp_path / "ml-100k", ML100K, encoding="latin-1"))
    assert ds.name == "ml-100k"
    assert ds.user_ids.tolist() == ["1", "2", "3"]
    assert ds.item_ids.tolist() == ["10", "20", "30", "40"]  # 40: listed, never rated
    assert ds.users.tolist() == [0, 1, 0, 2]
    assert ds.items.tolist() == [0, 0, 1, 2]
    assert ds.ratings.tolist() == [4.0, 3.0, 5.0, 1.0]
    assert ds.timestamps.tolist() == [881250949, 881250950, 881250951, 881250952]
    assert ds.item_titles.tolist() == ["Toy Story (1995)", "Café (2001)", "unknown", "Heat"]
    # "Heat" has no year in its title: the release date gives it; "unknown" has neither.
    np.testing.assert_array_equal(ds.item_numeric["year"], [1995, 2001, np.nan, 1995])
    assert _genres(ds) == [
        ["Animation", "Children's", "Comedy"],
        ["Drama"],
        ["unknown"],
        ["Action", "Crime", "Thriller"],
    ]
    assert ds.item_tags.to_lists() == _genres(ds)
    assert ds.user_features["age"].tolist() == ["24", "53", "23"]
    assert ds.user_features["gender"].tolist() == ["M", "F", "M"]
    assert ds.user_features["occupation"].tolist() == ["technician", "other", "writer"]
    assert ds.user_features["zip_code"].tolist() == ["85711", "94043", "32067"]


def test_ml1m_layout_from_zip_with_top_folder(tmp_path):
    ds = load_grouplens(_zip(tmp_path / "ml-1m.zip", "ml-1m", ML1M, encoding="latin-1"))
    assert ds.name == "ml-1m"
    assert ds.item_ids.tolist() == ["1193", "661", "2000"]
    assert ds.users.tolist() == [0, 0, 1]
    assert ds.items.tolist() == [0, 1, 0]
    assert ds.ratings.tolist() == [5.0, 3.0, 4.0]
    assert ds.timestamps.tolist() == [978300760, 978302109, 978298413]
    assert ds.item_titles[0] == "One Flew Over the Cuckoo's Nest (1975)"
    np.testing.assert_array_equal(ds.item_numeric["year"], [1975, 1996, 1987])
    assert _genres(ds)[1] == ["Animation", "Children's", "Musical"]
    assert ds.user_features["gender"].tolist() == ["F", "M"]
    assert ds.user_features["age"].tolist() == ["1", "56"]
    assert ds.user_features["occupation"].tolist() == ["10", "16"]
    assert ds.user_features["zip_code"].tolist() == ["48067", "70072"]


def test_ml10m_layout_half_stars_and_tags_from_zip(tmp_path):
    # The official ml-10m.zip unpacks to ml-10M100K/.
    ds = load_grouplens(_zip(tmp_path / "ml-10m.zip", "ml-10M100K", ML10M))
    assert ds.name == "ml-10m"
    assert ds.ratings.tolist() == [4.5, 0.5, 3.0]
    assert ds.item_titles.tolist() == ["Boomerang (1992)", "Net, The (1995)"]
    assert ds.item_tags.to_lists() == [
        ["Comedy", "Romance", "dark hero"],
        ["Action", "Crime", "a::b"],
    ]
    assert _genres(ds) == [["Comedy", "Romance"], ["Action", "Crime"]]
    assert ds.user_features == {}


def test_csv_layout_quoted_titles_no_genres_and_user_tags(tmp_path):
    ds = load_grouplens(_write(tmp_path / "ml-latest-small", ML_LATEST))
    assert ds.user_ids.tolist() == ["1", "6"]
    assert ds.item_ids.tolist() == ["1", "3", "9"]
    assert ds.users.tolist() == [0, 0, 1]
    assert ds.items.tolist() == [0, 1, 0]
    assert ds.ratings.tolist() == [4.0, 4.5, 0.5]
    assert ds.item_titles.tolist() == [
        "Toy Story (1995)",
        "American President, The (1995)",
        'Say "Hi" (2006–2007)',
    ]
    np.testing.assert_array_equal(ds.item_numeric["year"], [1995, 1995, 2006])
    assert _genres(ds) == [
        ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
        ["Comedy", "Drama", "Romance"],
        [],
    ]
    assert ds.item_tags.to_lists() == [
        ["Adventure", "Animation", "Children", "Comedy", "Fantasy", "pixar", "fun"],
        ["Comedy", "Drama", "Romance", "funny, witty"],
        [],
    ]


def test_csv_layout_zipped_and_through_load(tmp_path):
    zipped = _zip(tmp_path / "ml-latest-small.zip", "ml-latest-small", ML_LATEST)
    from_zip = load(f"grouplens:{zipped}")
    from_folder = load_grouplens(_write(tmp_path / "ml-latest-small", ML_LATEST))
    assert from_zip.name == from_folder.name == "ml-latest-small"
    np.testing.assert_array_equal(from_zip.ratings, from_folder.ratings)
    assert from_zip.item_tags.to_lists() == from_folder.item_tags.to_lists()


def test_folder_above_the_release_folder(tmp_path):
    _write(tmp_path / "downloads" / "ml-1m", ML1M, encoding="latin-1")
    assert load_grouplens(tmp_path / "downloads", name="ml-1m").num_interactions == 3


def test_title_year():
    assert title_year("Heat (1995)") == 1995
    assert title_year("Cosmos (1980– )") == 1980
    assert np.isnan(title_year("Babylon 5"))
    assert np.isnan(title_year("1984"))


def test_duplicates_policy_is_passed_on(tmp_path):
    files = dict(ML1M, **{"ratings.dat": "1::1193::5::10\n1::1193::3::20\n"})
    folder = _write(tmp_path / "ml-1m", files, encoding="latin-1")
    assert load_grouplens(folder).ratings.tolist() == [3.0]
    assert load_grouplens(folder, duplicates="mean").ratings.tolist() == [4.0]
    with pytest.raises(DataError, match="more than once"):
        load_grouplens(folder, duplicates="error")


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "file", "text", "message"),
    [
        (
            "100k",
            "u.data",
            "1,10,4,881250949\n",
            r"u\.data, line 1: expected 4 fields .* got 1; the delimiter seems wrong",
        ),
        ("100k", "u.data", "1\t10\t4\t1\n2\t10\t3\n", r"u\.data, line 2: expected 4 fields"),
        (
            "100k",
            "u.data",
            "1\t10\t4\t1\n2\t10\tnan\t1\n",
            r"u\.data, line 2: rating must be in \[1, 5\]",
        ),
        ("100k", "u.item", "10|Toy Story (1995)|x||y\n", r"u\.item, line 1: expected 24 fields"),
        (
            "100k",
            "u.item",
            "10|Toy|x||y|" + "|".join("2" * 19) + "\n",
            r"u\.item, line 1: genre flag 'unknown' must be 0 or 1",
        ),
        (
            "1m",
            "ratings.dat",
            "1::1193::5::1\n1::661::6::2\n",
            r"ratings\.dat, line 2: rating must be in \[1, 5\], got 6",
        ),
        (
            "1m",
            "ratings.dat",
            "1::1193::5::1\nx::661::3::2\n",
            r"ratings\.dat, line 2: column 'UserID' must be a whole-number id.*got 'x'",
        ),
        ("1m", "ratings.dat", "1\t1193\t5\t1\n", r"got 1; the delimiter seems wrong"),
        (
            "1m",
            "ratings.dat",
            "1.5::1193::5::1\n",
            r"line 1: column 'UserID' must be a whole-number id",
        ),
        ("1m", "movies.dat", "1193::Drama\n", r"movies\.dat, line 1: expected 3 fields"),
        (
            "csv",
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1,4,1\n1,3,4\n",
            r"ratings\.csv, line 3: expected 4 fields",
        ),
        (
            "csv",
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1,nan,1\n",
            r"ratings\.csv, line 2: rating must be in \[0\.5, 5\], got nan",
        ),
        (
            "csv",
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,1,0,1\n",
            r"line 2: rating must be in \[0\.5, 5\], got 0",
        ),
        (
            "csv",
            "ratings.csv",
            "userId,movieId,score,timestamp\n1,1,4,1\n",
            r"ratings\.csv, line 1: missing column\(s\) \['rating'\]",
        ),
        ("csv", "ratings.csv", "userId;movieId;rating;timestamp\n1;1;4;1\n", r"separated by ','\?"),
        (
            "csv",
            "movies.csv",
            "movieId,name,genres\n1,Toy Story (1995),Comedy\n",
            r"movies\.csv, line 1: missing column\(s\) \['title'\]",
        ),
        (
            "csv",
            "movies.csv",
            "movieId,title,genres\nx,Toy Story (1995),Comedy\n",
            r"movies\.csv, line 2: column 'movieId' must be a whole-number id, got 'x'",
        ),
        (
            "csv",
            "movies.csv",
            'movieId,title,genres\n1,"Toy Story, (1995)",Comedy\n2,Heat (1995)\n',
            r"movies\.csv, line 3: expected 3 fields \(movieId, title, genres\), got 2",
        ),
        (
            "csv",
            "tags.csv",
            "userId,movieId,tag,timestamp\n1,1,a,1\n1,1.5,b,2\n",
            r"tags\.csv, line 3: column 'movieId' must be a whole-number id, got '1\.5'",
        ),
        (
            "1m",
            "users.dat",
            "1::F::1::10::48067\nx::M::56::16::70072\n",
            r"users\.dat, line 2: column 'user id' must be a whole-number id, got 'x'",
        ),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, layout, file, text, message):
    files, encoding = {
        "100k": (ML100K, "latin-1"),
        "1m": (ML1M, "latin-1"),
        "csv": (ML_LATEST, "utf-8"),
    }[layout]
    folder = _write(tmp_path / "release", dict(files, **{file: text}), encoding=encoding)
    with pytest.raises(DataError, match=message):
        load_grouplens(folder)


def test_missing_ratings_file(tmp_path):
    folder = _write(tmp_path / "ml-x", {"movies.csv": ML_LATEST["movies.csv"]})
    with pytest.raises(DataError, match=r"no MovieLens ratings file.*\['movies\.csv'\]"):
        load_grouplens(folder)
    with pytest.raises(DataError, match="no such folder or zip file"):
        load_grouplens(tmp_path / "nowhere")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a zip file"):
        load_grouplens(tmp_path / "broken.zip")


def test_bad_row_in_a_zip_names_the_member(tmp_path):
    files = dict(ML_LATEST, **{"ratings.csv": "userId,movieId,rating,timestamp\n1,1,9,1\n"})
    zipped = _zip(tmp_path / "ml-latest.zip", "ml-latest", files)
    with pytest.raises(DataError, match=r"ml-latest\.zip/ml-latest/ratings\.csv, line 2"):
        load_grouplens(zipped)


# -- releases: cache and download --------------------------------------------------------------


@pytest.fixture
def release_zip(tmp_path) -> Path:
    return _zip(tmp_path / "served" / "ml-latest-small.zip", "ml-latest-small", ML_LATEST)


class _Server:
    """A real HTTP server on 127.0.0.1 serving a folder, recording the paths asked for."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                server.requests.append(self.path)

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local_only(monkeypatch):
    """Refuses every connection that is not to 127.0.0.1, so no test can reach the network."""
    original = socket.create_connection

    def guarded(address, *args, **kwargs):
        if address[0] != "127.0.0.1":
            raise AssertionError(f"test tried to connect to {address}")
        return original(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_release_from_path_and_from_cache(tmp_path, release_zip, monkeypatch):
    ds = load_grouplens_release("ml-latest-small", path=release_zip)
    assert ds.name == "ml-latest-small" and ds.num_interactions == 3
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-latest-small.zip").write_bytes(release_zip.read_bytes())
    assert load("ml-latest-small", cache_dir=cache).num_interactions == 3
    monkeypatch.setenv("SHORTREC_JAX_CACHE", str(cache))
    assert default_cache_dir() == cache
    assert load("ml-latest-small").num_interactions == 3


def test_release_not_cached_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"pass download=True .* or path="):
        load_grouplens_release("ml-1m", cache_dir=tmp_path)
    with pytest.raises(DataError, match="unknown GroupLens release 'ml-2m'"):
        load_grouplens_release("ml-2m", cache_dir=tmp_path)


def test_download_verifies_the_published_md5(tmp_path, release_zip, local_only):
    site = release_zip.parent
    (site / "ml-latest-small.zip.md5").write_text(f"{_md5(release_zip)}  ml-latest-small.zip\n")
    cache = tmp_path / "cache"
    with _Server(site) as server:
        ds = load_grouplens_release(
            "ml-latest-small", download=True, cache_dir=cache, base_url=server.url
        )
        assert server.requests == ["/ml-latest-small.zip.md5", "/ml-latest-small.zip"]
        # A second load finds the cached zip and asks the server nothing.
        load_grouplens_release(
            "ml-latest-small", download=True, cache_dir=cache, base_url=server.url
        )
        assert len(server.requests) == 2
    assert ds.num_interactions == 3
    assert sorted(p.name for p in cache.iterdir()) == ["ml-latest-small.zip"]
    assert (cache / "ml-latest-small.zip").read_bytes() == release_zip.read_bytes()


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, release_zip, local_only):
    site = release_zip.parent
    (site / "ml-latest-small.zip.md5").write_text("0" * 32 + "  ml-latest-small.zip\n")
    cache = tmp_path / "cache"
    with _Server(site) as server:
        with pytest.raises(DataError, match="md5 checksum mismatch"):
            load_grouplens_release(
                "ml-latest-small", download=True, cache_dir=cache, base_url=server.url
            )
        assert list(cache.iterdir()) == []
        with pytest.raises(DataError, match="sha256 checksum mismatch"):
            load_grouplens_release(
                "ml-latest-small",
                download=True,
                cache_dir=cache,
                base_url=server.url,
                sha256="ab" * 32,
            )
        assert list(cache.iterdir()) == []
        # An explicit, correct checksum is used instead of the (here wrong) published one.
        sha256 = hashlib.sha256(release_zip.read_bytes()).hexdigest()
        ds = load_grouplens_release(
            "ml-latest-small", download=True, cache_dir=cache, base_url=server.url, sha256=sha256
        )
        assert ds.num_interactions == 3
        assert server.requests.count("/ml-latest-small.zip.md5") == 1


def test_download_errors_are_clear(tmp_path, local_only):
    with _Server(tmp_path) as server:
        with pytest.raises(DataError, match=r"ml-1m\.zip\.md5: the server answered HTTP 404.*md5="):
            load_grouplens_release(
                "ml-1m", download=True, cache_dir=tmp_path / "c", base_url=server.url
            )
        with pytest.raises(DataError, match=r"ml-1m\.zip: the server answered HTTP 404"):
            load_grouplens_release(
                "ml-1m", download=True, cache_dir=tmp_path / "c", base_url=server.url, md5="0" * 32
            )
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(DataError, match="cannot download"):
        load_grouplens_release(
            "ml-1m",
            download=True,
            cache_dir=tmp_path / "c",
            base_url=f"http://127.0.0.1:{closed_port}",
        )
    assert not any((tmp_path / "c").iterdir())


def test_download_that_breaks_off_keeps_nothing(tmp_path, local_only):
    class Truncating(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"PK" * 5)  # 10 of the promised 1000 bytes, then the socket closes

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncating)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(DataError, match="the download broke off"):
            load_grouplens_release(
                "ml-1m", download=True, cache_dir=tmp_path / "c", base_url=url, md5="0" * 32
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list((tmp_path / "c").iterdir()) == []
