"""What ``driftloop local deploy`` checks after cdklocal (localcloud/deploy.py); the deployment itself is
exercised by the integration tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localcloud.deploy import SKIPPED_TYPES, skipped_resources


def write_template(assembly: Path, stack: str, resources: dict[str, str]) -> None:
    body: dict[str, Any] = {"Resources": {name: {"Type": kind, "Properties": {}} for name, kind in resources.items()}}
    (assembly / f"{stack}.template.json").write_text(json.dumps(body))


def test_resources_of_types_without_a_cloudformation_provider_are_named_with_their_stacks(tmp_path: Path) -> None:
    write_template(
        tmp_path,
        "driftloop-local-data",
        {"Bucket": "AWS::S3::Bucket", "Catalog": "AWS::Glue::Database", "Firewall": "AWS::WAFv2::WebACL"},
    )
    write_template(tmp_path, "driftloop-local-serving", {"Acl": "AWS::WAFv2::WebACL", "Cleanup": "Custom::Cleanup"})
    (tmp_path / "manifest.json").write_text("{}")

    missing = skipped_resources(tmp_path, ["AWS::S3::Bucket", "AWS::Glue::Database"])

    assert missing == [
        "AWS::CloudFormation::CustomResource: driftloop-local-serving/Cleanup",
        "AWS::WAFv2::WebACL: driftloop-local-data/Firewall, driftloop-local-serving/Acl",
    ]


def test_the_dashboard_may_be_skipped_and_fully_provided_templates_pass(tmp_path: Path) -> None:
    write_template(tmp_path, "driftloop-local-monitoring", {"Board": "AWS::CloudWatch::Dashboard"})
    write_template(tmp_path, "driftloop-local-data", {"Table": "AWS::Glue::Table"})

    assert "AWS::CloudWatch::Dashboard" in SKIPPED_TYPES
    assert skipped_resources(tmp_path, ["AWS::Glue::Table"]) == []
