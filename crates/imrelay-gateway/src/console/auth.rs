//! Who is logged in: argon2 password checks, server-side sessions in an
//! HttpOnly `SameSite=Strict` cookie, a CSRF token per session, and a small
//! limit on failed logins.
//!
//! Sessions live in this process's memory: a restart logs everyone out, and
//! several instances behind one address each need the user to log in to them
//! (pin sessions to an instance at the load balancer) until a shared store
//! holds them.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap};
use imrelay_sdk::secret::Secret;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie.
pub const SESSION_COOKIE: &str = "imrelay_session";
/// The double-submit cookie of the login form (no session exists yet).
pub const LOGIN_COOKIE: &str = "imrelay_login";
/// Failed logins allowed per user name per window.
const MAX_FAILURES: u32 = 5;
/// Failed logins allowed over all names per window (guessing many names).
const MAX_FAILURES_ALL: u32 = 50;
const FAILURE_WINDOW_MS: i64 = 5 * 60_000;
/// Sessions kept at once; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

/// `n` random bytes from the OS-seeded CSPRNG, as hex.
pub fn random_token(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// An argon2id PHC string for `password` (default parameters: 19 MiB, 2
/// passes, 1 lane, OWASP's recommendation).
pub fn hash_password(password: &str) -> Result<String, String> {
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `phc` is an argon2 PHC string this build can check.
pub fn check_phc(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|_| {
        "is not a PHC string; make one with `imrelay user hash` ($argon2id$v=19$...)".to_string()
    })?;
    if !h.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "uses `{}`; only argon2 (argon2id) hashes are accepted",
            h.algorithm
        ));
    }
    Ok(())
}

/// Whether `password` matches the PHC string (argon2 compares in constant time).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Whose a session is.
#[derive(Clone, Debug)]
pub enum Who {
    /// A `[[console.users]]` name (its scope is read from the config in force).
    User(String),
    /// An API key, checked again against the keys in force on each request
    /// (a key removed by a reload ends its sessions).
    Key(Secret),
}

/// One login.
#[derive(Clone, Debug)]
pub struct Session {
    pub who: Who,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub expires_at: i64,
}

impl Session {
    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, token: &str) -> bool {
        token.len() == self.csrf.len() && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The sessions and the failed-login counts.
#[derive(Default)]
pub struct Sessions {
    /// By SHA-256 of the cookie's value, so lookups reveal nothing by timing.
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<String, (i64, u32)>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.by_digest.lock().len())
            .finish()
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new() -> Arc<Sessions> {
        Arc::default()
    }

    /// A new session; its cookie value (256 random bits).
    pub fn open(&self, who: Who, now: i64, lifetime_ms: i64) -> (String, Session) {
        let id = random_token(32);
        let session = Session {
            who,
            csrf: random_token(32),
            expires_at: now.saturating_add(lifetime_ms),
        };
        let mut map = self.by_digest.lock();
        map.retain(|_, s| s.expires_at > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(digest(&id), session.clone());
        (id, session)
    }

    /// The live session of a cookie value.
    pub fn get(&self, id: &str, now: i64) -> Option<Session> {
        let mut map = self.by_digest.lock();
        let d = digest(id);
        match map.get(&d) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                map.remove(&d);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.by_digest.lock().remove(&digest(id));
    }

    /// Whether a login as `name` may be tried now.
    pub fn may_try(&self, name: &str, now: i64) -> bool {
        let f = self.failures.lock();
        let count = |k: &str| match f.get(k) {
            Some((start, n)) if now - start < FAILURE_WINDOW_MS => *n,
            _ => 0,
        };
        count(name) < MAX_FAILURES && count("") < MAX_FAILURES_ALL
    }

    /// Count a failed login as `name`.
    pub fn failed(&self, name: &str, now: i64) {
        let mut f = self.failures.lock();
        f.retain(|_, (start, _)| now - *start < FAILURE_WINDOW_MS);
        if f.len() > 10_000 {
            f.clear();
        }
        for k in [name, ""] {
            let e = f.entry(k.to_string()).or_insert((now, 0));
            e.1 += 1;
        }
    }

    /// Forget `name`'s failures after a good login.
    pub fn succeeded(&self, name: &str) {
        self.failures.lock().remove(name);
    }
}

/// The value of cookie `name`.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Cookies are `Secure` unless the console is reached over plain HTTP on the
/// loopback interface (the quickstart), where a browser would drop them.
pub fn secure(headers: &HeaderMap) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if forwarded_https {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    !matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// A `Set-Cookie` value for the console's path.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_s: i64,
    secure: bool,
    http_only: bool,
) -> String {
    format!(
        "{name}={value}; Path=/ui; Max-Age={max_age_s}; SameSite=Strict{}{}",
        if http_only { "; HttpOnly" } else { "" },
        if secure { "; Secure" } else { "" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b, "a random salt each time");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert!(check_phc(&a).is_ok());
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("correct horsE", &a));
        assert!(!verify_password("x", "not a hash"));
        assert!(check_phc("$2b$12$abcdefghijklmnopqrstuv").is_err());
    }

    // The reference implementation's published example (Argon2i, salt
    // "somesalt", t=2, 64 MiB, p=4, 24-byte output):
    // https://github.com/P-H-C/phc-winner-argon2/blob/master/README.md
    #[test]
    fn reference_vector_verifies() {
        let phc = "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(check_phc(phc).is_ok());
        assert!(verify_password("password", phc));
        assert!(!verify_password("passwore", phc));
    }

    #[test]
    fn sessions_expire_close_and_check_csrf() {
        let s = Sessions::default();
        let (id, sess) = s.open(Who::User("a".into()), 1_000, 500);
        assert_eq!(id.len(), 64);
        assert!(s.get(&id, 1_499).is_some());
        assert!(sess.csrf_ok(&sess.csrf));
        assert!(!sess.csrf_ok("x"));
        assert!(!sess.csrf_ok(&"0".repeat(64)));
        assert!(s.get(&id, 1_500).is_none(), "expired");
        let (id2, _) = s.open(Who::User("a".into()), 1_000, 500);
        s.close(&id2);
        assert!(s.get(&id2, 1_001).is_none());
        assert!(s.get("nope", 1_001).is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_name() {
        let s = Sessions::default();
        for _ in 0..MAX_FAILURES {
            assert!(s.may_try("bob", 0));
            s.failed("bob", 0);
        }
        assert!(!s.may_try("bob", 1));
        assert!(s.may_try("alice", 1), "another name is not locked");
        assert!(s.may_try("bob", FAILURE_WINDOW_MS), "the window passes");
    }

    #[test]
    fn cookies_are_secure_except_on_loopback_http() {
        let h = |host: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, host.parse().unwrap());
            m
        };
        assert!(!secure(&h("127.0.0.1:8080")));
        assert!(!secure(&h("localhost")));
        assert!(secure(&h("imrelay.example.com")));
        let mut m = h("127.0.0.1:8080");
        m.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(secure(&m));
        let c = set_cookie(SESSION_COOKIE, "v", 60, true, true);
        assert!(c.contains("HttpOnly") && c.contains("Secure") && c.contains("SameSite=Strict"));
        let mut m = HeaderMap::new();
        m.insert(
            header::COOKIE,
            "a=1; imrelay_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&m, SESSION_COOKIE), Some("abc"));
    }
}
