"""The gateway's TLS certificate, made here instead of by LocalStack.

LocalStack serves HTTP and HTTPS on one port and, at every start, loads ``server.test.pem`` (key and certificate in
one PEM) from ``CUSTOM_SSL_CERT_PATH`` or its cache directory. When the file is missing it either downloads one
(never here: ``SKIP_SSL_CERT_DOWNLOAD=1``, and there is no internet) or makes one with pyOpenSSL's ``X509`` API,
which pyOpenSSL 26 removed: the start-up then dies with ``'X509' object has no attribute 'add_extensions'``. So an
``on_infra_start`` hook, which runs before the gateway loads the certificate, writes a self-signed one with
``cryptography`` (already in LocalStack's lock file) wherever LocalStack will look. ``cloud.py`` points
``CUSTOM_SSL_CERT_PATH`` into the instance's directory, so the file is made once per instance and nothing outside
the repository is read or written.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from localstack.runtime import hooks

# A certificate closer than this to its end is replaced at the next start.
RENEW_BEFORE = datetime.timedelta(days=30)
VALIDITY = datetime.timedelta(days=365)
HOST_NAMES = ("localhost", "localhost.localstack.cloud")


def write_certificate(path: Path, now: datetime.datetime | None = None) -> None:
    """A P-256 key and a self-signed server certificate for localhost and 127.0.0.1, in one PEM file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    alternative_names: list[x509.GeneralName] = [x509.DNSName(host) for host in HOST_NAMES]
    alternative_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(key_pem + certificate.public_bytes(serialization.Encoding.PEM))
    temporary.chmod(0o600)
    temporary.replace(path)


def needs_renewal(path: Path, now: datetime.datetime | None = None) -> bool:
    """Missing, unreadable, or expiring within :data:`RENEW_BEFORE`."""
    from cryptography import x509

    now = now or datetime.datetime.now(datetime.UTC)
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return True
    return certificate.not_valid_after_utc - now < RENEW_BEFORE


@hooks.on_infra_start()
def ensure_gateway_certificate() -> None:
    from localstack.utils.ssl import get_cert_pem_file_path

    path = Path(get_cert_pem_file_path())
    # LocalStack rewrites <path>.key and <path>.crt from this file at every start.
    if needs_renewal(path):
        write_certificate(path)
