//! Opening the SQLite store (pragmas, migrations, recovery of a previous
//! process's claims, the writer task) and handing writes to the writer.

use super::*;

fn path_of(url: &str) -> PathBuf {
    let p = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let p = p.split('?').next().unwrap_or(p);
    PathBuf::from(p)
}

impl SqliteStore {
    /// Open (creating if missing) and migrate the database, return deliveries a
    /// previous process left claimed to the queue, and start the writer.
    pub async fn open(options: StoreOptions) -> Result<Self> {
        let path = path_of(&options.url);
        if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
            return Err(StoreError::Invalid(
                "`store.url`: SQLite needs a file path (an in-memory database would lose acknowledged messages)"
                    .into(),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Invalid(format!(
                    "`store.url`: cannot create directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let sync = match options.synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        };
        let base = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::from)?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = base
            .clone()
            .connect()
            .await
            .map_err(|e| StoreError::Connect {
                what: format!("cannot open SQLite database {}", path.display()),
                source: Arc::new(e),
            })?;
        MIGRATOR.run(&mut conn).await?;
        let now = options.clock.now_ms();
        let recovered = sqlx::query(
            "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = ?1
             WHERE state = 'claimed'",
        )
        .bind(now)
        .execute(&mut conn)
        .await?
        .rows_affected();
        if recovered > 0 {
            tracing::warn!(
                deliveries = recovered,
                "deliveries claimed by a previous run were not finished; they are queued again"
            );
        }
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel::<Queued>(4096);
        let writer = tokio::spawn(writer::writer_loop(
            conn,
            rx,
            options.max_batch.max(1),
            options.group_commit_window,
        ));
        Ok(SqliteStore {
            read,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            notify: Arc::new(Notify::new()),
            health: Health::new(options.clock.now_ms()),
            clock: options.clock,
            path,
            acquire_timeout: options.acquire_timeout,
        })
    }

    /// Refuse (`true`) or allow again every write on the writer's connection
    /// (SQLite's `query_only`): writes fail as on a read-only disk. For
    /// maintenance, and to test how the gateway meets a store that cannot
    /// commit.
    pub async fn set_query_only(&self, on: bool) -> Result<()> {
        let sql = if on {
            "PRAGMA query_only = 1"
        } else {
            "PRAGMA query_only = 0"
        };
        let (tx, rx) = oneshot::channel::<Result<()>>();
        let op = replying_op(
            move |c| {
                Box::pin(async move {
                    sqlx::query(sql).execute(&mut *c).await?;
                    Ok(())
                })
            },
            tx,
        );
        self.submit(Job::Setting(op), rx).await
    }

    /// `journal_mode` and `synchronous` (0 off, 1 normal, 2 full) as a
    /// connection of this store sees them.
    pub async fn pragmas(&self) -> Result<(String, i64)> {
        let mut c = self.read.acquire().await?;
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&mut *c)
            .await?;
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&mut *c)
            .await?;
        Ok((mode, sync))
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Run `f` in the writer's transaction; answers after the commit.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        self.submit(Job::Op(replying_op(f, tx)), rx).await
    }

    /// Queue a job for the writer and wait for its answer (after the commit).
    /// A job the writer has not taken within the acquire timeout is
    /// withdrawn and fails as a timeout, having written nothing.
    pub(super) async fn submit<T>(
        &self,
        job: Job,
        mut rx: oneshot::Receiver<Result<T>>,
    ) -> Result<T> {
        let Some(jobs) = self.jobs.lock().clone() else {
            return Err(StoreError::Closed);
        };
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let taken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = Queued {
            job,
            taken: taken.clone(),
        };
        let answer = |r: std::result::Result<Result<T>, oneshot::error::RecvError>| {
            r.map_err(|_| {
                StoreError::Internal("the SQLite writer stopped before answering".into())
            })?
        };
        let timed_out = || StoreError::from(sqlx::Error::PoolTimedOut);
        let r = match tokio::time::timeout_at(deadline, jobs.send(queued)).await {
            Err(_) => Err(timed_out()),
            Ok(Err(_)) => Err(StoreError::Closed),
            Ok(Ok(())) => tokio::select! {
                r = &mut rx => answer(r),
                _ = tokio::time::sleep_until(deadline) => {
                    if taken.swap(true, std::sync::atomic::Ordering::AcqRel) {
                        // The writer has it: wait for the commit.
                        answer(rx.await)
                    } else {
                        Err(timed_out())
                    }
                }
            },
        };
        self.health.check(self.now_ms(), &r);
        r
    }
}
