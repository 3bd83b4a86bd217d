#!/usr/bin/env python3
"""Real Kafka clients driven from the end-to-end tests and the demo.

Each command connects through the proxy with TLS (the only settings a tenant's user is given: the bootstrap
name and a CA file) and prints one JSON document on stdout, which the Rust tests assert on.

  metadata   brokers and topics as the client sees them
  roundtrip  produce N keyed records, consume them back in a consumer group, commit; report both sides
  resume     consume whatever the group has not committed yet (the second consumer of a group)
"""
import argparse
import base64
import hashlib
import json
import sys
import time


def payload(run, i):
    """Deterministic bytes covering every byte value, so any corruption shows."""
    seed = hashlib.sha256(f"{run}/{i}".encode()).digest()
    return seed + bytes(range(256)) + seed[::-1] * (i % 5)


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


# --- confluent-kafka (librdkafka) ----------------------------------------------------------------------------------
def confluent_conf(a):
    conf = {
        "bootstrap.servers": a.bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": a.ca,
        "client.id": f"e2e-{a.client}",
    }
    if a.cert:
        conf |= {"ssl.certificate.location": a.cert, "ssl.key.location": a.key}
    return conf


def confluent_metadata(a):
    from confluent_kafka.admin import AdminClient

    md = AdminClient(confluent_conf(a)).list_topics(timeout=20)
    return {"brokers": [{"id": b.id, "host": b.host, "port": b.port} for b in md.brokers.values()],
            "topics": sorted(md.topics)}


def confluent_create_topic(a):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(confluent_conf(a))
    if a.topic in admin.list_topics(timeout=20).topics:
        return
    for f in admin.create_topics([NewTopic(a.topic, a.partitions, 1)]).values():
        f.result(30)


def confluent_produce(a):
    from confluent_kafka import Producer

    confluent_create_topic(a)

    conf = confluent_conf(a) | {"acks": a.acks, "linger.ms": 5, "enable.idempotence": False}
    p = Producer(conf)
    sent = []

    def report(err, msg):
        if err is not None:
            sent.append({"error": str(err)})
        else:
            sent.append({"partition": msg.partition(), "offset": msg.offset(), "key": b64(msg.key()),
                         "value": b64(msg.value())})

    for i in range(a.count):
        key = f"key-{i % a.keys}".encode()
        while True:
            try:
                p.produce(a.topic, key=key, value=payload(a.run, i), on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    return sent, left


def confluent_consume(a, expect):
    from confluent_kafka import Consumer

    conf = confluent_conf(a) | {"group.id": a.group, "auto.offset.reset": "earliest",
                                "enable.auto.commit": False}
    c = Consumer(conf)
    c.subscribe([a.topic])
    got, deadline = [], time.time() + a.timeout
    while len(got) < expect and time.time() < deadline:
        for m in c.consume(num_messages=500, timeout=1.0):
            if m.error():
                got.append({"error": str(m.error())})
                continue
            got.append({"partition": m.partition(), "offset": m.offset(), "key": b64(m.key()), "value": b64(m.value())})
    if got:
        c.commit(asynchronous=False)
    c.close()
    return got


# --- kafka-python (pure Python) ------------------------------------------------------------------------------------
def kp_conf(a):
    conf = {"bootstrap_servers": a.bootstrap, "security_protocol": "SSL", "ssl_cafile": a.ca,
            "client_id": f"e2e-{a.client}"}
    if a.cert:
        conf |= {"ssl_certfile": a.cert, "ssl_keyfile": a.key}
    return conf


def kp_metadata(a):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**kp_conf(a))
    cluster = admin.describe_cluster()
    topics = admin.list_topics()
    admin.close()
    return {"brokers": [{"id": b["node_id"], "host": b["host"], "port": b["port"]} for b in cluster["brokers"]],
            "topics": sorted(topics)}


def kp_create_topic(a):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**kp_conf(a))
    try:
        admin.create_topics([NewTopic(a.topic, a.partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    admin.close()


def kp_produce(a):
    from kafka import KafkaProducer

    kp_create_topic(a)

    acks = {"all": "all", "-1": "all", "1": 1, "0": 0}[a.acks]
    p = KafkaProducer(**kp_conf(a), acks=acks, linger_ms=5)
    futures = [p.send(a.topic, key=f"key-{i % a.keys}".encode(), value=payload(a.run, i)) for i in range(a.count)]
    p.flush(60)
    sent = []
    for i, f in enumerate(futures):
        try:
            md = f.get(timeout=60)
            sent.append({"partition": md.partition, "offset": md.offset, "key": b64(f"key-{i % a.keys}".encode()),
                         "value": b64(payload(a.run, i))})
        except Exception as e:  # reported, asserted on by the test
            sent.append({"error": repr(e)})
    p.close()
    return sent, 0


def kp_consume(a, expect):
    from kafka import KafkaConsumer

    c = KafkaConsumer(a.topic, **kp_conf(a), group_id=a.group, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=int(a.timeout * 1000))
    got, deadline = [], time.time() + a.timeout
    while len(got) < expect and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=1000).items():
            for m in msgs:
                got.append({"partition": m.partition, "offset": m.offset, "key": b64(m.key), "value": b64(m.value)})
    if got:
        c.commit()
    c.close()
    return got


CLIENTS = {
    "confluent": (confluent_metadata, confluent_produce, confluent_consume),
    "kafka-python": (kp_metadata, kp_produce, kp_consume),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["metadata", "roundtrip", "produce", "resume"])
    ap.add_argument("--client", choices=sorted(CLIENTS), default="confluent")
    ap.add_argument("--bootstrap", required=True, help="host:port, e.g. demo.kaas.localhost:9092")
    ap.add_argument("--ca", required=True, help="CA certificate file (PEM) that signed the proxy's certificate")
    ap.add_argument("--cert", help="client certificate (PEM), for tenants that require one")
    ap.add_argument("--key", help="the client certificate's private key (PEM)")
    ap.add_argument("--topic", default="e2e")
    ap.add_argument("--group", default="e2e-group")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=3, help="partitions of the topic if it must be created")
    ap.add_argument("--keys", type=int, default=16)
    ap.add_argument("--acks", default="all", choices=["all", "-1", "0", "1"])
    ap.add_argument("--run", default="run", help="seed for the record payloads")
    ap.add_argument("--expect", type=int, default=None, help="records to consume (default: --count)")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    if bool(a.cert) != bool(a.key):
        ap.error("--cert and --key go together")
    metadata, produce, consume = CLIENTS[a.client]
    out = {}
    if a.command == "metadata":
        out = metadata(a)
    if a.command in ("produce", "roundtrip"):
        out["produced"], out["unflushed"] = produce(a)
    if a.command in ("roundtrip", "resume"):
        out["consumed"] = consume(a, a.count if a.expect is None else a.expect)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
