"""Writes Protobuf or JSON Schema records to Kafka the way users' producers do: confluent-kafka's ProtobufSerializer
and JSONSerializer, which register the schema (and a Protobuf schema's imports, as references) in the Schema Registry
and frame each record in the Confluent wire format. The JSON each record should become comes from the same
independent side: protobuf's own json_format (the canonical JSON mapping), or the value itself for JSON Schema.
Then poison records, written as raw bytes.

usage: produce_formats.py protobuf|json_schema TOPIC
Prints one JSON line per record, in the order written: {"expected": JSON} for a good record,
{"poison": "what is wrong"} for a bad one.
"""

import base64
import importlib
import json
import os
import pathlib
import sys
import tempfile

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

PROTOS = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "protobuf"

CALL_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "ApiCall",
    "type": "object",
    "properties": {
        "eventName": {"type": "string"},
        "calls": {"type": "integer"},
        "userIdentity": {
            "type": "object",
            "properties": {"principalId": {"type": "string"}},
        },
    },
    "required": ["eventName", "calls"],
}


def compiled_protos():
    """audit_pb2 and common_pb2, compiled with grpcio-tools' protoc into a temporary package."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp()
    include = pathlib.Path(importlib.import_module("grpc_tools").__file__).parent / "_proto"
    status = protoc.main(
        ["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", "common.proto", "audit.proto"]
    )
    if status != 0:
        raise SystemExit(f"protoc failed: {status}")
    sys.path.insert(0, out)
    return importlib.import_module("audit_pb2"), importlib.import_module("common_pb2")


def protobuf_records(registry):
    from google.protobuf import json_format

    audit, common = compiled_protos()
    full = audit.ApiCall(
        event_name="GetObject",
        user_identity=common.Principal(
            principal_id="AIDATFQR7NSC5U6Q3TMDR", arn="arn:aws:iam::123837392027:user/benjamin", type=common.IAM_USER
        ),
        resources=[
            audit.Resource(arn="arn:aws:s3:::baker221b-evidence", type="AWS::S3::Bucket"),
            audit.Resource(arn="arn:aws:s3:::baker221b-evidence/key", type="AWS::S3::Object"),
        ],
        request_parameters={"bucketName": "baker221b-evidence", "key": "report.pdf"},
        bytes_transferred=2**40 + 3,
        request_count=2**63 + 5,
        signature=b"\x00\x01\xfe\xff",
        source_ip="203.0.113.7",
        outcome=audit.ApiCall.DENIED,
        score=0.5,
        read_only=True,
        annotations=[audit.ApiCall.Annotation(note="first"), audit.ApiCall.Annotation(note="second")],
    )
    full.event_time.FromJsonString("2023-07-10T11:42:44.123Z")
    full.latency.FromJsonString("1.500s")
    full.error_code.value = "AccessDenied"
    full.additional_data.update({"bytesTransferredIn": 0, "flags": [True, None, "x"], "nested": {"a": 1.5}})
    # The other branch of the oneof, and defaults left out.
    minimal = audit.ApiCall(event_name="ListBuckets", invoked_by="s3.amazonaws.com")
    annotation = audit.ApiCall.Annotation(note="nested two deep")
    config = {"use.deprecated.format": False}
    calls = ProtobufSerializer(audit.ApiCall, registry, config)
    notes = ProtobufSerializer(audit.ApiCall.Annotation, registry, config)
    records = []
    for message, serializer in ((full, calls), (minimal, calls), (annotation, notes)):
        records.append((serializer, message, json_format.MessageToDict(message)))
    return records


def json_schema_records(registry):
    serializer = JSONSerializer(json.dumps(CALL_SCHEMA), registry)
    values = [
        {"eventName": "GetObject", "calls": 12, "userIdentity": {"principalId": "AIDATFQR7NSC5U6Q3TMDR"}},
        {"eventName": "ListBuckets", "calls": 1, "extra": [1, "two", None]},
    ]
    return [(serializer, value, value) for value in values]


def main():
    kind, topic = sys.argv[1], sys.argv[2]
    registry = SchemaRegistryClient({"url": os.environ["SCHEMA_REGISTRY_URL"]})
    producer = Producer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    context = SerializationContext(topic, MessageField.VALUE)
    records = protobuf_records(registry) if kind == "protobuf" else json_schema_records(registry)
    lines = []
    framed = None
    for serializer, message, expected in records:
        framed = serializer(message, context)
        producer.produce(topic, value=framed, partition=0)
        lines.append({"expected": expected})
    schema_id = int.from_bytes(framed[1:5], "big")
    poison = [
        (b"GetObject by benjamin", "not framed"),
        (b"\x00" + (999999).to_bytes(4, "big") + framed[5:], "unknown schema id"),
    ]
    if kind == "protobuf":
        # One message index, 5 (zigzag varints: 1 -> 0x02, 5 -> 0x0a): the file has two messages.
        poison.append((b"\x00" + schema_id.to_bytes(4, "big") + b"\x02\x0a" + b"\x0a\x01x", "message index 5"))
    else:
        # Framed with the schema's id, but `calls` is not an integer: only `validate: true` refuses it.
        bad = json.dumps({"eventName": "GetObject", "calls": "twelve"}).encode()
        poison.append((b"\x00" + schema_id.to_bytes(4, "big") + bad, "not valid against the schema"))
    for value, what in poison:
        producer.produce(topic, value=value, partition=0)
        lines.append({"poison": what})
    producer.flush(30)
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
