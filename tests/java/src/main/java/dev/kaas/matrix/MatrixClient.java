package dev.kaas.matrix;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The compatibility matrix's scenario with the Java client (kafka-clients), as tests/src/matrix.rs describes
 * it: create the topic, read the brokers, produce `records` keyed records with acks=all, consume them in a
 * group and commit, produce `more`, consume again in the same group (which must start at the commit), and
 * print what happened as one line of JSON. It checks nothing itself: the harness compares every byte.
 *
 * <p>Connection settings are the three a tenant's user is given, with the CA file read as a PEM truststore
 * (kafka-clients 2.7+), so no keystore tool is needed. Without {@code --ca} the client speaks plaintext straight
 * to a broker: how the harness tells a broker's or client's own failure from the proxy's. With {@code --cert} and
 * {@code --key} (PEM files; the key PKCS#8, unencrypted) it also presents that client certificate, given to
 * kafka-clients as a PEM keystore, inline. With {@code --partitions 0} it does not create the topic but uses it
 * as it is (a user who may write and read a topic, not create one). {@code --idempotence true|false} sets the
 * producer's {@code enable.idempotence} (default: kafka-clients' own, true since 3.0).
 */
public final class MatrixClient {
    private static final Duration CONSUME_WITHIN = Duration.ofSeconds(60);

    /** The step under way, named in the error when one fails. */
    private static String step = "start";

    public static void main(String[] argv) {
        Map<String, String> args = parseArgs(argv);
        StringBuilder out = new StringBuilder("{\"client\":\"kafka-clients\",\"version\":");
        Json.string(out, clientVersion());
        int status = 0;
        try {
            run(args, out);
        } catch (Exception e) {
            Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            cause.printStackTrace();
            // With its causes: kafka-clients often wraps the broker's answer (a producer in error state says
            // so, and only its cause names the error that put it there).
            StringBuilder error = new StringBuilder(step + ": " + cause);
            Throwable c = cause.getCause();
            for (int depth = 0; c != null && depth < 5; depth++, c = c.getCause()) {
                error.append("; caused by: ").append(c);
            }
            out.append(",\"error\":");
            Json.string(out, error.toString());
            status = 1;
        }
        System.out.println(out.append('}'));
        System.exit(status);
    }

