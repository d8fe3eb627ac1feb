"""What starts the training workflow: model alarms, a schedule, new labelled data. EventBridge rules, each with
an input transformer that tells the workflow why it runs: the trigger shapes of ``functions/workflow/triggers.py``
(:func:`~functions.workflow.triggers.rule_input`), which Guard parses back.

The rules fire freely: the workflow's guard runs one execution at a time and enforces the cooldown
(``retraining.cooldown_minutes``), recording every skipped trigger as a decision.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.workflow import triggers
from infra.config import RetrainingConfig
from infra.constructs.event_dead_letters import EventDeadLetters

ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
OBJECT_CREATED = "Object Created"
# Starting an execution fails only on throttling or a service error: a few retries within an hour, then the
# event goes to the dead-letter queue (and the alarm on it) rather than being dropped.
RETRY_ATTEMPTS = 4
MAX_EVENT_AGE = Duration.hours(1)


def trigger_input(source: str) -> events.RuleTargetInput:
    """The execution input of the rule for ``source`` (``triggers.ALARM``, ``SCHEDULE`` or ``NEW_DATA``)."""
    return events.RuleTargetInput.from_object(triggers.rule_input(source, events.EventField.from_path))


class RetrainingTriggers(Construct):
    """The enabled triggers (``retraining.on_alarm``, ``schedule_enabled``, ``on_new_data``); with none enabled,
    nothing is created. Every rule starts ``state_machine`` through one role allowed exactly that, and puts what it
    could not deliver into the dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        state_machine: sfn.IStateMachine,
        retraining: RetrainingConfig,
        alarms: Sequence[cw.IAlarm],
        data_bucket_name: str,
        training_data_prefix: str,
        dead_letters: EventDeadLetters,
    ) -> None:
        super().__init__(scope, construct_id)
        self._state_machine = state_machine
        self._dead_letters = dead_letters
        self._role: iam.Role | None = None
        self.alarm_rule: events.Rule | None = None
        self.schedule_rule: events.Rule | None = None
        self.new_data_rule: events.Rule | None = None

        if retraining.on_alarm and alarms:
            self.alarm_rule = events.Rule(
                self,
                "OnAlarm",
                rule_name=f"{prefix}-retrain-on-alarm",
                description="Starts the training workflow when a data drift or live quality alarm goes to ALARM",
                event_pattern=events.EventPattern(
                    source=["aws.cloudwatch"],
                    detail_type=[ALARM_STATE_CHANGE],
                    resources=[alarm.alarm_arn for alarm in alarms],
                    detail={"state": {"value": ["ALARM"]}},
                ),
            )
            self.alarm_rule.add_target(self._target(trigger_input(triggers.ALARM)))
        if retraining.schedule_enabled:
            self.schedule_rule = events.Rule(
                self,
                "OnSchedule",
                rule_name=f"{prefix}-retrain-on-schedule",
                description=f"Starts the training workflow on {retraining.schedule_expression}",
                schedule=events.Schedule.expression(retraining.schedule_expression),
            )
            self.schedule_rule.add_target(self._target(trigger_input(triggers.SCHEDULE)))
        if retraining.on_new_data:
            # Needs EventBridge notifications on the data bucket (the data stack turns them on with this flag).
            self.new_data_rule = events.Rule(
                self,
                "OnNewData",
                rule_name=f"{prefix}-retrain-on-new-data",
                description=f"Starts the training workflow when labelled data lands under {training_data_prefix}",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=[OBJECT_CREATED],
                    detail={
                        "bucket": {"name": [data_bucket_name]},
                        "object": {"key": [{"prefix": training_data_prefix}]},
                    },
                ),
            )
            self.new_data_rule.add_target(self._target(trigger_input(triggers.NEW_DATA)))

    @property
    def rules(self) -> list[events.Rule]:
        return [rule for rule in (self.alarm_rule, self.schedule_rule, self.new_data_rule) if rule is not None]

    @property
    def role(self) -> iam.Role | None:
        return self._role

    def _target(self, rule_input: events.RuleTargetInput) -> targets.SfnStateMachine:
        if self._role is None:
            self._role = iam.Role(
                self,
                "StartExecutionRole",
                assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                description="Lets the retraining rules start the training workflow, and nothing else",
            )
            self._state_machine.grant_start_execution(self._role)
        return targets.SfnStateMachine(
            self._state_machine,
            input=rule_input,
            role=self._role,
            **self._dead_letters.target_options(retry_attempts=RETRY_ATTEMPTS, max_event_age=MAX_EVENT_AGE),
        )
