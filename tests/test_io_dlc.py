"""DeepLabCut reader: the five real public CSVs against an independent pandas read, .h5 twins,
labelled-data variants, multi-animal and broken files. No database."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.io.dlc import FEATURES, DLCError, map_bodyparts, read_dlc

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
DLC_DIR = REAL / "deeplabcut_csv" / "DeepLabCut"

VIDEO_FILES = [
    "vid1_camera-1DLC_resnet50_TESTNov4shuffle1_10filtered.csv",
    "vid1_camera-2DLC_resnet50_TESTNov4shuffle2_10filtered.csv",
    "vid1_camera-1DeepCut_resnet50_TESTAug16shuffle1_5filtered.csv",
]
LABELLED_FILES = ["CollectedData_Pranav.csv", "CollectedData_Mackenzie.csv"]
#: file -> (n_frames, bodyparts, has likelihood)
EXPECTED = {
    **{f: (12, ["bodypart1", "bodypart2", "bodypart3", "objectA"], True) for f in VIDEO_FILES},
    "CollectedData_Pranav.csv": (116, ["snout", "leftear", "rightear", "tailbase"], False),
    "CollectedData_Mackenzie.csv": (55, ["Hand", "Finger1", "Tongue", "Joystick1", "Joystick2"], False),
}


def real(name: str) -> Path:
    p = DLC_DIR / name
    if not p.is_file():
        pytest.skip(f"real sample {p} not present")
    return p


def independent(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, header=[0, 1, 2], index_col=0)


def assert_matches_frame(t, df: pd.DataFrame):
    """t (DLCTracking) holds exactly the values of the pandas frame df."""
    assert t.scorer == df.columns.get_level_values(0)[0]
    assert t.bodyparts == list(dict.fromkeys(df.columns.get_level_values(1)))
    for i, bp in enumerate(t.bodyparts):
        np.testing.assert_array_equal(t.x[:, i], df[(t.scorer, bp, "x")].to_numpy(dtype=float))
        np.testing.assert_array_equal(t.y[:, i], df[(t.scorer, bp, "y")].to_numpy(dtype=float))
        if t.likelihood is not None:
            np.testing.assert_array_equal(t.likelihood[:, i], df[(t.scorer, bp, "likelihood")].to_numpy(dtype=float))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_csv_against_pandas(name):
    path = real(name)
    t = read_dlc(path, allow_labelled=True)
    n, parts, has_lik = EXPECTED[name]
    assert t.path == path
    assert t.bodyparts == parts
    assert t.x.shape == t.y.shape == (n, len(parts))
    assert t.x.dtype == np.float64
    assert (t.likelihood is not None) == has_lik
    df = independent(path)
    assert len(df) == n
    assert_matches_frame(t, df)
    if has_lik:
        assert t.likelihood.shape == (n, len(parts))
        assert np.all((t.likelihood >= 0) & (t.likelihood <= 1))
        np.testing.assert_array_equal(t.frame_index, df.index.to_numpy(dtype=np.int64))
        assert t.image_paths is None
    else:
        assert t.image_paths == [str(i) for i in df.index]
        np.testing.assert_array_equal(t.frame_index, np.arange(n))


def test_real_values_spot_checks():
    t = read_dlc(real(VIDEO_FILES[0]))
    assert t.scorer == "DLC_resnet50_TESTNov4shuffle1_10"
    assert t.x[0, 0] == pytest.approx(612.3765869140625)
    assert t.likelihood[0, 3] == pytest.approx(0.9136132001876831)
    np.testing.assert_array_equal(t.frame_index, np.arange(12))
    m = read_dlc(real("CollectedData_Mackenzie.csv"), allow_labelled=True)
    assert m.image_paths[0] == "labeled-data/reachingvideo1/img005.png"
    assert np.isnan(m.x[0, 2]) and np.isnan(m.y[0, 2])  # Tongue not labelled in img005
    assert m.x[1, 2] == pytest.approx(586.5966351829987)
    assert m.bodypart("Tongue")["x"][1] == pytest.approx(586.5966351829987)
    with pytest.raises(KeyError):
        m.bodypart("nose")


@pytest.mark.parametrize("name", [VIDEO_FILES[0], "CollectedData_Pranav.csv", "CollectedData_Mackenzie.csv"])
def test_h5_twin(tmp_path, name):
    pytest.importorskip("tables")
    df = independent(real(name))
    h5 = tmp_path / (Path(name).stem + ".h5")
    df.to_hdf(h5, key="df_with_missing", format="table", mode="w")
    t = read_dlc(h5, allow_labelled=True)
    c = read_dlc(real(name), allow_labelled=True)
    assert t.scorer == c.scorer and t.bodyparts == c.bodyparts
    np.testing.assert_array_equal(t.x, c.x)
    np.testing.assert_array_equal(t.y, c.y)
    if c.likelihood is None:
        assert t.likelihood is None
    else:
        np.testing.assert_array_equal(t.likelihood, c.likelihood)
    np.testing.assert_array_equal(t.frame_index, c.frame_index)
    assert t.image_paths == c.image_paths


def test_h5_other_key_and_fixed_format(tmp_path):
    pytest.importorskip("tables")
    df = independent(real(VIDEO_FILES[1]))
    one = tmp_path / "only.h5"
    df.to_hdf(one, key="something_else", mode="w")  # fixed format, single key
    np.testing.assert_array_equal(read_dlc(one).x, read_dlc(real(VIDEO_FILES[1])).x)
    two = tmp_path / "two.h5"
    df.to_hdf(two, key="a", mode="w")
    df.to_hdf(two, key="b", mode="a")
    with pytest.raises(DLCError, match=r"^.*two\.h5: no 'df_with_missing'"):
        read_dlc(two)


def test_h5_multi_animal(tmp_path):
    pytest.importorskip("tables")
    cols = pd.MultiIndex.from_product(
        [["DLC_x"], ["mouse1", "mouse2"], ["nose"], ["x", "y", "likelihood"]],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    df = pd.DataFrame(np.zeros((3, len(cols))), columns=cols)
    h5 = tmp_path / "ma.h5"
    df.to_hdf(h5, key="df_with_missing", format="table", mode="w")
    with pytest.raises(DLCError, match="multi-animal not supported"):
        read_dlc(h5)


def test_labelled_data_split_index(tmp_path):
    """DeepLabCut >= 2.2 writes the image path as three index columns with blank header cells."""
    src = real("CollectedData_Pranav.csv")
    lines = src.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        first, rest = line.split(",", 1)
        if i < 3:
            out.append(f"{first},,,{rest}")
        else:
            out.append(",".join(first.split("/")) + "," + rest)
    p = tmp_path / "CollectedData_new.csv"
    p.write_text("\n".join(out) + "\n")
    t = read_dlc(p, allow_labelled=True)
    ref = read_dlc(src, allow_labelled=True)
    assert t.image_paths == ref.image_paths
    np.testing.assert_array_equal(t.x, ref.x)
    np.testing.assert_array_equal(t.y, ref.y)
    assert t.likelihood is None


def test_map_style_file_round_trip(tmp_path):
    """A MAP rig file (nose ... lickport, whiskers) written by pandas, read back exactly."""
    rng = np.random.default_rng(3)
    parts = ["nose", "tongue", "jaw", "paw_left", "paw_right", "lickport", "whisker_C2", "whisker_D1"]
    cols = pd.MultiIndex.from_product(
        [["DeepCut_resnet50_licking-sideAug10shuffle1_1030000"], parts, ["x", "y", "likelihood"]],
        names=["scorer", "bodyparts", "coords"],
    )
    data = rng.uniform(0, 640, (500, len(cols)))
    data[:, 2::3] = rng.uniform(0, 1, (500, len(parts)))
    df = pd.DataFrame(data, columns=cols)
    p = tmp_path / "dl59_side_1-0000.csv"
    df.to_csv(p)
    t = read_dlc(p)
    assert t.bodyparts == parts
    np.testing.assert_array_equal(t.x, data[:, 0::3])
    np.testing.assert_array_equal(t.y, data[:, 1::3])
    np.testing.assert_array_equal(t.likelihood, data[:, 2::3])
    np.testing.assert_array_equal(t.frame_index, np.arange(500))
    mapped, unknown = map_bodyparts(t.bodyparts)
    assert mapped == {
        "nose": "nose",
        "tongue": "tongue",
        "jaw": "jaw",
        "paw_left": "left_paw",
        "paw_right": "right_paw",
        "lickport": "lickport",
        "whisker_C2": "whisker",
        "whisker_D1": "whisker",
    }
    assert unknown == []


def test_map_bodyparts():
    assert FEATURES["paw_left"] == "left_paw" and FEATURES["paw_right"] == "right_paw"
    mapped, unknown = map_bodyparts(["Nose", "tail", "Whisker", "bodypart1", "left_paw"])
    assert mapped == {"Nose": "nose", "Whisker": "whisker", "left_paw": "left_paw"}
    assert unknown == ["tail", "bodypart1"]
    t = read_dlc(real("CollectedData_Mackenzie.csv"), allow_labelled=True)
    assert map_bodyparts(t.bodyparts) == ({"Tongue": "tongue"}, ["Hand", "Finger1", "Joystick1", "Joystick2"])
    with pytest.raises(ValueError, match="both map to feature 'left_paw'"):
        map_bodyparts(["paw_left", "left_paw"])


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_multi_animal_csv(tmp_path):
    p = write(
        tmp_path,
        "ma.csv",
        "scorer,DLC,DLC,DLC,DLC,DLC,DLC\n"
        "individuals,m1,m1,m1,m2,m2,m2\n"
        "bodyparts,nose,nose,nose,nose,nose,nose\n"
        "coords,x,y,likelihood,x,y,likelihood\n"
        "0,1,2,0.5,3,4,0.6\n",
    )
    with pytest.raises(DLCError, match=r"ma\.csv: multi-animal .*multi-animal not supported"):
        read_dlc(p)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("frame,x,y\n0,1,2\n", "first header row must start with 'scorer'"),
        (
            "scorer,S,S,S\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,oops,0.5\n",
            r"line 4, column 'a/y': not a number: 'oops'",
        ),
        (
            "scorer,S,S,S,S,S\nbodyparts,a,a,a,b,b\ncoords,x,y,likelihood,x,y\n0,1,2,0.5,3,4\n",
            r"missing columns \['b/likelihood'\]",
        ),
        ("scorer,S,S,S\nbodyparts,a,a,a\ncoords,x,y,z\n0,1,2,3\n", "coordinate 'z'"),
        ("scorer,S,T\nbodyparts,a,a\ncoords,x,y\n0,1,2\n", "expected one scorer"),
        ("scorer,S,S\nbodyparts,a,a\n", "expected header rows"),
        (
            "scorer,S,S,S\nbodyparts,a,a,a\ncoords,x,y,likelihood\n0,1,2,0.5,3\n",
            "line 4 has 5 fields but the 3-row header has 4",
        ),
    ],
)
def test_bad_csv(tmp_path, text, pattern):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(DLCError) as e:
        read_dlc(p)
    assert str(e.value).startswith(str(p))
    assert re.search(pattern, str(e.value)), str(e.value)


def test_missing_empty_and_binary(tmp_path):
    with pytest.raises(DLCError, match="file not found"):
        read_dlc(tmp_path / "nope.csv")
    with pytest.raises(DLCError, match="empty file"):
        read_dlc(write(tmp_path, "empty.csv", ""))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(DLCError, match=r"junk\.h5: "):
        read_dlc(junk)


def test_header_only_file_has_no_frames(tmp_path):
    p = tmp_path / "hdr.csv"
    shutil.copy(real(VIDEO_FILES[0]), p)
    p.write_text("\n".join(p.read_text().splitlines()[:3]) + "\n")
    t = read_dlc(p)
    assert t.x.shape == (0, 4) and t.likelihood.shape == (0, 4) and t.frame_index.shape == (0,)


# ---------------------------------------------------------------------------------------------
# damaged files and the wrong kind of file: one DLCError line naming the file, line and problem


def one_line_error(path, **kw) -> str:
    with pytest.raises(DLCError) as e:
        read_dlc(path, **kw)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("name", LABELLED_FILES)
def test_labelled_data_is_refused(tmp_path, name):
    src = real(name)
    msg = one_line_error(src)
    assert "labelled training data, not video-analysis output" in msg
    assert "without likelihood" in msg and "image path" in msg
    # the .h5 twin too
    pytest.importorskip("tables")
    h5 = tmp_path / (Path(name).stem + ".h5")
    independent(src).to_hdf(h5, key="df_with_missing", format="table", mode="w")
    assert "labelled training data, not video-analysis output" in one_line_error(h5)


def test_video_files_read_exactly_as_before(tmp_path):
    """The validation changes nothing for good files: values equal pandas' and the generator's."""
    for name in VIDEO_FILES:
        t = read_dlc(real(name))
        assert_matches_frame(t, independent(real(name)))
        assert t.likelihood is not None and t.image_paths is None
    from pipeline.synthetic.dlc import make_dlc_frame, write_dlc

    df = make_dlc_frame(["nose", "tongue", "jaw"], 300, seed=2)
    t = read_dlc(write_dlc(tmp_path / "gen-0000.csv", df))
    np.testing.assert_array_equal(t.x, df.xs("x", level="coords", axis=1).to_numpy())
    np.testing.assert_array_equal(t.likelihood, df.xs("likelihood", level="coords", axis=1).to_numpy())
    np.testing.assert_array_equal(t.frame_index, np.arange(300))


def test_file_cut_off_mid_row(tmp_path):
    src = real(VIDEO_FILES[0])
    data = src.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1  # start of the last data line (line 15)
    p = tmp_path / "cut.csv"
    # cut inside the last row, no line end: even if the field count happened to match
    p.write_bytes(data[: last + 30])
    msg = one_line_error(p)
    assert "line 15 (the last) has no line end" in msg and "cut off" in msg
    # the last row lost its trailing fields but got a line end (e.g. repaired by an editor)
    fields = data[last:].split(b",")
    p.write_bytes(data[:last] + b",".join(fields[:7]) + b"\n")
    msg = one_line_error(p)
    assert "line 15 has 7 fields but the 3-row header has 13 (cut off mid-row)" in msg
    # a short row in the middle, and a long one
    lines = data.split(b"\n")
    lines[6] = b",".join(lines[6].split(b",")[:10])
    p.write_bytes(b"\n".join(lines))
    assert "line 7 has 10 fields but the 3-row header has 13" in one_line_error(p)
    lines = data.split(b"\n")
    lines[4] += b",1.0"
    p.write_bytes(b"\n".join(lines))
    assert "line 5 has 14 fields but the 3-row header has 13" in one_line_error(p)


def test_partial_nan_and_bad_values(tmp_path):
    src = real(VIDEO_FILES[0])
    lines = src.read_text().split("\n")
    p = tmp_path / "bad.csv"

    def write_with(line_no: int, column: int, value: str):
        out = list(lines)
        cells = out[line_no - 1].split(",")
        cells[column] = value
        out[line_no - 1] = ",".join(cells)
        p.write_text("\n".join(out))

    write_with(9, 5, "")  # bodypart2 y missing, x and likelihood there
    msg = one_line_error(p)
    assert "line 9: bodypart 'bodypart2' has x=" in msg and "y=nan" in msg and "some coordinates missing" in msg
    write_with(9, 3, "")  # a likelihood missing
    assert "line 9: bodypart 'bodypart1'" in one_line_error(p)
    write_with(12, 12, "1.5")
    assert "line 12: bodypart 'objectA' has likelihood 1.5, outside [0, 1]" in one_line_error(p)
    write_with(10, 0, "3")  # frame numbers must increase
    assert "line 10: frame number 3 does not follow 5" in one_line_error(p)
    # a whole bodypart missing in a frame is fine (all three NaN)
    out = list(lines)
    cells = out[8].split(",")
    cells[4:7] = ["", "", ""]
    out[8] = ",".join(cells)
    p.write_text("\n".join(out))
    t = read_dlc(p)
    assert np.isnan(t.x[5, 1]) and np.isnan(t.likelihood[5, 1]) and not np.isnan(t.x[5, 0])
