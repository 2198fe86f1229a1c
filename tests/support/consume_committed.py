"""Reads a topic to its end as a read_committed consumer with confluent-kafka: an independent client's view of what
a transactional writer committed (aborted records and open transactions are not shown).

usage: consume_committed.py TOPIC
Prints one line per record: its value as it is (UTF-8). Reads until every partition reports its end, twice at least
a second apart with nothing new in between, or exits 1 after 120 s.
"""

import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError


def main() -> int:
    topic = sys.argv[1]
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": f"read-committed-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = set(metadata.topics[topic].partitions)
    consumer.subscribe([topic])
    at_end = set()
    quiet_since = None
    deadline = time.monotonic() + 120
    out = sys.stdout
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            if at_end == partitions:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    consumer.close()
                    return 0
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
                continue
            print(message.error(), file=sys.stderr)
            return 1
        quiet_since = None
        at_end.discard(message.partition())
        out.write((message.value() or b"").decode() + "\n")
    print(f"{topic}: the end was not reached in 120 s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
