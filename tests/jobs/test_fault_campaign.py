"""The fault campaign's short, deterministic tier: one trial for each of three fault kinds, on a
small input, judged by the audit (`python -m tests.campaign` runs the randomized campaign: 20
trials per commit scope on 50,000 lines each; see README, "What exactly-once covers").

The trials whose fault needs one run on a real standalone cluster (a JobManager and two
TaskManagers: a TaskManager killed), the others on the mini cluster,
where a trial takes half the time; across the three commit scopes. Each fault kind has a
control: the same fault through at-least-once sinks, striking while a checkpoint's rows are
durable and that checkpoint cannot complete yet: the replay after it must show as duplicates in
the audit, or the fault caused no replay and its exactly-once trial would prove nothing."""

import pytest

from tests.campaign import SCOPES, Fault, Trial, plan, run_campaign

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]

LINES = 6_000
STREAM_SECONDS = 10  # the parse is slowed down so that each fault lands mid-stream


def trial(number, scope, where, kind, control=False, **fault) -> Trial:
    return Trial(
        number,
        f"short/{number}",
        "at-least-once" if control else scope,
        where,
        2,
        [Fault(kind, **fault)],
        control,
    )


SHORT_TIER = [
    trial(1, "checkpoint", "cluster", "taskmanager-kill", at=0.3),
    trial(4, "checkpoint", "mini", "db-outage", phase="commit", nth=3, variant="short", seconds=5),
    trial(5, "prepared", "mini", "db-terminate", at=0.3),
]
# Left to `-m campaign`, to save CI time (about 280 s): trials 2 (`kill -9` of the whole
# standalone cluster, then a resume) and 7 (a rescale), which tests/sinks/test_kill_and_restore.py
# proves in CI on the mini cluster (a kill -9 of the process that is the whole cluster, restored
# at other parallelisms) with its control, and 6 (a checkpoint that times out: its transactions
# stay pre-committed and are discarded or committed at the restore, as after a kill -9).
# Trials 3 (a Python exception), 9 (the checkpoint storage lost after `kill -9`, then the same
# command) and 10 (the same command run again) left earlier: tests/jobs/test_payments_faults.py,
# tests/sinks/test_failure_recovery.py and tests/jobs/test_reruns.py prove them in CI, each with
# its control; the randomized campaign (`python -m tests.campaign`) has every kind, on both
# clusters.
CAMPAIGN_TIER = [
    trial(2, "prepared", "cluster", "cluster-kill", at=0.3, parallelism=3),
    trial(7, "checkpoint", "mini", "rescale", at=0.3, parallelism=1),
    trial(
        6,
        "checkpoint",
        "mini",
        "checkpoint-fault",
        phase="precommit",
        nth=3,
        variant="timeout",
        seconds=8,
    ),
]

# One at-least-once control per fault kind. Each strikes while a checkpoint's flushed rows
# cannot complete yet (`strikes_at_the_seam`), so the replay that the exactly-once trial absorbs
# must show here. A shorter stream on fewer lines: the fault strikes at the third checkpoint.
# The controls of the kinds that are not in CI's tier (8 a checkpoint that fails, 12 a cluster
# kill, 13 a Python exception, 16 a checkpoint timeout, 17 a rescale) run with `-m campaign`:
# the CI tests named above have their own controls.
CONTROL_LINES = 3_000
CONTROL_STREAM_SECONDS = 6
CONTROLS = [
    trial(11, "", "cluster", "taskmanager-kill", True),
    trial(14, "", "mini", "db-outage", True, phase="precommit", nth=3, variant="short", seconds=3),
    trial(15, "", "mini", "db-terminate", True),
]
CAMPAIGN_CONTROLS = [
    trial(8, "", "mini", "checkpoint-fault", True, phase="precommit", nth=3, variant="fails"),
    trial(12, "", "mini", "cluster-kill", True, parallelism=3),
    trial(13, "", "mini", "python-exception", True),
    trial(17, "", "mini", "rescale", True, parallelism=1),
    trial(
        16,
        "",
        "mini",
        "checkpoint-fault",
        True,
        phase="precommit",
        nth=3,
        variant="timeout",
        seconds=8,
    ),
]


