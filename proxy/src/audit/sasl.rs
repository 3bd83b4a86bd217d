//! SASL to the broker, as the audit trail sees it pass ([`Exchange`]): the mechanism a client asks for
//! (SaslHandshake), the user it names (PLAIN's authentication identity, SCRAM's `n=` attribute; read from its
//! first SaslAuthenticate, never the password or the proof), and the broker's verdict (SaslAuthenticate's error
//! code). Pure; the bounded [`Reader`] reads client and broker bytes.

use kafka_protocol::messages::ApiKey;

use super::admin::{text_or_null, Outcome};
use crate::kafka::wire::{Reader, WireResult};

/// One connection's SASL exchange so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The mechanism of the last SaslHandshake (`SCRAM-SHA-512`, `PLAIN`).
    pub mechanism: Option<String>,
    /// The user the client named.
    pub user: Option<String>,
    /// SaslAuthenticate requests since the handshake.
    rounds: u32,
    /// The broker has answered every round without an error so far: success, once a request other than SASL's
    /// passes (Kafka serves nothing else before authentication ends; a mechanism's last round cannot be told
    /// from the bytes alone: OAUTHBEARER answers a bad token with an error-free challenge).
    answered_ok: bool,
}

impl Exchange {
    /// A SaslHandshake request's body: a new exchange (re-authentication starts one too, KIP-368).
    pub fn handshake(&mut self, body: &[u8], version: i16) {
        let mut r = Reader::new(body, ApiKey::SaslHandshake.request_header_version(version) >= 2);
        *self =
            Exchange { mechanism: text_or_null(&mut r, "mechanism").ok().flatten(), ..Exchange::default() };
    }

    /// A SaslAuthenticate request's body: the user, from the first.
    pub fn authenticate(&mut self, body: &[u8], version: i16) {
        self.rounds += 1;
        if self.rounds > 1 {
            return;
        }
        let mut r = Reader::new(body, ApiKey::SaslAuthenticate.request_header_version(version) >= 2);
        let Ok(Some(at)) = r.nullable_bytes("auth_bytes") else { return };
        self.user = user(self.mechanism.as_deref().unwrap_or(""), &body[at]);
    }

    /// A SaslAuthenticate response's body: the verdict when the broker refused (the exchange is over); `None`
    /// while it goes on, or when it may have succeeded ([`Exchange::succeeded`] tells).
    pub fn answered(&mut self, body: &[u8], version: i16) -> Option<Outcome> {
        let mut r = Reader::new(body, ApiKey::SaslAuthenticate.response_header_version(version) >= 1);
        let verdict = |r: &mut Reader<'_>| -> WireResult<Outcome> {
            let code = r.i16("error_code")?;
            Ok(Outcome::new(code, text_or_null(r, "error_message")?.as_deref()))
        };
        let outcome = verdict(&mut r).ok()?;
        self.answered_ok = outcome.error_code == 0 && self.rounds > 0;
        (outcome.error_code != 0).then(|| {
            self.rounds = 0;
            outcome
        })
    }

    /// A request other than SASL's and ApiVersions passes: if the broker had answered the exchange without an
    /// error, it succeeded (true, once).
    pub fn succeeded(&mut self) -> bool {
        std::mem::take(&mut self.answered_ok)
    }
}

