"""cdk-nag (AwsSolutions) over the whole app: no unacknowledged findings, and every acknowledgement justified.

cdk-nag 3 is a CDK policy-validation plugin, not an Aspect: its findings do not become construct annotations
(``Annotations.from_stack`` sees none) but fail synthesis and are written to ``validation-report.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk import App, CfnResource, Stack, Validations
from constructs import IConstruct

from infra.config import load_config
from infra.nag import acknowledge_findings, add_checks, flatten_reference
from infra.stacks.wiring import build_stacks
from tests.infra.conftest import SYNTHESIZED, Synthesized

RULE_ID = re.compile(r"^(?:annotation::)?AwsSolutions-(?P<rule>[A-Z]+\d+)(?P<finding>\[.+\])?$", re.IGNORECASE)
MIN_REASON_LENGTH = 80


def acknowledgements(scope: IConstruct) -> list[tuple[IConstruct, str, str]]:
    """(construct, rule id, reason) for every acknowledgement recorded in the construct tree."""
    return [
        (construct, rule_id, reason)
        for construct in scope.node.find_all()
        for entry in construct.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule_id, reason in entry.data.items()
    ]


def reported_findings(outdir: Path) -> set[tuple[str, str]]:
    """(rule id, construct path) for every finding in the assembly's validation report."""
    report = json.loads((outdir / "validation-report.json").read_text())
    return {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }


def test_app_synthesizes_without_unacknowledged_cdk_nag_findings(synthesized: Synthesized) -> None:
    assert synthesized.error is None, synthesized.error
    assert reported_findings(synthesized.outdir) == set()


def test_every_acknowledgement_names_an_aws_solutions_rule_and_gives_a_reason(synthesized: Synthesized) -> None:
    found = acknowledgements(synthesized.app)
    assert found, "the app is expected to acknowledge some findings"
    for construct, rule_id, reason in found:
        match = RULE_ID.match(rule_id)
        assert match, f"{rule_id} at {construct.node.path} is not an AwsSolutions rule id"
        assert len(reason) >= MIN_REASON_LENGTH, f"{rule_id} at {construct.node.path}: reason too short"
        if match["rule"] in ("IAM4", "IAM5"):
            # One finding (one policy or one resource pattern), never the whole rule.
            assert match["finding"], f"{rule_id} at {construct.node.path} acknowledges every finding of the rule"


def test_acknowledgements_sit_on_single_resources_not_stacks(synthesized: Synthesized) -> None:
    for construct, rule_id, _ in acknowledgements(synthesized.app):
        assert not isinstance(construct, Stack), f"{rule_id} acknowledged for the whole stack {construct.node.path}"
        resources = [child for child in construct.node.find_all() if isinstance(child, CfnResource)]
        assert len(resources) == 1, f"{rule_id} at {construct.node.path} covers {len(resources)} resources"


def test_every_acknowledgement_matches_a_finding_the_checks_report(tmp_path: Path) -> None:
    """No stale acknowledgements: without them, cdk-nag reports exactly the acknowledged findings."""
    app = App(context=SYNTHESIZED["dev"], outdir=str(tmp_path))
    stacks = build_stacks(app, load_config(app.node.try_get_context))
    add_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    findings = reported_findings(tmp_path)
    acknowledge_findings(stacks)
    acknowledged = {
        (re.sub(r"^annotation::", "", rule_id, flags=re.IGNORECASE), construct.node.path)
        for construct, rule_id, _ in acknowledgements(app)
    }
    assert acknowledged == findings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", "*"),
        (
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Fn::ImportValue": "x-Name"}, "/p/*"]]},
            "arn:<AWS::Partition>:s3:::x-Name/p/*",
        ),
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Fn123", "Arn"]}, ":*"]]}, "<Fn123.Arn>:*"),
        ({"Fn::Sub": "arn:${AWS::Partition}:logs:*"}, "arn:<AWS::Partition>:logs:*"),
    ],
)
def test_references_are_flattened_the_way_cdk_nag_names_findings(value: object, expected: str) -> None:
    assert flatten_reference(value) == expected
