// kubelet-portforward: the one part of a kubelet the tests' workload clusters need, its port-forward endpoint.
// kube-apiserver proxies `pods/portforward` to the node's kubelet at `/portForward/<namespace>/<pod>`
// (k8s.io/kubernetes v1.36.3 pkg/registry/core/pod/strategy.go PortForwardLocation) as an SPDY upgrade of
// protocol portforward.k8s.io; each forwarded connection is a pair of streams (error, data) sharing a requestID,
// the data stream's `port` header naming the pod's port. Where a real kubelet enters the pod's network
// namespace, this one dials the address the routes file maps (pod, port) to: lines `<namespace>/<pod> <port>
// <host:port>`, re-read per connection, so the harness can add a pod while this runs.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
)

// The names of k8s.io/api/core/v1 (types.go: StreamType, PortHeader, PortForwardRequestIDHeader) and of
// k8s.io/apimachinery/pkg/util/portforward (PortForwardProtocolV1Name), written out to keep the build small.
const (
	protocol      = "portforward.k8s.io"
	streamType    = "streamType"
	streamData    = "data"
	streamError   = "error"
	portHeader    = "port"
	requestHeader = "requestID"
)

var routes = flag.String("routes", "", "file of `<namespace>/<pod> <port> <host:port>` lines")

// target is the address (pod, port) is forwarded to, from the routes file as it is now.
func target(pod, port string) (string, error) {
	f, err := os.Open(*routes)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 3 && fields[0] == pod && fields[1] == port {
			return fields[2], nil
		}
	}
	return "", fmt.Errorf("no route for pod %s port %s", pod, port)
}

// pair is one forwarded connection's streams, which arrive one at a time.
type pair struct {
	errorStream, dataStream httpstream.Stream
}

func serve(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/portForward/"), "/")
	if len(parts) < 2 {
		http.Error(w, "want /portForward/<namespace>/<pod>", http.StatusNotFound)
		return
	}
	pod := parts[0] + "/" + parts[1]
	if _, err := httpstream.Handshake(req, w, []string{protocol}); err != nil {
		return // Handshake wrote the error.
	}
	streams := make(chan httpstream.Stream, 4)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, req, func(s httpstream.Stream, replySent <-chan struct{}) error {
		streams <- s
		return nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	conn.SetIdleTimeout(4 * time.Hour)
	pairs := map[string]*pair{} // this loop's alone
	for {
		select {
		case <-conn.CloseChan():
			return
		case s := <-streams:
			id := s.Headers().Get(requestHeader)
			p, ok := pairs[id]
			if !ok {
				p = &pair{}
				pairs[id] = p
			}
			switch s.Headers().Get(streamType) {
			case streamError:
				p.errorStream = s
			case streamData:
				p.dataStream = s
			default:
				s.Reset()
			}
			if p.errorStream != nil && p.dataStream != nil {
				delete(pairs, id)
				go forward(conn, pod, p)
			}
		}
	}
}

// forward copies between the data stream and the mapped address until either side ends; a dial failure goes
// to the error stream, as the kubelet reports it.
func forward(conn httpstream.Connection, pod string, p *pair) {
	defer conn.RemoveStreams(p.dataStream, p.errorStream)
	defer p.errorStream.Close()
	defer p.dataStream.Close()
	port := p.dataStream.Headers().Get(portHeader)
	addr, err := target(pod, port)
	var upstream net.Conn
	if err == nil {
		upstream, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		log.Printf("%s:%s: %v", pod, port, err)
		fmt.Fprintf(p.errorStream, "error forwarding port %s to pod %s: %v", port, pod, err)
		return
	}
	defer upstream.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, p.dataStream); done <- struct{}{} }()
	go func() { io.Copy(p.dataStream, upstream); done <- struct{}{} }()
	<-done
}

func main() {
	listen := flag.String("listen", "127.0.0.1:10250", "address to serve HTTPS on")
	cert := flag.String("tls-cert-file", "", "serving certificate (PEM)")
	key := flag.String("tls-private-key-file", "", "its key (PEM)")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/portForward/", serve)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	log.Printf("serving port-forward on %s", *listen)
	log.Fatal(http.ListenAndServeTLS(*listen, *cert, *key, mux))
}
