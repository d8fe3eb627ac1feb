"""Deploy the real CDK app to a local AWS with cdklocal, and read back what it created.

The ``local`` stage is the same app as on AWS (same stacks, state machine, handlers, alarms, rules); its
``cdk.json`` overrides change only the training image reference (no ECR here) and timings that make the loop
observable in minutes (monitor every minute, alarms on one datapoint, a short cooldown).

LocalStack's CloudFormation reports a stack complete without the resources whose type it has no provider for (see
``localcloud/cloud.py``): after deploying, :func:`deploy` compares the templates' resource types with the providers
the instance has and refuses the deployment if any is missing, but for :data:`SKIPPED_TYPES`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from localcloud.cloud import DEFAULT_REGION, INFO_PATH, REPO, Cloud, LocalCloudError, fetch_json

STAGE = "local"
ACCOUNT = "000000000000"
CDKLOCAL = REPO / "node_modules" / ".bin" / "cdklocal"
# The CDK CLI prints a notice per run and jsii warns about Node 20: neither helps here.
QUIET = {
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
}
# Resource types the local stage may lack: LocalStack has no provider for them (nor has the extension), and the loop
# reads nothing of them.
SKIPPED_TYPES = frozenset({"AWS::CloudWatch::Dashboard"})


class DeployError(LocalCloudError):
    """cdklocal failed; the message carries the tail of its output."""


@dataclass(frozen=True)
class Deployment:
    """The stack outputs a user of the local loop needs, with the API reachable on the local endpoint."""

    data_bucket: str
    model_bucket: str
    state_machine_arn: str
    api_url: str
    inference_function: str
    monitor_function: str
    failure_topic_arn: str
    ops_topic_arn: str
    outputs: Mapping[str, str]

    @classmethod
    def from_outputs(cls, cloud: Cloud, outputs: Mapping[str, str]) -> Deployment:
        try:
            return cls(
                data_bucket=outputs["DataBucketName"],
                model_bucket=outputs["ModelBucketName"],
                state_machine_arn=outputs["StateMachineArn"],
                api_url=local_api_url(cloud, outputs["ApiUrl"]),
                inference_function=outputs["FunctionName"],
                monitor_function=outputs["MonitorFunctionName"],
                failure_topic_arn=outputs["FailureTopicArn"],
                ops_topic_arn=outputs["OpsTopicArn"],
                outputs=dict(outputs),
            )
        except KeyError as exc:
            raise DeployError(f"the deployed stacks have no output {exc}: is the app fully deployed?") from exc


def local_api_url(cloud: Cloud, api_url: str) -> str:
    """LocalStack's stage URL (``https://<id>.execute-api.<host>/<stage>/``) does not resolve offline; its
    path-style form on the gateway does: ``<endpoint>/_aws/execute-api/<id>/<stage>``."""
    parts = urlsplit(api_url)
    api_id = parts.netloc.split(".", 1)[0]
    stage = parts.path.strip("/")
    return f"{cloud.endpoint}/_aws/execute-api/{api_id}/{stage}"


def outputs_file(cloud: Cloud) -> Path:
    base = cloud.dir if cloud.dir is not None else REPO / ".cache" / "localstack" / cloud.name
    return base / "cdk-outputs.json"


def deploy(cloud: Cloud, *, log: Path | None = None) -> Deployment:
    """Bootstrap (once per instance) and deploy every stack of the ``local`` stage; returns the outputs."""
    if not CDKLOCAL.exists():
        raise DeployError(f"{CDKLOCAL} is missing: run `make setup` (npm ci installs the pinned cdklocal)")
    target = outputs_file(cloud)
    target.parent.mkdir(parents=True, exist_ok=True)
    log = log or target.with_name("cdk-deploy.log")
    env = {**os.environ, **cloud.client_env(), **QUIET}
    # A cloud assembly per instance: two deployments (or a deployment and `make test`'s synth) never share cdk.out.
    common = ["-c", f"stage={STAGE}", "--output", str(target.with_name("cdk.out"))]
    _cdklocal(["bootstrap", f"aws://{ACCOUNT}/{DEFAULT_REGION}", *common], env, log)
    _cdklocal(["deploy", "--all", *common, "--require-approval", "never", "--outputs-file", str(target)], env, log)
    info = fetch_json(f"{cloud.endpoint}{INFO_PATH}") or {}
    missing = skipped_resources(target.with_name("cdk.out"), info.get("cloudformation", {}).get("resource_types", []))
    if missing:
        raise DeployError(
            "the local cloud deployed the stacks without these resources, having no CloudFormation provider for "
            "their type (add one to localcloud/extension, or to deploy.SKIPPED_TYPES if the loop never reads it): "
            + "; ".join(missing)
        )
    return read_deployment(cloud)


def skipped_resources(assembly: Path, provided: Collection[str]) -> list[str]:
    """``<type>: <stack>/<logical id>, ...`` for each resource type of the cloud assembly's templates that has no
    provider in ``provided`` (custom resources count as ``AWS::CloudFormation::CustomResource``, as LocalStack
    loads them), other than :data:`SKIPPED_TYPES`."""
    found: dict[str, list[str]] = {}
    for template in sorted(assembly.glob("*.template.json")):
        stack = template.name.removesuffix(".template.json")
        for logical_id, resource in json.loads(template.read_text()).get("Resources", {}).items():
            kind = str(resource.get("Type", ""))
            if kind.startswith("Custom::"):
                kind = "AWS::CloudFormation::CustomResource"
            if kind not in provided and kind not in SKIPPED_TYPES:
                found.setdefault(kind, []).append(f"{stack}/{logical_id}")
    return [f"{kind}: {', '.join(ids)}" for kind, ids in sorted(found.items())]


def read_deployment(cloud: Cloud) -> Deployment:
    """The outputs of the last deployment to ``cloud`` (``driftloop local deploy`` writes them)."""
    target = outputs_file(cloud)
    if not target.exists():
        raise DeployError(f"nothing deployed to {cloud.name!r} yet: run `driftloop local deploy`")
    by_stack = json.loads(target.read_text())
    merged = {key: value for outputs in by_stack.values() for key, value in outputs.items()}
    return Deployment.from_outputs(cloud, merged)


def _cdklocal(arguments: list[str], env: Mapping[str, str], log: Path) -> None:
    with log.open("a") as stream:
        stream.write(f"\n$ cdklocal {' '.join(arguments)}\n")
        stream.flush()
        result = subprocess.run(
            [str(CDKLOCAL), *arguments], cwd=REPO, env=dict(env), stdout=stream, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise DeployError(f"cdklocal {arguments[0]} failed (exit {result.returncode}); see {log}:\n{tail}")
