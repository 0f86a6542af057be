//! Callback crypto: decrypt and verify what the platforms push to us, and
//! encrypt and sign what we answer (or, in the mock, what we push).
//!
//! - [`wxbiz`]: the WeChat-family scheme (WeCom `WXBizMsgCrypt`, WeChat safe
//!   mode, DingTalk HTTP callbacks): AES-256-CBC, key from the 43-char
//!   EncodingAESKey, PKCS#7 with block 32, trailing receive id, SHA-1 `msg_signature`.
//! - [`xml`]: the WeCom/WeChat XML envelope, the encrypted reply XML, and
//!   plaintext event XML as a flat map. No DTDs or custom entities (no XXE).
//! - [`dingtalk`]: DingTalk's JSON body, query aliases and encrypted `success` reply.
//! - [`feishu`]: Feishu/Lark: SHA-256 key, random IV, PKCS#7 block 16, event and
//!   card signatures, envelope parsing (url_verification, schema 1.0 and 2.0).
//! - [`check_timestamp`]: the replay window.
//!
//! Every function here takes untrusted input and returns a typed
//! [`CryptoError`] instead of panicking, whatever the bytes.

pub mod dingtalk;
pub mod feishu;
pub mod wxbiz;
pub mod xml;

use std::time::Duration;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::Rng;

