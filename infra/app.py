"""The driftloop CDK app: ``python -m infra.app`` (run by ``npx cdk synth`` through cdk.json)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App

from infra.config import load_config
from infra.nag import apply_nag
from infra.stacks.wiring import DriftloopStacks, build_stacks


def create_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> tuple[App, DriftloopStacks]:
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    stacks = build_stacks(app, load_config(app.node.try_get_context))
    apply_nag(app, stacks)
    return app, stacks


def main() -> None:
    app, _ = create_app()
    app.synth()


if __name__ == "__main__":
    main()
