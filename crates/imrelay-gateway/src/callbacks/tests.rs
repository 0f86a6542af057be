//! `CallbackApp::verify` on the platforms.md vectors and hand-built requests,
//! with a fixed clock (no server).

use super::*;
use crate::callbacks::config::CallbackConfig;

const WC_TOKEN: &str = "QDG6eK";
const WC_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const WC_CORP: &str = "wx5823bf96d3bd56c7";
const WC_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
const WC_ECHOSTR: &str =
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
const DT_ENCRYPT: &str = "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3";

fn app(toml_text: &str) -> CallbackApp {
    let cfg: CallbackConfig = toml::from_str(&format!(
        "{toml_text}\nforward = [{{ url = \"http://127.0.0.1:1/x\", secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }}]"
    ))
    .unwrap();
    let mut issues = Vec::new();
    crate::callbacks::config::validate(std::slice::from_ref(&cfg), &mut issues);
    assert!(issues.is_empty(), "{issues:?}");
    CallbackApp::from_config(&cfg).unwrap()
}

fn wecom() -> CallbackApp {
    app(&format!(
        "name = \"wc\"\nplatform = \"wecom\"\ntoken = \"{WC_TOKEN}\"\nencoding_aes_key = \"{WC_KEY}\"\nreceive_id = \"{WC_CORP}\""
    ))
}

fn req(method: Method, query: &[(&str, &str)], body: &str) -> CallbackRequest {
    CallbackRequest {
        method,
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: HeaderMap::new(),
        body: bytes::Bytes::from(body.to_owned()),
        card: false,
    }
}

fn wecom_post(sig: &str, ts: &str) -> CallbackRequest {
    req(
        Method::POST,
        &[("msg_signature", sig), ("timestamp", ts), ("nonce", "1372623149")],
        &format!("<xml><ToUserName><![CDATA[{WC_CORP}]]></ToUserName><Encrypt><![CDATA[{WC_ENCRYPT}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"),
    )
}

const WC_SIG: &str = "477715d11cdb4164915debcba66cb864d751f3e6";
const WC_NOW: i64 = 1_409_659_813_000;

#[test]
fn wecom_message_vector_is_an_event_keyed_by_msgid() {
    let a = wecom();
    let Verdict::Event { event, reply } =
        a.verify(&wecom_post(WC_SIG, "1409659813"), WC_NOW).unwrap()
    else {
        panic!("not an event")
    };
    assert_eq!(reply.body, "");
    assert_eq!(event.event_id, "msg:4561255354251345929");
    let doc = a.forward_document("0190-id", &event, WC_NOW);
    insta::assert_json_snapshot!(doc, @r#"
    {
      "id": "0190-id",
      "type": "message_received",
      "app": "wc",
      "platform": "wecom",
      "event_id": "msg:4561255354251345929",
      "event_type": "text",
      "received_at": "2014-09-02T12:10:13Z",
      "data": {
        "sender": "mycreate",
        "message_id": "4561255354251345929",
        "message_type": "text",
        "text": "hello"
      },
      "raw": {
        "AgentID": "218",
        "Content": "hello",
        "CreateTime": "1409659813",
        "FromUserName": "mycreate",
        "MsgId": "4561255354251345929",
        "MsgType": "text",
        "ToUserName": "wx5823bf96d3bd56c7"
      },
      "raw_xml": "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
    }
    "#);
}

#[test]
fn wecom_rejections_name_the_check_and_status() {
    let a = wecom();
    // Wrong signature.
    let r = a
        .verify(
            &wecom_post("0000000000000000000000000000000000000000", "1409659813"),
            WC_NOW,
        )
        .unwrap_err();
    assert_eq!((r.status, r.check), (StatusCode::UNAUTHORIZED, "signature"));
    // Outside the 5-minute window (checked before the signature).
    let r = a
        .verify(&wecom_post(WC_SIG, "1409659813"), WC_NOW + 301_000)
        .unwrap_err();
    assert_eq!((r.status, r.check), (StatusCode::UNAUTHORIZED, "timestamp"));
    // Tampered ciphertext: the signature no longer matches.
    let mut t = wecom_post(WC_SIG, "1409659813");
    t.body = bytes::Bytes::from(
        String::from_utf8(t.body.to_vec())
            .unwrap()
            .replace("RypE", "RypF"),
    );
    let r = a.verify(&t, WC_NOW).unwrap_err();
    assert_eq!((r.status, r.check), (StatusCode::UNAUTHORIZED, "signature"));
    // Not XML at all.
    let mut m = wecom_post(WC_SIG, "1409659813");
    m.body = bytes::Bytes::from_static(b"{not xml");
    let r = a.verify(&m, WC_NOW).unwrap_err();
    assert_eq!((r.status, r.check), (StatusCode::BAD_REQUEST, "malformed"));
    // Missing query parameter.
    let r = a
        .verify(
            &req(Method::POST, &[("timestamp", "1409659813")], ""),
            WC_NOW,
        )
        .unwrap_err();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.detail.contains("msg_signature"), "{}", r.detail);
    // Same key, another corp id: the receive id check refuses it.
    let other = app(&format!(
        "name = \"wc\"\nplatform = \"wecom\"\ntoken = \"{WC_TOKEN}\"\nencoding_aes_key = \"{WC_KEY}\"\nreceive_id = \"wwother\""
    ));
    let r = other
        .verify(&wecom_post(WC_SIG, "1409659813"), WC_NOW)
        .unwrap_err();
    assert_eq!((r.status, r.check), (StatusCode::FORBIDDEN, "receive_id"));
}

