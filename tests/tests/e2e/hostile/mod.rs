//! The hostile-input suite: one test per attack on the proxy, from clients (frames, TLS, server names,
//! connection floods) and from a tenant's broker (unsolicited, garbage, truncated or stalled answers, huge
//! responses to a client that never reads). Every case runs in an [`arena::Arena`]: it must be answered with a
//! clear log line and a counter, cost bounded memory, and leave tenant `steady` producing through the same proxy
//! with zero errors. Strangers who never authenticate ([`preauth`]) hold only their handshake places; a
//! broker that names the metadata service or a loopback port gets nothing dialled there ([`reach`]). The
//! attacks that need a real Apache Kafka cluster are in [`kafka`]; the mutated
//! responses of every address-carrying API in [`broker_responses`].

mod arena;
mod broker_responses;
mod frames;
mod hello;
mod kafka;
mod preauth;
mod proxy_protocol;
mod reach;
mod script;

use std::time::Duration;

use arena::{Arena, Target};
use frames::{refusals, refused, request, SESSION_ERRORS};
use hello::{Answer, Hello};
use kaas_e2e::{raw, DOMAIN};
use script::Script;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The suite's tests: each attack is its own test, in its own process (nextest), with its own proxy.
macro_rules! case {
    ($(#[$doc:meta])* $name:ident, $body:expr) => {
        $(#[$doc])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $body.await
        }
    };
}

/// `kaas_proxy_listener_refused_total` for `reason`.
fn listener_refusals(reason: &str) -> String {
    format!("kaas_proxy_listener_refused_total{{reason=\"{reason}\"}}")
}

// --- Frames after a valid handshake ----------------------------------------------------------------------------

case!(
    /// A real Metadata request cut at every offset, then the client closes: each connection ends as a
    /// truncated frame, nothing is forwarded (the broker would wait for the rest), and each is counted.
    truncated_request_at_every_offset,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let frame = frames::metadata_v12();
        for cut in 1..frame.len() {
            let mut conn = arena.connect().await;
            conn.write_all(&frame[..cut]).await.expect("write");
            conn.get_mut().shutdown().await.expect("close");
            assert!(raw::closed_within(conn.get_mut(), Duration::from_secs(5)).await, "cut {cut}: not closed");
        }
        arena.expect_log("closed mid-frame");
        arena.expect_metric(SESSION_ERRORS, (frame.len() - 1) as f64);
        arena.finish(32).await;
    }
);

case!(
    /// A frame of length 0 has no header to read.
    zero_length_frame,
    async {
        let arena = Arena::start(Target::Tansu).await;
        refused(&arena, &0u32.to_be_bytes(), "truncated header: 0 bytes", "client_request").await;
        arena.finish(16).await;
    }
);

case!(
    /// A negative length prefix.
    negative_length,
    async {
        let arena = Arena::start(Target::Tansu).await;
        refused(&arena, &(-1i32).to_be_bytes(), "is negative", "client_frame_size").await;
        arena.finish(16).await;
    }
);

case!(
    /// A 2 GiB length prefix: refused on the prefix alone, nothing reserved for it.
    two_gib_length,
    async {
        let arena = Arena::start(Target::Tansu).await;
        refused(&arena, &0x7fff_ffffu32.to_be_bytes(), "larger than max_frame_bytes", "client_frame_size").await;
        arena.finish(16).await;
    }
);

case!(
    /// One byte over `max_frame_bytes` (1 MiB here): refused on the prefix, before the body is sent.
    just_above_max_frame_bytes,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let log = "frame of 1048577 bytes is larger than max_frame_bytes (1048576)";
        refused(&arena, &(1_048_577u32).to_be_bytes(), log, "client_frame_size").await;
        arena.finish(16).await;
    }
);

case!(
    /// A request whose header is cut inside the client id: the header cannot be read.
    truncated_header,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let bytes = frames::with_length(&[0, 3, 0, 0, 0, 0, 0, 1, 0, 9, b'a']);
        refused(&arena, &bytes, "unreadable request header", "client_request").await;
        arena.finish(16).await;
    }
);

case!(
    /// An API key the proxy does not know is refused, not forwarded (fail closed: its response could carry
    /// broker addresses the proxy cannot see), and ApiVersions never offers one.
    unknown_api_key,
    async {
        let arena = Arena::start(Target::Tansu).await;
        refused(&arena, &request(32_000, 0, 1, &[]), "API key 32000 is not one the proxy knows", "client_request")
            .await;
        arena.finish(16).await;
    }
);

