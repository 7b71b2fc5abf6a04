"""generate-report and sync-report on a probe with planted responses: figures exist, open, are not
blank, reflect their data, go stale when their inputs change, and sync copies only what changed."""

import io

import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import run_mapshell
from test_psth import KEY, planted  # noqa: F401  (the fixture)

from pipeline import ephys, psth, report
from pipeline.compute import populate_psth
from pipeline.reporting import generate, sync


def _image(png: bytes) -> np.ndarray:
    return mpimg.imread(io.BytesIO(png), format="png")


@pytest.fixture
def computed(planted):  # noqa: F811
    """The planted probe in ALM with most units failing ALM's presence-ratio criterion (fewer unit
    figures to draw), computed."""
    ephys.ProbeInsertion.RecordableBrainRegion.insert1(dict(KEY, brain_area="ALM", hemisphere="left"))
    for unit in (ephys.Clustering.ClusterMetric & KEY & "unit > 8").to_arrays("unit"):
        ephys.Clustering.ClusterMetric.update1(dict(KEY, unit=int(unit), presence_ratio=0.5))
    assert populate_psth().ok
    return planted


def test_figures_exist_open_and_show_their_data(computed):
    behaviour, probe = computed
    s = generate()
    assert s.ok, s.report()
    names = {
        t.__name__: set((t.Figure & {"subject_id": 71}).to_arrays("figure_name")) for t in report.TABLES if t.Figure
    }
    assert {"performance", "photostim_effect"} <= names["SessionReport"]
    assert {"clustering_quality", "unit_characteristics", "group_psth", "drift_map"} <= names["ProbeReport"]
    passing = set((ephys.UnitPassingCriteria.Unit & KEY & "criteria_passed").to_arrays("unit"))
    assert passing and set((report.UnitReport.Figure & KEY).to_arrays("unit")) == passing
    for table in (report.SessionReport, report.ProbeReport, report.UnitReport):
        for row in (table.Figure & {"subject_id": 71}).to_dicts():
            img = _image(report.png_bytes(row["png"]))
            assert img.shape[0] >= 300 and img.shape[1] >= 500, (row["figure_name"], img.shape)
            assert img[..., :3].std() > 0.05, f"{row['figure_name']} looks blank"
    # the unit figure's raster has one row per trial of its condition
    jobs = dict(report.unit_figure_inputs(KEY))
    unit = sorted(jobs)[0]
    for side in ("left", "right"):
        times, rows, n = jobs[unit]["rasters"][side]
        assert n == len(psth.condition_trials(f"good_noearlylick_{side}_hit", KEY)) and n > 20
        assert rows.max() < n and len(times) == len(rows)
    assert not s.notes  # nothing was stale
    again = generate()
    assert again.ok and again.found == 0  # up to date: nothing drawn again


def test_changed_insertion_location_redraws_the_probe_figures(computed):
    assert generate().ok
    before = dict(zip(*(report.ProbeReport.Figure & KEY).to_arrays("figure_name", "png_sha1")))
    # the probe was in the other hemisphere: contra and ipsi swap
    (ephys.ProbeInsertion.InsertionLocation & KEY).delete_quick()
    ephys.ProbeInsertion.InsertionLocation.insert1(
        dict(KEY, skull_reference="Bregma", ap_location=2500, ml_location=1500, depth=1000)
    )
    for t in (psth.UnitSelectivity.Unit, psth.UnitSelectivity, psth.PeriodSelectivity.Unit, psth.PeriodSelectivity):
        (t & KEY).delete_quick()
    assert populate_psth().ok
    s = generate()
    assert s.ok and any("out of date" in n for n in s.notes), s.report()
    after = dict(zip(*(report.ProbeReport.Figure & KEY).to_arrays("figure_name", "png_sha1")))
    assert after["group_psth"] != before["group_psth"]
    assert after["clustering_quality"] == before["clustering_quality"]  # same data, same picture


def test_processes_draw_the_same_figures(computed):
    assert generate(processes=1).ok
    one = dict(zip(*report.UnitReport.Figure.to_arrays("unit", "png_sha1")))
    (report.UnitReport.Figure & KEY).delete_quick()
    (report.UnitReport & KEY).delete_quick()
    assert generate(processes=2).ok
    assert dict(zip(*report.UnitReport.Figure.to_arrays("unit", "png_sha1"))) == one


def test_sync_copies_only_what_changed(computed, tmp_path, database):
    assert generate().ok
    out = tmp_path / "figures"
    first = sync(out)
    n = len(first.loaded)
    assert first.ok and n == sum(len(t.Figure()) for t in report.TABLES)
    probe_dir = out / "dm71" / "20230601_100000" / "probe1"
    assert (probe_dir / "group_psth.png").is_file() and any((probe_dir / "units").glob("unit*_unit.png"))
    assert (out / "dm71" / "20230601_100000" / "performance.png").is_file()
    second = sync(out)
    assert not second.loaded and len(second.skipped) == n
    (probe_dir / "drift_map.png").write_bytes(b"edited")
    third = sync(out)
    assert third.loaded == ["dm71/20230601_100000/probe1/drift_map.png"]
    r = run_mapshell(["sync-report", str(tmp_path / "cli")], database.env())
    assert r.returncode == 0 and f"figures: {n} found, {n} loaded" in r.stdout, r.stdout + r.stderr


def test_figure_functions_alone():
    """The pure figure functions on hand-made inputs (no database)."""
    import pandas as pd

    from pipeline import figures

    trials = pd.DataFrame(
        dict(
            trial=np.arange(1, 41),
            trial_instruction=["left", "right"] * 20,
            outcome=(["hit"] * 3 + ["miss"]) * 10,
            early_lick=["no early"] * 40,
            auto_water=[False] * 40,
        )
    )
    img = _image(figures.to_png(figures.session_performance(trials, title="t")))
    assert img.shape[:2] == (400, 1050) and img[..., :3].std() > 0.05
