"""`driftloop rollback` against the deployed registry: the champion moves back, and the deployed API serves the
previous version after its refresh interval (``serving.refresh_seconds``, 5 s in the local stage), without a
redeploy. The second test rolls forward again with ``--to``, leaving the champion as it found it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cli.main import main
from tests.integration.support import REFRESH_TIMEOUT, Deployed, as_instances, wait_for

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Champions:
    newer: str
    older: str


@pytest.fixture(scope="module")
def champions(deployed: Deployed) -> Champions:
    """The champion and the one it replaced (a training run makes one when there was only one champion)."""
    deployed.wait_until_idle()
    champion = deployed.champion()
    while champion is None or champion.previous_version is None:
        run = deployed.run("it-another-champion", {"trigger": {"source": "manual", "reason": "integration: rollback"}})
        assert run.output.get("promotion", {}).get("promoted"), run
        champion = deployed.champion()
    assert champion.previous_version is not None
    return Champions(newer=champion.version, older=champion.previous_version)


def serves(deployed: Deployed, version: str) -> str:
    return wait_for(
        f"the API to serve {version}",
        lambda: version if deployed.api.served_version() == version else None,
        timeout=REFRESH_TIMEOUT,
        seen=deployed.api.served_version,
    )


def test_rollback_puts_the_previous_champion_back_and_the_api_serves_it(
    deployed: Deployed, champions: Champions, local_aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    serves(deployed, champions.newer)
    bucket = deployed.deployment.model_bucket

    code = main(["rollback", "--bucket", bucket, "--reason", "integration: error rate doubled"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0] == f"rolled back: champion is now {champions.older} (was {champions.newer})"
    champion = deployed.champion()
    assert champion is not None
    assert (champion.version, champion.previous_version) == (champions.older, champions.newer)
    decision = deployed.registry.decisions()[-1]
    assert (decision.action, decision.version, decision.reasons) == (
        "rolled_back", champions.older, ("integration: error rate doubled",)
    )  # fmt: skip
    assert decision.details == {"previous_version": champions.newer, "by": "driftloop rollback"}
    assert champion.decision_id == decision.id
    # SageMaker's model registry follows: the rolled-back version rejected, the one put back approved.
    assert deployed.model_package(champions.newer)["ModelApprovalStatus"] == "Rejected"
    assert deployed.model_package(champions.older)["ModelApprovalStatus"] == "Approved"

    serves(deployed, champions.older)
    from training.synthetic import generate

    assert deployed.api.predict(as_instances(generate(1, seed=3)))["model_version"] == champions.older
    assert main(["history", "--bucket", bucket]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert f"rolled_back {champions.older}" in last
    assert f"[was {champions.newer}] integration: error rate doubled" in last


def test_rollback_to_a_version_makes_it_the_champion_again(
    deployed: Deployed, champions: Champions, local_aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = deployed.deployment.model_bucket

    code = main(["rollback", "--bucket", bucket, "--to", champions.newer, "--reason", "integration: fixed"])

    assert code == 0, capsys.readouterr()
    champion = deployed.champion()
    assert champion is not None
    assert (champion.version, champion.previous_version) == (champions.newer, champions.older)
    assert deployed.model_package(champions.newer)["ModelApprovalStatus"] == "Approved"
    assert deployed.model_package(champions.older)["ModelApprovalStatus"] == "Rejected"
    serves(deployed, champions.newer)
