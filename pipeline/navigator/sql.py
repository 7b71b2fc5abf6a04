"""The navigator's SQL: one parameterized statement per question a page asks, built once per
binding of the schema modules (schema names from the configured prefix, identifiers quoted for
the backend) and sent straight through DataJoint's connection (``conn.query(sql, args)``).

DataJoint's query building (headings, restrictions, subqueries) costs more than these small
indexed queries take on the database; the pages ask the same few questions every time, so the
statements are written once here. Every statement is a SELECT; values are always parameters
(``%s``, both PyMySQL and psycopg2), never spliced into the text.

Templates quote identifiers the ANSI way (``"name"``; turned into backticks for MySQL/MariaDB)
and name tables as ``{table}`` (replaced by DataJoint's full, quoted table name). Tables of a
schema module that does not exist on the database are never named: the statement uses NULL or 0
in their place (the module counts as empty).
"""

from __future__ import annotations

import threading

from .. import db

#: modules whose tables the statements name
_MODULES = ("lab", "experiment", "tracking", "ephys", "histology", "ccf", "psth")

_cache: dict = {}
_cache_lock = threading.Lock()


def have(module: str) -> bool:
    """Whether a schema module is bound to an existing schema (else its tables count as empty)."""
    s = db.schemas().get(module)
    return s is not None and s.database is not None


def statements() -> Statements:
    """The statements for the current binding (built on first use, then kept)."""
    conn = db.connect()
    schemas = db.schemas()
    key = (id(conn), tuple(s.database for s in schemas.values()))
    got = _cache.get(key)
    if got is None:
        with _cache_lock:
            got = _cache.get(key)
            if got is None:
                if len(_cache) > 16:
                    _cache.clear()
                got = _cache[key] = Statements(conn)
    return got


def _tables() -> dict[str, str]:
    out = {}

    def put(name, table):
        out[name] = table.full_table_name

    lab, experiment = db.import_module("lab"), db.import_module("experiment")
    put("subject", lab.Subject)
    put("water_restriction", lab.WaterRestriction)
    put("probe_electrode", lab.ProbeType.Electrode)
    put("session", experiment.Session)
    put("session_trial", experiment.SessionTrial)
    put("behavior_trial", experiment.BehaviorTrial)
    put("trial_event", experiment.TrialEvent)
    put("photostim", experiment.Photostim)
    put("photostim_location", experiment.Photostim.PhotostimLocation)
    put("photostim_event", experiment.PhotostimEvent)
    put("water_port_choice", experiment.WaterPortChoice)
    if have("tracking"):
        put("tracking", db.import_module("tracking").Tracking)
    if have("ephys"):
        ephys = db.import_module("ephys")
        put("probe_insertion", ephys.ProbeInsertion)
        put("insertion_location", ephys.ProbeInsertion.InsertionLocation)
        put("recordable_region", ephys.ProbeInsertion.RecordableBrainRegion)
        put("insertion_quality", ephys.ProbeInsertionQuality)
        put("clustering", ephys.Clustering)
        put("unit", ephys.Clustering.Unit)
        put("cluster_metric", ephys.Clustering.ClusterMetric)
        put("waveform_metric", ephys.Clustering.WaveformMetric)
        put("unit_label", ephys.Clustering.UnitLabel)
        put("unit_stat", ephys.UnitStat.Unit)
        put("cell_type", ephys.UnitCellType.Unit)
        put("drift", ephys.MAPClusterMetric.DriftMetric)
        put("criteria", ephys.UnitPassingCriteria)
        put("passing", ephys.UnitPassingCriteria.Unit)
    if have("histology"):
        histology = db.import_module("histology")
        put("ccf_position", histology.ElectrodeCCFPosition)
        put("electrode_position", histology.ElectrodeCCFPosition.ElectrodePosition)
        put("track", histology.LabeledProbeTrack)
        put("track_point", histology.LabeledProbeTrack.Point)
    if have("ccf"):
        put("ccf_region", db.import_module("ccf").CCFBrainRegion)
    if have("psth"):
        psth = db.import_module("psth")
        put("unit_psth", psth.UnitPsth)
        put("unit_psth_unit", psth.UnitPsth.Unit)
        put("selectivity", psth.UnitSelectivity)
        put("unit_selectivity", psth.UnitSelectivity.Unit)
        put("period_selectivity", psth.PeriodSelectivity.Unit)
    return out


