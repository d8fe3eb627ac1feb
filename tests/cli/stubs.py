"""Stubbed AWS clients for the CLI tests: what the CLI's ``boto3.client`` returns, answering from a Stubber."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber


def stubbed_clients(monkeypatch: pytest.MonkeyPatch, *names: str) -> Iterator[dict[str, Stubber]]:
    """A fixture's body: one stubbed client per service name; every queued response must have been used."""
    session = botocore.session.get_session()
    clients = {
        name: session.create_client(
            name, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        for name in names
    }
    monkeypatch.setattr(boto3, "client", lambda name, **_: clients[name])
    stubs = {name: Stubber(client) for name, client in clients.items()}
    for stub in stubs.values():
        stub.activate()
    yield stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()
