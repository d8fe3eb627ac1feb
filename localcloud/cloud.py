"""A managed local AWS: LocalStack's open-source runtime as a plain process, without Docker.

LocalStack runs from its own Python 3.13 venv (``.cache/localstack-venv``, built by ``make local-setup`` from the
lock file ``localcloud/requirements.txt``) with driftloop's extension installed into it
(``localcloud/extension``): Python zip Lambdas run as local processes under AWS's Runtime Interface Client
(``.cache/lambda-runtime-venv``), and S3 object bytes stay under the instance's own directory.

Each instance has a name and its own directory, ``.cache/localstack/<name>/``::

    instance.json   pid, port, endpoint (while it runs)
    localstack.log  LocalStack's output
    fs/ tmp/ s3/    LocalStack's FILESYSTEM_ROOT, its TMPDIR (unzipped Lambda code, the functions' /tmp), S3 bytes
    cache/          XDG_CACHE_HOME (plux's entry-point index)
    home/           HOME and LocalStack's CONFIG_DIR: nothing of the user's home is read or written
    tls/            the gateway's certificate (CUSTOM_SSL_CERT_PATH), made by the extension, kept across starts

and its own port, so two instances never share a port, a file or a process. State is ephemeral: ``start`` wipes
the previous run's data. The process has its own session (``setsid``) and is stopped by its PID: SIGTERM, then
SIGKILL to its process group (which holds the Lambda runtime processes too) after a grace period.

``DRIFTLOOP_LOCAL_ENDPOINT=http://host:port`` points everything at an already-running LocalStack (for example the
Docker image) instead: nothing is started or stopped then.

Standard library only: the CLI (``driftloop local ...``) and the tests' ``local_cloud`` fixture import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

ENDPOINT_VARIABLE = "DRIFTLOOP_LOCAL_ENDPOINT"
SERVICES_VARIABLE = "DRIFTLOOP_LOCAL_SERVICES"
DEFAULT_NAME = "default"
# LocalStack's usual port, for the default instance; other instances get a free port.
DEFAULT_PORT = 4566
DEFAULT_REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
# What driftloop uses. sagemaker, athena and glue are the extension's providers (stock LocalStack has none).
DEFAULT_SERVICES = (
    "s3",
    "iam",
    "sts",
    "cloudformation",
    "ssm",
    "lambda",
    "logs",
    "stepfunctions",
    "sns",
    "sqs",
    "events",
    "scheduler",
    "cloudwatch",
    "firehose",
    "apigateway",
    "sagemaker",
    "kms",
    "secretsmanager",
    "athena",
    "glue",
)
# The extension's plugins (localcloud/extension/pyproject.toml), selected per service.
LAMBDA_EXECUTOR = "driftloop-process"
PROVIDER_OVERRIDES: Mapping[str, str] = {"s3": "driftloop"}
INFO_PATH = "/_localstack/driftloop"
START_TIMEOUT_SECONDS = 90.0
STOP_GRACE_SECONDS = 15.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class LocalCloudError(Exception):
    """A user-facing failure: printed without a traceback."""


class SetupMissing(LocalCloudError):
    """The LocalStack venv (or the Lambda runtime venv) is absent: ``make local-setup`` builds them."""


class SetupStale(LocalCloudError):
    """The venvs are older than their lock files or the extension's entry points: ``make local-setup``."""


@dataclass(frozen=True)
class Layout:
    """Where the environments and instances live (the repository's ``.cache`` by default)."""

    root: Path = REPO

    @property
    def cache(self) -> Path:
        return self.root / ".cache"

    @property
    def localstack_venv(self) -> Path:
        return self.cache / "localstack-venv"

    @property
    def localstack_python(self) -> Path:
        return self.localstack_venv / "bin" / "python"

    @property
    def lambda_python(self) -> Path:
        return self.cache / "lambda-runtime-venv" / "bin" / "python"

    @property
    def setup_stamp(self) -> Path:
        """Written by ``make local-setup`` after both venvs are built."""
        return self.localstack_venv / ".driftloop-setup"

    @property
    def setup_inputs(self) -> tuple[Path, ...]:
        local = self.root / "infra" / "local"
        return (local / "requirements.txt", local / "lambda-runtime.txt", local / "extension" / "pyproject.toml")

    @property
    def instances(self) -> Path:
        return self.cache / "localstack"

    def instance(self, name: str) -> Instance:
        if not _NAME.match(name):
            raise LocalCloudError(f"invalid instance name {name!r}: lower-case letters, digits, '-' and '_'")
        return Instance(name, self.instances / name)


