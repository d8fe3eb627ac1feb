"""cfn-lint over the synthesized templates: ``python -m infra.lint [cdk.out]`` (exit 1 on any finding)."""

from __future__ import annotations

import sys
from pathlib import Path

from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]

# W3005 (DependsOn already implied by a GetAtt): CDK makes a function and a state machine depend on their role
# explicitly, so the role's policy exists before they are created. Redundant, harmless, and not ours to change.
# W6001 (an output passes on an imported value): the training stack's outputs give a SageMaker job run outside the
# workflow (`driftloop train --remote`, the SDK) all it needs from one stack, the data stack's buckets included.
IGNORED_CHECKS = ("W3005", "W6001")


def lint_templates(assembly_dir: Path) -> list[str]:
    """Every cfn-lint finding for ``<assembly_dir>/*.template.json``, as printable lines."""
    templates = sorted(assembly_dir.glob("*.template.json"))
    if not templates:
        return [f"no *.template.json in {assembly_dir}: synthesize first (npx cdk synth)"]
    config = ManualArgs(ignore_checks=list(IGNORED_CHECKS))
    return [f"{template.name}: {match}" for template in templates for match in lint_file(template, config)]


def main() -> None:
    assembly_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")
    findings = lint_templates(assembly_dir)
    print("\n".join(findings) or f"cfn-lint: no findings in {assembly_dir}")
    raise SystemExit(1 if findings else 0)


if __name__ == "__main__":
    main()
