//! Usage periods, assets and what the license checks read: one implementation of [`Metering`] for both databases.

use async_trait::async_trait;
use steward_core::{OrgId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

/// A consume's statements ([`crate::Store::consume`]): the period's row, made if missing,
/// then the update that takes the amounts only where the limits cover them and answers the
/// period's new usage (no row: refused), then the day's count. A refused consume rolls all three
/// back.
pub(crate) fn consume(c: &Consume) -> [Stmt; 3] {
    let open = Stmt::new(
        "INSERT INTO usage_periods (org_id, period_start, period_end) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(c.org.to_string())
    .bind(micros(c.period_start))
    .bind(micros(c.period_end));
    let take = Stmt::new(
        "UPDATE usage_periods SET operations_used = operations_used + ?, transfer_used = transfer_used + ? \
         WHERE org_id = ? AND period_start = ? \
         AND (? IS NULL OR operations_used + ? <= ?) AND (? IS NULL OR transfer_used + ? <= ?) RETURNING *",
    )
    .bind(amount(c.operations))
    .bind(amount(c.transfer))
    .bind(c.org.to_string())
    .bind(micros(c.period_start))
    .bind_each(within_limits(c));
    let day = Stmt::new(
        "INSERT INTO usage_days (org_id, day, operations_used, transfer_used) VALUES (?, ?, ?, ?) \
         ON CONFLICT (org_id, day) DO UPDATE SET operations_used = usage_days.operations_used + excluded.operations_used, \
         transfer_used = usage_days.transfer_used + excluded.transfer_used",
    )
    .bind(c.org.to_string())
    .bind(micros(day_of(c.at)))
    .bind(amount(c.operations))
    .bind(amount(c.transfer));
    [open, take, day]
}

/// A consume as one statement, for PostgreSQL, whose data-modifying `WITH` SQLite lacks: the
/// period's row is made with the amounts only where the limits cover them, or updated only
/// where they still do (`ON CONFLICT … DO UPDATE … WHERE`, judged on the row as locked), the
/// day counts what was taken, and the period's new usage is answered (no row: refused, nothing
/// written). One round trip, and no `BEGIN` or `COMMIT` of its own.
pub(crate) fn consume_in_one_statement(c: &Consume) -> Stmt {
    Stmt::new(
        "WITH took AS (INSERT INTO usage_periods (org_id, period_start, period_end, operations_used, transfer_used) \
         SELECT ?, ?, ?, ?, ? WHERE (? IS NULL OR ? <= ?) AND (? IS NULL OR ? <= ?) \
         ON CONFLICT (org_id, period_start) DO UPDATE SET \
         operations_used = usage_periods.operations_used + excluded.operations_used, \
         transfer_used = usage_periods.transfer_used + excluded.transfer_used \
         WHERE (? IS NULL OR usage_periods.operations_used + excluded.operations_used <= ?) \
         AND (? IS NULL OR usage_periods.transfer_used + excluded.transfer_used <= ?) RETURNING *), \
         counted AS (INSERT INTO usage_days (org_id, day, operations_used, transfer_used) \
         SELECT org_id, ?, ?, ? FROM took ON CONFLICT (org_id, day) DO UPDATE SET \
         operations_used = usage_days.operations_used + excluded.operations_used, \
         transfer_used = usage_days.transfer_used + excluded.transfer_used) \
         SELECT * FROM took",
    )
    .bind(c.org.to_string())
    .bind(micros(c.period_start))
    .bind(micros(c.period_end))
    .bind(amount(c.operations))
    .bind(amount(c.transfer))
    .bind_each(within_limits(c))
    .bind(c.operations_limit.map(amount))
    .bind(c.operations_limit.map(amount))
    .bind(c.transfer_limit.map(amount))
    .bind(c.transfer_limit.map(amount))
    .bind(micros(day_of(c.at)))
    .bind(amount(c.operations))
    .bind(amount(c.transfer))
}

/// The values of the check, as both ways of consuming write it, that each amount stays within
/// its limit: `(? IS NULL OR … + ? <= ?)` for operations, then for transfer.
fn within_limits(c: &Consume) -> [Option<i64>; 6] {
    let (ops, transfer) = (c.operations_limit.map(amount), c.transfer_limit.map(amount));
    [ops, Some(amount(c.operations)), ops, transfer, Some(amount(c.transfer)), transfer]
}

/// The first instant of `at`'s UTC day.
pub(crate) fn day_of(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(time::UtcOffset::UTC).replace_time(time::Time::MIDNIGHT)
}

/// Gives back `operations` taken in the period ([`crate::Store::give_back`]), never below zero:
/// from the period, and from the org's latest day, when the lease they come from was taken.
pub(crate) fn give_back(org: OrgId, period_start: OffsetDateTime, operations: u64) -> [Stmt; 2] {
    let period = Stmt::new(
        "UPDATE usage_periods SET operations_used = CASE WHEN operations_used > ? THEN operations_used - ? ELSE 0 END \
         WHERE org_id = ? AND period_start = ?",
    )
    .bind(amount(operations))
    .bind(amount(operations))
    .bind(org.to_string())
    .bind(micros(period_start));
    let day = Stmt::new(
        "UPDATE usage_days SET operations_used = CASE WHEN operations_used > ? THEN operations_used - ? ELSE 0 END \
         WHERE org_id = ? AND day = (SELECT MAX(day) FROM usage_days WHERE org_id = ?)",
    )
    .bind(amount(operations))
    .bind(amount(operations))
    .bind(org.to_string())
    .bind(org.to_string());
    [period, day]
}

/// What an asset's insert and update both write.
fn asset_columns(a: &AssetRow) -> Columns {
    Columns::default()
        .set("kind", &a.kind)
        .set("name", &a.name)
        .set("team_id", a.team_id.map(|t| t.to_string()))
        .set("size_bytes", amount(a.size_bytes))
        .set("updated_at", micros(a.updated_at))
}

/// Ids per statement when a batch's ids are looked up or written: well inside both databases'
/// limits on parameters.
const IDS_PER_STATEMENT: usize = 200;

/// A period a batch counts in, as locked and read, and what the batch does to it.
struct Tally {
    row: UsageRow,
    /// Whether the batch made the period's row (and removes it when it accepts nothing).
    made: bool,
    accepted: bool,
}

/// Makes and locks the period row of each (org, period) of a batch, in id order so that two
/// batches never wait on each other in a circle, and reads what it holds.
async fn lock_periods<E: Exec + ?Sized>(
    exec: &mut E,
    events: &[UsageEvent],
) -> StoreResult<std::collections::BTreeMap<(OrgId, i64), Tally>> {
    let mut periods = std::collections::BTreeMap::new();
    for e in events {
        periods.entry((e.consume.org, micros(e.consume.period_start))).or_insert(e.consume.period_end);
    }
    let mut tallies = std::collections::BTreeMap::new();
    for ((org, start), end) in periods {
        let made = exec
            .run(
                Stmt::new("INSERT INTO usage_periods (org_id, period_start, period_end) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                    .bind(org.to_string())
                    .bind(start)
                    .bind(micros(end)),
            )
            .await?
            == 1;
        let read =
            Stmt::new(format!("SELECT * FROM usage_periods WHERE org_id = ? AND period_start = ?{}", E::ROW_LOCK))
                .bind(org.to_string())
                .bind(start);
        let row = exec.fetch_one(read).await?.ok_or(crate::StoreError::Conflict(crate::Constraint::VersionMismatch))?;
        tallies.insert((org, start), Tally { row: UsageRow::from_row(&row)?, made, accepted: false });
    }
    Ok(tallies)
}

/// The ids of `events` their orgs have counted already (and not forgotten).
async fn counted_ids<E: Exec + ?Sized>(
    exec: &mut E,
    events: &[UsageEvent],
) -> StoreResult<std::collections::HashSet<(OrgId, String)>> {
    let mut by_org: std::collections::BTreeMap<OrgId, Vec<&str>> = std::collections::BTreeMap::new();
    for e in events {
        by_org.entry(e.consume.org).or_default().push(&e.id);
    }
    let mut counted = std::collections::HashSet::new();
    for (org, ids) in by_org {
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut query =
                Stmt::new(format!("SELECT event_id FROM usage_events WHERE org_id = ? AND event_id IN ({marks})"))
                    .bind(org.to_string());
            for id in chunk {
                query = query.bind((*id).to_owned());
            }
            for row in exec.fetch(query).await? {
                counted.insert((org, get::<String>(&row, "event_id")?));
            }
        }
    }
    Ok(counted)
}

#[async_trait]
impl<E: Exec> Metering for E {
    async fn forget_usage_events(&mut self, now: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        let forget = Stmt::new(
            "DELETE FROM usage_events WHERE (org_id, event_id) IN \
             (SELECT org_id, event_id FROM usage_events WHERE keep_until <= ? LIMIT ?)",
        )
        .bind(micros(now))
        .bind(i64::from(limit));
        self.run(forget).await
    }

    async fn ingest_usage(
        &mut self,
        events: &[UsageEvent],
        now: OffsetDateTime,
    ) -> StoreResult<(Vec<EventOutcome>, Vec<UsageRow>)> {
        let mut orgs: Vec<OrgId> = events.iter().map(|e| e.consume.org).collect();
        orgs.sort();
        orgs.dedup();
        for org in &orgs {
            self.run(
                Stmt::new("DELETE FROM usage_events WHERE org_id = ? AND keep_until <= ?")
                    .bind(org.to_string())
                    .bind(micros(now)),
            )
            .await?;
        }
        let mut tallies = lock_periods(self, events).await?;
        let mut seen = counted_ids(self, events).await?;
        // Each event in turn against the running totals: exact, for the periods are locked.
        let mut outcomes = Vec::with_capacity(events.len());
        let mut days: std::collections::BTreeMap<(OrgId, i64), (u64, u64)> = std::collections::BTreeMap::new();
        let mut kept = Vec::new();
        for e in events {
            let c = &e.consume;
            if !seen.insert((c.org, e.id.clone())) {
                outcomes.push(EventOutcome::Duplicate);
                continue;
            }
            let tally = tallies.get_mut(&(c.org, micros(c.period_start))).expect("every period was locked");
            let fits = |limit: Option<u64>, used: u64, more: u64| limit.is_none_or(|l| used.saturating_add(more) <= l);
            if !(fits(c.operations_limit, tally.row.operations_used, c.operations)
                && fits(c.transfer_limit, tally.row.transfer_used, c.transfer))
            {
                seen.remove(&(c.org, e.id.clone()));
                outcomes.push(EventOutcome::Refused);
                continue;
            }
            tally.row.operations_used += c.operations;
            tally.row.transfer_used += c.transfer;
            tally.accepted = true;
            let day = days.entry((c.org, micros(day_of(c.at)))).or_default();
            day.0 += c.operations;
            day.1 += c.transfer;
            kept.push(e);
            outcomes.push(EventOutcome::Accepted);
        }
        for chunk in kept.chunks(IDS_PER_STATEMENT) {
            let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut insert = Stmt::new(format!(
                "INSERT INTO usage_events (org_id, event_id, period_start, keep_until) VALUES {rows}"
            ));
            for e in chunk {
                insert = insert
                    .bind(e.consume.org.to_string())
                    .bind(e.id.clone())
                    .bind(micros(e.consume.period_start))
                    .bind(micros(e.keep_until));
            }
            self.run(insert).await?;
        }
        let mut usage = Vec::new();
        for ((org, start), tally) in tallies {
            if tally.accepted {
                let set = Stmt::new(
                    "UPDATE usage_periods SET operations_used = ?, transfer_used = ? WHERE org_id = ? AND period_start = ?",
                )
                .bind(amount(tally.row.operations_used))
                .bind(amount(tally.row.transfer_used))
                .bind(org.to_string())
                .bind(start);
                self.apply_one(set).await?;
                usage.push(tally.row);
            } else if tally.made {
                let unmade = Stmt::new("DELETE FROM usage_periods WHERE org_id = ? AND period_start = ?")
                    .bind(org.to_string())
                    .bind(start);
                self.run(unmade).await?;
            }
        }
        for ((org, day), (operations, transfer)) in days {
            let add = Stmt::new(
                "INSERT INTO usage_days (org_id, day, operations_used, transfer_used) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (org_id, day) DO UPDATE SET operations_used = usage_days.operations_used + excluded.operations_used, \
                 transfer_used = usage_days.transfer_used + excluded.transfer_used",
            )
            .bind(org.to_string())
            .bind(day)
            .bind(amount(operations))
            .bind(amount(transfer));
            self.run(add).await?;
        }
        Ok((outcomes, usage))
    }

    async fn usage(&mut self, org: OrgId, period_start: OffsetDateTime) -> StoreResult<Option<UsageRow>> {
        self.row(
            Stmt::new("SELECT * FROM usage_periods WHERE org_id = ? AND period_start = ?")
                .bind(org.to_string())
                .bind(micros(period_start)),
        )
        .await
    }

    async fn usage_days(
        &mut self,
        org: OrgId,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<Vec<UsageDayRow>> {
        let days = Stmt::new("SELECT * FROM usage_days WHERE org_id = ? AND day >= ? AND day < ? ORDER BY day")
            .bind(org.to_string())
            .bind(micros(day_of(since)))
            .bind(micros(until));
        self.rows(days).await
    }

    async fn usage_history(&mut self, org: OrgId, limit: u32) -> StoreResult<Vec<UsageRow>> {
        self.rows(
            Stmt::new("SELECT * FROM usage_periods WHERE org_id = ? ORDER BY period_start DESC LIMIT ?")
                .bind(org.to_string())
                .bind(i64::from(limit)),
        )
        .await
    }

    async fn claim_usage_alert(
        &mut self,
        org: OrgId,
        period_start: OffsetDateTime,
        threshold: u64,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let result = self.run(Stmt::new(
            "INSERT INTO usage_alerts (org_id, period_start, threshold, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(org.to_string())
        .bind(micros(period_start))
        .bind(amount(threshold))
        .bind(micros(at))).await?;
        Ok(result == 1)
    }

    async fn insert_asset(&mut self, a: &AssetRow) -> StoreResult<()> {
        let columns = asset_columns(a).set("id", a.id.to_string()).set("org_id", a.org_id.to_string());
        let columns =
            columns.set("created_by", a.created_by.map(|u| u.to_string())).set("created_at", micros(a.created_at));
        self.run(columns.set("version", a.version).insert("assets")).await.map(drop)
    }

    async fn asset(&mut self, id: Uuid) -> StoreResult<Option<AssetRow>> {
        self.row(Stmt::new("SELECT * FROM assets WHERE id = ?").bind(id.to_string())).await
    }

    async fn assets_of_org(&mut self, org: OrgId, before: Option<Uuid>, limit: u32) -> StoreResult<Vec<AssetRow>> {
        let page = Stmt::new("SELECT * FROM assets WHERE org_id = ?").bind(org.to_string()).newest_first(
            "id",
            before.map(|b| b.to_string()),
            limit,
        );
        self.rows(page).await
    }

    async fn update_asset(&mut self, a: &AssetRow) -> StoreResult<()> {
        self.apply_one(asset_columns(a).update_versioned("assets", a.id.to_string(), a.version)).await
    }

    async fn asset_totals(&mut self, org: OrgId) -> StoreResult<AssetTotals> {
        let row = self.fetch_one_required(Stmt::new(
            "SELECT \
               CAST(COALESCE(SUM(CASE WHEN kind = 'data_store' THEN 1 ELSE 0 END), 0) AS BIGINT) AS data_stores, \
               CAST(COALESCE(SUM(CASE WHEN kind = 'data_store' THEN size_bytes ELSE 0 END), 0) AS BIGINT) AS data_store_bytes, \
               CAST(COALESCE(SUM(CASE WHEN kind = 'scenario' THEN 1 ELSE 0 END), 0) AS BIGINT) AS scenarios, \
               CAST(COALESCE(SUM(CASE WHEN kind = 'file' THEN size_bytes ELSE 0 END), 0) AS BIGINT) AS file_bytes \
             FROM assets WHERE org_id = ?",
        )
        .bind(org.to_string())).await?;
        Ok(AssetTotals {
            data_stores: count(get(&row, "data_stores")?),
            data_store_bytes: count(get(&row, "data_store_bytes")?),
            scenarios: count(get(&row, "scenarios")?),
            file_bytes: count(get(&row, "file_bytes")?),
        })
    }

    async fn seats_in_use(&mut self, org: OrgId, now: OffsetDateTime) -> StoreResult<u64> {
        let seats = Stmt::new(
            "SELECT (SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.org_id = ? AND m.ended_at IS NULL AND u.kind = 'person') + \
                    (SELECT COUNT(*) FROM invitations i WHERE i.org_id = ? AND i.accepted_at IS NULL \
                     AND i.cancelled_at IS NULL AND i.expires_at > ?) AS n",
        );
        let n: i64 = self.scalar(seats.bind(org.to_string()).bind(org.to_string()).bind(micros(now)), "n").await?;
        Ok(count(n))
    }

    async fn team_count(&mut self, org: OrgId) -> StoreResult<u64> {
        let teams = Stmt::new("SELECT COUNT(*) AS n FROM teams WHERE org_id = ? AND archived_at IS NULL");
        let n: i64 = self.scalar(teams.bind(org.to_string()), "n").await?;
        Ok(count(n))
    }

    async fn check_facts(
        &mut self,
        user: UserId,
        org: OrgId,
        period_start: OffsetDateTime,
    ) -> StoreResult<Option<CheckFacts>> {
        self.row(
            Stmt::new(
                "SELECT u.status, m.role, m.dormant, o.license, o.created_at AS org_created_at, \
                    p.operations_used, p.transfer_used \
             FROM users u CROSS JOIN orgs o \
             LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = u.id AND m.ended_at IS NULL \
             LEFT JOIN usage_periods p ON p.org_id = o.id AND p.period_start = ? \
             WHERE u.id = ? AND o.id = ?",
            )
            .bind(micros(period_start))
            .bind(user.to_string())
            .bind(org.to_string()),
        )
        .await
    }
}
