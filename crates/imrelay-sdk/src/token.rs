//! Access-token cache: one entry per credential, refreshed before expiry,
//! single-flight (a thousand concurrent senders cause one fetch), and
//! invalidated when the platform rejects a token.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use crate::http::HttpClient;
use crate::outcome::{Outcome, Report};
use crate::secret::Secret;

/// A freshly fetched token.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: Secret,
    pub expires_in: Duration,
}

/// Something that can fetch an access token for one credential.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// Identifies the credential (platform, app id and a fingerprint of the
    /// secret), never the secret itself.
    fn cache_key(&self) -> String;

    /// Ask the platform for a token. A failure is a [`Report`]: a wrong secret is
    /// `Permanent`, a busy token endpoint `Retry`.
    async fn fetch(&self, http: &HttpClient) -> Result<Token, Report>;
}

#[derive(Debug, Clone)]
struct Cached {
    value: Secret,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct Slot {
    cached: RwLock<Option<Cached>>,
    /// The last failed fetch (a [`Report`]'s text: never a secret) and when.
    last_error: Mutex<Option<(String, Instant)>>,
    // Held while fetching, so concurrent callers wait for one fetch.
    refresh: tokio::sync::Mutex<()>,
}

/// What the cache holds for one credential, for a status page: never the
/// token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenState {
    /// How long the cached token still works; `None`: none is cached.
    pub expires_in: Option<Duration>,
    /// The last failed fetch: what went wrong (never a secret) and how long ago.
    pub last_error: Option<(String, Duration)>,
}

/// Counters, for tests and metrics.
#[derive(Debug, Default)]
pub struct TokenStats {
    pub fetches_ok: AtomicU64,
    pub fetches_failed: AtomicU64,
    pub invalidations: AtomicU64,
}

/// A token handed out by a [`SharedTokenCache`].
#[derive(Debug, Clone)]
pub struct SharedToken {
    pub value: Secret,
    /// When this process should ask the shared cache again.
    pub refresh_in: Duration,
    /// When the token stops working.
    pub expires_in: Duration,
    /// Whether this call fetched it from the platform (for the fetch counter).
    pub fetched_here: bool,
}

/// A token cache shared by several processes (several gateway instances), so a
/// credential is refreshed once per expiry period for all of them, and a token
/// the platform rejected is dropped for all of them.
///
/// Optional: a [`TokenManager`] without one (the default) fetches on its own.
#[async_trait]
pub trait SharedTokenCache: Send + Sync + std::fmt::Debug {
    /// A token for `source`'s credential: the shared one while it is not due
    /// for refresh, else one fetched by exactly one caller cluster-wide (the
    /// others wait for it and reuse it).
    async fn get(&self, source: &dyn TokenSource, http: &HttpClient)
        -> Result<SharedToken, Report>;

    /// The platform rejected `stale` for credential `key`: forget it for
    /// everyone, unless it was already replaced.
    async fn invalidate(&self, key: &str, stale: &Secret);

    /// How long the shared token of credential `key` still works; `None`
    /// when none is shared (for status pages: never the token).
    async fn expires_in(&self, key: &str) -> Result<Option<Duration>, Report> {
        let _ = key;
        Ok(None)
    }
}

/// The token cache. Cheap to share behind the [`crate::Client`].
#[derive(Default)]
pub struct TokenManager {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    stats: TokenStats,
    shared: RwLock<Option<Arc<dyn SharedTokenCache>>>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("credentials", &self.slots.lock().len())
            .finish()
    }
}

