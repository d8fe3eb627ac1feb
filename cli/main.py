"""The `driftloop` entry point: the parser, built from each command module's subcommands, and ``main()``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import approvals, batch, client, constraints, demo, local, registry, training
from cli.command import CommandError

DESCRIPTION = """\
driftloop: train, gate, promote and serve tabular models, and keep them healthy.

Local (no AWS account needed):
  driftloop data --rows 5000 --out data/train.csv        generate a synthetic churn data set
  driftloop train --data data/train.csv --out runs/v1    train like SageMaker would, locally
  driftloop serve --model-dir runs/v1/model              serve the bundle over HTTP (same app as Lambda)
  driftloop train --data data/train.csv --hp target=churned --remote   the same, as a SageMaker job in the account
  driftloop predict --url http://127.0.0.1:8080 --json '{"instances": [...]}'

Deployed API (every route wants a client's API key; AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL):
  driftloop api-key --client NAME --stack driftloop-dev-serving      print a client's key (for $DRIFTLOOP_API_KEY)
  driftloop predict / feedback --url URL [--sign] --json ...        send it with a request

Batch scoring (the serving stack's batch state machine; CSV objects under s3://<data bucket>/batch/input/):
  driftloop batch --input s3://B/batch/input/june/ [--version V] [--capture]   predictions beside each object

Registry (the model bucket in S3; honours AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL):
  driftloop versions --bucket B      every registered version with its metrics
  driftloop champion --bucket B      the live version
  driftloop history --bucket B       every decision: triggered, skipped, registered, promoted, rejected, failed,
                                     rolled_back (with what triggered the run)
  driftloop register / promote       register a bundle archive, promote a version (compare-and-swap)
  driftloop rollback [--to V]        put the previous champion (or V) back live (compare-and-swap)
  driftloop unlock --execution ARN   release the run lock of an execution stopped by hand
  driftloop constraints set FILE [--version V]   your own data-quality constraints (Model Monitor's format)

Approval (a held version; every passed one with retraining.approval; the approval message has T, E and V;
needs states:SendTaskSuccess/Failure):
  driftloop approve --token T --execution E --version V [--note N]   let the waiting run promote V
  driftloop deny --token T --execution E --version V --reason R      reject it instead

Local AWS (LocalStack without Docker, after `make local-setup`):
  driftloop local up / down / status / logs / env    start, stop and inspect it; `env` prints its variables
  driftloop local deploy                             deploy the CDK app (stage local) into it with cdklocal
  driftloop demo [--keep]                            the closed loop on its own local AWS, narrated (make demo)
"""

# Each command module registers its own subcommands, in the order `driftloop --help` lists them.
ADD_COMMANDS = (
    training.add_commands,
    client.add_commands,
    batch.add_commands,
    registry.add_commands,
    constraints.add_commands,
    approvals.add_commands,
    demo.add_commands,
    local.add_commands,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except CommandError as exc:
        print(f"driftloop: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftloop", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add_commands in ADD_COMMANDS:
        add_commands(commands)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
