"""`make demo`: the closed loop on this machine, with the real CDK app on a local AWS (no Docker, no account).

1. start a local AWS (LocalStack with driftloop's extension) and deploy the four stacks with cdklocal;
2. upload labelled data; the state machine trains version 1 for real (the training program runs as SageMaker
   would run the container), the gate passes it, it is promoted;
3. call the deployed API through LocalStack's API Gateway, including a request it must refuse;
4. the world changes: send drifted traffic and its ground truth; the monitor Lambda measures drift and quality;
5. CloudWatch's own alarm evaluation fires, EventBridge starts the retraining, the gate compares the challenger
   with the champion on the same fresh holdout, version 2 is promoted, and the API answers with it.

Every step prints what happened; any failure stops the demo with the step and the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pandas as pd

from cli.client import DEFAULT_CLIENT, api_key_value, get_json, post_json
from functions.common.registry import Registry
from functions.workflow import state, triggers
from localcloud import cloud as local_cloud
from localcloud.deploy import Deployment, deploy
from training import synthetic

INSTANCE = "demo"
PREFIX = "driftloop-local"
DRIFT_ALARM = f"{PREFIX}-data-drift"
QUALITY_ALARM = f"{PREFIX}-live-accuracy"
TRAINING_ROWS = 3000
DRIFTED_ROWS = 1500
BATCH = 100
# Feature distributions and the churn rule both move: the champion's answers get worse, and the monitor sees it.
CHANGED_WORLD = {"covariate_drift": 0.8, "concept_drift": 0.8}


class DemoFailed(Exception):
    pass


@dataclass
class Narrator:
    """Prints each step as it starts; keeps a timeline of the events that matter for the closing summary."""

    started: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    current: str = ""

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.current = title
        print(f"\n[{self.elapsed():6.1f}s] == {title}", flush=True)
        yield

    def say(self, text: str) -> None:
        print("          " + text.replace("\n", "\n          "), flush=True)

    def event(self, text: str) -> None:
        self.timeline.append((self.elapsed(), text))

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Loop:
    """The deployed app, seen through the AWS APIs a user would call."""

    def __init__(self, running: local_cloud.Cloud, deployment: Deployment) -> None:
        env = running.client_env()
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        self.deployment = deployment
        self.s3 = session.client("s3", endpoint_url=running.endpoint)
        self.sfn = session.client("stepfunctions", endpoint_url=running.endpoint)
        self.cloudwatch = session.client("cloudwatch", endpoint_url=running.endpoint)
        self.lambda_ = session.client("lambda", endpoint_url=running.endpoint)
        self.registry = Registry(self.s3, deployment.model_bucket)
        apigateway = session.client("apigateway", endpoint_url=running.endpoint)
        # The local stage's one client: the API wants a client's key on every route.
        self.api_key = api_key_value(apigateway, deployment.outputs, DEFAULT_CLIENT)

    def post(self, path: str, document: Any) -> tuple[int, Any]:
        """POST a JSON document to the deployed API with the client's key."""
        return post_json(self.deployment.api_url + path, json.dumps(document).encode(), api_key=self.api_key)

    def get(self, path: str) -> tuple[int, Any]:
        return get_json(self.deployment.api_url + path, api_key=self.api_key)

    def upload(self, key: str, frame: pd.DataFrame) -> None:
        self.s3.put_object(Bucket=self.deployment.data_bucket, Key=key, Body=frame.to_csv(index=False).encode())

    def executions(self) -> list[dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=self.deployment.state_machine_arn)["executions"]
        return sorted((dict(execution) for execution in listed), key=lambda execution: execution["startDate"])

    def finished(self, arn: str, timeout: float = 240) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            described = self.sfn.describe_execution(executionArn=arn)
            return None if described["status"] == "RUNNING" else dict(described)

        return wait_for(f"execution {arn.rsplit(':', 1)[-1]}", probe, timeout, interval=2.0)

    def alarm_state(self, name: str) -> str:
        alarms = self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        return alarms[0]["StateValue"] if alarms else "MISSING"

    def run_monitor(self) -> dict[str, Any]:
        response = self.lambda_.invoke(FunctionName=self.deployment.monitor_function, Payload=b"{}")
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise DemoFailed(f"the monitor failed: {payload}")
        return dict(payload)


def run(keep: bool = False) -> int:
    narrator = Narrator()
    running: local_cloud.Cloud | None = None
    try:
        with narrator.step("Start a local AWS: LocalStack without Docker, with driftloop's extension"):
            running = local_cloud.start(INSTANCE, port=0)
            narrator.event(f"local AWS up at {running.endpoint}")
            narrator.say(f"endpoint {running.endpoint} (log: {running.log_file})")
        with narrator.step("Deploy the CDK app (stage local: data, training, serving, monitoring) with cdklocal"):
            deployment = deploy(running)
            narrator.event("four stacks deployed with cdklocal")
            narrator.say(f"state machine {deployment.state_machine_arn.rsplit(':', 1)[-1]}, API {deployment.api_url}")
        loop = Loop(running, deployment)
        closed_loop(narrator, loop)
    except (DemoFailed, local_cloud.LocalCloudError) as exc:
        print(f"\nDEMO FAILED at step '{narrator.current}': {exc}", flush=True)
        return 1
    finally:
        if running is not None and running.managed and not keep:
            local_cloud.stop(INSTANCE)
            print("\nstopped the local AWS (make demo ARGS=--keep keeps it running)")
    print("\nTimeline")
    for elapsed, text in narrator.timeline:
        print(f"  {elapsed:6.1f}s  {text}")
    print(f"  {narrator.elapsed():6.1f}s  done")
    return 0