case!(
    /// A version of an API the proxy rewrites that it cannot read (Metadata v14): refused, not forwarded, since
    /// its response could carry addresses the proxy cannot find.
    unreadable_version_of_a_rewritten_api,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let bytes = request(3, 14, 1, &[0]);
        refused(&arena, &bytes, "outside the versions the proxy can rewrite", "client_request").await;
        arena.finish(16).await;
    }
);

case!(
    /// A future version of an API that passes through (Heartbeat v99) is the broker's to refuse: forwarded,
    /// counted, and the broker's refusal (a close) ends the session.
    future_version_of_a_passed_through_api,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let mut conn = arena.connect().await;
        conn.write_all(&request(12, 99, 1, &[0; 8])).await.expect("write");
        assert!(raw::closed_within(conn.get_mut(), Duration::from_secs(5)).await, "not closed");
        arena.expect_metric("kaas_proxy_requests_total{tenant=\"target\",api=\"Heartbeat\"}", 1.0);
        arena.finish(16).await;
    }
);

case!(
    /// A controller-quorum API (Vote) carries internal addresses: refused.
    blocked_api,
    async {
        let arena = Arena::start(Target::Tansu).await;
        // Vote is flexible: its header (v2) ends in an empty tagged-fields byte.
        refused(&arena, &request(52, 0, 1, &[0]), "is not available through the proxy", "client_request").await;
        arena.finish(16).await;
    }
);

case!(
    /// A flexible Produce (v9, request header v2) sent with request header v1: the proxy reads the header the
    /// version calls for, so the body's first byte is taken for the header's tagged fields and `acks` cannot be
    /// read where it should be; refused rather than guessed.
    header_version_mismatched_with_flexible_version,
    async {
        let arena = Arena::start(Target::Tansu).await;
        // Produce v9 body: transactional_id null (varint 0), acks -1, timeout 1000, topics: empty (varint 1).
        let body = [0x00, 0xff, 0xff, 0x00, 0x00, 0x03, 0xe8, 0x01, 0x00];
        refused(&arena, &request(0, 9, 1, &body), "unreadable Produce request (acks)", "client_request").await;
        arena.finish(16).await;
    }
);

case!(
    /// A client that sends a response-shaped frame (correlation id and an error code, as a broker would).
    response_shaped_frame_from_a_client,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let bytes = frames::with_length(&[0, 0, 0, 7, 0, 0]);
        refused(&arena, &bytes, "truncated header", "client_request").await;
        arena.finish(16).await;
    }
);

// --- Before TLS: not TLS at all --------------------------------------------------------------------------------

case!(
    /// SaslHandshake in plaintext (a client configured SASL_PLAINTEXT): recognised as Kafka and told so.
    sasl_before_tls,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let mut mechanism = vec![0, 5];
        mechanism.extend_from_slice(b"PLAIN");
        let answer = hello::send(arena.proxy.port, &request(17, 1, 1, &mechanism)).await.expect("send");
        assert_eq!(answer, Answer::Closed);
        arena.expect_log("plaintext Kafka on the TLS port");
        arena.expect_metric(&listener_refusals("plaintext"), 1.0);
        arena.finish(16).await;
    }
);

case!(
    /// ApiVersions in plaintext (security.protocol=PLAINTEXT).
    plaintext_kafka,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let answer = hello::send(arena.proxy.port, &request(18, 3, 1, &[0, 0, 0])).await.expect("send");
        assert_eq!(answer, Answer::Closed);
        arena.expect_log("plaintext Kafka on the TLS port (clients must use security.protocol=SSL)");
        arena.expect_metric(&listener_refusals("plaintext"), 1.0);
        arena.finish(16).await;
    }
);

case!(
    /// An HTTP request to the TLS port.
    http_to_the_tls_port,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let answer = hello::send(arena.proxy.port, b"GET / HTTP/1.1\r\nHost: target\r\n\r\n").await.expect("send");
        assert_eq!(answer, Answer::Closed);
        arena.expect_log("not TLS (first byte 0x47)");
        arena.expect_metric(&listener_refusals("not_tls"), 1.0);
        arena.finish(16).await;
    }
);