@dataclass(frozen=True)
class Instance:
    name: str
    dir: Path

    @property
    def state_file(self) -> Path:
        return self.dir / "instance.json"

    @property
    def log_file(self) -> Path:
        return self.dir / "localstack.log"

    @property
    def filesystem_root(self) -> Path:
        return self.dir / "fs"

    @property
    def tmp(self) -> Path:
        return self.dir / "tmp"

    @property
    def s3(self) -> Path:
        return self.dir / "s3"

    @property
    def cache(self) -> Path:
        return self.dir / "cache"

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def certificate(self) -> Path:
        return self.dir / "tls" / "gateway.pem"

    @property
    def data_dirs(self) -> tuple[Path, ...]:
        return (self.filesystem_root, self.tmp, self.s3, self.cache, self.home)


@dataclass(frozen=True)
class Cloud:
    """A running local AWS: one this module started (``managed``) or an external endpoint."""

    name: str
    endpoint: str
    port: int
    pid: int | None = None
    dir: Path | None = None
    started_at: float | None = None
    services: tuple[str, ...] = ()
    managed: bool = True

    @property
    def log_file(self) -> Path | None:
        return self.dir / "localstack.log" if self.dir is not None else None

    def client_env(self, region: str = DEFAULT_REGION) -> dict[str, str]:
        return client_env(self.endpoint, region)


@dataclass(frozen=True)
class Status:
    name: str
    state: str  # running, starting (not ready yet), stopped, stale (recorded but the process is gone), external
    cloud: Cloud | None = None
    health: dict[str, Any] = field(default_factory=dict)


# -- what clients need ------------------------------------------------------------------------------------------


def client_env(endpoint: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """Environment variables that point boto3, the AWS CLI, the CDK CLI and cdklocal at a local endpoint."""
    port = str(_port_of(endpoint))
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_S3_FORCE_PATH_STYLE": "1",
        **DUMMY_CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # cdklocal: localhost.localstack.cloud does not resolve offline.
        "LOCALSTACK_HOSTNAME": _host_of(endpoint),
        "EDGE_PORT": port,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }


def shell_exports(env: Mapping[str, str]) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())


def external_endpoint() -> str | None:
    value = os.environ.get(ENDPOINT_VARIABLE, "").strip()
    return value.rstrip("/") or None


# -- set-up -----------------------------------------------------------------------------------------------------


def check_setup(layout: Layout = Layout()) -> None:
    """Raise :class:`SetupMissing` unless both venvs exist, :class:`SetupStale` unless they are newer than their
    lock files and the extension's ``pyproject.toml`` (its entry points are recorded at install time)."""
    for python in (layout.localstack_python, layout.lambda_python):
        if not python.exists():
            raise SetupMissing(f"{python} does not exist: run `make local-setup`")
    if not layout.setup_stamp.exists():
        raise SetupMissing(f"{layout.localstack_venv} is incomplete: run `make local-setup`")
    built = layout.setup_stamp.stat().st_mtime
    stale = [path for path in layout.setup_inputs if path.exists() and path.stat().st_mtime > built]
    if stale:
        names = ", ".join(str(path.relative_to(layout.root)) for path in stale)
        raise SetupStale(f"the local AWS environment is older than {names}: run `make local-setup`")


# -- ports and processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on (LocalStack binds 0.0.0.0 whatever host it is given, so check that)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104  # probing, not serving
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104  # probing, not serving
        except OSError:
            return True
    return False


