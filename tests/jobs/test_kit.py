"""`jobs.kit`: the plumbing a second job is built from. Its flags and config, durations, Flink
settings, refusals in a job's own operator ids and what a run counts as committed, for a job
that is not payments; and the rule that the kit knows nothing of payments. No JVM."""

import argparse
import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.flink_config import job_defaults
from jobs.kit import refusals
from jobs.kit.committed import CommittedLines
from jobs.kit.config import (
    JobConfig,
    add_run_arguments,
    add_source_arguments,
    job_arguments,
    parse_duration_ms,
)
from jobs.kit.environment import flink_settings
from jobs.kit.refusals import explain_refusal, failure_verdict, resume_hint

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "jobs" / "kit"


@dataclass
class ShipmentsConfig(JobConfig):
    """A second job's config: the kit's fields, its own default prefix and one flag more."""

    sink_id_prefix: str = "shipments"
    warehouse: str = "main"


def shipments_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.shipments")
    add_source_arguments(parser)
    add_run_arguments(parser, sink_id_prefix="shipments")
    parser.add_argument("--warehouse", default="main")
    return parser


def shipments_config(argv: list[str]) -> ShipmentsConfig:
    args = shipments_parser().parse_args(argv)
    return ShipmentsConfig(**job_arguments(args), warehouse=args.warehouse)


def test_a_jobs_config_is_the_standard_flags_and_its_own():
    config = shipments_config(
        ["--input", "in", "--db-url", "jdbc:postgresql://h/db", "--warehouse", "north"]
    )
    assert (config.input, config.db_url, config.warehouse) == (
        "in",
        "jdbc:postgresql://h/db",
        "north",
    )
    assert config.sink_id_prefix == "shipments"  # the job's default, not the kit's
    assert (config.parallelism, config.commit_scope, config.source) == (2, "checkpoint", "files")
    assert (config.password_env, config.execution_mode) == ("PGPASSWORD", "process")

    every_flag = shipments_config(
        [
            *("--source", "kafka", "--bootstrap-servers", "k:9092", "--topic", "moves"),
            *("--db-url", "jdbc:postgresql://h/db", "--db-user", "app"),
            *("--parallelism", "3", "--checkpoint-interval", "2 s", "--mode", "thread"),
            *("--from-savepoint", "/sp/1", "--savepoint-dir", "/sp", "--commit-scope", "subtask"),
            *("--sink-id-prefix", "shipments-v2", "--state-backend", "rocksdb", "--bounded"),
            *("--starting-offsets", "latest", "--group-id", "g", "--progress-interval", "1.5"),
        ]
    )
    assert every_flag == ShipmentsConfig(
        input=None,
        db_url="jdbc:postgresql://h/db",
        db_user="app",
        parallelism=3,
        checkpoint_interval="2 s",
        from_checkpoint="/sp/1",
        savepoint_dir="/sp",
        execution_mode="thread",
        state_backend="rocksdb",
        commit_scope="subtask",
        sink_id_prefix="shipments-v2",
        source="kafka",
        bootstrap_servers="k:9092",
        topic="moves",
        group_id="g",
        starting_offsets="latest",
        bounded=True,
        progress_interval=1.5,
    )


def test_a_source_without_what_it_needs_is_refused_before_anything_runs():
    with pytest.raises(SystemExit, match="--input and --db-url are required$"):
        shipments_config(["--db-url", "jdbc:postgresql://h/db"])
    args = shipments_parser().parse_args(["--input", "in"])
    with pytest.raises(SystemExit, match=r"required \(or use --demo\)"):
        job_arguments(args, otherwise=" (or use --demo)")
    with pytest.raises(SystemExit, match="--source kafka needs --bootstrap-servers, --topic"):
        shipments_config(["--source", "kafka", "--topic", "t", "--db-url", "u"])
    url = "jdbc:postgresql://h/db?sslfactory=org.postgresql.ssl.NonValidatingFactory"
    with pytest.raises(SystemExit, match="^--db-url: JDBC URL parameter sslfactory is refused"):
        shipments_config(["--input", "in", "--db-url", url])


def test_a_job_offers_only_the_commit_scopes_it_builds(capsys):
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    add_run_arguments(parser, sink_id_prefix="orders", commit_scopes=("checkpoint",))
    args = parser.parse_args(["--input", "in", "--db-url", "jdbc:postgresql://h/db"])
    assert args.commit_scope == "checkpoint"
    with pytest.raises(SystemExit):
        parser.parse_args(["--input", "in", "--db-url", "u", "--commit-scope", "subtask"])
    assert "invalid choice: 'subtask'" in capsys.readouterr().err


