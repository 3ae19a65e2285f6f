"""The database connection flags, and Python-side access from them (psycopg 3): a JDBC URL, a
user, and where the password is: the name of an environment variable or the path of a file
(never the password).

One definition of the flags for every command that talks to the database: the jobs, their
checks (`jobs.reconcile`, `jobs.audit`), `sinks.admin`, the benchmarks and the test harnesses.
Here, in the sink's package, because the sink takes the same three settings and `sinks/` must
not import `jobs/`.

One connection definition, honoured everywhere: the Java sink hands the URL to pgjdbc as it
is, and the Python side reads the same URL the way pgjdbc does (`parse_jdbc_url`, checked
against pgjdbc 42.7's `Driver.parseURL`) and turns every parameter into its libpq keyword
(`jdbc_to_params`). A parameter that only steers pgjdbc's own Java machinery is skipped
(`JDBC_ONLY`); one that changes where or how securely the connection goes and that libpq
cannot follow is refused (`REFUSED`), and so is any parameter in neither list: nothing is
silently dropped. The table is in README.md, "The database URL"."""

import math
import os
import re
from typing import Callable, NamedTuple, Optional
from urllib.parse import unquote_plus

import psycopg

DEFAULT_PORT = 5432
DEFAULT_HOST = "localhost"  # pgjdbc's, for jdbc:postgresql:db and an empty host

# pgjdbc's value -> libpq's target_session_attrs. pgjdbc tells a primary by `SHOW
# transaction_read_only` being off, which is libpq's read-write test; secondary is the opposite,
# libpq's read-only. "slave" and "preferSlave" are pgjdbc's old spellings.
TARGET_SERVER_TYPES = {
    "any": "any",
    "primary": "read-write",
    "master": "read-write",
    "secondary": "read-only",
    "slave": "read-only",
    # libpq's prefer-standby tests hot standby, pgjdbc's preferSecondary transaction_read_only:
    # they differ only for a primary with default_transaction_read_only = on, and both fall
    # back to any server.
    "preferSecondary": "prefer-standby",
    "preferSlave": "prefer-standby",
}

# The libpq release (major version) that brought a keyword, or a value of one: the libpq
# psycopg runs on must be at least that (checked by `connect`).
LIBPQ_SINCE = {
    "tcp_user_timeout": 12,
    "gssencmode": 12,
    "channel_binding": 13,
    "target_session_attrs=read-only": 14,
    "target_session_attrs=prefer-standby": 14,
    "require_auth": 16,
    "load_balance_hosts": 16,
    "sslnegotiation": 17,
}

