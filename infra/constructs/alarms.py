"""The alarms: model alarms (data drift, live quality) that may start retraining, operational alarms that only
notify (data-quality violations among them: bad inputs are not drift), and the operations topic they notify.

Missing data is chosen per alarm: the model alarms leave it missing (:class:`ModelAlarms`); operational alarms on
events (errors, throttles, failures) treat it as not breaching, since an idle system publishes nothing; the
``monitor-blind`` alarm treats it as breaching, since every monitor run that gets to the end publishes its outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.common.metrics import NAMESPACE, Dimension, InferenceMetric, MonitorMetric
from infra.config import MonitoringConfig
from infra.constructs.encrypted_topic import EncryptedTopic

# Operational alarms look at five-minute periods. Sustained conditions (error rate, latency) must breach in two of
# three periods; events that should never happen (crashes, throttles, failed runs, lost captures) alarm at once.
OPS_PERIOD = Duration.minutes(5)
SUSTAINED_DATAPOINTS, SUSTAINED_PERIODS = 2, 3
# How much older than Firehose's buffer interval the oldest undelivered record may grow before the stream counts
# as stuck (delivery retries, partitioning retries).
FRESHNESS_MARGIN_SECONDS = 300
# The delivery metrics CloudWatch Logs publishes per subscription filter (namespace AWS/Logs).
SUBSCRIPTION_FAILURE_METRICS = ("DeliveryErrors", "DeliveryThrottling")
CLOUDWATCH = iam.ServicePrincipal("cloudwatch.amazonaws.com")


class AlarmTopic(Construct):
    """The operations topic: KMS-encrypted, TLS-only, publishable by this account's CloudWatch alarms, with an
    optional e-mail subscription."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        display_name: str,
        email: str | None,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.encrypted = EncryptedTopic(self, "Encrypted", display_name=display_name, removal_policy=removal_policy)
        self.topic = self.encrypted.topic
        # CloudWatch encrypts the message with the topic's key when an alarm publishes.
        self.encrypted.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[CLOUDWATCH],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarmsToPublish",
                principals=[CLOUDWATCH],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    },
                },
            )
        )
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self.action = cw_actions.SnsAction(self.topic)

    def notify(self, alarm: cw.Alarm) -> None:
        """On ALARM and back to OK."""
        alarm.add_alarm_action(self.action)
        alarm.add_ok_action(self.action)


def service_metric(
    name: InferenceMetric | MonitorMetric, service: str, statistic: str, period: Duration, label: str | None = None
) -> cw.Metric:
    """A driftloop metric with the Service dimension only: it keeps its identity across model versions."""
    return cw.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={Dimension.SERVICE: service},
        statistic=statistic,
        period=period,
        label=label,
    )


