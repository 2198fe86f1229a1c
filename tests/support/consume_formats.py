"""Reads Confluent-framed Protobuf or JSON Schema records back with confluent-kafka's ProtobufDeserializer or
JSONDeserializer, an independent Schema Registry client, so the tests check what ebconnect wrote against someone
else's idea of the format.

usage: consume_formats.py protobuf:PROTO_FILE:MESSAGE | json_schema  TOPIC COUNT
Prints one JSON line per record: {"key": str|null, "value": <decoded; a Protobuf message as json_format's dict>,
"schema_id": N}. Exits 1 if fewer than COUNT records arrive within 60 s.
"""

import importlib
import json
import os
import pathlib
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def message_class(proto_file, name):
    """The generated class of message `name` (`package.Message`) in `proto_file`, compiled with grpcio-tools."""
    from grpc_tools import protoc

    proto = pathlib.Path(proto_file)
    out = tempfile.mkdtemp()
    include = pathlib.Path(importlib.import_module("grpc_tools").__file__).parent / "_proto"
    if protoc.main(["protoc", f"-I{proto.parent}", f"-I{include}", f"--python_out={out}", proto.name]) != 0:
        raise SystemExit(f"protoc failed on {proto}")
    sys.path.insert(0, out)
    module = importlib.import_module(proto.stem + "_pb2")
    return getattr(module, name.rsplit(".", 1)[-1])


def main() -> int:
    kind, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    registry = SchemaRegistryClient({"url": os.environ["SCHEMA_REGISTRY_URL"], "timeout": 10})
    if kind.startswith("protobuf:"):
        from google.protobuf import json_format

        _, proto_file, name = kind.split(":")
        deserializer = ProtobufDeserializer(message_class(proto_file, name), {"use.deprecated.format": False})

        def decode(raw, context):
            return json_format.MessageToDict(deserializer(raw, context))
    else:
        deserializer = JSONDeserializer(None, schema_registry_client=registry)

        def decode(raw, context):
            return deserializer(raw, context)

    consumer = Consumer({
        "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        "group.id": f"consume-formats-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    seen = 0
    try:
        while seen < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise RuntimeError(str(message.error()))
            raw = message.value()
            key = message.key()
            print(json.dumps({
                "key": key.decode() if key is not None else None,
                "value": decode(raw, SerializationContext(topic, MessageField.VALUE)),
                "schema_id": int.from_bytes(raw[1:5], "big"),
            }), flush=True)
            seen += 1
    finally:
        consumer.close()
    return 0 if seen >= count else 1


if __name__ == "__main__":
    sys.exit(main())
