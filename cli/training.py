"""Local work without an AWS account: generate data (``driftloop data``), train (``train``), serve (``serve``)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from cli import remote_training
from cli.command import CommandError, Commands


def add_commands(commands: Commands) -> None:
    data = commands.add_parser("data", help="generate a synthetic churn data set (CSV)")
    data.add_argument("--rows", type=int, default=5000, help="number of rows (default 5000)")
    data.add_argument("--out", type=Path, required=True, help="CSV file to write")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--covariate-drift", type=float, default=0.0, help="0 (none) to 1 (strong) feature shift")
    data.add_argument("--concept-drift", type=float, default=0.0, help="0 (none) to 1 (strong) change of the rule")
    data.set_defaults(run=_data)

    train = commands.add_parser(
        "train",
        help="train locally with the SageMaker container contract, or as a SageMaker job (--remote)",
        description="Lays out a SageMaker-style base directory under --out and runs the training program on it. "
        "The bundle lands in OUT/model, metrics and the gate verdict in OUT/output/data/evaluation.json. "
        "With --remote, runs the same training as a SageMaker training job through the SageMaker Python SDK "
        "(ModelTrainer), with the image, role and buckets of the deployed training stack, and prints the failure "
        "reason or the metrics and the model artifact's S3 URI (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL).",
    )
    train.add_argument("--data", type=Path, required=True, action="append", help="CSV/Parquet file or folder")
    train.add_argument("--out", type=Path, help="base directory to create (like /opt/ml); required unless --remote")
    train.add_argument(
        "--champion",
        type=Path,
        help="the live model: a bundle folder or model.tar.gz (scored through its model.onnx; its model.joblib, "
        "a pickle, is never loaded)",
    )
    train.add_argument(
        "--hp",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a hyperparameter (repeatable), e.g. --hp target=churned --hp algorithm=random_forest",
    )
    remote = train.add_argument_group("as a SageMaker training job in the account")
    remote.add_argument("--remote", action="store_true", help="run the training as a SageMaker training job")
    remote.add_argument(
        "--stack",
        default=os.environ.get("DRIFTLOOP_TRAINING_STACK", "driftloop-dev-training"),
        help="the training stack, <name_prefix>-<stage>-training (default $DRIFTLOOP_TRAINING_STACK or "
        "driftloop-dev-training)",
    )
    remote.add_argument("--instance-type", default=remote_training.DEFAULT_INSTANCE_TYPE, help="default %(default)s")
    remote.add_argument(
        "--max-runtime-seconds",
        type=int,
        default=remote_training.DEFAULT_MAX_RUNTIME_SECONDS,
        help="default %(default)s",
    )
    train.set_defaults(run=_train)

    serve = commands.add_parser("serve", help="serve a model over HTTP with the inference app")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="an extracted bundle folder")
    source.add_argument("--bucket", help="serve the registry's champion from this model bucket")
    serve.add_argument("--prefix", default="registry/", help="registry prefix (default registry/)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--refresh-seconds", type=float, default=60.0, help="champion re-check interval")
    serve.set_defaults(run=_serve)


def _data(args: argparse.Namespace) -> int:
    from training import synthetic

    frame = synthetic.generate(args.rows, args.seed, args.covariate_drift, args.concept_drift)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training import local_run

    hyperparameters = dict(_key_value(item) for item in args.hp)
    if args.remote:
        return _train_remote(args, hyperparameters)
    if args.out is None:
        raise CommandError("train needs --out (the base directory to create), or --remote")
    try:
        layout = local_run.stage(args.out, args.data, hyperparameters, champion=args.champion)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from exc
    code = local_run.run(layout)
    print(local_run.summary(layout))
    return code


def _train_remote(args: argparse.Namespace, hyperparameters: dict[str, str]) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    target = remote_training.stack_target(args.stack)
    remote_training.show_job_logs()
    try:
        result = remote_training.train_remote(
            target,
            args.data,
            hyperparameters,
            champion=args.champion,
            instance_type=args.instance_type,
            max_runtime_seconds=args.max_runtime_seconds,
        )
    except (BotoCoreError, ClientError) as error:
        raise CommandError(f"the training job could not run: {error}") from error
    print(result.summary())
    return 0 if result.completed else 1


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise CommandError(f"--hp takes KEY=VALUE, got {item!r}")
    return key, value


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from functions.common.env import EnvError
    from functions.inference.settings import InferenceSettings

    # The app reads its settings from the environment it starts in: this one's, with the model given here.
    try:
        settings = InferenceSettings.from_env()
    except EnvError as exc:
        raise CommandError(str(exc)) from exc
    if args.model_dir is not None:
        settings = replace(settings, model_dir=args.model_dir.resolve())
    else:
        settings = replace(settings, model_dir=None, model_bucket=args.bucket, registry_prefix=args.prefix)
    os.environ.update(replace(settings, refresh_seconds=args.refresh_seconds).to_env())
    uvicorn.run("functions.inference.app:app", host=args.host, port=args.port, log_level="warning")
    return 0
