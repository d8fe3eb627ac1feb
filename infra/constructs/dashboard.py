"""The monitoring dashboard: serving traffic and errors, drift, live quality, the champion, training runs, alarms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.common.metrics import NAMESPACE, Dimension, InferenceMetric, MonitorMetric
from infra.config import MonitoringConfig
from infra.constructs.alarms import service_metric

SERVING_PERIOD = Duration.minutes(5)
WIDTH = 8
HEIGHT = 6


@dataclass(frozen=True)
class DashboardSources:
    api: apigw.RestApi
    inference_service: str
    monitor_service: str
    monitor_log_group: logs.ILogGroup
    state_machine: sfn.IStateMachine
    alarms: Sequence[cw.IAlarm]


def _search(
    by: Dimension, metric: InferenceMetric | MonitorMetric, service: str, statistic: str, period: Duration
) -> cw.MathExpression:
    """A search expression: one line per value of the dimension ``by`` (e.g. per feature or model version)."""
    seconds = int(period.to_seconds())
    return cw.MathExpression(
        expression=(
            f'SEARCH(\'{{{NAMESPACE},{by},{Dimension.SERVICE}}} MetricName="{metric}" '
            f"{Dimension.SERVICE}=\"{service}\"', '{statistic}', {seconds})"
        ),
        using_metrics={},
        label=f"${{PROP('Dim.{by}')}}",
        period=period,
    )


class MonitoringDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        sources: DashboardSources,
        monitoring: MonitoringConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        api, inference, monitor = sources.api, sources.inference_service, sources.monitor_service
        run_period = Duration.minutes(monitoring.schedule_minutes)

        def serving(metric: InferenceMetric, statistic: str, label: str) -> cw.Metric:
            return service_metric(metric, inference, statistic, SERVING_PERIOD, label)

        def monitored(metric: MonitorMetric, statistic: str, label: str) -> cw.Metric:
            return service_metric(metric, monitor, statistic, run_period, label)

        def graph(
            title: str,
            left: Sequence[cw.IMetric],
            left_annotations: Sequence[cw.HorizontalAnnotation] = (),
            left_y_axis: cw.YAxisProps | None = None,
            stacked: bool = False,
            view: cw.GraphWidgetView = cw.GraphWidgetView.TIME_SERIES,
        ) -> cw.GraphWidget:
            return cw.GraphWidget(
                title=title,
                left=list(left),
                left_annotations=list(left_annotations),
                left_y_axis=left_y_axis,
                stacked=stacked,
                view=view,
                width=WIDTH,
                height=HEIGHT,
            )

        def line(value: float, label: str) -> cw.HorizontalAnnotation:
            return cw.HorizontalAnnotation(value=value, label=label, color=cw.Color.RED)

        header = cw.TextWidget(
            markdown=(
                f"# {name}\n"
                f"Monitor every {monitoring.schedule_minutes} min over the last {monitoring.window_minutes} min "
                f"(at least {monitoring.min_records} predictions, {monitoring.min_feedback} labels). "
                f"Drift alarm: max feature PSI > {monitoring.drift_threshold:g} in "
                f"{monitoring.drift_datapoints_to_alarm} of {monitoring.drift_evaluation_periods} runs. "
                f"Quality alarms: accuracy < {monitoring.quality_threshold:g} or RMSE > "
                f"{monitoring.regression_quality_threshold:g} in {monitoring.quality_datapoints_to_alarm} of "
                f"{monitoring.quality_evaluation_periods} runs. The champion is the model version serving "
                "predictions (below) and the version in the monitor's runs."
            ),
            width=3 * WIDTH,
            height=3,
        )
        rows: list[list[cw.IWidget]] = [[header]]
        rows.append(
            [  # serving
                graph(
                    "Predictions",
                    [
                        serving(InferenceMetric.PREDICTIONS, "Sum", "predictions"),
                        api.metric_count(period=SERVING_PERIOD, label="API requests"),
                    ],
                ),
                graph(
                    "Latency (ms)",
                    [
                        serving(InferenceMetric.LATENCY, "p50", "inference p50"),
                        serving(InferenceMetric.LATENCY, "p99", "inference p99"),
                        api.metric_latency(period=SERVING_PERIOD, statistic="p99", label="API p99"),
                    ],
                    left_annotations=[line(monitoring.api_p99_latency_ms, "p99 alarm")],
                ),
                graph(
                    "Client and server errors",
                    [
                        serving(InferenceMetric.CLIENT_ERRORS, "Sum", "client errors (4XX)"),
                        serving(InferenceMetric.SERVER_ERRORS, "Sum", "server errors (5XX)"),
                        serving(InferenceMetric.CAPTURE_FAILURES, "Sum", "capture failures"),
                    ],
                ),
            ]
        )
        rows.append(
            [  # drift
                graph(
                    "Max feature drift (PSI)",
                    [monitored(MonitorMetric.MAX_FEATURE_DRIFT, "Maximum", "max feature PSI")],
                    left_annotations=[line(monitoring.drift_threshold, "drift alarm")],
                ),
                graph(
                    "Drift per feature (PSI)",
                    [_search(Dimension.FEATURE, MonitorMetric.FEATURE_DRIFT, monitor, "Maximum", run_period)],
                    left_annotations=[line(monitoring.drift_threshold, "drift alarm")],
                ),
                graph(
                    "Prediction drift (PSI)", [monitored(MonitorMetric.PREDICTION_DRIFT, "Maximum", "prediction PSI")]
                ),
            ]
        )
        rows.append(
            [  # live quality and the data behind it
                graph(
                    "Live quality: classification",
                    [
                        monitored(MonitorMetric.LIVE_ACCURACY, "Minimum", "accuracy"),
                        monitored(MonitorMetric.LIVE_F1, "Minimum", "F1"),
                    ],
                    left_annotations=[line(monitoring.quality_threshold, "accuracy alarm")],
                    left_y_axis=cw.YAxisProps(min=0, max=1),
                ),
                graph(
                    "Live quality: regression",
                    [
                        monitored(MonitorMetric.LIVE_RMSE, "Maximum", "RMSE"),
                        monitored(MonitorMetric.LIVE_MAE, "Maximum", "MAE"),
                    ],
                    left_annotations=[line(monitoring.regression_quality_threshold, "RMSE alarm")],
                ),
                graph(
                    "Captured and labelled predictions per run",
                    [
                        monitored(MonitorMetric.CAPTURED_RECORDS, "Maximum", "captured"),
                        monitored(MonitorMetric.LABELLED_RECORDS, "Maximum", "labelled"),
                    ],
                    left_annotations=[line(monitoring.min_records, "min records for drift")],
                ),
            ]
        )
        rows.append(
            [  # data quality: its own row, so the rows above keep their places
                graph(
                    "Data-quality violations per check",
                    [
                        _search(
                            Dimension.CONSTRAINT_CHECK,
                            MonitorMetric.CONSTRAINT_VIOLATIONS,
                            monitor,
                            "Maximum",
                            run_period,
                        )
                    ],
                    left_annotations=[line(1, "data-quality alarm")],
                ),
            ]
        )
        rows.append(
            [  # the champion and the training runs
                graph(
                    "Champion: predictions by model version",
                    [_search(Dimension.MODEL_VERSION, InferenceMetric.PREDICTIONS, inference, "Sum", SERVING_PERIOD)],
                    stacked=True,
                ),
                cw.LogQueryWidget(
                    title="Monitor runs (latest first)",
                    log_group_names=[sources.monitor_log_group.log_group_name],
                    query_lines=[
                        "fields @timestamp, model_version, status, outcome, max_feature_drift, max_drift_feature, "
                        "captured, labelled, quality.accuracy, quality.rmse, constraint_violations, report",
                        'filter message = "monitor run"',
                        "sort @timestamp desc",
                        "limit 20",
                    ],
                    view=cw.LogQueryVisualizationType.TABLE,
                    width=WIDTH,
                    height=HEIGHT,
                ),
                graph(
                    "Training runs",
                    [
                        sources.state_machine.metric_started(
                            period=Duration.hours(1), statistic="Sum", label="started"
                        ),
                        sources.state_machine.metric_succeeded(
                            period=Duration.hours(1), statistic="Sum", label="succeeded"
                        ),
                        sources.state_machine.metric_failed(period=Duration.hours(1), statistic="Sum", label="failed"),
                    ],
                    view=cw.GraphWidgetView.BAR,
                ),
            ]
        )
        rows.append([cw.AlarmStatusWidget(title="Alarms", alarms=list(sources.alarms), width=3 * WIDTH, height=4)])
        self.widgets = [widget for row in rows for widget in row]
        self.dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=name, default_interval=Duration.days(1), widgets=rows
        )
