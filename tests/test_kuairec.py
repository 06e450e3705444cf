"""KuaiRec loader on small files in KuaiRec 2.0's format."""

from pathlib import Path

import numpy as np
import pytest

from shortrec_jax.data import DataError, load
from shortrec_jax.data.kuairec import load_kuairec

HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"
MATRIX = HEADER + (
    "14,148,4381,6067,2020-07-05 05:27:48.378,20200705.0,1593898068.378,0.722103\n"
    "14,183,11635,6100,2020-07-05 05:28:00.057,20200705.0,1593898080.057,1.907377\n"
    "14,3649,22422,10867,2020-07-05 05:29:09.479,20200705.0,1593898149.479,2.063311\n"
    "19,148,0,6067,,,,0.0\n"  # no time: dropped by default
    "19,183,12000,6100,2020-07-05 06:00:00.000,20200705.0,1593900000.0,1.967213\n"
    "19,183,13000,6100,2020-07-05 07:00:00.000,20200705.0,1593903600.0,2.131148\n"
)
CATEGORIES = 'video_id,feat\n148,"[27, 9]"\n183,[5]\n3649,"[]"\n999,"[1]"\n'
USERS = (
    "user_id,user_active_degree,is_live_streamer,follow_user_num,follow_user_num_range,"
    "register_days,register_days_range,onehot_feat0,onehot_feat1\n"
    '14,high_active,0,5,"(0,10]",107,61-90,0,1\n'
    '19,full_active,1,386,"(250,500]",327,181-365,3,\n'
    '77,UNKNOWN,0,0,"0",1,0-30,0,0\n'
)


def _folder(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "KuaiRec 2.0" / "data"
    folder.mkdir(parents=True)
    defaults = {
        "small_matrix": MATRIX,
        "big_matrix": MATRIX,
        "item_categories": CATEGORIES,
        "user_features": USERS,
    }
    for name, text in {**defaults, **files}.items():
        if text is not None:
            (folder / f"{name}.csv").write_text(text)
    return folder


def test_small_matrix_values(tmp_path):
    ds = load_kuairec(_folder(tmp_path))
    assert ds.name == "kuairec-small"
    assert ds.user_ids.tolist() == ["14", "19"]
    assert ds.item_ids.tolist() == ["148", "183", "3649"]
    assert ds.users.tolist() == [0, 0, 0, 1, 1]
    assert ds.items.tolist() == [0, 1, 2, 1, 1]  # repeated views of 183 are kept
    np.testing.assert_allclose(ds.ratings, [0.722103, 1.907377, 2.063311, 1.967213, 2.131148])
    assert ds.timestamps.tolist() == [1593898068, 1593898080, 1593898149, 1593900000, 1593903600]
    assert ds.dropped == {"rows without a timestamp": 1}
    assert ds.extra["label"].dtype == np.float32
    assert ds.extra["label"].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]  # watch ratio >= 2
    np.testing.assert_allclose(ds.extra["play_duration"], [4.381, 11.635, 22.422, 12.0, 13.0])
    np.testing.assert_allclose(ds.item_numeric["duration"], [6.067, 6.1, 10.867])
    # Video 999 has a category but no view: it is not in the catalogue.
    assert ds.item_multi_hot["tags"].to_lists() == [["27", "9"], ["5"], []]
    assert ds.item_tags.to_lists() == [["27", "9"], ["5"], []]
    # Raw counts with a bucketed *_range twin are left out.
    assert sorted(ds.user_features) == [
        "follow_user_num_range",
        "is_live_streamer",
        "onehot_feat0",
        "onehot_feat1",
        "register_days_range",
        "user_active_degree",
    ]
    assert ds.user_features["user_active_degree"].tolist() == ["high_active", "full_active"]
    assert ds.user_features["follow_user_num_range"].tolist() == ["(0,10]", "(250,500]"]
    assert ds.user_features["onehot_feat1"].tolist() == ["1", ""]


def test_options_threshold_missing_timestamps_and_duplicates(tmp_path):
    folder = _folder(tmp_path)
    ds = load_kuairec(folder, label_threshold=1.9, missing_timestamps="zero")
    assert ds.num_interactions == 6 and ds.dropped == {}
    assert ds.timestamps[3] == 0
    assert ds.extra["label"].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    last = load_kuairec(folder, duplicates="last")
    assert last.ratings.tolist() == pytest.approx([0.722103, 1.907377, 2.063311, 2.131148])
    assert last.extra["play_duration"].tolist() == pytest.approx([4.381, 11.635, 22.422, 13.0])
    assert last.dropped == {
        "rows without a timestamp": 1,
        "duplicate interactions (duplicates='last')": 1,
    }


def test_big_matrix_folder_above_data_and_optional_files(tmp_path):
    folder = _folder(tmp_path, item_categories=None, user_features=None)
    ds = load(f"kuairec:{folder.parent}", matrix="big")
    assert ds.name == "kuairec-big"
    assert ds.num_interactions == 5
    assert ds.item_tags is None and ds.user_features == {}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"small_matrix": HEADER + "14,148,1,1,t,d,1.0,-0.5\n"},
            r"small_matrix\.csv, line 2: rating must be in \[0, inf\], got -0.5",
        ),
        (
            {"small_matrix": HEADER + "14,148,1,1,t,d,1.0,1\n14,183,1,1,t,d,2.0,\n"},
            r"small_matrix\.csv, line 3: rating must be in \[0, inf\], got nan",
        ),
        (
            {"small_matrix": HEADER + "14,148,1,1,t,d,1.0,1\n14,x,1,1,t,d,2.0,1\n"},
            r"small_matrix\.csv, line 3: column 'video_id' must be a whole-number id.*got 'x'",
        ),
        (
            {"small_matrix": HEADER + "14,148,1,1,t,d,1.0\n"},
            r"small_matrix\.csv, line 2: expected 8 fields",
        ),
        (
            {"small_matrix": "user_id,video_id,play_duration\n14,148,1\n"},
            r"small_matrix\.csv, line 1: missing column\(s\) \['watch_ratio'\]",
        ),
        (
            {"item_categories": "video_id,feat\n148,27\n"},
            r"item_categories\.csv, line 2: column 'feat' must be a list like",
        ),
        ({"small_matrix": None}, r"no small_matrix\.csv"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, files, message):
    with pytest.raises(DataError, match=message):
        load_kuairec(_folder(tmp_path, **files))


def test_bad_options(tmp_path):
    folder = _folder(tmp_path)
    with pytest.raises(DataError, match="matrix='medium'"):
        load_kuairec(folder, matrix="medium")
    with pytest.raises(DataError, match="missing_timestamps='keep'"):
        load_kuairec(folder, missing_timestamps="keep")
