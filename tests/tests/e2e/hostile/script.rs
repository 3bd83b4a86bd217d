//! A broker that misbehaves on purpose: it reads request frames and answers each as its [`Script`] says, and
//! counts the connections it has open (so a test sees whether the proxy let go of them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the broker answers to every request.
#[derive(Debug, Clone, Copy)]
pub enum Script {
    /// A well-formed response whose correlation id was never sent (the request's plus 1000).
    Unsolicited,
    /// Bytes that are not Kafka at all (an HTTP error page).
    Garbage,
    /// A response cut short: a length prefix of 100 bytes, 10 of them, then the connection closes.
    Truncated,
    /// Nothing, ever: the connection stays open and silent.
    Stall,
    /// A response of this many bytes (correlation id, then zeros), as a Fetch answer full of records would be.
    Large(usize),
}

/// A running scripted broker; stops with the test's runtime.
#[derive(Debug)]
pub struct ScriptedBroker {
    addr: String,
    open: Arc<AtomicUsize>,
}

impl ScriptedBroker {
    pub async fn start(script: Script) -> ScriptedBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let open = Arc::new(AtomicUsize::new(0));
        let o = open.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                o.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    serve(conn, script).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        ScriptedBroker { addr, open }
    }

    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Reads request frames until the proxy closes, answering each as `script` says.
async fn serve(mut conn: TcpStream, script: Script) {
    loop {
        let mut len = [0u8; 4];
        if conn.read_exact(&mut len).await.is_err() {
            return;
        }
        // The proxy only forwards frames within its limit; cap what this test broker reads anyway.
        let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).min(1 << 20)];
        if conn.read_exact(&mut body).await.is_err() || body.len() < 8 {
            return;
        }
        let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        let answer = match script {
            Script::Unsolicited => frame(&(correlation_id + 1000).to_be_bytes(), 2),
            Script::Garbage => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec(),
            Script::Truncated => {
                let mut b = 100u32.to_be_bytes().to_vec();
                b.extend_from_slice(&correlation_id.to_be_bytes());
                b.extend_from_slice(&[0; 6]);
                let _ = conn.write_all(&b).await;
                return;
            }
            Script::Stall => continue,
            Script::Large(size) => frame(&correlation_id.to_be_bytes(), size.saturating_sub(4)),
        };
        if conn.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// A response frame: `head` (the correlation id), then `zeros` zero bytes.
fn frame(head: &[u8], zeros: usize) -> Vec<u8> {
    let len = u32::try_from(head.len() + zeros).expect("a test frame fits in u32");
    let mut b = Vec::with_capacity(4 + head.len() + zeros);
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(head);
    b.resize(4 + head.len() + zeros, 0);
    b
}
