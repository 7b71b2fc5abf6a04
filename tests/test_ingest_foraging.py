"""ingest-foraging on a real database: generated pybpod projects (known ground truth) in, exact rows
out; metadata rules, re-runs, bad files."""

import datetime as dt
import json

import numpy as np
import pytest
from conftest import run_mapshell

from pipeline import experiment, lab
from pipeline.ingest import behavior as ingest_behavior
from pipeline.ingest.behavior import ingest_foraging
from pipeline.synthetic.pybpod import write_foraging_day, write_subject_meta

DAYS = [dt.date(2021, 3, 1), dt.date(2021, 3, 2)]


def _animal(subject_id, h2o):
    lab.Subject.insert1(dict(subject_id=subject_id, sex="M"))
    lab.WaterRestriction.insert1(
        dict(subject_id=subject_id, water_restriction_number=h2o, wr_start_date="2021-01-01", wr_start_weight=24)
    )


@pytest.fixture
def project(tmp_path):
    proj, meta = tmp_path / "Tower-2" / "Foraging", tmp_path / "Metadata"
    days = [
        write_foraging_day(
            proj, h2o="FOR01", date=DAYS[0], n_sessions=2, trials_per_session=30, seed=1, skip_gocue_every=7
        ),
        write_foraging_day(
            proj, h2o="FOR01", date=DAYS[1], n_sessions=1, trials_per_session=40, seed=2, three_lickports=True
        ),
    ]
    write_subject_meta(meta, "FOR01", DAYS)
    return dict(meta_dir=str(meta), project_paths=[str(proj)]), days


def test_generated_days_load_with_ground_truth(database, project):
    bpod, days = project
    _animal(11, "FOR01")
    s = ingest_foraging(bpod)
    assert s.ok and len(s.loaded) == 2, s.report()
    assert len(experiment.Session()) == 2
    for session, day in enumerate(days, start=1):
        truth = day.truth
        key = dict(subject_id=11, session=session)
        sess = (experiment.Session & key).fetch1()
        assert sess["session_date"] == truth.session_datetime.date() and sess["rig"] == truth.rig
        bt = (
            (experiment.SessionTrial * experiment.BehaviorTrial * experiment.WaterPortChoice & key)
            .to_pandas()
            .reset_index()
            .sort_values("trial")
        )
        assert list(bt.trial) == [t.trial for t in truth.trials]
        assert list(bt.outcome) == [t.outcome for t in truth.trials]
        assert list(bt.early_lick) == [t.early_lick for t in truth.trials]
        assert [None if w is None or (isinstance(w, float) and np.isnan(w)) else w for w in bt.water_port] == [
            t.choice for t in truth.trials
        ]
        assert list(bt.task_protocol) == [t.task_protocol for t in truth.trials]
        np.testing.assert_allclose(bt.start_time, [t.start_time for t in truth.trials])
        assert list(bt.auto_water.astype(bool)) == [t.auto_water for t in truth.trials]
        assert len(experiment.TrialEvent & key) == sum(len(t.events) for t in truth.trials)
        licks = (experiment.ActionEvent & key).to_pandas().reset_index().sort_values("action_event_id")
        expected = [(t.trial, a[0], a[1]) for t in truth.trials for a in t.licks]
        assert list(zip(licks.trial, licks.action_event_type)) == [(e[0], e[1]) for e in expected]
        np.testing.assert_allclose(licks.action_event_time, [e[2] for e in expected])
        blocks = (experiment.SessionBlock & key).to_pandas().reset_index().sort_values("block")
        assert list(blocks.block) == [b.block for b in truth.blocks]
        probs = (experiment.SessionBlock.WaterPortRewardProbability & key).to_dicts()
        assert {(p["block"], p["water_port"]): pytest.approx(p["reward_probability"]) for p in probs} == {
            (b.block, port): pr for b in truth.blocks for port, pr in b.reward_probability.items()
        }
        assert len(experiment.SessionBlock.BlockTrial & key) == len(truth.trials)
        avail = {
            (r["trial"], r["water_port"]): bool(r["reward_available"])
            for r in (experiment.TrialAvailableReward & key).to_dicts()
        }
        assert avail == {(t.trial, p): v for t in truth.trials for p, v in t.available_reward.items()}
        valves = {
            (r["trial"], r["water_port"]): r["open_duration"]
            for r in (experiment.WaterPortSetting.OpenDuration & key).to_dicts()
        }
        assert valves == pytest.approx(
            {(t.trial, p): v for t in truth.trials for p, v in t.valve_open_duration.items()}
        )
        files = (ingest_behavior.BehaviorBpodIngest.BehaviorFile & key).to_arrays("behavior_file")
        assert sorted(files) == sorted(p.stem for p in day.files)
    assert set(experiment.BehaviorTrial().to_arrays("task")) == {"foraging", "foraging 3lp"}
    details = (experiment.SessionDetails & {"session": 1}).fetch1()
    assert details["session_water_earned"] > 0 and details["session_weight"] > 0
    assert len(days[0].truth.skipped_trials) > 0  # the generator really dropped go cues

    # re-running is a no-op
    n = len(experiment.TrialEvent())
    again = ingest_foraging(bpod)
    assert again.ok and not again.loaded and len(again.skipped) == 2
    assert len(experiment.TrialEvent()) == n


