//! DingTalk HTTP-push callbacks (platforms.md §1d): the WeChat-family cipher
//! ([`super::wxbiz`]) with a JSON body `{"encrypt": "..."}`, millisecond
//! timestamps, `signature`/`timeStamp` aliases in the query, and an encrypted
//! `success` reply `{"msg_signature","timeStamp","nonce","encrypt"}`.
//!
//! The receive id (owner key) is the corpId for enterprise callbacks, the
//! **appKey** for an internal app's event subscription, the suiteKey for ISVs.

use serde::{Deserialize, Serialize};

use super::wxbiz::WxBizMsgCrypt;
use super::{random_alnum, CryptoError};

/// The query of a callback POST, with DingTalk's aliases resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackQuery {
    /// `msg_signature`, or `signature`.
    pub signature: String,
    /// `timestamp`, or `timeStamp` (epoch milliseconds).
    pub timestamp: String,
    pub nonce: String,
}

impl CallbackQuery {
    /// From decoded query pairs (e.g. axum's `Query<HashMap<String, String>>`).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, CryptoError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (mut msg_sig, mut sig, mut ts, mut ts_alias, mut nonce) =
            (None, None, None, None, None);
        for (k, v) in pairs {
            let slot = match k.as_ref() {
                "msg_signature" => &mut msg_sig,
                "signature" => &mut sig,
                "timestamp" => &mut ts,
                "timeStamp" => &mut ts_alias,
                "nonce" => &mut nonce,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.as_ref().to_owned());
        }
        Ok(CallbackQuery {
            signature: msg_sig
                .or(sig)
                .ok_or(CryptoError::Missing("msg_signature"))?,
            timestamp: ts.or(ts_alias).ok_or(CryptoError::Missing("timestamp"))?,
            nonce: nonce.ok_or(CryptoError::Missing("nonce"))?,
        })
    }

    /// From a raw query string (`a=1&b=2`, percent-encoded).
    ///
    /// ```
    /// use imrelay_sdk::crypto::dingtalk::CallbackQuery;
    /// let q = CallbackQuery::from_query("signature=0304&timeStamp=1608001896814&nonce=WL4PK6yA").unwrap();
    /// assert_eq!(q.signature, "0304");
    /// assert_eq!(q.timestamp, "1608001896814");
    /// ```
    pub fn from_query(query: &str) -> Result<Self, CryptoError> {
        Self::from_pairs(url::form_urlencoded::parse(query.as_bytes()))
    }
}

/// The `encrypt` field of a callback body `{"encrypt": "..."}`.
pub fn parse_body(body: &[u8]) -> Result<String, CryptoError> {
    #[derive(Deserialize)]
    struct Body {
        encrypt: Option<String>,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        CryptoError::ParseBody(format!(
            "a DingTalk callback body is JSON {{\"encrypt\": \"...\"}}: {e}"
        ))
    })?;
    b.encrypt.ok_or(CryptoError::Missing("encrypt"))
}

/// The encrypted map DingTalk expects in answer (`getEncryptedMap`): all
/// four values are strings, `timeStamp` in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedMap {
    pub msg_signature: String,
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    pub nonce: String,
    pub encrypt: String,
}

/// Verify and decrypt a callback: query signature over the body's `encrypt`,
/// then the owner key. Returns the plaintext event JSON. The caller checks the
/// timestamp window ([`super::check_timestamp`] with
/// [`super::TimestampUnit::Millis`]).
///
/// ```
/// use imrelay_sdk::crypto::{dingtalk, wxbiz::WxBizMsgCrypt};
/// let c = WxBizMsgCrypt::new("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b").unwrap();
/// let q = dingtalk::CallbackQuery::from_query(
///     "msg_signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timestamp=1608001896814&nonce=WL4PK6yA").unwrap();
/// let body = br#"{"encrypt":"0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"}"#;
/// assert_eq!(dingtalk::decrypt_callback(&c, &q, body).unwrap(), r#"{"EventType":"check_url"}"#);
/// let reply = dingtalk::success_reply(&c, 1608001896900).unwrap();
/// assert_eq!(dingtalk::decrypt_map(&c, &reply).unwrap(), "success");
/// ```
pub fn decrypt_callback(
    crypt: &WxBizMsgCrypt,
    query: &CallbackQuery,
    body: &[u8],
) -> Result<String, CryptoError> {
    let encrypt = parse_body(body)?;
    crypt.verify_and_decrypt(&query.signature, &query.timestamp, &query.nonce, &encrypt)
}

