"""Certificates for lesson 09, made at run time with the `cryptography` package.

    ca = make_ca("Course CA")
    server = ca.issue("localhost", hosts=["localhost", "127.0.0.1"])   # a server certificate
    alice = ca.issue("alice")                                          # a client certificate
    print(describe(server.cert_pem))

`make_pki()` makes the whole set the lesson uses in one call. Keys never leave
this process except as files in a private temporary folder, which is removed
when the process (the kernel) exits; a folder left behind by a process that was
killed (SIGKILL skips exit handlers) is removed the next time any process makes
its own folder. A CA's private key is never written to disk: it only signs, in
memory. Nothing here is ever committed, and no `openssl` command runs: every
step is a few lines of Python you can read.

Keys are elliptic-curve (P-256): as safe as RSA-3072 and made in a millisecond.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_folder: Path | None = None
PREFIX = "grpc-course-tls-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True


def remove_stale_folders() -> list[Path]:
    """Remove the key folders of this user's processes that died without cleaning up."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-")[0]
        try:
            mine = path.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def folder() -> Path:
    """The private temporary folder that holds this process's keys and certificates.

    Its name carries the process id, so that a later process can tell a folder whose
    owner was killed (the kernel restarted with SIGKILL) and remove it.
    """
    global _folder
    if _folder is None:
        remove_stale_folders()
        _folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))  # mode 0700
        atexit.register(shutil.rmtree, _folder, ignore_errors=True)
    return _folder


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(name: str, cert_pem: bytes, key_pem: bytes | None) -> tuple[Path, Path]:
    """Write the certificate, and the key unless it is None (a CA's key stays in memory)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    cert_path, key_path = folder() / f"{safe}.crt", folder() / f"{safe}.key"
    cert_path.write_bytes(cert_pem)
    if key_pem is not None:
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
    return cert_path, key_path


@dataclass(frozen=True)
class Certificate:
    """A certificate and its private key, as PEM bytes (what gRPC takes) and as files."""

    name: str
    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    cert_path: Path = field(repr=False)
    key_path: Path = field(repr=False)

    def summary(self) -> str:
        return describe(self.cert_pem)


@dataclass(frozen=True)
class Authority:
    """A certificate authority (CA): it signs certificates that its clients then trust."""

    name: str
    cert_pem: bytes
    cert_path: Path = field(repr=False)
    _key: ec.EllipticCurvePrivateKey = field(repr=False)

    def issue(self, name: str, hosts: list[str] | None = None, *, days: int = 1,
              start: dt.datetime | None = None, file_name: str | None = None,
              server: bool | None = None) -> Certificate:
        """Sign a certificate for `name`, valid `days` days from `start` (default: now).

        With `hosts` (names and IP addresses) it is a server certificate: `hosts` go in
        its Subject Alternative Name, which is what a client compares with the host it
        dialled. Without, it is a client certificate whose subject names `name`, unless
        `server=True`: a server certificate with no SAN, named only by its subject.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        issuer = x509.load_pem_x509_certificate(self.cert_pem)
        not_before = start or _now() - dt.timedelta(minutes=5)  # tolerate a skewed clock
        is_server = bool(hosts) if server is None else server
        usage = ExtendedKeyUsageOID.SERVER_AUTH if is_server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if hosts:
            builder = builder.add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]),
                                            critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), _pem(key)
        cert_path, key_path = _write(file_name or name, cert_pem, key_pem)
        return Certificate(name, cert_pem, key_pem, cert_path, key_path)

    def summary(self) -> str:
        return describe(self.cert_pem)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_ca(name: str) -> Authority:
    """A new certificate authority with a self-signed certificate, valid for 30 days."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = _now() - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)  # self-signed: a CA vouches for itself
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, _ = _write(name, cert_pem, None)  # its key only signs, here in memory
    return Authority(name, cert_pem, cert_path, key)


def describe(cert_pem: bytes) -> str:
    """A short summary of a PEM certificate: subject, SAN, issuer, validity."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = ", ".join([*names.get_values_for_type(x509.DNSName),
                         *map(str, names.get_values_for_type(x509.IPAddress))])
    except x509.ExtensionNotFound:
        san = "(none)"
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    state = "EXPIRED" if end < _now() else "not yet valid" if start > _now() else "valid"
    return "\n".join([
        f"subject: {cert.subject.rfc4514_string()}",
        f"SAN:     {san}",
        f"issuer:  {cert.issuer.rfc4514_string()}",
        f"valid:   {start:%Y-%m-%d} to {end:%Y-%m-%d} ({state})",
    ])


@dataclass(frozen=True)
class Pki:
    """Everything lesson 09 uses, made in one call by `make_pki()`."""

    ca: Authority  # the course CA: clients and servers trust it
    server: Certificate  # localhost and 127.0.0.1, signed by `ca`
    alice: Certificate  # a client certificate signed by `ca`
    bob: Certificate  # another client of `ca`
    expired: Certificate  # a server certificate for localhost that expired yesterday
    other_ca: Authority  # an unrelated CA nobody here trusts
    other_server: Certificate  # localhost and 127.0.0.1, signed by `other_ca`
    mallory: Certificate  # a client certificate signed by `other_ca`


SERVER_HOSTS = ["localhost", "127.0.0.1"]


def make_pki(prefix: str = "") -> Pki:
    """A course CA with a server and two client certificates, an expired server
    certificate, and an unrelated CA with a server and a client of its own.

    `prefix` keeps the file names of several sets apart in the temporary folder.
    """
    ca, other_ca = make_ca(f"{prefix}Course CA"), make_ca(f"{prefix}Other CA")
    two_days_ago = _now() - dt.timedelta(days=2)
    return Pki(
        ca=ca,
        server=ca.issue("localhost", SERVER_HOSTS, file_name=f"{prefix}server"),
        alice=ca.issue("alice", file_name=f"{prefix}alice"),
        bob=ca.issue("bob", file_name=f"{prefix}bob"),
        expired=ca.issue("localhost", SERVER_HOSTS, start=two_days_ago, days=1,
                         file_name=f"{prefix}expired"),
        other_ca=other_ca,
        other_server=other_ca.issue("localhost", SERVER_HOSTS, file_name=f"{prefix}other-server"),
        mallory=other_ca.issue("mallory", file_name=f"{prefix}mallory"),
    )
