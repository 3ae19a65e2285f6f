"""`sinks.database`: the JDBC URL the Java sink hands to pgjdbc reaches psycopg whole (issue 27).

Every parameter with a libpq equivalent is carried over, converted; one that only steers pgjdbc
is skipped; one that libpq cannot follow, or that is unknown, is refused with what to do. The
conninfo string goes through libpq's own parser (`conninfo_to_dict`) and must give back the
intended values exactly, however hostile. Then, against a real server: a parameter reaches the
server, sslmode=require is honoured (the old mapping dropped it and connected in clear), and a
host list is tried in order; the password comes from --password-env or --password-file."""

import argparse
from urllib.parse import quote, urlparse

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from localenv.paths import PROJECT_ROOT
from localenv.postgres import free_port
from sinks.database import (
    FOLDED,
    JDBC_ONLY,
    MAPPED,
    REFUSED,
    add_connection_arguments,
    check_libpq,
    connect,
    jdbc_to_conninfo,
    jdbc_to_params,
    parse_jdbc_url,
    read_password,
)

PASSWORD_ENV = "TPC_TEST_CONNINFO_PASSWORD"


def params(url: str, user=None) -> dict:
    """The keywords, after checking that libpq's parser reads the conninfo string back as them."""
    expected = jdbc_to_params(url, user)
    assert conninfo_to_dict(jdbc_to_conninfo(url, user)) == expected
    return expected


# -- the address part ------------------------------------------------------------------------


def test_a_plain_url_gives_what_it_always_gave():
    assert params("jdbc:postgresql://127.0.0.1:5432/payments", "app") == {
        "host": "127.0.0.1",
        "port": "5432",
        "dbname": "payments",
        "user": "app",
    }


@pytest.mark.parametrize(
    "url, host, port, dbname",
    [
        ("jdbc:postgresql:payments", "localhost", "5432", "payments"),  # pgjdbc's defaults
        ("jdbc:postgresql:///payments", "localhost", "5432", "payments"),  # empty host
        ("jdbc:postgresql://:5433/payments", "localhost", "5433", "payments"),
        ("jdbc:postgresql://db.example/payments", "db.example", "5432", "payments"),
        ("jdbc:postgresql://[::1]:5433/payments", "::1", "5433", "payments"),
        ("jdbc:postgresql://[fe80::1%25eth0]/payments", "fe80::1%25eth0", "5432", "payments"),
        ("jdbc:postgresql://h1:5432,h2:5433/payments", "h1,h2", "5432,5433", "payments"),
        ("jdbc:postgresql://h1,[::1]:6000,h3/payments", "h1,::1,h3", "5432,6000,5432", "payments"),
        ("jdbc:postgresql://h/d%20b+c%2Bd", "h", "5432", "d b c+d"),  # as URLDecoder decodes
        ("jdbc:postgresql://h/db#x", "h", "5432", "db#x"),  # no fragments in pgjdbc URLs
    ],
)
def test_addresses_are_read_as_pgjdbc_reads_them(url, host, port, dbname):
    # The cases were checked against pgjdbc 42.7.14's Driver.parseURL (the sink's driver).
    assert params(url) == {"host": host, "port": port, "dbname": dbname}


def test_a_url_without_a_database_leaves_it_to_the_server():
    # pgjdbc then connects to the user's database, as libpq does without dbname.
    assert params("jdbc:postgresql://h/", "app") == {"host": "h", "port": "5432", "user": "app"}