def test_submit_job_runs_the_steps_in_the_documented_order(monkeypatch, tmp_path):
    """check_input, prepare, nothing_new, create_environment, the job's graph, execute; an
    input already applied starts no job."""
    from jobs.kit import running

    steps = []
    config = ShipmentsConfig(input=str(tmp_path), db_url="jdbc:postgresql://h/db")
    monkeypatch.setenv("PGPASSWORD", "x")  # check_input checks that the password can be read

    class Start:
        nothing_new = False

        def describe(self):
            return "nothing new: all applied"

    monkeypatch.setattr("jobs.kit.environment.create_environment", lambda c: steps.append("env"))
    monkeypatch.setattr(
        running, "execute", lambda env, name, c, committed, wait: steps.append(("run", name))
    )
    running.submit_job(
        config,
        lambda c: steps.append("prepare") or Start(),
        lambda env, c, start: steps.append("graph"),
        "shipments",
        lambda c: None,
    )
    assert steps == ["prepare", "env", "graph", ("run", "shipments")]
    Start.nothing_new = True
    result = running.submit_job(config, lambda c: Start(), None, "shipments", lambda c: None)
    assert result == running.NothingNew("nothing new: all applied")


def test_the_password_source_is_checked_before_anything_runs(monkeypatch, tmp_path):
    from jobs.kit.running import check_password

    monkeypatch.delenv("TPC_TEST_KIT_UNSET", raising=False)
    config = ShipmentsConfig(input="in", db_url="u", password_env="TPC_TEST_KIT_UNSET")
    with pytest.raises(SystemExit, match="environment variable TPC_TEST_KIT_UNSET .* not set"):
        check_password(config)
    config.password_file = str(tmp_path / "secret")
    with pytest.raises(SystemExit, match=f"--password-file: cannot read .*{tmp_path}/secret"):
        check_password(config)
    (tmp_path / "secret").write_text("s3cret\n")
    check_password(config)  # the file replaces the unset variable


@pytest.mark.parametrize(
    "text, ms",
    [("500 ms", 500), ("5 s", 5_000), ("1.5s", 1_500), ("2 min", 120_000), ("1 h", 3_600_000)]
    + [("250", 250), (" 3 sec ", 3_000), ("10m", 600_000)],
)
def test_durations_read_as_flink_writes_them(text, ms):
    assert parse_duration_ms(text) == ms


def test_the_commit_log_retention_flag_reaches_the_sinks_in_hours():
    """`--commit-log-retention "2 min"`: the soak's, so its commit log reaches its plateau
    within the run; without it the sink's own default (7 days) stands."""
    common = ["--input", "in", "--db-url", "jdbc:postgresql://h/db"]
    assert shipments_config(common).commit_log_retention_hours() is None
    config = shipments_config([*common, "--commit-log-retention", "2 min"])
    assert config.commit_log_retention_hours() == pytest.approx(2 / 60)
    with pytest.raises(SystemExit):
        shipments_config([*common, "--commit-log-retention", "2 days"])


def test_a_duration_in_an_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="unknown duration unit in '3 days'"):
        parse_duration_ms("3 days")


def test_the_settings_keep_exactly_once_whatever_the_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("TPC_VAR_DIR", str(tmp_path))
    config = ShipmentsConfig(
        input="in",
        db_url="u",
        checkpoint_interval="2 s",
        extra_settings={"execution.checkpointing.mode": "AT_LEAST_ONCE", "a.b": "c"},
    )
    settings = flink_settings(config)
    assert settings["execution.checkpointing.mode"] == "EXACTLY_ONCE"
    assert settings["execution.checkpointing.interval"] == "2 s"
    assert settings["a.b"] == "c"
    # The job's own checkpoints, by its sink id prefix; 10,000 lines a bundle at 500 a batch.
    assert settings["execution.checkpointing.dir"].endswith("/checkpoints/shipments")
    assert settings["python.fn-execution.bundle.size"] == "20"
    assert settings["pipeline.object-reuse"] == "true"
    # Thread mode's Python operators emit one reused Row: no object reuse added there.
    thread = flink_settings(ShipmentsConfig(input="in", db_url="u", execution_mode="thread"))
    assert thread.get("pipeline.object-reuse") == job_defaults().get("pipeline.object-reuse")


