"""``mapshell``: the command line. Each action calls a function that is usable from Python too.

Exit status: 0 success; 1 the action ran but something failed (e.g. rows of a sheet);
2 usage, configuration or connection problems (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger("pipeline.shell")


def _connect_and_load(modules: tuple[str, ...] | None = None) -> dict:
    """Connect, import and activate the schema modules; return the namespace for the shell."""
    import datajoint as dj
    import numpy as np

    from . import config, db

    ns = {"dj": dj, "config": config, "sys": sys, "np": np}
    ns.update(db.load_modules(modules or db.SCHEMA_MODULE_ORDER))
    return ns


def banner(modules) -> str:
    return "map shell.\n\nschema modules:\n\n" + "\n".join(f"- {m}" for m in modules) + "\n"


def _finish(args, summary) -> int:
    """Print the step's summary (every item with --verbose, failures only with --quiet); exit status."""
    text = summary.report(verbose=getattr(args, "verbose", False), quiet=getattr(args, "quiet", False))
    if text:
        print(text)
    return 0 if summary.ok else 1


# --- actions -----------------------------------------------------------------------------


def action_shell(args) -> int:
    """Interactive Python with dj, sys and every schema module loaded (or run -c CODE / a script on stdin)."""
    from . import db

    print(f"Connecting {db.target()}")
    ns = _connect_and_load()
    text = banner(db.SCHEMA_MODULE_ORDER)
    code = args.command
    if code is None and not sys.stdin.isatty():
        code = sys.stdin.read()
    if code is not None:
        print(text)
        try:
            exec(compile(code, "<mapshell>", "exec"), ns)
        except SystemExit as e:
            return int(e.code or 0) if not isinstance(e.code, str) else 1
        except Exception:  # show the user's error like Python would, but exit 1
            import traceback

            traceback.print_exc()
            return 1
        return 0
    try:
        from IPython import start_ipython

        print(text)
        start_ipython(argv=["--no-banner"], user_ns=ns)
    except ImportError:
        import code as code_mod

        code_mod.interact(banner=text, local=ns)
    return 0


def action_erd(args) -> int:
    """Write ERD images (whole pipeline and one per schema) as SVG and PNG into a folder."""
    from .erd import write_erd

    files = write_erd(args.folder)
    for f in files:
        print(f)
    return 0


def action_load_animal(args) -> int:
    """Load subjects and water-restriction records from an xlsx/csv sheet."""
    from .ingest.animals import load_animals

    summary = load_animals(args.file, args.sheet)
    return _finish(args, summary)


def action_load_meta_foraging(args) -> int:
    """Load the foraging lab's people, rigs, animals and water restrictions from its metadata sheets
    (Experimenter.csv, Rig.csv, Surgery.csv, <ID>.csv; the behavior_bpod setting)."""
    from .ingest.meta_foraging import load_meta_foraging

    return _finish(args, load_meta_foraging())


def action_ingest_behavior(args) -> int:
    """Load new delay-response sessions from the rig folders in behavior_data_paths."""
    from .ingest.behavior import ingest_behavior

    paths = [[args.rig, args.path, 0]] if args.path else None
    summary = ingest_behavior(paths)
    return _finish(args, summary)


def action_ingest_foraging(args) -> int:
    """Load new foraging sessions from the pybpod projects in the behavior_bpod setting."""
    from .ingest.behavior import ingest_foraging

    summary = ingest_foraging()
    return _finish(args, summary)


def action_ingest_ephys(args) -> int:
    """Load spike sorting (Kilosort, JRClust v3/v4) per probe for sessions with ephys folders."""
    from .ingest.ephys import ingest_ephys

    replace = False if args.replace is None else (parse_restriction(args.replace) if args.replace else True)
    summary = ingest_ephys([args.path] if args.path else None, replace=replace)
    return _finish(args, summary)


