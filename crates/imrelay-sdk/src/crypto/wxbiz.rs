//! The WeChat-family callback scheme: WeCom `WXBizMsgCrypt`, WeChat Official
//! Account safe mode, and DingTalk HTTP callbacks (platforms.md §1d, §3c, §4d).
//!
//! - key = base64(EncodingAESKey + "="), 43 chars → 32 bytes; IV = key[..16];
//! - plaintext = random(16) ‖ u32be(byte length of msg) ‖ msg ‖ receive_id,
//!   PKCS#7-padded to a multiple of **32** (pad 1..=32), AES-256-CBC, base64;
//! - `msg_signature` = hex(sha1(concat(sort([token, timestamp, nonce, encrypt])))).
//!
//! Verify the signature before decrypting (the [`WxBizMsgCrypt`] methods do):
//! it authenticates the ciphertext, so padding errors cannot be used as an oracle.

use std::fmt;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

use super::{random_alnum, CryptoError, B64_LENIENT};
use crate::secret::Secret;
use crate::sign;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// PKCS#7 block size of the WeChat family (not the AES block size).
pub const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const AES_BLOCK: usize = 16;

/// A decoded EncodingAESKey. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(***)")
    }
}

impl AesKey {
    /// Decode the 43-character EncodingAESKey from the platform console.
    ///
    /// ```
    /// use imrelay_sdk::crypto::wxbiz::AesKey;
    /// assert!(AesKey::from_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").is_ok());
    /// assert!(AesKey::from_encoding_aes_key("too-short").is_err());
    /// ```
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<AesKey, CryptoError> {
        let k = encoding_aes_key.trim();
        if k.len() != 43 {
            return Err(CryptoError::IllegalAesKey(format!(
                "encoding_aes_key must be the 43-character EncodingAESKey from the platform console, got {} characters",
                k.chars().count()
            )));
        }
        let mut padded = String::with_capacity(44);
        padded.push_str(k);
        padded.push('=');
        let bytes = B64_LENIENT.decode(padded.as_bytes()).map_err(|_| {
            CryptoError::IllegalAesKey(
                "encoding_aes_key is not base64 (letters, digits, + and / only): copy it again from the platform console".into(),
            )
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            CryptoError::IllegalAesKey("encoding_aes_key does not decode to 32 bytes".into())
        })?;
        Ok(AesKey(key))
    }

    /// A key from raw bytes (tests, the mock).
    pub fn from_bytes(bytes: [u8; 32]) -> AesKey {
        AesKey(bytes)
    }

    /// The 43-character EncodingAESKey for these bytes (inverse of
    /// [`AesKey::from_encoding_aes_key`]).
    pub fn to_encoding_aes_key(&self) -> String {
        let mut s = B64.encode(self.0);
        s.pop(); // the trailing '='
        s
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// A decrypted message and the receive id that trailed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub message: String,
    /// corpid, appid, DingTalk corpId / appKey / suiteKey.
    pub receive_id: String,
}

/// Encrypt `msg` for `receive_id` with a fresh random 16-character prefix.
pub fn encrypt(key: &AesKey, msg: &str, receive_id: &str) -> Result<String, CryptoError> {
    let mut random = [0u8; RANDOM_LEN];
    random.copy_from_slice(random_alnum(RANDOM_LEN).as_bytes());
    encrypt_with_random(key, msg, receive_id, &random)
}

/// Encrypt with an explicit random prefix (reproduces the official vectors).
///
/// ```
/// use imrelay_sdk::crypto::wxbiz::{encrypt_with_random, AesKey};
/// let key = AesKey::from_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
/// let ct = encrypt_with_random(&key, "1616140317555161061", "wx5823bf96d3bd56c7", b"c41b64491c2468d0").unwrap();
/// assert_eq!(
///     ct,
///     "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
/// );
/// ```
pub fn encrypt_with_random(
    key: &AesKey,
    msg: &str,
    receive_id: &str,
    random: &[u8; 16],
) -> Result<String, CryptoError> {
    let len = u32::try_from(msg.len())
        .map_err(|_| CryptoError::EncryptAes("the message is longer than 4 GiB".into()))?;
    let body = RANDOM_LEN + 4 + msg.len() + receive_id.len();
    let pad = PAD_BLOCK - body % PAD_BLOCK; // 1..=32
    let mut buf = Vec::with_capacity(body + pad);
    buf.extend_from_slice(random);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg.as_bytes());
    buf.extend_from_slice(receive_id.as_bytes());
    buf.resize(body + pad, pad as u8);
    let ct = Aes256CbcEnc::new(&key.0.into(), &key.iv().into())
        .encrypt_padded_vec_mut::<NoPadding>(&buf);
    Ok(B64.encode(ct))
}