// --- TLS handshakes ----------------------------------------------------------------------------------------------

/// A hello offering only an old version is refused with `protocol_version`.
async fn legacy_hello(version: u16) {
    let arena = Arena::start(Target::Tansu).await;
    let answer = hello::send(arena.proxy.port, &Hello::legacy(arena.sni().as_bytes(), version).records())
        .await
        .expect("send");
    assert_eq!(answer, Answer::Alert(70), "protocol_version alert");
    arena.expect_metric(&listener_refusals("protocol_version"), 1.0);
    arena.expect_log("reason=protocol_version");
    arena.finish(16).await;
}

case!(
    /// A TLS 1.0 ClientHello.
    tls_1_0_client_hello,
    legacy_hello(0x0301)
);

case!(
    /// A TLS 1.1 ClientHello.
    tls_1_1_client_hello,
    legacy_hello(0x0302)
);

case!(
    /// Half a ClientHello, then silence: closed when the handshake timeout (1 s here) passes.
    half_a_client_hello,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let hello = Hello::tls13(arena.sni().as_bytes()).records();
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", arena.proxy.port)).await.expect("tcp");
        tcp.write_all(&hello[..hello.len() / 2]).await.expect("write");
        let started = std::time::Instant::now();
        assert!(raw::closed_within(&mut tcp, Duration::from_secs(5)).await, "not closed");
        assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout");
        arena.expect_log("no ClientHello within");
        arena.expect_metric(&listener_refusals("no_client_hello"), 1.0);
        arena.finish(16).await;
    }
);

case!(
    /// A whole ClientHello, a ServerHello back, and then the client never finishes its handshake.
    handshake_never_completed,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", arena.proxy.port)).await.expect("tcp");
        tcp.write_all(&Hello::tls13(arena.sni().as_bytes()).records()).await.expect("write");
        let mut first = [0u8; 6];
        tcp.read_exact(&mut first).await.expect("the server's first record");
        assert_eq!((first[0], first[5]), (22, 2), "a ServerHello");
        assert!(raw::closed_within(&mut tcp, Duration::from_secs(5)).await, "not closed");
        arena.expect_metric(&listener_refusals("handshake_timeout"), 1.0);
        arena.expect_log("handshake");
        arena.finish(16).await;
    }
);

case!(
    /// TLS 1.2 renegotiation, asked for by the client once its session is up (OpenSSL's `s_client`, command
    /// `R`): the proxy never renegotiates (rustls refuses with a `no_renegotiation` warning), the client's
    /// attempt fails on its side, and the session ends without harm to anyone else.
    client_asks_for_renegotiation,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-tls1_2", "-connect", &format!("127.0.0.1:{}", arena.proxy.port)])
            .args(["-servername", &arena.sni(), "-CAfile"])
            .arg(&arena.certs.ca)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("openssl s_client");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            // After the handshake (s_client reads commands only once it is up), ask for renegotiation.
            std::thread::sleep(Duration::from_secs(1));
            stdin.write_all(b"R\n").expect("write R");
            std::thread::sleep(Duration::from_secs(2));
        }
        let out = child.wait_with_output().expect("s_client ends");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("s_client stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stdout.contains("Verify return code: 0 (ok)"), "the session was up before the attempt");
        assert!(stderr.contains("RENEGOTIATING"), "s_client asked to renegotiate");
        assert!(stderr.contains("no renegotiation") || stdout.contains("no renegotiation"), "refused");
        arena.finish(16).await;
    }
);

case!(
    /// A ClientHello over 64 KiB (padding spread over five records): refused without being buffered whole.
    oversized_client_hello,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let mut big = Hello::tls13(arena.sni().as_bytes());
        // The most padding the extensions block holds: the handshake message then exceeds TLS' 64 KiB.
        big.padding = 65_400;
        assert!(big.message().len() > 4 + 0xffff, "a hello over 64 KiB");
        let answer = hello::send(arena.proxy.port, &big.records()).await.expect("send");
        assert!(matches!(answer, Answer::Alert(_) | Answer::Closed), "{answer:?}");
        arena.expect_log("invalid ClientHello");
        arena.expect_metric(&listener_refusals("invalid_client_hello"), 1.0);
        arena.finish(16).await;
    }
);

// --- Server names ------------------------------------------------------------------------------------------------