/// The user a mechanism's first message names: PLAIN's `authzid NUL authcid NUL password` gives the authcid;
/// SCRAM's client-first-message `n,,n=user,r=nonce` the `n=` value (with `=2C` and `=3D` decoded).
fn user(mechanism: &str, first: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(first).ok()?;
    let name = match mechanism {
        // Exactly `authzid NUL authcid NUL password`, as Kafka's PLAIN server requires: anything else names no one
        // (two parts would make the password the second).
        "PLAIN" => match text.splitn(3, '\0').collect::<Vec<_>>()[..] {
            [_, authcid, _] => authcid.to_owned(),
            _ => return None,
        },
        m if m.starts_with("SCRAM-") => {
            let bare = text.splitn(3, ',').nth(2)?;
            let n = bare.split(',').find_map(|a| a.strip_prefix("n="))?;
            n.replace("=2C", ",").replace("=3D", "=")
        }
        _ => return None,
    };
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode<M: Encodable>(m: &M, v: i16) -> Vec<u8> {
        let mut b = BytesMut::new();
        m.encode(&mut b, v).expect("encodes");
        b.to_vec()
    }

    fn exchange(mechanism: &'static str, first: &'static [u8], auth_version: i16) -> Exchange {
        let mut e = Exchange::default();
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        e.handshake(&encode(&handshake, 1), 1);
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(first));
        e.authenticate(&encode(&request, auth_version), auth_version);
        e
    }

    fn answer(code: i16, v: i16) -> Vec<u8> {
        let message = (code != 0).then(|| StrBytes::from_static_str("Authentication failed"));
        encode(&SaslAuthenticateResponse::default().with_error_code(code).with_error_message(message), v)
    }

    #[test]
    fn the_user_and_the_verdict_never_the_password() {
        for v in 0..=2 {
            let mut plain = exchange("PLAIN", b"\0alice\0alice-secret", v);
            assert_eq!((plain.mechanism.as_deref(), plain.user.as_deref()), (Some("PLAIN"), Some("alice")));
            assert_eq!(plain.answered(&answer(0, v), v), None, "v{v}: no verdict until a request passes");
            assert!(plain.succeeded() && !plain.succeeded(), "v{v}: success, once");
            let mut refused = exchange("PLAIN", b"\0alice\0wrong", v);
            let failed = refused.answered(&answer(58, v), v).expect("a failure ends it");
            assert_eq!(failed.error, "SASL_AUTHENTICATION_FAILED");
            assert!(!refused.succeeded());
            assert!(!format!("{plain:?}{refused:?}{failed:?}").contains("secret"), "no password is kept");

            let mut scram = exchange("SCRAM-SHA-512", b"n,,n=ali=2Cce,r=fyko+d2lbbFgONRv9qkxdawL", v);
            assert_eq!(scram.user.as_deref(), Some("ali,ce"));
            // A client pipelining its final message: the first answer is error-free, the second refuses.
            let proof =
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"c=biws,r=x,p=BAD"));
            scram.authenticate(&encode(&proof, v), v);
            assert_eq!(scram.user.as_deref(), Some("ali,ce"), "the second message is not read");
            assert_eq!(scram.answered(&answer(0, v), v), None);
            assert_eq!(scram.answered(&answer(58, v), v).map(|o| o.error_code), Some(58), "v{v}");
            assert!(!scram.succeeded(), "v{v}: refused, not a success");
        }
    }

    #[test]
    fn an_error_free_challenge_is_no_success_until_a_request_passes() {
        // OAUTHBEARER answers a bad token with an error-free challenge, then refuses the client's \x01.
        let mut bearer = exchange("OAUTHBEARER", b"n,,\x01auth=Bearer bad\x01\x01", 1);
        assert_eq!(bearer.answered(&answer(0, 1), 1), None);
        let ack = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\x01"));
        bearer.authenticate(&encode(&ack, 1), 1);
        assert_eq!(bearer.answered(&answer(58, 1), 1).map(|o| o.error_code), Some(58));
        assert!(!bearer.succeeded());
        // Two parts: the second would be the password, so no one is named.
        assert_eq!(exchange("PLAIN", b"alice\0hunter2", 1).user, None);
    }

    #[test]
    fn unreadable_messages_name_no_one() {
        assert_eq!(exchange("OAUTHBEARER", b"n,a=alice,\x01auth=Bearer x\x01\x01", 1).user, None);
        assert_eq!(exchange("PLAIN", b"no separators", 1).user, None);
        assert_eq!(exchange("SCRAM-SHA-256", b"\xff\xfe", 1).user, None);
        let mut e = Exchange::default();
        e.handshake(&[0x7f, 0xff], 1);
        e.authenticate(&[0, 0, 0, 9, 1], 1);
        assert_eq!((e.mechanism, e.user), (None, None));
        assert_eq!(Exchange::default().answered(&[1], 1), None);
        assert!(!Exchange::default().succeeded());
    }
}
