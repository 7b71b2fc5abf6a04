"""export-recording: NWB files that pass nwbinspector and read back equal to the database, the
MATLAB layout read back with scipy, and clear errors with no partial files."""

import numpy as np
import pytest
import scipy.io as sio
from conftest import _clear_tables, run_mapshell
from test_psth import KEY, load_planted

from pipeline import ephys, experiment, lab
from pipeline.compute import populate_psth
from pipeline.errors import UsageError
from pipeline.export import export_recording
from pipeline.export import nwb as nwb_export

pynwb = pytest.importorskip("pynwb")
SKEY = dict(subject_id=71, session=1)


@pytest.fixture(scope="module")
def computed(backend, tmp_path_factory):
    """test_psth's planted probe (the same session, probe and location), computed: once per backend
    for the module, as exporting reads the database and writes nothing to it."""
    _clear_tables()
    behaviour, probe = load_planted(tmp_path_factory.mktemp("planted"))
    assert populate_psth().ok
    yield behaviour, probe
    _clear_tables()


def test_nwb_passes_the_inspector_and_reads_back_exactly(computed, tmp_path):
    from nwbinspector import Importance, inspect_nwbfile

    s = export_recording(SKEY, "nwb", tmp_path)
    assert s.ok and len(s.loaded) == 1, s.report()
    path = tmp_path / "dm71_20230601_100000_s1.nwb"
    assert path.is_file() and not list(tmp_path.glob(".*part*"))
    bad = [
        m
        for m in inspect_nwbfile(nwbfile_path=str(path))
        if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)
    ]
    assert not bad, [f"{m.check_function_name}: {m.message}" for m in bad]

    trials = (experiment.SessionTrial * experiment.BehaviorTrial & SKEY).to_pandas().reset_index().sort_values("trial")
    offset = nwb_export.time_offset(SKEY, trials)
    shifted = trials.assign(start_time=trials.start_time + offset, stop_time=trials.stop_time + offset)
    probe_start, session_start = nwb_export.session_clock(KEY, shifted)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        assert f.subject.subject_id == "71" and f.subject.species == "Mus musculus"
        # every trial's fields
        t = f.trials.to_dataframe()
        np.testing.assert_array_equal(t.start_time.to_numpy(), shifted.start_time.to_numpy())
        np.testing.assert_array_equal(t.stop_time.to_numpy(), shifted.stop_time.to_numpy())
        assert t.outcome.tolist() == trials.outcome.tolist()
        assert t.trial_instruction.tolist() == trials.trial_instruction.tolist()
        assert t.early_lick.tolist() == trials.early_lick.tolist()
        assert t.photostim.sum() == len(experiment.PhotostimTrial & SKEY)
        # every unit's spike times, exactly (from the stored arrays, moved to the session clock)
        units = f.units.to_dataframe()
        stored = {u["unit"]: np.asarray(u["spike_times"]) for u in (ephys.Unit & KEY).to_dicts()}
        assert sorted(units.unit_id_in_sorting) == sorted(stored)
        for _, row in units.iterrows():
            expected = nwb_export.to_session_time(stored[row.unit_id_in_sorting], probe_start, session_start)
            np.testing.assert_array_equal(np.asarray(row.spike_times), expected)
        assert set(units.cell_type) <= {"FS", "Pyr", "not classified"}
        # every electrode's position
        e = f.electrodes.to_dataframe()
        geom = (
            (
                lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode
                & (ephys.ProbeInsertion & KEY).proj("probe_type", "electrode_config_name")
            )
            .to_pandas()
            .reset_index()
            .set_index("electrode")
        )
        assert len(e) == len(geom)
        np.testing.assert_array_equal(e.set_index("electrode").rel_x.to_numpy(), geom.x_coord.to_numpy(dtype=float))
        np.testing.assert_array_equal(e.set_index("electrode").rel_y.to_numpy(), geom.y_coord.to_numpy(dtype=float))
        licks = f.events["licks"].to_dataframe() if hasattr(f, "events") and "licks" in f.events else None
        assert licks is not None and len(licks) == len(experiment.ActionEvent & SKEY)


def test_mat_layout_reads_back(computed, tmp_path):
    s = export_recording(SKEY, "mat", tmp_path)
    assert s.ok, s.report()
    m = sio.loadmat(tmp_path / "map-export_dm71_20230601_100000_s1_p1.mat", simplify_cells=False)
    probe_trials = (ephys.Clustering.Trial & KEY).to_pandas().reset_index().sort_values("trial")
    bt = (experiment.BehaviorTrial & SKEY).to_pandas().reset_index().set_index("trial").loc[probe_trials.trial]
    expected = bt.outcome.map({"hit": 1, "miss": 0, "ignore": -1}).to_numpy()
    np.testing.assert_array_equal(m["behavior_report"].ravel(), expected)
    assert "".join(m["task_trial_type"].ravel()) == "".join(s[0] for s in bt.trial_instruction)
    units = (ephys.Unit & KEY).to_dicts(order_by="unit")
    cells = m["neuron_single_units"]
    assert cells.shape == (len(units), len(probe_trials))
    go = probe_trials.set_index("trial").go_time
    for i in (0, 3, 7):
        u = units[i]
        t, tr = np.asarray(u["spike_times"]), np.asarray(u["spike_trials"])
        for j, trial in enumerate(probe_trials.trial[:20]):
            np.testing.assert_allclose(cells[i, j].ravel(), t[tr == trial] - go[trial])
    info = m["neuron_unit_info"]
    assert [int(np.asarray(x).ravel()[0]) for x in info[:, 0]] == [u["unit"] for u in units]


def test_errors_and_no_partial_files(computed, tmp_path, backend, monkeypatch):
    with pytest.raises(UsageError, match="nothing to export"):
        export_recording({"subject_id": 999}, "nwb", tmp_path)
    with pytest.raises(UsageError, match="restriction"):
        export_recording("no_such_column = 3", "nwb", tmp_path)
    assert export_recording(SKEY, "nwb", tmp_path).ok
    again = export_recording(SKEY, "nwb", tmp_path)
    assert not again.ok and "--overwrite" in again.failed[0][1]
    assert export_recording(SKEY, "nwb", tmp_path, overwrite=True).ok

    def broken(key, path):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(nwb_export, "write", broken)
    out = tmp_path / "b"
    s = export_recording(SKEY, "nwb", out)
    assert not s.ok and "disk full" in s.failed[0][1]
    assert not any(p.is_file() for p in out.rglob("*"))  # no partial file left
    r = run_mapshell(["export-recording", '{"subject_id": 999}', "--out", str(tmp_path)], backend.env())
    assert r.returncode == 2 and "nothing to export" in r.stderr and "Traceback" not in r.stderr
    r = run_mapshell(
        ["export-recording", '{"subject_id": 71}', "--dandi", "--out", str(tmp_path / "dandi")], backend.env()
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert list((tmp_path / "dandi" / "sub-71").glob("sub-71_ses-20230601_100000-s1_ecephys+behavior.nwb"))