def action_archive(args) -> int:
    """List the archived sortings and histologies of re-loaded probes, or restore one (the current is archived)."""
    from .ingest.archive import CLUSTERING, HISTOLOGY, list_archives, restore

    if args.archive_action == "restore":
        kind = HISTOLOGY if args.histology else CLUSTERING
        current = restore(kind, parse_restriction(args.restriction), args.number)
        saved = f"; the {kind.name} it replaced is archive {current}" if current else ""
        print(
            f"{kind.name} archive {args.number} restored{saved}; "
            "populate-psth and generate-report (or the workers) compute what depends on it again"
        )
        return 0
    rows = list_archives(parse_restriction(args.restriction))
    if not rows:
        print("nothing archived")
    for r in rows:
        what = (
            f"{r['clustering_method']} of {r['clustering_time']}, {r['n_units']} units, {r['n_spikes']} spikes"
            if r["kind"] == "clustering"
            else f"{r['histology_format']}, {r['n_electrodes']} electrodes, {r['n_track_points']} track points"
        )
        print(
            f"{r['water_restriction_number']} session {r['session']} probe {r['insertion_number']}  "
            f"{r['kind']} archive {r['archive_number']}: {what}; archived {r['archived_at']} ({r['reason']}); "
            f"{r['archive_url']}/{r['archive_file']}"
        )
    return 0


def action_load_insertion_location(args) -> int:
    """Load probe insertion locations (and quality, good periods) from the recording-notes sheet."""
    from . import config
    from .ingest.insertion_location import load_insertion_locations

    path = args.file or config.get("recording_notes_spreadsheet")
    if not path:
        print("give the sheet, or set recording_notes_spreadsheet", file=sys.stderr)
        return 2
    summary = load_insertion_locations(
        path, args.sheet or config.get("recording_notes_sheet_name"), replace=args.replace
    )
    return _finish(args, summary)


def action_ingest_tracking(args) -> int:
    """Load DeepLabCut tracking per trial and camera for sessions without tracking."""
    from .ingest.tracking import ingest_tracking

    summary = ingest_tracking()
    return _finish(args, summary)


def action_ccfload(args) -> int:
    """Load the Allen CCF region ontology and annotation volume named in ccf_data_paths."""
    from . import ccf, config

    paths = config.get("ccf_data_paths")
    if not paths:
        print(
            "mapshell ccfload: set ccf_data_paths first (version_name, region_csv, hexcode_csv, annotation_nrrd)",
            file=sys.stderr,
        )
        return 2
    return _finish(args, ccf.ccfload(paths))


def action_ingest_histology(args) -> int:
    """Load electrode CCF positions, brain regions and probe tracks for insertions without histology."""
    from .ingest.histology import ingest_histology

    replace = False if args.replace is None else (parse_restriction(args.replace) if args.replace else True)
    summary = ingest_histology([args.path] if args.path else None, replace=replace)
    return _finish(args, summary)


def parse_restriction(text: str | None):
    """A restriction from the command line: JSON (an object, or a list of objects) or SQL
    (e.g. ``subject_id=55 AND session=1``); None for none."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        return value
    from .errors import ConfigError

    raise ConfigError(f"restriction {text!r}: expected a JSON object, a list of them, or an SQL condition")


def action_populate_psth(args) -> int:
    """Compute unit statistics, cell types, drift, criteria, PSTHs and selectivity for every probe."""
    from .compute import populate_psth

    summary = populate_psth(parse_restriction(args.probe))
    return _finish(args, summary)


def action_generate_report(args) -> int:
    """Draw and store the figures of every session, probe, unit and the project (stale ones again)."""
    from .reporting import generate

    return _finish(args, generate(parse_restriction(args.restriction), processes=args.processes))


def action_sync_report(args) -> int:
    """Copy the stored figures to a folder (only what changed)."""
    from .reporting import sync

    return _finish(args, sync(args.folder))


def action_export_recording(args) -> int:
    """Export sessions to NWB (one file per session) or to the original MATLAB layout (one per probe)."""
    from .export import export_recording

    summary = export_recording(
        parse_restriction(args.restriction), fmt=args.format, out=args.out, dandi=args.dandi, overwrite=args.overwrite
    )
    return _finish(args, summary)


def action_publish(args) -> int:
    """Copy the raw files (SpikeGLX, videos) of loaded sessions to the archive and record them."""
    from .publishing import publish, verify

    restriction = parse_restriction(args.restriction)
    if args.verify:
        return _finish(args, verify(restriction))
    return _finish(args, publish(restriction, url=args.archive))


def action_auto_ingest(args) -> int:
    """Run every configured ingest step (and again every --interval seconds unless --once)."""
    from .workers import auto_ingest

    summaries = auto_ingest(once=args.once, interval=args.interval)
    for s in summaries:
        text = s.report(verbose=args.verbose, quiet=args.quiet)
        if text:
            print(text)
    return 0 if all(s.ok for s in summaries) else 1


def action_automate_computation(args) -> int:
    """Populate every computed table with DataJoint job reservation (many workers can share it)."""
    from .workers import automate_computation

    summary = automate_computation(once=args.once, interval=args.interval)
    return _finish(args, summary)


def action_automate_sync_and_cleanup(args) -> int:
    """Requeue dead workers' keys, remove orphaned store objects, sync the figures."""
    from .workers import automate_sync_and_cleanup

    return _finish(args, automate_sync_and_cleanup(once=args.once, interval=args.interval))


