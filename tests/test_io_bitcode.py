"""MAP bitcode .mat reader and ephys-to-behaviour trial alignment (pure, no database)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from pipeline.io.bitcode import (
    BitcodeError,
    XAFiles,
    align_trials,
    decode_xa_bitcodes,
    find_xa_files,
    foraging_events,
    read_bitcode,
    read_edges,
    read_xa_sync,
)
from pipeline.synthetic.spikeglx import mtl_bitcodes, random_bitcodes, write_bitcode_mat, write_xa_files

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
DL25_BITCODE = REAL / "map_ephys_bitcode_mat" / "dl25_bitcode.mat"
DL25_BEHAVIOR = REAL / "map_rig_behavior_mat" / "dl25_tw2_20180225_102508.mat"


@pytest.fixture(scope="module")
def real_data():
    if not (DL25_BITCODE.is_file() and DL25_BEHAVIOR.is_file()):
        pytest.skip("real dl25 bitcode / behaviour samples not found")
    return REAL


@pytest.fixture(scope="module")
def dl25_behavior_codes(real_data):
    """GUI.randomID of each behaviour trial, read with plain scipy (independently of the readers)."""
    s = sio.loadmat(DL25_BEHAVIOR, squeeze_me=True, struct_as_record=False)["SessionData"]
    return [str(t.GUI.randomID) for t in np.atleast_1d(s.TrialSettings)]


# ---------------------------------------------------------------------------------------------
# the real dl25 recording


def test_real_dl25_bitcode_file(real_data):
    raw = sio.loadmat(DL25_BITCODE)
    bf = read_bitcode(DL25_BITCODE)
    assert bf.path == DL25_BITCODE
    assert bf.bitcodes == [str(c) for c in raw["bitCodeS"]]
    assert bf.bitcodes == ["".join(str(int(b)) for b in row) for row in raw["bitcode"]]
    assert len(bf.bitcodes) == bf.n_trials == 10 and all(len(c) == 16 for c in bf.bitcodes)
    assert bf.trial_start is None and bf.go_cue is None and bf.trial_numbers is None  # old format
    assert bf.extras == {}


def test_real_dl25_alignment(real_data, dl25_behavior_codes):
    """The 10 ephys codes are behaviour trials 1-10 in order; behaviour trial 11 was not recorded."""
    bf = read_bitcode(DL25_BITCODE)
    assert len(dl25_behavior_codes) == 11
    assert dl25_behavior_codes[:10] == bf.bitcodes
    assert dl25_behavior_codes[10] not in bf.bitcodes
    a = align_trials(bf.bitcodes, dl25_behavior_codes, path=bf.path)
    np.testing.assert_array_equal(a.behavior_trials, np.arange(1, 11))
    np.testing.assert_array_equal(a.ephys_index, np.arange(10))
    assert (a.n_ephys, a.n_behavior, a.dropped_ephys, a.offset, a.method) == (10, 11, [], 0, "bitcode")
    assert a.messages == ["1 of 11 behaviour trials have no ephys trial"]
    # the last ephys code swapped for behaviour trial 11's: a clear error, not a shift
    bad = bf.bitcodes[:9] + [dl25_behavior_codes[10]]
    with pytest.raises(
        BitcodeError,
        match=r"dl25_bitcode.mat: .*disagree at 1 of 10.*ephys trial 9 \(0-based\) "
        rf"has '{dl25_behavior_codes[10]}', behaviour trial 10 has "
        rf"'{dl25_behavior_codes[9]}'",
    ):
        align_trials(bad, dl25_behavior_codes, path=bf.path)


def test_real_dl25_with_bpod_reader(real_data):
    """The bitcodes the behaviour reader keeps (TrialNote 'bitcode') align the same way."""
    from pipeline.io.matfile import read_mat

    s = read_mat(DL25_BEHAVIOR)["SessionData"]
    settings = s["TrialSettings"]
    codes = (
        [t["GUI"]["randomID"] for t in settings] if isinstance(settings, list) else list(settings["GUI"]["randomID"])
    )
    a = align_trials(read_bitcode(DL25_BITCODE).bitcodes, codes)
    np.testing.assert_array_equal(a.behavior_trials, np.arange(1, 11))


# ---------------------------------------------------------------------------------------------
# generated files


@pytest.mark.parametrize("version", ["5", "7.3"])
@pytest.mark.parametrize("fmt", ["new", "old"])
def test_generated_roundtrip(tmp_path, version, fmt):
    behavior = random_bitcodes(30, seed=3)
    fw = np.arange(30) % 7 == 3
    truth = write_bitcode_mat(
        tmp_path / f"tw5_{version}_{fmt}_bitcode.mat",
        behavior,
        recorded=np.arange(4, 25),
        free_water=fw,
        version=version,
        fmt=fmt,
        foraging_extras=True,
        seed=1,
    )
    bf = read_bitcode(truth.path)
    assert bf.bitcodes == truth.bitcodes
    a = align_trials(bf.bitcodes, behavior, path=bf.path)
    np.testing.assert_array_equal(a.behavior_trials, truth.behavior_trials)
    np.testing.assert_array_equal(a.ephys_index, truth.ephys_index)
    np.testing.assert_array_equal(a.behavior_trials, np.arange(5, 26))
    assert a.dropped_ephys == [] and a.offset == 4
    if fmt == "old":
        assert bf.trial_start is None and bf.go_cue is None and bf.trial_numbers is None
        return
    np.testing.assert_array_equal(bf.trial_start, truth.trial_start)
    np.testing.assert_array_equal(bf.go_cue, truth.go_cue)
    assert np.isnan(bf.go_cue).sum() == fw[4:25].sum()
    np.testing.assert_array_equal(bf.trial_numbers, truth.trial_numbers)
    assert sorted(bf.extras) == [
        "cameraPerTrial",
        "chan",
        "digMarkerPerTrial",
        "headings",
        "lickLPerTrial",
        "lickRPerTrial",
        "zaberPerTrial",
    ]
    assert [str(h) for h in bf.extras["headings"]] == truth.extras["headings"]
    np.testing.assert_allclose(bf.extras["digMarkerPerTrial"], truth.extras["digMarkerPerTrial"])
    for got, want in zip(bf.extras["lickLPerTrial"], truth.extras["lickLPerTrial"]):
        np.testing.assert_allclose(np.ravel(got), want)
    _check_foraging_events(bf, truth)


def _check_foraging_events(bf, truth):
    """foraging_events against the generator's extras, computed here independently."""
    ev = foraging_events(bf)
    x = truth.extras
    m, headings = x["digMarkerPerTrial"], x["headings"]
    want = sorted(
        (i, j, headings[j], m[i, j]) for i in range(m.shape[0]) for j in range(m.shape[1]) if np.isfinite(m[i, j])
    )
    want += sorted(
        (i, len(headings) + k, "zaberstep", t) for i, ts in enumerate(x["zaberPerTrial"]) for k, t in enumerate(ts)
    )
    got = list(ev.trial_events.itertuples(index=False, name=None))
    assert sorted(got) == sorted(want)
    assert ev.trial_events.trial_event_type.isin(["choice", "zaberstep"]).any()
    for i in range(m.shape[0]):
        licks = sorted(
            [(t, "left lick") for t in x["lickLPerTrial"][i]] + [(t, "right lick") for t in x["lickRPerTrial"][i]]
        )
        mine = ev.action_events[ev.action_events.ephys_trial == i].sort_values("action_event_id")
        assert list(zip(mine.action_event_time, mine.action_event_type)) == licks
        assert mine.action_event_id.tolist() == list(range(len(licks)))
    assert sorted(ev.camera_frames) == ["Camera 0", "Camera 1"]
    for cam, frames in zip(x["cameraNameInDJ"], x["cameraPerTrial"]):
        for got_f, want_f in zip(ev.camera_frames[cam], frames):
            np.testing.assert_allclose(got_f, want_f)


