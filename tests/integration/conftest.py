"""Integration tests of the deployed app: ONE LocalStack instance (``local_cloud``) and ONE deployment per session.

- ``deployment`` (session): the four stacks of the ``local`` stage deployed with cdklocal onto ``local_cloud``,
  with base training data (``training.synthetic``, :data:`BASE_ROWS` rows) under ``<data bucket>/training-data/``.
- ``deployed`` (session): the same as a :class:`tests.integration.support.Deployed` (clients, registry, API).
- ``served_champion`` (module): the version the API serves, once there is a champion and the API has loaded it (a
  training run is started first if nothing was ever promoted, so a module also runs on its own).
- ``failure_notifications`` (session): an SQS queue subscribed to the workflow's failure topic.

The modules run in file order, which is deliberate: the deployment, then the workflow's paths (which leave two
promoted versions), the API, rollback, capture, the monitor (drifted traffic), and the alarms last, since drifted
traffic and the alarms start retraining runs on their own. Each test cleans up what it changes or reads the state
it needs (the champion, the lock) when it runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud import cloud
from localcloud.deploy import DeployError, Deployment, deploy
from tests.integration.support import Deployed, wait_for

TRAINING_DATA_KEY = "training-data/base.csv"
BASE_ROWS = 2000
BASE_SEED = 11
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """These tests run after every other test of the session. The tests of the local cloud itself (tests/local)
    share its one LocalStack instance: they run on it before the app is deployed into it, so none of them sees
    the deployment's background activity (the monitor's one-minute schedule, its alarms and retraining rule)."""
    ours = [item for item in items if item.path.is_relative_to(HERE)]
    items[:] = [item for item in items if not item.path.is_relative_to(HERE)] + ours


@pytest.fixture(scope="session")
def deployment(local_cloud: cloud.Cloud) -> Deployment:
    from training.synthetic import generate

    try:
        deployed = deploy(local_cloud)
    except DeployError as exc:
        pytest.fail(f"the local stage did not deploy: {exc}")
    body = generate(BASE_ROWS, seed=BASE_SEED).to_csv(index=False).encode()
    Deployed(local_cloud, deployed).s3.put_object(Bucket=deployed.data_bucket, Key=TRAINING_DATA_KEY, Body=body)
    return deployed


@pytest.fixture(scope="session")
def deployed(local_cloud: cloud.Cloud, deployment: Deployment) -> Deployed:
    return Deployed(local_cloud, deployment)


@pytest.fixture(scope="module")
def served_champion(deployed: Deployed) -> str:
    champion = deployed.champion()
    if champion is None:
        deployed.wait_until_idle()
        run = deployed.run("it-first-champion", {"trigger": {"source": "manual", "reason": "integration fixture"}})
        assert run.output.get("promotion", {}).get("promoted"), run
        champion = deployed.champion()
        assert champion is not None
    version = champion.version
    return wait_for(
        f"the API to serve the champion {version}",
        lambda: version if deployed.api.served_version() == version else None,
        timeout=60,
        seen=deployed.api.served_version,
    )


@pytest.fixture(scope="session")
def failure_notifications(deployed: Deployed) -> Iterator[Any]:
    """A queue that receives what the failure topic publishes (raw message delivery)."""
    sqs = deployed.client("sqs")
    sns = deployed.client("sns")
    queue_url = sqs.create_queue(QueueName="driftloop-it-failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(
        TopicArn=deployed.deployment.failure_topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    try:
        yield Notifications(sqs, queue_url)
    finally:
        sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)


class Notifications:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self.received: list[dict[str, Any]] = []

    def about(self, execution_arn: str, timeout: float = 30) -> dict[str, Any]:
        """The failure notification of one execution."""

        def probe() -> dict[str, Any] | None:
            for message in self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                self.received.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
            return next((item for item in self.received if item.get("execution") == execution_arn), None)

        return wait_for(
            f"the failure notification of {execution_arn}",
            probe,
            timeout=timeout,
            seen=lambda: [item.get("execution") for item in self.received],
        )
