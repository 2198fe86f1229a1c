"""Writes AWS Glue Schema Registry records to Kafka with aws-glue-schema-registry (PyPI), an implementation of Glue's
wire format independent of ebconnect's: the schema registered in the Glue Schema Registry (moto), each record
framed with the header version, the compression byte and the schema version's UUID, Avro or JSON, compressed with
zlib or not. Then poison records as raw bytes.

usage: produce_glue.py REGISTRY TOPIC
Prints one JSON line per record, in the order written: {"expected": JSON} for a Glue record, {"plain": JSON} for a
record without Glue's header (JSON text), {"poison": "what is wrong"} for a bad one.
"""

import json
import os
import sys
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
