//! Helpers shared by the platforms' unit tests.

use crate::http::HttpResponse;
use crate::outcome::{Code, CodeInfo, Report};

/// An answer with `status` and `body`.
pub(crate) fn resp(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: Default::default(),
        body: body.as_bytes().to_vec(),
        oversize: None,
    }
}

/// Every code of `codes`, answered as `{"errcode":N,"errmsg":"x"}` with
/// HTTP 200, classifies as its table class, carries its code and hints its
/// action.
pub(crate) fn assert_table_classifies(codes: &[CodeInfo], classify: fn(&HttpResponse) -> Report) {
    for info in codes {
        let body = serde_json::json!({"errcode": info.code, "errmsg": "x"}).to_string();
        let r = classify(&resp(200, &body));
        assert_eq!(r.outcome, info.class.outcome(), "code {}", info.code);
        assert_eq!(r.code, Some(Code::Int(info.code)));
        assert!(
            r.hint.as_deref().unwrap().contains(info.action),
            "code {}",
            info.code
        );
    }
}
