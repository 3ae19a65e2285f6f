"""The randomized fault campaign: a job (default: payments) through faults at random moments, on
a real standalone cluster (most trials) and on the mini cluster, each trial judged by the job's
audit (`jobs.audit --job`).

    python -m tests.campaign [--job payments|orders|MODULE] [--trials 20] [--seed 1]
        [--lines 50000] [--scopes checkpoint,prepared,staged] [--kinds KIND,...] [--control]
        [--out DIR]

Each trial: generated input (the job's declared `sample_lines`: duplicates, copies with other
content, bad lines; and the hostile corpus) in a new database, the job at parallelism 2
(`tests.harness.campaign_job`: the job's own graph with its parse slowed down, so that faults
land mid-stream), one fault of the trial's kind and, in half of the trials, a second one; then
the job is driven to its end and audited: every line in exactly one table, every table equal to
the job's reference (payments: the balances exact), nothing dangling. Any job that declares
itself (`jobs.kit.declared.DeclaredJob`, with `sample_lines`) can be run through it.

Fault kinds (`--kinds`):

  taskmanager-kill    kill -9 of one TaskManager and its Python workers; a replacement starts
  cluster-kill        kill -9 of the whole cluster (the job's process on the mini cluster), a
                      restart, and a resume from the newest complete retained checkpoint, at a
                      random parallelism
  python-exception    an exception in the Python operator at a random record
  db-outage           PostgreSQL crashed (`pg_ctl stop -m immediate`) while the sink is held at
                      a point of its protocol (write, precommit, commit), for a few seconds or
                      for longer than the restart strategy's first delays, then started again
  db-terminate        the sink's connections killed with pg_terminate_backend
  failover            the job's database is a primary with a synchronous standby, the job
                      pointed at both (targetServerType=primary); the primary crashed
                      (`pg_ctl stop -m immediate`) while the sink is held at a point of its
                      protocol (write, precommit, commit), and the standby promoted
  checkpoint-fault    a checkpoint that times out (a writer holds its barrier past a short
                      checkpoint timeout) or fails (the sink throws after its rows are durable)
  rescale             the job cancelled and restored from its retained checkpoint at another
                      parallelism

Scopes are the job's declared `scopes`: `checkpoint` (every kit job's default: one transaction
per checkpoint for all its tables) and, for payments, `prepared` and `staged` (subtask scope,
the ledger sink in that commit mode). `--control` runs
the same trials with at-least-once sinks: it must show duplicates, or the campaign proves
nothing. Prints one row per trial and writes campaign.md and campaign.json to --out. Exit
status: 0 when every trial is exact and every fault struck, each proving it did (a TaskManager
killed while running the job's tasks, at least one connection killed, a checkpoint expired,
the exception raised); with --control, when the control found duplicates and every fault
struck; 1 otherwise.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from jobs.kit.audit import DUPLICATED, MISSING, audit_job
from jobs.kit.declared import DeclaredJob, job_module, load_job
from localenv.cluster import Cluster, ClusterError
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT, sub_dir
from localenv.postgres import LocalPostgres, free_port
from localenv.postgres.replication import ReplicatedPostgres
from localenv.processes import descendants
from tests.corpus import write_corpus
from tests.sinks.support import fault_jar_setting, newest_complete_checkpoint
from transforms.inputs import input_files

KINDS = (
    "taskmanager-kill",
    "cluster-kill",
    "python-exception",
    "db-outage",
    "db-terminate",
    "failover",
    "checkpoint-fault",
    "rescale",
    "storage-lost",
    "run-again",
)
SEAM_KINDS = (
    "db-outage",
    "failover",
    "checkpoint-fault",
)  # need the sink's fault seam; one per trial
SECOND_FAULTS = ("python-exception", "db-terminate", "taskmanager-kill")
MANUAL_KINDS = ("cluster-kill", "rescale")  # somebody resubmits the job: part of the fault
# Somebody starts the same command again, without a checkpoint: after `kill -9` with the
# checkpoint directory lost, or after the job finished (and new input arrived). Only the
# default scope goes on from the database's positions; the others refuse such a start.
FRESH_KINDS = ("storage-lost", "run-again")
DEFAULT_JOB = "payments"
#: Every kit job's default scope: the only one that goes on from the database's positions.
DEFAULT_SCOPE = "checkpoint"
#: The payments job's scopes (the campaign's default job), by name.
SCOPES = load_job(DEFAULT_JOB).scopes
JOB_MODULE = "tests.harness.campaign_job"
CHECKPOINT_INTERVAL = "1 s"
# The parse sleeps THROTTLE_MS every few lines, so that a trial's job streams for about this
# long, through dozens of checkpoints, and faults land mid-stream.
STREAM_SECONDS = 20
THROTTLE_MS = 3
BATCH_LINES = 500  # lines per record into Python (the kit's JobConfig.batch_lines)
TRIAL_TIMEOUT_SECONDS = int(os.environ.get("TPC_CAMPAIGN_TRIAL_TIMEOUT", "900"))
SHORT_OUTAGE = (2.0, 6.0)
# Longer than the restart strategy's first delays (1, 2, 4, 8 s: flink-conf/config.yaml).
LONG_OUTAGE = (20.0, 40.0)
CHECKPOINT_TIMEOUT = "5 s"
WRITE_SEAM_BATCH_ROWS = 100


# -- the plan ---------------------------------------------------------------------------------
@dataclass
class Fault:
    kind: str
    at: float = 0.0  # time-triggered kinds: the share of lines committed when it strikes
    phase: str = ""  # seam kinds: write | precommit | commit
    nth: int = 0  # seam kinds: at the N-th checkpoint (or transaction) of a writer/committer
    variant: str = ""  # db-outage: short | long; checkpoint-fault: timeout | fails
    seconds: float = 0.0  # db-outage: down for; checkpoint-fault timeout: barrier held for
    parallelism: int = 0  # cluster-kill, rescale: resumed at
    tolerated: int = 0  # checkpoint-fault timeout: tolerable failed checkpoints
    # what happened
    struck: Optional[float] = None  # seconds after the job's first start
    recovery: Optional[float] = None  # seconds from the fault (or the database's return) to
    #                                   the next commit
    note: str = ""

    def describe(self) -> str:
        what = self.kind
        if self.kind == "db-outage":
            what += f" {self.variant} {self.seconds:.0f} s in {self.phase} #{self.nth}"
        elif self.kind == "failover":
            what += f" in {self.phase} #{self.nth}"
        elif self.kind == "checkpoint-fault":
            what += f" {self.variant} #{self.nth}"
        elif self.kind in MANUAL_KINDS:
            what += f" -> p{self.parallelism}"
        if self.kind not in SEAM_KINDS and self.kind != "run-again":
            what += f" at {self.at:.0%}"
        if self.struck is None:
            return what + f" ({self.note or 'did not strike'})"
        return what + f" @{self.struck:.0f} s"


@dataclass
class Trial:
    number: int
    seed: str
    scope: str  # checkpoint | prepared | staged | at-least-once
    where: str  # cluster | mini
    parallelism: int
    faults: list[Fault]
    control: bool = False
    job: str = DEFAULT_JOB  # payments, orders, a module (`jobs.kit.declared.load_job`)
    lines: int = 0
    rows: int = 0  # rows in the job's first line table (payments: the ledger)
    duplicates: int = 0  # rows applied twice (and replays the database refused)
    losses: int = 0
    other: int = 0  # altered or unexpected rows (e.g. balances counted twice)
    dangling: int = 0
    manual_resumes: int = 0
    unplanned: str = ""  # a manual resume the faults did not call for, and why
    error: str = ""  # the trial could not be completed (a timeout, a failed command)
    incidents: list[str] = field(default_factory=list)  # e.g. a TaskManager replaced
    seconds: float = 0.0
    audit_text: str = ""

    @property
    def exact(self) -> bool:
        return not (self.duplicates or self.losses or self.other or self.dangling)

    @property
    def unstruck(self) -> list[Fault]:
        """The faults that did not strike, or did not prove that they did: a trial through
        them proves nothing about them."""
        return [f for f in self.faults if f.struck is None]

    @property
    def passed(self) -> bool:
        return self.exact and not self.error and self.lines > 0 and not self.unstruck


def make_fault(kind: str, rng: random.Random, parallelism: int) -> Fault:
    fault = Fault(kind)
    if kind == "db-outage":
        fault.phase = rng.choice(["write", "precommit", "commit"])
        fault.nth = rng.randint(2, 5)
        fault.variant = rng.choice(["short", "long"])
        fault.seconds = round(
            rng.uniform(*(SHORT_OUTAGE if fault.variant == "short" else LONG_OUTAGE)), 1
        )
    elif kind == "failover":
        fault.phase = rng.choice(["write", "precommit", "commit"])
        fault.nth = rng.randint(2, 5)
    elif kind == "checkpoint-fault":
        fault.phase = "precommit"
        fault.nth = rng.randint(2, 5)
        fault.variant = rng.choice(["timeout", "fails"])
        fault.seconds = round(rng.uniform(7, 12), 1)
        fault.tolerated = rng.choice([0, 1])
    elif kind in MANUAL_KINDS:
        choices = [p for p in (1, 2, 3) if kind == "cluster-kill" or p != parallelism]
        fault.parallelism = rng.choice(choices)
    return fault


def plan(
    seed: int,
    scope: str,
    index: int,
    number: int,
    kinds: tuple[str, ...],
    control: bool,
    job: str = DEFAULT_JOB,
) -> Trial:
    """Trial `index` of a scope: its kind cycles through `kinds` (so every kind comes up), the
    rest is drawn from a generator seeded with (seed, scope, index)."""
    trial_seed = f"{seed}/{scope}/{index}"
    rng = random.Random(trial_seed)
    if scope != DEFAULT_SCOPE and not control:
        kinds = tuple(k for k in kinds if k not in FRESH_KINDS) or kinds
    kind = kinds[index % len(kinds)]
    where = "mini" if index % 5 == 4 and kind != "taskmanager-kill" else "cluster"
    if kind == "run-again":
        where = "mini"  # a run that finds nothing new starts no Flink job to submit
    parallelism = 2
    faults = [make_fault(kind, rng, parallelism)]
    second = [
        k for k in SECOND_FAULTS if k != kind and (where == "cluster" or "taskmanager" not in k)
    ]
    if rng.random() < 0.5 and second and kind != "run-again":
        faults.append(make_fault(rng.choice(second), rng, parallelism))
    for fault in faults:
        if control and fault.phase == "write":
            # At-least-once sinks commit each batch as it comes: no transaction stays open for
            # the seam's write phase to hold, and the fault never struck.
            fault.phase = "precommit"
    timed = [f for f in faults if f.kind not in SEAM_KINDS]
    # At most 65% into the input, so that a second fault strikes before the job finishes.
    at = rng.uniform(0.1, 0.35)
    for fault in timed:
        fault.at = round(at, 2)
        at += rng.uniform(0.15, 0.3)
    return Trial(
        number,
        trial_seed,
        "at-least-once" if control else scope,
        where,
        parallelism,
        faults,
        control,
        job,
    )


CONTROL_SEAM_NTH = 3


def strikes_at_the_seam(trial: Trial) -> bool:
    """A control's time-triggered fault waits for the sink's seam instead of a share of the
    input: it strikes while a checkpoint's rows are durable (flushed by the at-least-once sinks)
    and that checkpoint cannot complete (the writer is held), so the restore must replay them
    and the control must show them twice. Struck at a random moment, it would show duplicates
    only when a flush happened to precede it, and prove nothing when none did."""
    return trial.control and not any(f.kind in SEAM_KINDS for f in trial.faults)


# -- watching the database ------------------------------------------------------------
class CommitMonitor(threading.Thread):
    """Samples how many lines are committed (rows in the job's line tables) four times a
    second, through outages, and notes when each checkpoint under `checkpoints` (a trial's
    directory) completed: the job's progress, and when it commits again."""

    def __init__(self, db, checkpoints: Path, job: DeclaredJob):
        super().__init__(daemon=True)
        self.db = db
        self.job = job
        self.checkpoints = checkpoints
        self.samples: list[tuple[float, int]] = []
        self.completed: dict[Path, float] = {}  # chk-N -> when its _metadata was written
        self.done = threading.Event()

    @property
    def committed(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def run(self) -> None:
        import psycopg

        conn = None
        while not self.done.is_set():
            for metadata in self.checkpoints.glob("checkpoints-*/*/chk-*/_metadata"):
                if metadata.parent not in self.completed:
                    try:  # when Flink wrote it: this loop may see it a moment later
                        self.completed[metadata.parent] = metadata.stat().st_mtime
                    except OSError:  # subsumed and deleted meanwhile
                        pass
            try:
                if conn is None or conn.closed:
                    conn = self.db.connect(autocommit=True, connect_timeout=3)
                    conn.execute("SET statement_timeout = '5s'")
                self.samples.append((time.time(), self.job.lines_applied(conn)))
            except psycopg.Error:  # tables not there yet, or the server is down
                if conn is not None:
                    conn.close()
                conn = None
                self.done.wait(0.5)
                continue
            self.done.wait(0.25)
        if conn is not None:
            conn.close()

    def next_commit_after(self, moment: float) -> Optional[float]:
        """Seconds from `moment` until the job committed a checkpoint it completed after
        `moment` (not a commit that was merely pending then): the first sample with more lines
        committed after the first checkpoint completed after `moment`."""
        completed = min((at for at in self.completed.values() if at > moment), default=None)
        if completed is None:
            return None
        before = [count for at, count in self.samples if at <= completed]
        base = before[-1] if before else 0
        after = (at for at, count in self.samples if at > completed and count > base)
        return next((round(at - moment, 1) for at in after), None)


# -- running a job ----------------------------------------------------------------------
class ClusterRun:
    def __init__(self, cluster: Cluster, job_id: str):
        self.cluster, self.job_id = cluster, job_id

    def state(self) -> str:
        try:
            state = self.cluster.job_state(self.job_id)
        except (OSError, ValueError, KeyError):
            return "running"  # the REST endpoint is busy or restarting: ask again
        return {"FINISHED": "finished", "FAILED": "failed", "CANCELED": "failed"}.get(
            state, "running"
        )

    def stop(self) -> None:
        if self.state() == "running":
            try:
                self.cluster.cancel_job(self.job_id)
            except (OSError, ClusterError):
                pass


class MiniRun:
    def __init__(self, process: subprocess.Popen, log: Path):
        self.process, self.log = process, log

    def state(self) -> str:
        code = self.process.poll()
        return "running" if code is None else "finished" if code == 0 else "failed"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)


class Campaign:
    def __init__(
        self,
        out: Path,
        lines: int,
        log=print,
        stream_seconds: float = STREAM_SECONDS,
    ):
        self.out = out
        self.lines = lines
        self.stream_seconds = stream_seconds
        self.log = log
        self.server = LocalPostgres(max_prepared_transactions=64)
        self.cluster: Optional[Cluster] = None
        self.name = f"campaign-{os.getpid()}"

    def __enter__(self) -> "Campaign":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_cluster()
        self.server.stop()

    # -- the cluster: one for the campaign, restarted when a trial needs other daemon settings
    def ensure_cluster(self, daemon_env: dict[str, str]) -> Cluster:
        if (
            self.cluster
            and self.cluster.daemon_env == daemon_env
            and self.cluster.reachable()
            and len(self.cluster.taskmanagers()) >= 2
        ):
            return self.cluster
        if self.cluster:  # no job of ours runs on it now: no need to wait for a clean stop
            self.cluster.kill_all()
            self.cluster = None
        # Free ports, never the defaults: a developer's cluster or a test's may want them.
        self.cluster = Cluster(self.name, free_port(), free_port(), daemon_env=daemon_env)
        self.cluster.start()
        return self.cluster

    def stop_cluster(self) -> None:
        if self.cluster:
            self.cluster.stop()
            self.cluster = None

    # -- one trial -------------------------------------------------------------------------
    def job(self, trial: Trial) -> DeclaredJob:
        """The job the trial runs (`Trial.job`), which must declare its sample lines."""
        job = load_job(trial.job)
        if job.sample_lines is None:
            raise SystemExit(
                f"campaign: the {job.name} job declares no sample_lines: the campaign makes "
                "each trial's input with them (DeclaredJob(sample_lines=...), NEW_JOB.md)"
            )
        return job

    def write_input(self, directory: Path, trial: Trial) -> int:
        """The hostile corpus and two files of the job's sample lines, a third if they fall
        short of `lines`; each file's records named by a prefix of its own (``t<trial>p<part>``:
        a record's copies stay in its file, as the kit's "first line wins" wants)."""
        directory.mkdir(parents=True)
        write_corpus(directory)
        rng = random.Random(trial.seed)
        records = int(self.lines / 1.08 / 2) + 1  # the generators add about 8 % copies
        for part in (1, 2):
            self.write_sample(directory, part, records, rng.randrange(1 << 30), trial)
        total = sum(sum(1 for _ in open(path, "rb")) for path in input_files(str(directory)))
        if total < self.lines:
            self.write_sample(directory, 3, self.lines - total, rng.randrange(1 << 30), trial)
        return total

    def write_sample(self, directory: Path, part: int, records: int, seed: int, trial: Trial):
        job = self.job(trial)
        assert job.sample_lines is not None
        lines = job.sample_lines(records, seed=seed, id_prefix=f"t{trial.number}p{part}")
        (directory / f"{job.name}-{part}.jsonl").write_bytes(b"".join(lines))

    def run(self, trial: Trial) -> Trial:
        started = time.time()
        home = self.out / f"trial-{trial.number:03d}"
        input_dir = home / "input"
        self.write_input(input_dir, trial)
        # A failover ends its primary: the trial gets a replicated pair of its own.
        pair = None
        if any(f.kind == "failover" for f in trial.faults):
            pair = ReplicatedPostgres(synchronous=True).start()
            db = pair.create_database(f"trial_{trial.number:03d}")
        else:
            db = self.server.create_database(f"trial_{trial.number:03d}")
        seam = next((f for f in trial.faults if f.kind in SEAM_KINDS), None)
        seam_dir = home / "seam"
        seam_env: dict[str, str] = {}
        if seam:
            seam_env = {
                **fault_jar_setting(),
                "TPC_SINK_FAULT_DIR": str(seam_dir),
                "TPC_SINK_FAULT_NTH": str(seam.nth),
                "TPC_SINK_FAULT_PHASE": seam.phase,
                "TPC_SINK_FAULT_ACTION": "fail" if seam.variant == "fails" else "hold",
            }
        elif strikes_at_the_seam(trial):
            seam_env = {
                **fault_jar_setting(),
                "TPC_SINK_FAULT_DIR": str(seam_dir),
                "TPC_SINK_FAULT_NTH": str(CONTROL_SEAM_NTH),
                "TPC_SINK_FAULT_PHASE": "precommit",
                "TPC_SINK_FAULT_ACTION": "hold",
            }
        monitor = CommitMonitor(db, home, self.job(trial))
        monitor.start()
        job = TrialJob(self, trial, home, input_dir, db, seam_env)
        job.pair = pair
        try:
            job.start(trial.parallelism, None)
            for fault in sorted(trial.faults, key=lambda f: (f.kind not in SEAM_KINDS, f.at)):
                job.strike(fault, monitor, seam_dir)
            job.finish()
        except Exception as error:  # the trial is reported, the campaign goes on
            trial.error = f"{type(error).__name__}: {error}"[:300]
        finally:
            job.stop()
            monitor.done.set()
            monitor.join(timeout=10)
        for fault in trial.faults:
            if fault.struck is not None and fault.recovery is None:
                resumed = fault.struck + job.started + fault.seconds * (fault.kind == "db-outage")
                fault.recovery = monitor.next_commit_after(resumed)
        self.judge(trial, db, input_dir)
        if pair is not None:
            pair.stop()
        trial.seconds = round(time.time() - started, 1)
        return trial

    def judge(self, trial: Trial, db, input_dir: Path) -> None:
        """The job's audit: its own (payments) or the kit's, by its reference."""
        job = self.job(trial)
        try:
            with db.connect() as conn:
                if job.audit is not None:
                    report = job.audit(conn, str(input_dir))
                else:
                    report = audit_job(conn, job, str(input_dir))
        except Exception as error:
            trial.error = f"audit failed: {error}"[:300]
            return
        tables = report.tables.values()
        trial.lines = report.lines
        trial.rows = report.tables[job.line_tables[0].name].found
        # Payments: dead letters that explain no line are rows applied twice.
        trial.duplicates = sum(t.counts[DUPLICATED] for t in tables) + len(
            getattr(report, "stray_dead_letters", ())
        )
        trial.losses = sum(t.counts[MISSING] for t in tables)
        trial.dangling = len(report.pending)
        # Everything else the audit counts: rows altered or unexpected, lines not in exactly
        # one line table, source positions not at the input's end.
        trial.other = max(0, report.differences - trial.duplicates - trial.losses - trial.dangling)
        if trial.control and job.audit is None:
            # The control's plain INSERTs (`tests.harness.naive_sink`): a replay a key refused
            # is a dead letter of the job's sink id, the row itself is in its table once.
            trial.duplicates += report.dead_letters
        if not trial.exact:
            trial.audit_text = report.render(max_diff=5)


def prove(fault: Fault, evidence: int, struck_note: str, missed_note: str) -> None:
    """A fault stays struck only with evidence of its effect (> 0); without, it did not strike,
    and its trial fails."""
    if evidence:
        fault.note = struck_note
    else:
        fault.struck = None
        fault.note = missed_note


class TrialJob:
    """The job of one trial through its faults: started, struck, resumed, driven to its end."""

    def __init__(self, campaign: Campaign, trial: Trial, home: Path, input_dir: Path, db, seam_env):
        self.campaign, self.trial, self.home, self.input_dir, self.db = (
            campaign,
            trial,
            home,
            input_dir,
            db,
        )
        self.seam_env = seam_env
        self.pair: Optional[ReplicatedPostgres] = None  # the failover's primary and standby
        self.attempt = -1
        self.run: Optional[object] = None
        self.started = 0.0
        self.checkpoint: Optional[Path] = None
        self.parallelism = trial.parallelism
        self.killing = False
        self.fail_marker = home / "python-exception.marker"
        self.fail_armed = home / "python-exception.armed"

    # -- starting
    def job_args(self, parallelism: int, from_checkpoint: Optional[Path]) -> list[str]:
        trial = self.trial
        per_subtask = trial_lines(self.input_dir) / trial.parallelism
        every = max(1, round(per_subtask * THROTTLE_MS / 1000 / self.campaign.stream_seconds))
        # A checkpoint waits for the Python bundle in flight: about a second of throttled lines.
        batch_ms = BATCH_LINES * THROTTLE_MS / every
        bundle = max(1, round(1000 / batch_ms))
        harness = [
            *("--job", job_module(trial.job)),
            *("--throttle-every", str(every), "--throttle-ms", str(THROTTLE_MS)),
            *("--setting", f"python.fn-execution.bundle.size={bundle}"),
        ]
        exception = next((f for f in trial.faults if f.kind == "python-exception"), None)
        if exception:
            # Armed when its share of the input is committed (`strike`): a worker's own record
            # count starts again at every restore, and may never reach a threshold after one.
            harness += [
                *("--fail-marker", str(self.fail_marker), "--fail-after-records", "1"),
                *("--fail-armed-by", str(self.fail_armed)),
            ]
        if trial.control:
            harness.append("--at-least-once")
        if any(f.kind in SEAM_KINDS and f.phase == "write" for f in trial.faults):
            # A checkpoint of a trial holds fewer rows than the default scope's batch (5,000),
            # and the seam's write phase acts at a transaction's first full batch (a
            # db-outage in write on 6,000 lines of orders never struck without this).
            harness += ["--sink-batch-size", str(WRITE_SEAM_BATCH_ROWS)]
        seam = next((f for f in trial.faults if f.kind == "checkpoint-fault"), None)
        if seam and seam.variant == "timeout":
            harness += [
                "--setting",
                f"execution.checkpointing.timeout={CHECKPOINT_TIMEOUT}",
                "--setting",
                f"execution.checkpointing.tolerable-failed-checkpoints={seam.tolerated}",
            ]
        job = [
            "--input",
            str(self.input_dir),
            "--db-url",
            self.db.jdbc_url,
            "--db-user",
            self.db.user,
            # Read where the sink runs: a cluster's TaskManagers as well as a local run's JVM.
            "--password-file",
            str(self.db.password_file),
            "--parallelism",
            str(parallelism),
            "--checkpoint-interval",
            CHECKPOINT_INTERVAL,
            "--checkpoint-dir",
            str(self.home / f"checkpoints-{self.attempt}"),
            *self.campaign.job(trial).scopes.get(trial.scope, ()),
        ]
        if from_checkpoint:
            job += ["--from-checkpoint", str(from_checkpoint)]
        return [*harness, "--", *job]

    def start(self, parallelism: int, from_checkpoint: Optional[Path]) -> None:
        self.attempt += 1
        self.parallelism = parallelism
        args = self.job_args(parallelism, from_checkpoint)
        if self.trial.where == "cluster":
            cluster = self.campaign.ensure_cluster(self.seam_env)
            self.run = ClusterRun(cluster, cluster.submit_detached(args, JOB_MODULE))
        else:
            log = self.home / f"job-{self.attempt}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", JOB_MODULE, *args],
                cwd=PROJECT_ROOT,
                stdout=open(log, "w"),
                stderr=subprocess.STDOUT,
                env=child_process_environment(self.seam_env),
                start_new_session=True,
            )
            self.run = MiniRun(process, log)
        if not self.started:
            self.started = time.time()

    def state(self) -> str:
        return self.run.state() if self.run else "failed"  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self.run:
            self.run.stop()  # type: ignore[attr-defined]

    def newest_checkpoint(self) -> Optional[Path]:
        found = newest_complete_checkpoint(self.home / f"checkpoints-{self.attempt}")
        self.checkpoint = found or self.checkpoint
        return self.checkpoint

    def resume(self, parallelism: int) -> None:
        checkpoint = self.newest_checkpoint()
        self.trial.manual_resumes += 1
        self.start(parallelism, checkpoint)

    # -- faults
    def lost_taskmanager(self) -> str:
        """What a TaskManager that died by itself left in its log (a fatal error), or "".

        On the mini cluster the job then can never run again (its one TaskManager is gone);
        on a cluster, a supervisor would start another TaskManager, and so does this one."""
        if isinstance(self.run, MiniRun):
            pid = self.run.process.pid
            for log in sub_dir("flink", "log").glob(f"flink-*-{pid}-python-*.log"):
                text = log.read_text(errors="replace")
                if "TaskManager #0 failed" in text:
                    return fatal_cause(text)
            return ""
        cluster = self.campaign.cluster
        if cluster is None or len(cluster.taskmanagers()) >= 2 or self.killing:
            return ""
        causes = [
            fatal_cause(log.read_text(errors="replace"))
            for log in cluster.log_dir.glob("flink-*-taskexecutor-*.log")
        ]
        return next((c for c in causes if c), "exited")

    def heal(self) -> None:
        """Act as a deployment would on a TaskManager that died by itself: start another (on
        a cluster), or resume the job from its newest checkpoint (on the mini cluster)."""
        cause = self.lost_taskmanager()
        if not cause:
            return
        note = f"a TaskManager died by itself ({cause})"
        if isinstance(self.run, MiniRun):
            self.run.stop()
            self.trial.unplanned = self.trial.unplanned or note + "; the job resumed by hand"
            self.resume(self.parallelism)
        else:
            self.trial.incidents.append(note + "; replaced")
            self.campaign.cluster.add_taskmanager()  # type: ignore[union-attr]

    def wait(self, ready, what: str, timeout: float = TRIAL_TIMEOUT_SECONDS) -> bool:
        """Until `ready()`: True; False if the job ended first."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.heal()
            if self.state() != "running":
                return False
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: nothing after {timeout:.0f} s")
            time.sleep(0.1)
        return True

    def strike(self, fault: Fault, monitor: CommitMonitor, seam_dir: Path) -> None:
        campaign, trial = self.campaign, self.trial
        total = trial_lines(self.input_dir)
        if fault.kind == "run-again":
            self.run_again(fault)
            return
        at_seam = fault.kind in SEAM_KINDS or strikes_at_the_seam(trial)
        release = seam_dir / "release"
        if at_seam:
            reported = lambda: any(seam_dir.glob("fault-*"))  # noqa: E731
            if not self.wait(reported, f"the sink's fault seam ({fault.phase or 'precommit'})"):
                fault.note = "the job finished first"
                return
        elif not self.wait(
            lambda: monitor.committed >= fault.at * total, f"{fault.at:.0%} committed"
        ):
            fault.note = "the job finished first"
            return
        if fault.kind == "python-exception":
            self.fail_armed.touch()
            # Held at the seam, the sink still takes what is in flight: a worker raises at its
            # next batch. Released after at most 20 s all the same, so the trial can go on.
            # Once it raised, the held writer is left to the failover, which cancels its task
            # (an interrupt ends the hold): released at once, it could complete the held
            # checkpoint before the failure reached the JobManager, and the restore then
            # replayed nothing (the control saw 0 duplicates three times in four runs).
            try:
                raised = self.wait(self.fail_marker.exists, "the Python exception", timeout=20)
            except TimeoutError:
                raised = False
            if at_seam and not raised:
                release.touch()
            if not raised and not self.wait(
                self.fail_marker.exists, "the Python exception", timeout=120
            ):
                fault.note = "the job finished before a worker raised"
                return
            fault.struck = round(self.fail_marker.stat().st_mtime - self.started, 1)
            return
        moment = time.time()
        fault.struck = round(moment - self.started, 1)
        if fault.kind == "taskmanager-kill":
            cluster = self.run.cluster  # type: ignore[union-attr]
            # One that runs part of the job: its Python workers are its child processes. The
            # idle spare's death would be no fault of the job's.
            busy = self.busy_taskmanagers(cluster)
            if not busy:
                fault.struck = None
                fault.note = "no TaskManager was running the job's tasks"
                return
            victim = random.Random(f"{trial.seed}/victim").choice(busy)
            self.killing = True  # our own kill: not a TaskManager that died by itself
            try:
                fault.note = f"pid {cluster.kill_taskmanager(victim)}"
                cluster.add_taskmanager()
            finally:
                self.killing = False
        elif fault.kind in MANUAL_KINDS:
            if trial.where == "mini":
                self.run.stop()  # type: ignore[union-attr]   kill -9 of its process group
            elif fault.kind == "cluster-kill":
                self.run.cluster.kill_all()  # type: ignore[union-attr]
            else:
                self.run.cluster.cancel_job(self.run.job_id)  # type: ignore[union-attr]
            if fault.kind == "cluster-kill" and trial.where == "cluster":
                campaign.cluster = None  # dead: the next start brings up a new one
            self.resume(fault.parallelism)
        elif fault.kind == "storage-lost":
            if trial.where == "mini":
                self.run.stop()  # type: ignore[union-attr]   kill -9 of its process group
            else:
                self.run.cluster.kill_all()  # type: ignore[union-attr]
                campaign.cluster = None
            shutil.rmtree(self.home / f"checkpoints-{self.attempt}", ignore_errors=True)
            self.checkpoint = None
            trial.manual_resumes += 1
            self.start(self.parallelism, None)  # the same command, no checkpoint
        elif fault.kind == "db-outage":
            before = self.failovers()
            campaign.server.stop_immediately()
            if not trial.control:
                release.touch()
            time.sleep(fault.seconds)
            campaign.server.start_again()
            if trial.control:
                # Released at once, the held checkpoint could complete before any writer met
                # the dead server, and the restore replayed nothing (CI's control 14 saw 0
                # duplicates once): held until the job fails over, as db-terminate is.
                self.hold_until_failover(fault, before)
                release.touch()
        elif fault.kind == "failover":
            pair = self.pair
            assert pair is not None, "a failover trial runs on a replicated pair"
            pair.kill_primary()
            promoted_in = pair.promote()
            (seam_dir / "release").touch()
            fault.note = f"standby promoted in {promoted_in:.1f} s"
        elif fault.kind == "checkpoint-fault":
            if fault.variant == "timeout":
                time.sleep(fault.seconds)
                expired = self.checkpoints_expired()
                prove(fault, expired, f"{expired} checkpoint(s) expired", "no checkpoint expired")
            (seam_dir / "release").touch()
        elif fault.kind == "db-terminate":
            before = self.failovers()
            killed = self.terminate_sink_connections()
            prove(fault, killed, f"{killed} connections", "no sink connection to kill")
            if killed and strikes_at_the_seam(trial):
                self.hold_until_failover(fault, before)
        if strikes_at_the_seam(trial) and not release.exists():
            release.touch()  # the held writer goes on (if the fault left it alive)

    def hold_until_failover(self, fault: Fault, failovers_before: int) -> None:
        """Keeps a control's writer held until a writer meets its dead connection and the job
        fails over (which cancels the held writer). Released at once, the held checkpoint
        completed first, the restore replayed nothing, and the control saw 0 duplicates (once
        each in CI, db-terminate and db-outage). Another writer's next batch, or its end of
        input, fails it within seconds; released after at most 30 s all the same, so the
        trial can go on."""
        failed_over = lambda: self.failovers() > failovers_before  # noqa: E731
        try:
            self.wait(failed_over, f"a failover after the {fault.kind}", timeout=30)
        except TimeoutError:
            fault.note += "; no failover while the checkpoint was held"

    def busy_taskmanagers(self, cluster: Cluster, patience: float = 30.0) -> list[int]:
        """The TaskManagers running the job's Python workers, waiting up to `patience` s for
        one (a TaskManager busy restoring has none yet)."""
        deadline = time.monotonic() + patience
        while True:
            busy = sorted(pid for pid in cluster.taskmanagers() if descendants({pid}))
            if busy or time.monotonic() > deadline or self.state() != "running":
                return busy
            time.sleep(0.2)

    def terminate_sink_connections(self, patience: float = 30.0) -> int:
        """pg_terminate_backend of the sink's sessions; tries again for up to `patience` s
        while there are none (between transactions a writer may hold no connection)."""
        deadline = time.monotonic() + patience
        while True:
            with self.db.connect(autocommit=True) as conn:
                killed = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name LIKE 'tpc-sink-%'"
                ).fetchone()[0]
            if killed or time.monotonic() > deadline or self.state() != "running":
                return int(killed)
            time.sleep(0.2)

    def failovers(self) -> int:
        """How many times the job failed over so far: the JobManager's restarts on a cluster,
        the job's Flink log on the mini cluster."""
        if isinstance(self.run, ClusterRun):
            try:
                metrics = self.run.cluster.rest(f"/jobs/{self.run.job_id}/metrics?get=numRestarts")
                return int(float(metrics[0]["value"]))
            except (OSError, ValueError, KeyError, IndexError):  # no answer: none seen yet
                return 0
        return self.count_in_mini_cluster_log("switched from state RUNNING to RESTARTING")

    def checkpoints_expired(self) -> int:
        """How many of the job's checkpoints expired (the timeout fault's proof): the
        JobManager's counts on a cluster, the job's Flink log on the mini cluster."""
        if isinstance(self.run, ClusterRun):
            try:
                counts = self.run.cluster.rest(f"/jobs/{self.run.job_id}/checkpoints")["counts"]
            except (OSError, ValueError, KeyError):  # no answer is no proof
                return 0
            return int(counts.get("failed", 0))
        return self.count_in_mini_cluster_log("expired before completing")

    def count_in_mini_cluster_log(self, phrase: str) -> int:
        """How often `phrase` is in the Flink log of the job's mini cluster (0 on a cluster)."""
        if not isinstance(self.run, MiniRun):
            return 0
        pid = self.run.process.pid
        return sum(
            log.read_text(errors="replace").count(phrase)
            for log in sub_dir("flink", "log").glob(f"flink-*-{pid}-python-*.log")
        )

    def run_again(self, fault: Fault) -> None:
        """After the job finished: a new file arrives (new records, and copies of applied
        ones, some with other content), and the same command runs again, without a checkpoint."""
        deadline = time.monotonic() + TRIAL_TIMEOUT_SECONDS
        while self.state() == "running":
            self.heal()
            if time.monotonic() > deadline:
                raise TimeoutError("the first run did not finish")
            time.sleep(0.2)
        if self.state() != "finished":
            fault.note = "the first run failed"
            return
        job = self.campaign.job(self.trial)
        assert job.sample_lines is not None
        rng = random.Random(f"{self.trial.seed}/again")
        first = f"{job.name}-1.jsonl"  # records t<trial>p1-<n> (`Campaign.write_input`)
        applied = (self.input_dir / first).read_bytes().splitlines(keepends=True)
        copies = rng.sample(applied, min(20, len(applied)))
        later = job.sample_lines(500, seed=rng.randrange(1 << 30), id_prefix="again")
        # The first file's first 20 records again, drawn from another seed: the same ids with
        # other content (copies of applied records, some of them changed).
        changed = job.sample_lines(
            20, seed=rng.randrange(1 << 30), id_prefix=f"t{self.trial.number}p1"
        )[:20]
        # "zz": after the first files in the reference's file order, as the lines were read.
        with open(self.input_dir / "zz-again.jsonl", "wb") as f:
            f.writelines([*copies, *later, *changed])
        _LINES.pop(str(self.input_dir), None)
        fault.struck = round(time.time() - self.started, 1)
        fault.note = f"{len(copies) + len(changed)} copied lines and {len(later)} new"
        self.trial.manual_resumes += 1
        self.start(self.parallelism, None)

    def finish(self) -> None:
        """Drive the job to its end; a job that failed for good is resumed by hand (noted as
        unplanned: no fault here should need that)."""
        deadline = time.monotonic() + TRIAL_TIMEOUT_SECONDS
        while True:
            self.heal()
            state = self.state()
            if state == "finished":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the job did not finish within {TRIAL_TIMEOUT_SECONDS} s")
            if state == "failed":
                if self.trial.unplanned:
                    raise RuntimeError(f"the job failed again after: {self.trial.unplanned}")
                self.trial.unplanned = f"the job failed (attempt {self.attempt}); resumed by hand"
                self.resume(self.parallelism)
            time.sleep(0.5)