/// Decrypt without checking the receive id; the caller decides what to do with
/// [`Decrypted::receive_id`] (third-party apps receive several).
pub fn decrypt_raw(key: &AesKey, ciphertext_b64: &str) -> Result<Decrypted, CryptoError> {
    const FIELD: &str = "Encrypt";
    let ct = B64_LENIENT
        .decode(ciphertext_b64.trim().as_bytes())
        .map_err(|e| CryptoError::DecodeBase64 {
            field: FIELD,
            detail: e.to_string(),
        })?;
    if ct.is_empty() || ct.len() % AES_BLOCK != 0 {
        return Err(CryptoError::DecryptAes {
            field: FIELD,
            detail: format!(
                "{} bytes is not a whole number of 16-byte AES blocks",
                ct.len()
            ),
        });
    }
    let plain = Aes256CbcDec::new(&key.0.into(), &key.iv().into())
        .decrypt_padded_vec_mut::<NoPadding>(&ct)
        .map_err(|_| CryptoError::DecryptAes {
            field: FIELD,
            detail: "AES-CBC failed".into(),
        })?;
    let content = unpad(&plain, PAD_BLOCK).ok_or(CryptoError::Padding { field: FIELD })?;
    let rest = content
        .get(RANDOM_LEN..)
        .ok_or(CryptoError::Length { field: FIELD })?;
    let (len_bytes, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(CryptoError::Length { field: FIELD })?;
    let len = u32::from_be_bytes(*len_bytes) as usize;
    if len > rest.len() {
        return Err(CryptoError::Length { field: FIELD });
    }
    let (msg, receive_id) = rest.split_at(len);
    let message = std::str::from_utf8(msg)
        .map_err(|_| CryptoError::Utf8 { field: FIELD })?
        .to_owned();
    let receive_id = std::str::from_utf8(receive_id)
        .map_err(|_| CryptoError::ValidateReceiveId)?
        .to_owned();
    Ok(Decrypted {
        message,
        receive_id,
    })
}

/// Decrypt and check that the trailing receive id is `expected_receive_id`.
///
/// ```
/// use imrelay_sdk::crypto::wxbiz::{decrypt, AesKey};
/// let key = AesKey::from_encoding_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").unwrap();
/// let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
/// assert_eq!(decrypt(&key, echostr, "wx5823bf96d3bd56c7").unwrap(), "1616140317555161061");
/// assert!(decrypt(&key, echostr, "another-corp").is_err());
/// ```
pub fn decrypt(
    key: &AesKey,
    ciphertext_b64: &str,
    expected_receive_id: &str,
) -> Result<String, CryptoError> {
    let d = decrypt_raw(key, ciphertext_b64)?;
    if !sign::constant_time_eq(d.receive_id.as_bytes(), expected_receive_id.as_bytes()) {
        return Err(CryptoError::ValidateReceiveId);
    }
    Ok(d.message)
}

/// Strict PKCS#7: the last byte `n` is in 1..=block and the last `n` bytes all equal `n`.
pub(crate) fn unpad(plain: &[u8], block: usize) -> Option<&[u8]> {
    let &n = plain.last()?;
    let n = n as usize;
    if n == 0 || n > block || n > plain.len() {
        return None;
    }
    let (content, pad) = plain.split_at(plain.len() - n);
    pad.iter().all(|&b| b as usize == n).then_some(content)
}

/// `msg_signature = hex(sha1(concat(sort([token, timestamp, nonce, encrypt]))))`.
///
/// ```
/// use imrelay_sdk::crypto::wxbiz::msg_signature;
/// let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
/// assert_eq!(
///     msg_signature("QDG6eK", "1409659589", "263014780", echostr),
///     "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
/// );
/// ```
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sign::sha1_sorted(&[token, timestamp, nonce, encrypt])
}

