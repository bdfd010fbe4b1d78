"""Encrypted SQS queues with a dead-letter queue whose depth pages the alert topic.

A message in a dead-letter queue is work that was given up on (a training request, a
retraining event, a scheduled run Scheduler could not start); nobody looks at a queue, so
each one alarms on the environment's alert topic the moment it holds anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# SQS keeps a message at most 14 days; dead letters are kept that long for a look.
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
FIFO_SUFFIX = ".fifo"


@dataclass
class DeadLetterArgs:
    # The queue's name (ending .fifo for the dead letters of a FIFO queue: SQS requires a
    # FIFO queue's dead-letter queue to be FIFO too), or None to let Pulumi name it.
    queue_name: str | None
    key_arn: pulumi.Input[str]
    alarm_name: str
    # What a message here means and what to do about it: the alarm's text.
    alarm_description: str
    alert_topic_arn: pulumi.Input[str]


def dead_letter_queue(
    resource_name: str, args: DeadLetterArgs, opts: pulumi.ResourceOptions
) -> tuple[aws.sqs.Queue, aws.cloudwatch.MetricAlarm]:
    """The queue `resource_name` and its depth alarm `<resource_name>-alarm`."""
    fifo = bool(args.queue_name and args.queue_name.endswith(FIFO_SUFFIX))
    queue = aws.sqs.Queue(
        resource_name,
        name=args.queue_name,
        fifo_queue=fifo or None,
        kms_master_key_id=args.key_arn,
        message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
        opts=opts,
    )
    alarm = aws.cloudwatch.MetricAlarm(
        f"{resource_name}-alarm",
        name=args.alarm_name,
        alarm_description=args.alarm_description,
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": queue.name},
        statistic="Maximum",
        period=300,
        evaluation_periods=1,
        threshold=0,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[args.alert_topic_arn],
        ok_actions=[args.alert_topic_arn],
        opts=opts,
    )
    return queue, alarm


def redrive_to(dead_letters: aws.sqs.Queue, max_receives: int) -> pulumi.Output[str]:
    """A queue's redrive policy: after `max_receives` receives a message goes there."""
    return dead_letters.arn.apply(
        lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives})
    )
