"""The tfds: source, on a mocked MovieLens builder (no download), and its missing-extra error."""

import sys

import numpy as np
import pytest

from shortrec_jax.data import DataError, load

# (user, movie, rating, time, title, genre labels, male, age bucket, age, occupation, zip)
EXAMPLES = [
    (
        "7",
        "50",
        5.0,
        881250949,
        "Star Wars (1977)",
        [0, 1, 15],
        True,
        25.0,
        28.0,
        "programmer",
        "55105",
    ),
    (
        "8",
        "50",
        3.0,
        881250950,
        "Star Wars (1977)",
        [0, 1, 15],
        False,
        35.0,
        40.0,
        "writer",
        "10001",
    ),
    ("7", "20", 4.0, 881250951, "Unknown Film", [20], True, 25.0, 28.0, "programmer", "55105"),
    # The same pair as the first example, later: the default duplicates="last" keeps this one.
    (
        "7",
        "50",
        1.0,
        881250960,
        "Star Wars (1977)",
        [0, 1, 15],
        True,
        25.0,
        28.0,
        "programmer",
        "55105",
    ),
]


def test_movielens_ratings_builder(tmp_path):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def as_dataset(builder, *args, **kwargs):
        def examples():
            for u, m, r, t, title, genres, male, bucket, age, job, zip_code in EXAMPLES:
                yield {
                    "user_id": u.encode(),
                    "movie_id": m.encode(),
                    "user_rating": np.float32(r),
                    "timestamp": np.int64(t),
                    "movie_title": title.encode(),
                    "movie_genres": np.asarray(genres, dtype=np.int64),
                    "user_gender": male,
                    "bucketized_user_age": np.float32(bucket),
                    "raw_user_age": np.float32(age),
                    "user_occupation_label": np.int64(0),
                    "user_occupation_text": job.encode(),
                    "user_zip_code": zip_code.encode(),
                }

        scalar = {
            "user_id": tf.string,
            "movie_id": tf.string,
            "user_rating": tf.float32,
            "timestamp": tf.int64,
            "movie_title": tf.string,
            "user_gender": tf.bool,
            "bucketized_user_age": tf.float32,
            "raw_user_age": tf.float32,
            "user_occupation_label": tf.int64,
            "user_occupation_text": tf.string,
            "user_zip_code": tf.string,
        }
        signature = {k: tf.TensorSpec((), dtype) for k, dtype in scalar.items()}
        signature["movie_genres"] = tf.TensorSpec((None,), tf.int64)
        return tf.data.Dataset.from_generator(examples, output_signature=signature)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        ds = load("tfds:movielens/100k-ratings", data_dir=tmp_path, batch_size=3)

    assert ds.name == "movielens/100k-ratings"
    assert ds.user_ids.tolist() == ["7", "8"]
    assert ds.item_ids.tolist() == ["50", "20"]
    assert ds.users.tolist() == [1, 0, 0]
    assert ds.items.tolist() == [0, 1, 0]
    assert ds.ratings.tolist() == [3.0, 4.0, 1.0]
    assert ds.timestamps.tolist() == [881250950, 881250951, 881250960]
    assert ds.item_titles.tolist() == ["Star Wars (1977)", "Unknown Film"]
    np.testing.assert_array_equal(ds.item_numeric["year"], [1977, np.nan])
    # Labels 0, 1, 15 of the builder's genre names; 20 is "(no genres listed)".
    assert ds.item_multi_hot["genres"].to_lists() == [["Action", "Adventure", "Sci-Fi"], []]
    assert ds.item_tags.to_lists() == [["Action", "Adventure", "Sci-Fi"], []]
    assert ds.user_features["gender"].tolist() == ["M", "F"]
    assert ds.user_features["age"].tolist() == ["28", "40"]
    assert ds.user_features["age_bucket"].tolist() == ["25", "35"]
    assert ds.user_features["occupation"].tolist() == ["programmer", "writer"]
    assert ds.user_features["zip_code"].tolist() == ["55105", "10001"]


def test_missing_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match=r'pip install "shortrec-jax\[tfds\]"'):
        load("tfds:movielens/100k-ratings")
