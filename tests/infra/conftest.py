"""Shared fixtures: the app built from the real cdk.json context, with Lambda bundling skipped."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Node 20 works but is past its end of life; jsii's banner on every start-up is noise here.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
# (jsii starts on the first import of aws_cdk below, so these must be set first.)

from aws_cdk import App
from aws_cdk.assertions import Template

from infra.app import create_app
from infra.bundling import REPO_ROOT
from infra.config import load_config
from infra.stacks.wiring import DriftloopStacks, build_stacks

CDK_JSON = REPO_ROOT / "cdk.json"


def function_environment(template: Template, handler: str) -> dict[str, str]:
    """The environment of the one function with ``handler``, as the function sees it: each CloudFormation token
    (a bucket's import, a topic's ARN) stands in as its JSON text, as some name would at deploy time."""
    [function] = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}}).values()
    variables = function["Properties"]["Environment"]["Variables"]
    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in variables.items()}


def cdk_context(stage: str = "dev", overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cdk.json's context for ``stage``, with ``overrides`` deep-merged into that stage; Lambda bundling off."""
    context: dict[str, Any] = copy.deepcopy(json.loads(CDK_JSON.read_text())["context"])
    context["stage"] = stage
    context["aws:cdk:bundling-stacks"] = []
    stage_overrides = context["driftloop:stages"][stage]
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping):
            stage_overrides[key] = {**stage_overrides.get(key, {}), **value}
        else:
            stage_overrides[key] = value
    return context


def build(context: Mapping[str, Any], outdir: Path | None = None) -> DriftloopStacks:
    app = App(context=dict(context), outdir=str(outdir) if outdir else None)
    return build_stacks(app, load_config(app.node.try_get_context))


@pytest.fixture(scope="session")
def dev() -> DriftloopStacks:
    return build(cdk_context())


@pytest.fixture(scope="session")
def api_key() -> DriftloopStacks:
    return build(cdk_context(overrides={"serving": {"auth_mode": "api_key"}}))


# A manual approval of an hour, in a workflow long enough to hold it and the training job.
APPROVAL = {
    "retraining": {"approval": {"enabled": True, "timeout_hours": 1}},
    "training": {"workflow_timeout_seconds": 9000},
}


@pytest.fixture(scope="session")
def approval() -> DriftloopStacks:
    return build(cdk_context(overrides=APPROVAL))


@pytest.fixture(scope="session")
def local() -> DriftloopStacks:
    return build(cdk_context("local"))


@pytest.fixture(scope="session")
def data_template(dev: DriftloopStacks) -> Template:
    return Template.from_stack(dev.data)


@pytest.fixture(scope="session")
def training_template(dev: DriftloopStacks) -> Template:
    return Template.from_stack(dev.training)


@pytest.fixture(scope="session")
def serving_template(dev: DriftloopStacks) -> Template:
    return Template.from_stack(dev.serving)


@pytest.fixture(scope="session")
def api_key_serving_template(api_key: DriftloopStacks) -> Template:
    return Template.from_stack(api_key.serving)


# The whole app, cdk-nag included, as `cdk synth` builds it for these configurations (Lambda bundling skipped).
SYNTHESIZED = {
    "dev": cdk_context(),
    "dev-api-key": cdk_context(overrides={"serving": {"auth_mode": "api_key"}}),
    "dev-approval": cdk_context(overrides=APPROVAL),
    "local": cdk_context("local"),
}


@dataclass(frozen=True)
class Synthesized:
    app: App
    outdir: Path
    error: str | None  # the validation error synthesis raised, if any


@pytest.fixture(scope="session", params=sorted(SYNTHESIZED))
def synthesized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    outdir = tmp_path_factory.mktemp(f"cdk-out-{request.param}")
    app, _ = create_app(SYNTHESIZED[request.param], outdir=str(outdir))
    try:
        app.synth()
    except RuntimeError as exc:  # jsii surfaces the validation failure as a RuntimeError
        return Synthesized(app, outdir, str(exc))
    return Synthesized(app, outdir, None)
