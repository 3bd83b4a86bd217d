//! Real clients' first TLS flights, kept as seeds of the `client_hello_sni` fuzz target
//! (`proxy/fuzz/captured/client_hello_sni/`): librdkafka (what confluent-kafka and every librdkafka binding
//! send) and Python's `ssl` (what kafka-python sends), each to a tenant's bootstrap name and to a `b<id>` name.
//! The test reads every committed one the way the listener does (rustls' `Acceptor`, then the SNI → tenant
//! parse) and checks it routes where it was sent. `KAAS_CAPTURE_SEEDS=proxy/fuzz/captured` captures them
//! again first, from a listener that keeps a connection's first TLS record and hangs up.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kaas_e2e::DOMAIN;
use kaas_proxy::tenants::sni::{parse, Target};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use rustls::server::Acceptor;

const TENANT: &str = "hellos";
/// What each capture was sent to, by the file name's last part.
const NAMES: [(&str, Target); 2] = [("bootstrap", Target::Bootstrap), ("b12", Target::Broker(12))];

fn seeds() -> PathBuf {
    kaas_e2e::repo_root().join("proxy/fuzz/captured/client_hello_sni")
}

#[test]
fn real_client_hellos_route_to_the_name_they_were_sent_to() -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("KAAS_CAPTURE_SEEDS") {
        capture(&Path::new(&dir).join("client_hello_sni"))?;
    }
    let mut read = Vec::new();
    for entry in std::fs::read_dir(seeds())? {
        let path = entry?.path();
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let (_, want) = NAMES
            .iter()
            .find(|(label, _)| file.ends_with(label))
            .ok_or_else(|| anyhow::anyhow!("{file}: not named after a target"))?;
        let name = server_name(&std::fs::read(&path)?).ok_or_else(|| anyhow::anyhow!("{file}: no SNI"))?;
        assert_eq!(parse(&name, DOMAIN), Ok((TENANT, *want)), "{file}: {name}");
        read.push(file);
    }
    read.sort();
    let clients: Vec<&str> = read.iter().filter_map(|f| f.split('-').next()).collect();
    assert!(clients.contains(&"librdkafka") && clients.contains(&"python"), "{read:?}");
    Ok(())
}

/// The server name of the ClientHello at the start of `bytes`, as the proxy's listener would read it.
fn server_name(mut bytes: &[u8]) -> Option<String> {
    let mut acceptor = Acceptor::default();
    loop {
        if acceptor.read_tls(&mut bytes).ok()? == 0 {
            return None;
        }
        if let Some(accepted) = acceptor.accept().ok()? {
            return accepted.client_hello().server_name().map(str::to_owned);
        }
    }
}

fn capture(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (label, target) in NAMES {
        let host = match target {
            Target::Bootstrap => format!("{TENANT}.{DOMAIN}"),
            Target::Broker(id) => format!("b{id}.{TENANT}.{DOMAIN}"),
        };
        let catcher = TcpListener::bind("127.0.0.1:0")?;
        let port = catcher.local_addr()?.port();
        // librdkafka: a producer's first connection to its bootstrap server.
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", format!("{host}:{port}"))
            .set("security.protocol", "SSL")
            .create()?;
        std::fs::write(dir.join(format!("librdkafka-{label}")), first_record(&catcher)?)?;
        drop(producer.flush(Duration::from_millis(10)));
        drop(producer);
        // Python's ssl module, as kafka-python wraps its sockets (default context, server_hostname set).
        let script = format!(
            "import socket, ssl\n\
             s = socket.create_connection(('127.0.0.1', {port}))\n\
             try:\n    ssl.create_default_context().wrap_socket(s, server_hostname='{host}')\n\
             except Exception:\n    pass\n"
        );
        let mut python = std::process::Command::new("python3").args(["-c", &script]).spawn()?;
        std::fs::write(dir.join(format!("python-{label}")), first_record(&catcher)?)?;
        python.wait()?;
    }
    Ok(())
}

/// The first TLS record of the next connection: its 5-byte header says how long the rest is.
fn first_record(listener: &TcpListener) -> anyhow::Result<Vec<u8>> {
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut header = [0u8; 5];
    stream.read_exact(&mut header)?;
    anyhow::ensure!(header[0] == 0x16, "not a TLS handshake record: {header:?}");
    let mut record = header.to_vec();
    record.resize(5 + usize::from(u16::from_be_bytes([header[3], header[4]])), 0);
    stream.read_exact(&mut record[5..])?;
    Ok(record)
}