class ModelAlarms(Construct):
    """Data drift and live quality, evaluated over the monitor's periods (one run per period).

    Each takes the worst value of its period: the largest drift, the lowest accuracy, the largest RMSE. Both
    quality alarms exist whatever the champion's task: the one for the other task never gets data (and stays in
    INSUFFICIENT_DATA).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, prefix: str, service: str, monitoring: MonitoringConfig
    ) -> None:
        super().__init__(scope, construct_id)
        period = Duration.minutes(monitoring.schedule_minutes)
        drift_runs = monitoring.drift_datapoints_to_alarm, monitoring.drift_evaluation_periods
        quality_runs = monitoring.quality_datapoints_to_alarm, monitoring.quality_evaluation_periods
        self.drift = self._alarm(
            "DataDrift",
            f"{prefix}-data-drift",
            f"The champion's live features drifted: the largest per-feature PSI exceeded "
            f"{monitoring.drift_threshold:g} in {drift_runs[0]} of {drift_runs[1]} monitor runs "
            "(monitoring.drift_threshold).",
            service_metric(MonitorMetric.MAX_FEATURE_DRIFT, service, "Maximum", period),
            monitoring.drift_threshold,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            drift_runs,
        )
        self.accuracy = self._alarm(
            "LiveAccuracy",
            f"{prefix}-live-accuracy",
            f"A classification champion's live accuracy fell below {monitoring.quality_threshold:g} in "
            f"{quality_runs[0]} of {quality_runs[1]} monitor runs (monitoring.quality_threshold).",
            service_metric(MonitorMetric.LIVE_ACCURACY, service, "Minimum", period),
            monitoring.quality_threshold,
            cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            quality_runs,
        )
        self.rmse = self._alarm(
            "LiveRmse",
            f"{prefix}-live-rmse",
            f"A regression champion's live RMSE exceeded {monitoring.regression_quality_threshold:g} in "
            f"{quality_runs[0]} of {quality_runs[1]} monitor runs (monitoring.regression_quality_threshold).",
            service_metric(MonitorMetric.LIVE_RMSE, service, "Maximum", period),
            monitoring.regression_quality_threshold,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            quality_runs,
        )

    def _alarm(
        self,
        construct_id: str,
        name: str,
        description: str,
        metric: cw.Metric,
        threshold: float,
        comparison: cw.ComparisonOperator,
        m_of_n: tuple[int, int],
    ) -> cw.Alarm:
        # Missing data stays missing. By design the monitor publishes no drift for an insufficient window and no
        # quality without enough labels, and it publishes nothing when it fails: silence measures nothing, so it
        # must neither retrain ("breaching" would start a run on every quiet night) nor give an all-clear nobody
        # measured ("notBreaching" turns a drift ALARM into OK when the monitor goes blind). Missing points are
        # skipped; with no data in its evaluation range the alarm goes to INSUFFICIENT_DATA, which starts and
        # notifies nothing. A monitor that fails or stops is the monitor-blind alarm's to report.
        return cw.Alarm(
            self,
            construct_id,
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            datapoints_to_alarm=m_of_n[0],
            evaluation_periods=m_of_n[1],
            treat_missing_data=cw.TreatMissingData.MISSING,
        )

    @property
    def alarms(self) -> list[cw.Alarm]:
        """The alarms that may start retraining."""
        return [self.drift, self.accuracy, self.rmse]


@dataclass(frozen=True)
class OperationalTargets:
    """What the operational alarms watch."""

    api: apigw.RestApi
    inference_function: lambda_.IFunction
    inference_service: str
    monitor_function: lambda_.IFunction
    monitor_service: str
    state_machine: sfn.IStateMachine
    # Firehose delivery streams by a short label (e.g. "captures"), none when the serving stack has none.
    delivery_streams: Mapping[str, str]
    # Their buffer interval (capture.buffer_seconds): a record waits that long before delivery, normally.
    delivery_buffer_seconds: int
    # The log subscriptions that ship capture lines, as (log group name, filter name); none without capture.
    capture_subscriptions: Sequence[tuple[str, str]]
    # serving.reserved_concurrency (None: the account's unreserved pool), named in the throttles alarm.
    inference_reserved_concurrency: int | None
    # Where EventBridge puts the events it could not deliver to the monitor or the workflow.
    event_dead_letters: sqs.IQueue


class OperationalAlarms(Construct):
    """Alarms that notify the operations topic and never start retraining."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        targets: OperationalTargets,
        monitoring: MonitoringConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        api = targets.api
        self.alarms: dict[str, cw.Alarm] = {}

        requests = api.metric_count(period=OPS_PERIOD, statistic="Sum")
        server_errors = api.metric_server_error(period=OPS_PERIOD, statistic="Sum")
        error_rate = cw.MathExpression(
            # No requests, no rate: 0 rather than a division by zero.
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"errors": server_errors, "requests": requests},
            label="5XX responses (% of requests)",
            period=OPS_PERIOD,
        )
        self._sustained(
            "Api5xxRate",
            f"{prefix}-api-5xx-rate",
            error_rate,
            monitoring.api_5xx_rate_percent,
            f"More than {monitoring.api_5xx_rate_percent:g} % of API requests failed with a 5XX "
            "(monitoring.api_5xx_rate_percent).",
        )
        self._sustained(
            "ApiP99Latency",
            f"{prefix}-api-p99-latency",
            api.metric_latency(period=OPS_PERIOD, statistic="p99"),
            monitoring.api_p99_latency_ms,
            f"The API's p99 latency exceeded {monitoring.api_p99_latency_ms} ms (monitoring.api_p99_latency_ms).",
        )
        self._any(
            "InferenceErrors",
            f"{prefix}-inference-errors",
            targets.inference_function.metric_errors(period=OPS_PERIOD, statistic="Sum"),
            "The inference Lambda failed invocations (crashes or timeouts, not client errors).",
        )
        self._any(
            "InferenceThrottles",
            f"{prefix}-inference-throttles",
            targets.inference_function.metric_throttles(period=OPS_PERIOD, statistic="Sum"),
            _throttles_description(targets.inference_reserved_concurrency),
        )
        self._any(
            "CaptureFailures",
            f"{prefix}-capture-failures",
            service_metric(InferenceMetric.CAPTURE_FAILURES, targets.inference_service, "Sum", OPS_PERIOD),
            "Predictions were served but could not be captured (a record larger than a CloudWatch Logs event): "
            "drift and quality miss them.",
        )
        self._any(
            "TrainingFailures",
            f"{prefix}-training-failures",
            targets.state_machine.metric_failed(period=OPS_PERIOD, statistic="Sum"),
            "A training workflow execution failed (the failure topic and the registry have the details).",
        )
        self._any(
            "MonitorErrors",
            f"{prefix}-monitor-errors",
            targets.monitor_function.metric_errors(period=OPS_PERIOD, statistic="Sum"),
            "The drift monitor failed: while it fails, drift and quality are not measured and cannot alarm.",
        )
        self.alarms["MonitorBlind"] = cw.Alarm(
            self,
            "MonitorBlind",
            alarm_name=f"{prefix}-monitor-blind",
            alarm_description="Drift detection is blind: a monitor run failed or could not cover its window (its "
            "report's notes or its 'monitor run' log line say why), or no run reported at all (a timeout or out of "
            "memory writes nothing; so does a stopped schedule). Until a run covers its window, drift and quality "
            "cannot alarm or retrain.",
            # Minimum: a window counts as covered when any attempt of its run (retries share its time) covered it.
            metric=service_metric(
                MonitorMetric.UNCOVERED_WINDOWS,
                targets.monitor_service,
                "Minimum",
                Duration.minutes(monitoring.schedule_minutes),
            ),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            # Every run that ends publishes its outcome, so no outcome is runs that died or never ran. CloudWatch
            # applies this only when the evaluation range holds no point at all (it skips gaps otherwise): a single
            # run that timed out is monitor-errors' to report.
            treat_missing_data=cw.TreatMissingData.BREACHING,
        )
        # Nothing checked (an insufficient window, no constraints) is no violation; a blind monitor is
        # monitor-blind's to report.
        self._any(
            "DataQuality",
            f"{prefix}-data-quality",
            service_metric(
                MonitorMetric.CONSTRAINT_VIOLATIONS,
                targets.monitor_service,
                "Maximum",
                Duration.minutes(monitoring.schedule_minutes),
            ),
            "The champion's captures violated its data-quality constraints (constraints.json: completeness, data "
            "type, sign, range, unseen categories): the monitor's report lists each violation under "
            "data_quality.constraint_violations. Bad inputs are a client's or a pipeline's fault, not drift: this "
            "notifies and never retrains. driftloop constraints set adjusts the constraints.",
        )
        self._any(
            "EventDeliveryFailures",
            f"{prefix}-event-delivery-failures",
            targets.event_dead_letters.metric_approximate_number_of_messages_visible(
                period=OPS_PERIOD, statistic="Maximum"
            ),
            "EventBridge could not deliver a monitor run or a retraining trigger after its retries: the event is "
            "in the dead-letter queue (14 days). Read it, fix the cause, start what it was for by hand.",
        )
        for label, stream_name in sorted(targets.delivery_streams.items()):
            success = cw.Metric(
                namespace="AWS/Firehose",
                metric_name="DeliveryToS3.Success",
                dimensions_map={"DeliveryStreamName": stream_name},
                statistic="Minimum",
                period=OPS_PERIOD,
            )
            alarm = cw.Alarm(
                self,
                f"DeliveryFailures{label.title()}",
                alarm_name=f"{prefix}-{label}-delivery-failures",
                alarm_description=f"Firehose failed to deliver {label} to S3 ({stream_name}); it retries, then "
                "writes them under the errors/ prefix.",
                metric=success,
                threshold=1,
                comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            self.alarms[alarm.node.id] = alarm
            freshness_limit = targets.delivery_buffer_seconds + FRESHNESS_MARGIN_SECONDS
            alarm = cw.Alarm(
                self,
                f"DeliveryFreshness{label.title()}",
                alarm_name=f"{prefix}-{label}-delivery-freshness",
                alarm_description=f"The oldest {label} record in {stream_name} waited more than {freshness_limit} s "
                "(the buffer interval plus a margin): Firehose is not delivering; records are kept and retried for "
                "24 hours. The stream's delivery log (S3Delivery) says why.",
                metric=cw.Metric(
                    namespace="AWS/Firehose",
                    metric_name="DeliveryToS3.DataFreshness",
                    dimensions_map={"DeliveryStreamName": stream_name},
                    statistic="Maximum",
                    period=OPS_PERIOD,
                ),
                threshold=freshness_limit,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            self.alarms[alarm.node.id] = alarm
        if targets.capture_subscriptions:
            self._any(
                "CaptureShipping",
                f"{prefix}-capture-shipping",
                _subscription_failures(targets.capture_subscriptions),
                "CloudWatch Logs could not put capture lines into the capture stream (errors or throttling of the "
                "log subscription): the predictions were served without delay, their captures wait. CloudWatch Logs "
                "retries for up to 24 hours, then drops them; drift and quality miss what is dropped.",
            )

    def _sustained(self, construct_id: str, name: str, metric: cw.IMetric, threshold: float, description: str) -> None:
        self.alarms[construct_id] = cw.Alarm(
            self,
            construct_id,
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=SUSTAINED_PERIODS,
            datapoints_to_alarm=SUSTAINED_DATAPOINTS,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    def _any(self, construct_id: str, name: str, metric: cw.IMetric, description: str) -> None:
        self.alarms[construct_id] = cw.Alarm(
            self,
            construct_id,
            alarm_name=name,
            alarm_description=description,
            metric=metric,
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )


def _subscription_failures(subscriptions: Sequence[tuple[str, str]]) -> cw.MathExpression:
    """Log events the subscriptions failed to deliver or were throttled on, summed (no data: none)."""
    metrics: dict[str, cw.IMetric] = {}
    for index, (log_group_name, filter_name) in enumerate(subscriptions):
        for name in SUBSCRIPTION_FAILURE_METRICS:
            metrics[f"{name.lower()}{index}"] = cw.Metric(
                namespace="AWS/Logs",
                metric_name=name,
                dimensions_map={
                    "LogGroupName": log_group_name,
                    "DestinationType": "Firehose",
                    "FilterName": filter_name,
                },
                statistic="Sum",
                period=OPS_PERIOD,
            )
    return cw.MathExpression(
        expression=" + ".join(f"FILL({key}, 0)" for key in metrics),
        using_metrics=metrics,
        label="capture log events not delivered or throttled",
        period=OPS_PERIOD,
    )


def _throttles_description(reserved_concurrency: int | None) -> str:
    limit = (
        f"its reserved concurrency (serving.reserved_concurrency = {reserved_concurrency})"
        if reserved_concurrency is not None
        else "the account's unreserved concurrency (serving.reserved_concurrency is not set)"
    )
    return (
        f"The inference Lambda was throttled: {limit} was reached. Size it as peak requests per second times the "
        "function's p99 duration in seconds (its Duration metric), with headroom for serving.throttle_burst_limit; "
        "or lower serving.throttle_rate_limit."
    )
