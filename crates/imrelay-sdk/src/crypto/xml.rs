//! The WeCom / WeChat XML envelope and event XML.
//!
//! The parser is deliberately small: one `<xml>` root, elements, text and
//! CDATA. A `<!DOCTYPE>` (and so any custom entity, the XXE vector) is refused;
//! only the five predefined entities and character references are expanded.

use std::collections::BTreeMap;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{truncate, CryptoError};

/// Element nesting deeper than this is refused (event XML nests 3 levels).
const MAX_DEPTH: usize = 16;

/// The encrypted callback envelope (XML, or the JSON variant some WeCom
/// products send: `{"tousername","encrypt","agentid"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `ToUserName`: corpid (WeCom) or the account's original id `gh_...` (WeChat).
    pub to_user_name: Option<String>,
    /// `Encrypt`: the base64 ciphertext.
    pub encrypt: String,
    /// `AgentID` (WeCom apps only).
    pub agent_id: Option<String>,
}

/// Parse a callback POST body into its [`Envelope`].
///
/// ```
/// use imrelay_sdk::crypto::xml::parse_envelope;
/// let env = parse_envelope(b"<xml><ToUserName><![CDATA[wx58]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>").unwrap();
/// assert_eq!(env.encrypt, "abc=");
/// assert_eq!(env.agent_id.as_deref(), Some("218"));
/// let json = parse_envelope(br#"{"tousername":"wx58","encrypt":"abc=","agentid":218}"#).unwrap();
/// assert_eq!(json, env);
/// ```
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, CryptoError> {
    let text = body_str(body)?;
    if text.trim_start().starts_with('{') {
        return parse_envelope_json(text);
    }
    let mut map = parse_flat(text)?;
    Ok(Envelope {
        encrypt: map
            .remove("Encrypt")
            .ok_or(CryptoError::Missing("Encrypt"))?,
        to_user_name: map.remove("ToUserName"),
        agent_id: map.remove("AgentID"),
    })
}

fn parse_envelope_json(text: &str) -> Result<Envelope, CryptoError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| CryptoError::ParseBody(format!("the JSON envelope is not valid JSON: {e}")))?;
    let field = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| match v.get(*n)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    Ok(Envelope {
        encrypt: field(&["encrypt", "Encrypt"]).ok_or(CryptoError::Missing("encrypt"))?,
        to_user_name: field(&["tousername", "ToUserName"]),
        agent_id: field(&["agentid", "AgentID"]),
    })
}

/// The encrypted passive reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedReply {
    pub encrypt: String,
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
}

/// Build the encrypted reply XML:
/// `<xml><Encrypt><![CDATA[..]]></Encrypt><MsgSignature><![CDATA[..]]></MsgSignature><TimeStamp>ts</TimeStamp><Nonce><![CDATA[..]]></Nonce></xml>`.
///
/// ```
/// use imrelay_sdk::crypto::xml::build_reply;
/// assert_eq!(
///     build_reply("ZW5j", "5c45", "1409659813", "n1"),
///     "<xml><Encrypt><![CDATA[ZW5j]]></Encrypt><MsgSignature><![CDATA[5c45]]></MsgSignature><TimeStamp>1409659813</TimeStamp><Nonce><![CDATA[n1]]></Nonce></xml>"
/// );
/// ```
pub fn build_reply(encrypt: &str, msg_signature: &str, timestamp: &str, nonce: &str) -> String {
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{}</TimeStamp><Nonce>{}</Nonce></xml>",
        cdata(encrypt),
        cdata(msg_signature),
        escape(timestamp),
        cdata(nonce)
    )
}

/// Parse an encrypted reply XML (what [`build_reply`] makes).
pub fn parse_reply(body: &[u8]) -> Result<EncryptedReply, CryptoError> {
    let mut map = parse_flat(body_str(body)?)?;
    Ok(EncryptedReply {
        encrypt: map
            .remove("Encrypt")
            .ok_or(CryptoError::Missing("Encrypt"))?,
        msg_signature: map
            .remove("MsgSignature")
            .ok_or(CryptoError::Missing("MsgSignature"))?,
        timestamp: map
            .remove("TimeStamp")
            .ok_or(CryptoError::Missing("TimeStamp"))?,
        nonce: map.remove("Nonce").ok_or(CryptoError::Missing("Nonce"))?,
    })
}

