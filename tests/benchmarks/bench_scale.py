"""Scale benchmark: the monitor and Assemble at 10k, 100k and 1M captures, deployed on the local cloud.

Run with ``python -m tests.benchmarks.bench_scale`` (``make bench-scale``); ``--sizes`` picks the window sizes.
It starts a local AWS, deploys the CDK app, trains version 1 with the state machine, then for each size:

1. writes a window of captures for the champion straight into the data bucket, in the layout Firehose writes
   (``layout.capture_hour_prefix``, gzip JSON lines, the exact line the inference Lambda logs:
   ``capture.capture_line``) and ground truth for 10% of them (``FeedbackRecord`` lines as the feedback stream
   writes them), a ``LATE_SHARE`` of which is about predictions served one to three days before the window
   (also captured, in their own hours), so the join reads hours the ids name far outside the window;
2. invokes the deployed monitor Lambda for that window (``{"time": ...}``, as its schedule does);
3. starts a training run (manual trigger): Assemble, the Athena UNLOAD started with ``.sync``, FinishAssembly.

Reported per size: the Lambdas' duration and peak memory (the local runtime's ``REPORT`` line: the peak resident
set of the execution environment, which is restarted before each size by an environment change, as Lambda does on
a configuration update), the bytes Athena scanned, and the memory ratio to the smallest size (the target: within
20%, so that only Athena's work grows with traffic). From the bytes scanned per capture it derives the largest
window the workgroup's bytes-scanned cutoff admits. Raw figures go to ``bench-output/scale.json``.

On the local cloud Athena is DuckDB inside LocalStack, so the durations include that engine's work on this machine;
the Lambdas' memory is theirs alone. The program reports; it exits non-zero only when it cannot run.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import random
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from cli.closed_loop import Loop
from functions.common.layout import capture_hour_prefix, feedback_hour_prefix, hour_value
from functions.common.records import Caller, FeedbackRecord, PredictionRecord, new_prediction_ids
from functions.inference.capture import capture_line
from functions.workflow import state, triggers
from infra.config import STAGE_KEY, load_config
from localcloud import cloud as local_cloud
from localcloud.deploy import deploy
from tests.prediction_ids import ID_KEY
from training import synthetic

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "bench-output" / "scale.json"
INSTANCE = "bench-scale"
SIZES = (10_000, 100_000, 1_000_000)
TRAINING_ROWS = 3000
LABELLED_SHARE = 0.10
# Of the labels, those about predictions served one to three days before the window (labels arrive late).
LATE_SHARE = 0.3
# Records per object: about what a Firehose buffer of a few MiB holds.
OBJECT_RECORDS = 20_000
# Distinct instances the synthetic traffic cycles through (generating a million rows would only cost time).
DISTINCT_ROWS = 20_000
CALLERS = 50
# The target: each Lambda's peak memory at the largest size within 20% of the smallest's.
MAX_MEMORY_RATIO = 1.2
REPORT = re.compile(r"REPORT RequestId: \S+\s+Duration: ([\d.]+) ms.*?Max Memory Used: (\d+) MB")
# Logical ids of the functions measured, as the stacks name them.
STEP_FUNCTIONS = {"assemble": "Assemble", "finish_assembly": "FinishAssembly"}


@dataclass
class Measure:
    duration_ms: float
    max_memory_mb: int


@dataclass
class SizeResult:
    captures: int
    feedback: int
    generate_seconds: float
    monitor: Measure
    monitor_scanned_bytes: int
    monitor_captured: int
    monitor_labelled: int
    run_status: str
    run_seconds: float
    assembly: dict[str, Measure]
    unload_scanned_bytes: int
    feedback_rows: int | None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="captures per window")
    args = parser.parse_args(argv)
    context = {**json.loads((ROOT / "cdk.json").read_text())["context"], STAGE_KEY: "local"}
    config = load_config(context.get)
    running = local_cloud.start(INSTANCE, port=0)
    try:
        print(f"local AWS at {running.endpoint}; deploying the app (about 2 minutes)", flush=True)
        deployment = deploy(running)
        loop = Loop(running, deployment)
        bench = Bench(loop, logs_client(running), config.monitoring.window_minutes)
        bench.train_first_version()
        results = [bench.measure(size) for size in sorted(args.sizes)]
    finally:
        if running.managed:
            local_cloud.stop(INSTANCE)
    cutoff = config.athena.bytes_scanned_cutoff_gb * 10**9
    timeouts = {
        "monitor": config.monitoring.timeout_seconds,
        **{step: config.training.step_timeout_seconds for step in STEP_FUNCTIONS},
    }
    report(results, cutoff, timeouts)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    print(f"\nraw figures: {OUTPUT.relative_to(ROOT)}")
    return 0


def logs_client(running: local_cloud.Cloud) -> Any:
    env = running.client_env()
    return boto3.client(
        "logs",
        endpoint_url=running.endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


class Bench:
    def __init__(self, loop: Loop, logs: Any, window_minutes: int) -> None:
        self.loop = loop
        self.logs = logs
        self.window = timedelta(minutes=window_minutes)
        self.bucket = loop.deployment.data_bucket
        self.rows = synthetic.generate(DISTINCT_ROWS, seed=5, covariate_drift=0.3).drop(columns=[synthetic.TARGET])
        self.instances = [
            {str(k): (None if v != v else v) for k, v in row.items()} for row in self.rows.to_dict(orient="records")
        ]
        self.version = ""
        self.classes: list[str] = []

    def train_first_version(self) -> None:
        self.loop.upload("training-data/history.csv", synthetic.generate(TRAINING_ROWS, seed=1))
        outcome = self._run("bench-scale: version 1")
        if outcome["status"] != "SUCCEEDED":
            raise SystemExit(f"the first training run ended {outcome['status']}: {outcome.get('cause', '')[:500]}")
        self._watch_champion()

    def _watch_champion(self) -> None:
        """Traffic is served by the current champion (each size's training run may have promoted a new one)."""
        champion = self.loop.registry.champion()
        if champion is None:
            raise SystemExit("no champion to serve the traffic")
        self.version = champion.version
        self.classes = [str(c) for c in self.loop.registry.get_metadata(self.version)["classes"]]
        print(f"champion {self.version}, classes {self.classes}", flush=True)

    def measure(self, size: int) -> SizeResult:
        print(f"\n== {size:,} captures in the monitor's window", flush=True)
        self._clear()
        self._watch_champion()
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        started = time.monotonic()
        feedback = self._write_window(size, end)
        generated = time.monotonic() - started
        print(f"   wrote {size:,} captures and {feedback:,} labels in {generated:.0f} s", flush=True)

        monitor_function = self.loop.deployment.monitor_function
        self._restart(monitor_function, size)
        response = self.loop.lambda_.invoke(
            FunctionName=monitor_function, Payload=json.dumps({"time": end.isoformat()}).encode(), LogType="Tail"
        )
        summary = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise SystemExit(f"the monitor failed at {size:,} captures: {summary}")
        monitor = _report(base64.b64decode(response["LogResult"]).decode())
        print(
            f"   monitor: {monitor.duration_ms / 1000:.1f} s, {monitor.max_memory_mb} MB peak, "
            f"{summary.get('scanned_bytes', 0):,} bytes scanned; captured {summary['captured']:,}, "
            f"labelled {summary['labelled']:,}",
            flush=True,
        )

        functions = {step: self._function(logical) for step, logical in STEP_FUNCTIONS.items()}
        for name in functions.values():
            self._restart(name, size)
        since = int(time.time() * 1000)
        run_started = time.monotonic()
        outcome = self._run(f"bench-scale: {size} captures")
        run_seconds = time.monotonic() - run_started
        assembly = {step: self._last_report(name, since) for step, name in functions.items()}
        unload_scanned = self._unload_scanned(outcome["executionArn"])
        feedback_rows = _feedback_rows(outcome)
        print(
            f"   training run {outcome['status']} in {run_seconds:.0f} s; "
            + ", ".join(f"{step}: {m.duration_ms / 1000:.1f} s, {m.max_memory_mb} MB" for step, m in assembly.items())
            + f"; UNLOAD scanned {unload_scanned:,} bytes, kept {feedback_rows} feedback rows",
            flush=True,
        )
        return SizeResult(
            captures=size,
            feedback=feedback,
            generate_seconds=round(generated, 1),
            monitor=monitor,
            monitor_scanned_bytes=int(summary.get("scanned_bytes") or 0),
            monitor_captured=int(summary["captured"]),
            monitor_labelled=int(summary["labelled"]),
            run_status=str(outcome["status"]),
            run_seconds=round(run_seconds, 1),
            assembly=assembly,
            unload_scanned_bytes=unload_scanned,
            feedback_rows=feedback_rows,
        )

    # -- the data ---------------------------------------------------------------------------------------------

    def _write_window(self, size: int, end: datetime) -> int:
        """``size`` captures served in the window ending at ``end``, labels for ``LABELLED_SHARE`` of them (a
        ``LATE_SHARE`` of those about older predictions, captured too) received in the window; returns the labels."""
        rng = random.Random(size)
        start = end - self.window
        served = sorted(start + (end - start) * rng.random() for _ in range(size))
        labels = int(size * LABELLED_SHARE)
        late = int(labels * LATE_SHARE)
        old = sorted(end - timedelta(days=1 + 2 * rng.random()) for _ in range(late))
        window_records = self._captures(served, rng)
        old_records = self._captures(old, rng)
        self._put(window_records, lambda r: capture_hour_prefix("captures/", self.version, _hour_of(r.time)), True)
        self._put(old_records, lambda r: capture_hour_prefix("captures/", self.version, _hour_of(r.time)), True)
        about = rng.sample(window_records, labels - late) + old_records
        received = sorted(start + (end - start) * rng.random() for _ in about)
        feedback = [
            FeedbackRecord(
                capture.prediction_id,
                moment.isoformat(timespec="milliseconds"),
                label=rng.choice(self.classes),
                caller=Caller(principal=f"arn:aws:iam::000000000000:role/client-{rng.randrange(CALLERS)}"),
            )
            for capture, moment in zip(about, received, strict=True)
        ]
        self._put(feedback, lambda r: feedback_hour_prefix("feedback/", _hour_of(r.time)), False)
        return len(feedback)

    def _captures(self, times: Sequence[datetime], rng: random.Random) -> list[PredictionRecord]:
        records = []
        for index, moment in enumerate(times):
            [prediction_id] = new_prediction_ids(1, moment, ID_KEY)
            probability = rng.random()
            label = self.classes[int(probability >= 0.5)] if len(self.classes) == 2 else rng.choice(self.classes)
            records.append(
                PredictionRecord(
                    prediction_id,
                    moment.isoformat(timespec="milliseconds"),
                    self.version,
                    self.instances[index % len(self.instances)],
                    label=label,
                    probabilities={self.classes[0]: 1 - probability, self.classes[-1]: probability},
                    request_id=f"bench-{index // 100}",
                    caller=Caller(principal="arn:aws:iam::000000000000:role/client-0", source_ip="10.0.0.1"),
                )
            )
        return records

    def _put(self, records: Sequence[PredictionRecord | FeedbackRecord], prefix_of: Any, captured: bool) -> None:
        by_prefix: dict[str, list[bytes]] = {}
        for record in records:
            line = capture_line(record) if captured else json.dumps(record.to_dict(), separators=(",", ":")).encode()
            by_prefix.setdefault(prefix_of(record), []).append(line + b"\n")
        for prefix, lines in by_prefix.items():
            for part, chunk in enumerate(_chunks(lines, OBJECT_RECORDS)):
                self.loop.s3.put_object(
                    Bucket=self.bucket, Key=f"{prefix}bench-{part:05d}.gz", Body=gzip.compress(b"".join(chunk), 6)
                )

    def _clear(self) -> None:
        paginator = self.loop.s3.get_paginator("list_objects_v2")
        for prefix in ("captures/", "feedback/", "assembled/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [item["Key"] for item in page.get("Contents", [])]
                if keys:
                    self.loop.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys]})

    # -- the deployed functions -------------------------------------------------------------------------------

    def _run(self, by: str) -> dict[str, Any]:
        payload = {triggers.INPUT_KEY: {"source": triggers.MANUAL, "by": by}}
        execution = self.loop.sfn.start_execution(
            stateMachineArn=self.loop.deployment.state_machine_arn, input=json.dumps(payload)
        )
        return self.loop.finished(execution["executionArn"], timeout=1800)

    def _function(self, logical: str) -> str:
        pages = self.loop.lambda_.get_paginator("list_functions").paginate()
        names = [f["FunctionName"] for page in pages for f in page["Functions"]]
        found = [name for name in names if "-training-" in name and re.search(rf"-{logical}[A-Z0-9]", name)]
        if len(found) != 1:
            raise SystemExit(f"no single function for {logical}: {found or names}")
        return str(found[0])

    def _restart(self, name: str, size: int) -> None:
        """A fresh execution environment for the next invocation: Lambda starts new ones after a configuration
        change, so the peak memory reported is this size's alone."""
        current = self.loop.lambda_.get_function_configuration(FunctionName=name)
        variables = dict(current.get("Environment", {}).get("Variables", {}))
        variables["DRIFTLOOP_BENCH_SIZE"] = str(size)
        self.loop.lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        self.loop.lambda_.get_waiter("function_updated_v2").wait(FunctionName=name)

    def _last_report(self, name: str, since_ms: int) -> Measure:
        group = self.loop.lambda_.get_function_configuration(FunctionName=name)["LoggingConfig"]["LogGroup"]
        found: list[Measure] = []
        for stream in self.logs.describe_log_streams(logGroupName=group)["logStreams"]:
            events = self.logs.get_log_events(
                logGroupName=group, logStreamName=stream["logStreamName"], startTime=since_ms, startFromHead=True
            )["events"]
            found += [_report(event["message"]) for event in events if "REPORT RequestId" in event["message"]]
        if not found:
            raise SystemExit(f"no REPORT line of {name} since the run started")
        return max(found, key=lambda measure: measure.max_memory_mb)

    def _unload_scanned(self, execution_arn: str) -> int:
        history = self.loop.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        for event in history:
            details = event.get("taskSucceededEventDetails")
            if details and details.get("resource") == "startQueryExecution.sync":
                statistics = json.loads(details["output"])["QueryExecution"].get("Statistics", {})
                return int(statistics.get("DataScannedInBytes", 0))
        return 0


