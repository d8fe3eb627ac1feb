"""The environment contract base: what CDK renders is what the handler reads back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from functions.common import env
from functions.common.env import EnvContract, EnvError, variable


@dataclass(frozen=True, kw_only=True)
class ExampleSettings(EnvContract):
    description = "example"

    bucket: str = variable("EXAMPLE_BUCKET")
    batch: int = variable("EXAMPLE_BATCH", env.POSITIVE_INT)
    share: float = variable("EXAMPLE_SHARE", env.FRACTION, default=0.5)
    enabled: bool = variable("EXAMPLE_ENABLED", env.BOOLEAN, default=False)
    work_dir: Path | None = variable("EXAMPLE_WORK_DIR", env.PATH, default=None)
    options: dict[str, str] = variable("EXAMPLE_OPTIONS", env.STRING_MAP, default_factory=dict)

    def validate(self) -> None:
        if self.enabled and self.work_dir is None:
            raise ValueError("EXAMPLE_ENABLED=true needs EXAMPLE_WORK_DIR")


def test_rendered_environment_reads_back_as_the_same_settings() -> None:
    settings = ExampleSettings(
        service="svc", bucket="b", batch=3, share=0.25, enabled=True, work_dir=Path("/tmp/w"), options={"a": "1"}
    )
    rendered = settings.to_env()
    assert rendered == {
        "POWERTOOLS_SERVICE_NAME": "svc",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "EXAMPLE_BUCKET": "b",
        "EXAMPLE_BATCH": "3",
        "EXAMPLE_SHARE": "0.25",
        "EXAMPLE_ENABLED": "true",
        "EXAMPLE_WORK_DIR": "/tmp/w",
        "EXAMPLE_OPTIONS": '{"a": "1"}',
    }
    assert ExampleSettings.from_env(rendered) == settings


def test_absent_optional_variables_take_their_defaults_and_none_is_not_rendered() -> None:
    settings = ExampleSettings.from_env({"POWERTOOLS_SERVICE_NAME": "svc", "EXAMPLE_BUCKET": "b", "EXAMPLE_BATCH": "1"})
    assert (settings.share, settings.enabled, settings.work_dir, settings.options) == (0.5, False, None, {})
    assert "EXAMPLE_WORK_DIR" not in settings.to_env()


def test_every_missing_or_malformed_variable_is_named_in_one_error() -> None:
    with pytest.raises(EnvError) as caught:
        ExampleSettings.from_env({"EXAMPLE_BATCH": "0", "EXAMPLE_SHARE": "2", "POWERTOOLS_LOG_LEVEL": "LOUD"})
    message = str(caught.value)
    assert "invalid example environment" in message
    for expected in (
        "POWERTOOLS_SERVICE_NAME is required",
        "EXAMPLE_BUCKET is required",
        "EXAMPLE_BATCH='0': must be an integer >= 1",
        "EXAMPLE_SHARE='2': must be a number between 0 and 1",
        "POWERTOOLS_LOG_LEVEL='LOUD': must be one of DEBUG, INFO, WARNING, ERROR",
    ):
        assert expected in message


def test_a_relation_between_fields_is_checked_when_reading() -> None:
    with pytest.raises(EnvError, match="EXAMPLE_ENABLED=true needs EXAMPLE_WORK_DIR"):
        ExampleSettings.from_env(
            {"POWERTOOLS_SERVICE_NAME": "s", "EXAMPLE_BUCKET": "b", "EXAMPLE_BATCH": "1", "EXAMPLE_ENABLED": "true"}
        )


def test_a_relation_between_fields_is_checked_when_rendering() -> None:
    with pytest.raises(ValueError, match="needs EXAMPLE_WORK_DIR"):
        ExampleSettings(service="s", bucket="b", batch=1, enabled=True)


def test_variables_maps_each_field_to_its_variable() -> None:
    assert ExampleSettings.variables()["batch"] == "EXAMPLE_BATCH"
    assert ExampleSettings.variables()["service"] == "POWERTOOLS_SERVICE_NAME"


def test_a_malformed_required_variable_is_an_env_error_naming_it() -> None:
    with pytest.raises(EnvError) as caught:
        ExampleSettings.from_env({"POWERTOOLS_SERVICE_NAME": "s", "EXAMPLE_BUCKET": "b", "EXAMPLE_BATCH": "x"})
    assert "EXAMPLE_BATCH='x': must be an integer >= 1" in str(caught.value)


def test_a_relation_is_reported_beside_a_malformed_optional_variable() -> None:
    with pytest.raises(EnvError) as caught:
        ExampleSettings.from_env(
            {
                "POWERTOOLS_SERVICE_NAME": "s",
                "EXAMPLE_BUCKET": "b",
                "EXAMPLE_BATCH": "1",
                "EXAMPLE_ENABLED": "true",
                "EXAMPLE_SHARE": "2",
            }
        )
    assert "EXAMPLE_SHARE='2'" in str(caught.value)
    assert "EXAMPLE_ENABLED=true needs EXAMPLE_WORK_DIR" in str(caught.value)