def fatal_cause(log_text: str) -> str:
    """The exception of the first fatal error in a Flink log, e.g. Beam's "Reference count
    must not be negative." when a Python operator's environment is closed twice."""
    at = log_text.find("FATAL - ")
    if at < 0:
        return ""
    lines = log_text[at:].splitlines()
    return next((line.strip() for line in lines[1:6] if "Exception" in line), "fatal error")[:160]


_LINES: dict[str, int] = {}


def trial_lines(input_dir: Path) -> int:
    key = str(input_dir)
    if key not in _LINES:
        _LINES[key] = sum(sum(1 for _ in open(p, "rb")) for p in input_files(key))
    return _LINES[key]


# -- the report ----------------------------------------------------------------------
HEADER = (
    "| # | seed | scope | where | faults, and when they hit | lines in | rows | dup | "
    "lost | other | dangling | recovery s | manual resumes | result |"
)


def table_row(trial: Trial) -> str:
    faults = "; ".join(f.describe() for f in trial.faults)
    recovery = ", ".join("-" if f.recovery is None else f"{f.recovery:.1f}" for f in trial.faults)
    result = "exact" if trial.passed else "FAILED"
    scope = trial.scope if trial.job == DEFAULT_JOB else f"{trial.job}: {trial.scope}"
    if trial.control:
        result = "duplicates" if trial.duplicates or trial.other else "no duplicates"
    missed = [f"did not strike: {f.kind} ({f.note or 'no proof'})" for f in trial.unstruck]
    notes = [trial.error, trial.unplanned, *trial.incidents, *missed]
    if any(notes):
        result += " (" + "; ".join(n for n in notes if n) + ")"
    return (
        f"| {trial.number} | {trial.seed} | {scope} | {trial.where} p{trial.parallelism} | "
        f"{faults} | {trial.lines:,} | {trial.rows:,} | {trial.duplicates:,} | "
        f"{trial.losses:,} | {trial.other:,} | {trial.dangling} | {recovery} | "
        f"{trial.manual_resumes} | {result} |"
    )