def _report(text: str) -> Measure:
    match = REPORT.search(text)
    if match is None:
        raise SystemExit(f"no REPORT line in: {text[-500:]}")
    return Measure(float(match.group(1)), int(match.group(2)))


def _hour_of(iso: str) -> str:
    return hour_value(datetime.fromisoformat(iso))


def _chunks(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _feedback_rows(outcome: dict[str, Any]) -> int | None:
    output = json.loads(outcome.get("output") or "{}")
    assembly = output.get(state.ASSEMBLY) if isinstance(output, dict) else None
    counts = assembly.get("counts") if isinstance(assembly, dict) else None
    rows = counts.get("rows") if isinstance(counts, dict) else None
    kept = rows.get("feedback") if isinstance(rows, dict) else None
    return int(kept) if isinstance(kept, int) else None


def report(results: Sequence[SizeResult], cutoff_bytes: int, timeouts: dict[str, int]) -> None:
    smallest = results[0]
    columns = ("captures", "labels", "monitor s", "monitor MB", "Assemble MB", "FinishAssembly MB")
    print("\n| " + " | ".join((*columns, "monitor scanned", "UNLOAD scanned")) + " |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.captures:,} | {r.feedback:,} | {r.monitor.duration_ms / 1000:.1f} | {r.monitor.max_memory_mb} "
            f"| {r.assembly['assemble'].max_memory_mb} | {r.assembly['finish_assembly'].max_memory_mb} "
            f"| {r.monitor_scanned_bytes / 2**20:.1f} MiB | {r.unload_scanned_bytes / 2**20:.1f} MiB |"
        )
    largest = results[-1]
    print(
        f"\nmemory at {largest.captures:,} captures / at {smallest.captures:,} (target: within {MAX_MEMORY_RATIO:.2f}):"
    )
    pairs = [("monitor", smallest.monitor, largest.monitor)] + [
        (step, smallest.assembly[step], largest.assembly[step]) for step in STEP_FUNCTIONS
    ]
    for name, low, high in pairs:
        ratio = high.max_memory_mb / low.max_memory_mb
        verdict = "flat" if ratio <= MAX_MEMORY_RATIO else "GROWS"
        print(f"  {name:16s} {high.max_memory_mb} MB / {low.max_memory_mb} MB = {ratio:.2f} ({verdict})")
    if len(results) > 1:
        print("\nthe largest window each Lambda finishes within its timeout, extrapolating its time linearly (here,")
        print("where Athena is DuckDB on this machine; on AWS Athena's own time takes its place):")
        for name, low, high in pairs:
            slope = (high.duration_ms - low.duration_ms) / 1000 / (largest.captures - smallest.captures)
            seconds = timeouts[name]
            bound = (
                "no bound: its time does not grow"
                if slope <= 0
                else (f"about {(seconds - low.duration_ms / 1000) / slope + smallest.captures:,.0f} captures")
            )
            print(f"  {name:16s} timeout {seconds} s: {bound}")
    per_capture = largest.monitor_scanned_bytes / largest.captures
    if per_capture:
        print(
            f"\nthe monitor scans {per_capture:.0f} bytes per capture (gzip JSON lines): the workgroup's cutoff of "
            f"{cutoff_bytes / 1e9:.0f} GB admits a window of about {cutoff_bytes / per_capture / 1e6:,.0f} million "
            "captures; the Lambdas' memory no longer bounds it"
        )


if __name__ == "__main__":
    raise SystemExit(main())
