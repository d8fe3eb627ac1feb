"""Lambda output in the function's own log group, and CloudWatch Logs subscription filters that filter, as on AWS.

How a Lambda function's output gets there: the local executor (:mod:`.lambda_executor`) returns each invocation's
output to LocalStack's Lambda service, whose log handler (``services/lambda_/invocation/logs.py``) puts every
non-empty line, newline kept, as one event into the log group ``ExecutionEnvironment.get_log_group_name`` names:
always ``/aws/lambda/<function>`` in LocalStack 2026.3.0, even for a function whose ``LoggingConfig.LogGroup``
names another group (as every driftloop function's does: its stack creates the group), so a subscription on that
group would never see an event. :func:`install` makes it the configured group when there is one (the default
otherwise), as on AWS; ``AWS_LAMBDA_LOG_GROUP_NAME`` follows. LocalStack 2026.3.0's CloudWatch Logs
then hands each ``PutLogEvents`` batch to the group's subscription filters (``moto_put_log_events`` in
``services/logs/provider.py``): it gzips the envelope for a Firehose destination, as AWS does, but matches events
with ``get_pattern_matcher``, a stub that matches everything (the pattern matching is "only patched in pro"), so a
subscription ships the whole group (EMF lines, events, tracebacks) to the capture stream.

At LocalStack start (an ``on_infra_start`` hook) :func:`install` puts
:func:`driftloop_localstack.log_filter_patterns.compile_pattern` in the stub's place, and wraps
``LogsBackend.put_subscription_filter`` to refuse a pattern the emulation does not implement
(``InvalidParameterException``, also logged as an error) rather than ship events AWS would not. Metric filters go
through the same matcher: a pattern it does not implement matches every event there, as before, with an error
logged once per pattern.

Private internals: :func:`install` checks the exact ``localstack-core`` version and that both names exist;
anything else aborts LocalStack's start-up.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, Final

from localstack.runtime import hooks

from driftloop_localstack.pinning import refuse_unless_clean, version_problems

from .log_filter_patterns import UnsupportedPattern, compile_pattern

LOG = logging.getLogger(__name__)

_MARKER: Final[str] = "driftloop_log_subscriptions"

# LocalStack's matcher interface: (pattern, log event {"timestamp", "message"}) -> whether it matches.
EventMatcher = Callable[[str, dict[str, Any]], bool]


@functools.lru_cache(maxsize=256)
def event_matcher(pattern: str) -> EventMatcher:
    """The matcher LocalStack asks for (compiled once per pattern)."""
    try:
        matches = compile_pattern(pattern)
    except UnsupportedPattern as exc:
        LOG.error("CloudWatch Logs: %s; events are matched as LocalStack does (all of them)", exc)
        return lambda _pattern, _event: True
    return lambda _pattern, event: matches(str(event.get("message", "")))


def _check_internals() -> tuple[Any, Any, Any]:
    from localstack.services.lambda_.invocation.execution_environment import ExecutionEnvironment
    from localstack.services.logs import provider
    from moto.logs.models import LogsBackend

    problems = version_problems()
    method = getattr(ExecutionEnvironment, "get_log_group_name", None)
    if method is None or list(inspect.signature(method).parameters) != ["self"]:
        problems.append("ExecutionEnvironment.get_log_group_name changed")
    if not callable(getattr(provider, "get_pattern_matcher", None)):
        problems.append("localstack.services.logs.provider.get_pattern_matcher changed")
    if not callable(getattr(LogsBackend, "put_subscription_filter", None)):
        problems.append("LogsBackend.put_subscription_filter changed")
    refuse_unless_clean("driftloop_localstack.log_subscriptions", problems)
    return provider, LogsBackend, ExecutionEnvironment


def install() -> None:
    """Log to the configured group; filter subscriptions by their patterns (idempotent)."""
    provider, backend_class, environment_class = _check_internals()
    original = backend_class.put_subscription_filter
    if getattr(original, _MARKER, False):
        return
    default_group = environment_class.get_log_group_name

    def get_log_group_name(self: Any) -> str:
        configured = (self.function_version.config.logging_config or {}).get("LogGroup")
        return str(configured) if configured else str(default_group(self))

    def put_subscription_filter(self: Any, *args: Any, **kwargs: Any) -> Any:
        from localstack.aws.api.logs import InvalidParameterException

        # moto's order: log_group_name, filter_name, filter_pattern, destination_arn, role_arn.
        pattern = args[2] if len(args) > 2 else kwargs.get("filter_pattern")
        try:
            compile_pattern(str(pattern or ""))
        except UnsupportedPattern as exc:
            LOG.error("CloudWatch Logs: subscription filter refused: %s", exc)
            raise InvalidParameterException(str(exc)) from None
        return original(self, *args, **kwargs)

    setattr(put_subscription_filter, _MARKER, True)
    backend_class.put_subscription_filter = put_subscription_filter
    provider.get_pattern_matcher = event_matcher
    environment_class.get_log_group_name = get_log_group_name
    LOG.info(
        "Lambda logs go to each function's LoggingConfig.LogGroup; CloudWatch Logs subscription and metric filters "
        "match events by their JSON filter patterns"
    )


@hooks.on_infra_start()
def install_log_subscriptions() -> None:
    install()
