"""TLS for real: every command that talks to the database, against a PostgreSQL that takes TLS
connections only (`localenv.postgres.tls`: ssl = on, `hostssl ... scram-sha-256` only, a CA and
a server certificate for 127.0.0.1 made with openssl here).

The matrix: the payments job (`python -m jobs.payments` on the mini cluster), `jobs.audit`,
`sinks.admin list` and `jobs.payments_schema`, each with

    right      sslmode=verify-full&sslrootcert=<the CA that signed the server's certificate>
    wrong CA   the same, with a CA that signed nothing here
    wrong host the right CA, through `localhost`, a name the certificate does not hold
    no TLS     sslmode=disable: the server has no pg_hba.conf entry without encryption

The right URL works for all four (the job's result is audit-clean: the Java sink verified the
server through pgjdbc with the same PEM file). Each other case fails before any data moves,
with a line naming the check that failed; the controls show each failure is that check's.
"""

import subprocess
import sys

import psycopg
import pytest

from localenv.flink import child_process_environment
from localenv.paths import PROJECT_ROOT
from localenv.postgres.tls import make_certificates, tls_server, verify_full_url
from sinks.database import jdbc_to_params
from tests.jobs.support import PASSWORD_ENV
from transforms import sample_data

# What PyFlink's gateway JVM prints when the Python process it serves has exited.
JVM_FAREWELL = "Unable to get the Python watchdog object, now exit."

WRONG_HOST = "localhost"  # the server's certificate holds 127.0.0.1 only

CASES = {
    # case -> (the URL for db, what the one-line error says)
    "wrong CA": (
        lambda db, certs: verify_full_url(db, certs.other_ca),
        "TLS certificate verification failed: the server's certificate does not verify against "
        "the CA in sslrootcert={other_ca} (libpq: SSL error: certificate verify failed)",
    ),
    "wrong host": (
        lambda db, certs: verify_full_url(db, certs.ca, host=WRONG_HOST),
        'TLS host name mismatch: the server\'s certificate is for "127.0.0.1" (and 1 other name), '
        f'not for the host "{WRONG_HOST}" the URL connects to',
    ),
    "no TLS": (
        lambda db, certs: f"{db.jdbc_url}?sslmode=disable",
        "the server requires TLS: it refuses a connection without encryption (sslmode=disable",
    ),
}

COMMANDS = {
    # command -> (argv before the connection flags, the exit status of a refused connection,
    # how its error line starts)
    "jobs.payments": (
        ["jobs.payments", "--input", "{input}", "--checkpoint-dir", "{chk}"],
        1,
        "error: ",
    ),
    "jobs.audit": (["jobs.audit", "--input", "{input}"], 2, "audit: "),
    "sinks.admin": (["sinks.admin", "list"], 2, "admin: "),
    "jobs.payments_schema": (["jobs.payments_schema"], 2, "error: "),
}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(certificates):
    with tls_server(certificates, max_prepared_transactions=16) as server:
        yield server


@pytest.fixture(scope="module")
def untouched(server):
    """One database for every refused case: none of them may leave anything in it."""
    return server.create_database("untouched")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls-input")
    sample_data.write_jsonl(str(directory / "payments.jsonl"), 200, seed=5, id_prefix="tls")
    return directory


def run(command: str, url: str, db, inputs, tmp_path) -> subprocess.CompletedProcess:
    argv, _, _ = COMMANDS[command]
    filled = [a.format(input=inputs, chk=tmp_path / "checkpoints") for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", *filled, "--db-url", url, "--db-user", db.user]
        + ["--password-env", PASSWORD_ENV],
        cwd=PROJECT_ROOT,
        env=child_process_environment({PASSWORD_ENV: db.password}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert db.password not in done.stdout + done.stderr
    return done


def contents(db) -> tuple:
    """What a command could have left: tables and schemas of its own, prepared transactions,
    and whether any session other than these checks' ever logged in to the database."""
    with db.connect(autocommit=True) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')),"
            "       (SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%'"
            "        AND nspname NOT IN ('public', 'information_schema')),"
            "       (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())"
        ).fetchone()


@pytest.mark.minicluster
def test_verify_full_with_the_right_ca_works_for_every_command(
    server, certificates, inputs, tmp_path
):
    db = server.create_database("right_ca")
    url = verify_full_url(db, certificates.ca)

    schema = run("jobs.payments_schema", url, db, inputs, tmp_path)
    assert schema.returncode == 0, schema.stderr[-3000:]
    assert schema.stdout.startswith("created: "), schema.stdout

    job = run("jobs.payments", url, db, inputs, tmp_path)
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-3000:]

    audit = run("jobs.audit", url, db, inputs, tmp_path)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
    assert "audit: clean" in audit.stdout, audit.stdout[-3000:]

    admin = run("sinks.admin", url, db, inputs, tmp_path)
    assert admin.returncode == 0, admin.stdout + admin.stderr

    with db.connect() as conn:
        # Every row came through TLS: the sink's sessions are gone, but the rows are there,
        # and the server takes nothing else (the no-TLS case below).
        assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] > 0


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_wrong_tls_setting_fails_before_any_data_moves_naming_the_check(
    command, case, server, certificates, untouched, inputs, tmp_path
):
    url_for, says = CASES[case]
    says = says.format(other_ca=certificates.other_ca)
    _, status, prefix = COMMANDS[command]
    before = contents(untouched)

    url = url_for(untouched, certificates)
    done = run(command, url, untouched, inputs, tmp_path)

    assert done.returncode == status, done.stdout[-2000:] + done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prefix}cannot connect to {url.split('?')[0]}: {says}"), last
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert contents(untouched) == before == (0, 0, 0)
    if command == "jobs.payments":
        assert last.endswith("Nothing was written; no job was started."), last
        # No progress line: no job ran. The command launches PyFlink's gateway JVM in the
        # background at its start (localenv.flink.start_jvm_early), so that JVM may say goodbye
        # when the command exits early; it ran no mini cluster and no job.
        printed = set(done.stdout.splitlines()) - {JVM_FAREWELL}
        assert not printed, done.stdout
        assert not (tmp_path / "checkpoints").exists()


