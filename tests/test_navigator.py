"""The MAP navigator on a real database and in a real browser (headless Chromium via Playwright).

The data: the planted probe of test_psth (one delay-response session, 240 trials, a probe of
units with known responses) in ALM with most units failing ALM's criteria, a second session and a
second subject (behaviour only), a generated CCF annotation and the probe's electrodes placed in
it; populate-psth runs on it, and generate-report (all of it for the browser test, the probe's
figures for the other, whose remaining figures are drawn on request). The numbers the pages show are checked against
the database, the unit table is sorted and filtered in the browser, the error pages are checked,
and nothing is written while the navigator answers.

Screenshots go to the test's tmp folder; with MAP_NAVIGATOR_DOCS=1 the probe and unit pages also
to docs/navigator-probe.png and docs/navigator-unit.png.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from test_psth import KEY, WHEN, planted  # noqa: F401  (the fixture)

from pipeline import ccf, ephys, experiment, histology, lab, navigator, psth, report
from pipeline.compute import populate_psth
from pipeline.ingest.behavior import ingest_behavior
from pipeline.navigator import guard
from pipeline.navigator.browser import CHROMIUM_ARGS, chromium_path
from pipeline.reporting import generate
from pipeline.synthetic.bpod_delay_response import write_session_file
from pipeline.synthetic.ccf import write_annotation_nrrd, write_ontology_csv

DOCS = Path(__file__).resolve().parents[1] / "docs"
CHROMIUM = chromium_path()
BASE = "/subject/dm71/session/1"
PROBE = f"{BASE}/probe/1"
SKEY = dict(subject_id=71, session=1)


@pytest.fixture
def navdata(planted, tmp_path):  # noqa: F811
    """The planted probe computed and reported, with histology, and more sessions and subjects."""
    # ALM: most units fail its presence-ratio criterion (fewer unit figures to draw)
    ephys.ProbeInsertion.RecordableBrainRegion.insert1(dict(KEY, brain_area="ALM", hemisphere="left"))
    for unit in (ephys.Clustering.ClusterMetric & KEY & "unit > 8").to_arrays("unit"):
        ephys.Clustering.ClusterMetric.update1(dict(KEY, unit=int(unit), presence_ratio=0.5))
    # a second session of dm71 and a second subject, behaviour only
    lab.Subject.insert1(dict(subject_id=72, sex="F", date_of_birth="2022-11-02"))
    lab.WaterRestriction.insert1(
        dict(subject_id=72, water_restriction_number="dm72", wr_start_date="2023-01-01", wr_start_weight=21)
    )
    write_session_file(tmp_path / "rig2", h2o="dm71", when=WHEN + dt.timedelta(days=1), n_trials=40, seed=3)
    write_session_file(tmp_path / "rig2", h2o="dm72", when=WHEN, n_trials=30, seed=4)
    assert ingest_behavior([["RRig", str(tmp_path / "rig2"), 0]]).ok
    # a generated CCF, and the probe's electrodes on a straight track through it
    write_annotation_nrrd(tmp_path / "ccf" / "annotation.nrrd", shape=(132, 80, 114), voxel_um=100, seed=0)
    paths = dict(
        version_name="CCF_2017",
        region_csv=str(write_ontology_csv(tmp_path / "ccf" / "tree.csv")),
        annotation_nrrd=str(tmp_path / "ccf" / "annotation.nrrd"),
    )
    ccf.CCFBrainRegion.load_regions(paths)
    ccf.CCFAnnotation.load_ccf_annotation(paths, step=2)
    ccf._volume_cache.clear()
    config = (ephys.ProbeInsertion & KEY).proj("probe_type", "electrode_config_name")
    elec = (lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode & config).to_dicts(order_by="electrode")
    y = np.array([e["y_coord"] for e in elec], dtype=float)
    xyz = np.column_stack([np.full(len(y), 4200.0), 4600.0 - y, np.full(len(y), 5200.0)])  # ML, DV, AP
    regions = ccf.region_at(xyz)
    histology.ElectrodeCCFPosition.insert1(dict(KEY, annotation_version="CCF_2017"))
    histology.ElectrodeCCFPosition.ElectrodePosition.insert(
        [
            dict(
                KEY,
                probe_type=e["probe_type"],
                electrode_config_name=e["electrode_config_name"],
                electrode_group=e["electrode_group"],
                electrode=e["electrode"],
                ccf_x=int(p[0]),
                ccf_y=int(p[1]),
                ccf_z=int(p[2]),
                region_id=int(r),
            )
            for e, p, r in zip(elec, xyz, regions)
        ]
    )
    histology.LabeledProbeTrack.insert1(dict(KEY, dye_color="DiI"))
    histology.LabeledProbeTrack.Point.insert(
        [dict(KEY, shank=1, point_order=k, ccf_x=4200.0, ccf_y=4600.0 - 400 * k, ccf_z=5200.0) for k in range(10)]
    )
    assert populate_psth().ok
    return planted


def _get(url: str, host: str | None = None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _api(server, path: str):
    status, _, body = _get(server.url.rstrip("/") + path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def wait_until(page, expression: str, arg=None, timeout: float = 30.0) -> None:
    """Poll a JavaScript expression until true (page.wait_for_function compiles it with eval, which
    the navigator's Content-Security-Policy forbids, as it should)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
        page.wait_for_timeout(50)


def _rates() -> dict[int, float]:
    return dict(zip(*(ephys.UnitStat.Unit & KEY).to_arrays("unit", "avg_firing_rate")))


def test_pages_json_errors_and_read_only(navdata):
    report.ProbeReport.populate(KEY)  # the probe's figures stored; the others are drawn on request
    app = navigator.make_app()
    statements: list = []
    app.gate.recording = statements
    with navigator.running(app=app) as server:
        # JSON against the database
        subjects = {s["h2o"]: s for s in _api(server, "/api/subjects")}
        assert set(subjects) == {"dm71", "dm72"}
        assert subjects["dm71"]["sessions"] == len(experiment.Session & {"subject_id": 71}) == 2
        sessions = _api(server, "/api/subject/dm71/sessions")["sessions"]
        for s in sessions:
            k = dict(subject_id=71, session=s["session"])
            assert s["trials"] == len(experiment.SessionTrial & k)
            hits = len(experiment.BehaviorTrial & k & {"outcome": "hit"})
            misses = len(experiment.BehaviorTrial & k & {"outcome": "miss"})
            assert s["performance"] == pytest.approx(hits / (hits + misses))
        assert sessions[0]["loaded"] == dict(behavior=True, tracking=False, ephys=True, histology=True, computed=True)
        assert sessions[1]["loaded"]["behavior"] and not sessions[1]["loaded"]["ephys"]
        units = _api(server, f"/api{PROBE}/units")["units"]
        assert len(units) == len(ephys.Clustering.Unit & KEY)
        rates, passing = (
            _rates(),
            dict(zip(*(ephys.UnitPassingCriteria.Unit & KEY).to_arrays("unit", "criteria_passed"))),
        )
        regions = dict(zip(*(histology.unit_ccf() & KEY).to_arrays("unit", "acronym")))
        for u in units:
            assert u["firing_rate"] == pytest.approx(rates[u["unit"]])
            assert u["passing"] == bool(passing[u["unit"]])
            assert u["region"] == regions[u["unit"]]
        unit = _api(server, f"/api{PROBE}/unit/3")
        assert unit["unit"]["firing_rate"] == pytest.approx(rates[3]) and unit["ccf"]["acronym"] == regions[3]
        assert {c["name"] for c in unit["conditions"]} == set(psth.TrialCondition.to_arrays("trial_condition_name"))
        page2 = _api(server, f"/api{BASE}/trials?page=2")
        assert page2["trials"][0]["trial"] == 101 and page2["total"] == len(experiment.SessionTrial & SKEY)

        # errors: a short page, the right status, never a traceback
        for path, status in (
            ("/subject/nobody", 404),
            (f"{BASE}/probe/1/unit/abc", 400),
            (f"{BASE}/probe/1/unit/99999", 404),
            (f"{BASE}/probe/7", 404),
            ("/subject/dm71/session/-1", 400),
            (f"{BASE}?page=0", 400),
            (f"{BASE}?page=x", 400),
            (f"{BASE}?page=99", 404),
            (f"{PROBE}/unit/3?condition=nonsense", 400),
            (f"{PROBE}/figure/nonsense.png", 404),
            ("/subject/%ff", 400),
            ("/nowhere", 404),
            ("/api/subject/nobody/sessions", 404),
        ):
            got, headers, body = _get(server.url.rstrip("/") + path)
            assert got == status, (path, got, body[:300])
            assert b"Traceback" not in body and len(body) < 4000
        got, _, body = _get(server.url.rstrip("/") + "/api/subject/nobody/sessions")
        assert json.loads(body)["status"] == 404
        assert app.handle("/subject/dm71/?x=1").headers["Location"] == "/subject/dm71?x=1"  # one address per page
        got, _, _ = _get(server.url + "subject/dm71", host="attacker.example:80")
        assert got == 400  # bound to loopback: answers only requests addressed to it

        # a bug: 500 with a short page, the traceback in the log only
        original = navigator.data.subjects
        navigator.data.subjects = lambda: 1 / 0
        try:
            got, _, body = _get(server.url)
        finally:
            navigator.data.subjects = original
        assert got == 500 and b"ZeroDivision" not in body and b"Traceback" not in body

        # figures: stored ones as stored, others drawn once and then kept
        status, headers, png = _get(server.url.rstrip("/") + f"{PROBE}/figure/drift_map.png")
        stored = (report.ProbeReport.Figure & KEY & {"figure_name": "drift_map"}).to_arrays("png")[0]
        assert status == 200 and headers["Content-Type"] == "image/png" and png == bytes(stored)
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        failing = int((ephys.UnitPassingCriteria.Unit & KEY & "not criteria_passed").to_arrays("unit")[0])
        drawn = app.figures.drawn
        for _ in range(2):
            status, _, png = _get(server.url.rstrip("/") + f"{PROBE}/unit/{failing}/figure/unit.png")
            assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
        assert app.figures.drawn == drawn + 1
        status, _, png = _get(
            server.url.rstrip("/") + f"{PROBE}/unit/{failing}/figure/condition.png?condition=good_noearlylick_left_hit"
        )
        assert status == 200 and png[:4] == b"\x89PNG"

    # read-only: every statement sent while answering was a read, and a write is refused
    assert statements and all(guard._ALLOWED.match(sql) for sql, _ in statements)
    with guard.request_scope(), pytest.raises(guard.ReadOnlyViolation):
        lab.Person.insert1(dict(username="intruder", fullname="x"))
    assert not lab.Person & {"username": "intruder"}


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium) for the browser tests")
def test_click_through_in_a_browser(navdata, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    assert generate().ok  # every figure stored: the pages show the report's PNGs
    to_docs = bool(os.environ.get("MAP_NAVIGATOR_DOCS"))
    rates = _rates()
    n_trials = len(experiment.SessionTrial & SKEY)
    hits = len(experiment.BehaviorTrial & SKEY & {"outcome": "hit"})
    misses = len(experiment.BehaviorTrial & SKEY & {"outcome": "miss"})
    passing = set((ephys.UnitPassingCriteria.Unit & KEY & "criteria_passed").to_arrays("unit"))
    regions = dict(zip(*(histology.unit_ccf() & KEY).to_arrays("unit", "acronym")))
    errors: list[str] = []

    def shot(page, name, full=False):
        page.screenshot(path=str(tmp_path / f"navigator-{name}.png"), full_page=full)
        if to_docs and name in ("probe", "unit"):  # the two docs/navigator.md shows
            page.screenshot(path=str(DOCS / f"navigator-{name}.png"), full_page=full)

    def visible_units(page) -> list[int]:
        return [int(t) for t in page.locator("#units tbody tr:visible td:first-child").all_inner_texts()]

    with navigator.running() as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(30_000)

        # subjects: the list, its numbers, the filter box
        page.goto(server.url)
        rows = page.locator("#subjects tbody tr")
        assert rows.count() == 2
        assert rows.filter(has_text="dm71").locator("td").nth(4).inner_text() == "2"
        page.fill("input[data-filter=text]", "dm72")
        assert page.locator("#subjects tbody tr:visible").count() == 1
        page.fill("input[data-filter=text]", "")
        shot(page, "subjects")

        # a subject: its sessions with trials, performance and what is loaded
        page.click("text=dm71")
        page.wait_for_url("**/subject/dm71")
        first = page.locator("#sessions tbody tr").first
        cells = first.locator("td").all_inner_texts()
        assert cells[4] == str(n_trials) and cells[5] == f"{100 * hits / (hits + misses):.0f} %"
        assert first.locator(".badge.on").all_inner_texts() == ["behavior", "ephys", "histology", "computed"]
        shot(page, "subject")

        # a session: the numbers, the figure, the trial pages
        page.locator("#sessions tbody tr").first.locator("a").first.click()
        page.wait_for_url(f"**{BASE}")
        assert page.locator(".stat", has_text="trials").first.locator("b").inner_text() == str(n_trials)
        wait_until(page, "document.querySelector('#fig-performance img').naturalWidth > 0")
        assert page.locator("#trial-table tbody tr").count() == 100
        shot(page, "session")
        page.locator(".pager a", has_text="next").first.click()
        page.wait_for_url("**page=2*")
        assert page.locator("#trial-table tbody tr td").first.inner_text() == "101"

        # the probe: the unit table against the database, sorted and filtered in the browser
        page.goto(server.url.rstrip("/") + BASE)
        page.locator("#probes a", has_text="1").first.click()
        page.wait_for_url(f"**{PROBE}")
        wait_until(page, "document.body.dataset.ready === '1'")  # long tables show all rows after the first paint
        assert len(visible_units(page)) == len(rates)
        row = page.locator("#units tbody tr").filter(has=page.locator("td:first-child", has_text="3")).first
        assert row.locator("td").nth(4).inner_text() == f"{rates[3]:.2f}"
        page.click("#units th[data-key=firing_rate]")
        assert visible_units(page)[0] == min(rates, key=rates.get)
        page.click("#units th[data-key=firing_rate]")
        assert visible_units(page)[0] == max(rates, key=rates.get)
        page.select_option("select[data-key=passing]", "yes")
        assert set(visible_units(page)) == passing
        page.select_option("select[data-key=passing]", "")
        threshold = float(np.median(list(rates.values())))
        page.fill("input[data-key=firing_rate]", f"{threshold:.3f}")
        assert set(visible_units(page)) == {u for u, r in rates.items() if r >= round(threshold, 3)}
        region = sorted(set(regions.values()))[0]
        page.select_option("select[data-key=region]", region)
        assert set(visible_units(page)) == {
            u for u, r in rates.items() if r >= round(threshold, 3) and regions.get(u) == region
        }
        page.click("form.filters button[type=reset]")
        wait_until(page, "n => document.querySelectorAll('#units tbody tr:not([hidden])').length === n", arg=len(rates))
        page.click("#units th[data-key=depth]")
        for img in page.locator("figure img").all():  # the figures load when scrolled to
            img.scroll_into_view_if_needed()
        wait_until(page, "[...document.querySelectorAll('figure img')].every(i => i.complete && i.naturalWidth > 0)")
        names = page.locator("figure").evaluate_all("fs => fs.map(f => f.id)")
        assert {"fig-clustering_quality", "fig-group_psth", "fig-drift_map", "fig-coronal_slice"} <= set(names)
        page.locator("#units").scroll_into_view_if_needed()
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "probe", full=True)

        # a unit: its numbers, figures, neighbours by depth, another condition
        unit = min(passing)
        page.locator("#units tbody tr td:first-child a", has_text=str(unit)).first.click()
        page.wait_for_url(f"**{PROBE}/unit/{unit}")
        assert page.locator(".stat", has_text="firing rate").locator("b").inner_text() == f"{rates[unit]:.2f} Hz"
        assert regions[unit] in page.locator("p.sub").inner_text()
        wait_until(page, "document.querySelector('#fig-unit img').naturalWidth > 0")
        wait_until(page, "document.querySelector('#fig-condition img').naturalWidth > 0")
        shot(page, "unit", full=True)
        page.select_option("select[name=condition]", "good_noearlylick_right_hit")
        page.click("form button[type=submit]")
        page.wait_for_url("**condition=good_noearlylick_right_hit*")
        wait_until(page, "document.querySelector('#fig-condition img').naturalWidth > 0")
        neighbour = page.locator(".neighbours a").last
        target = neighbour.get_attribute("href")
        neighbour.click()
        page.wait_for_url(f"**{target}")

        assert not errors, errors  # no failed resource, no script error, no CSP violation

        # error pages
        r = page.goto(server.url + "subject/nobody")
        assert r.status == 404 and "Not found" in page.locator("h1").inner_text()
        r = page.goto(server.url.rstrip("/") + f"{PROBE}/unit/abc")
        assert r.status == 400 and "whole number" in page.locator(".error p").first.inner_text()
        shot(page, "error")
        browser.close()


def test_pages_escape_what_they_show_and_urls_are_validated():
    """No database: hostile values come out escaped; malformed URL parts are refused."""
    from pipeline.navigator import pages, server

    evil = '<script>alert("x")</script>'
    html = pages.subjects_page(
        [dict(h2o=evil, subject_id=1, sex="M", date_of_birth=None, sessions=0, last_session=None, url="/subject/x")],
        where=evil,
    )
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    for bad in ("a/b", "<x>", "", "x" * 80, "../etc"):
        with pytest.raises(navigator.BadRequest):
            server._h2o(bad)
    for bad in ("abc", "-1", "1.5", "1e3", "9" * 12):
        with pytest.raises(navigator.BadRequest):
            server._int(bad, "unit")
    with pytest.raises(navigator.BadRequest):
        server._params("page=1&page=2")
    srv = server.NavigatorServer(("127.0.0.1", 0), app=None)
    try:
        port = srv.server_address[1]
        assert srv.host_allowed(f"127.0.0.1:{port}") and srv.host_allowed(f"localhost:{port}")
        assert not srv.host_allowed("evil.example") and not srv.host_allowed(f"evil.example:{port}")
    finally:
        srv.server_close()