def test_foraging_events_refuses_a_wrong_shape(tmp_path):
    truth = write_bitcode_mat(tmp_path / "f_bitcode.mat", random_bitcodes(6, seed=2), foraging_extras=True)
    bf = read_bitcode(truth.path)
    bf.extras["digMarkerPerTrial"] = bf.extras["digMarkerPerTrial"][:, :5]
    with pytest.raises(
        BitcodeError, match=r"f_bitcode.mat: digMarkerPerTrial is \(6, 5\); expected 6 ephys trials x 8"
    ):
        foraging_events(bf)
    bf = read_bitcode(truth.path)
    bf.extras["lickLPerTrial"] = bf.extras["lickLPerTrial"][:4]
    with pytest.raises(BitcodeError, match="lickLPerTrial must hold one cell per ephys trial"):
        foraging_events(bf)
    plain = write_bitcode_mat(tmp_path / "p_bitcode.mat", random_bitcodes(6, seed=2))
    assert foraging_events(read_bitcode(plain.path)) is None


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_go_cue_listed_for_go_trials_only(tmp_path, version):
    behavior = random_bitcodes(12, seed=4)
    fw = np.zeros(12, bool)
    fw[[2, 5]] = True
    truth = write_bitcode_mat(
        tmp_path / "a_bitcode.mat", behavior, free_water=fw, go_cue_layout="short", version=version
    )
    bf = read_bitcode(truth.path)
    assert not bf.go_cue_complete and len(bf.go_cue) == 10
    np.testing.assert_array_equal(bf.pad_go_cue(fw), truth.go_cue)
    with pytest.raises(BitcodeError, match="goCue has 10 entries but there are 11 non-free-water"):
        bf.pad_go_cue(np.arange(12) == 5)
    full = read_bitcode(write_bitcode_mat(tmp_path / "b_bitcode.mat", behavior, free_water=fw).path)
    assert full.go_cue_complete
    np.testing.assert_array_equal(full.pad_go_cue(fw), truth.go_cue)
    with pytest.raises(BitcodeError, match="goCue is NaN at ephys trials"):
        full.pad_go_cue(~fw)


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_single_trial_file(tmp_path, version):
    behavior = random_bitcodes(3, seed=11)
    truth = write_bitcode_mat(tmp_path / "g_bitcode.mat", behavior, recorded=[1], version=version)
    bf = read_bitcode(truth.path)
    assert bf.bitcodes == [behavior[1]]
    np.testing.assert_array_equal(bf.trial_start, truth.trial_start)
    np.testing.assert_array_equal(bf.trial_numbers, [2])
    np.testing.assert_array_equal(align_trials(bf.bitcodes, behavior).behavior_trials, [2])