def summary(trials: list[Trial], control: bool) -> tuple[str, bool]:
    struck: dict[str, int] = {}
    for trial in trials:
        for fault in trial.faults:
            if fault.struck is not None:
                detail = [
                    fault.variant,
                    fault.phase if fault.kind in ("db-outage", "failover") else "",
                ]
                detail_text = ", ".join(d for d in detail if d)
                key = fault.kind + (f" ({detail_text})" if detail_text else "")
                struck[key] = struck.get(key, 0) + 1
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(struck.items()))
    if control:
        found = sum(1 for t in trials if t.duplicates or t.other)
        unstruck = [t for t in trials if t.unstruck]
        return (
            f"control (at-least-once sinks): {found} of {len(trials)} trials show duplicates or "
            f"double-counted balances; faults that struck: {kinds}"
            + (f"; trials with a fault that did not strike: {len(unstruck)}" if unstruck else ""),
            found > 0 and not unstruck,
        )
    scopes = sorted({t.scope for t in trials})
    per_scope = "; ".join(
        f"{s}: {sum(t.passed for t in trials if t.scope == s)}/"
        f"{sum(1 for t in trials if t.scope == s)} exact"
        for s in scopes
    )
    totals = ", ".join(
        f"{what} {sum(getattr(t, name) for t in trials)}"
        for what, name in (
            ("duplicates", "duplicates"),
            ("losses", "losses"),
            ("other differences", "other"),
            ("dangling", "dangling"),
        )
    )
    ok = all(t.passed for t in trials)
    unstruck = [
        f"#{t.number} {f.kind} ({f.note or 'no proof'})" for t in trials for f in t.unstruck
    ]
    unplanned = [t for t in trials if t.unplanned]
    replaced = sum(len(t.incidents) for t in trials)
    health = (
        f"Manual resumes no fault called for: {len(unplanned)}"
        + "".join(f"; #{t.number}: {t.unplanned}" for t in unplanned)
        + f". TaskManagers that died by themselves and were replaced: {replaced}."
    )
    missed = f"Faults that did not strike: {len(unstruck)}" + "".join(f"; {u}" for u in unstruck)
    return f"{per_scope}. {totals}. Faults that struck: {kinds}. {missed}. {health}", ok


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tests.campaign",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--job",
        default=DEFAULT_JOB,
        help="the job: payments, orders, or a module declaring JOB = DeclaredJob(...) with "
        "sample_lines",
    )
    parser.add_argument("--trials", type=int, default=20, help="trials per scope")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lines", type=int, default=50_000, help="input lines per trial (at least)"
    )
    parser.add_argument(
        "--stream-seconds",
        type=float,
        default=STREAM_SECONDS,
        help="how long each job streams (its parse is slowed down to last that long)",
    )
    parser.add_argument("--scopes", help="default: every scope the job declares")
    parser.add_argument("--kinds", default=",".join(KINDS), help="fault kinds, cycled through")
    parser.add_argument(
        "--control", action="store_true", help="at-least-once sinks: must show duplicates"
    )
    parser.add_argument("--first", type=int, default=0, help="skip the first N trials of a scope")
    parser.add_argument("--out", help="default: var/campaign/<time>")
    parser.add_argument(
        "--report", metavar="DIR", help="print the table and summary of a campaign run in DIR"
    )
    args = parser.parse_args(argv)
    if args.report:
        return args
    scopes = load_job(args.job).scopes
    args.scopes = args.scopes or ",".join(scopes)
    unknown = set(args.kinds.split(",")) - set(KINDS)
    unknown_scopes = set(args.scopes.split(",")) - set(scopes)
    if unknown or unknown_scopes:
        parser.error(
            f"unknown kinds or scopes: {sorted(unknown | unknown_scopes)} (the {args.job} "
            f"job's scopes: {', '.join(scopes)})"
        )
    return args


