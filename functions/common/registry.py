"""The model registry: S3 is the system of record, shared by the workflow, the API and the CLI.

It imports no AWS SDK module itself (errors come from the client it is given), so a process that serves a local
bundle never pays for importing botocore.

Layout under ``<prefix>`` in the model bucket::

    versions/<version>/model.tar.gz     the bundle archive, immutable
    versions/<version>/metadata.json    the bundle's metadata (features, metrics, drift baseline)
    versions/<version>/model_card.json  the model card (functions.common.model_card), and model_card.md its
                                        rendering; versions registered before model cards have none
    versions/<version>/version.json     the registration record (checksum, evaluation, lineage)
    versions/<version>/constraints.json the bundle's data-quality baseline (and statistics.json), when it has one
    constraints/default.json            an operator's constraints for every version (``driftloop constraints``)
    constraints/versions/<version>.json an operator's constraints for one version; replaceable, unlike versions/
    champion.json                       the live model pointer, changed only by compare-and-swap
    decisions/<time>-<id>.json          one object per decision, written create-only (append-only log)

Versions sort by creation time as strings. Objects are written with ``IfNoneMatch="*"`` (never overwritten)
except ``champion.json``, which is replaced only with ``IfMatch=<etag the writer read>``: of two concurrent
promotions exactly one wins and the loser learns it (:class:`PromotionConflict`).

Retried workflow steps write nothing twice: registering a version again with the same archive returns the
stored record (an object a failed attempt already wrote with the same bytes counts as written), and
:meth:`Registry.record_once` finds a decision the same execution already recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from functions.common.bundle import (
    ARCHIVE_FILE,
    CONSTRAINTS_FILE,
    DATA_QUALITY_FILES,
    METADATA_FILE,
    BundleError,
    open_bundle,
    read_optional,
    sha256_file,
)

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_s3 import S3Client

DEFAULT_PREFIX = "registry/"
VERSION_FILE = "version.json"
CARD_FILE = "model_card.json"
CARD_MARKDOWN_FILE = "model_card.md"

Action = Literal["registered", "promoted", "rejected", "rolled_back", "failed", "skipped", "triggered"]


class RegistryError(Exception):
    """The registry refused an operation (unknown version, invalid bundle, checksum mismatch)."""


class PromotionConflict(RegistryError):
    """The champion changed between read and write: another promotion won the race."""


@dataclass(frozen=True)
class VersionRecord:
    version: str
    archive_key: str
    sha256: str
    size: int
    created_at: str
    task: str
    target: str
    algorithm: str
    metrics: dict[str, float]
    evaluation: dict[str, Any] | None
    lineage: dict[str, Any]
    validated: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionRecord:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class ChampionPointer:
    version: str
    archive_key: str
    sha256: str
    promoted_at: str
    decision_id: str
    previous_version: str | None = None
    # The S3 ETag read with the pointer: the compare-and-swap token for the next change.
    etag: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("etag")
        return data


@dataclass(frozen=True)
class Decision:
    id: str
    time: str
    action: Action
    version: str | None
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            id=data["id"],
            time=data["time"],
            action=data["action"],
            version=data.get("version"),
            reasons=tuple(data.get("reasons", ())),
            details=dict(data.get("details") or {}),
        )


def utc_now() -> datetime:
    return datetime.now(UTC)


# The version id: ``v``, the creation time to the second, 6 random hex digits. Generated and recognised only here.
_VERSION_ID = re.compile(r"v\d{8}-\d{6}-[0-9a-f]{6}")


def new_version_id(now: datetime | None = None) -> str:
    """Unique and sortable: ``v20261127-111717-3f9a2c`` (also a valid SageMaker job name suffix)."""
    moment = (now or utc_now()).astimezone(UTC)
    return f"v{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def is_version_id(text: str) -> bool:
    """Whether ``text`` has the form :func:`new_version_id` gives."""
    return _VERSION_ID.fullmatch(text) is not None


def champion_before(decisions: Sequence[Decision], current: str) -> str | None:
    """The champion before ``current``, replaying promotions and rollbacks in order.

    A promotion pushes its version; a rollback to a version on the stack pops back to it (what was rolled back is
    not a candidate any more), otherwise it pushes it. The answer is the entry below ``current`` when it is on top.
    """
    stack: list[str] = []
    for decision in decisions:
        if decision.action == "promoted" and decision.version:
            if not stack or stack[-1] != decision.version:
                stack.append(decision.version)
        elif decision.action == "rolled_back" and decision.version:
            if decision.version in stack:
                del stack[stack.index(decision.version) + 1 :]
            else:
                stack.append(decision.version)
    if len(stack) >= 2 and stack[-1] == current:
        return stack[-2]
    return None


@dataclass(frozen=True)
class RegistryLayout:
    """Where each kind of registry object lives under the registry prefix: the Lambdas, the CLI and the IAM grants
    of the stacks all take their keys from here."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if self.prefix and not self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix + "/")

    @property
    def champion_key(self) -> str:
        """The champion pointer: replaced by compare-and-swap, by Promote and the operator CLI only."""
        return self.prefix + "champion.json"

    @property
    def versions_prefix(self) -> str:
        """Immutable versions, created by Register (and ``driftloop register``)."""
        return self.prefix + "versions/"

    @property
    def decisions_prefix(self) -> str:
        """The append-only decision record."""
        return self.prefix + "decisions/"

    @property
    def runs_prefix(self) -> str:
        """The run lock's folder: the only registry keys Guard and Release change."""
        return self.prefix + "runs/"

    @property
    def lock_key(self) -> str:
        return self.runs_prefix + "lock.json"

    @property
    def history_prefixes(self) -> tuple[str, ...]:
        """The prefixes whose objects are written once and never replaced."""
        return self.versions_prefix, self.decisions_prefix

    def version_key(self, version: str, name: str) -> str:
        return f"{self.versions_prefix}{version}/{name}"

    def card_key(self, version: str) -> str:
        return self.version_key(version, CARD_FILE)

    def card_markdown_key(self, version: str) -> str:
        return self.version_key(version, CARD_MARKDOWN_FILE)

    @property
    def constraints_prefix(self) -> str:
        """An operator's own data-quality constraints, replaceable (``driftloop constraints set``)."""
        return self.prefix + "constraints/"

    def constraints_key(self, version: str | None) -> str:
        """An operator's constraints for ``version``, or for every version (None)."""
        if version is None:
            return self.constraints_prefix + "default.json"
        return f"{self.constraints_prefix}versions/{version}.json"

    def decision_key(self, time: datetime, decision_id: str) -> str:
        return f"{self.decisions_prefix}{_stamp(time)}-{decision_id}.json"


