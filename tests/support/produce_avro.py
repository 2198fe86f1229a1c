"""Writes Avro records to Kafka the way users' producers do: confluent-kafka's AvroSerializer, which registers the
schema in the Schema Registry and frames each record in the Confluent wire format. An independent implementation of
that format, so the tests do not check ebconnect's decoder against ebconnect's own idea of the encoding.

usage: produce_avro.py CASE TOPIC [COUNT]
CASE: interop | logical | cloudtrail. Prints {"schema_id": N, "count": M} when done.
"""

import datetime
import decimal
import json
import os
import pathlib
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"

LOGICAL_SCHEMA = {
    "type": "record",
    "name": "Payment",
    "namespace": "ebconnect.test",
    "fields": [
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "settled", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "fee", "type": {"type": "fixed", "name": "Fee", "size": 6, "logicalType": "decimal",
                                 "precision": 12, "scale": 4}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["PENDING", "SETTLED"]}},
        {"name": "payer", "type": {"type": "record", "name": "Party", "fields": [
            {"name": "name", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "limits", "type": {"type": "map", "values": "long"}},
        ]}},
        {"name": "history", "type": {"type": "array", "items": "Party"}},
        {"name": "payload", "type": "bytes"},
    ],
}

CLOUDTRAIL_SCHEMA = {
    "type": "record",
    "name": "CloudTrailEvent",
    "namespace": "ebconnect.test",
    "fields": [
        {"name": "eventVersion", "type": "string"},
        {"name": "userIdentity", "type": {"type": "record", "name": "UserIdentity", "fields": [
            {"name": "type", "type": ["null", "string"], "default": None},
            {"name": "principalId", "type": ["null", "string"], "default": None},
            {"name": "arn", "type": ["null", "string"], "default": None},
            {"name": "accountId", "type": ["null", "string"], "default": None},
        ]}},
        {"name": "eventTime", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "eventSource", "type": "string"},
        {"name": "eventName", "type": "string"},
        {"name": "awsRegion", "type": "string"},
        {"name": "sourceIPAddress", "type": ["null", "string"], "default": None},
        {"name": "errorCode", "type": ["null", "string"], "default": None},
        {"name": "readOnly", "type": ["null", "boolean"], "default": None},
        {"name": "requestParameters", "type": ["null", "string"], "default": None},
        {"name": "resources", "type": ["null", {"type": "array", "items": {
            "type": "record", "name": "Resource", "fields": [
                {"name": "ARN", "type": ["null", "string"], "default": None},
                {"name": "type", "type": ["null", "string"], "default": None},
            ]}}], "default": None},
        {"name": "eventID", "type": "string"},
    ],
}


def interop():
    schema = (FIXTURES / "avro/interop.avsc").read_text()
    datum = json.loads((FIXTURES / "avro/interop_datum_py.json").read_text())["datum"]
    datum["bytesField"] = datum["bytesField"].encode("ascii")
    datum["fixedField"] = datum["fixedField"].encode("ascii")
    # unionField 12.0 selects the double branch, as in Avro's Python interop generator.
    return schema, [("interop", datum)]


def logical():
    utc = datetime.timezone.utc
    party = {"name": "Alice", "tags": ["vip", "eu"], "limits": {"daily": 500, "card": 2000}}
    record = {
        "id": uuid.UUID("6f1f3d4e-9d0c-4c59-9a0e-3f3b5f0a6c11"),
        "day": datetime.date(2024, 3, 1),
        "at": datetime.time(12, 34, 56, 789000),
        "created": datetime.datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=utc),
        "settled": datetime.datetime(2024, 3, 1, 12, 0, 1, 123456, tzinfo=utc),
        "amount": decimal.Decimal("-1234.50"),
        "fee": decimal.Decimal("0.0125"),
        "note": "first",
        "status": "SETTLED",
        "payer": party,
        "history": [{"name": "Bob", "tags": [], "limits": {}}],
        "payload": b"\x00\x01\xfe\xff",
    }
    second = dict(record, note=None, status="PENDING", history=[])
    return json.dumps(LOGICAL_SCHEMA), [("logical-0", record), ("logical-1", second)]


def cloudtrail(count):
    records = []
    with (FIXTURES / "cloudtrail/invictus_aws_dataset.jsonl").open() as lines:
        for line in lines:
            if len(records) == count:
                break
            event = json.loads(line)
            identity = event.get("userIdentity", {})
            time = datetime.datetime.strptime(event["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc
            )
            request = event.get("requestParameters")
            records.append((event["eventID"], {
                "eventVersion": event["eventVersion"],
                "userIdentity": {k: identity.get(k) for k in ("type", "principalId", "arn", "accountId")},
                "eventTime": time,
                "eventSource": event["eventSource"],
                "eventName": event["eventName"],
                "awsRegion": event["awsRegion"],
                "sourceIPAddress": event.get("sourceIPAddress"),
                "errorCode": event.get("errorCode"),
                "readOnly": event.get("readOnly"),
                "requestParameters": None if request is None else json.dumps(request, separators=(",", ":"), ensure_ascii=False),
                "resources": None if event.get("resources") is None else [
                    {"ARN": r.get("ARN"), "type": r.get("type")} for r in event["resources"]
                ],
                "eventID": event["eventID"],
            }))
    return json.dumps(CLOUDTRAIL_SCHEMA), records


def main():
    case, topic = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    schema, records = {"interop": interop, "logical": logical}[case]() if case != "cloudtrail" else cloudtrail(count)
    # The client has no timeout by default, so a registry that never answers one request (seen once with two
    # schemas registered at the same moment) hung the test; with one, the client retries the request.
    registry = SchemaRegistryClient({"url": os.environ["SCHEMA_REGISTRY_URL"], "timeout": 10})
    serializer = AvroSerializer(registry, schema)
    producer = Producer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"], "enable.idempotence": True})
    context = SerializationContext(topic, MessageField.VALUE)
    for key, record in records:
        producer.produce(topic, key=key.encode(), value=serializer(record, context))
    if producer.flush(30) != 0:
        sys.exit("not every record was delivered")
    schema_id = registry.get_latest_version(f"{topic}-value").schema_id
    print(json.dumps({"schema_id": schema_id, "count": len(records)}))


if __name__ == "__main__":
    main()
