//! Group commit for decisions on SQLite: one writer task takes the decisions waiting to
//! be recorded and commits them in one transaction — one fsync for the batch instead
//! of one per decision. SQLite has one writer at a time anyway, so under load the
//! per-commit sync is what queues; batching removes that queue without weakening
//! durability (each caller is answered only after the commit that holds its row).
//!
//! A batch that fails as a whole (one bad row) is retried row by row, so each caller
//! gets its own answer.

use crate::records::{DECISION_COLUMNS, decision_from_row};
use crate::{DecisionRecord, NewDecision, Recorded, StoreError, new_id, now_ms};
use sqlx::AnyConnection;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

/// Most decisions in one transaction.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Recorded<DecisionRecord>, StoreError>>;

/// The handle to the writer task.
#[derive(Clone)]
pub(crate) struct DecisionWriter {
    tx: mpsc::Sender<(NewDecision, Reply)>,
}

impl DecisionWriter {
    /// Starts the writer on `pool` (it stops when every handle is dropped).
    pub(crate) fn spawn(pool: AnyPool) -> DecisionWriter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(pool, rx));
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

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<(NewDecision, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
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
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(batch.len());
    for (d, _) in batch {
        out.push(insert(&mut tx, d).await?);
    }
    tx.commit().await?;
    Ok(out)
}

/// Inserts one decision (or finds the identical one already recorded).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    d: &NewDecision,
) -> Result<Recorded<DecisionRecord>, StoreError> {
    let inserted = sqlx::query(&format!(
        "INSERT INTO decisions (id, repo, change_ref, base_sha, head_sha, verdict, input_digest, \
         author_kind, agent, trust_score, document, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (repo, change_ref, head_sha, input_digest) DO NOTHING RETURNING {DECISION_COLUMNS}"
    ))
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
    .bind(now_ms())
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
