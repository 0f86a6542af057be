//! TC3-HMAC-SHA256, Tencent Cloud's API 3.0 signature (签名方法 v3):
//!
//! ```text
//! CanonicalRequest = POST \n / \n (empty query) \n
//!                    content-type:{ct}\nhost:{host}\n \n content-type;host \n hex(sha256(body))
//! StringToSign     = TC3-HMAC-SHA256 \n {timestamp} \n {date}/{service}/tc3_request \n hex(sha256(CanonicalRequest))
//! SecretSigning    = HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request")
//! Signature        = hex(HMAC(SecretSigning, StringToSign))
//! Authorization    = TC3-HMAC-SHA256 Credential={SecretId}/{date}/{service}/tc3_request, SignedHeaders=content-type;host, Signature={Signature}
//! ```
//!
//! `date` is the UTC date of the timestamp. Checked against the worked
//! example Tencent Cloud publishes (see the tests).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The headers signed, in order.
pub const SIGNED_HEADERS: &str = "content-type;host";
/// The content type of every request.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The canonical request of a POST to `/` with `content_type`, `host` and `payload`.
pub fn canonical_request(content_type: &str, host: &str, payload: &[u8]) -> String {
    format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\n{SIGNED_HEADERS}\n{}",
        content_type.trim().to_ascii_lowercase(),
        host.trim().to_ascii_lowercase(),
        sha256_hex(payload)
    )
}

/// `{date}/{service}/tc3_request`.
pub fn credential_scope(timestamp: i64, service: &str) -> String {
    format!("{}/{service}/tc3_request", utc_date(timestamp))
}

/// The string to sign.
pub fn string_to_sign(timestamp: i64, service: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{}\n{}",
        credential_scope(timestamp, service),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The hex signature of `string_to_sign`.
pub fn signature(secret_key: &str, timestamp: i64, service: &str, string_to_sign: &str) -> String {
    let date = utc_date(timestamp);
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    let k_signing = hmac(&k_service, b"tc3_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// The `Authorization` header of a JSON POST of `payload` to `host`.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    host: &str,
    timestamp: i64,
    payload: &[u8],
) -> String {
    let cr = canonical_request(CONTENT_TYPE, host, payload);
    let sts = string_to_sign(timestamp, service, &cr);
    format!(
        "{ALGORITHM} Credential={secret_id}/{}, SignedHeaders={SIGNED_HEADERS}, Signature={}",
        credential_scope(timestamp, service),
        signature(secret_key, timestamp, service, &sts)
    )
}

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: String,
    pub signature: String,
}

/// Parse `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=..., Signature=...`.
pub fn parse_authorization(header: &str) -> Option<ParsedAuthorization> {
    let rest = header.trim().strip_prefix(ALGORITHM)?.trim_start();
    let mut cred = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => {}
        }
    }
    let mut c = cred?.split('/');
    let (id, date, service, term) = (c.next()?, c.next()?, c.next()?, c.next()?);
    if term != "tc3_request" || c.next().is_some() {
        return None;
    }
    Some(ParsedAuthorization {
        secret_id: id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers: signed?.to_string(),
        signature: sig?.to_string(),
    })
}

/// `YYYY-MM-DD`, the UTC date of epoch seconds `t` (Howard Hinnant's
/// civil-from-days algorithm, public domain).
pub fn utc_date(t: i64) -> String {
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of Tencent Cloud's "签名方法 v3" document
    // (https://www.tencentcloud.com/zh/document/product/1021/34193, the same
    // example in every product's copy, e.g.
    // https://cloud.tencent.com/document/api/213/30654): CVM DescribeInstances,
    // SecretId AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE, SecretKey
    // Gu5t9xGARNpq86cd98joQYCN3EXAMPLE, timestamp 1551113065, with its
    // published payload hash, canonical request, string to sign and signature.
    #[test]
    fn describe_instances_document_vector() {
        let payload = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let cr = canonical_request(CONTENT_TYPE, "cvm.tencentcloudapi.com", payload);
        assert_eq!(
            cr,
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        let sts = string_to_sign(1551113065, "cvm", &cr);
        assert_eq!(
            sts,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", 1551113065, "cvm", &sts),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        let auth = authorization(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "cvm",
            "cvm.tencentcloudapi.com",
            1551113065,
            payload,
        );
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        let parsed = parse_authorization(&auth).unwrap();
        assert_eq!(parsed.secret_id, "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE");
        assert_eq!(
            (parsed.date.as_str(), parsed.service.as_str()),
            ("2019-02-25", "cvm")
        );
        assert_eq!(parse_authorization("Bearer x"), None);
        // The date is UTC: 1551113065 is already the 26th in UTC+8.
        assert_eq!(utc_date(1551113065), "2019-02-25");
        assert_eq!(utc_date(0), "1970-01-01");
    }
}