def closed_loop(narrator: Narrator, loop: Loop) -> None:
    with narrator.step("Upload labelled data and let the state machine train version 1 for real"):
        loop.upload("training-data/history.csv", synthetic.generate(TRAINING_ROWS, seed=1))
        first = start_and_finish(narrator, loop, {triggers.INPUT_KEY: {"source": triggers.MANUAL, "by": "make demo"}})
        v1 = champion_version(loop)
        if first["status"] != "SUCCEEDED" or v1 is None:
            raise DemoFailed(f"the first training run ended {first['status']}: {first.get('cause', '')[:500]}")
        narrator.say(f"champion: {v1}")
        narrator.event(f"{v1} trained by the state machine and promoted (trigger: manual)")

    with narrator.step("Call the deployed API through LocalStack's API Gateway"):
        sample = instances_of(synthetic.generate(2, seed=7))
        status, body = loop.post("/predict", {"instances": sample})
        expect(status == 200, f"POST /predict answered {status}: {body}")
        narrator.say(f"POST /predict -> {status}: answered by {body['model_version']}")
        narrator.event(f"API answered with {body['model_version']}; a malformed request got a 422")
        for prediction in body["predictions"]:
            narrator.say(f"  {prediction['prediction_id']}: label {prediction['label']} {prediction['probabilities']}")
        broken = dict(sample[0], tenure_months="twelve")
        status, body = loop.post("/predict", {"instances": [broken]})
        expect(status == 422, f"a bad request answered {status}: {body}")
        narrator.say(f"POST /predict with tenure_months='twelve' -> {status}: {body['details']}")

    with narrator.step(f"The world changes: {DRIFTED_ROWS} predictions on drifted data, then their ground truth"):
        drifted = synthetic.generate(DRIFTED_ROWS, seed=11, **CHANGED_WORLD)
        served = predict_all(loop, instances_of(drifted))
        correct = sum(str(p["label"]) == str(truth) for p, truth in zip(served, drifted[synthetic.TARGET], strict=True))
        narrator.say(f"served {len(served)} predictions; {correct / len(served):.0%} turn out to be right")
        narrator.event(f"{len(served)} drifted predictions served by {v1}, ground truth sent")
        send_feedback(loop, served, drifted[synthetic.TARGET].tolist())
        narrator.say("sent the true labels to POST /feedback (captured through Firehose into S3)")
        # The labelled-data pipeline keeps a rolling window: last month's labelled rows replace the old ones.
        loop.s3.delete_object(Bucket=loop.deployment.data_bucket, Key="training-data/history.csv")
        loop.upload("training-data/recent.csv", synthetic.generate(TRAINING_ROWS, seed=12, **CHANGED_WORLD))
        narrator.say(f"the labelled-data window rolls forward: training-data/ now holds {TRAINING_ROWS} recent rows")

    with narrator.step("The monitor Lambda compares the live window with the champion's training baseline"):
        summary = wait_for("captured predictions in the monitor's window", lambda: ready(loop.run_monitor()), 60, 3)
        narrator.say(
            f"{summary['captured']} captured, {summary['labelled']} labelled; largest drift: "
            f"{summary['max_drift_feature']} PSI {summary['max_feature_drift']:.2f}; prediction drift "
            f"{summary['prediction_drift']:.2f}; live quality {rounded(summary['quality'])}"
        )
        narrator.event(
            f"monitor: max PSI {summary['max_feature_drift']:.2f}, live quality {rounded(summary['quality'])}"
        )

    with narrator.step("CloudWatch evaluates the alarms; EventBridge starts the retraining"):
        before = {e["executionArn"] for e in loop.executions()}
        state = wait_for(
            f"{DRIFT_ALARM} to reach ALARM",
            lambda: "ALARM" if loop.alarm_state(DRIFT_ALARM) == "ALARM" else None,
            150,
            2,
        )
        narrator.say(f"{DRIFT_ALARM}: {state}; {QUALITY_ALARM}: {loop.alarm_state(QUALITY_ALARM)}")
        started = wait_for("an execution started by the alarm", lambda: new_executions(loop, before), 60, 1)
        narrator.say(f"EventBridge started {', '.join(e['name'] for e in started)}")
        narrator.event(f"{DRIFT_ALARM} in ALARM by CloudWatch's evaluation; EventBridge started {len(started)} run(s)")

    with narrator.step("The retraining run: data + labelled captures, challenger vs champion on the same holdout"):
        outcomes = [loop.finished(e["executionArn"]) for e in started]
        for outcome in outcomes:
            narrator.say(f"{outcome['name']}: {outcome['status']} -> {final_state(outcome)}")
            narrator.event(f"run {outcome['name'][:8]}: {final_state(outcome)[:90]}")
        v2 = champion_version(loop)
        for decision in loop.registry.decisions():
            if decision.action in ("promoted", "rejected") and decision.version != v1:
                # One reason per line: what the gate compared (rows left out, all scored rows, trusted rows).
                narrator.say(f"{decision.action} {decision.version or '-'}:")
                for reason in decision.reasons:
                    narrator.say(f"  - {reason}")
        expect(v2 is not None and v2 != v1, f"the challenger was not promoted (champion still {v1})")

    with narrator.step("The API answers with version 2, without a redeploy"):
        version = wait_for(f"the API to serve {v2}", lambda: serving(loop, sample, v2), 60, 2)
        narrator.say(f"POST /predict -> answered by {version}")
        narrator.event(f"API answered with {version}, no redeploy")

    with narrator.step("Summary"):
        summarise(narrator, loop)