def run_campaign(
    trials: list[Trial],
    out: Path,
    lines: int,
    control: bool,
    log=print,
    stream_seconds: float = STREAM_SECONDS,
) -> tuple[list[Trial], bool]:
    out.mkdir(parents=True, exist_ok=True)
    done: list[Trial] = []
    lines_out = [HEADER, "|" + "---|" * 14]
    log(lines_out[0])
    log(lines_out[1])
    with Campaign(out, lines, log, stream_seconds) as campaign:
        for trial in trials:
            done.append(campaign.run(trial))
            lines_out.append(table_row(trial))
            log(lines_out[-1])
            if trial.audit_text:
                (out / f"trial-{trial.number:03d}" / "audit.txt").write_text(trial.audit_text)
            (out / "campaign.json").write_text(
                json.dumps([asdict(t) for t in done], indent=1, default=str)
            )
            (out / "campaign.md").write_text("\n".join(lines_out) + "\n")
    text, ok = summary(done, control)
    (out / "campaign.md").write_text("\n".join(lines_out) + "\n\n" + text + "\n")
    log("")
    log(text)
    return done, ok


def load_trials(path: Path) -> list[Trial]:
    """The trials of a campaign.json, as `run_campaign` wrote them."""
    trials = []
    for data in json.loads(path.read_text()):
        faults = [Fault(**fault) for fault in data.pop("faults")]
        if "ledger" in data:  # written before the campaign took any job
            data["rows"] = data.pop("ledger")
        trials.append(Trial(**data, faults=faults))
    return trials