def action_jobs(args) -> int:
    """Per computed table: keys to do, reserved (host, process, since), errors and done."""
    from .workers import jobs_status, retry_errors

    if args.retry_errors is not None:
        n = retry_errors(args.retry_errors or None)
        print(f"{n} error records removed; the next round computes those keys again")
        return 0
    for row in jobs_status():
        print(
            f"{row['table']:<32} to do {row['pending']:>6}  reserved {len(row['reserved']):>3}  "
            f"errors {len(row['errors']):>3}  done {row['done']:>6}"
        )
        for host, pid, since in row["reserved"]:
            print(f"    reserved by {host} pid {pid} since {since}")
        for message in row["errors"][:5]:
            print(f"    error: {message}")
    return 0


def action_navigator(args) -> int:
    """Browse subjects, sessions, probes and units in a local web page (read-only)."""
    from . import navigator

    navigator.serve(
        args.host, args.port, ready=lambda url: print(f"MAP navigator at {url} (Ctrl-C to stop)", flush=True)
    )
    return 0


def action_config(args) -> int:
    """Show, set (and save), unset or save the pipeline settings (the seed's ``custom`` section)."""
    from . import config

    if args.config_action == "show":
        print(json.dumps(config.show(), indent=2, default=str))
        return 0
    if args.config_action == "set":
        try:
            value = json.loads(args.value)
        except json.JSONDecodeError:
            value = args.value  # a bare string such as a path
        config.custom[args.key] = value
        print(f"{args.key} = {json.dumps(config.custom[args.key])}")
        print(f"saved to {config.save_local(args.file)}")
        return 0
    if args.config_action == "unset":
        if args.key not in config.custom:
            print(f"{args.key} is not set", file=sys.stderr)
            return 1
        del config.custom[args.key]
        print(f"saved to {config.save_local(args.file)}")
        return 0
    if args.config_action == "save":
        print(f"saved to {config.save_local(args.file)}")
        return 0
    raise AssertionError(args.config_action)


def action_migrate(args) -> int:
    """List the pending data/schema migrations and what each would change; --apply applies them."""
    from .migrations import migrate

    return _finish(args, migrate(apply=args.apply))


def action_demo(args) -> int:
    """Set up the database and run the main job end to end on the sample data."""
    from . import demo

    demo.run(prefix=args.prefix or demo.DEMO_PREFIX, fresh=args.fresh)
    return 0