# pgjdbc parameters that only steer pgjdbc itself (statement caching and batching, type binding,
# logging, buffers, its Java-side Kerberos and class loading): they change nothing for a
# psycopg connection, so the Python side skips them. Every one was checked not to change where
# the connection goes, whom it authenticates as, or how the server is verified.
JDBC_ONLY = frozenset(
    {
        "adaptiveFetch",
        "adaptiveFetchMaximum",
        "adaptiveFetchMinimum",
        "allowEncodingChanges",
        "assumeMinServerVersion",
        "autosave",
        "binaryTransfer",
        "binaryTransferDisable",
        "binaryTransferEnable",
        "cancelSignalTimeout",
        "classLoaderStrategy",
        "cleanupSavepoints",
        "connectExecutor",  # runs pgjdbc's loginTimeout; loginTimeout itself is mapped
        "connectExecutorArg",
        "convertBooleanToNumeric",
        "databaseMetadataCacheFields",
        "databaseMetadataCacheFieldsMiB",
        "defaultRowFetchSize",
        "disableColumnSanitiser",
        "escapeSyntaxCallMode",
        "flushCacheOnDdl",
        "groupStartupParameters",
        "gssResponseTimeout",  # connect_timeout bounds the whole attempt on the libpq side
        "gsslib",  # SSPI (Windows) or GSSAPI in pgjdbc; libpq on Linux always uses GSSAPI
        "gssUseDefaultCreds",  # Java's Kerberos credentials; libpq uses the process's ccache
        "hideUnprivilegedObjects",
        "hostRecheckSeconds",  # pgjdbc's cache of host states; libpq checks at every connect
        "jaasApplicationName",
        "jaasLogin",
        "logServerErrorDetail",
        "logUnclosedConnections",
        "loggerFile",
        "loggerLevel",
        "maxResultBuffer",
        "maxSendBufferSize",
        "pemKeyAlgorithm",  # how pgjdbc reads the key file; libpq reads the file's own format
        "preferQueryMode",
        "prepareThreshold",
        "preparedStatementCacheQueries",
        "preparedStatementCacheSizeMiB",
        "protocolVersion",  # pgjdbc speaks only protocol 3, as libpq does by default
        "queryTimeout",  # JDBC's Statement.setQueryTimeout default, not a session setting
        "quoteReturningIdentifiers",
        "readOnlyMode",  # only matters with readOnly, which is refused
        "reWriteBatchedInserts",
        "reWriteBatchedInsertsSize",
        "receiveBufferSize",
        "scramMaxIterations",
        "sendBufferSize",
        "sslResponseTimeout",  # connect_timeout bounds the whole attempt on the libpq side
        "sspiServiceClass",
        "stringtype",  # how pgjdbc binds Java strings (the sink reads it); psycopg adapts types
        "tcpNoDelay",  # libpq always sets TCP_NODELAY
        "unknownLength",
        "useSpnego",
        "xmlFactoryFactory",
    }
)

PASSWORD_ADVICE = (
    "do not put it in the URL (it would reach command lines, logs and Flink's web UI): "
    "pass it through the environment, --password-env (default PGPASSWORD)"
)

# Parameters that change where the connection goes, whom it authenticates as or how the server
# is verified, and that libpq cannot follow: refused, with what to do instead.
REFUSED = {
    "password": PASSWORD_ADVICE,
    "sslpassword": "the client key's password is a secret, and the Java sink refuses any "
    "password= in its URL: use a client key without a password, readable by this user only",
    "sslfactory": "a Java SSL factory decides how pgjdbc verifies the server, which the Python "
    "side cannot do the same way: remove it and use sslmode, sslrootcert, sslcert and sslkey",
    "sslfactoryarg": "it goes with sslfactory: use sslmode and sslrootcert instead",
    "sslhostnameverifier": "a Java class verifies the server's name for pgjdbc only: remove it "
    "and use sslmode=verify-full",
    "sslpasswordcallback": "a Java class supplies the client key's password for pgjdbc only: use "
    "a client key without a password, readable by this user only",
    "socketFactory": "a Java socket factory routes pgjdbc's connections (a proxy, a tunnel, a "
    "cloud connector) where the Python side cannot follow: connect to an address both can reach",
    "socketFactoryArg": "it goes with socketFactory: connect to an address both sides can reach",
    "localSocketAddress": "libpq cannot choose the local address of its connections: remove it "
    "(route by the server address instead)",
    "authenticationPluginClassName": "a Java plugin supplies pgjdbc's password, which the Python "
    "side cannot run: pass the password through the environment, --password-env",
    "replication": "a replication (walsender) connection cannot run the checks' SQL: remove it",
    "readOnly": "the jobs and sinks.admin write through this URL: remove it (to protect a "
    "database, give the user read-only grants instead)",
    "PGHOST": "put the host in the URL's address: jdbc:postgresql://host:port/database",
    "PGPORT": "put the port in the URL's address: jdbc:postgresql://host:port/database",
    "PGDBNAME": "put the database in the URL's path: jdbc:postgresql://host:port/database",
}


# pgjdbc's default SSL factory (and its older name), which reads sslmode, sslrootcert, sslcert
# and sslkey as libpq does: naming it changes nothing.
DEFAULT_SSL_FACTORIES = ("org.postgresql.ssl.LibPQFactory", "org.postgresql.ssl.jdbc4.LibPQFactory")