#[test]
fn wecom_url_verification_vector_answers_the_echostr() {
    let v = wecom()
        .verify(
            &req(
                Method::GET,
                &[
                    ("msg_signature", "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"),
                    ("timestamp", "1409659589"),
                    ("nonce", "263014780"),
                    ("echostr", WC_ECHOSTR),
                ],
                "",
            ),
            1_409_659_589_000,
        )
        .unwrap();
    assert_eq!(
        v,
        Verdict::Answer {
            what: "echostr",
            reply: Reply::text("1616140317555161061")
        }
    );
}

#[test]
fn dingtalk_check_url_vector_answers_encrypted_success() {
    let a = app("name = \"dt\"\nplatform = \"dingtalk\"\ntoken = \"mryue\"\nencoding_aes_key = \"Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7\"\nreceive_id = \"ding6ccabc44d2c8d38b\"");
    let r = req(
        Method::POST,
        &[
            ("signature", "03044561471240d4a14bb09372dfcfd4fd0e40cb"),
            ("timeStamp", "1608001896814"),
            ("nonce", "WL4PK6yA"),
        ],
        &format!(r#"{{"encrypt":"{DT_ENCRYPT}"}}"#),
    );
    let Verdict::Answer { what, reply } = a.verify(&r, 1_608_001_896_814).unwrap() else {
        panic!("check_url is a handshake")
    };
    assert_eq!(what, "check_url");
    let map: dingtalk::EncryptedMap = serde_json::from_str(&reply.body).unwrap();
    let c = WxBizMsgCrypt::new(
        "mryue",
        "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
        "ding6ccabc44d2c8d38b",
    )
    .unwrap();
    assert_eq!(dingtalk::decrypt_map(&c, &map).unwrap(), "success");
    assert_eq!(map.time_stamp, "1608001896814");
    // DingTalk timestamps are milliseconds: a seconds value is 1970, refused.
    let mut s = r.clone();
    s.query[1].1 = "1608001896".into();
    assert_eq!(
        a.verify(&s, 1_608_001_896_814).unwrap_err().check,
        "timestamp"
    );
}

fn feishu_card_req(body: &str, ts: &str, token: &str) -> CallbackRequest {
    let mut r = req(Method::POST, &[], body);
    r.card = true;
    let sig = sign::feishu_card(ts, "nonce1", token, body.as_bytes());
    r.headers
        .insert(feishu::HEADER_TIMESTAMP, ts.parse().unwrap());
    r.headers
        .insert(feishu::HEADER_NONCE, "nonce1".parse().unwrap());
    r.headers
        .insert(feishu::HEADER_SIGNATURE, sig.parse().unwrap());
    r
}

#[test]
fn feishu_legacy_card_action_needs_the_sha1_signature() {
    let a = app("name = \"fs\"\nplatform = \"feishu\"\nverification_token = \"vtok\"");
    let body = r#"{"open_id":"ou_1","open_message_id":"om_1","open_chat_id":"oc_1","token":"c-123","action":{"tag":"button","value":{"k":"v"}}}"#;
    let now = 1_700_000_000_000;
    let Verdict::Event { event, reply } = a
        .verify(&feishu_card_req(body, "1700000000", "vtok"), now)
        .unwrap()
    else {
        panic!("not an event")
    };
    assert_eq!(reply.body, "{}");
    assert_eq!(event.event_id, "card:c-123");
    assert_eq!(event.normalized.kind, "card_action");
    assert_eq!(event.normalized.data["value"], json!({"k": "v"}));
    let r = a
        .verify(&feishu_card_req(body, "1700000000", "other"), now)
        .unwrap_err();
    assert_eq!((r.status, r.check), (StatusCode::UNAUTHORIZED, "signature"));
    let mut unsigned = feishu_card_req(body, "1700000000", "vtok");
    unsigned.headers.remove(feishu::HEADER_SIGNATURE);
    assert_eq!(a.verify(&unsigned, now).unwrap_err().check, "signature");
    let r = a
        .verify(&feishu_card_req(body, "1699990000", "vtok"), now)
        .unwrap_err();
    assert_eq!(r.check, "timestamp");
}

#[test]
fn feishu_plaintext_events_check_the_token_in_both_schemas() {
    let a = app("name = \"fs\"\nplatform = \"feishu\"\nverification_token = \"vtok\"");
    let v2 = r#"{"schema":"2.0","header":{"event_id":"e1","event_type":"im.chat.member.bot.added_v1","token":"vtok"},"event":{"chat_id":"oc_9","operator_id":{"open_id":"ou_op"}}}"#;
    let Verdict::Event { event, .. } = a.verify(&req(Method::POST, &[], v2), 0).unwrap() else {
        panic!()
    };
    assert_eq!(event.normalized.kind, "bot_added");
    assert_eq!(
        event.normalized.data,
        json!({"chat_id": "oc_9", "operator": "ou_op"})
    );
    let v1 = r#"{"uuid":"u1","token":"vtok","ts":"1.0","type":"event_callback","event":{"type":"message","open_id":"ou_2","open_chat_id":"oc_2","msg_type":"text","text_without_at_bot":"hi"}}"#;
    let Verdict::Event { event, .. } = a.verify(&req(Method::POST, &[], v1), 0).unwrap() else {
        panic!()
    };
    assert_eq!(event.event_id, "u1");
    assert_eq!(event.normalized.kind, "message_received");
    assert_eq!(event.normalized.data["text"], "hi");
    let bad = v1.replace("\"vtok\"", "\"nope\"");
    let r = a.verify(&req(Method::POST, &[], &bad), 0).unwrap_err();
    assert_eq!(
        (r.status, r.check),
        (StatusCode::FORBIDDEN, "verification_token")
    );
    let r = a
        .verify(&req(Method::POST, &[], "{\"type\":"), 0)
        .unwrap_err();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[test]
fn wechat_events_normalize() {
    let f = |xml: &str| normalize::wx(&xml::parse_event(xml).unwrap());
    let n = f("<xml><FromUserName>o1</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>");
    assert_eq!((n.kind, n.data), ("user_followed", json!({"user": "o1"})));
    let n = f("<xml><FromUserName>o1</FromUserName><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>200163836</MsgID><Status>success</Status></xml>");
    assert_eq!(n.kind, "template_send_result");
    assert_eq!(
        n.data,
        json!({"user": "o1", "message_id": "200163836", "status": "success"})
    );
    let n = f("<xml><MsgType>event</MsgType><Event>LOCATION</Event></xml>");
    assert_eq!((n.kind, n.event_type.as_deref()), ("raw", Some("LOCATION")));
}

fn parse(callbacks: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
    let text = format!(
        "[[api_keys]]\nname = \"a\"\nkey = \"0123456789abcdef0123\"\nchannels = [\"*\"]\n{callbacks}"
    );
    crate::config::Config::parse(&text, std::path::Path::new("."))
}

#[test]
fn config_errors_name_the_key() {
    let e = parse(
        "[[callbacks]]\nname = \"fs\"\nplatform = \"feishu\"\ntoken = \"t\"\nforward = [{ url = \"https://x.example/e\", secret = \"nope\" }]\n\
         [[callbacks]]\nname = \"fs\"\nplatform = \"wecom\"\ntoken = \"t\"\nencoding_aes_key = \"short\"\nforward = []",
    )
    .unwrap_err();
    let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "callbacks[0].forward[0].secret",
            "callbacks[0].verification_token",
            "callbacks[0].token",
            "callbacks[1].name",
            // No forward target is allowed since c86a57c (clicks are acted on,
            // nothing forwarded), so `forward = []` is no problem.
            "callbacks[1].receive_id",
            "callbacks[1].encoding_aes_key",
        ],
        "{e}"
    );
    assert!(e.to_string().contains("whsec_"), "{e}");
}

