#!/usr/bin/env python3
"""The compatibility matrix's scenario (tests/src/matrix.rs) with a Python client.

Create the topic, read the brokers, produce the records with acks=all, consume them in a group and commit,
produce more, consume again in the same group (which must start at the commit), and print what happened as one
line of JSON. It checks nothing itself: the harness compares every byte. Connection settings are the three a
tenant's user is given: the bootstrap address, TLS, and the CA file; without --ca the client speaks plaintext
straight to a broker (how the harness tells a broker's or client's own failure from the proxy's). With --cert
and --key the client also presents that certificate (mutual TLS: a tenant whose users have certificates), and
with --partitions 0 it does not create the topic but uses it as it is (a user who may write and read a topic,
not create one). --idempotence true|false sets the producer's idempotence (default: the client's own).

  matrix_client.py --client confluent|kafka-python --bootstrap HOST:PORT [--ca CA.pem [--cert C.pem --key K.pem]]
                   --topic T --group G [--partitions 3] [--records 1000] [--more 100] [--idempotence BOOL]
"""
import argparse
import base64
import json
import sys
import time
import traceback

CONSUME_WITHIN = 60.0


def key(i):
    """key-<i mod 32>; the same in every client of the matrix."""
    return f"key-{i % 32}".encode()


def value(i):
    """v<i>/ then 64 + (i mod 193) bytes, byte j being (31 i + j) mod 256; the same in every client."""
    return f"v{i}/".encode() + bytes((31 * i + j) & 0xFF for j in range(64 + i % 193))


def b64(b):
    return base64.b64encode(b or b"").decode()


def node(id_, host, port):
    return {"id": id_, "host": host, "port": port}


class Confluent:
    """confluent-kafka, on librdkafka."""

    def __init__(self, a):
        import confluent_kafka
        import confluent_kafka.admin

        self.ck = confluent_kafka
        self.version = f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
        self.conf = {"bootstrap.servers": a.bootstrap, "client.id": "matrix-confluent"}
        if a.ca:
            self.conf |= {"security.protocol": "SSL", "ssl.ca.location": a.ca}
        if a.cert:
            self.conf |= {"ssl.certificate.location": a.cert, "ssl.key.location": a.key}
        self.producer_conf = {"acks": "all", "linger.ms": 5}
        if a.idempotence is not None:
            self.producer_conf["enable.idempotence"] = a.idempotence == "true"
        self.producer = None
        # One admin client for the whole run: its futures only resolve while it lives.
        self.admin = self.ck.admin.AdminClient(self.conf)

    def create_topic_and_brokers(self, topic, partitions):
        from confluent_kafka.admin import NewTopic

        admin = self.admin
        created = admin.create_topics([NewTopic(topic, partitions, 1)]) if partitions > 0 else {}
        for f in created.values():
            try:
                f.result(30)
            except self.ck.KafkaException as e:
                if e.args[0].code() != self.ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        md = admin.list_topics(timeout=30)
        return [node(b.id, b.host, b.port) for b in md.brokers.values()]

    def produce(self, topic, indexes):
        if self.producer is None:
            self.producer = self.ck.Producer(self.conf | self.producer_conf)
        reports = {}

        def report(i):
            def on_delivery(err, msg):
                reports[i] = err if err is not None else [msg.partition(), msg.offset()]
            return on_delivery

        for i in indexes:
            while True:
                try:
                    self.producer.produce(topic, key=key(i), value=value(i), on_delivery=report(i))
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)
        self.producer.flush(60)
        return [ok_or_raise(i, reports.get(i, "no delivery report")) for i in indexes]

    def close(self):
        if self.producer is not None:
            self.producer.flush(10)

    def consume(self, topic, group, expect):
        c = self.ck.Consumer(self.conf | {"group.id": group, "auto.offset.reset": "earliest",
                                          "enable.auto.commit": False})
        c.subscribe([topic])
        got, deadline = [], time.time() + CONSUME_WITHIN
        while len(got) < expect and time.time() < deadline:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    raise self.ck.KafkaException(m.error())
                got.append([m.partition(), m.offset(), b64(m.key()), b64(m.value())])
        c.commit(asynchronous=False)
        c.close()
        return got

    def coordinator(self, group):
        g = self.admin.describe_consumer_groups([group])[group].result(30)
        return [node(g.coordinator.id, g.coordinator.host, g.coordinator.port)]


