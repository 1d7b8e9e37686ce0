//! What stops an agent's calls — revoked credentials and agent holds (freezes) — kept
//! in memory on each replica and refreshed from the ledger every `block_refresh`
//! (default 500 ms), so checking a call costs no database read. A change made through
//! this replica (a hold placed or released, a freeze) applies at once; one made
//! elsewhere (another replica, `lockgate token revoke`) within one refresh.
//!
//! Fail closed: when the snapshot could not be refreshed for `STALE_AFTER` refreshes,
//! calls are refused as "ledger unavailable" rather than checked against old state.

use lockgate_store::{HoldRecord, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Missed refreshes after which the snapshot is too old to trust.
const STALE_AFTER: u32 = 10;

/// Why an agent's model calls are refused before they reach an upstream.
#[derive(Debug, Clone)]
pub enum CallBlock {
    /// The credential was revoked.
    Revoked,
    /// The agent is frozen by this hold.
    Frozen(HoldRecord),
}

/// The snapshot and how to keep it current.
pub struct Blocks {
    every: Duration,
    state: RwLock<Snapshot>,
}

#[derive(Default)]
struct Snapshot {
    revoked: HashSet<String>,
    /// Per agent: its oldest active hold.
    frozen: HashMap<String, HoldRecord>,
    refreshed: Option<Instant>,
}

/// The snapshot is too old to trust.
#[derive(Debug)]
pub struct Stale;

impl Blocks {
    pub fn new(every: Duration) -> Blocks {
        Blocks {
            every,
            state: RwLock::new(Snapshot::default()),
        }
    }

    /// The refresh interval.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Reads new revocations and the active agent holds from the ledger.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        // Revocations are only ever added: the same count is the same set.
        let known = self.read().revoked.len() as i64;
        let revoked = match store.revocation_count().await? {
            n if n == known => None,
            _ => Some(store.revoked_credentials().await?),
        };
        let holds = store.active_agent_holds().await?;
        let mut frozen: HashMap<String, HoldRecord> = HashMap::new();
        for hold in holds {
            // Holds come oldest first: keep each agent's first.
            frozen.entry(hold.target.clone()).or_insert(hold);
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(revoked) = revoked {
            state.revoked = revoked.into_iter().collect();
        }
        state.frozen = frozen;
        state.refreshed = Some(Instant::now());
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call with `credential` for `agent` must be refused.
    pub fn check(&self, credential: &str, agent: &str) -> Result<Option<CallBlock>, Stale> {
        let state = self.read();
        let fresh = state
            .refreshed
            .is_some_and(|t| t.elapsed() < self.every * STALE_AFTER);
        if !fresh {
            return Err(Stale);
        }
        if state.revoked.contains(credential) {
            return Ok(Some(CallBlock::Revoked));
        }
        Ok(state.frozen.get(agent).cloned().map(CallBlock::Frozen))
    }
}

/// Refreshes the snapshot every interval until the server stops.
pub async fn keep_fresh(state: std::sync::Arc<crate::AppState>) {
    let Some(gateway) = &state.gateway else {
        return;
    };
    loop {
        if let Err(e) = gateway.blocks.refresh(&state.store).await {
            tracing::warn!(error = %e, "refreshing revocations and freezes");
        }
        tokio::time::sleep(gateway.blocks.every()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockgate_store::{HoldScope, NewHold};

    #[tokio::test]
    async fn a_snapshot_follows_the_ledger_and_fails_closed_before_its_first_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let store = Store::open(&url).await.unwrap();
        let blocks = Blocks::new(Duration::from_millis(100));
        assert!(blocks.check("c1", "codex").is_err(), "never read: refuse");
        blocks.refresh(&store).await.unwrap();
        assert!(blocks.check("c1", "codex").unwrap().is_none());

        store.revoke_credential("c1", "ada").await.unwrap();
        let hold = store
            .place_hold(&NewHold {
                scope: HoldScope::Agent,
                target: "codex".into(),
                reason: "spend spike".into(),
                placed_by: "anomaly".into(),
            })
            .await
            .unwrap();
        // Not seen until the next refresh.
        assert!(blocks.check("c1", "codex").unwrap().is_none());
        blocks.refresh(&store).await.unwrap();
        assert!(matches!(
            blocks.check("c1", "claude-code"),
            Ok(Some(CallBlock::Revoked))
        ));
        match blocks.check("c2", "codex") {
            Ok(Some(CallBlock::Frozen(h))) => assert_eq!(h.id, hold.id),
            _ => panic!("codex is frozen"),
        }
        assert!(blocks.check("c2", "claude-code").unwrap().is_none());
        store.release_hold(&hold.id, "ada").await.unwrap();
        blocks.refresh(&store).await.unwrap();
        assert!(blocks.check("c2", "codex").unwrap().is_none());

        // Ten missed refreshes: too old to trust.
        std::thread::sleep(Duration::from_millis(1050));
        assert!(blocks.check("c2", "codex").is_err());
        store.close().await;
    }
}