def test_metadata_rules_and_bad_input(database, project, tmp_path):
    bpod, days = project
    _animal(12, "FOR01")
    proj = bpod["project_paths"][0]
    write_foraging_day(proj, h2o="FOR01", date=dt.date(2021, 3, 5), seed=3)  # no metadata row
    write_foraging_day(proj, h2o="FOR77", date=dt.date(2021, 3, 1), seed=4)  # unknown animal
    broken = write_foraging_day(proj, h2o="FOR01", date=dt.date(2021, 3, 3), seed=5)  # truncated log
    write_subject_meta(bpod["meta_dir"], "FOR01", DAYS + [dt.date(2021, 3, 3), dt.date(2021, 3, 4)])
    text = broken.files[0].read_text()
    broken.files[0].write_text(text[: len(text) // 2])
    s = ingest_foraging(dict(bpod, project_paths=bpod["project_paths"] + [str(tmp_path / "nowhere")]))
    assert len(s.loaded) == 2
    failed, skipped = dict(s.failed), dict(s.skipped)
    assert any(str(broken.files[0]) in r for r in failed.values())
    assert any("pybpod project folder does not exist" in r for r in failed.values())
    assert "no pybpod session of FOR01 that day" in skipped["FOR01 2021-03-04"]
    assert "no session row for that day" in skipped["FOR01 2021-03-05"]
    assert len(experiment.Session()) == 2
    assert not (ingest_behavior.BehaviorBpodIngest.BehaviorFile & {"behavior_file": broken.files[0].stem})
    missing = ingest_foraging(dict(meta_dir=str(tmp_path / "nometa"), project_paths=[proj]))
    assert not missing.ok and "meta_dir does not exist" in missing.failed[0][1]


def test_changed_log_is_reported_and_cli(database, project, tmp_path):
    bpod, days = project
    _animal(13, "FOR01")
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(json.dumps({"custom": {"behavior_bpod": bpod}}))
    env = database.env(MAP_CONFIG=str(conf))
    r = run_mapshell(["ingest-foraging"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 found, 2 loaded, 0 skipped, 0 failed" in r.stdout
    f = days[1].files[0]
    f.write_text(f.read_text() + "\n")
    r = run_mapshell(["ingest-foraging"], env)
    assert r.returncode == 1 and "changed since loading" in r.stdout
    assert len(experiment.Session()) == 2


@pytest.mark.embedded_only("a missing setting: nothing is read or written; test_changed_log_is_reported_and_cli loads")
def test_cli_without_setting(database, tmp_path):
    conf = tmp_path / "dj_local_conf.json"
    conf.write_text(json.dumps({"custom": {}}))
    r = run_mapshell(["ingest-foraging"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 1 and "behavior_bpod: setting is missing" in r.stdout
