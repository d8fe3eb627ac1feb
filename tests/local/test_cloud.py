"""localcloud/cloud.py without LocalStack: its helpers, and the whole start/status/stop cycle against a stand-in
process (tests/local/fake_localstack.py) that answers the endpoints cloud.py waits for."""

from __future__ import annotations

import os
import re
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import cloud

FAKE = Path(__file__).with_name("fake_localstack.py")


@pytest.fixture(autouse=True)
def no_external_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cloud.ENDPOINT_VARIABLE, raising=False)
    monkeypatch.delenv(cloud.SERVICES_VARIABLE, raising=False)


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[cloud.Layout]:
    """A repository with set-up venvs whose 'LocalStack' is the stand-in; its instances are stopped afterwards."""
    layout = cloud.Layout(root=tmp_path)
    for path in layout.setup_inputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# input\n")
    python = layout.localstack_python
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    layout.lambda_python.parent.mkdir(parents=True)
    layout.lambda_python.write_text("")
    layout.setup_stamp.touch()
    yield layout
    monkeypatch.delenv(cloud.ENDPOINT_VARIABLE, raising=False)  # else stop() leaves everything to the endpoint
    for name in cloud.instance_names(layout):
        cloud.stop(name, grace=1, layout=layout)


def start(layout: cloud.Layout, name: str, mode: str = "ok") -> cloud.Cloud:
    return cloud.start(name, port=0, layout=layout, timeout=20, extra_env={"FAKE_MODE": mode})


# -- helpers ------------------------------------------------------------------------------------------------------


def test_client_env_points_every_client_at_the_endpoint() -> None:
    env = cloud.client_env("http://127.0.0.1:4599", region="eu-west-1")
    assert env["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:4599"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "test"
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_S3_FORCE_PATH_STYLE"] == "1"
    assert (env["LOCALSTACK_HOSTNAME"], env["EDGE_PORT"]) == ("127.0.0.1", "4599")
    assert env["CDK_DISABLE_CLI_TELEMETRY"] == "true"


def test_shell_exports_are_quoted() -> None:
    assert cloud.shell_exports({"A": "x y", "B": "plain"}) == "export A='x y'\nexport B=plain"


def test_localstack_env_isolates_the_instance(tmp_path: Path) -> None:
    layout = cloud.Layout(root=tmp_path)
    base = {
        "PATH": "/usr/bin",
        "AWS_PROFILE": "production",
        "AWS_ENDPOINT_URL": "http://elsewhere",
        "VIRTUAL_ENV": "/project/.venv",
        "PYTHONPATH": "/project",
        "PROVIDER_OVERRIDE_S3": "other",
        "LS_LOG": "debug",
    }
    one = cloud.localstack_env(layout, layout.instance("one"), 4601, ["s3", "lambda"], base=base)
    two = cloud.localstack_env(layout, layout.instance("two"), 4602, ["s3"], base=base)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "VIRTUAL_ENV", "PYTHONPATH"):
        assert name not in one
    assert one["LS_LOG"] == "debug"  # LocalStack's own settings pass through
    assert one["PATH"].startswith(str(layout.localstack_python.parent))
    assert one["GATEWAY_LISTEN"] == "127.0.0.1:4601"
    assert one["LOCALSTACK_HOST"] == "127.0.0.1:4601"
    assert one["SERVICES"] == "s3,lambda"
    assert one["DISABLE_EVENTS"] == "1"
    assert one["LAMBDA_RUNTIME_EXECUTOR"] == cloud.LAMBDA_EXECUTOR
    assert one["PROVIDER_OVERRIDE_S3"] == "driftloop"
    assert one["DRIFTLOOP_LAMBDA_PYTHON"] == str(layout.lambda_python)
    assert one["CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES"] == "1"  # deploy.py checks the types (see cloud.py)
    directories = ("FILESYSTEM_ROOT", "TMPDIR", "XDG_CACHE_HOME", "DRIFTLOOP_S3_STORAGE_DIR")
    for name in directories:
        assert Path(one[name]).is_relative_to(layout.instances / "one")
        assert Path(two[name]).is_relative_to(layout.instances / "two")
    assert len({one[name] for name in directories} | {two[name] for name in directories}) == 2 * len(directories)


@pytest.mark.parametrize("name", ["", "../up", "UPPER", "a/b", "-x", "x" * 64])
def test_instance_names_are_checked(name: str) -> None:
    with pytest.raises(cloud.LocalCloudError):
        cloud.Layout().instance(name)