class JdbcUrl(NamedTuple):
    """A pgjdbc URL as pgjdbc reads it: hosts and ports (as many of one as of the other), the
    database ('' when the URL names none: the server then takes the user's name), and the
    parameters, percent-decoded (a repeated one: the last, as in pgjdbc)."""

    hosts: list[str]
    ports: list[int]
    database: str
    parameters: dict[str, str]


def _decode(text: str, what: str) -> str:
    """pgjdbc's URLDecoder.decode: %XX escapes of UTF-8 bytes, and '+' for a space."""
    bad = re.search(r"%(?![0-9A-Fa-f]{2})", text)
    if bad:
        raise ValueError(f"{what}: {text[bad.start() : bad.start() + 3]!r} is not a %XX escape")
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"{what}: its %XX escapes are not UTF-8") from None


def _shown(jdbc_url: str) -> str:
    """The URL for an error message: without its parameters, and without anything before an
    '@' in the address (pgjdbc takes no user:password@ there, but a user may have tried)."""
    return re.sub(r"//[^/]*@", "//***@", jdbc_url.split("?", 1)[0])


def _address(entry: str, shown: str) -> tuple[str, int]:
    """One `host[:port]` of the URL's address list; an IPv6 host is in brackets."""
    if "@" in entry:
        raise ValueError(
            f"the JDBC URL {shown!r}: pgjdbc takes no user@ or user:password@ before the host; "
            "the user goes in --db-user (or ?user=), the password in the environment "
            "(--password-env)"
        )
    host, port = entry, str(DEFAULT_PORT)
    colon = entry.rfind(":")
    if colon != -1 and entry.rfind("]") < colon:
        host, port = entry[:colon], entry[colon + 1 :]
        if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
            raise ValueError(f"the JDBC URL {shown!r}: port {port!r} is not 1 to 65535")
    if host.startswith("["):
        if not host.endswith("]") or len(host) == 2:
            raise ValueError(f"the JDBC URL {shown!r}: IPv6 host {host!r} is not in [brackets]")
        host = host[1:-1]
    elif ":" in host or "]" in host:
        raise ValueError(
            f"the JDBC URL {shown!r}: host {host!r} looks like an IPv6 address, which goes in "
            "brackets: jdbc:postgresql://[::1]:5432/database"
        )
    return host or DEFAULT_HOST, int(port)


def parse_jdbc_url(jdbc_url: str) -> JdbcUrl:
    """Reads a URL as pgjdbc 42.7's Driver.parseURL does (ValueError where pgjdbc would not
    accept it, or would read it in a way libpq cannot follow):

        jdbc:postgresql:database                      localhost:5432
        jdbc:postgresql://host/database               port 5432
        jdbc:postgresql://host:port/database
        jdbc:postgresql://h1:p1,h2:p2/database        tried in order, as libpq does
        jdbc:postgresql://[::1]:5432/database         IPv6 in brackets
        jdbc:postgresql:///database                   an empty host is localhost
        ...?name=value&name=value                     names as written, values percent-decoded

    The address part is taken as written (pgjdbc decodes neither hosts nor ports), the
    database and the values are percent-decoded ('+' is a space). Error messages never show
    the URL's parameters: a refused password must not reach a log through them."""
    prefix = "jdbc:postgresql:"
    if not isinstance(jdbc_url, str) or not jdbc_url.startswith(prefix):
        shown = _shown(jdbc_url) if isinstance(jdbc_url, str) else repr(jdbc_url)
        raise ValueError(
            f"the JDBC URL {shown!r} is not PostgreSQL's: use jdbc:postgresql://host:port/database"
        )
    shown = _shown(jdbc_url)
    server, _, query = jdbc_url[len(prefix) :].partition("?")
    parameters = {}
    for token in query.split("&"):
        if not token:
            continue
        name, _, value = token.partition("=")
        if not name:
            raise ValueError(f"the JDBC URL {shown!r} has a parameter without a name")
        # The Java sink refuses any password= in its URL, whatever the case (sslpassword too).
        if name.lower().endswith("password"):
            reason = REFUSED.get(name, PASSWORD_ADVICE)
            raise ValueError(f"the JDBC URL {shown!r} holds {name}=...: {reason}")
        parameters[name] = value
    if server.startswith("//"):
        authority, slash, path = server[2:].partition("/")
        if not slash:
            raise ValueError(
                f"the JDBC URL {shown!r} lacks the '/' after the host and port: "
                "jdbc:postgresql://host:port/database"
            )
        entries = authority.split(",")
        if len(entries) > 1 and "" in entries:
            raise ValueError(f"the JDBC URL {shown!r} has an empty entry in its host list")
        addresses = [_address(entry, shown) for entry in entries]
    elif server.startswith("/"):
        raise ValueError(
            f"the JDBC URL {shown!r} is not one pgjdbc accepts: "
            "use jdbc:postgresql://host:port/database or jdbc:postgresql:database"
        )
    else:
        path, addresses = server, [(DEFAULT_HOST, DEFAULT_PORT)]
    return JdbcUrl(
        hosts=[host for host, _ in addresses],
        ports=[port for _, port in addresses],
        database=_decode(path, f"the database name in the JDBC URL {shown!r}"),
        parameters={
            name: _decode(value, f"JDBC URL parameter {name}") for name, value in parameters.items()
        },
    )