/// Check a `msg_signature` in constant time (hex compared case-insensitively).
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    signature: &str,
) -> Result<(), CryptoError> {
    let expected = msg_signature(token, timestamp, nonce, encrypt);
    if sign::constant_time_eq(
        signature.trim().to_ascii_lowercase().as_bytes(),
        expected.as_bytes(),
    ) {
        Ok(())
    } else {
        Err(CryptoError::ValidateSignature {
            field: "msg_signature",
        })
    }
}

/// One callback endpoint's settings: token, EncodingAESKey and receive id
/// (WeCom corpid, WeChat appid, DingTalk corpId/appKey/suiteKey).
///
/// ```
/// use imrelay_sdk::crypto::wxbiz::WxBizMsgCrypt;
/// let c = WxBizMsgCrypt::new("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7").unwrap();
/// // WeCom URL verification: GET ?msg_signature=&timestamp=&nonce=&echostr=
/// let echo = c.verify_url(
///     "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
///     "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
/// ).unwrap();
/// assert_eq!(echo, "1616140317555161061");
/// // A reply round-trips through the same settings.
/// let xml = c.encrypt_reply("<xml>hi</xml>", "1409659813", "nonce").unwrap();
/// assert_eq!(c.decrypt_reply(&xml).unwrap(), "<xml>hi</xml>");
/// ```
#[derive(Clone)]
pub struct WxBizMsgCrypt {
    token: Secret,
    key: AesKey,
    receive_id: String,
}

impl fmt::Debug for WxBizMsgCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WxBizMsgCrypt")
            .field("token", &self.token)
            .field("key", &self.key)
            .field("receive_id", &self.receive_id)
            .finish()
    }
}

impl WxBizMsgCrypt {
    pub fn new(
        token: impl Into<Secret>,
        encoding_aes_key: &str,
        receive_id: impl Into<String>,
    ) -> Result<Self, CryptoError> {
        Ok(WxBizMsgCrypt {
            token: token.into(),
            key: AesKey::from_encoding_aes_key(encoding_aes_key)?,
            receive_id: receive_id.into(),
        })
    }

