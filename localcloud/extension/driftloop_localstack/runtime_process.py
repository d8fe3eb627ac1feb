"""One Lambda execution environment as a local process: AWS's Runtime Interface Client (``awslambdaric``) running
the function's handler in a Python 3.12 interpreter, fed through a :class:`~.runtime_api.RuntimeApi` server.

What a real Lambda environment does and this reproduces:

- init: the interpreter imports the handler; the environment is ready when the runtime first polls for an event.
  An import error is posted to ``/runtime/init/error`` and becomes the invocation's error
  (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound`` ...).
- invoke: one event at a time; the timeout is enforced here (the process is killed and the caller gets
  ``Sandbox.Timedout``); a runtime that dies mid-invocation gives ``Runtime.ExitError``; after either, the next
  invocation starts a fresh process (a new init), as Lambda resets the sandbox.
- logs: everything the process writes to stdout/stderr, framed by ``START``/``END``/``REPORT`` lines (duration,
  billed duration, memory size, max memory used, init duration on a cold start), one block per invocation.

Not reproduced: the memory limit, the read-only file system, the network sandbox. Standard library only (see
``runtime_api``), so it is unit-tested without LocalStack.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .runtime_api import Invocation, Outcome, RuntimeApi, error_document

# Output kept for get_logs() (all logs of the environment) and per invocation.
HISTORY_BYTES = 1024 * 1024
INVOCATION_LOG_BYTES = 4 * 1024 * 1024
STOP_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class FunctionSpec:
    """What one execution environment runs."""

    function_name: str
    handler: str  # "module.function"
    code_dir: Path  # the unzipped deployment package: first on PYTHONPATH, the working directory
    python: Path  # the interpreter, with awslambdaric and boto3 installed (the runtime)
    timeout_seconds: float
    memory_mb: int
    work_dir: Path  # HOME and TMPDIR of the function (its /tmp): created on start, removed on stop
    environment: Mapping[str, str] = field(default_factory=dict)  # Lambda's variables and the function's own
    runtime: str = "python3.12"
    version: str = "$LATEST"
    extra_paths: Sequence[Path] = ()  # after the code on PYTHONPATH (layers)


@dataclass(frozen=True)
class InvokeResult:
    request_id: str
    payload: bytes
    is_error: bool
    logs: str


class InitError(Exception):
    """The function failed to initialise; ``payload`` is the Lambda error document for the caller."""

    def __init__(self, payload: bytes, logs: str) -> None:
        super().__init__(payload.decode(errors="replace"))
        self.payload = payload
        self.logs = logs


class EnvironmentStopped(Exception):
    """The environment was stopped while starting or invoking."""


def runtime_environment(spec: FunctionSpec, api_address: str) -> dict[str, str]:
    """The runtime process's environment: the function's variables, then what Lambda reserves.

    Nothing is inherited from the LocalStack process (its config, its venv, the host's AWS profile).
    """
    env = {name: str(value) for name, value in spec.environment.items()}
    python_path = [str(spec.code_dir), *(str(path) for path in spec.extra_paths)]
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": api_address,
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LAMBDA_RUNTIME_DIR": str(spec.python.parent.parent),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "PATH": os.pathsep.join([str(spec.python.parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            "LANG": "en_US.UTF-8",
            "HOME": str(spec.work_dir),
            "TMPDIR": str(spec.work_dir),
        }
    )
    env.setdefault("TZ", ":UTC")
    return env


def timeout_error(request_id: str, timeout_seconds: float) -> bytes:
    return error_document(
        "Sandbox.Timedout", f"RequestId: {request_id} Error: Task timed out after {timeout_seconds:.2f} seconds"
    )


def exit_error(request_id: str, returncode: int) -> bytes:
    return error_document(
        "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with error: {_how(returncode)}"
    )


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int | None,
    init_ms: float | None = None,
    status: str | None = None,
) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms + (init_ms or 0.0)))} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_mb if max_memory_mb is not None else '-'} MB",
    ]
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    if status is not None:
        parts.append(f"Status: {status}")
    return "\t".join(parts) + "\t\n"


def peak_memory_mb(pid: int) -> int | None:
    """The process's peak resident set (VmHWM) in MB, from /proc; None where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return math.ceil(int(line.split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None


class RuntimeProcess:
    """One execution environment: ``start()`` (blocks until initialised), ``invoke()`` (blocks, enforces the
    timeout), ``stop()`` (safe from any thread, also while ``start`` or ``invoke`` block), ``logs()``."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._api = RuntimeApi(on_change=self._wake)
        self._api_started = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._out_fd: int | None = None
        self._out_eof = False
        self._spawned_at = 0.0
        self._init_ms: float | None = None  # of the current process, reported once (cold start)
        self._pending = bytearray()  # output not yet attributed to an invocation
        self._truncated = 0
        self._history: collections.deque[bytes] = collections.deque()
        self._history_size = 0
        self._stopping = threading.Event()
        self._io_lock = threading.RLock()  # one thread reads the output and waits on the API at a time
        self._history_lock = threading.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def api_address(self) -> str:
        return self._api.address

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the runtime and wait until it asks for its first event. Raises :class:`InitError` when the
        function fails to initialise, :class:`EnvironmentStopped` when ``stop()`` was called meanwhile."""
        with self._io_lock:
            self._spawn()
            self._await_init()

    def invoke(
        self,
        request_id: str,
        payload: bytes,
        function_arn: str,
        *,
        trace_id: str | None = None,
        client_context: str | None = None,
    ) -> InvokeResult:
        with self._io_lock:
            if self._stopping.is_set():
                raise EnvironmentStopped("the execution environment is stopped")
            if self._proc is None or self._proc.poll() is not None:
                # The previous invocation timed out or crashed the runtime: a new sandbox, a new init.
                try:
                    self._spawn()
                    self._await_init()
                except InitError as exc:
                    return InvokeResult(request_id, exc.payload, True, exc.logs)
            proc = self._proc
            assert proc is not None
            init_ms, self._init_ms = self._init_ms, None
            logs = self._take_pending()
            logs += f"START RequestId: {request_id} Version: {self.spec.version}\n"
            started = time.monotonic()
            deadline = started + self.spec.timeout_seconds
            self._api.submit(
                Invocation(
                    request_id=request_id,
                    payload=payload,
                    deadline_ms=int((time.time() + self.spec.timeout_seconds) * 1000),
                    function_arn=function_arn,
                    trace_id=trace_id,
                    client_context=client_context,
                )
            )
            outcome: Outcome | None = None

            def finished() -> bool:
                nonlocal outcome
                outcome = outcome or self._api.take_outcome(request_id)
                return outcome is not None

            reason = self._pump(finished, deadline)
            duration_ms = (time.monotonic() - started) * 1000
            memory = peak_memory_mb(proc.pid)
            status: str | None = None
            if reason == "done":
                assert outcome is not None
                self._drain()
                result_payload, is_error = outcome.payload, outcome.is_error
            elif reason == "stopped":
                self._api.abandon(request_id)
                raise EnvironmentStopped(f"the execution environment was stopped during invocation {request_id}")
            elif reason == "deadline":
                self._api.abandon(request_id)
                self._kill(grace=0)
                self._drain()
                result_payload, is_error, status = timeout_error(request_id, self.spec.timeout_seconds), True, "timeout"
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                self._pending += (
                    f"{stamp} {request_id} Task timed out after {self.spec.timeout_seconds:.2f} seconds\n".encode()
                )
            else:  # the runtime exited
                self._api.abandon(request_id)
                self._drain()
                returncode = proc.wait()
                result_payload, is_error, status = exit_error(request_id, returncode), True, "error"
                failure = f"RequestId: {request_id} Error: Runtime exited with error: {_how(returncode)}"
                self._pending += f"{failure}\nRuntime.ExitError\n".encode()
            logs += self._take_pending()
            logs += f"END RequestId: {request_id}\n"
            logs += report_line(request_id, duration_ms, self.spec.memory_mb, memory, init_ms, status)
            return InvokeResult(request_id, result_payload, is_error, logs)

    def stop(self) -> None:
        """Kill the runtime and release everything; idempotent, callable from any thread."""
        self._stopping.set()
        self._wake()
        self._kill(grace=STOP_GRACE_SECONDS)
        acquired = self._io_lock.acquire(timeout=10)
        try:
            if self._closed:
                return
            self._closed = True
            self._api.close()
            if self._out_fd is not None and self._proc is not None and self._proc.stdout is not None:
                self._proc.stdout.close()
            self._out_fd = None
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            shutil.rmtree(self.spec.work_dir, ignore_errors=True)
        finally:
            if acquired:
                self._io_lock.release()

    def logs(self) -> str:
        """Everything the runtime wrote in this environment (the last ``HISTORY_BYTES``)."""
        with self._history_lock:
            return b"".join(self._history).decode(errors="replace")

    # -- internals ---------------------------------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._stopping.is_set():
            raise EnvironmentStopped("the execution environment is stopped")
        if not self.spec.python.exists():
            raise FileNotFoundError(
                f"Lambda runtime interpreter not found: {self.spec.python} (run `make local-setup`)"
            )
        if not self._api_started:
            self._api.start()
            self._api_started = True
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        self._api.reset()
        self.spec.work_dir.mkdir(parents=True, exist_ok=True)
        self._note(f"INIT_START Runtime Version: {self.spec.runtime} (local process: {self.spec.python})\n".encode())
        self._spawned_at = time.monotonic()
        self._proc = subprocess.Popen(
            [str(self.spec.python), "-m", "awslambdaric", self.spec.handler],
            cwd=self.spec.code_dir,
            env=runtime_environment(self.spec, self._api.address),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
        )
        assert self._proc.stdout is not None
        self._out_fd = self._proc.stdout.fileno()
        os.set_blocking(self._out_fd, False)
        self._out_eof = False
        self._init_ms = None

    def _await_init(self) -> None:
        def initialised() -> bool:
            return self._api.polls > 0 or self._api.init_error is not None

        reason = self._pump(initialised, deadline=None)
        if reason == "stopped":
            raise EnvironmentStopped("the execution environment was stopped during its initialisation")
        init_error = self._api.init_error
        if reason == "done" and init_error is None:
            self._init_ms = (time.monotonic() - self._spawned_at) * 1000
            return
        proc = self._proc
        assert proc is not None
        if init_error is not None:
            # awslambdaric exits right after posting the init error.
            try:
                proc.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._kill(grace=0)
            payload = init_error
        else:
            payload = exit_error("", proc.wait())
        self._drain()
        raise InitError(payload, self._take_pending())

    def _pump(self, done: Callable[[], bool], deadline: float | None) -> str:
        """Collect the runtime's output until ``done()``; returns "done", "deadline", "exited" or "stopped"."""
        proc = self._proc
        assert proc is not None
        while True:
            if done():
                return "done"
            if self._stopping.is_set():
                return "stopped"
            if proc.poll() is not None:
                self._drain()
                # A result posted just before the process exited still counts.
                return "done" if done() else "exited"
            # Once the output is closed the process is exiting: look at it more often.
            wait = 0.02 if self._out_eof else 0.25
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "deadline"
                wait = min(wait, remaining)
            fds = [self._wake_r] if self._out_eof or self._out_fd is None else [self._wake_r, self._out_fd]
            readable, _, _ = select.select(fds, [], [], wait)
            if self._wake_r in readable:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            if self._out_fd is not None and self._out_fd in readable:
                self._drain()

    def _drain(self) -> None:
        """Read whatever output is buffered in the pipe, without blocking."""
        if self._out_fd is None or self._out_eof:
            return
        while True:
            try:
                chunk = os.read(self._out_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                self._out_eof = True
                return
            if not chunk:
                self._out_eof = True
                return
            self._note(chunk)

    def _note(self, chunk: bytes) -> None:
        room = INVOCATION_LOG_BYTES - len(self._pending)
        if room > 0:
            self._pending += chunk[:room]
        self._truncated += max(0, len(chunk) - max(room, 0))
        with self._history_lock:
            self._history.append(chunk)
            self._history_size += len(chunk)
            while self._history_size > HISTORY_BYTES and len(self._history) > 1:
                self._history_size -= len(self._history.popleft())

    def _take_pending(self) -> str:
        text = self._pending.decode(errors="replace")
        if self._truncated:
            text += f"[driftloop: {self._truncated} bytes of output not shown]\n"
        self._pending = bytearray()
        self._truncated = 0
        return text

    def _kill(self, grace: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            if grace > 0:
                proc.terminate()
                try:
                    proc.wait(timeout=grace)
                    return
                except subprocess.TimeoutExpired:
                    pass
            proc.kill()
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed (stopped)
            os.write(self._wake_w, b"!")


def _how(returncode: int) -> str:
    return f"signal: {-returncode}" if returncode < 0 else f"exit status {returncode}"
