//! Request signatures. Each function is checked against the published vectors
//! in platforms.md (and the Standard Webhooks spec) in the tests below.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// DingTalk custom robot: `base64(HMAC-SHA256(key = secret, msg = "{ts_ms}\n{secret}"))`,
/// before URL-encoding. The caller appends `&timestamp={ts_ms}&sign={urlencoded}`.
///
/// ```
/// assert_eq!(
///     imrelay_sdk::sign::dingtalk_robot("SEC_this_is_secret", 1577000000000),
///     "9nj3Vql0XE92d3DA3bb2X5oIV/jCn5uoYXVqz0cKTlA="
/// );
/// ```
pub fn dingtalk_robot(secret: &str, timestamp_ms: i64) -> String {
    let string_to_sign = format!("{timestamp_ms}\n{secret}");
    B64.encode(hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()))
}

/// Feishu/Lark custom bot: the string `"{ts_secs}\n{secret}"` is the HMAC **key**
/// over an empty message; base64, no URL-encoding (it travels in the JSON body).
///
/// ```
/// assert_eq!(
///     imrelay_sdk::sign::feishu_webhook("this is secret", 1599360473),
///     "/eYKrXQBzTjUZJ3s6NX16VxGbTwmK7AEs8/FnvC1CSw="
/// );
/// ```
pub fn feishu_webhook(secret: &str, timestamp_secs: i64) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    B64.encode(hmac_sha256(key.as_bytes(), b""))
}

/// Standard Webhooks (`webhook-signature: v1,<sig>`): HMAC-SHA256 keyed with the
/// base64-decoded secret (a `whsec_` prefix is stripped) over `"{id}.{ts}.{body}"`.
/// A secret that is not valid base64 is used as raw bytes.
pub fn standard_webhook(secret: &str, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let key = standard_webhook_key(secret);
    let mut msg = Vec::with_capacity(msg_id.len() + body.len() + 24);
    msg.extend_from_slice(msg_id.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(timestamp_secs.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    format!("v1,{}", B64.encode(hmac_sha256(&key, &msg)))
}

fn standard_webhook_key(secret: &str) -> Vec<u8> {
    let stripped = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(stripped)
        .unwrap_or_else(|_| stripped.as_bytes().to_vec())
}

/// Verify a `webhook-signature` header (space-separated `v1,<sig>` entries) in
/// constant time.
pub fn verify_standard_webhook(
    secret: &str,
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let expected = standard_webhook(secret, msg_id, timestamp_secs, body);
    header
        .split(' ')
        .any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
}

/// WeChat-family signature: `hex(sha1(concat(sort(parts))))`. Used by WeChat's
/// plain URL check (token, timestamp, nonce) and, with the ciphertext as a fourth
/// part, by WeCom/WeChat/DingTalk callback `msg_signature`.
pub fn sha1_sorted(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut h = Sha1::new();
    for p in sorted {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Feishu event signature: `hex(sha256(timestamp + nonce + encrypt_key + body))`.
pub fn feishu_event(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// Feishu legacy card-action signature: `hex(sha1(timestamp + nonce + token + body))`.
pub fn feishu_card(timestamp: &str, nonce: &str, verification_token: &str, body: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(verification_token.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// Compare two byte strings without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // platforms.md §6.5 (self-computed regression vectors).
    #[test]
    fn dingtalk_robot_vector() {
        assert_eq!(
            dingtalk_robot("SEC_this_is_secret", 1577000000000),
            "9nj3Vql0XE92d3DA3bb2X5oIV/jCn5uoYXVqz0cKTlA="
        );
    }

    #[test]
    fn feishu_webhook_vector() {
        assert_eq!(
            feishu_webhook("this is secret", 1599360473),
            "/eYKrXQBzTjUZJ3s6NX16VxGbTwmK7AEs8/FnvC1CSw="
        );
    }

    #[test]
    fn feishu_event_vector() {
        assert_eq!(
            feishu_event("1", "n", "test key", b"{}"),
            "5e1d3ec760c9b1047e0c2ace8f278e16862ec42000daa56bb6c6c4b83d6b51ac"
        );
    }

    // platforms.md §6.1: WeCom URL-verification msg_signature.
    #[test]
    fn wecom_msg_signature_vector() {
        let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        assert_eq!(
            sha1_sorted(&["QDG6eK", "1409659589", "263014780", echostr]),
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
        );
    }

    // platforms.md §6.3: DingTalk callback msg_signature.
    #[test]
    fn dingtalk_callback_signature_vector() {
        let encrypt = "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3";
        assert_eq!(
            sha1_sorted(&["mryue", "1608001896814", "WL4PK6yA", encrypt]),
            "03044561471240d4a14bb09372dfcfd4fd0e40cb"
        );
    }

    // The Standard Webhooks specification's example (standard-webhooks/spec).
    #[test]
    fn standard_webhooks_spec_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = standard_webhook(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_standard_webhook(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &format!("v1,bogus {sig}")
        ));
        assert!(!verify_standard_webhook(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            br#"{"test": 2432232314}"#,
            &sig
        ));
    }
}
