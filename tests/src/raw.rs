//! A byte-level Kafka client over TLS: sends exactly what a test says (valid requests of any version, or
//! hostile bytes) and returns the raw response frames, so tests can inspect every byte a client receives.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kaas_proxy::kafka::codec::{Frame, FrameStream, ReadError};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Request};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::AlertDescription;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A TLS connection to the proxy, read frame by frame (bounded) and written directly.
pub type Tls = FrameStream<TlsStream<TcpStream>>;

/// Largest frame a test accepts from the proxy.
const MAX_FRAME: u32 = 256 << 20;

/// Connects to the proxy on loopback with `sni` (`None`: no SNI at all), trusting `ca`.
pub async fn connect(port: u16, sni: Option<&str>, ca: &Path) -> io::Result<Tls> {
    connect_as(port, sni, ca, None).await
}

/// Like [`connect`], presenting a client certificate (cert PEM, key PEM) when given.
pub async fn connect_as(
    port: u16,
    sni: Option<&str>,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> io::Result<Tls> {
    // An IP address as server name makes rustls send no SNI extension.
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_owned()).map_err(io::Error::other)?,
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    handshake(tcp, name, client_config(ca, client)?).await
}

/// Like [`connect`], from loopback address `from` (any of 127.0.0.0/8) to `port`: a client of its own address.
pub async fn connect_from(from: std::net::Ipv4Addr, port: u16, sni: &str, ca: &Path) -> io::Result<Tls> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    let tcp = socket.connect((std::net::Ipv4Addr::LOCALHOST, port).into()).await?;
    let name = ServerName::try_from(sni.to_owned()).map_err(io::Error::other)?;
    handshake(tcp, name, client_config(ca, None)?).await
}

/// A client configuration trusting `ca`, with the client certificate (cert PEM, key PEM) when given.
fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> io::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(io::Error::other)? {
        roots.add(cert.map_err(io::Error::other)?).map_err(io::Error::other)?;
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots);
    Ok(match client {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(io::Error::other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io::Error::other)?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(io::Error::other)?;
            builder.with_client_auth_cert(chain, key).map_err(io::Error::other)?
        }
        None => builder.with_no_client_auth(),
    })
}

async fn handshake(
    tcp: TcpStream,
    name: ServerName<'static>,
    config: rustls::ClientConfig,
) -> io::Result<Tls> {
    let tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    Ok(FrameStream::new(tls, MAX_FRAME))
}

/// The TLS alert the server sent, if that is why `err` happened.
pub fn alert_of(err: &io::Error) -> Option<AlertDescription> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(a) => Some(*a),
        _ => None,
    }
}

/// Encodes a request frame (length prefix included).
pub fn frame<R: Request>(correlation_id: i32, version: i16, request: &R) -> anyhow::Result<Bytes> {
    Ok(kaas_proxy::kafka::codec::encode_request(correlation_id, version, "raw-e2e", request)?)
}

/// Reads one whole frame (length prefix included). `Ok(None)` when the peer closed first.
pub async fn read_frame(s: &mut Tls) -> io::Result<Option<Bytes>> {
    match s.read_frame().await {
        Ok(frame) => Ok(frame.map(Frame::into_bytes)),
        Err(ReadError::Io(e)) => Err(e),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

/// Sends one request and returns the raw response frame and its decoded body.
pub async fn call<R: Request>(
    s: &mut Tls,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> anyhow::Result<(Bytes, R::Response)> {
    s.write_all(&frame(correlation_id, version, req)?).await?;
    let raw = read_frame(s).await?.ok_or_else(|| anyhow::anyhow!("connection closed before the response"))?;
    let api = ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("unknown api"))?;
    let header_len =
        kaas_proxy::kafka::header::response_header_len(&raw[4..], api.response_header_version(version))?;
    let mut body = raw.slice(4 + header_len..);
    let decoded = R::Response::decode(&mut body, version)?;
    Ok((raw, decoded))
}

/// True once the peer has closed the connection (a read ends or fails) within `within`; bytes that still
/// arrive are read and dropped.
pub async fn closed_within(s: &mut (impl tokio::io::AsyncRead + Unpin), within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}