# ---------------------------------------------------------------------------------------------
# partial overlap


def test_recording_covers_the_middle_of_the_session():
    behavior = random_bitcodes(40, seed=5)
    a = align_trials(behavior[10:25], behavior)
    np.testing.assert_array_equal(a.behavior_trials, np.arange(11, 26))
    np.testing.assert_array_equal(a.ephys_index, np.arange(15))
    assert a.dropped_ephys == [] and a.messages == ["25 of 40 behaviour trials have no ephys trial"]


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_ephys_trials_outside_the_behaviour_file_are_dropped(tmp_path, version):
    behavior = random_bitcodes(15, seed=6)
    truth = write_bitcode_mat(tmp_path / "c_bitcode.mat", behavior, n_before=3, n_after=2, version=version, seed=2)
    bf = read_bitcode(truth.path)
    a = align_trials(bf.bitcodes, behavior, path=bf.path)
    np.testing.assert_array_equal(a.behavior_trials, np.arange(1, 16))
    np.testing.assert_array_equal(a.ephys_index, np.arange(3, 18))
    assert a.dropped_ephys == truth.dropped_ephys == [0, 1, 2, 18, 19]
    assert any("ephys trials 0..2 come before the first behaviour trial" in m for m in a.messages)
    assert any("ephys trials 18..19 come after the last behaviour trial (15)" in m for m in a.messages)
    with pytest.raises(BitcodeError, match="come before the first behaviour trial"):
        align_trials(bf.bitcodes, behavior, path=bf.path, allow_partial=False)
    # trialNum (0 for the unknown trials) gives the same answer
    t = align_trials(bf.bitcodes, behavior, bf.trial_numbers)
    np.testing.assert_array_equal(t.behavior_trials, truth.behavior_trials)
    assert t.dropped_ephys == truth.dropped_ephys and t.method == "trialNum"


