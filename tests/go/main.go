// Command matrix-client runs the compatibility matrix's scenario (tests/src/matrix.rs) with franz-go: create
// the topic, read the brokers, produce the records with acks=all, consume them in a group and commit, produce
// more, consume again in the same group (which must start at the commit), and print what happened as one line
// of JSON. It checks nothing itself: the harness compares every byte.
//
// Connection settings are the three a tenant's user is given: the bootstrap address, TLS, and the CA file.
// Without -ca the client speaks plaintext straight to a broker: how the harness tells a broker's or client's own
// failure from the proxy's. With -cert and -key it also presents that client certificate (mutual TLS: a tenant
// whose users have certificates), and with -partitions 0 it does not create the topic but uses it as it is (a
// user who may write and read a topic, not create one). -idempotence true|false sets the producer's idempotence
// (default: franz-go's own, on).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const consumeWithin = 60 * time.Second

type broker struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
}

// result is the JSON line the harness reads; see tests/src/matrix.rs.
type result struct {
	Client       string     `json:"client"`
	Version      string     `json:"version"`
	Brokers      []broker   `json:"brokers,omitempty"`
	Coordinator  []broker   `json:"coordinator,omitempty"`
	Produced     [][2]int64 `json:"produced,omitempty"`
	First        [][4]any   `json:"first,omitempty"`
	ProducedMore [][2]int64 `json:"produced_more,omitempty"`
	Second       [][4]any   `json:"second,omitempty"`
	Error        string     `json:"error,omitempty"`
}

type options struct {
	bootstrap, ca, cert, key, topic, group, idempotence string
	partitions, records, more                           int
}

func main() {
	var o options
	flag.StringVar(&o.bootstrap, "bootstrap", "", "host:port of the tenant (required)")
	flag.StringVar(&o.ca, "ca", "", "CA file (PEM) that signed the proxy's certificate; without it, plaintext")
	flag.StringVar(&o.cert, "cert", "", "client certificate (PEM) to present, with -key; needs -ca")
	flag.StringVar(&o.key, "key", "", "the client certificate's private key (PEM)")
	flag.StringVar(&o.topic, "topic", "", "topic, created if missing (required)")
	flag.StringVar(&o.group, "group", "", "consumer group (required)")
	flag.IntVar(&o.partitions, "partitions", 3, "partitions of the topic; 0: use it as it is, do not create it")
	flag.IntVar(&o.records, "records", 1000, "records of the first batch")
	flag.IntVar(&o.more, "more", 100, "records of the second batch")
	// A string, not a bool flag: the harness passes "-idempotence false" as two arguments.
	flag.StringVar(&o.idempotence, "idempotence", "", "true|false: the producer's idempotence; empty: franz-go's")
	flag.Parse()
	badIdempotence := o.idempotence != "" && o.idempotence != "true" && o.idempotence != "false"
	if o.bootstrap == "" || o.topic == "" || o.group == "" || (o.cert == "") != (o.key == "") ||
		(o.cert != "" && o.ca == "") || badIdempotence {
		flag.Usage()
		os.Exit(2)
	}

	res := result{Client: "franz-go", Version: franzVersion()}
	status := 0
	if err := run(o, &res); err != nil {
		res.Error = err.Error()
		status = 1
	}
	line, err := json.Marshal(res)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))
	os.Exit(status)
}

func run(o options, res *result) error {
	common := []kgo.Opt{kgo.SeedBrokers(o.bootstrap), kgo.ClientID("matrix-franz-go")}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("no certificate in %s", o.ca)
		}
		// ServerName stays empty: franz-go then sets it to the host it dials, so each broker name is its SNI.
		config := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if o.cert != "" {
			pair, err := tls.LoadX509KeyPair(o.cert, o.key)
			if err != nil {
				return fmt.Errorf("client certificate: %w", err)
			}
			config.Certificates = []tls.Certificate{pair}
		}
		common = append(common, kgo.DialTLSConfig(config))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A record that cannot be delivered fails the cell in 30 s rather than never (franz-go's default).
	producerOpts := append(common, kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordDeliveryTimeout(30*time.Second))
	if o.idempotence == "false" {
		producerOpts = append(producerOpts, kgo.DisableIdempotentWrite())
	}
	producer, err := kgo.NewClient(producerOpts...)
	if err != nil {
		return err
	}
	defer producer.Close()
	adm := kadm.NewClient(producer)
	if o.partitions > 0 {
		created, err := adm.CreateTopic(ctx, int32(o.partitions), 1, nil, o.topic)
		if err == nil {
			err = created.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic: %w", err)
		}
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, b := range md.Brokers {
		res.Brokers = append(res.Brokers, broker{b.NodeID, b.Host, b.Port})
	}

	if res.Produced, err = produce(ctx, producer, o.topic, 0, o.records); err != nil {
		return err
	}
	if res.First, err = consume(ctx, common, o.topic, o.group, o.records); err != nil {
		return err
	}
	if res.ProducedMore, err = produce(ctx, producer, o.topic, o.records, o.records+o.more); err != nil {
		return err
	}
	if res.Second, err = consume(ctx, common, o.topic, o.group, o.more); err != nil {
		return err
	}

	groups, err := adm.DescribeGroups(ctx, o.group)
	if err == nil {
		err = groups.Error()
	}
	if err != nil {
		return fmt.Errorf("describe group: %w", err)
	}
	c := groups[o.group].Coordinator
	res.Coordinator = []broker{{c.NodeID, c.Host, c.Port}}
	return nil
}

// produce sends records [from, to) and returns each one's [partition, offset] in index order.
func produce(ctx context.Context, cl *kgo.Client, topic string, from, to int) ([][2]int64, error) {
	// Each promise writes its own slot: ProduceSync would list the results in the order they complete.
	out := make([][2]int64, to-from)
	errs := make([]error, to-from)
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key(i), Value: value(i)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			out[i-from], errs[i-from] = [2]int64{int64(r.Partition), r.Offset}, err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", from+i, err)
		}
	}
	return out, nil
}

// consume joins group with a new client, reads until expect records came (or time ran out), commits, and
// leaves the group.
func consume(ctx context.Context, common []kgo.Opt, topic, group string, expect int) ([][4]any, error) {
	cl, err := kgo.NewClient(append(common,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	got := [][4]any{}
	deadline := time.Now().Add(consumeWithin)
	for len(got) < expect && time.Now().Before(deadline) {
		pollCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		for _, e := range fetches.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("consume %s[%d]: %w", e.Topic, e.Partition, e.Err)
			}
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got = append(got, [4]any{r.Partition, r.Offset, r.Key, r.Value})
		})
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return got, nil
}

// franzVersion is the franz-go module version this binary was built with.
func franzVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				return d.Version
			}
		}
	}
	return "unknown"
}
