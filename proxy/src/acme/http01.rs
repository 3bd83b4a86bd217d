//! HTTP-01 (RFC 8555 §8.3): the plain HTTP listener `acme.http01_listen` (port 80 as the CA sees it) answers
//! `GET /.well-known/acme-challenge/<token>` with the key authorization of a pending challenge, and nothing
//! else: every other path is 404, with the admin endpoint's bounds on connections and time
//! (`crate::admin::serve_requests`). Neighbours: [`super::order`] (or [`super::Manager`], mirroring
//! another replica's) puts the tokens in [`super::AcmeCerts`] while an order waits; [`crate::listener`] binds the port and starts [`serve`].

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use tokio::net::TcpListener;

use super::AcmeCerts;
use crate::admin::text;

/// Where the CA asks for a token.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer to `method path`.
pub fn respond(certs: &AcmeCerts, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let key_authorization = path.strip_prefix(PREFIX).and_then(|token| certs.http_token(token));
    match key_authorization {
        Some(_) if method != Method::GET => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        Some(key_authorization) => text(StatusCode::OK, key_authorization),
        None => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Answers HTTP-01 validations on `listener` for as long as the task runs.
pub async fn serve(listener: TcpListener, certs: Arc<AcmeCerts>) {
    crate::admin::serve_requests(listener, move |method, path| respond(&certs, method, path)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn only_pending_tokens_are_answered() {
        let certs = AcmeCerts::default();
        certs.set_http_token("tok-1", "tok-1.thumb".into());
        let cases = [
            (Method::GET, "/.well-known/acme-challenge/tok-1", StatusCode::OK, "tok-1.thumb"),
            (Method::GET, "/.well-known/acme-challenge/tok-2", StatusCode::NOT_FOUND, "not found\n"),
            (Method::GET, "/.well-known/acme-challenge/", StatusCode::NOT_FOUND, "not found\n"),
            (Method::GET, "/tok-1", StatusCode::NOT_FOUND, "not found\n"),
            (Method::GET, "/metrics", StatusCode::NOT_FOUND, "not found\n"),
            (
                Method::POST,
                "/.well-known/acme-challenge/tok-1",
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n",
            ),
        ];
        for (method, path, status, body) in cases {
            let response = respond(&certs, &method, path);
            assert_eq!(response.status(), status, "{method} {path}");
            let got = response.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(got, body.as_bytes(), "{method} {path}");
        }
        certs.clear_http_tokens(&["tok-1".to_string()]);
        assert_eq!(
            respond(&certs, &Method::GET, "/.well-known/acme-challenge/tok-1").status(),
            StatusCode::NOT_FOUND
        );
    }
}
