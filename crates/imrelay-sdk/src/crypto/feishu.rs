//! Feishu / Lark event callbacks (platforms.md §2d).
//!
//! - key = SHA-256(encrypt_key); body `{"encrypt": base64(iv ‖ AES-256-CBC(PKCS#7 block 16))}`
//!   with a random IV;
//! - `X-Lark-Signature` = hex(sha256(timestamp + nonce + encrypt_key + raw body))
//!   for events, hex(sha1(timestamp + nonce + verification_token + raw body)) for
//!   legacy card actions;
//! - envelopes: `url_verification`, schema 1.0 (`uuid`, top-level `token`),
//!   schema 2.0 (`header.event_id`, `header.token`).

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{truncate, CryptoError, B64_LENIENT};
use crate::sign;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// Header names Feishu signs with.
pub const HEADER_TIMESTAMP: &str = "X-Lark-Request-Timestamp";
pub const HEADER_NONCE: &str = "X-Lark-Request-Nonce";
pub const HEADER_SIGNATURE: &str = "X-Lark-Signature";

/// The cipher for one app's Encrypt Key. `Debug` never prints the key.
#[derive(Clone)]
pub struct FeishuCipher {
    key: [u8; 32],
}

impl fmt::Debug for FeishuCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FeishuCipher(***)")
    }
}

impl FeishuCipher {
    /// From the app's Encrypt Key (console → Events and callbacks → Encryption strategy).
    ///
    /// ```
    /// use imrelay_sdk::crypto::feishu::FeishuCipher;
    /// let c = FeishuCipher::new("test key").unwrap();
    /// assert_eq!(c.decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap(), "hello world");
    /// let ct = c.encrypt("你好");
    /// assert_eq!(c.decrypt(&ct).unwrap(), "你好");
    /// ```
    pub fn new(encrypt_key: &str) -> Result<Self, CryptoError> {
        if encrypt_key.is_empty() {
            return Err(CryptoError::IllegalAesKey(
                "encrypt_key is empty: set the Encrypt Key from the Feishu console, or leave encryption off".into(),
            ));
        }
        Ok(FeishuCipher {
            key: Sha256::digest(encrypt_key.as_bytes()).into(),
        })
    }

    /// Encrypt with a random IV.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut iv = [0u8; 16];
        rand::rng().fill_bytes(&mut iv);
        self.encrypt_with_iv(plaintext, &iv)
    }

    /// Encrypt with an explicit IV (tests).
    pub fn encrypt_with_iv(&self, plaintext: &str, iv: &[u8; 16]) -> String {
        let ct = Aes256CbcEnc::new(&self.key.into(), &(*iv).into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
        let mut raw = Vec::with_capacity(16 + ct.len());
        raw.extend_from_slice(iv);
        raw.extend_from_slice(&ct);
        B64.encode(raw)
    }

    /// Decrypt the `encrypt` field.
    pub fn decrypt(&self, encrypt_b64: &str) -> Result<String, CryptoError> {
        const FIELD: &str = "encrypt";
        let raw = B64_LENIENT
            .decode(encrypt_b64.trim().as_bytes())
            .map_err(|e| CryptoError::DecodeBase64 {
                field: FIELD,
                detail: e.to_string(),
            })?;
        let Some((iv, ct)) = raw.split_first_chunk::<16>() else {
            return Err(CryptoError::DecryptAes {
                field: FIELD,
                detail: format!("{} bytes is shorter than the 16-byte IV", raw.len()),
            });
        };
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(CryptoError::DecryptAes {
                field: FIELD,
                detail: format!(
                    "{} bytes after the IV is not a whole number of 16-byte AES blocks",
                    ct.len()
                ),
            });
        }
        // RustCrypto's Pkcs7 unpad checks the pad value range and every pad byte.
        let plain = Aes256CbcDec::new(&self.key.into(), &(*iv).into())
            .decrypt_padded_vec_mut::<Pkcs7>(ct)
            .map_err(|_| CryptoError::Padding { field: FIELD })?;
        String::from_utf8(plain).map_err(|_| CryptoError::Utf8 { field: FIELD })
    }
}

/// Check an event's `X-Lark-Signature` in constant time (only sent when an
/// Encrypt Key is set). `body` is the raw request body as received.
///
/// ```
/// use imrelay_sdk::crypto::feishu::verify_event_signature;
/// let sig = "5e1d3ec760c9b1047e0c2ace8f278e16862ec42000daa56bb6c6c4b83d6b51ac";
/// assert!(verify_event_signature("1", "n", "test key", b"{}", sig).is_ok());
/// assert!(verify_event_signature("2", "n", "test key", b"{}", sig).is_err());
/// ```
pub fn verify_event_signature(
    timestamp: &str,
    nonce: &str,
    encrypt_key: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), CryptoError> {
    let expected = sign::feishu_event(timestamp, nonce, encrypt_key, body);
    check_hex(&expected, signature)
}