/// Sends a TLS 1.3 hello with `sni` and returns the answer.
async fn hello_for(arena: &Arena, sni: &[u8]) -> Answer {
    hello::send(arena.proxy.port, &Hello::tls13(sni).records()).await.expect("send")
}

/// Asserts a hello for `sni` is refused with `unrecognized_name`, logged with `log`, counted.
async fn unrecognized(sni: &[u8], log: &str) {
    let arena = Arena::start(Target::Tansu).await;
    assert_eq!(hello_for(&arena, sni).await, Answer::Alert(112), "unrecognized_name");
    arena.expect_log(log);
    arena.expect_metric(&listener_refusals("unrecognized_name"), 1.0);
    arena.finish(16).await;
}

/// Asserts a hello whose server name is not a DNS name is refused by rustls as it reads the hello, with
/// `illegal_parameter` (the extension is malformed, not merely unknown), logged and counted.
async fn malformed_name(sni: &[u8]) {
    let arena = Arena::start(Target::Tansu).await;
    assert_eq!(hello_for(&arena, sni).await, Answer::Alert(47), "illegal_parameter");
    arena.expect_log("invalid ClientHello: peer misbehaved");
    arena.expect_metric(&listener_refusals("invalid_client_hello"), 1.0);
    arena.finish(16).await;
}

case!(
    /// Characters no host name has.
    sni_with_odd_characters,
    malformed_name(b"ta_rget!*.kaas.localhost")
);

case!(
    /// A punycode name (valid DNS, no such tenant) is named in the log as it came.
    sni_punycode,
    unrecognized(b"xn--bcher-kva.kaas.localhost", "xn--bcher-kva.kaas.localhost")
);

case!(
    /// Raw UTF-8 in SNI is not a DNS name (IDNs travel as punycode).
    sni_raw_utf8,
    malformed_name("bücher.kaas.localhost".as_bytes())
);

case!(
    /// An IP address is not a server name (RFC 6066).
    sni_ip_address,
    unrecognized(b"127.0.0.1", "no server name (SNI)")
);

/// A name of `len` bytes under the domain: 63-byte labels, then a shorter one, then the domain.
fn long_name(len: usize) -> String {
    let label = "a".repeat(63);
    let name = format!("{label}.{label}.{label}.{}.{DOMAIN}", "b".repeat(len - 3 * 64 - DOMAIN.len() - 1));
    assert_eq!(name.len(), len);
    name
}

case!(
    /// The longest DNS name (253 bytes): well-formed, no such tenant, named in the log in full.
    sni_253_bytes,
    unrecognized(long_name(253).as_bytes(), "names no tenant")
);

case!(
    /// A 255-byte name is longer than DNS allows.
    sni_255_bytes,
    malformed_name(long_name(255).as_bytes())
);

case!(
    /// A node id past i32: a shape no broker has, refused before any metadata request.
    broker_id_overflowing_i32,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let name = format!("b2147483648.target.{DOMAIN}");
        assert_eq!(hello_for(&arena, name.as_bytes()).await, Answer::Alert(112));
        arena.expect_log("names no tenant");
        arena.expect_metric(&listener_refusals("unrecognized_name"), 1.0);
        let refreshes = "kaas_proxy_upstream_metadata_refreshes_total{tenant=\"target\",outcome=\"ok\"}";
        assert_eq!(arena.metric(refreshes), 0.0, "no metadata request for a name that cannot be a broker");
        arena.finish(16).await;
    }
);

case!(
    /// DNS names are case-insensitive: an upper-case name reaches the tenant.
    sni_upper_case,
    async {
        let arena = Arena::start(Target::Tansu).await;
        assert_eq!(hello_for(&arena, b"TARGET.KAAS.LOCALHOST").await, Answer::ServerHello);
        arena.finish(16).await;
    }
);

case!(
    /// A fully qualified name with its trailing dot reaches the tenant.
    sni_trailing_dot,
    async {
        let arena = Arena::start(Target::Tansu).await;
        assert_eq!(hello_for(&arena, format!("target.{DOMAIN}.").as_bytes()).await, Answer::ServerHello);
        arena.finish(16).await;
    }
);

// --- Connections ----------------------------------------------------------------------------------------------