def fake_operator_id(uid: str) -> str:
    """Stands in for Flink's hash of a uid (which needs the JVM): 32 hex digits too."""
    return hashlib.md5(uid.encode()).hexdigest()


UNMAPPED = "Cannot map checkpoint/savepoint state for operator {} to the new program"
SHIPMENT_UIDS = ("shipment-files", "stock-by-sku", "moves-sink")


def test_an_incompatible_upgrade_names_the_jobs_own_operator(monkeypatch):
    monkeypatch.setattr(refusals, "operator_id", fake_operator_id)
    for uid in ("stock-by-sku", "Sink Committer: moves-sink"):
        message = explain_refusal(
            RuntimeError(UNMAPPED.format(fake_operator_id(uid))), SHIPMENT_UIDS
        )
        assert message is not None and message.startswith("incompatible upgrade")
        assert f"operator '{uid}' (id {fake_operator_id(uid)})" in message
        assert "Nothing was written" in message
    # An operator the job does not name (here: payments' dedupe) is shown by its id alone.
    other = fake_operator_id("dedupe-by-event-id")
    message = explain_refusal(RuntimeError(UNMAPPED.format(other)), SHIPMENT_UIDS)
    assert message is not None and f"operator id {other}" in message
    assert "dedupe-by-event-id" not in message


def test_without_a_jvm_the_operator_is_named_by_its_id(monkeypatch):
    def no_jvm(uid: str) -> str:
        raise RuntimeError("no JVM at hand")

    monkeypatch.setattr(refusals, "operator_id", no_jvm)
    op = fake_operator_id("stock-by-sku")
    message = explain_refusal(RuntimeError(UNMAPPED.format(op)), SHIPMENT_UIDS)
    assert message is not None and f"the savepoint holds state of operator id {op}," in message


def test_other_refusals_and_what_is_no_refusal():
    renamed = RuntimeError(
        "restored state belongs to sink id 'shipments-books' but this sink is 'shipments2-books'"
    )
    assert "Keep --sink-id-prefix" in (explain_refusal(renamed) or "")
    fresh = RuntimeError(
        "x: sink 'shipments-moves' refuses a fresh start: it applied input. Use a new sink id."
    )
    assert (explain_refusal(fresh) or "").endswith("new sink id. Nothing was written.")
    assert explain_refusal(RuntimeError("connection reset")) is None


def test_resume_hint_and_verdict_point_at_the_jobs_own_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("TPC_VAR_DIR", str(tmp_path / "var"))
    checkpoints = tmp_path / "checkpoints"
    config = ShipmentsConfig(
        input="in", db_url="u", checkpoint_dir=str(checkpoints), commit_scope="subtask"
    )
    assert f"No retained checkpoint is under {checkpoints}" in resume_hint(config)
    newest = checkpoints / "job" / "chk-7"
    newest.mkdir(parents=True)
    (newest / "_metadata").write_bytes(b"x")
    assert f"--from-checkpoint {newest}" in resume_hint(config)
    verdict = failure_verdict(config, RuntimeError("boom"))
    assert verdict.startswith("the job failed: ") and f"--from-checkpoint {newest}" in verdict


def test_committed_lines_count_a_jobs_own_tables(database, monkeypatch):
    """Without positions, the lines are the rows of the tables each line ends in; with them,
    the lines the positions say are applied. Rows that were there at the start do not count."""
    from sinks.positions import ensure_positions_table

    with database.connect() as conn:
        conn.execute("CREATE TABLE moves (id int)")
        conn.execute("CREATE TABLE bad_moves (id int)")
        conn.execute("INSERT INTO moves VALUES (1)")
        ensure_positions_table(conn)
    monkeypatch.setenv("TEST_PW", database.password)
    config = ShipmentsConfig(
        input="in", db_url=database.jdbc_url, db_user=database.user, password_env="TEST_PW"
    )
    by_rows = CommittedLines(config, outcomes=("moves", "bad_moves"), shown=("bad_moves",))
    by_positions = CommittedLines(
        config, outcomes=("moves", "bad_moves"), shown=("bad_moves",), positions_sink_id="s-1"
    )
    try:
        with database.connect() as conn:
            conn.execute("INSERT INTO moves VALUES (2), (3)")
            conn.execute("INSERT INTO bad_moves VALUES (4)")
            conn.execute(
                "INSERT INTO tpc_source_positions (sink_id, source, last_position, lines, bytes, "
                "digest) VALUES ('s-1', 'a', 10, 10, 100, 0), ('s-2', 'a', 5, 5, 50, 0)"
            )
        assert by_rows() == {"committed": 3, "bad_moves": 1}
        assert by_positions() == {"committed": 10, "bad_moves": 1}
    finally:
        by_rows.close()
        by_positions.close()