#[test]
fn forward_channels_are_built_with_the_ssrf_guard() {
    let ok = "[[callbacks]]\nname = \"wc\"\nplatform = \"wecom\"\ntoken = \"t\"\nencoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\"\nreceive_id = \"ww1\"\n\
              forward = [{ url = \"https://hooks.example.com/e\", secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }]";
    let cfg = parse(ok).unwrap();
    let ctx = crate::config::BuildContext::new(None);
    let (set, callbacks) = crate::runtime::build_channels_and_callbacks(&cfg, &ctx).unwrap();
    let ch = set.get("callback:wc").expect("forward channel");
    assert_eq!(ch.destinations.len(), 1);
    assert_eq!(callbacks.names().collect::<Vec<_>>(), ["wc"]);
    // A loopback forward target needs allow_private, named at its key.
    let cfg = parse(&ok.replace("https://hooks.example.com/e", "http://127.0.0.1:9/e")).unwrap();
    let e = crate::runtime::build_channels(&cfg, &ctx).unwrap_err();
    assert_eq!(e.issues[0].key, "callbacks[0].forward[0].url", "{e}");
}

#[test]
fn docs_config_example_is_valid() {
    let doc = include_str!("../../../../docs/callbacks.md");
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let mut text = block
        .replace(
            "secret_file = \"/run/secrets/fwd\"",
            "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
        )
        .replace(
            "${FORWARD_SECRET}",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
    for (var, value) in [
        ("FEISHU_ENCRYPT_KEY", "k"),
        ("FEISHU_VERIFICATION_TOKEN", "v"),
        ("DT_CB_TOKEN", "t"),
        ("DT_CB_AES_KEY", WC_KEY),
        ("WECOM_CB_TOKEN", "t"),
        ("WECOM_CB_AES_KEY", WC_KEY),
        ("WECHAT_TOKEN", "t"),
        ("WECHAT_AES_KEY", WC_KEY),
    ] {
        text = text.replace(&format!("${{{var}}}"), value);
    }
    assert!(!text.contains("${"), "{text}");
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let ctx = crate::config::BuildContext::new(None);
    let (_, callbacks) = crate::runtime::build_channels_and_callbacks(&cfg, &ctx).unwrap();
    assert_eq!(
        callbacks.names().collect::<Vec<_>>(),
        ["dingtalk-hr", "feishu-main", "wechat-oa", "wecom-ops"]
    );
}

fn wechat_plain() -> CallbackApp {
    app(&format!(
        "name = \"wxp\"\nplatform = \"wechat\"\ntoken = \"{WC_TOKEN}\""
    ))
}

fn wechat_plain_post(ts: &str, nonce: &str, msg_id: u64) -> CallbackRequest {
    let sig = sign::sha1_sorted(&[WC_TOKEN, ts, nonce]);
    req(
        Method::POST,
        &[("signature", &sig), ("timestamp", ts), ("nonce", nonce)],
        &format!("<xml><FromUserName><![CDATA[o_fan]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>{msg_id}</MsgId></xml>"),
    )
}

#[test]
fn a_used_timestamp_and_nonce_is_a_replay_whatever_the_body() {
    let a = wechat_plain();
    let now = 1_700_000_000_000;
    let (v, claim) = a
        .admit(&wechat_plain_post("1700000000", "111", 1), now)
        .unwrap();
    assert!(matches!(v, Verdict::Event { .. }));
    claim.keep();
    // A forged body under the captured signature.
    let r = a
        .admit(&wechat_plain_post("1700000000", "111", 2), now + 1_000)
        .unwrap_err();
    assert_eq!((r.status, r.check), (StatusCode::UNAUTHORIZED, "replay"));
    // Other nonces are other requests.
    a.admit(&wechat_plain_post("1700000000", "222", 2), now)
        .unwrap()
        .1
        .keep();
    // A request that was not handled (claim dropped) may come again.
    drop(
        a.admit(&wechat_plain_post("1700000000", "333", 3), now)
            .unwrap(),
    );
    assert!(a
        .admit(&wechat_plain_post("1700000000", "333", 3), now)
        .is_ok());
    // Handshakes record nothing.
    let sig = sign::sha1_sorted(&[WC_TOKEN, "1700000000", "444"]);
    let get = req(
        Method::GET,
        &[
            ("signature", &sig),
            ("timestamp", "1700000000"),
            ("nonce", "444"),
            ("echostr", "e"),
        ],
        "",
    );
    for _ in 0..2 {
        let (v, claim) = a.admit(&get, now).unwrap();
        assert!(matches!(v, Verdict::Answer { .. }));
        claim.keep();
    }
    // DingTalk: millisecond timestamps, the same rule.
    let dt = app(&format!(
        "name = \"dt\"\nplatform = \"dingtalk\"\ntoken = \"{WC_TOKEN}\"\nencoding_aes_key = \"{WC_KEY}\"\nreceive_id = \"x\""
    ));
    assert_eq!(
        dt.signed_pair(&req(
            Method::POST,
            &[
                ("msg_signature", "s"),
                ("timestamp", "1700000000123"),
                ("nonce", "abc")
            ],
            ""
        )),
        Some(("1700000000123".into(), "abc".into(), 1_700_000_000_123))
    );
}

#[test]
fn plaintext_callbacks_are_warned_about_by_key() {
    let cfg = parse(&format!(
        r#"
[[callbacks]]
name = "wxp"
platform = "wechat"
token = "t"
forward = [{{ url = "https://example.com/x", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }}]

[[callbacks]]
name = "fs"
platform = "feishu"
verification_token = "v"
forward = [{{ url = "https://example.com/x", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }}]

[[callbacks]]
name = "wx"
platform = "wechat"
token = "t"
encoding_aes_key = "{WC_KEY}"
receive_id = "wx1"
forward = [{{ url = "https://example.com/x", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }}]
"#
    ))
    .unwrap();
    let w = crate::callbacks::config::warnings(&cfg.callbacks);
    let keys: Vec<&str> = w.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        ["callbacks[0].encoding_aes_key", "callbacks[1].encrypt_key"]
    );
    assert!(w[0].message.contains("plaintext mode"), "{:?}", w[0]);
}

#[test]
fn config_check_lists_the_plaintext_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(
        &path,
        "[[api_keys]]\nname = \"a\"\nkey = \"0123456789abcdef0123\"\nchannels = [\"*\"]\n\n[[callbacks]]\nname = \"wxp\"\nplatform = \"wechat\"\ntoken = \"t\"\nforward = [{ url = \"https://example.com/x\", secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }]\n",
    )
    .unwrap();
    let summary = crate::runtime::check_file(&path).unwrap();
    assert_eq!(summary.warnings.len(), 1, "{summary:?}");
    let text = summary.to_string();
    assert!(
        text.contains("warning: `callbacks[0].encoding_aes_key` is not set")
            && text.contains("plaintext mode"),
        "{text}"
    );
}