case!(
    /// After its handshake a client sends nothing (a peer that vanished without a FIN): the idle timeout (2 s
    /// here) closes it, and the tenant's session gauge returns to zero.
    silent_client_after_handshake,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let mut conn = arena.connect().await;
        arena.expect_metric("kaas_proxy_session_active{tenant=\"target\"}", 1.0);
        assert!(raw::closed_within(conn.get_mut(), Duration::from_secs(6)).await, "idle session not closed");
        arena.expect_log("idle session closed");
        arena.expect_metric("kaas_proxy_session_active{tenant=\"target\"}", 0.0);
        arena.finish(16).await;
    }
);

case!(
    /// Half-open TCP: a client sends a request and closes its sending side at once; the answer still reaches
    /// it, then the proxy closes.
    half_closed_client_gets_its_answer,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let mut conn = arena.connect().await;
        conn.write_all(&frames::metadata_v12()).await.expect("write");
        conn.get_mut().shutdown().await.expect("half close");
        let answer = raw::read_frame(&mut conn).await.expect("read").expect("the Metadata answer");
        assert_eq!(&answer[4..8], &9i32.to_be_bytes(), "its correlation id");
        assert!(raw::closed_within(conn.get_mut(), Duration::from_secs(6)).await, "not closed after the answer");
        arena.expect_metric("kaas_proxy_requests_total{tenant=\"target\",api=\"Metadata\"}", 1.0);
        arena.finish(16).await;
    }
);

case!(
    /// One address opens connections until `max_connections_per_ip` (20 here) and keeps trying: the rest of
    /// that address's connections are closed on accept, while other addresses (the steady producer, a client on
    /// 127.0.0.1) connect as usual, and the address is admitted again once its connections close.
    connection_flood_from_one_address,
    async {
        // Long timeouts: the flood's silent connections stay open for the whole case.
        let settings = "hello_timeout_seconds: 30\nhandshake_timeout_seconds: 30\nmax_connections_per_ip: 20\n";
        let arena = Arena::start_with(Target::Tansu, settings).await;
        let from = |ip: &'static str| {
            let port = arena.proxy.port;
            async move {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.bind(format!("{ip}:0").parse().expect("address")).expect("bind the source address");
                socket.connect(([127, 0, 0, 1], port).into()).await.expect("connect")
            }
        };
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(from("127.0.0.2").await);
        }
        // The steady producer's connections are open too: at least the flood's twenty.
        let deadline = std::time::Instant::now() + arena::SOON;
        while arena.metric("kaas_proxy_listener_connections_open") < 20.0 {
            assert!(std::time::Instant::now() < deadline, "the flood's connections are not counted as open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for attempt in 0..10 {
            let mut extra = from("127.0.0.2").await;
            assert!(raw::closed_within(&mut extra, Duration::from_secs(2)).await, "attempt {attempt} kept open");
        }
        arena.expect_metric(&listener_refusals("ip_connection_limit"), 10.0);
        arena.expect_log("max_connections_per_ip");
        for held in &mut held {
            assert!(!raw::closed_within(held, Duration::from_millis(10)).await, "an admitted connection closed");
        }
        let mut conn = arena.connect().await;
        raw::call(&mut conn, 1, 12, &kafka_protocol::messages::MetadataRequest::default())
            .await
            .expect("another address is served during the flood");
        drop(held);
        // The proxy sees the flood's connections close as their ClientHello reads end: admitted again soon.
        let deadline = std::time::Instant::now() + arena::SOON;
        let again = loop {
            let mut again = from("127.0.0.2").await;
            if !raw::closed_within(&mut again, Duration::from_millis(500)).await {
                break again;
            }
            assert!(std::time::Instant::now() < deadline, "the address is not admitted after its flood ended");
        };
        drop((conn, again));
        arena.finish(16).await;
    }
);

// --- A tenant's broker misbehaving -------------------------------------------------------------------------------

case!(
    /// A response to a correlation id never sent.
    unsolicited_correlation_id,
    async {
        let arena = Arena::start(Target::Scripted(Script::Unsolicited)).await;
        refused(&arena, &request(12, 0, 1, &[0; 8]), "the oldest outstanding request has 1", "upstream_unmatched")
            .await;
        arena.finish(16).await;
    }
);

