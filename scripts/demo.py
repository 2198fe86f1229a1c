"""The demo, end to end on the local stack:

  real CloudTrail records --PutEvents--> bus `cloudtrail`
    --(rule + SQS, connector cloudtrail-from-bus)--> Kafka topic `audit_trail_topic`
    --(connector s3-calls-to-bus: S3 calls only, principal masked)--> bus `security-findings`
    --(connector s3-principals-over-threshold: > 10 calls of one S3 API in a minute)--> topic `flagged_topic`
    --(connector mask-flagged: principal masked, exactly once)--> topic `final_flagged_topic`
    --(connector flagged-to-bus)--> bus `security-findings`
    --(a rule + SQS queue of this script's)--> printed here

Run by `make demo` with the stack's Python (it has boto3 and confluent-kafka).
"""

import collections
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import boto3
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests/fixtures/cloudtrail/invictus_aws_dataset.jsonl"
RECORDS = int(os.environ.get("DEMO_RECORDS", "600"))
TIMEOUT_S = 180
DETAIL_TYPES = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
}


def aws(service):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])


def envelope(record):
    """A CloudTrail record as EventBridge puts it on a bus."""
    return {
        "Source": "aws." + record["eventSource"].split(".")[0],
        "DetailType": DETAIL_TYPES.get(record.get("eventType"), "AWS API Call via CloudTrail"),
        "Detail": json.dumps(record),
        "EventBusName": "cloudtrail",
    }


def reaches_kafka(record):
    """The source connector's rule (connectors/cloudtrail-from-bus.yaml), for the expected counts."""
    return (
        record.get("eventType") == "AwsApiCall"
        and record.get("userIdentity", {}).get("type") != "AWSService"
        and record["eventSource"] not in ("sts.amazonaws.com", "ssm.amazonaws.com")
    )


def prepare(events, sqs):
    for bus in ("cloudtrail", "security-findings"):
        try:
            events.create_event_bus(Name=bus)
        except events.exceptions.ResourceAlreadyExistsException:
            pass
        # A queue of this run's own: what earlier runs delivered stays out of the count (SQS purges once a minute at most).
    queue_url = sqs.create_queue(QueueName=f"ebconnect-demo-findings-{int(time.time())}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="ebconnect-demo-findings", EventBusName="security-findings",
                    EventPattern=json.dumps({"source": ["ebconnect.audit", "ebconnect.threshold-alert"]}))
    events.put_targets(Rule="ebconnect-demo-findings", EventBusName="security-findings",
                       Targets=[{"Id": "queue", "Arn": queue_arn}])
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    for future in admin.create_topics([NewTopic("audit_trail_topic", 3, 1), NewTopic("flagged_topic", 3, 1),
                                        NewTopic("final_flagged_topic", 3, 1)]).values():
        try:
            future.result()
        except Exception as error:  # the topic exists from an earlier run
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise
    return queue_url


def flagged(records):
    """The detection connector's definition, counted offline: (minute, call, principal) over 10 S3 calls."""
    counts = collections.Counter()
    for record in records:
        if reaches_kafka(record) and record["eventSource"] == "s3.amazonaws.com":
            minute = datetime.datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")).replace(second=0)
            counts[(minute, record["eventName"], record["userIdentity"].get("principalId"))] += 1
    return {key: count for key, count in counts.items() if count > 10}


def heartbeat(records):
    """An event an hour after the data, so that event time moves past the last windows and they close (the other
    partitions of the topic turn idle meanwhile). Without it, the last windows close only as the wall clock moves."""
    latest = max(record["eventTime"] for record in records)
    later = datetime.datetime.fromisoformat(latest.replace("Z", "+00:00")) + datetime.timedelta(hours=1)
    detail = {"eventVersion": "1.08", "eventType": "AwsApiCall", "eventSource": "heartbeat.ebconnect.demo",
              "eventName": "Heartbeat", "eventTime": later.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "userIdentity": {"type": "Service", "principalId": "demo-heartbeat"}}
    return {"Source": "ebconnect.demo", "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(detail),
            "EventBusName": "cloudtrail"}


def kafka_records(consumer):
    """Records in audit_trail_topic (the sum of its partitions' end offsets)."""
    return sum(consumer.get_watermark_offsets(TopicPartition("audit_trail_topic", p), timeout=10)[1] for p in range(3))