def test_ports() -> None:
    port = cloud.free_port()
    assert not cloud.port_in_use(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert cloud.port_in_use(port)


def test_check_setup(tmp_path: Path, layout: cloud.Layout) -> None:
    cloud.check_setup(layout)
    future = time.time() + 10
    os.utime(layout.setup_inputs[0], (future, future))
    with pytest.raises(cloud.SetupStale, match=r"requirements\.txt"):
        cloud.check_setup(layout)
    with pytest.raises(cloud.SetupMissing, match="make local-setup"):
        cloud.check_setup(cloud.Layout(root=tmp_path / "fresh-clone"))


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert cloud.log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert cloud.log_tail(tmp_path / "missing") == ""


# -- lifecycle against the stand-in ---------------------------------------------------------------------------------


def test_start_status_stop(layout: cloud.Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    running = start(layout, "one")
    assert running.managed
    assert running.pid is not None
    assert cloud.process_alive(running.pid)
    assert running.endpoint == f"http://127.0.0.1:{running.port}"
    info = cloud.fetch_json(f"{running.endpoint}/_localstack/driftloop")
    assert info is not None
    assert info["env"]["TMPDIR"] == str(layout.instances / "one" / "tmp")
    assert info["env"]["AWS_PROFILE"] is None
    state = cloud.status("one", layout=layout)
    assert state.state == "running"
    assert state.cloud == running
    assert state.health["services"]["s3"] == "running"
    assert cloud.instance_names(layout) == ["one"]
    # Starting it again returns the running instance.
    assert start(layout, "one") == running

    assert cloud.stop("one", layout=layout)
    assert not cloud.process_alive(running.pid)
    assert cloud.status("one", layout=layout).state == "stopped"
    assert not cloud.stop("one", layout=layout)
    assert (layout.instances / "one" / "localstack.log").exists()
    cloud.remove("one", layout=layout)
    assert not (layout.instances / "one").exists()


def test_two_instances_share_nothing(layout: cloud.Layout) -> None:
    one, two = start(layout, "one"), start(layout, "two")
    assert one.port != two.port
    assert one.pid != two.pid
    assert one.dir != two.dir
    cloud.stop("one", layout=layout)
    assert cloud.status("two", layout=layout).state == "running"
    assert cloud.fetch_json(f"{two.endpoint}/_localstack/health") is not None


def test_start_failure_shows_the_log(layout: cloud.Layout) -> None:
    with pytest.raises(cloud.LocalCloudError, match=r"(?s)exited with status 3.*boom: cannot start"):
        start(layout, "broken", mode="exit")
    assert cloud.status("broken", layout=layout).state == "stopped"


def test_instance_without_the_extension_is_refused(layout: cloud.Layout) -> None:
    with pytest.raises(cloud.LocalCloudError, match="extension is not loaded"):
        start(layout, "plain", mode="no-extension")
    assert cloud.status("plain", layout=layout).state == "stopped"
    log = (layout.instances / "plain" / "localstack.log").read_text()
    assert "fake LocalStack no-extension" in log


def test_stop_kills_a_process_that_ignores_sigterm_and_its_group(layout: cloud.Layout) -> None:
    running = start(layout, "stubborn", mode="stubborn")
    assert running.pid is not None
    log = layout.instances / "stubborn" / "localstack.log"
    match = None
    for _ in range(50):
        match = re.search(r"child (\d+)", log.read_text())
        if match:
            break
        time.sleep(0.1)
    assert match is not None
    child = int(match.group(1))
    started = time.monotonic()
    assert cloud.stop("stubborn", grace=1, layout=layout)
    assert time.monotonic() - started < 10
    assert not cloud.process_alive(running.pid)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_busy_port_is_refused(layout: cloud.Layout) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(cloud.LocalCloudError, match="in use"):
            cloud.start("busy", port=port, layout=layout)


def test_external_endpoint_is_used_as_is(layout: cloud.Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    running = start(layout, "remote")
    monkeypatch.setenv(cloud.ENDPOINT_VARIABLE, running.endpoint + "/")
    external = cloud.start(layout=cloud.Layout(root=layout.root / "elsewhere"))
    assert not external.managed
    assert external.endpoint == running.endpoint
    assert external.pid is None
    assert cloud.status(layout=layout).state == "external"
    assert not cloud.stop(layout=layout)
    monkeypatch.setenv(cloud.ENDPOINT_VARIABLE, "http://127.0.0.1:1")
    with pytest.raises(cloud.LocalCloudError, match="does not answer"):
        cloud.start()


# -- the CLI (driftloop local ...) -----------------------------------------------------------------------------------


def test_cli_status_and_env_of_a_stopped_instance(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    assert main(["local", "status", "--name", "never-started"]) == 1
    assert capsys.readouterr().out.strip() == "never-started: stopped"
    assert main(["local", "env", "--name", "never-started"]) == 1
    assert "driftloop local up" in capsys.readouterr().err
    assert main(["local", "down", "--name", "never-started"]) == 0
    assert "was not running" in capsys.readouterr().out
    assert not (cloud.Layout().instances / "never-started").exists()


def test_cli_env_of_an_external_endpoint(
    layout: cloud.Layout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    running = start(layout, "remote")
    monkeypatch.setenv(cloud.ENDPOINT_VARIABLE, running.endpoint)
    assert main(["local", "env"]) == 0
    assert f"export AWS_ENDPOINT_URL={running.endpoint}\n" in capsys.readouterr().out
    assert main(["local", "up"]) == 0
    assert "external, not managed here" in capsys.readouterr().err
