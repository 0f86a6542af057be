//! Claims on PostgreSQL: SKIP LOCKED for unordered work, and for an
//! ordered target a claim serialised per target that keeps accept order
//! across instances.

use super::*;

impl PgStore {
    pub(super) async fn claim_deliveries(&self, req: ClaimRequest) -> Result<Vec<Claimed>> {
        let now = self.now_ms();
        let lease_until = now + req.lease.as_millis() as i64;
        if let (Some(target), Some(hold)) = (req.target.clone(), req.order_hold) {
            return self
                .tx(false, move |c| {
                    Box::pin(async move {
                        let ids = claim_in_order(c, &target, hold, &req, now, lease_until).await?;
                        Ok((
                            queue::claimed(c, ids, queue::ClaimOrder::Accept).await?,
                            false,
                        ))
                    })
                })
                .await;
        }
        self.tx(false, move |c| {
            Box::pin(async move {
                // SKIP LOCKED: rows another instance is claiming right now are
                // passed over, not waited for; an expired lease is claimable.
                // A claimed row was due when claimed, so every claimable row
                // has `due_at <= now`: with a target that bounds the scan of
                // `deliveries_open (target, due_at, id)` to due rows, in order.
                let sql = if req.target.is_some() {
                    "UPDATE deliveries SET state = 'claimed', lease_owner = $1, lease_until = $2, updated_at = $3
                     WHERE id IN (SELECT id FROM deliveries WHERE target = $4 AND due_at <= $3
                       AND state IN ('pending', 'claimed') AND (state = 'pending' OR lease_until <= $3)
                       ORDER BY due_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)
                     RETURNING id"
                } else {
                    "UPDATE deliveries SET state = 'claimed', lease_owner = $1, lease_until = $2, updated_at = $3
                     WHERE id IN (SELECT id FROM deliveries WHERE ($4::text IS NULL) AND
                       ((state = 'pending' AND due_at <= $3) OR (state = 'claimed' AND lease_until <= $3))
                       ORDER BY due_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)
                     RETURNING id"
                };
                let ids: Vec<(i64,)> = sqlx::query_as(sql)
                .bind(&req.owner)
                .bind(lease_until)
                .bind(now)
                .bind(&req.target)
                .bind(req.limit as i64)
                .fetch_all(&mut *c)
                .await?;
                let ids = ids.into_iter().map(|(i,)| DeliveryId::from(i)).collect();
                Ok((queue::claimed(c, ids, queue::ClaimOrder::Due).await?, false))
            })
        })
        .await
    }
}

/// The claim of an ordered target: its deliveries go out in accept order
/// whichever instance sends them.
///
/// Claimers of one target are serialised by a transaction-scoped advisory
/// lock (on the schema and target, so clusters sharing a database do not
/// wait on each other): two instances checking at once cannot both find the
/// target free. Under it: nothing while another owner's lease on the target
/// is live (its lane is sending, or holding a retry in place); else the due
/// deliveries in accept order, from the head up to the first earlier one
/// waiting for a retry that still holds the ones behind it (see
/// [`HOLDS_LATER`]). Rows are locked without SKIP LOCKED: a row skipped
/// because another transaction touches it would be sent after later ones.
async fn claim_in_order(
    c: &mut PgConnection,
    target: &Target,
    hold: Duration,
    req: &ClaimRequest,
    now: i64,
    lease_until: i64,
) -> Result<Vec<DeliveryId>> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || $1, 0))")
        .bind(target)
        .execute(&mut *c)
        .await?;
    let (taken,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE target = $1 AND state = 'claimed'
           AND lease_until > $2 AND lease_owner <> $3)",
    )
    .bind(target)
    .bind(now)
    .bind(&req.owner)
    .fetch_one(&mut *c)
    .await?;
    if taken {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE deliveries SET state = 'claimed', lease_owner = $1, lease_until = $2, updated_at = $3
         WHERE id IN (SELECT id FROM deliveries d WHERE target = $4
           AND ((state = 'pending' AND due_at <= $3) OR (state = 'claimed' AND lease_until <= $3))
           AND id < COALESCE((SELECT MIN(id) FROM deliveries d WHERE target = $4 AND {HOLDS_LATER}),
                             9223372036854775807)
           ORDER BY id LIMIT $5 FOR UPDATE)
         RETURNING id"
    );
    let ids: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&req.owner)
        .bind(lease_until)
        .bind(now)
        .bind(target)
        .bind(req.limit as i64)
        .bind(hold.as_millis() as i64)
        .fetch_all(&mut *c)
        .await?;
    Ok(ids.into_iter().map(|(i,)| DeliveryId::from(i)).collect())
}

/// Whether pending delivery `d` (of an ordered target, at time `$3`, with
/// the channel's `order_hold` in ms `$6`) holds the deliveries accepted after
/// it: it waits for a retry (it has failed, or was made to wait, and is not
/// due yet) that is due within `order_hold` of its first failure. This is
/// the dispatcher's rule for a retry it holds in place (which counts from the
/// first failure in its claim; the store, from the first it recorded), so a
/// retry it gave up holding holds nothing here either: the ones behind it go
/// on, and it is sent out of order.
const HOLDS_LATER: &str = "d.state = 'pending' AND d.due_at > $3 AND d.last_outcome IS NOT NULL
    AND d.due_at <= $6 + (SELECT MIN(a.finished_at) FROM attempts a
                          WHERE a.delivery_id = d.id AND a.outcome <> 'delivered')";