def test_behavior_trial_numbers_with_gaps():
    behavior = random_bitcodes(6, seed=7)
    a = align_trials(behavior[2:5], behavior, behavior_trial_numbers=[1, 2, 4, 5, 6, 9])
    np.testing.assert_array_equal(a.behavior_trials, [4, 5, 6])


# ---------------------------------------------------------------------------------------------
# mismatches


def test_mismatch_in_the_middle_is_an_error_naming_trials_and_codes(tmp_path):
    behavior = random_bitcodes(20, seed=8)
    wrong = "0" * 16 if "0" * 16 not in behavior else "1" * 16
    truth = write_bitcode_mat(
        tmp_path / "d_bitcode.mat", behavior, recorded=np.arange(2, 20), corrupt={5: wrong}, trial_num=False
    )
    bf = read_bitcode(truth.path)
    with pytest.raises(BitcodeError) as e:
        align_trials(bf.bitcodes, behavior, path=bf.path)
    msg = str(e.value)
    assert msg.startswith(str(truth.path))
    assert "disagree at 1 of 18 overlapping trials" in msg
    assert f"ephys trial 5 (0-based) has '{wrong}', behaviour trial 8 has '{behavior[7]}'" in msg


def test_trial_num_places_trials_when_codes_agree(tmp_path):
    behavior = random_bitcodes(20, seed=9)
    truth = write_bitcode_mat(tmp_path / "e_bitcode.mat", behavior, recorded=np.arange(2, 20))
    bf = read_bitcode(truth.path)
    a = align_trials(bf.bitcodes, behavior, bf.trial_numbers, path=bf.path)
    np.testing.assert_array_equal(a.behavior_trials, np.arange(3, 21))
    assert a.method == "trialNum" and a.dropped_ephys == [] and a.messages == []


def test_trial_num_disagreeing_with_codes_is_an_error(tmp_path):
    """trialNum does not override the codes: every trial it places must carry its behaviour code."""
    behavior = random_bitcodes(20, seed=9)
    wrong0 = "1" * 16 if "1" * 16 != behavior[2] else "0" * 16
    wrong5 = "0" * 16 if "0" * 16 != behavior[7] else "1" * 16
    truth = write_bitcode_mat(
        tmp_path / "e_bitcode.mat", behavior, recorded=np.arange(2, 20), corrupt={0: wrong0, 5: wrong5}
    )
    bf = read_bitcode(truth.path)
    np.testing.assert_array_equal(bf.trial_numbers, np.arange(3, 21))
    with pytest.raises(BitcodeError) as e:
        align_trials(bf.bitcodes, behavior, bf.trial_numbers, path=bf.path)
    msg = str(e.value)
    assert msg.startswith(f"{truth.path}: trialNum and the bitcodes disagree at 2 of 18 trials")
    assert f"ephys trial 0 (0-based) has '{wrong0}', behaviour trial 3 has '{behavior[2]}'" in msg
    assert f"ephys trial 5 (0-based) has '{wrong5}', behaviour trial 8 has '{behavior[7]}'" in msg
    assert "\n" not in msg
    # one disagreeing trial at the very end of the overlap is enough
    codes = list(behavior[2:20])
    codes[-1] = behavior[0]
    with pytest.raises(BitcodeError, match=r"disagree at 1 of 18 trials.*ephys trial 17 \(0-based\)"):
        align_trials(codes, behavior, bf.trial_numbers, path=bf.path)


