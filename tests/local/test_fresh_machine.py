"""A local AWS starts on a machine that has never run LocalStack: nothing outside the repository is read or needed."""

from __future__ import annotations

import socket
import ssl
import uuid
from pathlib import Path

import pytest
from cryptography import x509

from localcloud import cloud

pytestmark = pytest.mark.integration


def test_local_aws_starts_with_an_empty_home_and_serves_its_own_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(cloud.ENDPOINT_VARIABLE, raising=False)
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    instance = cloud.Layout().instance(name)
    started = cloud.start(name, port=0, services=("s3",))
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", started.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            served = tls.getpeercert(binary_form=True)
    finally:
        cloud.stop(name)
    assert served is not None
    made = x509.load_pem_x509_certificate(instance.certificate.read_bytes())
    assert x509.load_der_x509_certificate(served) == made
    assert list(home.iterdir()) == []
