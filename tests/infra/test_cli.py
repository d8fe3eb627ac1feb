"""The driftloop CLI's registry commands, in-process against moto (rollback, history, unlock), and its approval
commands against stubbed AWS clients, and its API calls against a local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from functions.common.bundle import pack_archive
from functions.common.registry import Registry, new_version_id
from functions.workflow.lock import RunLock
from functions.workflow.steps import APPROVAL_DENIED
from infra.cli import main, rollback_target
from tests.plugins.aws import MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STOPPED = "arn:aws:states:us-east-1:000000000000:execution:driftloop-dev-training:stopped-by-hand"


@pytest.fixture
def archive(trained_bundle: Path, tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    pack_archive(trained_bundle, path)
    return path


@pytest.fixture
def champions(registry: Registry, archive: Path) -> list[str]:
    """Three versions promoted in turn: v1, v2, then v3 is live."""
    versions = []
    for _ in range(3):
        version = new_version_id()
        registry.register(version, archive)
        registry.promote(version, expected=registry.champion())
        versions.append(version)
    return versions


def cli(*args: str) -> int:
    return main([*args, "--bucket", MODEL_BUCKET])


def live(registry: Registry) -> str | None:
    champion = registry.champion()
    return champion.version if champion else None


def test_rollback_goes_back_to_the_previous_champion_and_records_it(
    registry: Registry, champions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, v2, v3 = champions

    assert cli("rollback", "--reason", "v3 doubles the error rate") == 0

    assert live(registry) == v2
    assert capsys.readouterr().out == f"rolled back: champion is now {v2} (was {v3})\n"
    decision = registry.decisions()[-1]
    assert (decision.action, decision.version, decision.reasons) == ("rolled_back", v2, ("v3 doubles the error rate",))
    assert decision.details == {"previous_version": v3, "by": "driftloop rollback"}
    champion = registry.champion()
    assert champion is not None and champion.previous_version == v3 and champion.decision_id == decision.id


def test_rolling_back_twice_goes_two_champions_back_not_forward_again(registry: Registry, champions: list[str]) -> None:
    v1, _, _ = champions
    assert cli("rollback") == 0

    # The pointer's previous_version is now the rolled-back v3; the decision record says v1 came before v2.
    assert cli("rollback") == 0

    assert live(registry) == v1
    assert [d.action for d in registry.decisions()][-2:] == ["rolled_back", "rolled_back"]


def test_rollback_to_a_named_version(registry: Registry, champions: list[str]) -> None:
    v1, _, v3 = champions

    assert cli("rollback", "--to", v1) == 0

    assert live(registry) == v1
    assert registry.decisions()[-1].details["previous_version"] == v3


@pytest.mark.parametrize(
    ("to", "message"),
    [
        (
            "v20990101-000000-abcdef",
            "cannot roll back to v20990101-000000-abcdef: no such version is registered "
            "(driftloop versions lists them)",
        ),
        ("latest", "--to 'latest' is not a version id (like v20261127-111717-3f9a2c)"),
    ],
)
def test_rollback_refuses_an_unknown_or_malformed_version_and_changes_nothing(
    registry: Registry, champions: list[str], capsys: pytest.CaptureFixture[str], to: str, message: str
) -> None:
    before = registry.decisions()

    assert cli("rollback", "--to", to) == 1

    assert capsys.readouterr().err == f"driftloop: {message}\n"
    assert live(registry) == champions[-1]
    assert registry.decisions() == before


def test_rollback_to_the_live_version_is_refused(
    registry: Registry, champions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("rollback", "--to", champions[-1]) == 1
    assert capsys.readouterr().err == f"driftloop: {champions[-1]} is already the champion\n"


def test_rollback_without_a_previous_champion_says_so(
    registry: Registry, archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("rollback") == 1
    assert "no champion to roll back from" in capsys.readouterr().err

    only = new_version_id()
    registry.register(only, archive)
    registry.promote(only, expected=None)
    assert cli("rollback") == 1
    assert f"{only} is the only champion there has been" in capsys.readouterr().err


def test_rollback_loses_cleanly_when_the_champion_changes_meanwhile(
    registry: Registry, champions: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = registry.champion()
    registry.promote(champions[0], expected=stale)
    monkeypatch.setattr(Registry, "champion", lambda self: stale)

    assert cli("rollback") == 1

    assert "the champion changed while rolling back" in capsys.readouterr().err
    monkeypatch.undo()
    assert live(registry) == champions[0]


def test_history_shows_triggers_skips_and_rollbacks(
    registry: Registry, champions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, v2, v3 = champions
    trigger = {"source": "alarm", "alarm_name": "driftloop-dev-drift"}
    registry.record("triggered", "v20990101-000000-000001", ["run started by trigger alarm"], {"trigger": trigger})
    registry.record("skipped", None, ["another run is in progress"], {"trigger": {"source": "schedule"}})
    cli("rollback")
    capsys.readouterr()

    assert cli("history") == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(registry.decisions())
    assert lines[-3].split(maxsplit=1)[1] == (
        "triggered   v20990101-000000-000001  [alarm driftloop-dev-drift] run started by trigger alarm"
    )
    assert lines[-2].split(maxsplit=1)[1] == (
        "skipped     -                        [schedule] another run is in progress"
    )
    assert lines[-1].split(maxsplit=1)[1] == f"rolled_back {v2:<24} [was {v3}] rolled back by hand"


def test_the_rollback_target_replays_promotions_and_rollbacks() -> None:
    new = Registry.new_decision
    history = [new("promoted", "a"), new("promoted", "b"), new("rolled_back", "a")]
    assert rollback_target(history, "a") is None
    history += [new("promoted", "c"), new("promoted", "c"), new("promoted", "d")]
    assert rollback_target(history, "d") == "c"
    assert rollback_target([*history, new("rolled_back", "a")], "a") is None
    assert rollback_target([*history, new("rolled_back", "b")], "b") == "d"
    assert rollback_target([new("rejected", "x")], "x") is None


def test_unlock_releases_the_lock_of_a_stopped_execution_and_only_that_one(
    s3: S3Client, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = RunLock(s3, MODEL_BUCKET, registry.prefix, timeout=timedelta(hours=2))
    now = datetime.now(UTC)
    held = lock.acquire(
        STOPPED, started_at=now, now=now, trigger={"source": "manual"}, version="v1", cooldown=timedelta(0)
    )
    assert held.acquired

    assert cli("unlock", "--execution", f"{STOPPED}-other") == 1
    assert "does not hold the run lock" in capsys.readouterr().err
    still = lock.read()
    assert still is not None and still.state == "held"

    assert cli("unlock", "--execution", STOPPED) == 0
    released = lock.read()
    assert released is not None
    assert (released.state, released.outcome) == ("released", "released by hand")
    assert f"released by {STOPPED}" in capsys.readouterr().out


# -- approval -----------------------------------------------------------------------------------------------------

OPERATOR = "arn:aws:sts::000000000000:assumed-role/operators/alice"


@pytest.fixture
def approval_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Stubber]]:
    """Stubbed STS and Step Functions clients, as the CLI's boto3.client returns them."""
    session = botocore.session.get_session()
    clients = {
        name: session.create_client(
            name, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        for name in ("sts", "stepfunctions")
    }
    monkeypatch.setattr(boto3, "client", lambda name, **_: clients[name])
    stubs = {name: Stubber(client) for name, client in clients.items()}
    for stub in stubs.values():
        stub.activate()
    yield stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()


def test_approve_sends_task_success_naming_the_caller_and_the_note(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    approval_api["sts"].add_response(
        "get_caller_identity", {"Arn": OPERATOR, "Account": "000000000000", "UserId": "AIDEXAMPLE"}
    )
    approval_api["stepfunctions"].add_response(
        "send_task_success",
        {},
        {"taskToken": "token-1", "output": json.dumps({"approved": True, "by": OPERATOR, "note": "looks good"})},
    )
    assert main(["approve", "--token", "token-1", "--note", "looks good"]) == 0
    assert f"approved by {OPERATOR}" in capsys.readouterr().out


def test_deny_fails_the_task_with_the_approval_denied_error_and_the_reason(approval_api: dict[str, Stubber]) -> None:
    approval_api["stepfunctions"].add_response(
        "send_task_failure",
        {},
        {"taskToken": "token-2", "error": APPROVAL_DENIED, "cause": "recall dropped on the holdout"},
    )
    assert main(["deny", "--token", "token-2", "--reason", "recall dropped on the holdout"]) == 0


def test_deny_refuses_a_blank_reason_and_sends_nothing(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deny", "--token", "token-2", "--reason", "  "]) == 1
    assert "--reason must say why" in capsys.readouterr().err


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_answering_a_request_that_no_longer_waits_says_so(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str], code: str
) -> None:
    approval_api["stepfunctions"].add_client_error("send_task_failure", service_error_code=code)
    assert main(["deny", "--token", "stale", "--reason", "too late"]) == 1
    assert f"no longer waiting ({code})" in capsys.readouterr().err


# -- API calls ------------------------------------------------------------------------------------------------


@pytest.fixture
def api_server() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """An HTTP server that records each POST (path, headers, body) and answers 202."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, object]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            answer = json.dumps({"accepted": 1}).encode()
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/", received
    server.shutdown()
    thread.join()


def test_feedback_posts_the_labels_signed_with_sigv4_to_the_feedback_route(
    api_server: tuple[str, list[dict[str, object]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, received = api_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    labels = {"prediction_id": "0123456789abcdef0123456789abcdef", "label": "1"}

    assert main(["feedback", "--url", url, "--json", json.dumps(labels), "--sign"]) == 0

    [request] = received
    assert request["path"] == "/v1/feedback"
    assert request["body"] == labels
    headers = request["headers"]
    assert isinstance(headers, dict)
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "HTTP 202" in capsys.readouterr().out