def test_unknown_first_code_is_reported_not_skipped():
    behavior = random_bitcodes(10, seed=10)
    ephys = ["1" * 16 if "1" * 16 not in behavior else "0" * 16] + behavior[1:8]
    with pytest.raises(BitcodeError, match=r"disagree at 1 of 8 .*ephys trial 0 \(0-based\) has"):
        align_trials(ephys, behavior)


@pytest.mark.parametrize(
    "ephys,behavior,kw,match",
    [
        (["0101"], ["1111", "0000"], {}, "none of the 1 ephys bitcodes occurs among the 2 behaviour"),
        (["0101"], ["0101", "0101"], {}, "ambiguous alignment"),
        (["0101", "1100"], ["0101", "1100"], {"trial_numbers": [1]}, "trialNum has 1 entries but there are 2"),
        (["0101", "1100"], ["0101", "1100"], {"trial_numbers": [1, 1]}, r"behaviour trial\(s\) \[1\] to more than one"),
        (["0101", "1100"], ["0101", "1100"], {"trial_numbers": [1, 7], "allow_partial": False}, "trialNum 7"),
        ([], ["0101"], {}, "no ephys bitcodes"),
        (["0101"], [], {}, "no behaviour bitcodes"),
        (["0101000000"], ["0101"], {}, r"ephys codes have \[10\] characters, behaviour codes \[4\]"),
    ],
)
def test_alignment_errors(ephys, behavior, kw, match):
    with pytest.raises(BitcodeError, match=match):
        align_trials(ephys, behavior, path="probe1/x_bitcode.mat", **kw)


def test_file_errors(tmp_path):
    with pytest.raises(BitcodeError, match=r"missing_bitcode.mat: file not found"):
        read_bitcode(tmp_path / "missing_bitcode.mat")
    p = tmp_path / "f_bitcode.mat"
    sio.savemat(p, {"bitCodeS": np.array(["0101", "1100"]), "bitcode": np.array([[0, 1, 0, 1], [1, 1, 1, 1]])})
    with pytest.raises(BitcodeError, match=r"f_bitcode.mat: bitCodeS and bitcode disagree at ephys trial\(s\) \[1\]"):
        read_bitcode(p)
    sio.savemat(p, {"bitCodeS": np.array(["0101", "1100"]), "sTrig": np.array([1.0, 2.0, 3.0])})
    with pytest.raises(BitcodeError, match="sTrig has 3 trial starts but there are 2 bitcodes"):
        read_bitcode(p)
    sio.savemat(p, {"sTrig": np.array([1.0, 2.0])})
    with pytest.raises(BitcodeError, match="neither bitCodeS nor bitcode"):
        read_bitcode(p)
    sio.savemat(p, {"bitCodeS": np.array(["0101", "1100"]), "trialNum": np.array([1.5, 2])})
    with pytest.raises(BitcodeError, match="trialNum holds non-integer values"):
        read_bitcode(p)
    sio.savemat(p, {"bitcode": np.array([[0, 2], [1, 1]])})
    with pytest.raises(BitcodeError, match="values other than 0 and 1"):
        read_bitcode(p)
    # the numeric matrix alone is enough
    sio.savemat(p, {"bitcode": np.array([[0, 1, 1], [1, 0, 0]], dtype=np.uint8)})
    assert read_bitcode(p).bitcodes == ["011", "100"]


# ---------------------------------------------------------------------------------------------
# CatGT NIDQ edge files (spec 3.4 (b))


def test_xa_decoding_by_hand():
    """A pulse 0.05 s after the start is bit 0, every 0.007 s later the next; jitter is rounded away."""
    starts = [10.0, 20.0]
    pulses = [10.05, 10.064, 10.1130, 20.0505, 20.1125]  # trial 0: bits 0, 2, 9; trial 1: bits 0, 9
    assert decode_xa_bitcodes(starts, pulses) == ["1010000001", "1000000001"]
    assert decode_xa_bitcodes([5.0], []) == ["0000000000"]  # a trial without pulses: code 0
    assert mtl_bitcodes([1, 2, 6, 512]) == ["1000000000", "0100000000", "0110000000", "0000000001"]


