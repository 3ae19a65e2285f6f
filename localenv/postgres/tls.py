"""A throwaway PostgreSQL that takes TLS connections only, for testing `sslmode=verify-full`.

Certificates are made with the `openssl` command when asked for: a CA, a server certificate
signed by it for the names given (subjectAltName; 127.0.0.1 by default), and a second CA that
signed nothing here (the wrong `sslrootcert`). The server runs with `ssl = on` and a
`pg_hba.conf` of `hostssl ... scram-sha-256` lines only: a connection without TLS finds no
entry and is refused by the server itself, not by a client's choice.

    certificates = make_certificates(tmp_dir)
    with tls_server(certificates) as server:
        db = server.create_database("payments")
        url = verify_full_url(db, certificates.ca)   # jdbc:...?sslmode=verify-full&sslrootcert=

The demo and the other tests keep their plain loopback server (`LocalPostgres`).
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from localenv.postgres import Database, LocalPostgres, PostgresSetupError

# Only TLS, only passwords checked by SCRAM, from anywhere the server listens (loopback).
HOSTSSL_ONLY = b"""\
local    all all              scram-sha-256
hostssl  all all 127.0.0.1/32 scram-sha-256
hostssl  all all ::1/128      scram-sha-256
"""


@dataclass(frozen=True)
class Certificates:
    """PEM files in one directory. `ca` signed the server's certificate (the right
    `sslrootcert`); `other_ca` signed nothing the server holds (a wrong one)."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    names: tuple[str, ...]


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=str(cwd), capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise PostgresSetupError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _new_ca(directory: Path, name: str) -> tuple[Path, Path]:
    # P-256 keys: made in milliseconds, and read by libpq and by Java alike.
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=tpc test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem", directory / f"{name}.key"


def make_certificates(directory: Path, names: tuple[str, ...] = ("127.0.0.1",)) -> Certificates:
    """A CA, a server certificate it signs for `names` (IP addresses or DNS names, all in
    subjectAltName, the first also the CN), and an unrelated second CA, under `directory`."""
    if shutil.which("openssl") is None:
        raise PostgresSetupError(
            "the openssl command is not installed (Debian: apt-get install openssl; .ci/setup "
            "installs it): the TLS tests make their certificates with it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _new_ca(directory, "ca")
    other_ca, _ = _new_ca(directory, "other-ca")
    alt_names = ",".join(
        f"IP:{name}" if name.replace(".", "").isdigit() or ":" in name else f"DNS:{name}"
        for name in names
    )
    (directory / "server.ext").write_text(
        f"subjectAltName={alt_names}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={names[0]}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name,
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
        cwd=directory,
    )  # fmt: skip
    return Certificates(
        ca=ca,
        other_ca=other_ca,
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        names=tuple(names),
    )


def tls_server(certificates: Certificates, **settings) -> LocalPostgres:
    """A `LocalPostgres` (not started) with TLS on and `pg_hba.conf` allowing TLS only;
    `settings` are LocalPostgres's own (max_prepared_transactions, ...)."""
    extra = dict(settings.pop("extra_settings", None) or {})
    extra.update(ssl="on", ssl_cert_file="server.crt", ssl_key_file="server.key")
    return LocalPostgres(
        extra_settings=extra,
        data_files={
            "server.crt": certificates.server_cert.read_bytes(),
            "server.key": certificates.server_key.read_bytes(),
            "pg_hba.conf": HOSTSSL_ONLY,
        },
        **settings,
    )


def verify_full_url(db: Database, ca: Path, host: Optional[str] = None) -> str:
    """`db`'s JDBC URL (through `host` instead of its own, if given) asking both drivers to
    verify the server against `ca`: `?sslmode=verify-full&sslrootcert=...`."""
    address = f"{host or db.host}:{db.port}"
    return (
        f"jdbc:postgresql://{address}/{db.name}"
        f"?sslmode=verify-full&sslrootcert={quote(str(ca), safe='/')}"
    )