    pub fn key(&self) -> &AesKey {
        &self.key
    }

    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// `msg_signature` with this endpoint's token.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        msg_signature(self.token.expose(), timestamp, nonce, encrypt)
    }

    pub fn verify_signature(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        verify_signature(self.token.expose(), timestamp, nonce, encrypt, signature)
    }

    pub fn encrypt(&self, msg: &str) -> Result<String, CryptoError> {
        encrypt(&self.key, msg, &self.receive_id)
    }

    /// Verify the signature over `encrypt`, then decrypt it and check the receive id.
    pub fn verify_and_decrypt(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CryptoError> {
        self.verify_signature(signature, timestamp, nonce, encrypt)?;
        decrypt(&self.key, encrypt, &self.receive_id)
    }

    /// WeCom URL verification (`GET ?msg_signature&timestamp&nonce&echostr`, echostr
    /// already URL-decoded): the plaintext to answer with, verbatim.
    pub fn verify_url(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        echostr: &str,
    ) -> Result<String, CryptoError> {
        self.verify_and_decrypt(msg_signature, timestamp, nonce, echostr)
    }

    /// A WeCom/WeChat callback POST: parse the XML (or JSON) envelope, verify the
    /// signature, decrypt. Returns the plaintext event XML.
    pub fn decrypt_message(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &str,
    ) -> Result<String, CryptoError> {
        let env = super::xml::parse_envelope(body.as_bytes())?;
        self.verify_and_decrypt(msg_signature, timestamp, nonce, &env.encrypt)
    }

    /// The encrypted passive reply XML for `reply` (a plaintext reply XML).
    pub fn encrypt_reply(
        &self,
        reply: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<String, CryptoError> {
        let encrypt = self.encrypt(reply)?;
        let signature = self.signature(timestamp, nonce, &encrypt);
        Ok(super::xml::build_reply(
            &encrypt, &signature, timestamp, nonce,
        ))
    }

    /// Parse an encrypted reply XML built by [`WxBizMsgCrypt::encrypt_reply`] (or
    /// by a server answering the mock), verify its signature and decrypt it.
    pub fn decrypt_reply(&self, reply_xml: &str) -> Result<String, CryptoError> {
        let r = super::xml::parse_reply(reply_xml.as_bytes())?;
        self.verify_and_decrypt(&r.msg_signature, &r.timestamp, &r.nonce, &r.encrypt)
    }
}

/// A fresh random key, for tests and the mock.
pub fn random_key() -> AesKey {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    AesKey(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &str = "QDG6eK";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const CORP: &str = "wx5823bf96d3bd56c7";
    const ECHOSTR: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    const MSG_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
    const MSG_PLAIN: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";

    const DT_TOKEN: &str = "mryue";
    const DT_KEY: &str = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7";
    const DT_OWNER: &str = "ding6ccabc44d2c8d38b";
    const DT_ENCRYPT: &str = "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3";

    fn key() -> AesKey {
        AesKey::from_encoding_aes_key(KEY).unwrap()
    }

    fn raw_plain(key: &AesKey, ct_b64: &str) -> Vec<u8> {
        let ct = B64.decode(ct_b64).unwrap();
        Aes256CbcDec::new(&key.0.into(), &key.iv().into())
            .decrypt_padded_vec_mut::<NoPadding>(&ct)
            .unwrap()
    }

    // platforms.md §6.1: WeCom URL verification.
    #[test]
    fn wecom_url_verification_vector() {
        let c = WxBizMsgCrypt::new(TOKEN, KEY, CORP).unwrap();
        assert_eq!(
            c.signature("1409659589", "263014780", ECHOSTR),
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
        );
        let echo = c
            .verify_url(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                ECHOSTR,
            )
            .unwrap();
        assert_eq!(echo, "1616140317555161061");
        let d = decrypt_raw(&key(), ECHOSTR).unwrap();
        assert_eq!(d.receive_id, CORP);
        assert_eq!(&raw_plain(&key(), ECHOSTR)[..16], b"c41b64491c2468d0");
        // And encryption reproduces the platform's ciphertext byte for byte.
        assert_eq!(
            encrypt_with_random(&key(), "1616140317555161061", CORP, b"c41b64491c2468d0").unwrap(),
            ECHOSTR
        );
    }

    // platforms.md §6.2: WeCom message decrypt, pad 30 (proves block 32).
    #[test]
    fn wecom_message_vector() {
        let c = WxBizMsgCrypt::new(TOKEN, KEY, CORP).unwrap();
        assert_eq!(
            c.signature("1409659813", "1372623149", MSG_ENCRYPT),
            "477715d11cdb4164915debcba66cb864d751f3e6"
        );
        let body = format!(
            "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{MSG_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
        );
        let plain = c
            .decrypt_message(
                "477715d11cdb4164915debcba66cb864d751f3e6",
                "1409659813",
                "1372623149",
                &body,
            )
            .unwrap();
        assert_eq!(plain, MSG_PLAIN);
        assert_eq!(*raw_plain(&key(), MSG_ENCRYPT).last().unwrap(), 30);
        // Upper-case hex signatures are accepted too.
        c.verify_signature(
            "477715D11CDB4164915DEBCBA66CB864D751F3E6",
            "1409659813",
            "1372623149",
            MSG_ENCRYPT,
        )
        .unwrap();
    }

    // platforms.md §6.3: DingTalk check_url, pad 31.
    #[test]
    fn dingtalk_check_url_vector() {
        let c = WxBizMsgCrypt::new(DT_TOKEN, DT_KEY, DT_OWNER).unwrap();
        assert_eq!(
            c.signature("1608001896814", "WL4PK6yA", DT_ENCRYPT),
            "03044561471240d4a14bb09372dfcfd4fd0e40cb"
        );
        let plain = c
            .verify_and_decrypt(
                "03044561471240d4a14bb09372dfcfd4fd0e40cb",
                "1608001896814",
                "WL4PK6yA",
                DT_ENCRYPT,
            )
            .unwrap();
        assert_eq!(plain, r#"{"EventType":"check_url"}"#);
        let raw = raw_plain(c.key(), DT_ENCRYPT);
        assert_eq!(&raw[..16], b"l7Y3EcX2CU5w8av3");
        assert_eq!(*raw.last().unwrap(), 31);
    }

    #[test]
    fn aes_key_validation() {
        for bad in [
            "",
            "abc",
            &KEY[..42],
            &format!("{KEY}A"),
            &format!("{}!", &KEY[..42]),
        ] {
            let e = AesKey::from_encoding_aes_key(bad).unwrap_err();
            assert!(matches!(e, CryptoError::IllegalAesKey(_)), "{bad}: {e:?}");
            assert_eq!(e.wecom_code(), -40004);
            assert!(e.to_string().contains("encoding_aes_key"), "{e}");
        }
        // Non-ASCII of the right byte length must not panic either.
        assert!(AesKey::from_encoding_aes_key(&"é".repeat(21)).is_err());
        // The official key ends in non-zero trailing bits ('C', not 'A'): strict
        // base64 would refuse it. The canonical form decodes to the same key.
        let canonical = key().to_encoding_aes_key();
        assert_eq!(canonical, "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2A");
        assert_eq!(AesKey::from_encoding_aes_key(&canonical).unwrap(), key());
        assert_eq!(format!("{:?}", key()), "AesKey(***)");
        let c = WxBizMsgCrypt::new("tok-secret", KEY, CORP).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("tok-secret") && !dbg.contains(KEY), "{dbg}");
    }

    #[test]
    fn wrong_receive_id_signature_and_key_rejected() {
        let c = WxBizMsgCrypt::new(TOKEN, KEY, CORP).unwrap();
        assert_eq!(
            decrypt(&key(), ECHOSTR, "wx0000000000000000"),
            Err(CryptoError::ValidateReceiveId)
        );
        assert!(matches!(
            c.verify_url(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd4",
                "1409659589",
                "263014780",
                ECHOSTR
            ),
            Err(CryptoError::ValidateSignature { .. })
        ));
        // Signature over a different timestamp.
        assert!(c
            .verify_url(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659590",
                "263014780",
                ECHOSTR
            )
            .is_err());
        // Another key: padding (or length) breaks, never a wrong plaintext.
        let other = AesKey::from_encoding_aes_key(DT_KEY).unwrap();
        assert!(matches!(
            decrypt(&other, MSG_ENCRYPT, CORP),
            Err(CryptoError::Padding { .. }
                | CryptoError::Length { .. }
                | CryptoError::Utf8 { .. }
                | CryptoError::ValidateReceiveId)
        ));
    }

    #[test]
    fn malformed_ciphertexts_give_typed_errors() {
        let k = key();
        assert!(matches!(
            decrypt(&k, "", CORP),
            Err(CryptoError::DecryptAes { .. })
        ));
        assert!(matches!(
            decrypt(&k, "!!!", CORP),
            Err(CryptoError::DecodeBase64 { .. })
        ));
        assert!(matches!(
            decrypt(&k, &B64.encode([0u8; 17]), CORP),
            Err(CryptoError::DecryptAes { .. })
        ));
        // Valid AES, bad pad byte (0 and 33).
        for pad in [0u8, 33] {
            let mut plain = vec![pad; 64];
            plain[..16].copy_from_slice(b"0123456789abcdef");
            let ct = Aes256CbcEnc::new(&k.0.into(), &k.iv().into())
                .encrypt_padded_vec_mut::<NoPadding>(&plain);
            assert_eq!(
                decrypt(&k, &B64.encode(ct), CORP),
                Err(CryptoError::Padding { field: "Encrypt" })
            );
        }
        // Pad bytes that disagree.
        let mut plain = vec![3u8; 64];
        plain[62] = 2;
        let ct = Aes256CbcEnc::new(&k.0.into(), &k.iv().into())
            .encrypt_padded_vec_mut::<NoPadding>(&plain);
        assert!(matches!(
            decrypt(&k, &B64.encode(ct), CORP),
            Err(CryptoError::Padding { .. })
        ));
        // Length field larger than what follows.
        let mut plain = vec![0u8; 32];
        plain[16..20].copy_from_slice(&1000u32.to_be_bytes());
        plain[31] = 1;
        let ct = Aes256CbcEnc::new(&k.0.into(), &k.iv().into())
            .encrypt_padded_vec_mut::<NoPadding>(&plain);
        assert_eq!(
            decrypt(&k, &B64.encode(ct), CORP),
            Err(CryptoError::Length { field: "Encrypt" })
        );
        // Too short for the length field after unpadding (pad = 32 eats all but 0).
        let plain = vec![32u8; 32];
        let ct = Aes256CbcEnc::new(&k.0.into(), &k.iv().into())
            .encrypt_padded_vec_mut::<NoPadding>(&plain);
        assert!(matches!(
            decrypt(&k, &B64.encode(ct), CORP),
            Err(CryptoError::Length { .. })
        ));
        // Message bytes that are not UTF-8.
        let mut plain = Vec::new();
        plain.extend_from_slice(b"0123456789abcdef");
        plain.extend_from_slice(&2u32.to_be_bytes());
        plain.extend_from_slice(&[0xff, 0xfe]);
        plain.extend_from_slice(CORP.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.resize(plain.len() + pad, pad as u8);
        let ct = Aes256CbcEnc::new(&k.0.into(), &k.iv().into())
            .encrypt_padded_vec_mut::<NoPadding>(&plain);
        assert_eq!(
            decrypt(&k, &B64.encode(ct), CORP),
            Err(CryptoError::Utf8 { field: "Encrypt" })
        );
    }

    #[test]
    fn every_pad_value_occurs_for_lengths_0_to_300() {
        let k = key();
        let mut seen = [false; 33];
        for n in 0..=300usize {
            let msg = "a".repeat(n);
            let ct = encrypt(&k, &msg, CORP).unwrap();
            let raw = raw_plain(&k, &ct);
            assert_eq!(raw.len() % 32, 0);
            seen[*raw.last().unwrap() as usize] = true;
            assert_eq!(decrypt(&k, &ct, CORP).unwrap(), msg);
        }
        assert!(seen[1..].iter().all(|&s| s), "pad values seen: {seen:?}");
    }

    proptest! {
        #[test]
        fn round_trip_any_message(msg in "\\PC{0,300}", rid in "[a-zA-Z0-9_\\-]{0,40}") {
            let k = key();
            let ct = encrypt(&k, &msg, &rid).unwrap();
            prop_assert_eq!(decrypt(&k, &ct, &rid).unwrap(), msg.clone());
            let d = decrypt_raw(&k, &ct).unwrap();
            prop_assert_eq!(d.receive_id, rid);
        }

        #[test]
        fn round_trip_chinese(msg in "[\u{4e00}-\u{9fa5}，。！a-z0-9 ]{0,200}", rid in "\\PC{0,20}") {
            let c = WxBizMsgCrypt::new(TOKEN, &random_key().to_encoding_aes_key(), rid).unwrap();
            let xml = c.encrypt_reply(&msg, "1409659813", "nonce").unwrap();
            prop_assert_eq!(c.decrypt_reply(&xml).unwrap(), msg);
        }

        #[test]
        fn tampered_ciphertext_never_decrypts_to_the_original(msg in "\\PC{1,100}", pos in 0usize..1000, bit in 0u8..8) {
            let k = key();
            let ct = encrypt(&k, &msg, CORP).unwrap();
            let mut raw = B64.decode(&ct).unwrap();
            let i = pos % raw.len();
            raw[i] ^= 1 << bit;
            // CBC alone is malleable (a flip in the first block only garbles the
            // random prefix): the signature over the ciphertext is what rejects it.
            let c = WxBizMsgCrypt::new(TOKEN, KEY, CORP).unwrap();
            let sig = c.signature("1", "n", &ct);
            prop_assert!(c.verify_and_decrypt(&sig, "1", "n", &B64.encode(&raw)).is_err());
        }

        #[test]
        fn tampered_signature_rejected(sig in "[0-9a-f]{40}") {
            prop_assume!(sig != "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3");
            let c = WxBizMsgCrypt::new(TOKEN, KEY, CORP).unwrap();
            prop_assert!(c.verify_url(&sig, "1409659589", "263014780", ECHOSTR).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = key();
            let _ = decrypt(&k, &s, CORP);
            let _ = decrypt(&k, &B64.encode(&bytes), CORP);
            let _ = decrypt_raw(&k, &B64.encode(&bytes));
            let _ = AesKey::from_encoding_aes_key(&s);
            let c = WxBizMsgCrypt::new(TOKEN, KEY, CORP).unwrap();
            let _ = c.decrypt_reply(&s);
            let _ = c.decrypt_message("", "", "", &s);
        }

        #[test]
        fn aligned_random_ciphertexts_never_panic(blocks in 1usize..8, seed in proptest::collection::vec(any::<u8>(), 128)) {
            let ct = &seed[..blocks * 16];
            let _ = decrypt(&key(), &B64.encode(ct), CORP);
        }
    }
}