@pytest.mark.parametrize("adjusted", [True, False])
def test_xa_roundtrip_with_jitter(tmp_path, adjusted):
    behaviour = mtl_bitcodes(range(1, 31))
    truth = write_xa_files(tmp_path, behaviour, recorded=range(5, 30), n_after=2, adjusted=adjusted, seed=4)
    assert truth.max_jitter > 0.0005  # the pulses are off the grid: the rounding is exercised
    nominal = np.concatenate(
        [s + 0.05 + 0.007 * np.flatnonzero(np.array(list(c)) == "1") for s, c in zip(truth.trial_start, truth.bitcodes)]
    )
    assert np.abs(truth.pulses - nominal).max() == pytest.approx(truth.max_jitter, abs=1e-6)
    files = find_xa_files(tmp_path)
    assert files == XAFiles(truth.starts_path, truth.pulses_path, adjusted)
    xa = read_xa_sync(files)
    np.testing.assert_array_equal(xa.trial_start, truth.trial_start)
    assert xa.bitcodes == truth.bitcodes and xa.no_bits is None and xa.n_trials == 27
    a = align_trials(xa.bitcodes, behaviour, path=files.pulses)
    np.testing.assert_array_equal(a.behavior_trials, truth.behavior_trials)
    np.testing.assert_array_equal(a.ephys_index, truth.ephys_index)
    np.testing.assert_array_equal(a.behavior_trials, np.arange(6, 31))
    assert a.dropped_ephys == truth.dropped_ephys == [25, 26]


def test_xa_file_choice(tmp_path):
    codes = mtl_bitcodes(range(1, 6))
    plain = write_xa_files(tmp_path / "a", codes, adjusted=False, offset_s=0.5, seed=1)
    adj = write_xa_files(tmp_path / "a", codes, adjusted=True, seed=1)
    assert find_xa_files(tmp_path / "a") == XAFiles(adj.starts_path, adj.pulses_path, True)  # .adj preferred
    assert read_xa_sync(find_xa_files(tmp_path / "a")).trial_start[0] == adj.trial_start[0] != plain.trial_start[0]
    low = write_xa_files(tmp_path / "b", codes, upper=False, seed=1)  # CatGT's own lower-case names
    assert low.starts_path.name == "run_g0_tcat.nidq.xa_0_0.adj.txt"
    assert find_xa_files(tmp_path / "b").starts == low.starts_path
    assert find_xa_files(tmp_path / "nothing") is None
    (tmp_path / "c").mkdir()
    assert find_xa_files(tmp_path / "c") is None
    # no pulse file, or an empty one: no bits, and why
    none = write_xa_files(tmp_path / "d", codes, pulses="none", seed=1)
    xa = read_xa_sync(find_xa_files(tmp_path / "d"))
    assert xa.bitcodes is None and "no *.XA_1_2" in xa.no_bits and xa.n_trials == 5
    np.testing.assert_array_equal(xa.trial_start, none.trial_start)
    write_xa_files(tmp_path / "e", codes, pulses="empty", seed=1)
    xa = read_xa_sync(find_xa_files(tmp_path / "e"))
    assert xa.bitcodes is None and xa.no_bits == "run_g0_tcat.nidq.XA_1_2.adj.txt is empty"