def report(out: Path) -> int:
    """Print a finished (or interrupted) campaign's table and summary again."""
    trials = load_trials(out / "campaign.json")
    control = any(t.control for t in trials)
    text, ok = summary(trials, control)
    print("\n".join([HEADER, "|" + "---|" * 14, *map(table_row, trials), "", text]))
    return 0 if ok else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return report(Path(args.report))
    # Absolute: the sink's fault seam directory under it is read by cluster daemons, whose
    # working directory is not ours (a relative --out left every seam fault unstruck).
    out = (
        Path(args.out).resolve()
        if args.out
        else sub_dir("campaign") / time.strftime("%Y%m%d-%H%M%S")
    )
    kinds = tuple(args.kinds.split(","))
    trials = []
    for scope in args.scopes.split(","):
        for index in range(args.first, args.trials):
            trials.append(
                plan(args.seed, scope, index, len(trials) + 1, kinds, args.control, args.job)
            )
        if args.control:
            break  # the control's sinks are at-least-once whatever the scope
    print(
        f"campaign: the {args.job} job, {len(trials)} trials, seed {args.seed}, output {out}",
        flush=True,
    )
    _, ok = run_campaign(
        trials,
        out,
        args.lines,
        args.control,
        log=lambda s: print(s, flush=True),
        stream_seconds=args.stream_seconds,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
