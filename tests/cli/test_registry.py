"""The registry commands, in-process against moto: rollback, history, unlock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cli.main import main
from functions.common.bundle import pack_archive
from functions.common.registry import Registry, new_version_id
from functions.workflow.lock import RunLock
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


def test_versions_show_prints_the_model_card_as_readable_text(
    registry: Registry, archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = new_version_id()
    registry.register(version, archive, lineage={"training_job_name": "driftloop-test-job"})

    assert cli("versions", "--show", version) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"# Model card: {version}\n")
    assert "## Features" in out and "| contract | categorical |" in out
    assert "not scored by the workflow on a holdout" in out
    assert f"- version {version}, training job driftloop-test-job" in out


def test_versions_show_of_a_version_registered_before_model_cards_prints_its_record(
    registry: Registry, archive: Path, s3: S3Client, capsys: pytest.CaptureFixture[str]
) -> None:
    version = new_version_id()
    registry.register(version, archive, evaluation={"passed": True}, lineage={"training_job_name": "job-1"})
    s3.delete_object(Bucket=MODEL_BUCKET, Key=registry.layout.card_key(version))

    assert cli("versions", "--show", version) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"{version} was registered before model cards")
    assert "gate: passed" in out and "training job: job-1" in out


def test_versions_show_of_an_unknown_version_says_where_the_versions_are_listed(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("versions", "--show", "v20260101-000000-abcdef") != 0

    assert "unknown version 'v20260101-000000-abcdef': `driftloop versions` lists" in capsys.readouterr().err