/// Check a legacy card-action callback's `X-Lark-Signature` (SHA-1 with the
/// verification token) in constant time.
pub fn verify_card_signature(
    timestamp: &str,
    nonce: &str,
    verification_token: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), CryptoError> {
    let expected = sign::feishu_card(timestamp, nonce, verification_token, body);
    check_hex(&expected, signature)
}

fn check_hex(expected: &str, got: &str) -> Result<(), CryptoError> {
    if sign::constant_time_eq(
        got.trim().to_ascii_lowercase().as_bytes(),
        expected.as_bytes(),
    ) {
        Ok(())
    } else {
        Err(CryptoError::ValidateSignature {
            field: HEADER_SIGNATURE,
        })
    }
}

/// The plaintext of a callback body: decrypts `{"encrypt": "..."}` with
/// `cipher`, or returns a plaintext body as it is.
pub fn body_plaintext(cipher: Option<&FeishuCipher>, body: &[u8]) -> Result<String, CryptoError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| CryptoError::ParseBody(format!("a Feishu callback body is JSON: {e}")))?;
    match v.get("encrypt") {
        Some(Value::String(enc)) => {
            let cipher = cipher.ok_or_else(|| {
                CryptoError::IllegalAesKey(
                    "the callback is encrypted but no encrypt_key is configured: set the app's Encrypt Key".into(),
                )
            })?;
            cipher.decrypt(enc)
        }
        Some(_) => Err(CryptoError::ParseBody(
            "`encrypt` must be a base64 string".into(),
        )),
        None => String::from_utf8(body.to_vec())
            .map_err(|_| CryptoError::ParseBody("the body is not UTF-8".into())),
    }
}

/// Which envelope a callback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// `{"type":"url_verification","challenge","token"}`: answer `{"challenge"}`.
    UrlVerification,
    /// `{"uuid","token","ts","type":"event_callback","event":{"type",...}}`.
    V1,
    /// `{"schema":"2.0","header":{"event_id","event_type","token",...},"event":{...}}`.
    V2,
}

/// A parsed (decrypted) callback envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub kind: EnvelopeKind,
    /// The verification token (top-level for url_verification and 1.0,
    /// `header.token` for 2.0). Check it with [`Envelope::verify_token`].
    pub token: String,
    /// The dedup id: 2.0 `header.event_id`, 1.0 `uuid`.
    pub event_id: Option<String>,
    /// 2.0 `header.event_type`, 1.0 `event.type` (e.g. `im.message.receive_v1`).
    pub event_type: Option<String>,
    /// url_verification only.
    pub challenge: Option<String>,
    /// 2.0 `header.app_id`.
    pub app_id: Option<String>,
    /// The `event` object (Null for url_verification).
    pub event: Value,
}

impl Envelope {
    /// Constant-time check of the verification token.
    pub fn verify_token(&self, verification_token: &str) -> Result<(), CryptoError> {
        if sign::constant_time_eq(self.token.as_bytes(), verification_token.as_bytes()) {
            Ok(())
        } else {
            Err(CryptoError::ValidateSignature { field: "token" })
        }
    }

    /// The answer to a url_verification: `{"challenge": "..."}`.
    pub fn challenge_response(&self) -> Option<Value> {
        self.challenge
            .as_ref()
            .map(|c| serde_json::json!({ "challenge": c }))
    }
}

