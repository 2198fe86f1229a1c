"""Reads Confluent-framed Avro records back with confluent-kafka's AvroDeserializer, an independent Schema Registry
client, so the tests check what ebconnect wrote against someone else's idea of the format.

usage: consume_avro.py TOPIC COUNT [TIMEOUT_SECONDS]
Prints one JSON line per record: {"key": str|null, "value": <decoded>, "schema_id": N, "headers": {...}}.
Exits 1 if fewer than COUNT records arrive in time.
"""

import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    topic, count = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    # The client has no timeout by default, so a registry that never answers one request (seen once with two
    # schemas registered at the same moment) hung the test; with one, the client retries the request.
    registry = SchemaRegistryClient({"url": os.environ["SCHEMA_REGISTRY_URL"], "timeout": 10})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        "group.id": f"consume-avro-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    seen = 0
    try:
        while seen < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise RuntimeError(str(message.error()))
            raw = message.value()
            value = deserializer(raw, SerializationContext(topic, MessageField.VALUE))
            key = message.key()
            print(json.dumps({
                "key": key.decode() if key is not None else None,
                "value": value,
                "schema_id": int.from_bytes(raw[1:5], "big"),
                "headers": {name: data.decode() for name, data in (message.headers() or [])},
            }, default=str))
            seen += 1
    finally:
        consumer.close()
    return 0 if seen >= count else 1


if __name__ == "__main__":
    sys.exit(main())