def _on(a: str, b: str, *cols: str) -> str:
    return " AND ".join(f'{a}."{c}" = {b}."{c}"' for c in cols)


SESSION_KEY = ("subject_id", "session")
PROBE_KEY = ("subject_id", "session", "insertion_number")
UNIT_KEY = (*PROBE_KEY, "unit")


def _where(alias: str, cols) -> str:
    return " AND ".join(f'{alias}."{c}" = %s' for c in cols)


class Statements:
    """The statements of every page for one binding; ``run(name, *args)`` returns the rows."""

    def __init__(self, conn):
        self.conn = conn
        self.mysql = conn.adapter.backend != "postgresql"
        self.tables = _tables()
        self.has = {m: have(m) for m in _MODULES}
        self.has["histology"] = self.has["histology"] and self.has["ephys"]
        self.has["psth"] = self.has["psth"] and self.has["ephys"]
        ephys = db.import_module("ephys") if self.has["ephys"] else None
        #: the sorter's metrics shown on a unit's page (every secondary attribute)
        self.metric_attrs = tuple(ephys.Clustering.ClusterMetric.heading.secondary_attributes) if ephys else ()
        self.waveform_attrs = tuple(ephys.Clustering.WaveformMetric.heading.secondary_attributes) if ephys else ()
        self.sql = {name: self._build(text) for name, text in self._templates().items()}

    def _build(self, text: str) -> str:
        text = " ".join(text.split())
        if self.mysql:
            text = text.replace('"', "`")
        return text.format(**self.tables)

    def run(self, name: str, *args) -> list[tuple]:
        """The rows of statement ``name`` with ``args`` (as the driver returns them)."""
        return self.conn.query(self.sql[name], args).fetchall()

    def region_names(self, version, ids: list[int]) -> list[tuple]:
        """(region id, acronym, name) of the CCF regions ``ids`` of annotation ``version``."""
        name = f"region_names_{len(ids)}"
        text = self.sql.get(name)
        if text is None:
            text = self._build(
                'SELECT "region_id", "acronym", "region_name" FROM {ccf_region} WHERE "annotation_version" = %s'
                f' AND "region_id" IN ({", ".join(["%s"] * len(ids))})'
            )
            if len(ids) <= 64:
                self.sql[name] = text
        return self.conn.query(text, (version, *ids)).fetchall()

    def exists(self, table: str, alias: str, key_cols) -> str:
        """SQL: 1 when ``table`` has a row matching ``alias``'s key columns, else 0."""
        return f"(CASE WHEN EXISTS (SELECT 1 FROM {{{table}}} x WHERE {_on('x', alias, *key_cols)}) THEN 1 ELSE 0 END)"

    def _templates(self) -> dict[str, str]:
        has = self.has
        subject_cols = 's."subject_id", s."sex", s."date_of_birth", s."username"'
        session_cols = 'e."session", e."session_date", e."session_datetime", e."username", e."rig"'
        t = {}
        t["subjects"] = """
            SELECT s."subject_id", s."sex", s."date_of_birth", w."water_restriction_number", c."n", c."last"
            FROM {subject} s
            LEFT JOIN {water_restriction} w ON w."subject_id" = s."subject_id"
            LEFT JOIN (SELECT "subject_id", count(*) AS "n", max("session_date") AS "last"
                       FROM {session} GROUP BY "subject_id") c ON c."subject_id" = s."subject_id"
        """
        # a subject by water-restriction id, with one of its sessions (NULLs when it has no such session)
        t["subject_session"] = f"""
            SELECT {subject_cols}, {session_cols}
            FROM {{subject}} s JOIN {{water_restriction}} w ON w."subject_id" = s."subject_id"
            LEFT JOIN {{session}} e ON e."subject_id" = s."subject_id" AND e."session" = %s
            WHERE w."water_restriction_number" = %s
        """
        # ... by subject id, for a subject without a water restriction
        t["subject_session_by_id"] = f"""
            SELECT {subject_cols}, {session_cols}
            FROM {{subject}} s
            LEFT JOIN {{session}} e ON e."subject_id" = s."subject_id" AND e."session" = %s
            WHERE s."subject_id" = %s
              AND NOT EXISTS (SELECT 1 FROM {{water_restriction}} w WHERE w."subject_id" = s."subject_id")
        """

        # a subject's sessions with their trials, behaviour counts, probes, units and badges
        probes = (
            '(SELECT count(*) FROM {probe_insertion} x WHERE x."subject_id" = e."subject_id" AND x."session" = e."session")'
            if has["ephys"]
            else "0"
        )
        units = (
            '(SELECT count(*) FROM {unit} x WHERE x."subject_id" = e."subject_id" AND x."session" = e."session")'
            if has["ephys"]
            else "0"
        )
        tracking = self.exists("tracking", "e", SESSION_KEY) if has["tracking"] else "0"
        histology = (
            f"{self.exists('ccf_position', 'e', SESSION_KEY)} + {self.exists('track', 'e', SESSION_KEY)}"
            if has["histology"]
            else "0"
        )
        computed = self.exists("unit_psth", "e", SESSION_KEY) if has["psth"] else "0"
        t["sessions"] = f"""
            SELECT {session_cols},
              (SELECT count(*) FROM {{session_trial}} x WHERE x."subject_id" = e."subject_id" AND x."session" = e."session"),
              b."task_min", b."task_max", b."hits", b."misses", b."n",
              {probes}, {units}, {tracking}, {histology}, {computed}
            FROM {{session}} e
            LEFT JOIN (
              SELECT "session", min("task") AS "task_min", max("task") AS "task_max",
                sum(CASE WHEN "outcome" = 'hit' THEN 1 ELSE 0 END) AS "hits",
                sum(CASE WHEN "outcome" = 'miss' THEN 1 ELSE 0 END) AS "misses",
                count(*) AS "n"
              FROM {{behavior_trial}} WHERE "subject_id" = %s GROUP BY "session") b ON b."session" = e."session"
            WHERE e."subject_id" = %s
            ORDER BY e."session"
        """

        # one session: trials, behaviour counts, whether it has water-port choices (foraging)
        t["session_counts"] = f"""
            SELECT (SELECT count(*) FROM {{session_trial}} x WHERE {_where("x", SESSION_KEY)}),
              min(b."task"), max(b."task"),
              sum(CASE WHEN b."outcome" = 'hit' THEN 1 ELSE 0 END),
              sum(CASE WHEN b."outcome" = 'miss' THEN 1 ELSE 0 END),
              sum(CASE WHEN b."outcome" = 'ignore' THEN 1 ELSE 0 END),
              sum(CASE WHEN b."early_lick" = 'early' THEN 1 ELSE 0 END),
              count(*),
              (CASE WHEN EXISTS (SELECT 1 FROM {{water_port_choice}} x WHERE {_where("x", SESSION_KEY)}) THEN 1 ELSE 0 END)
            FROM {{behavior_trial}} b WHERE {_where("b", SESSION_KEY)}
        """
        t["trial_count"] = f"SELECT count(*) FROM {{session_trial}} x WHERE {_where('x', SESSION_KEY)}"
        t["protocols"] = f'SELECT DISTINCT "task_protocol" FROM {{behavior_trial}} b WHERE {_where("b", SESSION_KEY)}'
        t["photostims"] = f"""
            SELECT p."photo_stim", p."duration", l."brain_area", l."ml_location"
            FROM {{photostim}} p
            LEFT JOIN {{photostim_location}} l ON {_on("l", "p", *SESSION_KEY, "photo_stim")}
            WHERE {_where("p", SESSION_KEY)}
            ORDER BY p."photo_stim"
        """
        t["photostim_events"] = f"""
            SELECT "trial", "photo_stim", "power" FROM {{photostim_event}} x WHERE {_where("x", SESSION_KEY)}
        """
        t["instructions"] = f"""
            SELECT "trial", "trial_instruction", "outcome" FROM {{behavior_trial}} x WHERE {_where("x", SESSION_KEY)}
        """
        # a page of trials: each table alone (a join on trial is planned badly on tables without statistics)
        t["trials"] = f"""
            SELECT "trial", "start_time", "stop_time" FROM {{session_trial}} x WHERE {_where("x", SESSION_KEY)}
            ORDER BY "trial" LIMIT %s OFFSET %s
        """
        span = f'{_where("x", SESSION_KEY)} AND x."trial" >= %s AND x."trial" <= %s'
        t["trial_behavior"] = f"""
            SELECT "trial", "task", "task_protocol", "trial_instruction", "early_lick", "outcome", "auto_water",
              "free_water"
            FROM {{behavior_trial}} x WHERE {span}
        """
        t["trial_go"] = f"""
            SELECT "trial", "trial_event_time" FROM {{trial_event}} x WHERE {span} AND x."trial_event_type" = 'go'
        """
        if not has["ephys"]:
            return t

        # the probes of a session (or one probe): insertion, sorting, unit counts, location, histology
        histo = (
            f'(SELECT x."annotation_version" FROM {{ccf_position}} x WHERE {_on("x", "p", *PROBE_KEY)})'
            if has["histology"]
            else "NULL"
        )
        probe_rows = f"""
            SELECT p."insertion_number", p."probe", p."probe_type", p."electrode_config_name",
              c."clustering_method", c."clustering_time", c."manual_curation", c."quality_control", c."sampling_rate",
              (SELECT count(*) FROM {{unit}} x WHERE {_on("x", "p", *PROBE_KEY)}),
              (SELECT sum(CASE WHEN x."unit_quality" = 'good' THEN 1 ELSE 0 END) FROM {{unit}} x
               WHERE {_on("x", "p", *PROBE_KEY)}),
              (SELECT sum(CASE WHEN x."criteria_passed" THEN 1 ELSE 0 END) FROM {{passing}} x
               WHERE {_on("x", "p", *PROBE_KEY)}),
              l."insertion_number", l."skull_reference", l."ap_location", l."ml_location", l."depth",
              l."theta", l."phi", l."beta",
              {histo}
            FROM {{probe_insertion}} p
            LEFT JOIN {{clustering}} c ON {_on("c", "p", *PROBE_KEY)}
            LEFT JOIN {{insertion_location}} l ON {_on("l", "p", *PROBE_KEY)}
            WHERE {_where("p", SESSION_KEY)}
        """
        t["probes"] = probe_rows + ' ORDER BY p."insertion_number"'
        t["probe"] = probe_rows + ' AND p."insertion_number" = %s'
        t["regions"] = f"""
            SELECT "insertion_number", "brain_area", "hemisphere" FROM {{recordable_region}} x
            WHERE {_where("x", SESSION_KEY)}
        """
        t["probe_regions"] = t["regions"] + ' AND x."insertion_number" = %s'

        # a probe's page besides its row: quality, criteria region, track, which figures exist
        track = (
            f"""t."insertion_number", t."dye_color", t."labeling_date",
              (SELECT count(*) FROM {{track_point}} x WHERE {_on("x", "p", *PROBE_KEY)})"""
            if has["histology"]
            else "NULL, NULL, NULL, 0"
        )
        track_join = f"LEFT JOIN {{track}} t ON {_on('t', 'p', *PROBE_KEY)}" if has["histology"] else ""
        psth = (
            f"""{self.exists("selectivity", "p", PROBE_KEY)},
              (SELECT count(*) FROM {{unit_psth}} x WHERE {_on("x", "p", *PROBE_KEY)}
               AND x."trial_count" > 0 AND right(x."trial_condition_name", 9) = '_alm_stim')"""
            if has["psth"]
            else "0, 0"
        )
        t["probe_extras"] = f"""
            SELECT q."insertion_number", q."drift_presence", q."number_of_landmarks", q."alignment_confidence",
              q."insertion_comment",
              (SELECT x."region" FROM {{criteria}} x WHERE {_on("x", "p", *PROBE_KEY)}),
              {track}, {psth}
            FROM {{probe_insertion}} p
            LEFT JOIN {{insertion_quality}} q ON {_on("q", "p", *PROBE_KEY)}
            {track_join}
            WHERE {_where("p", PROBE_KEY)}
        """
        t["probe_electrodes"] = (
            'SELECT "electrode", "x_coord", "y_coord" FROM {probe_electrode} WHERE "probe_type" = %s'
        )
        if has["histology"]:
            t["placement"] = f"""
                SELECT "electrode", "region_id", "ccf_x", "ccf_y", "ccf_z" FROM {{electrode_position}} x
                WHERE {_where("x", PROBE_KEY)}
            """
        # the unit table: one statement per table (joins on unit are planned badly on tables without
        # statistics, e.g. just after an ingest: 50 ms instead of 1 ms for 400 units)
        unit_cols = {
            "units": (
                "unit",
                (
                    "unit",
                    "unit_quality",
                    "unit_amp",
                    "unit_snr",
                    "n_spikes",
                    "unit_posx",
                    "unit_posy",
                    "electrode",
                    "probe_type",
                ),
            ),
            "unit_stats": ("unit_stat", ("unit", "avg_firing_rate", "isi_violation")),
            "unit_metrics": ("cluster_metric", ("unit", "presence_ratio", "amplitude_cutoff")),
            "unit_cell_types": ("cell_type", ("unit", "cell_type")),
            "unit_drift": ("drift", ("unit", "drift_metric")),
            "unit_passing": ("passing", ("unit", "criteria_passed")),
        }
        if has["psth"]:
            unit_cols["unit_selectivities"] = ("unit_selectivity", ("unit", "unit_selectivity"))
        for name, (table, cols) in unit_cols.items():
            columns = ", ".join(f'x."{c}"' for c in cols)
            t[name] = f"SELECT {columns} FROM {{{table}}} x WHERE {_where('x', PROBE_KEY)}"
        t["units"] += ' ORDER BY x."unit"'
        t["probe_exists"] = f"SELECT 1 FROM {{probe_insertion}} p WHERE {_where('p', PROBE_KEY)}"
        # a unit's page: the probe's units' positions (neighbours; no row: no such probe)
        t["unit_positions"] = f"""
            SELECT u."unit", u."unit_posx", u."unit_posy", u."electrode", u."probe_type"
            FROM {{probe_insertion}} p LEFT JOIN {{unit}} u ON {_on("u", "p", *PROBE_KEY)}
            WHERE {_where("p", PROBE_KEY)}
        """
        metric_cols = ", ".join(f'm."{a}"' for a in self.metric_attrs) or "NULL"
        wave_cols = ", ".join(f'w."{a}"' for a in self.waveform_attrs) or "NULL"
        psth_cols, psth_join = "NULL, 0", ""
        if has["psth"]:
            psth_cols = f'v."unit_selectivity", {self.exists("unit_psth_unit", "u", UNIT_KEY)}'
            psth_join = f"LEFT JOIN {{unit_selectivity}} v ON {_on('v', 'u', *UNIT_KEY)}"
        ccf_cols, ccf_join = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL", ""
        if has["histology"] and has["ccf"]:
            ccf_cols = 'h."annotation_version", ep."region_id", ep."ccf_x", ep."ccf_y", ep."ccf_z", r."region_id", r."acronym", r."region_name"'
            ccf_join = f"""
                LEFT JOIN {{ccf_position}} h ON {_on("h", "u", *PROBE_KEY)}
                LEFT JOIN {{electrode_position}} ep ON {_on("ep", "u", *PROBE_KEY, "electrode")}
                LEFT JOIN {{ccf_region}} r ON r."annotation_version" = h."annotation_version"
                  AND r."region_id" = ep."region_id" AND ep."region_id" <> 0
            """
        t["unit"] = f"""
            SELECT u."unit_quality", u."electrode", u."n_spikes", u."unit_amp", u."unit_snr",
              s."avg_firing_rate", s."isi_violation", ct."cell_type", ct."trough_to_peak", pc."criteria_passed",
              (SELECT x."region" FROM {{criteria}} x WHERE {_on("x", "u", *PROBE_KEY)}),
              d."drift_metric", m."unit", w."unit", {psth_cols}, {ccf_cols}, {metric_cols}, {wave_cols}
            FROM {{unit}} u
            LEFT JOIN {{unit_stat}} s ON {_on("s", "u", *UNIT_KEY)}
            LEFT JOIN {{cell_type}} ct ON {_on("ct", "u", *UNIT_KEY)}
            LEFT JOIN {{passing}} pc ON {_on("pc", "u", *UNIT_KEY)}
            LEFT JOIN {{drift}} d ON {_on("d", "u", *UNIT_KEY)}
            LEFT JOIN {{cluster_metric}} m ON {_on("m", "u", *UNIT_KEY)}
            LEFT JOIN {{waveform_metric}} w ON {_on("w", "u", *UNIT_KEY)}
            {psth_join}
            {ccf_join}
            WHERE {_where("u", UNIT_KEY)}
        """
        t["unit_labels"] = f'SELECT "label_source", "label" FROM {{unit_label}} x WHERE {_where("x", UNIT_KEY)}'
        if has["psth"]:
            t["unit_periods"] = f"""
                SELECT "period", "period_selectivity", "ipsi_firing_rate", "contra_firing_rate", "p_value"
                FROM {{period_selectivity}} x WHERE {_where("x", UNIT_KEY)}
            """
            t["conditions"] = f"""
                SELECT "trial_condition_name", "trial_count" FROM {{unit_psth}} x WHERE {_where("x", PROBE_KEY)}
            """
        return t