class KafkaPython:
    """kafka-python, pure Python."""

    def __init__(self, a):
        import kafka

        self.kafka = kafka
        self.version = kafka.__version__
        self.conf = {"bootstrap_servers": a.bootstrap, "client_id": "matrix-kafka-python"}
        if a.ca:
            self.conf |= {"security_protocol": "SSL", "ssl_cafile": a.ca}
        if a.cert:
            self.conf |= {"ssl_certfile": a.cert, "ssl_keyfile": a.key}
        self.producer_conf = {"acks": "all", "linger_ms": 5}
        if a.idempotence is not None:
            self.producer_conf["enable_idempotence"] = a.idempotence == "true"
        self.producer = None
        self.coordinators = {}

    def create_topic_and_brokers(self, topic, partitions):
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = self.kafka.KafkaAdminClient(**self.conf)
        try:
            if partitions > 0:
                admin.create_topics([NewTopic(topic, partitions, 1)])
        except TopicAlreadyExistsError:
            pass
        brokers = [node(b["node_id"], b["host"], b["port"]) for b in admin.describe_cluster()["brokers"]]
        admin.close()
        return brokers

    def produce(self, topic, indexes):
        if self.producer is None:
            self.producer = self.kafka.KafkaProducer(**self.conf, **self.producer_conf)
        futures = [(i, self.producer.send(topic, key=key(i), value=value(i))) for i in indexes]
        self.producer.flush(60)
        out = []
        for i, f in futures:
            md = f.get(timeout=60)
            out.append([md.partition, md.offset])
        return out

    def consume(self, topic, group, expect):
        c = self.kafka.KafkaConsumer(**self.conf, group_id=group, auto_offset_reset="earliest",
                                     enable_auto_commit=False)
        c.subscribe([topic])
        got, deadline = [], time.time() + CONSUME_WITHIN
        while len(got) < expect and time.time() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                got.extend([m.partition, m.offset, b64(m.key), b64(m.value)] for m in msgs)
        c.commit()
        # kafka-python's admin client has no public coordinator lookup: keep the one this consumer used,
        # which its cluster view files as "coordinator-<node id>".
        cluster = c._client.cluster
        coordinator = cluster.broker_metadata(cluster.coordinator_for_group(group))
        if coordinator is not None:
            self.coordinators[group] = node(int(str(coordinator.nodeId).rsplit("-", 1)[-1]), coordinator.host,
                                            coordinator.port)
        c.close()
        return got

    def coordinator(self, group):
        return [self.coordinators[group]] if group in self.coordinators else []

    def close(self):
        if self.producer is not None:
            self.producer.close(10)


def ok_or_raise(i, report):
    if isinstance(report, list):
        return report
    raise RuntimeError(f"record {i}: {report}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--ca", help="CA of the proxy's certificate; without it, plaintext")
    ap.add_argument("--cert", help="client certificate (PEM) to present, with --key; needs --ca")
    ap.add_argument("--key", help="the client certificate's private key (PEM)")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--partitions", type=int, default=3, help="of the topic it creates; 0: use it as it is")
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--more", type=int, default=100)
    ap.add_argument("--idempotence", choices=["true", "false"],
                    help="the producer's idempotence; without it, the client's default")
    a = ap.parse_args()
    if bool(a.cert) != bool(a.key) or (a.cert and not a.ca):
        ap.error("--cert and --key go together, and with --ca")
    client = {"confluent": Confluent, "kafka-python": KafkaPython}[a.client](a)
    out = {"client": a.client, "version": client.version}
    status = 0
    step = "start"
    try:
        step = "create topic, read brokers"
        out["brokers"] = client.create_topic_and_brokers(a.topic, a.partitions)
        step = "produce"
        out["produced"] = client.produce(a.topic, range(a.records))
        step = "consume"
        out["first"] = client.consume(a.topic, a.group, a.records)
        step = "produce more"
        out["produced_more"] = client.produce(a.topic, range(a.records, a.records + a.more))
        step = "resume in the group"
        out["second"] = client.consume(a.topic, a.group, a.more)
        step = "find the coordinator"
        out["coordinator"] = client.coordinator(a.group)
    except Exception as e:  # reported in the JSON line, which the harness turns into the cell's reason
        traceback.print_exc()
        out["error"] = f"{step}: {e!r}"
        status = 1
    finally:
        client.close()
    json.dump(out, sys.stdout)
    print()
    sys.exit(status)


if __name__ == "__main__":
    main()