class Registry:
    def __init__(self, s3: S3Client, bucket: str, prefix: str = DEFAULT_PREFIX) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.layout = RegistryLayout(prefix)
        self.prefix = self.layout.prefix

    def version_key(self, version: str, name: str) -> str:
        return self.layout.version_key(version, name)

    @property
    def champion_key(self) -> str:
        return self.layout.champion_key

    # -- versions ---------------------------------------------------------------------------------------------

    def register(
        self,
        version: str,
        archive_path: Path,
        *,
        evaluation: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
    ) -> VersionRecord:
        """Validate a bundle archive and store it as an immutable version.

        Registering a version again with the same archive (a retried step) returns the stored record; another
        archive under an existing version is refused. The version's model card is built from the bundle's
        metadata, ``evaluation`` and ``lineage`` and stored beside it.
        """
        # Imported here: the serving function reads the registry and never builds a card.
        from functions.common import model_card

        sha256 = sha256_file(archive_path)
        existing = self._get_json(self.version_key(version, VERSION_FILE))
        if existing is not None:
            stored = VersionRecord.from_dict(existing)
            if stored.sha256 != sha256:
                raise RegistryError(
                    f"version {version} is already registered with another archive (sha256 {stored.sha256[:12]}…, "
                    f"this one {sha256[:12]}…); registry versions are immutable"
                )
            return stored
        try:
            with tempfile.TemporaryDirectory(prefix="driftloop-register-") as work:
                bundle_dir, metadata = open_bundle(archive_path, Path(work) / "bundle")
                # The monitor reads the data-quality baseline without fetching the archive.
                baselines = {
                    name: data for name in DATA_QUALITY_FILES if (data := read_optional(bundle_dir, metadata, name))
                }
        except BundleError as exc:
            raise RegistryError(f"version {version} not registered: invalid bundle: {exc}") from exc
        record = VersionRecord(
            version=version,
            archive_key=self.version_key(version, ARCHIVE_FILE),
            sha256=sha256,
            size=archive_path.stat().st_size,
            created_at=utc_now().isoformat(),
            task=metadata.task,
            target=metadata.target,
            algorithm=metadata.algorithm,
            metrics=dict(metadata.metrics),
            evaluation=dict(evaluation) if evaluation is not None else None,
            lineage={**(lineage or {}), "training_data": metadata.training_data},
        )
        with archive_path.open("rb") as body:
            self._create(record.archive_key, body.read(), "application/gzip")
        self._create(self.version_key(version, METADATA_FILE), _json(metadata.to_dict()), "application/json")
        card = model_card.build(version, metadata, record.evaluation, record.lineage)
        self._create(self.layout.card_key(version), _json(card), "application/json")
        self._create(self.layout.card_markdown_key(version), model_card.markdown(card).encode(), "text/markdown")
        for name, data in baselines.items():
            self._create(self.version_key(version, name), data, "application/json")
        # version.json last: its presence means the version is complete.
        self._create(self.version_key(version, VERSION_FILE), _json(asdict(record)), "application/json")
        return record

    def get_version(self, version: str) -> VersionRecord:
        data = self._get_json(self.version_key(version, VERSION_FILE))
        if data is None:
            raise RegistryError(f"unknown version {version!r}")
        return VersionRecord.from_dict(data)

    def get_metadata(self, version: str) -> dict[str, Any]:
        data = self._get_json(self.version_key(version, METADATA_FILE))
        if data is None:
            raise RegistryError(f"version {version!r} has no metadata")
        return dict(data)

    def get_card(self, version: str) -> dict[str, Any] | None:
        """The version's model card; None for a version registered before model cards."""
        data = self._get_json(self.layout.card_key(version))
        return None if data is None else dict(data)

    def list_versions(self) -> list[VersionRecord]:
        records = [
            VersionRecord.from_dict(data)
            for key in self._keys(self.layout.versions_prefix)
            if key.endswith("/" + VERSION_FILE) and (data := self._get_json(key)) is not None
        ]
        return sorted(records, key=lambda record: record.version)

    def fetch_archive(self, archive_key: str, sha256: str, dest: Path) -> Path:
        """Download a version's archive and refuse it unless its checksum matches."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._s3.download_file(self.bucket, archive_key, str(dest))
        actual = sha256_file(dest)
        if actual != sha256:
            dest.unlink(missing_ok=True)
            raise RegistryError(f"{archive_key} checksum mismatch: expected {sha256[:12]}…, found {actual[:12]}…")
        return dest

    # -- data-quality constraints -----------------------------------------------------------------------------

    def put_constraints(self, document: bytes, version: str | None) -> str:
        """Store an operator's constraints (checked by the caller) for ``version`` or every version; returns the
        key. They replace any stored before."""
        key = self.layout.constraints_key(version)
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=document, ContentType="application/json")
        return key

    def delete_constraints(self, version: str | None) -> str:
        key = self.layout.constraints_key(version)
        self._s3.delete_object(Bucket=self.bucket, Key=key)
        return key

    def constraints(self, version: str, files: Mapping[str, str]) -> tuple[str, bytes] | None:
        """The constraints that apply to ``version`` and where they come from: the operator's for the version, else
        the operator's for every version, else the version's own (checked against its bundle's sha256 in
        ``files``, the metadata's); None when there are none."""
        for source, key in (
            ("operator, this version", self.layout.constraints_key(version)),
            ("operator, every version", self.layout.constraints_key(None)),
        ):
            data = self._get_bytes(key)
            if data is not None:
                return f"{source}: s3://{self.bucket}/{key}", data
        key = self.version_key(version, CONSTRAINTS_FILE)
        data = self._get_bytes(key) if CONSTRAINTS_FILE in files else None
        if data is None:
            return None
        if hashlib.sha256(data).hexdigest() != files[CONSTRAINTS_FILE]:
            raise RegistryError(f"{key} does not match the checksum its bundle recorded")
        return f"training: s3://{self.bucket}/{key}", data

    # -- champion ---------------------------------------------------------------------------------------------

    def champion(self) -> ChampionPointer | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self.champion_key)
        except self._s3.exceptions.ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        data = json.loads(response["Body"].read())
        return ChampionPointer(**data, etag=response["ETag"])

    def promote(
        self,
        version: str,
        *,
        expected: ChampionPointer | None,
        action: Action = "promoted",
        reasons: tuple[str, ...] = (),
        details: Mapping[str, Any] | None = None,
    ) -> ChampionPointer:
        """Point the champion at ``version`` if the champion is still ``expected`` (None: no champion yet).

        The version's archive is re-read and its checksum checked first: the pointer never names a bundle that
        failed validation or was altered after registration.
        """
        record = self.get_version(version)
        if not record.validated:
            raise RegistryError(f"version {version} failed validation and cannot be promoted")
        with tempfile.TemporaryDirectory(prefix="driftloop-promote-") as work:
            self.fetch_archive(record.archive_key, record.sha256, Path(work) / ARCHIVE_FILE)
        decision = self.new_decision(action, version, reasons, details)
        pointer = ChampionPointer(
            version=version,
            archive_key=record.archive_key,
            sha256=record.sha256,
            promoted_at=decision.time,
            decision_id=decision.id,
            previous_version=expected.version if expected else None,
        )
        condition: dict[str, str] = {"IfMatch": expected.etag} if expected and expected.etag else {"IfNoneMatch": "*"}
        try:
            response = self._s3.put_object(
                Bucket=self.bucket,
                Key=self.champion_key,
                Body=_json(pointer.to_dict()),
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        except self._s3.exceptions.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise PromotionConflict(
                    f"champion changed while promoting {version} (expected "
                    f"{expected.version if expected else 'no champion'}); nothing was changed"
                ) from exc
            raise
        self.append(decision)
        return ChampionPointer(**pointer.to_dict(), etag=response["ETag"])

    def rollback_target(self, champion: ChampionPointer) -> str | None:
        """The version a rollback from ``champion`` puts back live: the champion before it by the decision record
        (so rolling back twice goes two champions back), else the pointer's ``previous_version``."""
        return champion_before(self.decisions(), champion.version) or champion.previous_version

    # -- decisions --------------------------------------------------------------------------------------------

    @staticmethod
    def new_decision(
        action: Action,
        version: str | None,
        reasons: tuple[str, ...] | list[str] = (),
        details: Mapping[str, Any] | None = None,
    ) -> Decision:
        return Decision(
            id=uuid.uuid4().hex,
            time=utc_now().isoformat(),
            action=action,
            version=version,
            reasons=tuple(reasons),
            details=dict(details or {}),
        )

    def record_once(
        self,
        action: Action,
        version: str | None,
        reasons: tuple[str, ...] | list[str] = (),
        details: Mapping[str, Any] | None = None,
        *,
        execution: str,
        since: datetime,
    ) -> Decision:
        """Record a run's decision unless the run already did: a retried step gets the first attempt's decision.

        The decision carries ``details["execution"]``; ``since`` (no later than the run's start) bounds the search.
        """
        earlier = self.run_decision(execution, version, (action,), since=since)
        if earlier is not None:
            return earlier
        return self.record(action, version, reasons, {**(details or {}), "execution": execution})

    def run_decision(
        self, execution: str, version: str | None, actions: tuple[Action, ...], *, since: datetime
    ) -> Decision | None:
        """The first of ``execution``'s decisions for ``version`` with one of ``actions``, at or after ``since``."""
        for decision in self.decisions(since=since):
            if (
                decision.action in actions
                and decision.version == version
                and decision.details.get("execution") == execution
            ):
                return decision
        return None

    def find_decision(self, decision_id: str, time: str) -> Decision | None:
        """The decision with this id and time (as a champion pointer names it), if it was recorded."""
        data = self._get_json(self._decision_key(time, decision_id))
        return None if data is None else Decision.from_dict(data)

    def record(
        self,
        action: Action,
        version: str | None,
        reasons: tuple[str, ...] | list[str] = (),
        details: Mapping[str, Any] | None = None,
    ) -> Decision:
        decision = self.new_decision(action, version, reasons, details)
        self.append(decision)
        return decision

    def append(self, decision: Decision) -> None:
        self._create(self._decision_key(decision.time, decision.id), _json(decision.to_dict()), "application/json")

    def decisions(self, *, since: datetime | None = None) -> list[Decision]:
        """Every decision in time order; with ``since``, only those recorded at or after it (fewer keys read)."""
        folder = self.layout.decisions_prefix
        if since is None:
            keys = self._keys(folder)
        else:
            # Keys start with the time to the second; listing from the second before reads every later one.
            keys = self._keys(folder, start_after=folder + _stamp(since - timedelta(seconds=1))[:_STAMP_SECONDS])
        decisions = [Decision.from_dict(data) for key in sorted(keys) if (data := self._get_json(key)) is not None]
        if since is None:
            return decisions
        return [decision for decision in decisions if datetime.fromisoformat(decision.time) >= since]

    def _decision_key(self, time: str, decision_id: str) -> str:
        return self.layout.decision_key(datetime.fromisoformat(time), decision_id)

    # -- S3 adapters ------------------------------------------------------------------------------------------

    def _create(self, key: str, body: bytes, content_type: str) -> None:
        """Create ``key``; an object already there with the same bytes (a retry's earlier attempt) is kept."""
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
        except self._s3.exceptions.ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "412"):
                raise
            if self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read() != body:
                raise RegistryError(f"s3://{self.bucket}/{key} already exists; registry objects are immutable") from exc

    def _get_bytes(self, key: str) -> bytes | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return response["Body"].read()

    def _get_json(self, key: str) -> Any:
        data = self._get_bytes(key)
        return None if data is None else json.loads(data)

    def _keys(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = (
            paginator.paginate(Bucket=self.bucket, Prefix=prefix, StartAfter=start_after)
            if start_after
            else paginator.paginate(Bucket=self.bucket, Prefix=prefix)
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"]


# A decision key's time: ``20261127T111717.123456Z``; its first 15 characters are the second.
_STAMP_SECONDS = len("20261127T111717")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace(":", "").replace("-", "").replace("+0000", "Z")


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