/// Why a callback was rejected. Variants follow the error codes of the official
/// libraries (WeCom `ierror.py` -400xx, DingTalk `DingCallbackCrypto` 9000xx);
/// [`CryptoError::wecom_code`] and [`CryptoError::dingtalk_code`] give them back.
///
/// Messages name the field at fault and never carry a key, token or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// -40001 / 900005: the signature does not match.
    #[error("{field} does not match: check the callback token (and, for Feishu, the encrypt key) configured for this endpoint")]
    ValidateSignature { field: &'static str },
    /// -40002: the body is not the expected XML or JSON envelope.
    #[error("cannot parse the callback body: {0}")]
    ParseBody(String),
    /// -40004 / 900004: the EncodingAESKey is not 43 base64 characters
    /// decoding to 32 bytes (or the Feishu encrypt key is empty).
    #[error("{0}")]
    IllegalAesKey(String),
    /// -40005 / 900010: the decrypted receive id (corpid, appid, appKey,
    /// suiteKey) is not the one configured.
    #[error("the decrypted receive id does not match the configured one (corpid / appid / appKey): check receive_id for this endpoint")]
    ValidateReceiveId,
    /// -40006 / 900007: encryption failed (message longer than 4 GiB).
    #[error("cannot encrypt: {0}")]
    EncryptAes(String),
    /// -40007 / 900008: the ciphertext is empty or not a whole number of AES blocks.
    #[error("cannot decrypt `{field}`: {detail}")]
    DecryptAes { field: &'static str, detail: String },
    /// -40008: the PKCS#7 padding is wrong (wrong key, or tampered ciphertext).
    #[error("bad padding after decrypting `{field}`: wrong key (EncodingAESKey / encrypt key) or tampered ciphertext")]
    Padding { field: &'static str },
    /// -40008 / 900009: the length field points outside the plaintext.
    #[error("the length field in the decrypted `{field}` is out of bounds: wrong key or tampered ciphertext")]
    Length { field: &'static str },
    /// 900001: the decrypted message is not UTF-8.
    #[error("the decrypted `{field}` is not UTF-8: wrong key or tampered ciphertext")]
    Utf8 { field: &'static str },
    /// -40010: the ciphertext is not base64.
    #[error("`{field}` is not valid base64: {detail}")]
    DecodeBase64 { field: &'static str, detail: String },
    /// 900002: the timestamp is missing, not a number, or outside the replay window.
    #[error("{0}")]
    Timestamp(String),
    /// A required field (query parameter, header, JSON/XML field) is missing.
    #[error("missing `{0}` in the callback request")]
    Missing(&'static str),
}

impl CryptoError {
    /// The WeCom/WeChat library code (`ierror.py`).
    pub fn wecom_code(&self) -> i32 {
        match self {
            CryptoError::ValidateSignature { .. } => -40001,
            CryptoError::ParseBody(_) | CryptoError::Missing(_) => -40002,
            CryptoError::IllegalAesKey(_) => -40004,
            CryptoError::ValidateReceiveId => -40005,
            CryptoError::EncryptAes(_) => -40006,
            CryptoError::DecryptAes { .. } => -40007,
            CryptoError::Padding { .. } | CryptoError::Length { .. } | CryptoError::Utf8 { .. } => {
                -40008
            }
            CryptoError::DecodeBase64 { .. } => -40010,
            // WeCom's library has no timestamp check; it is a signature-level refusal.
            CryptoError::Timestamp(_) => -40001,
        }
    }

    /// The DingTalk library code (`DingCallbackCrypto`).
    pub fn dingtalk_code(&self) -> i32 {
        match self {
            CryptoError::Utf8 { .. } | CryptoError::ParseBody(_) | CryptoError::Missing(_) => {
                900001
            }
            CryptoError::Timestamp(_) => 900002,
            CryptoError::IllegalAesKey(_) => 900004,
            CryptoError::ValidateSignature { .. } => 900005,
            CryptoError::EncryptAes(_) => 900007,
            CryptoError::DecryptAes { .. }
            | CryptoError::Padding { .. }
            | CryptoError::DecodeBase64 { .. } => 900008,
            CryptoError::Length { .. } => 900009,
            CryptoError::ValidateReceiveId => 900010,
        }
    }
}

/// The unit a platform's callback timestamp is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    /// WeCom, WeChat, Feishu.
    Seconds,
    /// DingTalk.
    Millis,
}

/// Reject a callback whose timestamp is more than `window` away from `now_ms`
/// (either side: a sender's clock may run ahead), to bound replays.
///
/// `ts` is the query/header value as received; `now_ms` is the receiver's clock
/// in milliseconds (see [`crate::clock::Clock::now_ms`]).
///
/// ```
/// use std::time::Duration;
/// use imrelay_sdk::crypto::{check_timestamp, TimestampUnit};
/// let now_ms = 1_409_659_813_000;
/// assert!(check_timestamp("1409659589", now_ms, Duration::from_secs(300), TimestampUnit::Seconds).is_ok());
/// assert!(check_timestamp("1409659000", now_ms, Duration::from_secs(300), TimestampUnit::Seconds).is_err());
/// assert!(check_timestamp("1409659813500", now_ms, Duration::from_secs(1), TimestampUnit::Millis).is_ok());
/// ```
pub fn check_timestamp(
    ts: &str,
    now_ms: i64,
    window: Duration,
    unit: TimestampUnit,
) -> Result<(), CryptoError> {
    let raw: i64 = ts.trim().parse().map_err(|_| {
        CryptoError::Timestamp(format!(
            "timestamp `{}` is not an integer ({})",
            truncate(ts, 32),
            match unit {
                TimestampUnit::Seconds => "expected epoch seconds",
                TimestampUnit::Millis => "expected epoch milliseconds",
            }
        ))
    })?;
    let ts_ms = match unit {
        TimestampUnit::Seconds => raw.saturating_mul(1000),
        TimestampUnit::Millis => raw,
    };
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let skew = ts_ms.saturating_sub(now_ms).saturating_abs();
    if skew > window_ms {
        return Err(CryptoError::Timestamp(format!(
            "timestamp {raw} is {skew} ms away from now, outside the {window_ms} ms replay window: check the sender's clock (NTP)"
        )));
    }
    Ok(())
}

/// Base64 as the official libraries read it: standard alphabet, padding
/// optional, non-zero trailing bits allowed (a random 43-char EncodingAESKey
/// usually has them).
pub(crate) const B64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `n` random ASCII letters and digits: the random prefix and nonces the
/// official libraries generate.
pub fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// At most `max` chars of `s`, for error text about untrusted input.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_window_both_sides_and_units() {
        let now = 1_000_000_000_000;
        let w = Duration::from_secs(300);
        assert!(check_timestamp("1000000000", now, w, TimestampUnit::Seconds).is_ok());
        assert!(check_timestamp("1000000300", now, w, TimestampUnit::Seconds).is_ok());
        assert!(check_timestamp("1000000301", now, w, TimestampUnit::Seconds).is_err());
        assert!(check_timestamp("999999699", now, w, TimestampUnit::Seconds).is_err());
        assert!(check_timestamp("1000000300000", now, w, TimestampUnit::Millis).is_ok());
        assert!(check_timestamp("1000000300001", now, w, TimestampUnit::Millis).is_err());
        // Seconds read as milliseconds are 1970: refused.
        assert!(check_timestamp("1000000000", now, w, TimestampUnit::Millis).is_err());
        let e = check_timestamp("abc", now, w, TimestampUnit::Millis).unwrap_err();
        assert_eq!(e.dingtalk_code(), 900002);
        assert!(e.to_string().contains("milliseconds"), "{e}");
        // Extremes saturate instead of overflowing.
        assert!(check_timestamp(&i64::MAX.to_string(), now, w, TimestampUnit::Seconds).is_err());
        assert!(check_timestamp(&i64::MIN.to_string(), now, w, TimestampUnit::Seconds).is_err());
        assert!(check_timestamp("0", i64::MIN, Duration::MAX, TimestampUnit::Millis).is_ok());
    }

    #[test]
    fn random_alnum_is_ascii_alnum() {
        let s = random_alnum(64);
        assert_eq!(s.len(), 64);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(random_alnum(16), random_alnum(16));
    }
}
