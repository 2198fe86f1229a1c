"""Writes AWS Glue Schema Registry records to Kafka with aws-glue-schema-registry (PyPI), an implementation of Glue's
wire format independent of ebconnect's: the schema registered in the Glue Schema Registry (moto), each record
framed with the header version, the compression byte and the schema version's UUID, Avro or JSON, compressed with
zlib or not. That library has no Protobuf: Protobuf records are written here as Glue's Java serializer lays them out
(the message's index among the schema's messages sorted by full name, as an unsigned varint, then the message),
their JSON given by protobuf's own json_format. Then poison records as raw bytes.

usage: produce_glue.py REGISTRY TOPIC
Prints one JSON line per record, in the order written: {"expected": JSON} for a Glue record, {"plain": JSON} for a
record without Glue's header (JSON text), {"poison": "what is wrong"} for a bad one.
"""

import importlib
import json
import os
import pathlib
import sys
import tempfile
import uuid

import boto3
from aws_schema_registry import DataAndSchema, SchemaRegistryClient
from aws_schema_registry.avro import AvroSchema
from aws_schema_registry.codec import encode
from aws_schema_registry.jsonschema import JsonSchema
from confluent_kafka import Producer

CALL_AVRO = {
    "type": "record",
    "name": "ApiCall",
    "namespace": "ebconnect.test",
    "fields": [
        {"name": "eventName", "type": "string"},
        {"name": "calls", "type": "long"},
        {"name": "errorCode", "type": ["null", "string"], "default": None},
        {"name": "resources", "type": {"type": "array", "items": "string"}},
        {"name": "userIdentity", "type": {"type": "record", "name": "Identity", "fields": [
            {"name": "principalId", "type": "string"},
        ]}},
    ],
}

PROTOS = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "protobuf"


def varint(value):
    """An unsigned varint, as protobuf's CodedOutputStream.writeUInt32NoTag writes it."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


CALL_JSON = {"type": "object", "properties": {"eventName": {"type": "string"}}, "required": ["eventName"]}


def main():
    registry_name, topic = sys.argv[1], sys.argv[2]
    glue = boto3.client("glue", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
    glue.create_registry(RegistryName=registry_name)
    client = SchemaRegistryClient(glue, registry_name=registry_name)
    producer = Producer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    lines = []

    def write(schema, name, data, compression):
        version = client.get_or_register_schema_version(
            definition=str(schema), schema_name=name, data_format=schema.data_format, compatibility_mode="NONE"
        )
        producer.produce(topic, value=encode(schema.write(data), version.version_id, compression=compression))
        lines.append({"expected": data})

    avro = AvroSchema(CALL_AVRO)
    json_schema = JsonSchema(CALL_JSON)
    call = {
        "eventName": "GetObject",
        "calls": 12,
        "errorCode": None,
        "resources": ["arn:aws:s3:::baker221b-evidence"],
        "userIdentity": {"principalId": "AIDATFQR7NSC5U6Q3TMDR"},
    }
    write(avro, f"{topic}-avro", call, None)
    write(avro, f"{topic}-avro", dict(call, eventName="PutObject", errorCode="AccessDenied"), True)
    write(json_schema, f"{topic}-json", {"eventName": "ListBuckets", "n": [1, None]}, None)
    write(json_schema, f"{topic}-json", {"eventName": "DeleteObject", "nested": {"a": "b"}}, True)

    # Protobuf, with protoc's classes for the schema.
    from google.protobuf import json_format
    from grpc_tools import protoc

    out = tempfile.mkdtemp()
    include = pathlib.Path(importlib.import_module("grpc_tools").__file__).parent / "_proto"
    if protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", "glue_call.proto"]) != 0:
        raise SystemExit("protoc failed on glue_call.proto")
    sys.path.insert(0, out)
    glue_call = importlib.import_module("glue_call_pb2")
    proto_version = glue.create_schema(
        RegistryId={"RegistryName": registry_name}, SchemaName=f"{topic}-protobuf", DataFormat="PROTOBUF",
        Compatibility="NONE", SchemaDefinition=(PROTOS / "glue_call.proto").read_text(),
    )["SchemaVersionId"]
    call_message = glue_call.Call(event_name="GetObject", bytes=2**40, user_identity={"principal_id": "AIDA7"})
    call_message.event_time.FromJsonString("2023-07-10T11:42:44Z")
    # Glue's indexes: Batch 0, Call 1, Call.Identity 2.
    for index, message, compression in (
        (1, call_message, None),
        (2, glue_call.Call.Identity(principal_id="AIDA8"), True),
        (0, glue_call.Batch(calls=[call_message]), None),
    ):
        payload = varint(index) + message.SerializeToString()
        producer.produce(topic, value=encode(payload, uuid.UUID(proto_version), compression=compression))
        lines.append({"expected": json_format.MessageToDict(message)})

    plain = {"eventName": "HeadObject", "plain": True}
    producer.produce(topic, value=json.dumps(plain).encode())
    lines.append({"plain": plain})
    unknown = uuid.UUID("00000000-0000-4000-8000-000000000000")
    producer.produce(topic, value=encode(json.dumps({"eventName": "x"}).encode(), unknown))
    lines.append({"poison": "unknown schema version"})
    producer.flush(30)
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
