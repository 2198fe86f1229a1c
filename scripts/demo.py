"""The demo: real CloudTrail records go into Kafka, the worker's eventbridge-sink carries them to an EventBridge bus
in the emulator, and a rule on that bus delivers them to an SQS queue, which this script reads to show what arrived.

Run by `make demo` with the stack's Python (it has boto3 and confluent-kafka).
"""

import collections
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import boto3
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests/fixtures/cloudtrail/invictus_aws_dataset.jsonl"
RECORDS = int(os.environ.get("DEMO_RECORDS", "300"))
TIMEOUT_S = 120


def aws(service):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])


def prepare_bus(events, sqs):
    """The buses the example connectors put to, and a queue that sees everything on `audit-copy`."""
    for bus in ("audit-copy", "security-findings"):
        try:
            events.create_event_bus(Name=bus)
        except events.exceptions.ResourceAlreadyExistsException:
            pass
    queue_url = sqs.create_queue(QueueName="ebconnect-demo-audit-copy")["QueueUrl"]
    sqs.purge_queue(QueueUrl=queue_url)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="ebconnect-demo-everything",
        EventBusName="audit-copy",
        EventPattern=json.dumps({"source": ["ebconnect.cloudtrail"]}),
    )
    events.put_targets(
        Rule="ebconnect-demo-everything", EventBusName="audit-copy", Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return queue_url


def produce(records):
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic("audit_trail_topic", 3, 1), NewTopic("flagged_principals", 3, 1)]
    ).values():
        try:
            future.result()
        except Exception as error:  # the topic exists from an earlier run
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for record in records:
        key = record.get("userIdentity", {}).get("principalId", "")
        producer.produce("audit_trail_topic", key=key.encode(), value=json.dumps(record).encode())
    producer.flush(30)


def main():
    records = [json.loads(line) for line in FIXTURE.open()][:RECORDS]
    events, sqs = aws("events"), aws("sqs")
    queue_url = prepare_bus(events, sqs)

    binary = ROOT / "target/release/ebconnect"
    log_path = ROOT / ".stack/run/demo-worker.log"
    print(f"demo: starting the worker ({binary.relative_to(ROOT)} run), log in {log_path.relative_to(ROOT)}")
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [str(binary), "run", "--worker", "config/worker.yaml", "--connectors", "connectors"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        print(f"demo: producing {len(records)} CloudTrail records to Kafka topic audit_trail_topic")
        produce(records)
        arrived = []
        deadline = time.time() + TIMEOUT_S
        while len(arrived) < len(records) and time.time() < deadline:
            if worker.poll() is not None:
                sys.exit(f"demo: the worker exited with {worker.returncode}; see {log_path}")
            response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in response.get("Messages", []):
                arrived.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            print(f"\rdemo: {len(arrived)}/{len(records)} events arrived on bus audit-copy", end="", flush=True)
        print()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    if len(arrived) < len(records):
        sys.exit(f"demo: only {len(arrived)} of {len(records)} events arrived within {TIMEOUT_S}s; see {log_path}")
    print("demo: what arrived, by detail-type (the CloudTrail eventName):")
    for name, count in collections.Counter(event["detail-type"] for event in arrived).most_common(8):
        print(f"  {count:5}  {name}")
    sample = next(event for event in arrived if event["resources"])
    print("demo: one event as EventBridge delivered it:")
    print(json.dumps({k: sample[k] for k in ("source", "detail-type", "time", "resources")}, indent=2))
    print(f"demo: worker stopped with exit code {worker.returncode}")


if __name__ == "__main__":
    main()
