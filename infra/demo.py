"""`make demo`: the model lifecycle on this machine, with no AWS account and no Docker.

1. generate a churn data set and train version 1 with the training program (the SageMaker contract);
2. register and promote it in the registry, kept in a local S3 (moto's server on 127.0.0.1);
3. serve the champion with the inference app under uvicorn and call it over real HTTP, bad requests included;
4. train a challenger on fresh data, score it against the live champion on the same holdout, and let the
   gate decide; a promoted challenger is picked up by the running API without a restart;
5. print the decision record.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from functions.common.bundle import ARCHIVE_FILE, pack_archive
from functions.common.gate import EVALUATION_FILE
from functions.common.registry import Registry, new_version_id
from infra.cli import CommandError, get_json, post_json
from training import local_run, synthetic
from training.contract import Layout

DEMO_BUCKET = "driftloop-demo-models"
HYPERPARAMETERS = {"target": "churned", "algorithm": "random_forest", "n_estimators": "100", "max_depth": "10"}
# The challenger must beat the champion by 0.01 ROC AUC on the fresh holdout to be promoted.
CHALLENGER_HYPERPARAMETERS = {"target": "churned", "algorithm": "hist_gradient_boosting", "min_improvement": "0.01"}
REFRESH_SECONDS = 1.0


class Narrator:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.timeline: list[tuple[float, str]] = []

    def step(self, title: str) -> None:
        elapsed = time.monotonic() - self.started
        self.timeline.append((elapsed, title))
        print(f"\n[{elapsed:6.1f}s] == {title}", flush=True)

    def say(self, text: str) -> None:
        print("         " + text.replace("\n", "\n         "), flush=True)


def run(workdir: Path) -> int:
    narrator = Narrator()
    if workdir.exists():
        shutil.rmtree(workdir)
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)

    narrator.step("Generate a synthetic churn data set")
    synthetic.generate(4000, seed=1).to_csv(data_dir / "history.csv", index=False)
    synthetic.generate(4000, seed=2, covariate_drift=0.3, concept_drift=0.5).to_csv(data_dir / "fresh.csv", index=False)
    narrator.say(f"{data_dir / 'history.csv'}: 4000 rows (training data for version 1)")
    narrator.say(f"{data_dir / 'fresh.csv'}: 4000 rows from a changed world (for the challenger)")

    narrator.step("Train version 1 with the training program, laid out as SageMaker runs it")
    first = local_run.stage(workdir / "jobs" / "v1", [data_dir / "history.csv"], HYPERPARAMETERS)
    if local_run.run(first, log=first.base / "training.log") != 0:
        narrator.say(local_run.summary(first))
        return 1
    narrator.say(local_run.summary(first))

    with local_s3() as endpoint:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=DEMO_BUCKET)
        s3.put_bucket_versioning(Bucket=DEMO_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        registry = Registry(s3, DEMO_BUCKET)

        narrator.step(f"Register and promote version 1 (registry in s3://{DEMO_BUCKET}, local S3 at {endpoint})")
        v1 = register_run(registry, first, "demo: first model")
        registry.promote(v1, expected=None, reasons=("first model: no champion to beat",))
        narrator.say(f"registered and promoted {v1}")

        with inference_api(workdir / "api.log") as url:
            narrator.step(f"Serve the champion over HTTP at {url} (the same ASGI app the Lambda runs)")
            show(narrator, "GET", url + "/health")
            show(narrator, "GET", url + "/model", summarise=lambda body: {k: body[k] for k in ("version", "task")})
            instances = instances_of(synthetic.generate(3, seed=7))
            show(narrator, "POST", url + "/predict", {"instances": instances})

            narrator.step("Send bad requests: the API says precisely what is wrong, and nothing is lost")
            broken = dict(instances[0], tenure_months="twelve", favourite_colour="blue")
            show(narrator, "POST", url + "/predict", {"instances": [instances[1], broken]})
            show(narrator, "POST", url + "/predict", raw=b'{"instances": [')

            narrator.step("Train a challenger on fresh data; score it against the live champion on the same holdout")
            champion = registry.champion()
            assert champion is not None
            archive = workdir / "champion" / ARCHIVE_FILE
            registry.fetch_archive(champion.archive_key, champion.sha256, archive)
            second = local_run.stage(
                workdir / "jobs" / "v2",
                [data_dir / "fresh.csv"],
                {**CHALLENGER_HYPERPARAMETERS, "champion_version": champion.version},
                champion=archive,
            )
            if local_run.run(second, log=second.base / "training.log") != 0:
                narrator.say(local_run.summary(second))
                return 1
            narrator.say(local_run.summary(second))
            evaluation = json.loads((second.output_data_dir / EVALUATION_FILE).read_text())
            v2 = register_run(registry, second, "demo: challenger on fresh data", evaluation)
            if evaluation["passed"]:
                registry.promote(v2, expected=champion, reasons=tuple(evaluation["reasons"]))
                narrator.say(f"{v2} promoted; the running API picks it up within {REFRESH_SECONDS:.0f} s")
                wait_for_version(url, v2)
            else:
                registry.record("rejected", v2, evaluation["reasons"])
                narrator.say(f"{v2} rejected; {v1} keeps serving")
            show(narrator, "POST", url + "/predict", {"instances": instances[:1]})

        narrator.step("The decision record (append-only, in the registry)")
        for decision in registry.decisions():
            narrator.say(f"{decision.action:<11} {decision.version}  {'; '.join(decision.reasons)[:110]}")

    narrator.step("Done")
    for elapsed, title in narrator.timeline:
        print(f"  {elapsed:6.1f}s  {title}")
    print(f"\nFiles are in {workdir}/ (data, training jobs, bundles). Next: README.md, 'Deploy to AWS'.")
    return 0


def register_run(registry: Registry, layout: Layout, source: str, evaluation: dict[str, Any] | None = None) -> str:
    version = new_version_id()
    archive = layout.base / ARCHIVE_FILE
    pack_archive(layout.model_dir, archive)
    evaluation = evaluation or json.loads((layout.output_data_dir / EVALUATION_FILE).read_text())
    record = registry.register(version, archive, evaluation=evaluation, lineage={"source": source})
    registry.record("registered", version, evaluation["reasons"], {"sha256": record.sha256})
    return version


def instances_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Request instances from labelled rows: no target, and null (JSON has no NaN) for a missing value."""
    features = frame.drop(columns=[synthetic.TARGET])
    return [
        {str(name): (None if pd.isna(value) else value) for name, value in row.items()}
        for row in features.to_dict(orient="records")
    ]


def show(
    narrator: Narrator,
    method: str,
    url: str,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    summarise: Any = None,
) -> None:
    if method == "GET":
        status, body = get_json(url)
    else:
        status, body = post_json(url, raw if raw is not None else json.dumps(payload).encode())
    shown = summarise(body) if summarise and status == 200 else body
    narrator.say(f"{method} {urlsplit(url).path} -> HTTP {status}")
    narrator.say(json.dumps(shown, indent=2)[:1500])


def wait_for_version(url: str, version: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get_json(url + "/model")
        if status == 200 and body.get("version") == version:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the API did not pick up {version} within {timeout} s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_s3() -> Iterator[str]:
    """moto's S3 server on a loopback port, with dummy credentials for boto3."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",  # moto accepts any credentials
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }.items():
        os.environ[name] = value
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per S3 call drowns the story
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def inference_api(log: Path) -> Iterator[str]:
    """`driftloop serve` in its own process on a loopback port, serving the registry's champion."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "infra.cli", "serve", "--bucket", DEMO_BUCKET, "--port", str(port)]
    command += ["--refresh-seconds", str(REFRESH_SECONDS)]
    with log.open("w") as stream:
        server = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get_json(url + "/health")
                break
            except CommandError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the inference API did not start; see {log}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