def start_and_finish(narrator: Narrator, loop: Loop, payload: dict[str, Any]) -> dict[str, Any]:
    execution = loop.sfn.start_execution(stateMachineArn=loop.deployment.state_machine_arn, input=json.dumps(payload))
    narrator.say(f"started execution {execution['executionArn'].rsplit(':', 1)[-1]}")
    outcome = loop.finished(execution["executionArn"])
    narrator.say(f"{outcome['status']} -> {final_state(outcome)}")
    return outcome


def final_state(outcome: dict[str, Any]) -> str:
    output = json.loads(outcome.get("output") or "{}")
    for key, label in ((state.PROMOTION, "promoted"), (state.REJECTION, "rejected")):
        if isinstance(output.get(key), dict):
            return f"{label} {output[key].get('version')}"
    if isinstance(output.get(state.GUARD), dict) and not output[state.GUARD].get("acquired", True):
        return f"skipped: {output[state.GUARD].get('reason', '')}"
    return outcome.get("error") or "done"


def champion_version(loop: Loop) -> str | None:
    champion = loop.registry.champion()
    return champion.version if champion else None


def instances_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Request instances from labelled rows: no target, and null (JSON has no NaN) for a missing value."""
    features = frame.drop(columns=[synthetic.TARGET])
    return [
        {str(name): (None if pd.isna(value) else value) for name, value in row.items()}
        for row in features.to_dict(orient="records")
    ]


def predict_all(loop: Loop, instances: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    served: list[dict[str, Any]] = []
    for offset in range(0, len(instances), BATCH):
        status, body = loop.post("/predict", {"instances": instances[offset : offset + BATCH]})
        expect(status == 200, f"POST /predict answered {status}: {body}")
        served.extend(body["predictions"])
    return served


def send_feedback(loop: Loop, served: Sequence[dict[str, Any]], truths: Sequence[Any]) -> None:
    items = [{"prediction_id": p["prediction_id"], "label": str(t)} for p, t in zip(served, truths, strict=True)]
    for offset in range(0, len(items), BATCH):
        status, body = loop.post("/feedback", {"feedback": items[offset : offset + BATCH]})
        expect(status == 202, f"POST /feedback answered {status}: {body}")


def rounded(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in metrics.items()) or "none yet"


def ready(summary: dict[str, Any]) -> dict[str, Any] | None:
    return summary if summary.get("status") == "ok" else None


def new_executions(loop: Loop, before: set[str]) -> list[dict[str, Any]] | None:
    fresh = [e for e in loop.executions() if e["executionArn"] not in before]
    return fresh or None


def serving(loop: Loop, sample: list[dict[str, Any]], version: str | None) -> str | None:
    """``version`` once the API answers with it (it re-reads the champion every serving.refresh_seconds)."""
    status, body = loop.post("/predict", {"instances": sample[:1]})
    return version if status == 200 and body.get("model_version") == version else None


def summarise(narrator: Narrator, loop: Loop) -> None:
    champion = champion_version(loop)
    narrator.say(f"{'version':<26} {'algorithm':<16} {'roc_auc':>8}  live  gate")
    for record in loop.registry.list_versions():
        evaluation = record.evaluation or {}
        live = "*" if record.version == champion else " "
        gate = "passed" if evaluation.get("passed") else "rejected"
        narrator.say(
            f"{record.version:<26} {record.algorithm:<16} {record.metrics.get('roc_auc', 0):>8.3f}  {live:^4}  {gate}"
        )
    narrator.say("decisions:")
    for decision in loop.registry.decisions():
        trigger = triggers.Trigger.from_decision(decision.details)
        source = f" [{trigger.source}]" if trigger is not None else ""
        narrator.say(f"  {decision.time[11:19]} {decision.action:<11} {decision.version or '-'}{source}")
    status, health = loop.get("/health")
    narrator.say(f"GET /health -> {status}: {health}")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)