def _seconds(name: str, value: str, fraction: bool = False) -> float:
    try:
        seconds = float(value) if fraction else int(value)
    except ValueError:
        seconds = -1
    if seconds < 0 or not math.isfinite(seconds):
        kind = "a number" if fraction else "a whole number"
        raise ValueError(f"JDBC URL parameter {name}={value!r}: give {kind} of seconds, 0 or more")
    return seconds


def _options_escaped(value: str) -> str:
    """A value inside libpq's `options`: backslash and whitespace escaped with a backslash."""
    return re.sub(r"([\\\s])", r"\\\1", value)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"JDBC URL parameter {name}={value!r}: use one of {', '.join(allowed)}")
    return value


def _boolean(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"JDBC URL parameter {name}={value!r}: use true or false")
    return value.lower() == "true"


def _target_session_attrs(name: str, value: str) -> str:
    if value == "preferPrimary":
        raise ValueError(
            "JDBC URL parameter targetServerType=preferPrimary has no libpq equivalent "
            "(libpq cannot prefer a primary and fall back to a standby): use "
            "targetServerType=primary to require one, or any to take the first host that answers"
        )
    if value not in TARGET_SERVER_TYPES:
        raise ValueError(
            f"JDBC URL parameter targetServerType={value!r}: use one of "
            f"{', '.join(TARGET_SERVER_TYPES)}"
        )
    return TARGET_SERVER_TYPES[value]


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def SAME(name: str, value: str) -> str:
    return value


# pgjdbc parameter -> (libpq keyword, value conversion) where the value carries over.
MAPPED: dict[str, tuple[str, Callable[[str, str], str]]] = {
    "user": ("user", SAME),
    "sslmode": ("sslmode", lambda n, v: _one_of(n, v, SSL_MODES)),
    "sslrootcert": ("sslrootcert", SAME),
    "sslcert": ("sslcert", SAME),
    "sslkey": ("sslkey", SAME),
    "sslNegotiation": ("sslnegotiation", lambda n, v: _one_of(n, v, ("postgres", "direct"))),
    "channelBinding": (
        "channel_binding",
        lambda n, v: _one_of(n, v, ("disable", "prefer", "require")),
    ),
    "gssEncMode": (
        "gssencmode",
        lambda n, v: _one_of(n, v, ("disable", "allow", "prefer", "require")),
    ),
    "requireAuth": ("require_auth", SAME),
    "kerberosServerName": ("krbsrvname", SAME),
    "service": ("service", SAME),
    "ApplicationName": ("application_name", SAME),
    "targetServerType": ("target_session_attrs", _target_session_attrs),
    # false is libpq's default (disable): left out, so that it needs no libpq 16
    "loadBalanceHosts": ("load_balance_hosts", lambda n, v: "random" if _boolean(n, v) else ""),
    "tcpKeepAlive": ("keepalives", lambda n, v: "1" if _boolean(n, v) else "0"),
    # pgjdbc's socketTimeout ends a connection whose read waits longer; libpq has no read
    # timeout. tcp_user_timeout (ms) ends it when sent data stays unacknowledged that long: it
    # catches what socketTimeout is there for, a server or network gone, but not a slow query
    # (bound those with options=-c statement_timeout=...). 0 is "none" in both.
    "socketTimeout": ("tcp_user_timeout", lambda n, v: str(int(_seconds(n, v)) * 1000)),
}