def test_xa_file_choice_errors(tmp_path):
    codes = mtl_bitcodes(range(1, 6))
    write_xa_files(tmp_path / "two", codes, stem="a_g0_tcat.nidq", seed=1)
    write_xa_files(tmp_path / "two", codes, stem="b_g0_tcat.nidq", seed=1)
    with pytest.raises(BitcodeError, match=r"two: several adjusted CatGT starts files \(a_g0.*, b_g0.*\)"):
        find_xa_files(tmp_path / "two")
    # adjusted trial starts with only NIDQ-clock pulses (or the reverse): two clocks, refused
    write_xa_files(tmp_path / "mix", codes, adjusted=True, pulses="none", seed=1)
    write_xa_files(tmp_path / "mix", codes, adjusted=False, seed=1).starts_path.unlink()
    with pytest.raises(BitcodeError, match=r"XA_0_0.adj.txt: adjusted trial starts but the bit pulses are only in"):
        find_xa_files(tmp_path / "mix")
    write_xa_files(tmp_path / "mix2", codes, adjusted=False, pulses="none", seed=1)
    write_xa_files(tmp_path / "mix2", codes, adjusted=True, seed=1).starts_path.unlink()
    with pytest.raises(BitcodeError, match=r"XA_1_2.adj.txt: adjusted bit pulses but no adjusted trial starts"):
        find_xa_files(tmp_path / "mix2")


GOOD_STARTS = "10.000000\n20.000000\n30.000000\n"


@pytest.mark.parametrize(
    "starts,pulses,match",
    [
        ("", None, r"starts.txt: empty \(no edge times\)"),
        ("\n  \n", None, r"starts.txt: empty"),
        ("10.0\n20.0\nabc\n", None, r"starts.txt: line 3 is not a number \('abc'\)"),
        ("10.0\n20.0 7\n", None, r"starts.txt: line 2 has 2 values"),
        (
            "10.0\n30.0\n20.0\n",
            None,
            r"starts.txt: times not in increasing order: line 3 \(20.000000 s\) follows line 2",
        ),
        ("10.0\n10.0\n", None, r"starts.txt: times not in increasing order"),
        ("10.0\nnan\n", None, r"starts.txt: line 2 is 'nan'; edge times are finite and >= 0 s"),
        ("-1.0\n10.0\n", None, r"starts.txt: line 1 is '-1.0'"),
        (b"10.0\n\x00\x00\x00", None, r"starts.txt: binary content"),
        (b"10.0\n\xff\xfe", None, r"starts.txt: not text"),
        (GOOD_STARTS, "9.5\n10.05\n", r"pulses.txt: bit pulse at 9.500000 s comes before the first trial start"),
        (
            GOOD_STARTS,
            "10.05\n20.2\n",
            r"pulses.txt: trial 1 \(0-based, start 20.000000 s\): the pulse at 20.200000 "
            r"s would be bit 21 of a 10-bit code",
        ),
        (
            GOOD_STARTS,
            "10.05\n10.0515\n",
            r"pulses.txt: trial 0 .*pulses at 10.050000 s and 10.051500 s fall on one bit",
        ),
        (GOOD_STARTS, "20.01\n", r"pulses.txt: trial 1 .*the pulse at 20.010000 s comes before bit 0"),
        (GOOD_STARTS, "10.05\n10.057\nx\n", r"pulses.txt: line 3 is not a number"),
        (GOOD_STARTS, "10.057\n10.05\n", r"pulses.txt: times not in increasing order"),
    ],
)
def test_damaged_xa_files_are_one_line_errors(tmp_path, starts, pulses, match):
    sp, pp = tmp_path / "starts.txt", tmp_path / "pulses.txt"
    sp.write_bytes(starts if isinstance(starts, bytes) else starts.encode())
    if pulses is not None:
        pp.write_text(pulses)
    with pytest.raises(BitcodeError, match=match) as e:
        read_xa_sync(XAFiles(sp, pp if pulses is not None else None, True))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(sp if pulses is None or "pulses" not in match else pp))


def test_edge_file_missing(tmp_path):
    with pytest.raises(BitcodeError, match=r"gone.XA_0_0.txt: file not found"):
        read_edges(tmp_path / "gone.XA_0_0.txt")
    assert read_edges(_write(tmp_path / "e.txt", "\n"), allow_empty=True).size == 0


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