/// Plaintext event XML as a flat map: `MsgType`, `Event`, `FromUserName`,
/// `CreateTime`, `Content`, ... Nested elements get dotted keys
/// (`ScanCodeInfo.ScanResult`); for a repeated element the first one wins.
///
/// ```
/// use imrelay_sdk::crypto::xml::parse_event;
/// let m = parse_event("<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event>\
///     <ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo><Content>a &amp; b</Content></xml>").unwrap();
/// assert_eq!(m["MsgType"], "event");
/// assert_eq!(m["ScanCodeInfo.ScanType"], "qrcode");
/// assert_eq!(m["Content"], "a & b");
/// ```
pub fn parse_event(xml: &str) -> Result<BTreeMap<String, String>, CryptoError> {
    parse_flat(xml)
}

fn body_str(body: &[u8]) -> Result<&str, CryptoError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| CryptoError::ParseBody("the body is not UTF-8".into()))?;
    // A UTF-8 BOM is tolerated; some proxies add one.
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// `<![CDATA[..]]>`, splitting any `]]>` inside so it cannot close the section.
fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

struct Open {
    name: String,
    has_child: bool,
    text: String,
}

fn xml_err(what: impl std::fmt::Display) -> CryptoError {
    CryptoError::ParseBody(format!("invalid XML: {}", truncate(&what.to_string(), 200)))
}