def test_the_old_mapping_cannot_read_a_host_list():
    """The control: urlparse, which the old mapping used, cannot read pgjdbc's host lists."""
    with pytest.raises(ValueError):
        urlparse("postgresql://h1:5432,h2:5433/db").port  # noqa: B018 (the access raises)


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://h/db", "is not PostgreSQL's"),
        ("jdbc:mysql://h/db", "is not PostgreSQL's"),
        ("jdbc:postgresql://h", "lacks the '/' after the host"),
        ("jdbc:postgresql:/db", "is not one pgjdbc accepts"),
        ("jdbc:postgresql://h:0/db", "port '0' is not 1 to 65535"),
        ("jdbc:postgresql://h:65536/db", "port '65536' is not 1 to 65535"),
        ("jdbc:postgresql://h:x/db", "port 'x' is not 1 to 65535"),
        ("jdbc:postgresql://h1,,h2/db", "empty entry in its host list"),
        ("jdbc:postgresql://::1/db", "goes in brackets"),
        ("jdbc:postgresql://[::1/db", "not in [brackets]"),
        ("jdbc:postgresql://app@h/db", "no user@"),
        ("jdbc:postgresql://h/d%zzb", "'%zz' is not a %XX escape"),
        ("jdbc:postgresql://h/d%FFb", "not UTF-8"),
    ],
)
def test_urls_pgjdbc_would_not_accept_are_refused(url, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        jdbc_to_params(url)


def test_a_password_never_reaches_the_error_message():
    for url in (
        "jdbc:postgresql://app:s3cret@h/db",
        "jdbc:postgresql://h:99999/db?password=s3cret",
        "jdbc:postgresql://h/db?sslmode=require&Password=s3cret",
    ):
        with pytest.raises(ValueError) as refused:
            jdbc_to_params(url)
        assert "s3cret" not in str(refused.value)


# -- the parameters --------------------------------------------------------------------------

BASE = "jdbc:postgresql://db.example:5432/payments?"


def mapped(query: str, user=None) -> dict:
    """Only the keywords the parameters added (the address's left out)."""
    result = params(BASE + query, user)
    return {k: v for k, v in result.items() if k not in ("host", "port", "dbname")}


@pytest.mark.parametrize(
    "query, expected",
    [
        ("sslmode=verify-full", {"sslmode": "verify-full"}),
        ("sslmode=disable", {"sslmode": "disable"}),
        ("ssl=true", {"sslmode": "verify-full"}),  # pgjdbc: ssl without sslmode is verify-full
        ("ssl", {"sslmode": "verify-full"}),
        ("ssl=false", {}),  # prefer, the default of both
        ("ssl=true&sslmode=require", {"sslmode": "require"}),
        ("sslrootcert=/etc/ssl/ca.pem", {"sslrootcert": "/etc/ssl/ca.pem"}),
        ("sslcert=/c.pem&sslkey=/k.pem", {"sslcert": "/c.pem", "sslkey": "/k.pem"}),
        ("sslfactory=org.postgresql.ssl.LibPQFactory", {}),  # pgjdbc's default
        ("channelBinding=require", {"channel_binding": "require"}),
        ("gssEncMode=disable", {"gssencmode": "disable"}),
        ("sslNegotiation=direct", {"sslnegotiation": "direct"}),
        ("requireAuth=scram-sha-256", {"require_auth": "scram-sha-256"}),
        ("kerberosServerName=pg", {"krbsrvname": "pg"}),
        ("service=payments", {"service": "payments"}),
        ("ApplicationName=tpc%20audit", {"application_name": "tpc audit"}),
        ("connectTimeout=5", {"connect_timeout": "5"}),
        ("loginTimeout=2.5", {"connect_timeout": "3"}),  # whole seconds, rounded up
        ("connectTimeout=5&loginTimeout=30", {"connect_timeout": "5"}),  # the stricter
        ("connectTimeout=0&loginTimeout=7", {"connect_timeout": "7"}),  # 0 is no limit
        ("connectTimeout=0", {"connect_timeout": "0"}),
        ("socketTimeout=30", {"tcp_user_timeout": "30000"}),
        ("socketTimeout=0", {}),
        ("tcpKeepAlive=true", {"keepalives": "1"}),
        ("tcpKeepAlive=false", {"keepalives": "0"}),
        ("loadBalanceHosts=true", {"load_balance_hosts": "random"}),
        ("loadBalanceHosts=false", {}),
        ("options=-c%20statement_timeout%3D5000", {"options": "-c statement_timeout=5000"}),
        ("currentSchema=ledger", {"options": "-c search_path=ledger"}),
        (
            "currentSchema=My%20Schema,public&options=-c%20x%3Dy",
            {"options": r"-c search_path=My\ Schema,public -c x=y"},
        ),
        ("user=app", {"user": "app"}),
        ("user=", {}),
        # Parameters that only steer pgjdbc: skipped.
        ("prepareThreshold=0&reWriteBatchedInserts=true&stringtype=unspecified", {}),
        ("ApplicationName=a&ApplicationName=b", {"application_name": "b"}),  # last, as pgjdbc
        ("&&ApplicationName=a&", {"application_name": "a"}),
    ],
)
def test_each_parameter_reaches_libpq(query, expected):
    assert mapped(query) == expected


@pytest.mark.parametrize(
    "jdbc, libpq",
    [
        ("any", "any"),
        ("primary", "read-write"),  # pgjdbc tells a primary by transaction_read_only = off
        ("master", "read-write"),
        ("secondary", "read-only"),
        ("slave", "read-only"),
        ("preferSecondary", "prefer-standby"),
        ("preferSlave", "prefer-standby"),
    ],
)
def test_target_server_type_becomes_target_session_attrs(jdbc, libpq):
    assert mapped(f"targetServerType={jdbc}") == {"target_session_attrs": libpq}


def test_the_urls_user_wins_over_the_flag_as_in_pgjdbc():
    # pgjdbc lets the URL's parameters win over the connection properties (the sink's user).
    assert mapped("user=from_url", "from_flag") == {"user": "from_url"}
    assert mapped("ApplicationName=x", "from_flag") == {
        "user": "from_flag",
        "application_name": "x",
    }


HOSTILE = [
    "with space",
    "it's",
    "back\\slash",
    "\\'",
    "'",
    "trailing\\",
    "tab\there\nnewline",
    "=equals&amp",
    "ünïcødé ✓ 💳",
    "  ",
    "%",
    "+",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_survive_libpqs_parser(value):
    url = BASE + "ApplicationName=" + quote(value, safe="") + "&sslrootcert=" + quote(value)
    assert mapped(url[len(BASE) :]) == {"application_name": value, "sslrootcert": value}


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_any_value_survives_libpqs_parser(value):
    # NUL is the only character a libpq string cannot hold (surrogates are not UTF-8).
    query = "ApplicationName=" + quote(value, safe="") + "&user=" + quote(value, safe="")
    expected = {"application_name": value}
    if value:  # an empty user leaves --db-user standing
        expected["user"] = value
    assert mapped(query) == expected


def test_a_database_name_with_hostile_characters_survives_libpqs_parser():
    for value in HOSTILE:
        assert params("jdbc:postgresql://h/" + quote(value, safe=""))["dbname"] == value


@pytest.mark.parametrize(
    "query, message",
    [
        ("password=x", "use --password-env|pass it through the environment, --password-env"),
        ("sslpassword=x", "client key without a password"),
        ("sslfactory=org.postgresql.ssl.NonValidatingFactory", "use sslmode, sslrootcert"),
        ("sslhostnameverifier=a.B", "use sslmode=verify-full"),
        ("sslpasswordcallback=a.B", "client key without a password"),
        ("socketFactory=a.B", "connect to an address both can reach"),
        ("localSocketAddress=10.0.0.1", "cannot choose the local address"),
        ("authenticationPluginClassName=a.B", "--password-env"),
        ("replication=database", "walsender"),
        ("readOnly=true", "read-only grants"),
        ("PGHOST=other", "put the host in the URL's address"),
        ("targetServerType=preferPrimary", "no libpq equivalent"),
        ("targetServerType=Primary", "use one of any, primary"),
        ("sslmode=verify_full", "use one of disable, allow, prefer, require"),
        ("ssl=yes", "use true or false"),
        ("connectTimeout=ten", "whole number of seconds"),
        ("connectTimeout=-1", "whole number of seconds"),
        ("loginTimeout=nan", "a number of seconds"),
        ("socketTimeout=1.5", "whole number of seconds"),
        ("tcpKeepAlive=1", "use true or false"),
        ("applicationName=x", "pgjdbc spells it ApplicationName"),
        ("sslMode=require", "pgjdbc spells it sslmode"),
        ("sslcompression=1", "sslcompression is not understood"),
        ("=x", "parameter without a name"),
    ],
)
def test_refused_parameters_say_why_and_what_to_do(query, message):
    with pytest.raises(ValueError, match=message) as refused:
        jdbc_to_params(BASE + query)
    name = query.split("=", 1)[0]
    if name:
        assert name in str(refused.value)


# pgjdbc 42.7.14's parameters (PGProperty.values(), the sink's driver, sinks/java/pom.xml).
PGJDBC_PARAMETERS = """
adaptiveFetch adaptiveFetchMaximum adaptiveFetchMinimum allowEncodingChanges ApplicationName
assumeMinServerVersion authenticationPluginClassName autosave binaryTransfer
binaryTransferDisable binaryTransferEnable cancelSignalTimeout channelBinding
classLoaderStrategy cleanupSavepoints connectExecutor connectExecutorArg connectTimeout
convertBooleanToNumeric currentSchema databaseMetadataCacheFields
databaseMetadataCacheFieldsMiB defaultRowFetchSize disableColumnSanitiser escapeSyntaxCallMode
flushCacheOnDdl groupStartupParameters gssEncMode gsslib gssResponseTimeout gssUseDefaultCreds
hideUnprivilegedObjects hostRecheckSeconds jaasApplicationName jaasLogin kerberosServerName
loadBalanceHosts localSocketAddress loggerFile loggerLevel loginTimeout logServerErrorDetail
logUnclosedConnections maxResultBuffer maxSendBufferSize options password pemKeyAlgorithm
PGDBNAME PGHOST PGPORT preferQueryMode preparedStatementCacheQueries
preparedStatementCacheSizeMiB prepareThreshold protocolVersion queryTimeout
quoteReturningIdentifiers readOnly readOnlyMode receiveBufferSize replication requireAuth
reWriteBatchedInserts reWriteBatchedInsertsSize scramMaxIterations sendBufferSize service
socketFactory socketFactoryArg socketTimeout ssl sslcert sslfactory sslfactoryarg
sslhostnameverifier sslkey sslmode sslNegotiation sslpassword sslpasswordcallback
sslResponseTimeout sslrootcert sspiServiceClass stringtype targetServerType tcpKeepAlive
tcpNoDelay unknownLength user useSpnego xmlFactoryFactory
""".split()


def test_every_pgjdbc_parameter_is_decided_once():
    lists = [set(MAPPED), set(JDBC_ONLY), set(FOLDED), set(REFUSED)]
    for i, one in enumerate(lists):
        for other in lists[i + 1 :]:
            assert one & other == set()
    decided = set().union(*lists)
    assert sorted(set(PGJDBC_PARAMETERS) - decided) == []
    assert sorted(decided - set(PGJDBC_PARAMETERS)) == []


def test_the_readme_table_names_every_decided_parameter():
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme[readme.index("### The database URL") :]
    missing = [
        name
        for name in set(MAPPED) | JDBC_ONLY | set(FOLDED) | set(REFUSED)
        if f"`{name}`" not in table
    ]
    assert sorted(missing) == []


def test_the_url_is_parsed_without_side_effects():
    url = parse_jdbc_url("jdbc:postgresql://h1:1,h2:2/d?ApplicationName=a%20b&flag")
    assert url.hosts == ["h1", "h2"]
    assert url.ports == [1, 2]
    assert url.database == "d"
    assert url.parameters == {"ApplicationName": "a b", "flag": ""}


@pytest.mark.parametrize(
    "query, version, refused",
    [
        ("targetServerType=primary", 100000, False),  # read-write: libpq 10
        ("targetServerType=secondary", 130000, True),  # read-only: libpq 14
        ("targetServerType=secondary", 140000, False),
        ("loadBalanceHosts=true", 150012, True),
        ("requireAuth=scram-sha-256", 160000, False),
        ("sslNegotiation=direct", 160009, True),
        ("socketTimeout=10", 110000, True),
    ],
)
def test_a_libpq_too_old_for_a_parameter_is_refused(query, version, refused):
    keywords = jdbc_to_params(BASE + query)
    if refused:
        with pytest.raises(ValueError, match="needs libpq 1[0-9] or newer"):
            check_libpq(keywords, version)
    else:
        check_libpq(keywords, version)


# -- against a real server -------------------------------------------------------------------


def old_jdbc_to_conninfo(jdbc_url: str, user: str) -> str:
    """The mapping before issue 27, for the control: host, port and database, nothing else."""
    parsed = urlparse(jdbc_url[len("jdbc:") :])
    return f"host={parsed.hostname} port={parsed.port} dbname={parsed.path.lstrip('/')} user={user}"


@pytest.fixture
def server(database, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, database.password)
    return database


def test_a_parameter_reaches_the_server(server):
    url = f"{server.jdbc_url}?ApplicationName=tpc%20audit&currentSchema=ledger,public"
    with connect(url, server.user, PASSWORD_ENV) as conn:
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == (
            "tpc audit",
        )
        assert conn.execute("SHOW search_path").fetchone() == ("ledger,public",)


def test_the_url_wins_over_the_callers_keywords_and_adds_to_its_options(server):
    url = f"{server.jdbc_url}?connectTimeout=7&options=-c%20lock_timeout%3D1234"
    with connect(
        url, server.user, PASSWORD_ENV, connect_timeout=2, options="-c statement_timeout=2000"
    ) as conn:
        assert conn.info.get_parameters()["connect_timeout"] == "7"
        assert conn.execute("SHOW lock_timeout").fetchone() == ("1234ms",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("2s",)


def test_sslmode_require_is_honoured(server):
    url = f"{server.jdbc_url}?sslmode=require"
    # The control: the old mapping dropped sslmode, and connected in clear to a server without
    # TLS (the test server has none), which the URL forbids.
    with psycopg.connect(old_jdbc_to_conninfo(url, server.user), password=server.password) as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (
            False,
        )
    with pytest.raises(psycopg.OperationalError, match="does not offer TLS, and the URL requires"):
        connect(url, server.user, PASSWORD_ENV)


def test_a_host_list_is_tried_in_order(server):
    closed = free_port()  # nothing listens there
    url = (
        f"jdbc:postgresql://127.0.0.1:{closed},{server.host}:{server.port}/{server.name}"
        "?targetServerType=primary"
    )
    with connect(url, server.user, PASSWORD_ENV, connect_timeout=5) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone() == (server.port,)
        assert conn.info.port == server.port


def test_a_refused_url_never_connects(server):
    with pytest.raises(ValueError, match="sslfactory is refused"):
        connect(
            f"{server.jdbc_url}?sslfactory=org.postgresql.ssl.NonValidatingFactory",
            server.user,
            PASSWORD_ENV,
        )


def test_a_password_file_replaces_the_variable(server, monkeypatch, tmp_path):
    secret = tmp_path / "password"
    secret.write_text(server.password + "\n")  # as `echo` writes it: the newline is dropped
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    with connect(server.jdbc_url, server.user, PASSWORD_ENV, password_file=secret) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # The control: the variable alone holds the wrong password.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(server.jdbc_url, server.user, PASSWORD_ENV)


def test_an_unreadable_or_empty_password_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=f"cannot read the password file {tmp_path / 'none'}"):
        read_password(password_file=tmp_path / "none")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_password(password_file=tmp_path / "empty")


def test_password_env_and_file_are_mutually_exclusive(capsys):
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    args = parser.parse_args(["--db-url", "jdbc:postgresql://h/d", "--password-file", "/s"])
    assert (args.password_file, args.password_env) == ("/s", "PGPASSWORD")
    with pytest.raises(SystemExit):
        parser.parse_args(["--db-url", "u", "--password-env", "PW", "--password-file", "/s"])
    assert "--password-file: not allowed with argument --password-env" in capsys.readouterr().err