# The converted values that say nothing, left out (a user "0" is a user).
NOTHING = {"user": "", "load_balance_hosts": "", "tcp_user_timeout": "0"}

# Parameters folded into others: connectTimeout and loginTimeout into connect_timeout, ssl into
# sslmode, currentSchema into options.
FOLDED = ("connectTimeout", "loginTimeout", "ssl", "currentSchema", "options")


def jdbc_to_params(jdbc_url: str, user: Optional[str] = None) -> dict[str, str]:
    """libpq keywords (for psycopg.connect) for a pgjdbc URL: every parameter of it that means
    something to libpq, each converted; ValueError for a parameter refused or unknown. `user`
    (--db-user) unless the URL names one (pgjdbc's precedence: the URL's parameters win over
    the sink's connection properties). The password is never in it: pass it separately."""
    url = parse_jdbc_url(jdbc_url)
    found = url.parameters
    for name in found:
        if name == "sslfactory" and found[name] in DEFAULT_SSL_FACTORIES:
            continue  # pgjdbc's default: verifies as libpq does, from the same parameters
        if name in REFUSED:
            raise ValueError(f"JDBC URL parameter {name} is refused: {REFUSED[name]}")
        if name not in MAPPED and name not in JDBC_ONLY and name not in FOLDED:
            known = sorted(set(MAPPED) | JDBC_ONLY | set(FOLDED) | set(REFUSED))
            spelled = [k for k in known if k.lower() == name.lower()]
            hint = (
                f"pgjdbc spells it {spelled[0]} (names are case-sensitive)"
                if spelled
                else "pgjdbc 42.7 has no such parameter (and would ignore it): remove it, or, "
                "if a newer pgjdbc has it, add it to sinks/database.py's MAPPED, JDBC_ONLY or "
                "REFUSED"
            )
            raise ValueError(f"JDBC URL parameter {name} is not understood: {hint}")
    params = {
        "host": ",".join(url.hosts),
        "port": ",".join(str(port) for port in url.ports),
    }
    if url.database:
        params["dbname"] = url.database
    if user:
        params["user"] = user
    for name, value in found.items():
        if name in MAPPED:
            keyword, convert = MAPPED[name]
            converted = convert(name, value)
            # Nothing to say: no user (--db-user stands), no load balancing, no socket timeout.
            if converted != NOTHING.get(keyword):
                params[keyword] = converted
    if "sslmode" not in params and "ssl" in found:
        # pgjdbc: ssl=true (or ssl with no value) without sslmode is verify-full; false is prefer
        if found["ssl"] == "" or _boolean("ssl", found["ssl"]):
            params["sslmode"] = "verify-full"
    # pgjdbc's connectTimeout bounds the TCP connect, loginTimeout the whole login; libpq's
    # connect_timeout bounds the whole attempt on each host: the stricter of the two, whole
    # seconds, rounded up. 0 is "no limit" in all three.
    timeouts = [
        math.ceil(_seconds(name, found[name], fraction=name == "loginTimeout"))
        for name in ("connectTimeout", "loginTimeout")
        if name in found
    ]
    if any(timeouts):
        params["connect_timeout"] = str(min(t for t in timeouts if t))
    elif timeouts:
        params["connect_timeout"] = "0"
    options = []
    if found.get("currentSchema"):
        # pgjdbc sends it as search_path in the startup packet; libpq passes it in options.
        options.append("-c search_path=" + _options_escaped(found["currentSchema"]))
    if found.get("options"):
        options.append(found["options"])
    if options:
        params["options"] = " ".join(options)
    return params