fn parse_flat(text: &str) -> Result<BTreeMap<String, String>, CryptoError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut map = BTreeMap::new();
    let mut root_done = false;
    loop {
        let ev = reader.read_event().map_err(xml_err)?;
        match ev {
            Event::Start(e) => {
                let name = element_name(e.name().as_ref())?;
                open(&mut stack, name, root_done)?;
            }
            Event::Empty(e) => {
                let name = element_name(e.name().as_ref())?;
                open(&mut stack, name, root_done)?;
                close(&mut stack, &mut map, &mut root_done);
            }
            Event::End(_) => close(&mut stack, &mut map, &mut root_done),
            Event::Text(t) => {
                let s = t.xml10_content().map_err(xml_err)?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(xml_err("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let s = c.xml10_content().map_err(xml_err)?;
                stack
                    .last_mut()
                    .ok_or_else(|| xml_err("CDATA outside the root element"))?
                    .text
                    .push_str(&s);
            }
            Event::GeneralRef(r) => {
                let top = stack
                    .last_mut()
                    .ok_or_else(|| xml_err("entity outside the root element"))?;
                if let Some(c) = r.resolve_char_ref().map_err(xml_err)? {
                    top.text.push(c);
                } else {
                    let name = r.decode().map_err(xml_err)?;
                    let v = resolve_predefined_entity(&name).ok_or_else(|| {
                        xml_err(format!(
                            "entity &{}; is not allowed (only &lt; &gt; &amp; &quot; &apos;)",
                            truncate(&name, 32)
                        ))
                    })?;
                    top.text.push_str(v);
                }
            }
            Event::DocType(_) => {
                return Err(xml_err("DOCTYPE/DTD is not allowed in callback XML"));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(xml_err("unclosed element"));
    }
    if !root_done {
        return Err(xml_err("no <xml> root element"));
    }
    Ok(map)
}

fn element_name(raw: &[u8]) -> Result<String, CryptoError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| xml_err("element name is not UTF-8"))
}

fn open(stack: &mut Vec<Open>, name: String, root_done: bool) -> Result<(), CryptoError> {
    match stack.last_mut() {
        None if root_done => return Err(xml_err("content after the root element")),
        None if name != "xml" => {
            return Err(xml_err(format!(
                "the root element is <{}>, expected <xml>",
                truncate(&name, 32)
            )))
        }
        None => {}
        Some(parent) => parent.has_child = true,
    }
    if stack.len() >= MAX_DEPTH {
        return Err(xml_err(format!("elements nested deeper than {MAX_DEPTH}")));
    }
    stack.push(Open {
        name,
        has_child: false,
        text: String::new(),
    });
    Ok(())
}

fn close(stack: &mut Vec<Open>, map: &mut BTreeMap<String, String>, root_done: &mut bool) {
    // quick-xml checks that end names match, so the top is the element closing.
    let Some(top) = stack.pop() else { return };
    if stack.is_empty() {
        *root_done = true;
        return;
    }
    if !top.has_child {
        let mut key = String::new();
        for o in stack.iter().skip(1) {
            key.push_str(&o.name);
            key.push('.');
        }
        key.push_str(&top.name);
        map.entry(key).or_insert(top.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wecom_plaintext_event_vector_as_map() {
        let xml = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";
        let m = parse_event(xml).unwrap();
        let expected: BTreeMap<String, String> = [
            ("AgentID", "218"),
            ("Content", "hello"),
            ("CreateTime", "1409659813"),
            ("FromUserName", "mycreate"),
            ("MsgId", "4561255354251345929"),
            ("MsgType", "text"),
            ("ToUserName", "wx5823bf96d3bd56c7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(m, expected);
    }

    #[test]
    fn nested_repeated_and_empty_elements() {
        let m = parse_event(
            "<?xml version=\"1.0\"?><!-- c --><xml><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item><item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo><Empty/><Mixed>x<![CDATA[<y>]]>&#20013;&lt;</Mixed><Chinese>你好</Chinese></xml>",
        )
        .unwrap();
        assert_eq!(m["SendPicsInfo.Count"], "2");
        assert_eq!(m["SendPicsInfo.PicList.item.PicMd5Sum"], "a");
        assert_eq!(m["Empty"], "");
        assert_eq!(m["Mixed"], "x<y>中<");
        assert_eq!(m["Chinese"], "你好");
        assert!(!m.contains_key("SendPicsInfo"));
    }

    #[test]
    fn rejects_dtd_entities_and_malformed_xml() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Encrypt>&xxe;</Encrypt></xml>"#;
        let e = parse_envelope(xxe.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("DTD"), "{e}");
        let e = parse_event("<xml><A>&xxe;</A></xml>").unwrap_err();
        assert!(e.to_string().contains("&xxe;"), "{e}");
        for bad in [
            "",
            "   ",
            "<xml>",
            "<xml><A></B></xml>",
            "<root><A>1</A></root>",
            "<xml/><xml/>",
            "text<xml/>",
            "<xml></xml>trailing",
            "<xml><A>&#0;</A></xml>",
        ] {
            assert!(parse_event(bad).is_err(), "{bad:?} should be refused");
        }
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(40), "</a>".repeat(40));
        assert!(parse_event(&deep).is_err());
        assert_eq!(
            parse_envelope(b"<xml><ToUserName>x</ToUserName></xml>"),
            Err(CryptoError::Missing("Encrypt"))
        );
        assert!(parse_envelope(&[0xff, 0xfe]).is_err());
        assert!(parse_envelope(b"{\"encrypt\":").is_err());
        assert_eq!(
            parse_envelope(b"{\"tousername\":\"x\"}"),
            Err(CryptoError::Missing("encrypt"))
        );
    }

    #[test]
    fn reply_round_trip_and_cdata_escape() {
        let xml = build_reply("ZW5j", "abc", "1409659813", "a]]>b");
        let r = parse_reply(xml.as_bytes()).unwrap();
        assert_eq!(
            r,
            EncryptedReply {
                encrypt: "ZW5j".into(),
                msg_signature: "abc".into(),
                timestamp: "1409659813".into(),
                nonce: "a]]>b".into(),
            }
        );
        assert_eq!(
            parse_reply(b"<xml><Encrypt>a</Encrypt></xml>"),
            Err(CryptoError::Missing("MsgSignature"))
        );
    }

    proptest! {
        #[test]
        fn reply_fields_round_trip(e in "\\PC{0,40}", s in "\\PC{0,40}", t in "\\PC{0,20}", n in "\\PC{0,20}") {
            // Text content is EOL-normalised by XML itself; \PC has no \r.
            let r = parse_reply(build_reply(&e, &s, &t, &n).as_bytes()).unwrap();
            prop_assert_eq!(r, EncryptedReply { encrypt: e, msg_signature: s, timestamp: t, nonce: n });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_envelope(&bytes);
            let _ = parse_reply(&bytes);
            let _ = parse_event(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn xmlish_text_never_panics(s in "[<>/!?\\[\\]&#;a-zA-Z0-9 =\"'CDAT-]{0,200}") {
            let _ = parse_event(&s);
            let _ = parse_event(&format!("<xml>{s}</xml>"));
            let _ = parse_envelope(format!("<xml><Encrypt>{s}</Encrypt></xml>").as_bytes());
        }
    }
}