def kit_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules += [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # A module named by a string (`import_module("jobs.payments")`) is used all the same.
            modules += [
                word for word in node.value.split() if word.startswith(("jobs.", "transforms."))
            ]
    return modules


def test_the_kit_imports_nothing_of_payments():
    files = sorted(KIT.rglob("*.py"))
    assert len(files) >= 6
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in kit_imports(path)
        if "payment" in module
    ]
    assert offenders == [], "the kit serves every job: a job passes in what is its own"


def test_flink_settings_and_kafka_properties_from_the_command_line(tmp_path, monkeypatch, capsys):
    """`-D KEY=VALUE` as `flink run -D` takes it, over flink-conf and the flags; and the Kafka
    consumer's own properties (security, fetch sizes). The keys that make the job exactly once
    are refused with the reason, before anything starts."""
    monkeypatch.setenv("TPC_VAR_DIR", str(tmp_path))
    common = ["--source", "kafka", "--bootstrap-servers", "b:9092", "--topic", "t"]
    common += ["--db-url", "jdbc:postgresql://h/db", "--checkpoint-interval", "1 s"]
    config = shipments_config(
        [
            *common,
            "-D",
            "python.fn-execution.bundle.time=100",
            "--flink-setting",
            "execution.checkpointing.interval = 200 ms",
            "--kafka-property",
            "security.protocol=SSL",
            "--kafka-property",
            "fetch.max.wait.ms=50",
        ]
    )
    settings = flink_settings(config)
    assert settings["python.fn-execution.bundle.time"] == "100"
    assert settings["execution.checkpointing.interval"] == "200 ms"  # -D over the flag
    assert config.kafka_properties == {"security.protocol": "SSL", "fetch.max.wait.ms": "50"}
    assert shipments_config(common).kafka_properties == {}
    for argv, refusal in [
        (["-D", "execution.checkpointing.mode=AT_LEAST_ONCE"], "sinks need EXACTLY_ONCE"),
        (["--kafka-property", "isolation.level=read_uncommitted"], "read_committed only"),
        (["--kafka-property", "group.id=g"], "use --group-id"),
        (["-D", "no-value"], "'no-value' is not KEY=VALUE"),
        (["--kafka-property", "=x"], "'=x' is not KEY=VALUE"),
    ]:
        with pytest.raises(SystemExit):
            shipments_config([*common, *argv])
        assert refusal in capsys.readouterr().err


def test_kafka_properties_from_a_file_keep_their_secrets_out_of_errors(tmp_path, capsys):
    """Secrets (sasl.jaas.config) go in a file, as Kafka's own tools take them; a flag wins
    over the file; a bad line is named by its number, never shown."""
    common = ["--source", "kafka", "--bootstrap-servers", "b:9092", "--topic", "t"]
    common += ["--db-url", "jdbc:postgresql://h/db"]
    path = tmp_path / "consumer.properties"
    path.write_text(
        "# the broker's TLS and login\nsecurity.protocol=SASL_SSL\n\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        'password="s3cret";\n'
        "fetch.min.bytes=1\n"
    )
    config = shipments_config(
        [*common, "--kafka-properties-file", str(path), "--kafka-property", "fetch.min.bytes=64"]
    )
    assert config.kafka_properties["security.protocol"] == "SASL_SSL"
    assert config.kafka_properties["sasl.jaas.config"].endswith('password="s3cret";')
    assert config.kafka_properties["fetch.min.bytes"] == "64"
    for content, refusal in [
        ("security.protocol=SSL\npassword s3cret\n", "line 2: not KEY=VALUE"),
        ("isolation.level=read_uncommitted\n", "line 1: isolation.level cannot be set"),
    ]:
        path.write_text(content)
        with pytest.raises(SystemExit) as refused:
            shipments_config([*common, "--kafka-properties-file", str(path)])
        assert refusal in str(refused.value) and "s3cret" not in str(refused.value)
    with pytest.raises(SystemExit, match="cannot read"):
        shipments_config([*common, "--kafka-properties-file", str(tmp_path / "missing")])
