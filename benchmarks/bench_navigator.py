"""Benchmark: the navigator's pages on a Neuropixels-scale probe (400 units, after populate-psth),
against the database queries each page needs, in one run. Not a test.

For each page type (subjects, subject, session, probe, unit, and the probe's JSON unit list) it
prints

* (a) the page's server time: the navigator answering the request (routing, queries, HTML),
  median of --repeat after a warm-up; and an HTTP GET of it from this process over 127.0.0.1;
* (b) the database alone: the SQL statements that one request sent (recorded at the connection),
  replayed back to back on the same connection, median of --repeat replays; goal (a)/(b) <= 1.5
  (the samples of (a) and (b) alternate, so a change of load on the machine affects both);
* (c) with Chromium (headless, via Playwright) when available: the time to first contentful paint
  of the page (navigation start to first paint; the figures load afterwards).

Then the figures of the probe and of one unit: drawn on request (nothing stored, first request)
and served again from memory.

    python benchmarks/bench_navigator.py [--spikes 4000000] [--units 400] [--trials 400] [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as r:
        return r.read()


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _paint_times(base: str, paths: dict[str, str], repeat: int) -> dict[str, float] | None:
    from pipeline.navigator.browser import CHROMIUM_ARGS, chromium_path

    chromium = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for name, path in paths.items():
            samples = []
            for _ in range(repeat):
                page.goto("about:blank")
                page.goto(base + path, wait_until="load")
                for _ in range(200):  # the paint entry can come a little after the load event
                    fcp = page.evaluate(
                        "(() => { const e = performance.getEntriesByName('first-contentful-paint')[0];"
                        " return e ? e.startTime : null; })()"
                    )
                    if fcp is not None:
                        samples.append(fcp / 1000)
                        break
                    page.wait_for_timeout(10)
            out[name] = statistics.median(samples) if samples else float("nan")
        browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=4_000_000)
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--no-browser", action="store_true", help="skip the first-paint measurements")
    args = ap.parse_args()

    import probe_setup

    bench = probe_setup.start("bench_navigator")
    from pipeline import db, navigator
    from pipeline.compute import populate_psth

    try:
        print(f"database: {db.target()}; {args.spikes:,} spikes, {args.units} units, {args.trials} trials")
        key = probe_setup.load_probe(bench, args.spikes, args.units, args.trials)
        assert populate_psth(key).ok
        app = navigator.make_app()
        gate = app.gate
        unit = args.units // 2
        probe = "/subject/bp1/session/1/probe/1"
        paths = {
            "subjects": "/",
            "subject": "/subject/bp1",
            "session": "/subject/bp1/session/1",
            "probe": probe,
            "unit": f"{probe}/unit/{unit}",
            "units (JSON)": f"/api{probe}/units",
        }
        with navigator.running(app=app) as server:
            base = server.url.rstrip("/")
            print(
                f"\n{'page':<14} {'(a) server':>11} {'(b) database':>13} {'(a)/(b)':>8} {'queries':>8}"
                f" {'HTTP GET':>10} {'size':>8}"
            )
            for name, path in paths.items():
                for _ in range(3):  # warm-up: DataJoint loads table headings once
                    body = _get(base + path)
                t_http = _median_time(lambda path=path: _get(base + path), args.repeat)

                def answer(path=path):
                    with navigator.guard.request_scope():
                        assert app.handle(path).status == 200

                gate.recording = []
                answer()
                recorded, gate.recording = gate.recording, None

                def replay(recorded=recorded):
                    for sql, params in recorded:
                        gate.original(sql, params).fetchall()

                # (a) and (b) taken in turns, so that both see the same load on a shared machine
                pages, dbs = [], []
                for _ in range(args.repeat):
                    pages.append(_median_time(answer, 1))
                    dbs.append(_median_time(replay, 1))
                t_page, t_db = statistics.median(pages), statistics.median(dbs)
                print(
                    f"{name:<14} {t_page * 1000:8.1f} ms {t_db * 1000:10.1f} ms {t_page / t_db:8.2f}"
                    f" {len(recorded):8d} {t_http * 1000:7.1f} ms {len(body) / 1024:5.0f} kB"
                )
            print("(a) the server's work for the page (in this process); (b) its SQL replayed; goal (a)/(b) <= 1.5")

            if not args.no_browser:
                paint = _paint_times(server.url.rstrip("/"), {k: v for k, v in paths.items() if "JSON" not in k}, 5)
                if paint is None:
                    print("\n(c) skipped: no Chromium or no playwright")
                else:
                    print(f"\n{'page':<14} {'(c) first contentful paint':>27}")
                    for name, t in paint.items():
                        print(f"{name:<14} {t * 1000:24.0f} ms")

            app.figures.cache.clear()  # the browser above asked for some: draw them again
            app.figures.frames.clear()
            print(f"\n{'figure':<34} {'drawn on request':>17} {'from memory':>12}")
            figures = [f"{probe}/figure/{n}.png" for n in ("clustering_quality", "unit_characteristics", "group_psth")]
            figures += [f"{probe}/figure/{n}.png" for n in ("drift_map",)]
            figures += [f"{probe}/unit/{unit}/figure/unit.png"]
            figures += [f"{probe}/unit/{unit}/figure/condition.png?condition=good_noearlylick_left_hit"]
            for path in figures:
                t0 = time.perf_counter()
                try:
                    _get(base + path)
                except urllib.error.HTTPError as e:  # e.g. no selective unit: no group PSTH
                    print(f"{path.rsplit('/', 1)[-1]:<34} {e.code}")
                    continue
                cold = time.perf_counter() - t0
                warm = _median_time(lambda path=path: _get(base + path), 5)
                print(
                    f"{path.split('/figure/')[0][len(probe) :] + ' ' + path.rsplit('/', 1)[-1]:<34.34} "
                    f"{cold:14.2f} s {warm * 1000:9.1f} ms"
                )
    finally:
        probe_setup.stop(bench)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
