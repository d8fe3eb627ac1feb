"""The monitoring stack: the scheduled monitor and its role, the alarms, the alarm -> rule -> state machine wiring,
the other retraining triggers, the operations topic and the dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from functions.common.metrics import NAMESPACE, Dimension, InferenceMetric, MonitorMetric
from functions.monitor.settings import MonitorSettings
from infra.constructs.monitor_function import MONITOR_HANDLER
from infra.stacks.wiring import DriftloopStacks
from tests.infra.conftest import build, cdk_context, function_environment

DATA_BUCKET = {"Fn::ImportValue": "driftloop-dev-DataBucketName"}
MODEL_BUCKET = {"Fn::ImportValue": "driftloop-dev-ModelBucketName"}
MONITOR_SERVICE = [{"Name": "Service", "Value": "driftloop-dev-monitor"}]
# The Service dimension of each publisher in the dev stage, and the metrics the contract lets it publish.
SERVICE_METRICS: dict[str, set[str]] = {
    "driftloop-dev-inference": set(InferenceMetric),
    "driftloop-dev-monitor": set(MonitorMetric),
}
MODEL_ALARMS = ("driftloop-dev-data-drift", "driftloop-dev-live-accuracy", "driftloop-dev-live-rmse")
OPERATIONAL_ALARMS = (
    "driftloop-dev-api-5xx-rate",
    "driftloop-dev-api-p99-latency",
    "driftloop-dev-inference-errors",
    "driftloop-dev-inference-throttles",
    "driftloop-dev-capture-failures",
    "driftloop-dev-training-failures",
    "driftloop-dev-monitor-errors",
    "driftloop-dev-monitor-blind",
    "driftloop-dev-data-quality",
    "driftloop-dev-event-delivery-failures",
    "driftloop-dev-captures-delivery-failures",
    "driftloop-dev-feedback-delivery-failures",
    "driftloop-dev-captures-delivery-freshness",
    "driftloop-dev-feedback-delivery-freshness",
    "driftloop-dev-capture-shipping",
)


def objects(bucket: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", bucket, f"/{prefix}*"]]}


@pytest.fixture(scope="module")
def template(dev: DriftloopStacks) -> Template:
    return Template.from_stack(dev.monitoring)


@pytest.fixture(scope="module")
def custom() -> DriftloopStacks:
    """Every trigger on, another schedule and M of N, an e-mail address."""
    return build(
        cdk_context(
            overrides={
                "monitoring": {
                    "schedule_minutes": 30,
                    "window_minutes": 90,
                    "drift_threshold": 0.3,
                    "drift_datapoints_to_alarm": 3,
                    "drift_evaluation_periods": 5,
                    "alarm_email": "ops@example.com",
                },
                "retraining": {"schedule_enabled": True, "schedule_expression": "rate(7 days)", "on_new_data": True},
            }
        )
    )


@pytest.fixture(scope="module")
def custom_template(custom: DriftloopStacks) -> Template:
    return Template.from_stack(custom.monitoring)


def alarms(template: Template) -> dict[str, tuple[str, dict[str, Any]]]:
    """alarm name -> (logical id, properties)."""
    return {
        resource["Properties"]["AlarmName"]: (logical_id, resource["Properties"])
        for logical_id, resource in template.find_resources("AWS::CloudWatch::Alarm").items()
    }


def rules(template: Template) -> dict[str, dict[str, Any]]:
    """rule name (or logical id when unnamed) -> properties."""
    return {
        resource["Properties"].get("Name", logical_id): resource["Properties"]
        for logical_id, resource in template.find_resources("AWS::Events::Rule").items()
    }


def role_statements(template: Template, role_logical_id: str) -> list[dict[str, Any]]:
    [policy] = [
        resource
        for resource in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in resource["Properties"]["Roles"]
    ]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def monitor_statements(template: Template) -> list[dict[str, Any]]:
    [role_id] = [
        logical_id
        for logical_id, resource in template.find_resources("AWS::IAM::Role").items()
        if "lambda.amazonaws.com" in json.dumps(resource["Properties"]["AssumeRolePolicyDocument"])
    ]
    return role_statements(template, role_id)


def actions(statement: dict[str, Any]) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else list(statement["Action"])


# -- the monitor ------------------------------------------------------------------------------------------------


def test_monitor_function_settings(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "functions.monitor.handler.handler",
            "Runtime": "python3.12",
            "Architectures": ["x86_64"],
            "MemorySize": 1024,
            # monitoring.timeout_seconds: Athena's queue and scan time.
            "Timeout": 600,
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": {
                    "DRIFTLOOP_DATA_BUCKET": DATA_BUCKET,
                    "DRIFTLOOP_REPORT_PREFIX": "monitoring/",
                    "DRIFTLOOP_MODEL_BUCKET": MODEL_BUCKET,
                    "DRIFTLOOP_REGISTRY_PREFIX": "registry/",
                    "DRIFTLOOP_WINDOW_MINUTES": "60",
                    # capture.buffer_seconds (60) plus a minute for delivery.
                    "DRIFTLOOP_WINDOW_LAG_SECONDS": "120",
                    "DRIFTLOOP_MIN_RECORDS": "200",
                    "DRIFTLOOP_MIN_FEEDBACK": "50",
                    "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "30",
                    "DRIFTLOOP_DRIFT_THRESHOLD": "0.2",
                    "GLUE_DATABASE": "driftloop_dev",
                    "ATHENA_WORKGROUP": "driftloop-dev",
                    "POWERTOOLS_SERVICE_NAME": "driftloop-dev-monitor",
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                }
            },
        },
    )


def test_the_monitor_environment_is_its_contract_and_reads_back(template: Template) -> None:
    environment = function_environment(template, MONITOR_HANDLER)
    assert set(environment) == set(MonitorSettings.variables().values())
    settings = MonitorSettings.from_env(environment)
    assert (settings.service, settings.log_level) == ("driftloop-dev-monitor", "INFO")
    assert (settings.window_minutes, settings.window_lag_seconds, settings.drift_threshold) == (60, 120, 0.2)


def test_monitor_runs_every_schedule_minutes(template: Template, custom_template: Template) -> None:
    [function_id] = template.find_resources("AWS::Lambda::Function")
    for tmpl, expression in ((template, "rate(1 hour)"), (custom_template, "rate(30 minutes)")):
        tmpl.has_resource_properties(
            "AWS::Events::Rule",
            {
                "ScheduleExpression": expression,
                "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [function_id, "Arn"]}})],
            },
        )


def test_monitor_reads_captures_feedback_and_registry_and_writes_only_reports_and_query_results(
    template: Template,
) -> None:
    """Athena reads the tables' objects and writes the results with the monitor's permissions."""
    statements = monitor_statements(template)
    gets = [s for s in statements if actions(s) == ["s3:GetObject"]]
    assert len(gets) == 1
    assert gets[0]["Resource"] == [
        objects(DATA_BUCKET, "captures/"),
        objects(DATA_BUCKET, "feedback/"),
        objects(MODEL_BUCKET, "registry/"),
    ]
    puts = [s for s in statements if actions(s) == ["s3:PutObject"]]
    assert puts == [{"Action": "s3:PutObject", "Effect": "Allow", "Resource": objects(DATA_BUCKET, "monitoring/")}]
    results = [s for s in statements if "s3:PutObject" in actions(s) and "s3:GetObject" in actions(s)]
    assert [s["Resource"] for s in results] == [objects(DATA_BUCKET, "athena/")]
    assert set(actions(results[0])) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    s3_actions = {a for s in statements for a in actions(s) if a.startswith("s3:")}
    assert s3_actions == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
    listed = sorted(
        prefix
        for s in statements
        if actions(s) == ["s3:ListBucket"] and "Condition" in s
        for prefix in s["Condition"]["StringLike"]["s3:prefix"]
    )
    assert listed == ["athena/*", "captures/*", "feedback/*", "registry/*"]


def test_monitor_queries_only_its_workgroup_and_the_capture_and_feedback_tables(template: Template) -> None:
    statements = monitor_statements(template)
    [athena] = [s for s in statements if any(a.startswith("athena:") for a in actions(s))]
    assert set(actions(athena)) == {
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StopQueryExecution",
    }
    assert json.dumps(athena["Resource"]).endswith(':workgroup/driftloop-dev"]]}')
    [glue] = [s for s in statements if any(a.startswith("glue:") for a in actions(s))]
    assert set(actions(glue)) == {"glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"}
    resources = json.dumps(glue["Resource"])
    for name in (
        ":catalog",
        ":database/driftloop_dev",
        ":table/driftloop_dev/captures",
        ":table/driftloop_dev/feedback",
    ):
        assert name in resources
    assert "*" not in resources


def test_monitor_may_not_call_cloudwatch_its_metrics_are_lines_in_its_logs(template: Template) -> None:
    everything = {a for s in monitor_statements(template) for a in actions(s)}
    assert not any(a.startswith("cloudwatch:") for a in everything)
    assert not any(a.startswith(("states:", "sns:", "kms:", "lambda:")) for a in everything)


# -- model alarms -----------------------------------------------------------------------------------------------


def test_alarm_properties_follow_the_config(template: Template, custom_template: Template) -> None:
    _, drift = alarms(template)["driftloop-dev-data-drift"]
    expected = {
        "Namespace": "driftloop",
        "MetricName": "MaxFeatureDrift",
        "Dimensions": MONITOR_SERVICE,
        "Statistic": "Maximum",
        "Period": 3600,
        "Threshold": 0.2,
        "ComparisonOperator": "GreaterThanThreshold",
        "DatapointsToAlarm": 2,
        "EvaluationPeriods": 3,
        # Neither breaching (an insufficient window must not retrain) nor an all-clear nobody measured.
        "TreatMissingData": "missing",
    }
    assert {key: drift[key] for key in expected} == expected
    _, custom_drift = alarms(custom_template)["driftloop-dev-data-drift"]
    assert (custom_drift["Period"], custom_drift["Threshold"]) == (1800, 0.3)
    assert (custom_drift["DatapointsToAlarm"], custom_drift["EvaluationPeriods"]) == (3, 5)


def test_live_quality_alarms_for_both_tasks(template: Template) -> None:
    found = alarms(template)
    _, accuracy = found["driftloop-dev-live-accuracy"]
    _, rmse = found["driftloop-dev-live-rmse"]
    common = {
        "Namespace": "driftloop",
        "Dimensions": MONITOR_SERVICE,
        "Period": 3600,
        "DatapointsToAlarm": 2,
        "EvaluationPeriods": 3,
        "TreatMissingData": "missing",
    }
    assert {key: accuracy[key] for key in common} == common
    assert {key: rmse[key] for key in common} == common
    assert (accuracy["MetricName"], accuracy["Statistic"], accuracy["ComparisonOperator"], accuracy["Threshold"]) == (
        "LiveAccuracy",
        "Minimum",
        "LessThanThreshold",
        0.7,
    )
    assert (rmse["MetricName"], rmse["Statistic"], rmse["ComparisonOperator"], rmse["Threshold"]) == (
        "LiveRMSE",
        "Maximum",
        "GreaterThanThreshold",
        1_000_000,
    )


# -- alarm -> rule -> state machine -----------------------------------------------------------------------------


def test_drift_and_quality_alarms_start_the_training_workflow(template: Template) -> None:
    found = alarms(template)
    rule = rules(template)["driftloop-dev-retrain-on-alarm"]
    assert rule["EventPattern"] == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [{"Fn::GetAtt": [found[name][0], "Arn"]} for name in MODEL_ALARMS],
        "detail": {"state": {"value": ["ALARM"]}},
    }
    [target] = rule["Targets"]
    # The training stack's state machine, by the reference CDK exports from that stack.
    [export] = target["Arn"].values()
    assert set(target["Arn"]) == {"Fn::ImportValue"}
    assert export.startswith("driftloop-dev-training:") and "StateMachine" in export
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {
        "detail-alarmName": "$.detail.alarmName",
        "detail-state-reason": "$.detail.state.reason",
        "time": "$.time",
    }
    # EventBridge substitutes each placeholder with its JSON value: fill them in to read the input as JSON.
    filled = (
        transformer["InputTemplate"]
        .replace("<detail-alarmName>", '"driftloop-dev-data-drift"')
        .replace("<detail-state-reason>", '"Threshold Crossed"')
        .replace("<time>", '"2026-11-27T12:00:00Z"')
    )
    assert json.loads(filled) == {
        "trigger": {
            "source": "alarm",
            "alarm_name": "driftloop-dev-data-drift",
            "reason": "Threshold Crossed",
            "time": "2026-11-27T12:00:00Z",
        }
    }


def test_the_rule_role_may_only_start_that_state_machine(template: Template) -> None:
    [target] = rules(template)["driftloop-dev-retrain-on-alarm"]["Targets"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = template.find_resources("AWS::IAM::Role")[role_id]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}}
    ]
    assert role_statements(template, role_id) == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": target["Arn"]}
    ]


def test_no_alarm_rule_when_retraining_on_alarm_is_off() -> None:
    stacks = build(cdk_context(overrides={"retraining": {"on_alarm": False}}))
    template = Template.from_stack(stacks.monitoring)
    assert "driftloop-dev-retrain-on-alarm" not in rules(template)
    assert not [r for r in rules(template).values() if "aws.cloudwatch" in json.dumps(r.get("EventPattern", {}))]
    # The alarms still exist and still notify.
    assert set(MODEL_ALARMS) <= set(alarms(template))
    # With no trigger at all, no role may start the workflow.
    assert "states:StartExecution" not in json.dumps(template.find_resources("AWS::IAM::Policy"))


def test_schedule_and_new_data_triggers_are_off_by_default(template: Template, dev: DriftloopStacks) -> None:
    assert set(rules(template)) == {"driftloop-dev-retrain-on-alarm", *_unnamed(template)}
    [bucket] = [
        r
        for logical_id, r in Template.from_stack(dev.data).find_resources("AWS::S3::Bucket").items()
        if logical_id.startswith("DataBucket")
    ]
    assert "NotificationConfiguration" not in bucket["Properties"]


def _unnamed(template: Template) -> set[str]:
    return {name for name, rule in rules(template).items() if "Name" not in rule}


def test_schedule_trigger_starts_the_workflow_with_source_schedule(custom_template: Template) -> None:
    rule = rules(custom_template)["driftloop-dev-retrain-on-schedule"]
    assert rule["ScheduleExpression"] == "rate(7 days)"
    [target] = rule["Targets"]
    template = target["InputTransformer"]["InputTemplate"].replace("<time>", '"t"')
    assert json.loads(template) == {"trigger": {"source": "schedule", "time": "t"}}


def test_new_data_trigger_watches_the_training_data_prefix(custom: DriftloopStacks, custom_template: Template) -> None:
    rule = rules(custom_template)["driftloop-dev-retrain-on-new-data"]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [DATA_BUCKET]}, "object": {"key": [{"prefix": "training-data/"}]}},
    }
    [target] = rule["Targets"]
    paths = target["InputTransformer"]["InputPathsMap"]
    assert paths == {
        "detail-bucket-name": "$.detail.bucket.name",
        "detail-object-key": "$.detail.object.key",
        "time": "$.time",
    }
    filled = target["InputTransformer"]["InputTemplate"]
    for placeholder in paths:
        filled = filled.replace(f"<{placeholder}>", f'"{placeholder}"')
    assert json.loads(filled) == {
        "trigger": {"source": "new_data", "bucket": "detail-bucket-name", "key": "detail-object-key", "time": "time"}
    }
    # All three rules share the one role allowed to start the workflow.
    roles = {
        json.dumps(r["Targets"][0]["RoleArn"]) for r in rules(custom_template).values() if "RoleArn" in r["Targets"][0]
    }
    assert len(roles) == 1
    # The data bucket sends its S3 events to EventBridge, natively (no notification custom resource).
    data = Template.from_stack(custom.data)
    data.has_resource_properties(
        "AWS::S3::Bucket",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}},
    )
    assert data.find_resources("Custom::S3BucketNotifications") == {}


# -- operational alarms and the topic ---------------------------------------------------------------------------


def topic_ref(template: Template) -> dict[str, str]:
    [topic_id] = template.find_resources("AWS::SNS::Topic")
    return {"Ref": topic_id}


def test_every_alarm_notifies_the_ops_topic_and_only_model_alarms_retrain(template: Template) -> None:
    found = alarms(template)
    assert set(found) == {*MODEL_ALARMS, *OPERATIONAL_ALARMS}
    for name, (_, properties) in found.items():
        assert properties["AlarmActions"] == [topic_ref(template)], name
        assert properties["OKActions"] == [topic_ref(template)], name
    retraining = json.dumps([rule.get("EventPattern") for rule in rules(template).values()])
    for name in OPERATIONAL_ALARMS:
        assert found[name][0] not in retraining, f"{name} must never start retraining"
        actions = json.dumps(found[name][1]["AlarmActions"])
        assert "states" not in actions and "StateMachine" not in actions


def test_api_5xx_rate_alarm_is_metric_math_on_5xx_and_count(template: Template) -> None:
    _, alarm = alarms(template)["driftloop-dev-api-5xx-rate"]
    assert alarm["Threshold"] == 1
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (2, 3, "notBreaching")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics["expr_1"]["Expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    assert metrics["errors"]["MetricStat"]["Metric"]["MetricName"] == "5XXError"
    assert metrics["requests"]["MetricStat"]["Metric"]["MetricName"] == "Count"
    for name in ("errors", "requests"):
        stat = metrics[name]["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/ApiGateway"
        assert stat["Metric"]["Dimensions"] == [{"Name": "ApiName", "Value": "driftloop-dev-inference"}]
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)


@pytest.mark.parametrize(
    ("name", "namespace", "metric", "statistic", "threshold"),
    [
        ("driftloop-dev-api-p99-latency", "AWS/ApiGateway", "Latency", None, 1000),
        ("driftloop-dev-inference-errors", "AWS/Lambda", "Errors", "Sum", 1),
        ("driftloop-dev-inference-throttles", "AWS/Lambda", "Throttles", "Sum", 1),
        ("driftloop-dev-capture-failures", "driftloop", "CaptureFailures", "Sum", 1),
        ("driftloop-dev-training-failures", "AWS/States", "ExecutionsFailed", "Sum", 1),
        ("driftloop-dev-monitor-errors", "AWS/Lambda", "Errors", "Sum", 1),
        ("driftloop-dev-captures-delivery-failures", "AWS/Firehose", "DeliveryToS3.Success", "Minimum", 1),
    ],
)
def test_operational_alarm_metrics(
    template: Template, name: str, namespace: str, metric: str, statistic: str | None, threshold: float
) -> None:
    _, alarm = alarms(template)[name]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == (namespace, metric, threshold)
    assert alarm["Period"] == 300
    assert alarm["TreatMissingData"] == "notBreaching"
    if statistic is None:
        assert alarm["ExtendedStatistic"] == "p99"
    else:
        assert alarm["Statistic"] == statistic


def test_a_monitor_run_that_failed_uncovered_or_reported_nothing_alarms_the_ops_topic(
    template: Template, custom_template: Template
) -> None:
    logical_id, alarm = alarms(template)["driftloop-dev-monitor-blind"]
    expected = {
        "Namespace": "driftloop",
        "MetricName": "UncoveredWindows",
        "Dimensions": MONITOR_SERVICE,
        # Covered when any attempt of the run covered it (a retry publishes at the run's time).
        "Statistic": "Minimum",
        # One monitor run per period: a period without its outcome is a run that died (timeout, out of memory)
        # or never ran.
        "Period": 3600,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "EvaluationPeriods": 1,
        "TreatMissingData": "breaching",
        "AlarmActions": [topic_ref(template)],
        "OKActions": [topic_ref(template)],
    }
    assert {key: alarm.get(key) for key in expected} == expected
    assert alarms(custom_template)["driftloop-dev-monitor-blind"][1]["Period"] == 30 * 60
    retraining = json.dumps([rule.get("EventPattern") for rule in rules(template).values()])
    assert logical_id not in retraining


def test_a_violated_data_quality_constraint_notifies_the_ops_topic_and_never_retrains(
    template: Template, custom_template: Template
) -> None:
    logical_id, alarm = alarms(template)["driftloop-dev-data-quality"]
    expected = {
        "Namespace": "driftloop",
        "MetricName": "ConstraintViolations",
        # All checks together; the per-check series (ConstraintCheck) are there for alarms of your own.
        "Dimensions": MONITOR_SERVICE,
        "Statistic": "Maximum",
        "Period": 3600,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "EvaluationPeriods": 1,
        "TreatMissingData": "notBreaching",
        "AlarmActions": [topic_ref(template)],
        "OKActions": [topic_ref(template)],
    }
    assert {key: alarm.get(key) for key in expected} == expected
    assert alarms(custom_template)["driftloop-dev-data-quality"][1]["Period"] == 30 * 60
    retraining = json.dumps([rule.get("EventPattern") for rule in rules(template).values()])
    assert logical_id not in retraining


def test_capture_failures_alarm_watches_the_inference_service(template: Template) -> None:
    _, alarm = alarms(template)["driftloop-dev-capture-failures"]
    assert alarm["Dimensions"] == [{"Name": "Service", "Value": "driftloop-dev-inference"}]
    _, training = alarms(template)["driftloop-dev-training-failures"]
    assert training["Dimensions"][0]["Name"] == "StateMachineArn"
    _, delivery = alarms(template)["driftloop-dev-feedback-delivery-failures"]
    assert delivery["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": "driftloop-dev-feedback"}]


def test_a_capture_stream_that_stops_delivering_alarms_once_its_oldest_record_outlives_the_buffer(
    template: Template,
) -> None:
    for label in ("captures", "feedback"):
        _, alarm = alarms(template)[f"driftloop-dev-{label}-delivery-freshness"]
        expected = {
            "Namespace": "AWS/Firehose",
            "MetricName": "DeliveryToS3.DataFreshness",
            "Dimensions": [{"Name": "DeliveryStreamName", "Value": f"driftloop-dev-{label}"}],
            "Statistic": "Maximum",
            "Period": 300,
            # cdk.json's capture.buffer_seconds (60) plus the margin.
            "Threshold": 360,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }
        assert {key: alarm.get(key) for key in expected} == expected


def test_capture_lines_the_log_subscriptions_fail_to_ship_or_are_throttled_on_alarm_at_once(
    template: Template,
) -> None:
    _, alarm = alarms(template)["driftloop-dev-capture-shipping"]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert (alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (1, "notBreaching")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    [expression] = [m["Expression"] for m in metrics.values() if "Expression" in m]
    watched = [m["MetricStat"] for m in metrics.values() if "MetricStat" in m]
    assert expression == " + ".join(f"FILL({key}, 0)" for key in metrics if key != "expr_1")
    # Each subscription (the inference and the batch score log groups) for both of its delivery metrics.
    assert (
        sorted(stat["Metric"]["MetricName"] for stat in watched) == ["DeliveryErrors"] * 2 + ["DeliveryThrottling"] * 2
    )
    for stat in watched:
        assert stat["Metric"]["Namespace"] == "AWS/Logs"
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
        dimensions = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        assert set(dimensions) == {"LogGroupName", "DestinationType", "FilterName"}
        assert (dimensions["DestinationType"], dimensions["FilterName"]) == ("Firehose", "driftloop-dev-captures")
    assert len({json.dumps(stat["Metric"]["Dimensions"]) for stat in watched}) == 2


def test_without_capture_nothing_watches_capture_shipping() -> None:
    stacks = build(cdk_context(overrides={"capture": {"enabled": False}}))
    names = set(alarms(Template.from_stack(stacks.monitoring)))
    assert "driftloop-dev-capture-shipping" not in names
    assert "driftloop-dev-captures-delivery-freshness" not in names


def test_ops_topic_is_encrypted_tls_only_and_publishable_by_cloudwatch(template: Template) -> None:
    [topic] = template.find_resources("AWS::SNS::Topic").values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    key = template.find_resources("AWS::KMS::Key")[key_ref["Fn::GetAtt"][0]]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert {
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Resource": "*",
        "Sid": "AllowCloudWatchAlarmsToUseTheKey",
    } in key["Properties"]["KeyPolicy"]["Statement"]
    [policy] = template.find_resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    [allow] = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert template.find_resources("AWS::SNS::Subscription") == {}


def test_alarm_email_subscribes_to_the_ops_topic(custom_template: Template) -> None:
    custom_template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


# -- dashboard --------------------------------------------------------------------------------------------------


def dashboard_body(template: Template) -> dict[str, Any]:
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "driftloop-dev-monitoring"
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    # References (region, function names, ARNs) become a placeholder inside their JSON strings.
    return dict(json.loads("".join(part if isinstance(part, str) else "REF" for part in parts)))


def test_dashboard_has_the_widgets(template: Template) -> None:
    widgets = dashboard_body(template)["widgets"]
    titles = {w["properties"].get("title") for w in widgets}
    assert {
        "Predictions",
        "Latency (ms)",
        "Client and server errors",
        "Max feature drift (PSI)",
        "Drift per feature (PSI)",
        "Prediction drift (PSI)",
        "Live quality: classification",
        "Live quality: regression",
        "Captured and labelled predictions per run",
        "Data-quality violations per check",
        "Champion: predictions by model version",
        "Monitor runs (latest first)",
        "Training runs",
        "Alarms",
    } <= titles
    text = json.dumps(widgets)
    for metric in (
        "Predictions",
        "Latency",
        "ClientErrors",
        "ServerErrors",
        "MaxFeatureDrift",
        "PredictionDrift",
        "LiveAccuracy",
        "LiveF1",
        "LiveRMSE",
        "LiveMAE",
        "CapturedRecords",
        "LabelledRecords",
        "ExecutionsStarted",
        "ExecutionsSucceeded",
        "ExecutionsFailed",
    ):
        assert f'"{metric}"' in text, metric
    # Per-feature drift and the champion come from search expressions over the Feature and ModelVersion dimensions.
    assert '{driftloop,Feature,Service} MetricName=\\"FeatureDrift\\"' in text
    assert '{driftloop,ModelVersion,Service} MetricName=\\"Predictions\\"' in text
    assert '{driftloop,ConstraintCheck,Service} MetricName=\\"ConstraintViolations\\"' in text
    [runs] = [w for w in widgets if w["properties"].get("title") == "Monitor runs (latest first)"]
    assert "status, outcome," in runs["properties"]["query"]
    assert "constraint_violations" in runs["properties"]["query"]
    [latency] = [w for w in widgets if w["properties"].get("title") == "Latency (ms)"]
    assert [m[-1] for m in latency["properties"]["metrics"]][:2] == [
        {"label": "inference p50", "stat": "p50"},
        {"label": "inference p99", "stat": "p99"},
    ]


# -- undelivered events -------------------------------------------------------------------------------------------


def dead_letter_queue(template: Template) -> tuple[str, dict[str, Any]]:
    [(logical_id, queue)] = template.find_resources("AWS::SQS::Queue").items()
    return logical_id, dict(queue)


def test_every_rule_target_puts_undelivered_events_in_the_dead_letter_queue_after_bounded_retries(
    custom_template: Template,
) -> None:
    queue_id, _ = dead_letter_queue(custom_template)
    found = rules(custom_template)
    # The monitor's schedule and all three retraining triggers.
    assert len(found) == 4
    for name, rule in found.items():
        [target] = rule["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}, name
        policy = target["RetryPolicy"]
        if name.startswith("driftloop-dev-retrain-"):
            assert policy == {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}, name
        else:
            # A monitor run older than one schedule period is superseded by the next one.
            assert policy == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 30 * 60}, name


def test_the_dead_letter_queue_is_encrypted_tls_only_keeps_messages_14_days_and_takes_only_these_rules(
    custom_template: Template,
) -> None:
    queue_id, queue = dead_letter_queue(custom_template)
    assert {key: value for key, value in queue["Properties"].items() if key != "Tags"} == {
        "MessageRetentionPeriod": 14 * 24 * 3600,
        "SqsManagedSseEnabled": True,
    }
    [policy] = custom_template.find_resources("AWS::SQS::QueuePolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    } in statements
    senders = [s for s in statements if s["Effect"] == "Allow"]
    assert senders and all(s["Principal"] == {"Service": "events.amazonaws.com"} for s in senders)
    rule_ids = {logical_id for logical_id in custom_template.find_resources("AWS::Events::Rule")}
    assert {s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in senders} == rule_ids


def test_an_undelivered_event_alarms_the_ops_topic_at_once(template: Template) -> None:
    queue_id, _ = dead_letter_queue(template)
    _, alarm = alarms(template)["driftloop-dev-event-delivery-failures"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (1, 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "dead-letter queue" in alarm["AlarmDescription"]
    assert "EventDeadLetterQueueUrl" in template.find_outputs("*")


def test_the_throttles_alarm_says_how_to_size_the_reserved_concurrency(template: Template) -> None:
    _, alarm = alarms(template)["driftloop-dev-inference-throttles"]
    description = alarm["AlarmDescription"]
    assert "serving.reserved_concurrency = 50" in description
    assert "peak requests per second times the function's p99 duration" in description


# -- the metrics contract ---------------------------------------------------------------------------------------


SEARCH = re.compile(r"\{([^}]*)\} MetricName=\"(\w+)\" Service=\"([^\"]+)\"")


def watched_metrics(template: Template) -> set[tuple[str, str, tuple[str, ...]]]:
    """(metric, Service, dimension names) of every metric in driftloop's namespace an alarm or a dashboard widget
    names: alarms on a metric or on metric math, graphs of a metric or of a search expression."""
    found: set[tuple[str, str, tuple[str, ...]]] = set()

    def add(namespace: str, name: str, dimensions: dict[str, Any]) -> None:
        if namespace == NAMESPACE:
            found.add((name, dimensions.get(Dimension.SERVICE, ""), tuple(sorted(dimensions))))

    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        stats = [properties] + [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
        for stat in stats:
            if "MetricName" in stat:
                dimensions = {d["Name"]: d["Value"] for d in stat.get("Dimensions", [])}
                add(stat["Namespace"], stat["MetricName"], dimensions)
    if template.find_resources("AWS::CloudWatch::Dashboard"):
        for widget in dashboard_body(template)["widgets"]:
            for metric in widget["properties"].get("metrics", []):
                if isinstance(metric[0], dict):  # [{"expression": ..., "label": ...}]
                    for schema, name, service in SEARCH.findall(metric[0].get("expression", "")):
                        namespace, *dimensions = schema.split(",")
                        add(namespace, name, dict.fromkeys(dimensions, "") | {Dimension.SERVICE: service})
                else:  # [namespace, name, dimension, value, ..., {options}]
                    fields = [part for part in metric if isinstance(part, str)]
                    add(fields[0], fields[1], dict(zip(fields[2::2], fields[3::2], strict=True)))
    return found


def test_every_metric_an_alarm_or_the_dashboard_watches_is_declared_in_the_metrics_contract(
    dev: DriftloopStacks,
) -> None:
    stacks = (dev.data, dev.training, dev.serving, dev.monitoring)
    watched = {metric for stack in stacks for metric in watched_metrics(Template.from_stack(stack))}
    # Not vacuous: the alarms and graphs of both publishers, and both search expressions, were read.
    assert {("CaptureFailures", "driftloop-dev-inference"), ("MaxFeatureDrift", "driftloop-dev-monitor")} <= {
        (name, service) for name, service, _ in watched
    }
    assert {dimensions for _, _, dimensions in watched} == {
        ("Service",),
        ("Feature", "Service"),
        ("ModelVersion", "Service"),
        ("ConstraintCheck", "Service"),
    }
    for name, service, dimensions in watched:
        assert service in SERVICE_METRICS, f"{name} is watched for an unknown Service {service!r}"
        assert name in SERVICE_METRICS[service], f"{name} is watched for {service} but not in its contract"
        assert set(dimensions) <= set(Dimension), dimensions
