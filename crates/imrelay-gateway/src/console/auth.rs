//! Who is logged in: argon2 password checks, server-side sessions in an
//! HttpOnly `SameSite=Strict` cookie, a CSRF token per session, and a small
//! limit on failed logins.
//!
//! Sessions live in the store (see `store::console`): every instance on one
//! PostgreSQL database knows every login, a logout on one ends it on all, and
//! a restart keeps them. The cookie's value is never stored, only its SHA-256.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap};
use imrelay_sdk::secret::Secret;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ConsoleSession, SessionKind, Store, StoreError};

/// The session cookie.
pub const SESSION_COOKIE: &str = "imrelay_session";
/// The double-submit cookie of the login form (no session exists yet).
pub const LOGIN_COOKIE: &str = "imrelay_login";
/// Failed logins allowed per user name per window.
const MAX_FAILURES: u32 = 5;
/// Failed logins allowed over all names per window (guessing many names).
const MAX_FAILURES_ALL: u32 = 50;
const FAILURE_WINDOW_MS: i64 = 5 * 60_000;

/// `n` random bytes from the OS-seeded CSPRNG, as hex.
pub fn random_token(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// An argon2id PHC string for `password` (default parameters: 19 MiB, 2
/// passes, 1 lane, OWASP's recommendation).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// A configured password hash this build cannot check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHash {
    #[error("is not a PHC string; make one with `imrelay user hash` ($argon2id$v=19$...)")]
    NotPhc,
    #[error("uses `{0}`; only argon2 (argon2id) hashes are accepted")]
    Algorithm(String),
}

/// Whether `phc` is an argon2 PHC string this build can check.
pub fn check_phc(phc: &str) -> Result<(), BadHash> {
    let h = PasswordHash::new(phc).map_err(|_| BadHash::NotPhc)?;
    if !h.algorithm.as_str().starts_with("argon2") {
        return Err(BadHash::Algorithm(h.algorithm.to_string()));
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

/// Who logs in.
#[derive(Clone, Debug)]
pub enum Who {
    /// A `[[console.users]]` name (its scope is read from the config in force).
    User(String),
    /// An API key, checked again against the keys in force on each request
    /// (a key removed by a reload ends its sessions). Only its SHA-256 is
    /// stored.
    Key(Secret),
}

/// One login, as read from the store for a request.
#[derive(Clone, Debug)]
pub struct Session {
    /// SHA-256 of the cookie's value: the row's key.
    pub digest: [u8; 32],
    pub stored: ConsoleSession,
}

impl Session {
    /// The token every form of this session must carry.
    pub fn csrf(&self) -> &str {
        &self.stored.csrf
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, token: &str) -> bool {
        let csrf = self.stored.csrf.as_bytes();
        token.len() == csrf.len() && bool::from(token.as_bytes().ct_eq(csrf))
    }
}

/// A session is marked used at most this often (each mark is a write).
const TOUCH_EVERY_MS: i64 = 60_000;

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// A new session in the store for `who` (shown as `name`); its cookie value
/// (256 random bits), which is never stored.
pub async fn open_session(
    store: &Arc<dyn Store>,
    who: &Who,
    name: &str,
    lifetime_ms: i64,
) -> Result<(String, Session), StoreError> {
    let id = random_token(32);
    let now = store.now_ms();
    let (kind, subject) = match who {
        Who::User(n) => (SessionKind::User, n.clone()),
        Who::Key(k) => (SessionKind::Key, hex::encode(digest(k.expose()))),
    };
    let stored = ConsoleSession {
        kind,
        subject,
        name: name.to_string(),
        csrf: random_token(32),
        created_at: now,
        expires_at: now.saturating_add(lifetime_ms),
        last_seen: now,
    };
    let d = digest(&id);
    store.open_console_session(d, stored.clone()).await?;
    Ok((id, Session { digest: d, stored }))
}

/// The live session of a cookie value (on any instance sharing the store).
pub async fn session(store: &Arc<dyn Store>, id: &str) -> Result<Option<Session>, StoreError> {
    let d = digest(id);
    let Some(stored) = store.console_session(d).await? else {
        return Ok(None);
    };
    if store.now_ms() - stored.last_seen >= TOUCH_EVERY_MS {
        store.touch_console_session(d).await?;
    }
    Ok(Some(Session { digest: d, stored }))
}

/// End the session of a cookie value, on every instance.
pub async fn close_session(store: &Arc<dyn Store>, id: &str) -> Result<bool, StoreError> {
    store.close_console_session(digest(id)).await
}

/// The key digest a key session stores, as bytes.
pub fn key_digest(subject: &str) -> Option<[u8; 32]> {
    hex::decode(subject).ok()?.try_into().ok()
}

/// Failed-login counts, per process (an instance counts the failures it
/// saw; the limit is per instance).
#[derive(Default)]
pub struct Logins {
    failures: Mutex<HashMap<String, (i64, u32)>>,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins")
            .field("limited", &self.failures.lock().len())
            .finish()
    }
}

impl Logins {
    pub fn new() -> Arc<Logins> {
        Arc::default()
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
    fn csrf_is_compared_whole_and_key_digests_read_back() {
        let csrf = "ab".repeat(32);
        let s = Session {
            digest: [0; 32],
            stored: ConsoleSession {
                kind: SessionKind::User,
                subject: "a".into(),
                name: "a".into(),
                csrf: csrf.clone(),
                created_at: 0,
                expires_at: 1,
                last_seen: 0,
            },
        };
        assert!(s.csrf_ok(&csrf));
        assert!(!s.csrf_ok("x"));
        assert!(!s.csrf_ok(&"0".repeat(64)));
        assert_eq!(key_digest(&csrf), Some([0xab; 32]));
        assert_eq!(key_digest("zz"), None);
        assert_eq!(key_digest("abab"), None, "not 32 bytes");
    }

    #[test]
    fn failed_logins_are_limited_per_name() {
        let s = Logins::default();
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