/// Encrypt and sign `msg` as DingTalk's `getEncryptedMap` does.
pub fn encrypted_map(
    crypt: &WxBizMsgCrypt,
    msg: &str,
    timestamp_ms: i64,
    nonce: &str,
) -> Result<EncryptedMap, CryptoError> {
    let encrypt = crypt.encrypt(msg)?;
    let time_stamp = timestamp_ms.to_string();
    Ok(EncryptedMap {
        msg_signature: crypt.signature(&time_stamp, nonce, &encrypt),
        time_stamp,
        nonce: nonce.to_owned(),
        encrypt,
    })
}

/// The reply every callback needs: encrypted `success`, with a fresh
/// 16-character nonce (the length the Java library requires).
pub fn success_reply(
    crypt: &WxBizMsgCrypt,
    timestamp_ms: i64,
) -> Result<EncryptedMap, CryptoError> {
    encrypted_map(crypt, "success", timestamp_ms, &random_alnum(16))
}

/// Verify and decrypt an [`EncryptedMap`] (what the mock does with a reply).
pub fn decrypt_map(crypt: &WxBizMsgCrypt, map: &EncryptedMap) -> Result<String, CryptoError> {
    crypt.verify_and_decrypt(
        &map.msg_signature,
        &map.time_stamp,
        &map.nonce,
        &map.encrypt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ENCRYPT: &str = "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3";

    fn crypt() -> WxBizMsgCrypt {
        WxBizMsgCrypt::new(
            "mryue",
            "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
            "ding6ccabc44d2c8d38b",
        )
        .unwrap()
    }

    // platforms.md §6.3, delivered with either spelling of the query.
    #[test]
    fn check_url_vector_with_query_aliases() {
        let body = format!(r#"{{"encrypt":"{ENCRYPT}"}}"#);
        for q in [
            "msg_signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timestamp=1608001896814&nonce=WL4PK6yA",
            "signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timeStamp=1608001896814&nonce=WL4PK6yA",
        ] {
            let q = CallbackQuery::from_query(q).unwrap();
            assert_eq!(
                decrypt_callback(&crypt(), &q, body.as_bytes()).unwrap(),
                r#"{"EventType":"check_url"}"#
            );
        }
        let q = CallbackQuery::from_query(
            "signature=03044561471240d4a14bb09372dfcfd4fd0e40cb&timeStamp=1608001896815&nonce=WL4PK6yA",
        )
        .unwrap();
        assert_eq!(
            decrypt_callback(&crypt(), &q, body.as_bytes())
                .unwrap_err()
                .dingtalk_code(),
            900005
        );
    }

    #[test]
    fn missing_query_fields_are_named() {
        assert_eq!(
            CallbackQuery::from_query("timestamp=1&nonce=n"),
            Err(CryptoError::Missing("msg_signature"))
        );
        assert_eq!(
            CallbackQuery::from_query("signature=s&nonce=n"),
            Err(CryptoError::Missing("timestamp"))
        );
        assert_eq!(
            CallbackQuery::from_query("signature=s&timestamp=1"),
            Err(CryptoError::Missing("nonce"))
        );
        assert_eq!(parse_body(b"{}"), Err(CryptoError::Missing("encrypt")));
        assert!(matches!(
            parse_body(b"<xml/>"),
            Err(CryptoError::ParseBody(_))
        ));
    }

    #[test]
    fn success_reply_shape() {
        let c = crypt();
        let m = encrypted_map(&c, "success", 1608001896814, "0123456789abcdef").unwrap();
        let v = serde_json::to_value(&m).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["msg_signature", "timeStamp", "nonce", "encrypt"]);
        assert_eq!(v["timeStamp"], "1608001896814");
        assert_eq!(v["nonce"], "0123456789abcdef");
        assert_eq!(
            m.msg_signature,
            crate::sign::sha1_sorted(&["mryue", "1608001896814", "0123456789abcdef", &m.encrypt])
        );
        assert_eq!(decrypt_map(&c, &m).unwrap(), "success");
        let r = success_reply(&c, 1).unwrap();
        assert_eq!(r.nonce.len(), 16);
        let mut tampered = r.clone();
        tampered.time_stamp = "2".into();
        assert!(decrypt_map(&c, &tampered).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), q in "\\PC{0,100}") {
            let _ = parse_body(&bytes);
            if let Ok(q) = CallbackQuery::from_query(&q) {
                let _ = decrypt_callback(&crypt(), &q, &bytes);
            }
        }
    }
}
