//! The fuzz target bodies, shared by the cargo-fuzz binaries (fuzz_targets/)
//! and the stable corpus test (crates/imrelay-sdk/tests/fuzz_corpus.rs).
//!
//! Each body feeds untrusted bytes to every parser and decryptor it covers (the
//! only failure there is a panic) and checks invariants that must hold for any
//! input: encrypt-then-decrypt is the identity, a built reply parses back.

#![allow(dead_code)] // each fuzz binary uses one function

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use imrelay_sdk::crypto::{dingtalk, feishu, wxbiz, xml};

const WX_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const WX_TOKEN: &str = "QDG6eK";
const WX_CORP: &str = "wx5823bf96d3bd56c7";

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// WeChat-family decrypt: the ciphertext as text, the bytes as a ciphertext
/// (so AES, the padding and the length field see arbitrary plaintext), the key
/// parser, and the encrypt/decrypt round trip.
pub fn wxbiz_decrypt(data: &[u8]) {
    let key = wxbiz::AesKey::from_encoding_aes_key(WX_KEY).expect("vector key");
    let s = text(data);
    let _ = wxbiz::decrypt(&key, &s, WX_CORP);
    let _ = wxbiz::decrypt_raw(&key, &B64.encode(data));
    let _ = wxbiz::AesKey::from_encoding_aes_key(&s);
    let c = wxbiz::WxBizMsgCrypt::new(WX_TOKEN, WX_KEY, WX_CORP).expect("vector key");
    let _ = c.verify_url(&s, "1409659589", "263014780", &s);
    // Round trip: message and receive id both from the input.
    let (msg, rid) = match s.find('\u{0}') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (&s[..], WX_CORP),
    };
    let ct = wxbiz::encrypt(&key, msg, rid).expect("encrypt");
    let d = wxbiz::decrypt_raw(&key, &ct).expect("own ciphertext decrypts");
    assert_eq!(d.message, msg);
    assert_eq!(d.receive_id, rid);
}

/// Feishu decrypt: text, bytes as IV ‖ ciphertext, and the round trip.
pub fn feishu_decrypt(data: &[u8]) {
    let c = feishu::FeishuCipher::new("test key").expect("key");
    let s = text(data);
    let _ = c.decrypt(&s);
    let _ = c.decrypt(&B64.encode(data));
    assert_eq!(c.decrypt(&c.encrypt(&s)).expect("own ciphertext"), s);
    if let Ok(c2) = feishu::FeishuCipher::new(&s) {
        assert_eq!(c2.decrypt(&c2.encrypt("x")).expect("own ciphertext"), "x");
    }
}

/// WeCom/WeChat XML (envelope, reply, event map), the DingTalk JSON body and
/// query, and the reply builder's round trip.
pub fn callback_xml(data: &[u8]) {
    let _ = xml::parse_envelope(data);
    let _ = xml::parse_reply(data);
    let s = text(data);
    let _ = xml::parse_event(&s);
    let _ = dingtalk::parse_body(data);
    if let Ok(q) = dingtalk::CallbackQuery::from_query(&s) {
        let c = wxbiz::WxBizMsgCrypt::new(WX_TOKEN, WX_KEY, WX_CORP).expect("vector key");
        let _ = dingtalk::decrypt_callback(&c, &q, data);
    }
    // XML normalises CR and CRLF to LF, so compare on LF-only fields.
    let clean = s.replace('\r', "");
    let parts: Vec<&str> = clean.splitn(4, '\u{0}').collect();
    if let [e, sig, ts, n] = parts[..] {
        let r = xml::parse_reply(xml::build_reply(e, sig, ts, n).as_bytes());
        // Characters XML 1.0 cannot carry (most C0 controls) may be refused;
        // anything accepted must come back unchanged.
        if let Ok(r) = r {
            assert_eq!((r.encrypt.as_str(), r.msg_signature.as_str()), (e, sig));
            assert_eq!((r.timestamp.as_str(), r.nonce.as_str()), (ts, n));
        }
    }
}

/// Feishu bodies (encrypted or not) and envelopes, and the signature checks.
pub fn feishu_envelope(data: &[u8]) {
    let c = feishu::FeishuCipher::new("test key").expect("key");
    if let Ok(plain) = feishu::body_plaintext(Some(&c), data) {
        if let Ok(env) = feishu::parse_envelope(&plain) {
            let _ = env.verify_token("t");
            let _ = env.challenge_response();
        }
    }
    let s = text(data);
    let _ = feishu::parse_envelope(&s);
    let _ = feishu::verify_event_signature(&s, &s, "test key", data, &s);
    let _ = feishu::verify_card_signature(&s, &s, "token", data, &s);
    // An encrypted copy of the input must decrypt back to it.
    let body = serde_json::json!({ "encrypt": c.encrypt(&s) }).to_string();
    assert_eq!(
        feishu::body_plaintext(Some(&c), body.as_bytes()).expect("own body"),
        s
    );
}
