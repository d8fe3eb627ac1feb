"""The run lock: at most one training run at a time, and a cooldown between runs, on one S3 object.

``<registry prefix>runs/lock.json`` in the model bucket holds the lock's state. Every change is a conditional
write, so no DynamoDB table is needed:

- no object yet: the first run creates it with ``IfNoneMatch="*"``;
- ``held``: the execution that holds it, when it started and what triggered it. Another execution may take it over
  only once it is older than the state machine's timeout (that execution cannot still be running: Step Functions
  has stopped it, without running any of its states); the takeover is an ``IfMatch`` on the ETag it read;
- ``released``: the same fields plus when the run ended and how. A new run takes it with ``IfMatch`` on the ETag it
  read, unless the previous run ended less than the cooldown ago.

Of two executions that read the same state and write, exactly one succeeds; the other sees ``PreconditionFailed``
(or ``ConditionalRequestConflict`` while the first write is in flight) and reports that it lost.
Only the holder releases the lock (the execution id is compared, and the write is conditional on the ETag read).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from functions.common.registry import RegistryLayout

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_s3 import S3Client

LOST_RACE_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")

LockState = Literal["held", "released"]


@dataclass(frozen=True)
class Lock:
    state: LockState
    execution: str
    started_at: str
    trigger: dict[str, Any]
    version: str | None = None
    ended_at: str | None = None
    outcome: str | None = None
    # The ETag read with the lock: the condition of the next write.
    etag: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("etag")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], etag: str | None) -> Lock:
        names = set(cls.__dataclass_fields__) - {"etag"}
        return cls(**{name: data[name] for name in names if name in data}, etag=etag)

    def expires_at(self, timeout: timedelta) -> datetime:
        return datetime.fromisoformat(self.started_at) + timeout

    def describe(self) -> str:
        source = self.trigger.get("source", "unknown")
        return f"execution {self.execution} (trigger: {source}, started {self.started_at})"


@dataclass(frozen=True)
class Acquisition:
    """The outcome of :meth:`RunLock.acquire`: the lock now held, or why not."""

    acquired: bool
    lock: Lock | None
    reason: str | None = None
    # The lock as it was before this attempt (None: no run ever took it).
    previous: Lock | None = None


class RunLock:
    def __init__(self, s3: S3Client, bucket: str, registry_prefix: str, *, timeout: timedelta) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = RegistryLayout(registry_prefix).lock_key
        self.timeout = timeout

    def read(self) -> Lock | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self.key)
        except self._s3.exceptions.ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return Lock.from_dict(json.loads(response["Body"].read()), response["ETag"])

    def acquire(
        self,
        execution: str,
        *,
        started_at: datetime,
        now: datetime,
        trigger: dict[str, Any],
        version: str,
        cooldown: timedelta,
    ) -> Acquisition:
        current = self.read()
        if current is not None:
            if current.state == "held" and current.execution == execution:
                # This execution's Guard ran again (a retried invocation): it already holds the lock.
                return Acquisition(True, current, previous=current)
            if current.state == "held" and now < current.expires_at(self.timeout):
                return Acquisition(False, None, f"another run is in progress: {current.describe()}", current)
            # Released, or held by an execution past the state machine's timeout (stopped without releasing).
            ended = current.ended_at if current.state == "released" and current.ended_at else None
            ended_at = datetime.fromisoformat(ended) if ended else current.expires_at(self.timeout)
            if now < ended_at + cooldown:
                return Acquisition(False, None, self._cooldown_reason(current, ended_at, cooldown), current)
        lock = Lock(
            state="held",
            execution=execution,
            started_at=started_at.isoformat(),
            trigger=dict(trigger),
            version=version,
        )
        try:
            etag = self._write(lock, current.etag if current else None)
        except LostRace:
            winner = self.read()
            holder = winner.describe() if winner else "unknown execution"
            return Acquisition(False, None, f"another run took the lock at the same time: {holder}", current)
        return Acquisition(True, replace(lock, etag=etag), previous=current)

    def release(self, execution: str, *, now: datetime, outcome: str) -> tuple[bool, str]:
        """Mark the lock released with the end time, if ``execution`` holds it. Returns (released, why)."""
        current = self.read()
        if current is None or current.state != "held" or current.execution != execution:
            holder = "nobody" if current is None or current.state != "held" else current.describe()
            return False, f"{execution} does not hold the run lock (held by {holder}); nothing to release"
        released = replace(current, state="released", ended_at=now.isoformat(), outcome=outcome)
        try:
            self._write(released, current.etag)
        except LostRace:
            return False, f"the run lock changed while {execution} released it; left as it is"
        return True, f"released by {execution} ({outcome})"

    def _cooldown_reason(self, previous: Lock, ended_at: datetime, cooldown: timedelta) -> str:
        if previous.state == "released":
            how = f"({previous.outcome or 'no outcome'}), ended {ended_at.isoformat()}"
        else:
            how = f"timed out at {ended_at.isoformat()} without releasing the run lock"
        minutes = int(cooldown.total_seconds() // 60)
        return (
            f"cooldown: the previous run, execution {previous.execution} {how}; no new run starts within "
            f"{minutes} minutes of a run's end, i.e. before {(ended_at + cooldown).isoformat()}"
        )

    def _write(self, lock: Lock, etag: str | None) -> str:
        condition: dict[str, str] = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            response = self._s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=json.dumps(lock.to_dict(), indent=2, sort_keys=True).encode(),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        except self._s3.exceptions.ClientError as exc:
            if _code(exc) in LOST_RACE_CODES:
                raise LostRace(self.key) from exc
            raise
        return response["ETag"]


class LostRace(Exception):
    """Another execution changed the lock between this one's read and write."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
