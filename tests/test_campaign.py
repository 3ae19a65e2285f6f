"""The fault campaign's plan and report (`python -m tests.campaign`), without running a trial:
a seed always gives the same trials, every fault kind comes up, and a finished run's JSON
renders back into the same table. No JVM, no database."""

import json
from dataclasses import asdict

import pytest

from tests.campaign import KINDS, SEAM_KINDS, Fault, Trial, load_trials, plan, summary, table_row


def trials(seed=1, scope="checkpoint", count=20, control=False):
    return [plan(seed, scope, i, i + 1, KINDS, control) for i in range(count)]


def test_a_seed_gives_the_same_trials_and_another_seed_others():
    assert [asdict(t) for t in trials(seed=7)] == [asdict(t) for t in trials(seed=7)]
    assert [asdict(t) for t in trials(seed=7)] != [asdict(t) for t in trials(seed=8)]


def test_every_kind_comes_up_and_the_mini_cluster_never_loses_a_taskmanager():
    planned = trials(count=len(KINDS))
    assert {t.faults[0].kind for t in planned} == set(KINDS)
    everything = trials(count=20)
    assert {t.where for t in everything} == {"cluster", "mini"}
    for trial in everything:
        kinds = [f.kind for f in trial.faults]
        assert sum(k in SEAM_KINDS for k in kinds) <= 1, "one fault seam setting per trial"
        if trial.where == "mini":
            assert "taskmanager-kill" not in kinds


def test_outages_are_short_and_longer_than_the_first_restart_delays():
    outages = [f for t in trials(count=140) for f in t.faults if f.kind == "db-outage"]
    assert {f.phase for f in outages} == {"write", "precommit", "commit"}
    assert any(f.seconds < 8 for f in outages) and any(f.seconds > 15 for f in outages)


def test_a_run_renders_again_from_its_json(tmp_path):
    trial = Trial(1, "1/checkpoint/0", "checkpoint", "cluster", 2, [Fault("rescale", at=0.2)])
    trial.faults[0].struck, trial.faults[0].recovery = 12.0, 9.5
    trial.lines, trial.rows = 50_119, 46_313
    (tmp_path / "campaign.json").write_text(json.dumps([asdict(trial)]))
    (loaded,) = load_trials(tmp_path / "campaign.json")
    assert table_row(loaded) == table_row(trial)
    assert "| exact |" in table_row(loaded)
    text, ok = summary([loaded], control=False)
    assert ok and "checkpoint: 1/1 exact" in text


def test_a_difference_fails_the_campaign_and_the_control_wants_one():
    exact = Trial(1, "s", "checkpoint", "cluster", 2, [Fault("python-exception", struck=3.0)])
    exact.lines = 10
    doubled = Trial(2, "s", "checkpoint", "cluster", 2, [Fault("python-exception", struck=3.0)])
    doubled.lines, doubled.duplicates = 10, 4
    assert summary([exact], control=False)[1]
    assert not summary([exact, doubled], control=False)[1]
    assert summary([doubled], control=True)[1]
    assert not summary([exact], control=True)[1]


def test_a_fault_that_did_not_strike_fails_its_trial_and_the_campaign(tmp_path):
    """Books that come out exact prove nothing about a fault that never struck: the trial and
    the campaign fail, the control too, and `--report` exits 1 with the reason."""
    from tests.campaign import report

    unstruck = Fault("taskmanager-kill", at=0.3, note="no TaskManager was running the job's tasks")
    trial = Trial(1, "s", "checkpoint", "cluster", 2, [Fault("python-exception", struck=3.0)])
    trial.faults.append(unstruck)
    trial.lines = 10
    assert trial.exact and not trial.passed
    assert "did not strike: taskmanager-kill (no TaskManager was running" in table_row(trial)
    text, ok = summary([trial], control=False)
    assert not ok and "Faults that did not strike: 1; #1 taskmanager-kill" in text
    control = Trial(2, "s", "at-least-once", "cluster", 2, [unstruck], control=True)
    control.lines, control.duplicates = 10, 5
    assert not summary([control], control=True)[1]
    (tmp_path / "campaign.json").write_text(json.dumps([asdict(trial)]))
    assert report(tmp_path) == 1
    trial.faults[1].struck = 7.0  # the same trial, every fault struck: it passes
    (tmp_path / "campaign.json").write_text(json.dumps([asdict(trial)]))
    assert report(tmp_path) == 0


def test_second_faults_are_planned_before_two_thirds_of_the_input():
    timed = [f.at for t in trials(count=200) for f in t.faults if f.kind not in SEAM_KINDS]
    assert timed and max(timed) <= 0.65


def test_any_declared_job_is_planned_in_its_own_scopes_and_named_in_the_table():
    from tests.campaign import parse_args

    assert parse_args(["--job", "orders"]).scopes == "checkpoint"
    assert parse_args([]).scopes == "checkpoint,prepared,staged"
    (trial,) = trials(count=1)
    trial.job = "orders"
    assert "| orders: checkpoint |" in table_row(trial)
    with pytest.raises(SystemExit):
        parse_args(["--job", "orders", "--scopes", "staged"])  # orders commits one way only


def test_a_control_holds_a_seam_fault_at_pre_commit_never_at_write():
    """At-least-once sinks keep no transaction open for the write phase to hold."""
    planned = [f for t in trials(count=140, control=True) for f in t.faults]
    assert {f.phase for f in planned if f.kind in ("db-outage", "failover")} <= {
        "precommit",
        "commit",
    }


def test_a_campaign_json_written_before_jobs_were_named_still_loads(tmp_path):
    trial = Trial(1, "1/checkpoint/0", "checkpoint", "cluster", 2, [Fault("rescale", at=0.2)])
    data = asdict(trial)
    del data["job"]
    data["ledger"] = data.pop("rows") or 46_313
    (tmp_path / "campaign.json").write_text(json.dumps([data]))
    (loaded,) = load_trials(tmp_path / "campaign.json")
    assert (loaded.job, loaded.rows) == ("payments", 46_313)