def _conninfo_quoted(value: str) -> str:
    """A value in libpq's conninfo syntax: in single quotes, backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def jdbc_to_conninfo(jdbc_url: str, user: Optional[str] = None) -> str:
    """libpq conninfo string for a pgjdbc URL (see `jdbc_to_params`; password passed
    separately). `psycopg.conninfo.conninfo_to_dict` gives back `jdbc_to_params`."""
    return " ".join(
        f"{keyword}={_conninfo_quoted(value)}"
        for keyword, value in jdbc_to_params(jdbc_url, user).items()
    )


def check_libpq(params: dict[str, str], version: int) -> None:
    """ValueError when the libpq psycopg runs on (`psycopg.pq.version()`, e.g. 170002) is too
    old for a keyword (or value) of `params`: it would fail with a less clear message, or, for
    an older libpq that ignores it, silently not honour it."""
    major = version // 10000
    for keyword, value in params.items():
        for need in (keyword, f"{keyword}={value}"):
            since = LIBPQ_SINCE.get(need)
            if since and major < since:
                raise ValueError(
                    f"the JDBC URL asks for libpq's {need}, which needs libpq {since} or newer; "
                    f"psycopg here runs on libpq {major}: install psycopg[binary] (it brings "
                    "its own libpq) or a newer libpq"
                )


def add_connection_arguments(parser, required: bool = True) -> None:
    """--db-url, --db-user (default $PGUSER), and --password-env (default PGPASSWORD) or
    --password-file. `required=False` for a command that can run without a database URL (a
    --demo)."""
    parser.add_argument(
        "--db-url",
        required=required,
        help="jdbc:postgresql://host:port/database[?parameters], the sink's URL; its parameters "
        "apply to the Python side too (README.md, The database URL)",
    )
    parser.add_argument("--db-user", default=os.environ.get("PGUSER"))
    # argparse refuses both flags given together ("not allowed with argument ...").
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--password-env",
        default="PGPASSWORD",
        help="environment variable holding the database password (default PGPASSWORD), read "
        "where the sink runs: on a cluster, every TaskManager needs it",
    )
    source.add_argument(
        "--password-file",
        help="file holding the database password (e.g. a mounted Kubernetes secret), read "
        "where the sink runs, at every connection; replaces --password-env",
    )


class CannotConnect(psycopg.OperationalError):
    """`connect` opened no session: the message says, in one line, which check failed (TLS
    certificate verification, the host name, the server requiring TLS, the password, ...)
    and what to do; the driver's own error is its `__cause__`. Nothing but the login reached
    the server."""


def _connect_reason(error_text: str) -> str:
    """libpq's reason for the last failed attempt: what follows "failed: " in its
    "connection to server at ... failed: REASON" (one per host tried), else its first line."""
    reasons = re.findall(r"connection to server (?:at|on) .*? failed: (.*)", error_text)
    text = reasons[-1] if reasons else error_text.strip().splitlines()[0]
    return re.sub(r"^(FATAL|ERROR):\s+", "", text.strip())


def explain_connect_failure(error_text: str, params: dict[str, str], password_from: str) -> str:
    """One line for a failed connect: which check failed and what to do. The TLS checks
    are told apart because each needs a different fix (another CA file, another host name,
    TLS in the URL); `params` are the connection's libpq keywords (no password in them);
    `password_from` says where the password came from (`$PGPASSWORD`, `the file ...`)."""
    reason = _connect_reason(error_text)
    sslmode = params.get("sslmode", "prefer")
    rootcert = params.get("sslrootcert", "~/.postgresql/root.crt")
    if "certificate verify failed" in error_text:
        return (
            f"TLS certificate verification failed: the server's certificate does not verify "
            f"against the CA in sslrootcert={rootcert} (libpq: {reason}). Give sslrootcert the "
            "CA file that signed the server's certificate"
        )
    mismatch = re.search(r"server certificate for (.*) does not match host name (\S+)", error_text)
    if mismatch:
        return (
            f"TLS host name mismatch: the server's certificate is for {mismatch.group(1)}, not "
            f"for the host {mismatch.group(2)} the URL connects to. Connect through a host name "
            "or address the certificate holds (its subjectAltName), or have a certificate issued "
            "for this one"
        )
    if "root certificate file" in error_text and "does not exist" in error_text:
        return (
            f"TLS certificate verification cannot start: {reason}. Give sslrootcert the path "
            "of the CA file that signed the server's certificate (PEM; the Java sink reads the "
            "same path)"
        )
    if "no encryption" in error_text and "pg_hba.conf" in error_text:
        return (
            f"the server requires TLS: it refuses a connection without encryption "
            f"(sslmode={sslmode} here; server: {reason}). Add "
            "sslmode=verify-full&sslrootcert=/path/to/the-servers-ca.pem to the URL"
        )
    if "server does not support SSL" in error_text:
        return (
            f"the server does not offer TLS, and the URL requires it (sslmode={sslmode}): "
            "turn on ssl in the server's postgresql.conf, or connect to a server that has it"
        )
    if "Connection refused" in reason:
        return (
            f"nothing accepts connections at host {params.get('host')} port {params.get('port')} "
            f"({reason}): is PostgreSQL running there and listening on that address "
            "(listen_addresses, a firewall)?"
        )
    if "password authentication failed" in error_text:
        return (
            f"authentication failed ({reason}): check --db-user and the password in {password_from}"
        )
    return reason


def read_password(password_env: Optional[str] = "PGPASSWORD", password_file=None) -> Optional[str]:
    """The password from the file if one is given (a trailing newline dropped, as the Java sink
    does), else from the environment variable (None when unset, as libpq then looks further).
    ValueError naming the file, never its content, when it cannot be read or is empty."""
    if password_file is None:
        return os.environ.get(password_env) if password_env else None
    try:
        with open(password_file, encoding="utf-8") as handle:
            value = handle.read().rstrip("\r\n")
    except OSError as error:
        raise ValueError(
            f"cannot read the password file {password_file}: {error.strerror or error}"
        ) from None
    if not value:
        raise ValueError(f"the password file {password_file} is empty")
    return value


def connect(
    db_url: str,
    db_user: Optional[str] = None,
    password_env: Optional[str] = "PGPASSWORD",
    password_file=None,
    **kwargs,
):
    """A psycopg connection through the URL's parameters, with the password from
    `password_file` if given, else from `password_env` (`read_password`). `kwargs` are
    psycopg.connect's: connection options (autocommit, ...) and libpq keywords, which are
    defaults the URL overrides (it is the one connection definition), except `options`: the
    caller's come first, the URL's after them (PostgreSQL takes the last -c of a setting, as for
    the sink's). `CannotConnect` when no session opens, saying which check failed."""
    params = jdbc_to_params(db_url, db_user)
    check_libpq(params, psycopg.pq.version())
    if "options" in kwargs and "options" in params:
        params["options"] = f"{kwargs.pop('options')} {params['options']}"
    password = read_password(password_env, password_file)
    try:
        return psycopg.connect(password=password, **{**kwargs, **params})
    except psycopg.OperationalError as error:
        password_from = f"the file {password_file}" if password_file else f"${password_env}"
        explained = explain_connect_failure(str(error), params, password_from)
        raise CannotConnect(f"cannot connect to {_shown(db_url)}: {explained}") from error