ACTIONS: dict[str, Callable] = {
    "shell": action_shell,
    "erd": action_erd,
    "load-animal": action_load_animal,
    "load-meta-foraging": action_load_meta_foraging,
    "ingest-behavior": action_ingest_behavior,
    "ingest-foraging": action_ingest_foraging,
    "ingest-ephys": action_ingest_ephys,
    "archive": action_archive,
    "ingest-tracking": action_ingest_tracking,
    "ccfload": action_ccfload,
    "ingest-histology": action_ingest_histology,
    "load-insertion-location": action_load_insertion_location,
    "populate-psth": action_populate_psth,
    "generate-report": action_generate_report,
    "sync-report": action_sync_report,
    "export-recording": action_export_recording,
    "publish": action_publish,
    "auto-ingest": action_auto_ingest,
    "automate-computation": action_automate_computation,
    "automate-sync-and-cleanup": action_automate_sync_and_cleanup,
    "jobs": action_jobs,
    "navigator": action_navigator,
    "config": action_config,
    "migrate": action_migrate,
    "demo": action_demo,
}
#: The seed refers to this mapping as the shell's 'actions' variable.
actions = ACTIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mapshell",
        description="MAP pipeline command line. The database is the embedded PostgreSQL unless "
        "DataJoint is configured (datajoint.json or DJ_HOST); see README.",
    )

    def common(parser, default):
        parser.add_argument(
            "--prefix", default=default, help="schema name prefix (default map_v2_, or MAP_SCHEMA_PREFIX)"
        )
        parser.add_argument(
            "-v", "--verbose", action="store_true", default=default or False, help="list every item in the summary"
        )
        parser.add_argument("-q", "--quiet", action="store_true", default=default or False, help="print only failures")
        parser.add_argument(
            "--loglevel",
            default=default,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="log level (default MAP_LOGLEVEL or INFO)",
        )

    common(p, None)
    shared = argparse.ArgumentParser(add_help=False)
    common(shared, argparse.SUPPRESS)  # also accepted after the action, without overriding
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, description: str | None = None) -> argparse.ArgumentParser:
        doc = ACTIONS[name].__doc__
        return sub.add_parser(name, help=doc, description=description or doc, parents=[shared])

    s = action("shell")
    s.add_argument("-c", "--command", help="run this Python code instead of an interactive session")

    s = action("erd")
    s.add_argument("folder", nargs="?", default="erd", help="output folder (default ./erd)")

    s = action(
        "load-animal",
        action_load_animal.__doc__ + " Columns: subject_id, water_restriction_number, "
        "wr_start_date, wr_start_weight, sex; optional username, fullname, cage_number, date_of_birth, "
        "animal_source, animal_strain (see README).",
    )
    s.add_argument("file", help="the .xlsx or .csv file")
    s.add_argument("sheet", nargs="?", help="sheet name (xlsx; default the first sheet)")

    action("load-meta-foraging")

    s = action("ingest-behavior")
    s.add_argument("--path", help="a rig folder to load instead of the behavior_data_paths setting")
    s.add_argument("--rig", default="unknown-rig", help="rig name for --path (default unknown-rig)")

    action("ingest-foraging")

    action("ingest-tracking")
    action("ccfload")
    s = action("ingest-histology")
    s.add_argument("--path", help="a histology root folder to load instead of the histology_data_paths setting")
    s.add_argument(
        "--replace",
        nargs="?",
        const="",
        metavar="RESTRICTION",
        help="load changed histology of loaded insertions (all, or those matching RESTRICTION), archiving the loaded one",
    )

    s = action("ingest-ephys")
    s.add_argument("--path", help="an ephys root folder to load instead of the ephys_data_paths setting")
    s.add_argument(
        "--replace",
        nargs="?",
        const="",
        metavar="RESTRICTION",
        help="load changed sortings of loaded probes (all, or those matching RESTRICTION), archiving the loaded ones",
    )

    s = action("archive")
    asub = s.add_subparsers(dest="archive_action", metavar="list|restore", required=True)
    a = asub.add_parser("list", help="the archived sortings")
    a.add_argument("restriction", nargs="?", help="which insertions: JSON or SQL; default all")
    a = asub.add_parser("restore", help="put an archived sorting back (the current one is archived)")
    a.add_argument(
        "restriction", help='the insertion: JSON (\'{"subject_id": 55, "session": 1, "insertion_number": 1}\')'
    )
    a.add_argument("number", type=int, help="the archive number (see archive list)")
    a.add_argument("--histology", action="store_true", help="restore an archived histology (default: a sorting)")

    s = action("load-insertion-location")
    s.add_argument("file", nargs="?", help="the .xlsx/.csv sheet (default: recording_notes_spreadsheet)")
    s.add_argument("sheet", nargs="?", help="sheet name (default: recording_notes_sheet_name or the first)")
    s.add_argument("--replace", action="store_true", help="update insertions whose stored location differs")

    s = action("populate-psth")
    s.add_argument(
        "--probe",
        metavar="RESTRICTION",
        help='which probes: JSON (\'{"subject_id": 55, "session": 1}\') or SQL ("subject_id=55"); default all',
    )

    s = action("generate-report")
    s.add_argument(
        "restriction", nargs="?", help="which sessions/probes: JSON ('{\"subject_id\": 55}') or SQL; default all"
    )
    s.add_argument("--processes", type=int, default=1, help="processes that draw unit figures (default 1)")

    s = action("sync-report")
    s.add_argument("folder", nargs="?", help="target folder (default: the report_folder setting, else ./report)")

    s = action("export-recording")
    s.add_argument("restriction", nargs="?", help='which sessions: JSON (\'{"subject_id": 55, "session": 1}\') or SQL')
    s.add_argument("--format", choices=["nwb", "mat"], default="nwb", help="nwb (default) or mat (per probe)")
    s.add_argument("--out", default=".", help="output folder (default .)")
    s.add_argument(
        "--dandi", action="store_true", help="DANDI layout: sub-<id>/sub-<id>_ses-<...>_ecephys+behavior.nwb"
    )
    s.add_argument("--overwrite", action="store_true", help="replace existing files")

    s = action("publish")
    s.add_argument("restriction", nargs="?", help='which sessions: JSON (\'{"subject_id": 55, "session": 1}\') or SQL')
    s.add_argument("--archive", metavar="URL", help="archive folder or fsspec URL (default: the archive_url setting)")
    s.add_argument("--verify", action="store_true", help="re-read the published files from the archive and check them")

    for name, default in (("auto-ingest", 300), ("automate-computation", 300), ("automate-sync-and-cleanup", 600)):
        s = action(name)
        s.add_argument("--once", action="store_true", help="one round, then exit")
        s.add_argument("--interval", type=float, default=default, help=f"seconds between rounds (default {default})")
    s = action("jobs")
    s.add_argument(
        "--retry-errors", nargs="?", const="", metavar="TABLE", help="clear error records (of TABLE, or all)"
    )

    s = action("navigator")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")

    s = action("config")
    csub = s.add_subparsers(dest="config_action", metavar="show|set|unset|save", required=True)
    csub.add_parser("show", help="print the settings and the file they come from (secrets hidden)")
    cs = csub.add_parser("set", help="set KEY to a JSON VALUE and save")
    cs.add_argument("key")
    cs.add_argument("value", help='JSON, e.g. \'[["Rig1", "/data/rig1", 0]]\' (a bare word is a string)')
    cs.add_argument("--file", help="save to this file instead of the one in use")
    cu = csub.add_parser("unset", help="remove KEY and save")
    cu.add_argument("key")
    cu.add_argument("--file", help="save to this file instead of the one in use")
    cv = csub.add_parser("save", help="write the settings (to FILE, or the file in use, or ./dj_local_conf.json)")
    cv.add_argument("file", nargs="?")

    s = action("migrate")
    s.add_argument("--apply", action="store_true", help="apply the pending migrations (default: a dry run)")

    s = action("demo")
    s.add_argument("--fresh", action="store_true", help="drop the demo schemas first")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.prefix:
        os.environ["MAP_SCHEMA_PREFIX"] = args.prefix
    from .errors import InputError, MapError

    try:
        from . import log as map_log

        map_log.setup(args.loglevel)
        return ACTIONS[args.action](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except InputError as e:  # a whole input (a sheet, a file) is unreadable: the action ran and failed
        logging.getLogger("pipeline.report").info("mapshell %s: %s", args.action, e)
        print(f"mapshell {args.action}: {e}", file=sys.stderr)
        return 1
    except MapError as e:  # user-fixable (settings, connection, a whole input): one line, no traceback
        logging.getLogger("pipeline.report").info("mapshell %s: %s", args.action, e)
        print(f"mapshell {args.action}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