case!(
    /// A broker answering with an HTTP page: its "length" is 1.2 GB, refused on the prefix alone.
    garbage_from_the_broker,
    async {
        let arena = Arena::start(Target::Scripted(Script::Garbage)).await;
        let log = "frame of 1213486160 bytes is larger than max_frame_bytes";
        refused(&arena, &request(12, 0, 1, &[0; 8]), log, "upstream_frame_size").await;
        arena.finish(16).await;
    }
);

case!(
    /// A broker that closes in the middle of a response.
    truncated_response,
    async {
        let arena = Arena::start(Target::Scripted(Script::Truncated)).await;
        let mut conn = arena.connect().await;
        conn.write_all(&request(12, 0, 1, &[0; 8])).await.expect("write");
        assert!(raw::closed_within(conn.get_mut(), Duration::from_secs(5)).await, "not closed");
        arena.expect_log("upstream closed mid-frame");
        arena.expect_metric(SESSION_ERRORS, 1.0);
        arena.finish(16).await;
    }
);

case!(
    /// A broker that never answers: the session waits (a request outstanding is not idle, as a long poll is
    /// not), and when the client gives up and closes, the proxy lets go of the broker connection too.
    stalled_broker,
    async {
        let arena = Arena::start(Target::Scripted(Script::Stall)).await;
        let broker = arena.broker.as_ref().expect("scripted");
        let mut conn = arena.connect().await;
        conn.write_all(&request(12, 0, 1, &[0; 8])).await.expect("write");
        // Past the 2 s idle timeout: still open, since a request is outstanding.
        assert!(!raw::closed_within(conn.get_mut(), Duration::from_secs(3)).await, "closed while awaiting");
        assert_eq!(broker.open(), 1);
        drop(conn);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while broker.open() > 0 {
            assert!(std::time::Instant::now() < deadline, "the broker connection was kept after the client left");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        arena.expect_metric("kaas_proxy_session_active{tenant=\"target\"}", 0.0);
        arena.finish(16).await;
    }
);

case!(
    /// A client pipelines twenty requests, each answered with 8 MiB, and reads none: the proxy holds about one
    /// response and the socket buffers, not 160 MiB, and once the client reads, every answer arrives intact.
    client_that_never_reads_large_responses,
    async {
        let settings = "max_frame_bytes: 16777216\nidle_timeout_seconds: 60\n";
        let arena = Arena::start_with(Target::Scripted(Script::Large(8 << 20)), settings).await;
        let before = arena::resident_kib();
        let mut conn = arena.connect().await;
        for id in 1..=20 {
            conn.write_all(&request(12, 0, id, &[0; 8])).await.expect("write");
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let grown_mib = arena::resident_kib().saturating_sub(before) / 1024;
        assert!(grown_mib < 48, "the proxy grew {grown_mib} MiB for a client that reads nothing");
        for id in 1..=20i32 {
            let frame = raw::read_frame(&mut conn).await.expect("read").expect("an answer");
            assert_eq!((frame.len(), &frame[4..8]), (4 + (8 << 20), &id.to_be_bytes()[..]), "answer {id}");
        }
        assert_eq!(arena.metric(&refusals("upstream_frame_size")), 0.0);
        eprintln!("memory grew {grown_mib} MiB while 160 MiB of answers waited");
        arena.finish(64).await;
    }
);

case!(
    /// Two hundred strangers speaking plaintext Kafka in a burst: every refusal is counted, the log gets a
    /// few lines a second for the reason (the next one says how many were left out), never one per stranger.
    refusal_floods_are_counted_in_full_and_logged_sampled,
    async {
        let arena = Arena::start(Target::Tansu).await;
        let needle = "plaintext Kafka on the TLS port";
        let before = kaas_e2e::proxy::logs().matches(needle).count();
        let started = std::time::Instant::now();
        for _ in 0..200 {
            let answer = hello::send(arena.proxy.port, &request(18, 3, 1, &[0, 0, 0])).await.expect("send");
            assert_eq!(answer, Answer::Closed);
        }
        arena.expect_metric(&listener_refusals("plaintext"), 200.0);
        let seconds = started.elapsed().as_secs() + 1;
        let lines = kaas_e2e::proxy::logs().matches(needle).count() - before;
        assert!(
            (1..=5 * seconds as usize).contains(&lines),
            "{lines} log lines for 200 refusals in {seconds} s (at most 5 a second)"
        );
        arena.finish(16).await;
    }
);