def test_the_controls_each_failure_is_that_checks(server, certificates, untouched):
    """Turn off the one check each case fails, and the same connection goes through: the
    refusals above come from certificate verification, from the host name check and from the
    server's pg_hba.conf, not from anything else about those URLs."""

    def ssl_of(url: str):
        params = jdbc_to_params(url, untouched.user)
        with psycopg.connect(password=untouched.password, connect_timeout=10, **params) as conn:
            return conn.execute(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()[0]

    # TLS with no certificate check (libpq's require checks one if given an sslrootcert).
    assert ssl_of(f"{untouched.jdbc_url}?sslmode=require") is True
    wrong_host = verify_full_url(untouched, certificates.ca, host=WRONG_HOST)
    assert ssl_of(wrong_host.replace("sslmode=verify-full", "sslmode=verify-ca")) is True
    # Without the hostssl-only pg_hba.conf, a client that does not ask for TLS is let in.
    with tls_server(certificates) as plain:
        with plain.base.joinpath("data", "pg_hba.conf").open("a") as hba:
            hba.write("host all all 127.0.0.1/32 scram-sha-256\n")
        plain.restart()
        db = plain.database()
        params = jdbc_to_params(f"{db.jdbc_url}?sslmode=disable", db.user)
        with psycopg.connect(password=db.password, connect_timeout=10, **params) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert row.fetchone()[0] is False


# What the Java sink says (sinks/java Connections.tlsCheckFailed) when its own check refuses
# the connection: the job's Python check comes first and stops each case above before the JVM,
# but the sink opens its connections from the TaskManagers, which may see other files.
JAVA_SAYS = {
    "wrong CA": "TLS certificate verification failed: the server's certificate does not verify "
    "against the CA in sslrootcert={other_ca}",
    "wrong host": "TLS host name mismatch: the server's certificate does not hold the host name",
    "no TLS": "the server requires TLS: it refuses a connection without encryption",
}


@pytest.mark.minicluster
def test_the_java_sink_verifies_the_server_itself_and_names_the_check(
    server, certificates, untouched
):
    """pgjdbc reads the same PEM CA file: its preflight connection (the one every writer
    opens too) passes with the right CA, and each wrong case is refused in pgjdbc's own TLS
    check, with the same words as the Python side's instead of "database unreachable" or
    "authentication failed"."""
    from localenv.flink import local_environment
    from sinks import SinkConfigurationError, TwoPhaseCommitSink, add_sink_jars

    add_sink_jars(local_environment(parallelism=1))

    def build(url: str):
        # A file, read where the sink runs: this test's JVM started before its server did.
        return (
            TwoPhaseCommitSink.builder()
            .set_jdbc_url(url)
            .set_user(untouched.user)
            .set_password_file(str(untouched.password_file))
            .set_field_names(["id"])
            .add_statement("INSERT INTO out (id) VALUES (:id)")
            .set_sink_id("tls_check")
            .set_mode("staged")
            .build()
        )

    right = server.create_database("java_right")
    with right.connect() as conn:
        conn.execute("CREATE TABLE out (id bigint)")
    assert "ready on PostgreSQL" in build(verify_full_url(right, certificates.ca)).summary
    before = contents(untouched)
    for case, says in JAVA_SAYS.items():
        url = CASES[case][0](untouched, certificates)
        with pytest.raises(SinkConfigurationError) as error:
            build(url)
        message = str(error.value)
        expected = f"cannot connect to {url.split('?')[0]}: " + says.format(
            other_ca=certificates.other_ca
        )
        assert message.startswith(expected), message
        assert "unreachable" not in message and "authentication failed" not in message, message
    assert contents(untouched) == before == (0, 0, 0)


def test_a_missing_ca_file_is_said_so_before_any_tls(server, certificates, untouched, tmp_path):
    from sinks.database import CannotConnect, connect

    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(CannotConnect) as error:
        connect(verify_full_url(untouched, missing), untouched.user, "TPC_TLS_UNUSED")
    assert str(error.value).startswith(
        f"cannot connect to {untouched.jdbc_url}: TLS certificate verification cannot start: "
        f'root certificate file "{missing}" does not exist. Give sslrootcert the path'
    ), error.value