@pytest.fixture(scope="module")
def short_campaign(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign")
    trials, _ = run_campaign(SHORT_TIER, out, LINES, control=False, stream_seconds=STREAM_SECONDS)
    return {t.number: t for t in trials}


@pytest.fixture(scope="module")
def controls(tmp_path_factory):
    out = tmp_path_factory.mktemp("controls")
    trials, _ = run_campaign(
        CONTROLS, out, CONTROL_LINES, control=True, stream_seconds=CONTROL_STREAM_SECONDS
    )
    return {t.number: t for t in trials}


# Failover to the synchronous standby (issue 27): not in the short tier, whose CI time is spent;
# tests/jobs/test_payments_failover.py runs one failover in CI. These are the same trials as
# `python -m tests.campaign --kinds failover --trials 4 --lines 15000 --stream-seconds 15`.
FAILOVER_TRIALS_PER_SCOPE = 4
FAILOVER_LINES = 15_000
FAILOVER_STREAM_SECONDS = 15


@pytest.mark.campaign
def test_failover_trials_are_exact(tmp_path):
    planned = [
        plan(1, scope, index, 0, ("failover",), False)
        for scope in SCOPES
        for index in range(FAILOVER_TRIALS_PER_SCOPE)
    ]
    for number, planned_trial in enumerate(planned, 1):
        planned_trial.number = number
    trials, ok = run_campaign(
        planned,
        tmp_path,
        FAILOVER_LINES,
        control=False,
        stream_seconds=FAILOVER_STREAM_SECONDS,
    )
    assert len(trials) >= 10
    assert ok, [t for t in trials if not t.passed]


def assert_exact(trial: Trial) -> None:
    fault = trial.faults[0]
    assert fault.struck is not None, f"{fault.kind} never struck: {fault.note}"
    assert not trial.error, trial.error
    assert trial.lines >= LINES
    assert (trial.duplicates, trial.losses, trial.other, trial.dangling) == (0, 0, 0, 0), (
        trial.audit_text
    )


def assert_replayed(trial: Trial, control_seen) -> None:
    fault = trial.faults[0]
    assert fault.struck is not None, f"{fault.kind} never struck: {fault.note}"
    assert not trial.error, trial.error
    found = trial.duplicates + trial.other
    control_seen(found, 1, f"rows applied twice or balances counted twice after {fault.kind}")
    assert found > 0, (
        f"the audit saw no duplicates after {fault.kind} through at-least-once sinks: the "
        "fault caused no replay, so its exactly-once trial proves nothing"
    )


@pytest.mark.parametrize("number", [t.number for t in SHORT_TIER])
def test_each_fault_kind_leaves_the_books_exact(short_campaign, number):
    assert_exact(short_campaign[number])


@pytest.mark.parametrize("number", [t.number for t in CONTROLS])
def test_control_at_least_once_shows_the_replay(controls, control_seen, number):
    assert_replayed(controls[number], control_seen)


def assert_exact_and_replayed(tmp_path, trials, controls, control_seen) -> None:
    """`trials` exact, then `controls` (on fewer lines, a shorter stream) replaying."""
    done, _ = run_campaign(
        trials, tmp_path / "trials", LINES, control=False, stream_seconds=STREAM_SECONDS
    )
    done_controls, _ = run_campaign(
        controls,
        tmp_path / "controls",
        CONTROL_LINES,
        control=True,
        stream_seconds=CONTROL_STREAM_SECONDS,
    )
    for trial_done in done:
        assert_exact(trial_done)
    for control in done_controls:
        assert_replayed(control, control_seen)


@pytest.mark.campaign
def test_the_rest_of_the_short_tier_is_exact_and_its_controls_replay(tmp_path, control_seen):
    assert_exact_and_replayed(tmp_path, CAMPAIGN_TIER, CAMPAIGN_CONTROLS, control_seen)


# The campaign takes any declared job (`Trial.job`): the orders job through the faults its
# drills do not reach in CI (tests/jobs/test_orders_job.py: kill -9, a sink failure), judged by
# the kit's audit, and its control (plain INSERTs, `tests.harness.naive_sink`) replaying.
ORDERS_TRIALS = [
    trial(21, "checkpoint", "cluster", "taskmanager-kill", at=0.3),
    trial(22, "checkpoint", "mini", "db-outage", phase="write", nth=2, variant="long", seconds=25),
    trial(23, "checkpoint", "mini", "run-again"),
]
ORDERS_CONTROLS = [
    trial(24, "", "mini", "db-outage", True, phase="precommit", nth=3, variant="short", seconds=3),
]
for orders_trial in ORDERS_TRIALS + ORDERS_CONTROLS:
    orders_trial.job = "orders"


@pytest.mark.campaign
def test_the_orders_job_through_the_campaign_is_exact_and_its_control_replays(
    tmp_path, control_seen
):
    assert_exact_and_replayed(tmp_path, ORDERS_TRIALS, ORDERS_CONTROLS, control_seen)