    private static void run(Map<String, String> args, StringBuilder out) throws Exception {
        String topic = args.get("topic");
        String group = args.get("group");
        int partitions = Integer.parseInt(args.getOrDefault("partitions", "3"));
        int records = Integer.parseInt(args.getOrDefault("records", "1000"));
        int more = Integer.parseInt(args.getOrDefault("more", "100"));
        Properties common = new Properties();
        common.put("bootstrap.servers", args.get("bootstrap"));
        if (args.containsKey("ca")) {
            common.put("security.protocol", "SSL");
            common.put("ssl.truststore.type", "PEM");
            common.put("ssl.truststore.location", args.get("ca"));
        }
        if (args.containsKey("cert")) {
            common.put("ssl.keystore.type", "PEM");
            common.put("ssl.keystore.certificate.chain", Files.readString(Path.of(args.get("cert"))));
            common.put("ssl.keystore.key", Files.readString(Path.of(args.get("key"))));
        }
        common.put("client.id", "matrix-java");

        step = "create topic, read brokers";
        try (Admin admin = Admin.create(common)) {
            try {
                if (partitions > 0) {
                    admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all()
                        .get(30, TimeUnit.SECONDS);
                }
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
            String brokers = nodes(admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
            out.append(",\"brokers\":").append(brokers);
        }

        Properties p = new Properties();
        p.putAll(common);
        p.put("acks", "all");
        p.put("linger.ms", "5");
        // A record that cannot be delivered fails the cell in 30 s rather than the default 2 minutes.
        p.put("request.timeout.ms", "20000");
        p.put("delivery.timeout.ms", "30000");
        if (args.containsKey("idempotence")) {
            p.put("enable.idempotence", args.get("idempotence"));
        }
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            // Each part is made before any of it is appended, so that a failure half-way still leaves valid
            // JSON to add the error to.
            step = "produce";
            String produced = produce(producer, topic, 0, records);
            out.append(",\"produced\":").append(produced);
            step = "consume";
            String first = consume(common, topic, group, records);
            out.append(",\"first\":").append(first);
            step = "produce more";
            String producedMore = produce(producer, topic, records, records + more);
            out.append(",\"produced_more\":").append(producedMore);
            step = "resume in the group";
            String second = consume(common, topic, group, more);
            out.append(",\"second\":").append(second);
        }

        step = "find the coordinator";
        try (Admin admin = Admin.create(common)) {
            ConsumerGroupDescription g =
                admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
            String coordinator = nodes(List.of(g.coordinator()));
            out.append(",\"coordinator\":").append(coordinator);
        }
    }

    /** Sends records [from, to); returns each one's [partition, offset] in index order, as JSON. */
    private static String produce(KafkaProducer<byte[], byte[]> producer, String topic, int from, int to)
            throws Exception {
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        for (int i = from; i < to; i++) {
            sent.add(producer.send(new ProducerRecord<>(topic, Records.key(i), Records.value(i))));
        }
        producer.flush();
        StringBuilder out = new StringBuilder("[");
        for (int i = 0; i < sent.size(); i++) {
            RecordMetadata md = sent.get(i).get(30, TimeUnit.SECONDS);
            out.append(i == 0 ? "" : ",").append('[').append(md.partition()).append(',').append(md.offset())
                .append(']');
        }
        return out.append(']').toString();
    }

    /** A new consumer in `group` reads until `expect` records came (or time ran out), commits, and leaves. */
    private static String consume(Properties common, String topic, String group, int expect) {
        Properties c = new Properties();
        c.putAll(common);
        c.put("group.id", group);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + CONSUME_WITHIN.toNanos();
            while (got.size() < expect && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(500)).forEach(got::add);
            }
            consumer.commitSync();
        }
        Base64.Encoder b64 = Base64.getEncoder();
        StringBuilder out = new StringBuilder("[");
        for (int i = 0; i < got.size(); i++) {
            ConsumerRecord<byte[], byte[]> r = got.get(i);
            out.append(i == 0 ? "" : ",").append('[').append(r.partition()).append(',').append(r.offset())
                .append(',');
            Json.string(out, r.key() == null ? "" : b64.encodeToString(r.key()));
            out.append(',');
            Json.string(out, r.value() == null ? "" : b64.encodeToString(r.value()));
            out.append(']');
        }
        return out.append(']').toString();
    }

    private static String nodes(Collection<Node> nodes) {
        StringBuilder out = new StringBuilder("[");
        String sep = "";
        for (Node n : nodes) {
            out.append(sep).append("{\"id\":").append(n.id()).append(",\"host\":");
            Json.string(out, n.host());
            out.append(",\"port\":").append(n.port()).append('}');
            sep = ",";
        }
        return out.append(']').toString();
    }

    /**
     * The version kafka-clients reports about itself, from the resource its own AppInfoParser reads (that class
     * moved to an internal package in 4.0; the resource stayed).
     */
    private static String clientVersion() {
        Properties p = new Properties();
        try (var in = KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            if (in != null) {
                p.load(in);
            }
        } catch (java.io.IOException e) {
            return "unknown (" + e + ")";
        }
        return p.getProperty("version", "unknown");
    }

    /** `--name value` pairs; bootstrap, topic and group are required. */
    private static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new java.util.HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                usage("unexpected " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        if (argv.length % 2 != 0) {
            usage("no value for " + argv[argv.length - 1]);
        }
        for (String required : List.of("bootstrap", "topic", "group")) {
            if (!args.containsKey(required)) {
                usage("--" + required + " is required");
            }
        }
        if (args.containsKey("idempotence") && !List.of("true", "false").contains(args.get("idempotence"))) {
            usage("--idempotence is true or false");
        }
        boolean cert = args.containsKey("cert");
        if (cert != args.containsKey("key") || cert && !args.containsKey("ca")) {
            usage("--cert and --key go together, and with --ca");
        }
        return args;
    }

    private static void usage(String problem) {
        System.err.println(problem + "\nusage: MatrixClient --bootstrap HOST:PORT"
            + " [--ca CA.pem [--cert C.pem --key K.pem]] --topic T --group G [--partitions 3] [--records 1000]"
            + " [--more 100] [--idempotence true|false]\n(without --ca: plaintext, straight to a broker;"
            + " --partitions 0: the topic exists, it is not created)");
        System.exit(2);
    }

    private MatrixClient() {}
}