def main():
    records = [json.loads(line) for line in FIXTURE.open()][:RECORDS]
    expected_kafka = sum(1 for r in records if reaches_kafka(r))
    expected_s3 = sum(1 for r in records if reaches_kafka(r) and r["eventSource"] == "s3.amazonaws.com")
    expected_flagged = flagged(records)
    events, sqs = aws("events"), aws("sqs")
    queue_url = prepare(events, sqs)
    consumer = Consumer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "group.id": "ebconnect-demo"})
    kafka_before = kafka_records(consumer)

    binary = ROOT / "target/release/ebconnect"
    log_path = ROOT / ".stack/run/demo-worker.log"
    print(f"demo: starting the worker ({binary.relative_to(ROOT)} run), log in {log_path.relative_to(ROOT)}")
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [str(binary), "run", "--worker", "config/worker.yaml", "--connectors", "connectors"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 60
        # Events put before the source connector's rule has its queue as target would match a rule with nowhere to
        # send them (the target is attached last).
        while True:
            try:
                if events.list_targets_by_rule(Rule="ebconnect-cloudtrail-from-bus", EventBusName="cloudtrail")["Targets"]:
                    break
            except events.exceptions.ResourceNotFoundException:
                pass
            if worker.poll() is not None or time.time() > deadline:
                sys.exit(f"demo: the source connector did not set up its rule and target; see {log_path}")
            time.sleep(0.5)
        print(f"demo: putting {len(records)} real CloudTrail records on bus `cloudtrail` "
              f"({expected_kafka} match the source's rule, {expected_s3} of them S3 calls)")
        for start in range(0, len(records), 10):
            response = events.put_events(Entries=[envelope(r) for r in records[start:start + 10]])
            if response["FailedEntryCount"]:
                sys.exit(f"demo: PutEvents failed: {response['Entries']}")
        print("demo: then a heartbeat event an hour later, so that the last one-minute windows close")
        events.put_events(Entries=[heartbeat(records)])
        expected_kafka += 1
        findings, alerts = [], []
        deadline = time.time() + TIMEOUT_S
        in_kafka = 0
        while ((in_kafka < expected_kafka or len(findings) < expected_s3 or len(alerts) < len(expected_flagged))
               and time.time() < deadline):
            if worker.poll() is not None:
                sys.exit(f"demo: the worker exited with {worker.returncode}; see {log_path}")
            response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in response.get("Messages", []):
                event = json.loads(message["Body"])
                (alerts if event["source"] == "ebconnect.threshold-alert" else findings).append(event)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            in_kafka = kafka_records(consumer) - kafka_before
            print(f"\rdemo: {in_kafka}/{expected_kafka} in Kafka topic audit_trail_topic | "
                  f"{len(findings)}/{expected_s3} S3 calls and {len(alerts)}/{len(expected_flagged)} flagged "
                  f"principals on bus security-findings", end="", flush=True)
        print()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        consumer.close()

    if in_kafka < expected_kafka or len(findings) < expected_s3 or len(alerts) < len(expected_flagged):
        sys.exit(f"demo: not everything arrived within {TIMEOUT_S}s; see {log_path}")
    print("demo: S3 calls that reached `security-findings`, by principal (masked) and call:")
    calls = collections.Counter((f["detail"]["userIdentity"].get("principalId"), f["detail-type"]) for f in findings)
    for (principal, call), count in calls.most_common(8):
        print(f"  {count:4}  {principal:24}  {call}")
    sample = findings[0]
    print("demo: one of them as EventBridge delivered it (detail abridged):")
    print(json.dumps({"source": sample["source"], "detail-type": sample["detail-type"], "time": sample["time"],
                      "resources": sample["resources"], "detail.userIdentity": sample["detail"]["userIdentity"]},
                     indent=2))
    print("demo: flagged principals (over 10 calls of one S3 API in a minute), from threshold-alert, masked:")
    for alert in alerts:
        detail = alert["detail"]
        print(f"  {detail['window_start']} .. {detail['window_end']}  {detail['userIdentity']:24}  "
              f"{detail['eventName']} x{detail['event_count']}")
    print(f"demo: worker stopped with exit code {worker.returncode}")


if __name__ == "__main__":
    main()
