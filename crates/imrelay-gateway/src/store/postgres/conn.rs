//! Opening the PostgreSQL store (schema, pool, migrations, the LISTEN task)
//! and running work in one transaction that wakes the cluster on commit.

use super::*;

impl PgStore {
    /// Connect, create the schema if named, run migrations (sqlx serialises
    /// concurrent migrators with an advisory lock), and start listening for
    /// wake-ups. Claims held by other instances are left alone.
    pub async fn open(options: StoreOptions) -> Result<Self> {
        let target = PgTarget::parse(&options.url)?;
        target.ensure_schema().await?;
        // The queue's connections, plus a few for the cluster limiter and
        // token cache, which run on this pool too.
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(target.options.clone())
            .await
            .map_err(|e| target.connect_error(e))?;
        MIGRATOR.run(&pool).await?;
        let notify = Arc::new(Notify::new());
        let channel = target.wake_channel();
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|e| target.connect_error(e))?;
        listener.listen(&channel).await?;
        let n = notify.clone();
        let listener = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => n.notify_one(),
                    // The connection dropped and was re-established: a
                    // notification may have been missed, so look now.
                    Ok(None) => n.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "PostgreSQL LISTEN connection failed; reconnecting");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        let now = options.clock.now_ms();
        let accepts = accept::start(pool.clone(), channel.clone(), notify.clone());
        let finishes = finish::start(pool.clone(), channel.clone(), notify.clone());
        Ok(PgStore {
            pool,
            notify,
            clock: options.clock,
            target,
            channel,
            listener: Mutex::new(Some(listener)),
            accepts,
            finishes,
            closed: AtomicBool::new(false),
            rate_margin: options.cluster_rate_margin,
            health: Health::new(now),
            acquire_timeout: options.acquire_timeout,
        })
    }

    /// The connection pool (shared with the cluster rate limiter and token
    /// cache).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The parsed URL.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// A read-only transaction on one snapshot.
    pub(super) async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Run `f` in one transaction; commit when it succeeds, roll back when it
    /// fails. `wake` sends a cluster-wide notification with the commit.
    pub(super) async fn tx<T, F>(&self, wake: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<(T, bool)>> + Send,
    {
        let r = self.tx_unchecked(wake, f).await;
        self.health.check(self.now_ms(), &r);
        r
    }

    pub(super) async fn tx_unchecked<T, F>(&self, wake: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<(T, bool)>> + Send,
    {
        self.check_open()?;
        let mut tx = self.pool.begin().await?;
        match f(&mut tx).await {
            Ok((v, woke)) => {
                if wake || woke {
                    sqlx::query("SELECT pg_notify($1, '')")
                        .bind(&self.channel)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                if wake || woke {
                    self.notify.notify_one();
                }
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}
