"""ingest-ephys/ingest-histology --replace and mapshell archive: a probe sorted again (or its
histology re-aligned) replaces the loaded rows in one transaction, the old ones archived (arrays
included) and restorable."""

import numpy as np
import pytest
from conftest import run_mapshell
from test_ingest_ephys import _probe, session  # noqa: F401  (the fixture)
from test_ingest_histology import annotation, np1_probe  # noqa: F401  (fixtures)

from pipeline import config, ephys
from pipeline.ingest.archive import CLUSTERING, list_archives, restore
from pipeline.ingest.ephys import ingest_ephys
from pipeline.ingest.ephys.tables import ArchivedClustering
from pipeline.synthetic.sorting import write_kilosort
from pipeline.synthetic.spikeglx import write_meta


@pytest.fixture
def archive(tmp_path):
    config.custom["archive_url"] = str(tmp_path / "archive")
    yield tmp_path / "archive"
    del config.custom["archive_url"]


def _trains(ikey):
    return {u["unit"]: np.asarray(u["spike_times"]) for u in (ephys.Unit & ikey).to_dicts()}


def test_replace_archive_and_restore(session, archive, database, tmp_path):  # noqa: F811
    root = tmp_path / "ephys"
    pdir, _, bit, first = _probe(root, "1", session)
    assert ingest_ephys([str(root)]).ok
    ikey = dict(session["key"], insertion_number=1)
    ephys.ProbeInsertion.InsertionLocation.insert1(
        dict(ikey, skull_reference="Bregma", ap_location=2500, ml_location=-1500, depth=1000)
    )
    ephys.UnitStat.populate(ikey)
    assert ephys.UnitStat & ikey
    before = _trains(ikey)

    # sorted again: 7 units instead of 12
    second = write_kilosort(pdir / "kilosort2", n_units=7, n_spikes=20_000, seed=13)
    plain = ingest_ephys([str(root)])
    assert not plain.ok and "--replace" in plain.failed[0][1] and _trains(ikey).keys() == before.keys()

    s = ingest_ephys([str(root)], replace=True)
    assert s.ok and len(s.loaded) == 1 and "archived as number 1" in s.loaded[0], s.report()
    assert any("computed results of the replaced sorting were removed" in n for n in s.notes)
    t = second.truth
    fs = t.sample_rate
    now = _trains(ikey)
    assert sorted(now) == sorted(t.cluster_ids.tolist())
    for cid in t.cluster_ids:
        np.testing.assert_allclose(now[int(cid)], (t.spike_times[t.spike_clusters == cid] - bit.trial_start[0]) / fs)
    assert not (ephys.UnitStat & ikey)  # computed from the old sorting: gone
    assert ephys.ProbeInsertion.InsertionLocation & ikey  # the insertion's own data stays
    row = (ArchivedClustering & ikey).fetch1()
    assert (row["archive_number"], row["n_units"]) == (1, len(before))
    assert row["n_spikes"] == sum(len(v) for v in before.values())
    assert (archive / row["archive_file"]).stat().st_size == row["file_size"]
    again = ingest_ephys([str(root)], replace=True)
    assert again.ok and not again.loaded and again.skipped[0][1] == "already loaded"

    # listed and restored from the command line; the sorting it replaces is archived in turn
    r = run_mapshell(["archive", "list"], env=database.env(MAP_CONFIG=str(_conf(tmp_path, archive))))
    assert r.returncode == 0 and "dm5 session 1 probe 1  clustering archive 1: kilosort2" in r.stdout, r.stderr
    assert f"{len(before)} units" in r.stdout
    key_json = '{"subject_id": 55, "session": 1, "insertion_number": 1}'
    r = run_mapshell(["archive", "restore", key_json, "1"], env=database.env(MAP_CONFIG=str(_conf(tmp_path, archive))))
    assert r.returncode == 0 and "clustering archive 1 restored; the clustering it replaced is archive 2" in r.stdout, (
        r.stderr
    )
    restored = _trains(ikey)
    assert restored.keys() == before.keys()
    for u, v in before.items():
        np.testing.assert_array_equal(restored[u], v)
    assert len(ephys.Clustering.Trial & ikey) == 36
    assert [a["n_units"] for a in list_archives(ikey)] == [len(before), 7]
    with pytest.raises(Exception, match="no archived clustering number 9"):
        restore(CLUSTERING, ikey, 9)


def _conf(tmp_path, archive):
    conf = tmp_path / "conf.json"
    conf.write_text('{"custom": {"archive_url": "%s"}}' % archive)
    return conf


def test_replace_with_another_probe_changes_nothing(session, archive, tmp_path):  # noqa: F811
    root = tmp_path / "ephys"
    pdir, meta, _, _ = _probe(root, "1", session)
    assert ingest_ephys([str(root)]).ok
    ikey = dict(session["key"], insertion_number=1)
    before = _trains(ikey)
    # the folder now holds another probe's files (another serial number)
    write_meta(meta.path, probe="np1", seed=1, overrides={"imProbeSN": "18005117999", "imDatPrb_sn": "18005117999"})
    s = ingest_ephys([str(root)], replace=True)
    assert not s.ok and "another probe, electrode configuration or sampling rate" in s.failed[0][1], s.report()
    assert _trains(ikey).keys() == before.keys() and not (ArchivedClustering & ikey)


def test_histology_realignment_replaced_and_restored(annotation, np1_probe, archive, tmp_path):  # noqa: F811
    from test_ingest_histology import IKEY

    from pipeline import histology
    from pipeline.ingest.archive import HISTOLOGY
    from pipeline.ingest.histology import ingest_histology
    from pipeline.ingest.histology.tables import ArchivedHistology
    from pipeline.synthetic.histology import write_ibl_alignment

    first = write_ibl_alignment(np1_probe, n_channels=384, seed=5)
    assert ingest_histology([str(tmp_path / "histology")]).ok
    histology.InterpolatedElectrodeCCF.populate()
    assert histology.InterpolatedElectrodeCCF & IKEY

    def positions():
        pos = histology.ElectrodeCCFPosition.ElectrodePosition & IKEY
        return pos.to_pandas().reset_index().sort_values("electrode")[["ccf_x", "ccf_y", "ccf_z"]].to_numpy()

    second = write_ibl_alignment(np1_probe, n_channels=384, seed=8)  # re-aligned: other positions
    plain = ingest_histology([str(tmp_path / "histology")])
    assert not plain.ok and "--replace" in plain.failed[0][1]
    np.testing.assert_array_equal(positions(), first.ccf)

    s = ingest_histology([str(tmp_path / "histology")], replace=IKEY)
    assert s.ok and "archived as number 1" in s.loaded[0], s.report()
    np.testing.assert_array_equal(positions(), second.ccf)
    assert not (histology.InterpolatedElectrodeCCF & IKEY)  # computed from the old positions: gone
    assert (ArchivedHistology & IKEY).fetch1("n_electrodes") == 384
    np.testing.assert_allclose(
        (histology.LabeledProbeTrack.Point & IKEY).to_pandas().sort_values("point_order")[["ccf_x", "ccf_y", "ccf_z"]],
        second.picks_ccf,
        atol=1e-6,
    )

    assert restore(HISTOLOGY, IKEY, 1) == 2
    np.testing.assert_array_equal(positions(), first.ccf)
    assert sorted((ArchivedHistology & IKEY).to_arrays("archive_number")) == [1, 2]
