"""The on-call path on the embedded AWS, as the template deploys it: an execution that fails puts Step Functions'
status-change event on the bus, the template's ExecutionAlertRule matches it, its InputTransformer writes the
message, and EventBridge publishes it to the KMS-encrypted alert topic, which the topic's and the key's policies
must allow; a subscriber reads it. No instance is launched: every execution ends in its first states."""

from __future__ import annotations

import json

import pytest

from eiplane.local.engine import EmbeddedAws, InvalidLoggingConfiguration
from eiplane.local.template import load_template
from tests.conftest import load_event
from tests.integration.conftest import spec_for


def subscribe_a_queue(aws: EmbeddedAws) -> str:
    """An SQS queue on the alert topic (raw delivery: its bodies are the messages an email would carry)."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="on-call")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=aws.stack.outputs["AlertTopicArn"], Protocol="sqs", Endpoint=arn,
                                Attributes={"RawMessageDelivery": "true"})
    return str(url)


def received(aws: EmbeddedAws, url: str) -> list[str]:
    # The embedded EventBridge publishes before the execution's status changes: what an ended execution sent is
    # already in the queue.
    messages = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def test_a_failed_execution_reaches_the_subscriber_with_its_error_and_a_succeeded_one_does_not(
        aws: EmbeddedAws) -> None:
    queue = subscribe_a_queue(aws)

    plan = aws.run({**spec_for("gpu"), "dry_run": True}, name="plan-1")
    assert plan.status == "SUCCEEDED"
    assert received(aws, queue) == []  # its SUCCEEDED event was put on the bus: the rule's pattern leaves it out
    assert aws.events is not None and aws.events.deliveries == []

    failed = aws.run(load_event("provision_fleet_invalid.json"), name="bad-1")
    assert (failed.status, failed.error) == ("FAILED", "InvalidFleetSpec")
    [message] = received(aws, queue)
    assert message.startswith(f"eiplane {aws.stack_name}: execution bad-1 ended FAILED at ")
    assert f"State machine: {aws.state_machine_arn()}\n" in message
    assert "\nError: InvalidFleetSpec\n" in message
    cause = message.split("\nCause: ", 1)[1].split("\n\nHistory", 1)[0]
    assert json.loads(cause)["errorType"] == "InvalidFleetSpec"  # the cause, whole and unmangled
    console = (f"https://{aws.region}.console.aws.amazon.com/states/home?region={aws.region}"
               f"#/v2/executions/details/{failed.arn}")
    assert console in message
    assert [d.error for d in aws.events.deliveries] == [None]


def test_the_templates_policies_are_what_lets_alerts_and_logs_flow(aws: EmbeddedAws) -> None:
    """The topic's and the key's policies let EventBridge publish: narrowed, the alert is refused and recorded. The
    state machine's role lets Step Functions deliver its logs: without one of those actions, creating it fails."""
    queue = subscribe_a_queue(aws)
    topic = aws.stack.outputs["AlertTopicArn"]
    sns, kms = aws.client("sns"), aws.client("kms")
    assert aws.events is not None

    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    allowed = json.dumps(policy)
    policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] += "-another-rule"
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))
    assert aws.run(load_event("provision_fleet_invalid.json"), name="bad-1").status == "FAILED"
    assert received(aws, queue) == []
    assert "does not let arn:aws:events:" in str(aws.events.deliveries[-1].error)

    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=allowed)
    key = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["KmsMasterKeyId"]
    key_policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    key_policy["Statement"] = [s for s in key_policy["Statement"]
                               if s.get("Principal") != {"Service": "events.amazonaws.com"}]
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(key_policy))
    assert aws.run(load_event("provision_fleet_invalid.json"), name="bad-2").status == "FAILED"
    assert received(aws, queue) == []
    assert "does not let events.amazonaws.com encrypt" in str(aws.events.deliveries[-1].error)

    iam, role = aws.client("iam"), aws.roles["ProvisionFleetStateMachineRole"]
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for statement in document["Statement"]:
            if "logs:CreateLogDelivery" in statement.get("Action", []):
                statement["Action"].remove("logs:CreateLogDelivery")
                iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
    logging = load_template(aws.root / "template.yaml")["Resources"]["ProvisionFleetStateMachine"]["Properties"][
        "Logging"]
    arn = aws.state_machine_arn()
    logging = {**logging, "Level": "ERROR", "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": "arn"}}]}
    with pytest.raises(InvalidLoggingConfiguration, match="not authorized to perform: logs:CreateLogDelivery"):
        aws._logging_configuration(arn, logging)