impl TokenManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> &TokenStats {
        &self.stats
    }

    /// Consult `cache` (shared by several processes) instead of fetching
    /// alone; `None` (the default) fetches per process. Locally cached tokens
    /// are kept.
    pub fn set_shared(&self, cache: Option<Arc<dyn SharedTokenCache>>) {
        *self.shared.write() = cache;
    }

    fn shared(&self) -> Option<Arc<dyn SharedTokenCache>> {
        self.shared.read().clone()
    }

    /// What is cached for credential `key` (a [`TokenSource::cache_key`]).
    pub fn state(&self, key: &str) -> TokenState {
        let Some(slot) = self.slots.lock().get(key).cloned() else {
            return TokenState::default();
        };
        let now = Instant::now();
        let expires_in = slot
            .cached
            .read()
            .as_ref()
            .filter(|c| now < c.expires_at)
            .map(|c| c.expires_at - now);
        let last_error = slot
            .last_error
            .lock()
            .as_ref()
            .map(|(e, at)| (e.clone(), now.saturating_duration_since(*at)));
        TokenState {
            expires_in,
            last_error,
        }
    }

    /// [`TokenManager::state`], and when this process holds no token for
    /// `key`, the shared cache's (another instance fetched it). A shared
    /// cache that cannot answer leaves the state as this process knows it.
    pub async fn state_with_shared(&self, key: &str) -> TokenState {
        let mut state = self.state(key);
        if state.expires_in.is_none() {
            if let Some(shared) = self.shared() {
                match shared.expires_in(key).await {
                    Ok(e) => state.expires_in = e,
                    Err(e) => {
                        tracing::debug!(credential = %key, error = %e, "the shared token cache did not answer")
                    }
                }
            }
        }
        state
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// A valid token for `source`, fetching one if none is cached or the cached
    /// one is close to expiry.
    pub async fn get(&self, source: &dyn TokenSource, http: &HttpClient) -> Result<Secret, Report> {
        let slot = self.slot(&source.cache_key());
        if let Some(v) = fresh(&slot) {
            return Ok(v);
        }
        let _guard = slot.refresh.lock().await;
        // Whoever held the lock before us may have fetched already.
        if let Some(v) = fresh(&slot) {
            return Ok(v);
        }
        let fetched = match self.shared() {
            Some(shared) => shared.get(source, http).await.map(|t| {
                if t.fetched_here {
                    self.stats.fetches_ok.fetch_add(1, Ordering::Relaxed);
                }
                (t.value, t.refresh_in, t.expires_in)
            }),
            None => source.fetch(http).await.map(|token| {
                self.stats.fetches_ok.fetch_add(1, Ordering::Relaxed);
                (
                    token.value,
                    token
                        .expires_in
                        .saturating_sub(refresh_margin(token.expires_in)),
                    token.expires_in,
                )
            }),
        };
        match fetched {
            Ok((value, refresh_in, expires_in)) => {
                let now = Instant::now();
                let cached = Cached {
                    value: value.clone(),
                    refresh_at: now + refresh_in,
                    expires_at: now + expires_in,
                };
                *slot.cached.write() = Some(cached);
                tracing::debug!(credential = %source.cache_key(), expires_in_s = expires_in.as_secs(), "access token fetched");
                Ok(value)
            }
            Err(report) => {
                self.stats.fetches_failed.fetch_add(1, Ordering::Relaxed);
                *slot.last_error.lock() = Some((report.to_string(), Instant::now()));
                // Early refresh failed: the old token is still good until it expires.
                if let Some(c) = slot.cached.read().as_ref() {
                    if Instant::now() < c.expires_at {
                        tracing::warn!(credential = %source.cache_key(), error = %report, "token refresh failed; using the cached token until it expires");
                        return Ok(c.value.clone());
                    }
                }
                Err(report)
            }
        }
    }

    /// Forget `stale` (the token the platform just rejected). A token that was
    /// already replaced by another caller is left alone, so N rejected senders
    /// cause one refresh, not N.
    pub fn invalidate(&self, key: &str, stale: &Secret) {
        let slot = self.slot(key);
        let mut cached = slot.cached.write();
        if cached.as_ref().is_some_and(|c| &c.value == stale) {
            *cached = None;
            self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Run `attempt` with a token; when it reports [`Outcome::RefreshToken`],
    /// invalidate the token, fetch a new one and run `attempt` once more.
    pub async fn with_token<F, Fut>(
        &self,
        source: &dyn TokenSource,
        http: &HttpClient,
        mut attempt: F,
    ) -> Report
    where
        F: FnMut(Secret) -> Fut,
        Fut: Future<Output = Report>,
    {
        let token = match self.get(source, http).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        let report = attempt(token.clone()).await;
        if report.outcome != Outcome::RefreshToken {
            return report;
        }
        tracing::info!(credential = %source.cache_key(), code = ?report.code, "platform rejected the access token; refreshing once");
        self.invalidate(&source.cache_key(), &token);
        if let Some(shared) = self.shared() {
            shared.invalidate(&source.cache_key(), &token).await;
        }
        let token = match self.get(source, http).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        attempt(token).await
    }
}

/// How long before expiry a token is refreshed: a fifth of its lifetime, at
/// most five minutes.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(300))
}

fn fresh(slot: &Slot) -> Option<Secret> {
    let cached = slot.cached.read();
    cached
        .as_ref()
        .filter(|c| Instant::now() < c.refresh_at)
        .map(|c| c.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counting {
        calls: AtomicUsize,
        lifetime: Duration,
    }

    #[async_trait]
    impl TokenSource for Counting {
        fn cache_key(&self) -> String {
            "test:app".into()
        }
        async fn fetch(&self, _http: &HttpClient) -> Result<Token, Report> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Token {
                value: Secret::new(format!("tok-{n}")),
                expires_in: self.lifetime,
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch_and_refresh_ahead_of_expiry() {
        let http = HttpClient::new(Default::default()).unwrap();
        let tm = Arc::new(TokenManager::new());
        let src = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(7200),
        });
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (tm, src, http) = (tm.clone(), src.clone(), http.clone());
            tasks.push(tokio::spawn(
                async move { tm.get(&*src, &http).await.unwrap() },
            ));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), "tok-0");
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 1);

        // Just before the refresh point (7200 - 300 s): still cached.
        tokio::time::advance(Duration::from_secs(6890)).await;
        assert_eq!(tm.get(&*src, &http).await.unwrap().expose(), "tok-0");
        // Past it: refreshed before the platform would reject the token.
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(tm.get(&*src, &http).await.unwrap().expose(), "tok-1");
    }

    struct Refused;

    #[async_trait]
    impl TokenSource for Refused {
        fn cache_key(&self) -> String {
            "test:refused".into()
        }
        async fn fetch(&self, _http: &HttpClient) -> Result<Token, Report> {
            Err(Report::new(Outcome::Permanent, "app secret invalid"))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_state_tells_expiry_and_the_last_failure_never_the_token() {
        let http = HttpClient::new(Default::default()).unwrap();
        let tm = TokenManager::new();
        let src = Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(7200),
        };
        assert_eq!(tm.state("test:app"), TokenState::default(), "never used");
        tm.get(&src, &http).await.unwrap();
        tokio::time::advance(Duration::from_secs(200)).await;
        let s = tm.state("test:app");
        assert_eq!(s.expires_in, Some(Duration::from_secs(7000)));
        assert_eq!(s.last_error, None);
        assert!(!format!("{s:?}").contains("tok-0"));
        tokio::time::advance(Duration::from_secs(7000)).await;
        assert_eq!(tm.state("test:app").expires_in, None, "expired");

        assert!(tm.get(&Refused, &http).await.is_err());
        tokio::time::advance(Duration::from_secs(5)).await;
        let s = tm.state("test:refused");
        assert_eq!(s.expires_in, None);
        let (why, ago) = s.last_error.unwrap();
        assert!(why.contains("app secret invalid"), "{why}");
        assert_eq!(ago, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_token_is_refreshed_once_then_retried() {
        let http = HttpClient::new(Default::default()).unwrap();
        let tm = TokenManager::new();
        let src = Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(7200),
        };
        tm.get(&src, &http).await.unwrap();
        let seen = Mutex::new(Vec::new());
        let report = tm
            .with_token(&src, &http, |tok| {
                seen.lock().push(tok.expose().to_string());
                let ok = tok.expose() == "tok-1";
                async move {
                    if ok {
                        Report::delivered()
                    } else {
                        Report::new(Outcome::RefreshToken, "42001 access_token expired")
                    }
                }
            })
            .await;
        assert!(report.outcome.is_delivered());
        assert_eq!(*seen.lock(), vec!["tok-0", "tok-1"]);
        assert_eq!(src.calls.load(Ordering::SeqCst), 2);
        // A second invalidation with the old token does not throw away the new one.
        tm.invalidate("test:app", &Secret::new("tok-0"));
        assert_eq!(tm.get(&src, &http).await.unwrap().expose(), "tok-1");
    }

    /// An in-memory stand-in for a cluster-wide cache (the gateway's is in
    /// PostgreSQL): one lock, one stored token.
    #[derive(Debug, Default)]
    struct OneCache {
        stored: tokio::sync::Mutex<Option<(Secret, Instant, Instant)>>,
    }

    #[async_trait]
    impl SharedTokenCache for OneCache {
        async fn get(
            &self,
            source: &dyn TokenSource,
            http: &HttpClient,
        ) -> Result<SharedToken, Report> {
            let mut g = self.stored.lock().await;
            let now = Instant::now();
            if let Some((v, refresh_at, expires_at)) = g.as_ref() {
                if now < *refresh_at {
                    return Ok(SharedToken {
                        value: v.clone(),
                        refresh_in: *refresh_at - now,
                        expires_in: *expires_at - now,
                        fetched_here: false,
                    });
                }
            }
            let t = source.fetch(http).await?;
            let refresh_in = t.expires_in - refresh_margin(t.expires_in);
            *g = Some((t.value.clone(), now + refresh_in, now + t.expires_in));
            Ok(SharedToken {
                value: t.value,
                refresh_in,
                expires_in: t.expires_in,
                fetched_here: true,
            })
        }
        async fn invalidate(&self, _key: &str, stale: &Secret) {
            let mut g = self.stored.lock().await;
            if g.as_ref().is_some_and(|(v, _, _)| v == stale) {
                *g = None;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn managers_sharing_a_cache_fetch_once_and_see_invalidations() {
        let http = HttpClient::new(Default::default()).unwrap();
        let cache: Arc<dyn SharedTokenCache> = Arc::new(OneCache::default());
        let src = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: Duration::from_secs(7200),
        });
        // Three "instances".
        let tms: Vec<Arc<TokenManager>> = (0..3)
            .map(|_| {
                let tm = TokenManager::new();
                tm.set_shared(Some(cache.clone()));
                Arc::new(tm)
            })
            .collect();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let (tm, src, http) = (tms[i % 3].clone(), src.clone(), http.clone());
            tasks.push(tokio::spawn(
                async move { tm.get(&*src, &http).await.unwrap() },
            ));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), "tok-0");
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 1, "one fetch for all");
        let ok: u64 = tms
            .iter()
            .map(|t| t.stats().fetches_ok.load(Ordering::Relaxed))
            .sum();
        assert_eq!(ok, 1);

        // Instance 0 is told the token is bad: it refreshes through the cache...
        let r = tms[0]
            .with_token(&*src, &http, |tok| {
                let ok = tok.expose() == "tok-1";
                async move {
                    if ok {
                        Report::delivered()
                    } else {
                        Report::new(Outcome::RefreshToken, "token rejected")
                    }
                }
            })
            .await;
        assert!(r.outcome.is_delivered());
        // ...and instance 1, rejected with the old token too, reuses the new one.
        let r = tms[1]
            .with_token(&*src, &http, |tok| {
                let ok = tok.expose() == "tok-1";
                async move {
                    if ok {
                        Report::delivered()
                    } else {
                        Report::new(Outcome::RefreshToken, "token rejected")
                    }
                }
            })
            .await;
        assert!(r.outcome.is_delivered());
        assert_eq!(src.calls.load(Ordering::SeqCst), 2, "one refresh for all");

        // Past the refresh point, still one fetch for the cluster.
        tokio::time::advance(Duration::from_secs(7000)).await;
        for tm in &tms {
            assert_eq!(tm.get(&*src, &http).await.unwrap().expose(), "tok-2");
        }
        assert_eq!(src.calls.load(Ordering::SeqCst), 3);
    }
}