/// Parse a decrypted callback.
///
/// ```
/// use imrelay_sdk::crypto::feishu::{parse_envelope, EnvelopeKind};
/// let e = parse_envelope(r#"{"schema":"2.0","header":{"event_id":"e1","event_type":"im.message.receive_v1","token":"t","app_id":"cli_x"},"event":{}}"#).unwrap();
/// assert_eq!(e.kind, EnvelopeKind::V2);
/// assert_eq!(e.event_id.as_deref(), Some("e1"));
/// assert!(e.verify_token("t").is_ok());
/// ```
pub fn parse_envelope(plaintext: &str) -> Result<Envelope, CryptoError> {
    let v: Value = serde_json::from_str(plaintext)
        .map_err(|e| CryptoError::ParseBody(format!("the decrypted callback is not JSON: {e}")))?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if v.get("schema").and_then(Value::as_str) == Some("2.0") {
        let header = v.get("header").ok_or(CryptoError::Missing("header"))?;
        return Ok(Envelope {
            kind: EnvelopeKind::V2,
            token: s(header, "token").ok_or(CryptoError::Missing("header.token"))?,
            event_id: Some(s(header, "event_id").ok_or(CryptoError::Missing("header.event_id"))?),
            event_type: s(header, "event_type"),
            challenge: None,
            app_id: s(header, "app_id"),
            event: v.get("event").cloned().unwrap_or(Value::Null),
        });
    }
    match v.get("type").and_then(Value::as_str) {
        Some("url_verification") => Ok(Envelope {
            kind: EnvelopeKind::UrlVerification,
            token: s(&v, "token").ok_or(CryptoError::Missing("token"))?,
            event_id: None,
            event_type: None,
            challenge: Some(s(&v, "challenge").ok_or(CryptoError::Missing("challenge"))?),
            app_id: None,
            event: Value::Null,
        }),
        Some("event_callback") => {
            let event = v.get("event").cloned().unwrap_or(Value::Null);
            Ok(Envelope {
                kind: EnvelopeKind::V1,
                token: s(&v, "token").ok_or(CryptoError::Missing("token"))?,
                event_id: Some(s(&v, "uuid").ok_or(CryptoError::Missing("uuid"))?),
                event_type: s(&event, "type"),
                challenge: None,
                app_id: s(&event, "app_id"),
                event,
            })
        }
        Some(other) => Err(CryptoError::ParseBody(format!(
            "unknown callback type `{}` (expected url_verification, event_callback or schema 2.0)",
            truncate(other, 40)
        ))),
        None => Err(CryptoError::ParseBody(
            "not a Feishu event envelope: no `schema` 2.0 and no `type`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // platforms.md §6.4.
    #[test]
    fn hello_world_vector() {
        let c = FeishuCipher::new("test key").unwrap();
        assert_eq!(
            c.decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
                .unwrap(),
            "hello world"
        );
        // The IV is the first 16 bytes, so re-encrypting with it reproduces the vector.
        let raw = B64
            .decode("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")
            .unwrap();
        let iv: [u8; 16] = raw[..16].try_into().unwrap();
        assert_eq!(
            c.encrypt_with_iv("hello world", &iv),
            "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="
        );
        assert!(matches!(
            FeishuCipher::new("other key")
                .unwrap()
                .decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="),
            Err(CryptoError::Padding { .. } | CryptoError::Utf8 { .. })
        ));
        assert_eq!(format!("{c:?}"), "FeishuCipher(***)");
        assert!(FeishuCipher::new("").is_err());
    }

    // platforms.md §6.5 (self-computed) event signature; card signature by definition.
    #[test]
    fn signatures() {
        let sig = "5e1d3ec760c9b1047e0c2ace8f278e16862ec42000daa56bb6c6c4b83d6b51ac";
        verify_event_signature("1", "n", "test key", b"{}", sig).unwrap();
        verify_event_signature("1", "n", "test key", b"{}", &sig.to_uppercase()).unwrap();
        assert_eq!(
            verify_event_signature("1", "n", "test key", b"{} ", sig),
            Err(CryptoError::ValidateSignature {
                field: HEADER_SIGNATURE
            })
        );
        let card = sign::feishu_card("1", "n", "vtoken", b"{}");
        verify_card_signature("1", "n", "vtoken", b"{}", &card).unwrap();
        assert!(verify_card_signature("1", "n", "vtoken2", b"{}", &card).is_err());
        assert!(verify_card_signature("1", "n", "vtoken", b"{}", "").is_err());
    }

    #[test]
    fn malformed_ciphertexts() {
        let c = FeishuCipher::new("test key").unwrap();
        assert!(matches!(
            c.decrypt("%%%"),
            Err(CryptoError::DecodeBase64 { .. })
        ));
        assert!(matches!(c.decrypt(""), Err(CryptoError::DecryptAes { .. })));
        assert!(matches!(
            c.decrypt(&B64.encode([0u8; 16])),
            Err(CryptoError::DecryptAes { .. })
        ));
        assert!(matches!(
            c.decrypt(&B64.encode([0u8; 33])),
            Err(CryptoError::DecryptAes { .. })
        ));
    }

    #[test]
    fn envelopes() {
        let uv = parse_envelope(
            r#"{"challenge":"ajls384kdjx98XX","token":"xxxxxx","type":"url_verification"}"#,
        )
        .unwrap();
        assert_eq!(uv.kind, EnvelopeKind::UrlVerification);
        assert_eq!(
            uv.challenge_response().unwrap(),
            serde_json::json!({"challenge": "ajls384kdjx98XX"})
        );
        uv.verify_token("xxxxxx").unwrap();
        assert!(uv.verify_token("xxxxxy").is_err());

        let v1 = parse_envelope(
            r#"{"ts":"1502199207.7171419","uuid":"bc447199585340d1f3728d26b1c0297a","token":"41a9425ea7df4536a7623e38fa321bae","type":"event_callback","event":{"type":"message","app_id":"cli_9e28cb5ba9b"}}"#,
        )
        .unwrap();
        assert_eq!(v1.kind, EnvelopeKind::V1);
        assert_eq!(
            v1.event_id.as_deref(),
            Some("bc447199585340d1f3728d26b1c0297a")
        );
        assert_eq!(v1.event_type.as_deref(), Some("message"));
        assert_eq!(v1.token, "41a9425ea7df4536a7623e38fa321bae");
        assert_eq!(v1.app_id.as_deref(), Some("cli_9e28cb5ba9b"));

        let v2 = parse_envelope(
            r#"{"schema":"2.0","header":{"event_id":"5e3702a84e847582be8db7fb73283c02","event_type":"im.message.receive_v1","create_time":"1608725989000","token":"rvaYgkND1GOiu5MM0E1rncYC6PLtF7JV","app_id":"cli_9f5343c580712544","tenant_key":"2ca1d211f64f6438"},"event":{"message":{"chat_id":"oc_x"}}}"#,
        )
        .unwrap();
        assert_eq!(v2.kind, EnvelopeKind::V2);
        assert_eq!(
            v2.event_id.as_deref(),
            Some("5e3702a84e847582be8db7fb73283c02")
        );
        assert_eq!(v2.event_type.as_deref(), Some("im.message.receive_v1"));
        assert_eq!(v2.token, "rvaYgkND1GOiu5MM0E1rncYC6PLtF7JV");
        assert_eq!(v2.event["message"]["chat_id"], "oc_x");

        assert_eq!(
            parse_envelope(r#"{"schema":"2.0","header":{"event_id":"e"}}"#),
            Err(CryptoError::Missing("header.token"))
        );
        assert_eq!(
            parse_envelope(r#"{"type":"event_callback","token":"t"}"#),
            Err(CryptoError::Missing("uuid"))
        );
        assert!(parse_envelope(r#"{"type":"other"}"#).is_err());
        assert!(parse_envelope("[]").is_err());
        assert!(parse_envelope("").is_err());
    }

    #[test]
    fn encrypted_and_plain_bodies() {
        let c = FeishuCipher::new("k").unwrap();
        let body = serde_json::json!({ "encrypt": c.encrypt(r#"{"type":"url_verification","token":"t","challenge":"x"}"#) });
        let body = serde_json::to_vec(&body).unwrap();
        let plain = body_plaintext(Some(&c), &body).unwrap();
        assert_eq!(
            parse_envelope(&plain).unwrap().challenge.as_deref(),
            Some("x")
        );
        assert!(matches!(
            body_plaintext(None, &body),
            Err(CryptoError::IllegalAesKey(_))
        ));
        assert_eq!(body_plaintext(Some(&c), b"{\"a\":1}").unwrap(), "{\"a\":1}");
        assert!(body_plaintext(Some(&c), b"{\"encrypt\":1}").is_err());
        assert!(body_plaintext(Some(&c), b"nope").is_err());
    }

    proptest! {
        #[test]
        fn round_trip_every_length(n in 0usize..=300, key in "\\PC{1,40}") {
            let c = FeishuCipher::new(&key).unwrap();
            let msg: String = "汉a".chars().cycle().take(n).collect();
            prop_assert_eq!(c.decrypt(&c.encrypt(&msg)).unwrap(), msg);
        }

        #[test]
        fn round_trip_any_text(msg in "\\PC{0,300}") {
            let c = FeishuCipher::new("test key").unwrap();
            prop_assert_eq!(c.decrypt(&c.encrypt(&msg)).unwrap(), msg);
        }

        #[test]
        fn tampered_last_block_rejected_or_changed(msg in "\\PC{0,100}", bit in 0u8..8, pos in 0usize..16) {
            let c = FeishuCipher::new("test key").unwrap();
            let mut raw = B64.decode(c.encrypt(&msg)).unwrap();
            let i = raw.len() - 32 + pos; // the block before the last: flips pad bytes
            raw[i] ^= 1 << bit;
            let out = c.decrypt(&B64.encode(&raw));
            prop_assert!(out.as_deref() != Ok(msg.as_str()));
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = FeishuCipher::new("test key").unwrap();
            let _ = c.decrypt(&s);
            let _ = c.decrypt(&B64.encode(&bytes));
            let _ = body_plaintext(Some(&c), &bytes);
            let _ = parse_envelope(&s);
            let _ = parse_envelope(&String::from_utf8_lossy(&bytes));
            let _ = verify_event_signature(&s, &s, "k", &bytes, &s);
        }
    }
}
