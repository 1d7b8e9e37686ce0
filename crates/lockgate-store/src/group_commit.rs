//! Group commit for decisions: a writer task takes the decisions waiting to be recorded
//! and commits them with one multi-row INSERT — one round trip and one fsync for the
//! batch instead of one per decision. Under load the per-commit sync is what queues
//! (SQLite has one writer at a time; PostgreSQL's commits wait on the WAL flush);
//! batching removes that queue without weakening durability: each caller is answered
//! only after the commit that holds its row. SQLite runs one writer, PostgreSQL a few
//! whose commits overlap ([`crate::Backend`]).
//!
//! A batch that fails as a whole (one bad row) is retried row by row, so each caller
//! gets its own answer.

use crate::records::{DECISION_COLUMNS, decision_from_row};
use crate::{DecisionRecord, NewDecision, Recorded, StoreError, new_id, now_ms};
use sqlx::AnyConnection;
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Most decisions in one transaction.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Recorded<DecisionRecord>, StoreError>>;

/// The handle to the writer task.
#[derive(Clone)]
pub(crate) struct DecisionWriter {
    tx: mpsc::Sender<(NewDecision, Reply)>,
}

impl DecisionWriter {
    /// Starts `writers` writer tasks on `pool` (they stop when every handle is dropped).
    /// While one commits its batch, the next takes the decisions that arrived meanwhile.
    pub(crate) fn spawn(pool: AnyPool, writers: usize) -> DecisionWriter {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(run(pool.clone(), rx.clone()));
        }
        DecisionWriter { tx }
    }

    /// Records `d` and waits for the commit.
    pub(crate) async fn record(
        &self,
        d: NewDecision,
    ) -> Result<Recorded<DecisionRecord>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Database(sqlx::Error::PoolClosed);
        self.tx.send((d, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(pool: AnyPool, rx: Arc<Mutex<mpsc::Receiver<(NewDecision, Reply)>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        match commit_batch(&pool, &batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(_) => {
                for (d, reply) in batch {
                    let result = async {
                        let mut conn = pool.acquire().await?;
                        insert(&mut conn, &d).await
                    }
                    .await;
                    let _ = reply.send(result);
                }
            }
        }
    }
}

async fn commit_batch(
    pool: &AnyPool,
    batch: &[(NewDecision, Reply)],
) -> Result<Vec<Recorded<DecisionRecord>>, StoreError> {
    let mut conn = pool.acquire().await?;
    if let [(d, _)] = batch {
        return Ok(vec![insert(&mut conn, d).await?]);
    }
    let decisions: Vec<&NewDecision> = batch.iter().map(|(d, _)| d).collect();
    // One statement is one round trip and, outside a transaction, one commit.
    let mut inserted: HashMap<DecisionKey, DecisionRecord> = HashMap::new();
    let sql = insert_many_sql(decisions.len());
    for row in bind_many(sqlx::query(&sql), &decisions)
        .fetch_all(&mut *conn)
        .await?
    {
        let record = decision_from_row(&row)?;
        inserted.insert(DecisionKey::of_record(&record), record);
    }
    let mut out = Vec::with_capacity(batch.len());
    for d in decisions {
        // A decision recorded before (or twice in this batch) comes back from its row.
        match inserted.remove(&DecisionKey::of(d)) {
            Some(record) => out.push(Recorded {
                record,
                changed: true,
            }),
            None => out.push(insert(&mut conn, d).await?),
        }
    }
    Ok(out)
}

/// The identity of a decision: a re-check of the same input is the same decision.
#[derive(PartialEq, Eq, Hash)]
struct DecisionKey(String, String, String, String);

impl DecisionKey {
    fn of(d: &NewDecision) -> DecisionKey {
        DecisionKey(
            d.repo.clone(),
            d.change_ref.clone(),
            d.head_sha.clone(),
            d.input_digest.clone(),
        )
    }

    fn of_record(r: &DecisionRecord) -> DecisionKey {
        DecisionKey(
            r.repo.clone(),
            r.change_ref.clone(),
            r.head_sha.clone(),
            r.input_digest.clone(),
        )
    }
}

const INSERT_COLUMNS: &str = "id, repo, change_ref, base_sha, head_sha, verdict, input_digest, \
     author_kind, agent, trust_score, document, created_ms";

/// One multi-row INSERT of `rows` decisions, returning the rows it inserted.
fn insert_many_sql(rows: usize) -> String {
    let placeholders: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=12).map(|c| format!("${}", row * 12 + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO decisions ({INSERT_COLUMNS}) VALUES {} \
         ON CONFLICT (repo, change_ref, head_sha, input_digest) DO NOTHING RETURNING {DECISION_COLUMNS}",
        placeholders.join(", ")
    )
}

/// Binds the values of `decisions` to [`insert_many_sql`]'s placeholders, in order.
fn bind_many<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    decisions: &[&'q NewDecision],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let now = now_ms();
    for d in decisions {
        query = query
            .bind(new_id())
            .bind(&d.repo)
            .bind(&d.change_ref)
            .bind(&d.base_sha)
            .bind(&d.head_sha)
            .bind(&d.verdict)
            .bind(&d.input_digest)
            .bind(&d.author_kind)
            .bind(d.agent.as_deref())
            .bind(i64::from(d.trust_score))
            .bind(&d.document)
            .bind(now);
    }
    query
}

/// Inserts one decision (or finds the identical one already recorded).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    d: &NewDecision,
) -> Result<Recorded<DecisionRecord>, StoreError> {
    let sql = insert_many_sql(1);
    let inserted = bind_many(sqlx::query(&sql), &[d])
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = inserted {
        return Ok(Recorded {
            record: decision_from_row(&row)?,
            changed: true,
        });
    }
    let row = sqlx::query(&format!(
        "SELECT {DECISION_COLUMNS} FROM decisions \
         WHERE repo = $1 AND change_ref = $2 AND head_sha = $3 AND input_digest = $4"
    ))
    .bind(&d.repo)
    .bind(&d.change_ref)
    .bind(&d.head_sha)
    .bind(&d.input_digest)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Recorded {
        record: decision_from_row(&row)?,
        changed: false,
    })
}