def process_alive(pid: int) -> bool:
    """The process exists, is not a zombie, and is a LocalStack runtime (guards against a reused PID)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and b"localstack.runtime.main" in cmdline


def localstack_env(
    layout: Layout,
    instance: Instance,
    port: int,
    services: Sequence[str],
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The LocalStack process's environment: the caller's, minus what would leak into it (AWS settings, the
    project venv), plus the instance's configuration."""
    source = os.environ if base is None else base
    env = {
        name: value
        for name, value in source.items()
        if not name.startswith(("AWS_", "DRIFTLOOP_", "PROVIDER_OVERRIDE_"))
        and name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PATH"] = os.pathsep.join([str(layout.localstack_python.parent), env.get("PATH", "/usr/bin:/bin")])
    env.update(
        {
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            # URLs LocalStack hands out (queue URLs, ...) must resolve offline.
            "LOCALSTACK_HOST": f"127.0.0.1:{port}",
            "SQS_ENDPOINT_STRATEGY": "path",
            "SERVICES": ",".join(services),
            "FILESYSTEM_ROOT": str(instance.filesystem_root),
            "TMPDIR": str(instance.tmp),
            "XDG_CACHE_HOME": str(instance.cache),
            "HOME": str(instance.home),
            # LocalStack reads configuration profiles from CONFIG_DIR (~/.localstack by default).
            "CONFIG_DIR": str(instance.home / ".localstack"),
            "CUSTOM_SSL_CERT_PATH": str(instance.certificate),
            "PERSISTENCE": "0",
            # Without it SIGTERM never finishes (the analytics thread retries an unreachable host).
            "DISABLE_EVENTS": "1",
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "LAMBDA_RUNTIME_EXECUTOR": LAMBDA_EXECUTOR,
            "DRIFTLOOP_LAMBDA_PYTHON": str(layout.lambda_python),
            "DRIFTLOOP_S3_STORAGE_DIR": str(instance.s3),
            **{f"PROVIDER_OVERRIDE_{api.upper()}": name for api, name in PROVIDER_OVERRIDES.items()},
            # CloudFormation skips resource types it has no provider for. "0" would fail every type offline: the
            # check runs against LocalStack's support catalog, which it downloads (without it: nothing is
            # supported). localcloud/deploy.py checks the deployed templates' types against the providers instead.
            "CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES": "1",
        }
    )
    env.update(extra or {})
    return env


# -- lifecycle ----------------------------------------------------------------------------------------------------


def start(
    name: str = DEFAULT_NAME,
    *,
    port: int | None = None,
    services: Sequence[str] | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
    layout: Layout = Layout(),
    extra_env: Mapping[str, str] | None = None,
) -> Cloud:
    """Start an instance and wait until it is ready; return it as it is if it already runs.

    ``port``: None = 4566 for the default instance, a free port for others; 0 = a free port.
    """
    external = external_endpoint()
    if external is not None:
        return _external(external)
    check_setup(layout)
    instance = layout.instance(name)
    instance.dir.mkdir(parents=True, exist_ok=True)
    with _locked(instance):
        current = read_state(instance)
        if current is not None and current.pid is not None and process_alive(current.pid):
            return current
        chosen = _choose_port(name, port)
        services = tuple(services or _default_services())
        for directory in instance.data_dirs:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
        env = localstack_env(layout, instance, chosen, services, extra=extra_env)
        with instance.log_file.open("wb") as log:
            process = subprocess.Popen(
                [str(layout.localstack_python), "-m", "localstack.runtime.main"],
                cwd=instance.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        cloud = Cloud(
            name=name,
            endpoint=f"http://127.0.0.1:{chosen}",
            port=chosen,
            pid=process.pid,
            dir=instance.dir,
            started_at=time.time(),
            services=services,
        )
        _write_state(instance, cloud)
        try:
            _wait_ready(cloud, process, timeout)
        except BaseException:
            _terminate(process.pid, grace=5.0)
            instance.state_file.unlink(missing_ok=True)
            raise
        return cloud


def stop(name: str = DEFAULT_NAME, *, grace: float = STOP_GRACE_SECONDS, layout: Layout = Layout()) -> bool:
    """Stop an instance by its recorded PID; False if it was not running."""
    if external_endpoint() is not None:
        return False
    instance = layout.instance(name)
    if not instance.state_file.exists():
        return False
    with _locked(instance):
        cloud = read_state(instance)
        if cloud is None or cloud.pid is None:
            return False
        running = process_alive(cloud.pid)
        if running:
            _terminate(cloud.pid, grace=grace)
        instance.state_file.unlink(missing_ok=True)
        return running


def status(name: str = DEFAULT_NAME, *, layout: Layout = Layout()) -> Status:
    external = external_endpoint()
    if external is not None:
        remote = Cloud(name="external", endpoint=external, port=_port_of(external), managed=False)
        health = fetch_json(f"{external}/_localstack/health") or {}
        return Status(name, "external" if health else "unreachable", remote, health)
    instance = layout.instance(name)
    cloud = read_state(instance)
    if cloud is None or cloud.pid is None:
        return Status(name, "stopped")
    if not process_alive(cloud.pid):
        return Status(name, "stale", cloud)
    health = fetch_json(f"{cloud.endpoint}/_localstack/health") or {}
    ready = (fetch_json(f"{cloud.endpoint}/_localstack/init/ready") or {}).get("completed") is True
    return Status(name, "running" if ready else "starting", cloud, health)


def instance_names(layout: Layout = Layout()) -> list[str]:
    if not layout.instances.is_dir():
        return []
    return sorted(path.parent.name for path in layout.instances.glob("*/instance.json"))


def remove(name: str, *, layout: Layout = Layout()) -> None:
    """Delete a stopped instance's directory (its log included)."""
    instance = layout.instance(name)
    cloud = read_state(instance)
    if cloud is not None and cloud.pid is not None and process_alive(cloud.pid):
        raise LocalCloudError(f"instance {name} is running: stop it first")
    shutil.rmtree(instance.dir, ignore_errors=True)


def read_state(instance: Instance) -> Cloud | None:
    try:
        document = json.loads(instance.state_file.read_text())
    except (OSError, ValueError):
        return None
    return Cloud(
        name=document["name"],
        endpoint=document["endpoint"],
        port=int(document["port"]),
        pid=document.get("pid"),
        dir=Path(document["dir"]),
        started_at=document.get("started_at"),
        services=tuple(document.get("services") or ()),
    )


def fetch_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """GET a JSON document; None when unreachable or not JSON."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310  # checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            document = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def check_extension(cloud: Cloud) -> dict[str, Any]:
    """Raise unless the driftloop extension is active (LocalStack would silently fall back to docker Lambdas)."""
    info = fetch_json(f"{cloud.endpoint}{INFO_PATH}")
    if info is None:
        raise LocalCloudError(
            f"the driftloop LocalStack extension is not loaded ({INFO_PATH} is missing): run `make local-setup`"
        )
    problems = []
    if info.get("lambda", {}).get("executor") != LAMBDA_EXECUTOR:
        problems.append(f"Lambda executor is {info.get('lambda', {}).get('executor')!r}, not {LAMBDA_EXECUTOR!r}")
    if not info.get("lambda", {}).get("python_exists"):
        problems.append(f"the Lambda runtime interpreter {info.get('lambda', {}).get('python')} is missing")
    for api, provider in PROVIDER_OVERRIDES.items():
        if info.get(api, {}).get("provider") != provider:
            problems.append(f"{api} provider is {info.get(api, {}).get('provider')!r}, not {provider!r}")
    if problems:
        raise LocalCloudError("the driftloop LocalStack extension is not active: " + "; ".join(problems))
    return info


# -- internals ---------------------------------------------------------------------------------------------------


def _external(endpoint: str) -> Cloud:
    if fetch_json(f"{endpoint}/_localstack/health") is None:
        raise LocalCloudError(f"{ENDPOINT_VARIABLE}={endpoint} does not answer /_localstack/health")
    return Cloud(name="external", endpoint=endpoint, port=_port_of(endpoint), managed=False)


def _default_services() -> tuple[str, ...]:
    configured = os.environ.get(SERVICES_VARIABLE, "")
    names = tuple(part.strip() for part in configured.split(",") if part.strip())
    return names or DEFAULT_SERVICES


def _choose_port(name: str, port: int | None) -> int:
    if port is None:
        port = DEFAULT_PORT if name == DEFAULT_NAME else 0
    if port == 0:
        return free_port()
    if port_in_use(port):
        raise LocalCloudError(
            f"port {port} is in use (another LocalStack?): pick another with --port (0 = any free port), "
            f"or use the running one with {ENDPOINT_VARIABLE}=http://127.0.0.1:{port}"
        )
    return port


def _wait_ready(cloud: Cloud, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise LocalCloudError(
                f"LocalStack exited with status {code} during start-up; the end of {cloud.log_file}:\n"
                + log_tail(cloud.log_file)
            )
        ready = fetch_json(f"{cloud.endpoint}/_localstack/init/ready", timeout=1.0)
        if ready is not None and ready.get("completed") is True:
            break
        if time.monotonic() > deadline:
            raise LocalCloudError(
                f"LocalStack was not ready after {timeout:.0f} s; the end of {cloud.log_file}:\n"
                + log_tail(cloud.log_file)
            )
        time.sleep(0.1)
    check_extension(cloud)


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the LocalStack process, wait, then SIGKILL its whole process group (the Lambda runtimes in it)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not process_alive(pid):
            break
        time.sleep(0.1)
    # start_new_session made the LocalStack process the leader of its own group: pgid == pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        try:
            os.killpg(pid, 0)  # raises once every process of the group is gone
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect the exit status when the instance is our own child (else it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _write_state(instance: Instance, cloud: Cloud) -> None:
    document = asdict(cloud)
    document["dir"] = str(cloud.dir)
    document["services"] = list(cloud.services)
    temporary = instance.state_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(instance.state_file)


@contextlib.contextmanager
def _locked(instance: Instance) -> Iterator[None]:
    """One start/stop at a time per instance, across processes."""
    instance.dir.mkdir(parents=True, exist_ok=True)
    with (instance.dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _port_of(endpoint: str) -> int:
    match = re.match(r"^\w+://[^/:]+:(\d+)", endpoint)
    if match:
        return int(match.group(1))
    return 443 if endpoint.startswith("https") else 80


def _host_of(endpoint: str) -> str:
    match = re.match(r"^\w+://([^/:]+)", endpoint)
    return match.group(1) if match else "127.0.0.1"
