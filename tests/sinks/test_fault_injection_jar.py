"""Fault injection is test code: the sink's production jar holds only its hook points
(`dev.tpc.sink.SinkHooks`), the fault-injection test jar holds the faults, and fault settings
without that jar are refused before the job runs, with the fix; a fault test that injects
nothing would pass without proving anything. The jobs the fault tests run (tests/sinks,
tests/jobs, the campaign) show that the shipped jar still injects."""

import os
import subprocess
import sys
import zipfile

import pytest

from localenv import jars
from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from tests.sinks.support import create_sequence_table, sink_fault

pytestmark = [pytest.mark.minicluster]  # needs a JDK and Maven, and a JVM for the refusal

SERVICE = "META-INF/services/dev.tpc.sink.SinkHooks$Factory"

# A job with the sink, turned into its job graph (which runs the sink's checks) and not run.
PLAN_JOB = """
import os
from pyflink.common import Row, Types
from localenv.flink import local_environment
from sinks import TwoPhaseCommitSink, add_sink_jars

env = local_environment(parallelism=1)
env.enable_checkpointing(1000)
add_sink_jars(env)
rows = env.from_collection(
    [Row(1, "a")], type_info=Types.ROW_NAMED(["id", "v"], [Types.LONG(), Types.STRING()])
)
rows.sink_to(
    TwoPhaseCommitSink.builder()
    .set_jdbc_url(os.environ["TEST_JDBC_URL"])
    .set_user(os.environ["TEST_DB_USER"])
    .set_password_env("TEST_DB_PASSWORD")
    .set_field_names(["id", "v"])
    .add_statement("INSERT INTO sink_check (id, v) VALUES (:id, :v)")
    .set_sink_id("hooks")
    .set_mode("staged")
    .build()
)
env.get_execution_plan()
print("planned")
"""


def entries(jar) -> set[str]:
    with zipfile.ZipFile(jar) as archive:
        return set(archive.namelist())


def test_the_production_jar_holds_the_hook_points_and_no_fault_injection():
    production = entries(jars.sink_jar())
    assert "dev/tpc/sink/SinkHooks.class" in production
    # (dev.tpc.source's InputFileFault and FileFaults classify real read errors: production.)
    assert not [n for n in production if n.startswith("dev/tpc/sink/faults/") or "Inject" in n]
    assert SERVICE not in production
    # The control: the test jar holds what the production jar lacks, and registers it.
    faults = jars.fault_injection_jar()
    assert "dev/tpc/sink/faults/FaultInjection.class" in entries(faults)
    with zipfile.ZipFile(faults) as archive:
        registered = archive.read(SERVICE).decode().split()
    assert registered == ["dev.tpc.sink.faults.FaultInjection$Factory"]


def plan(database, settings: dict) -> subprocess.CompletedProcess:
    env = child_process_environment(
        {
            "TEST_JDBC_URL": database.jdbc_url,
            "TEST_DB_USER": database.user,
            "TEST_DB_PASSWORD": database.password,
            **settings,
        }
    )
    if jars.HOOK_JARS not in settings:
        env.pop(jars.HOOK_JARS, None)
    return subprocess.run(
        [sys.executable, "-c", PLAN_JOB],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_fault_asked_for_without_the_fault_jar_is_refused_before_the_job_runs(database, tmp_path):
    create_sequence_table(database)
    armed = sink_fault(tmp_path / "fault", "fail", nth=1)
    without_jar = {k: v for k, v in armed.items() if k != jars.HOOK_JARS}
    refused = plan(database, without_jar)
    assert refused.returncode != 0, refused.stdout
    assert "planned" not in refused.stdout
    assert "SinkConfigurationError: TPC_SINK_FAULT_ACTION, TPC_SINK_FAULT_DIR" in refused.stderr, (
        refused.stderr[-3000:]
    )
    assert "tpc-fault-injection.jar" in refused.stderr
    # The control: the same settings with the jar they name pass the same checks.
    shipped = plan(database, armed)
    assert shipped.returncode == 0, shipped.stderr[-3000:]
    assert "planned" in shipped.stdout
    assert os.environ.get(jars.HOOK_JARS) is None  # nothing leaked into this process
