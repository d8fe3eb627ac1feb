"""cfn-lint over every synthesized template (the same check as ``python -m infra.lint cdk.out``)."""

from __future__ import annotations

from infra.lint import lint_templates
from tests.infra.conftest import Synthesized


def test_synthesized_templates_pass_cfn_lint(synthesized: Synthesized) -> None:
    assert synthesized.error is None, synthesized.error
    # data, training, serving, monitoring
    assert len(list(synthesized.outdir.glob("*.template.json"))) == 4
    assert lint_templates(synthesized.outdir) == []
