//! Budget leases: the gateway's hot path without a durable write per call.
//!
//! A replica reserves a slice of a credential's budget lines — `calls_per_lease` times
//! the call's worst case, at most an eighth of the smallest line's limit — as one
//! ordinary reservation in the ledger (the same conditional UPDATEs as a single call,
//! so no number of replicas can take a line past its limit). Calls on the same lines
//! then draw their worst case from the slice in memory and give back the unused part
//! when they settle. A slice that has no room for the next call, is older than
//! `max_age` or idle for `idle` is retired: once no call drawn from it is in flight,
//! it settles in the ledger with what its calls cost, and the rest is free again.
//!
//! Near a limit the slices get small; when even two calls do not fit in one, or the
//! ledger refuses the slice, calls are reserved one by one as before — so the last of a
//! budget is spent exactly, and a refusal names the line that is full.
//!
//! A crash loses the slices' in-memory accounts, never budget: their reservations stay
//! open in the ledger until the abandoned-call sweep charges them in full.

use lockgate_gateway::price::Micros;
use lockgate_store::{BudgetLine, NewReservation, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A slice is at most this fraction of the smallest limit among its lines.
const MAX_SHARE_OF_LIMIT: i64 = 8;

/// How slices are sized and when they retire.
#[derive(Debug, Clone, Copy)]
pub struct LeasePolicy {
    /// A slice holds this many calls' worst case (0: no leases, every call reserved
    /// on its own).
    pub calls_per_lease: u32,
    /// A slice unused this long is settled.
    pub idle: Duration,
    /// A slice older than this takes no more calls.
    pub max_age: Duration,
}

/// The slices this replica holds, by their exact budget lines.
pub struct Leases {
    policy: LeasePolicy,
    /// Retired slices the ledger could not settle yet.
    unsettled: Mutex<Vec<Retired>>,
    /// Slices taken since start.
    taken: std::sync::atomic::AtomicU64,
    table: Mutex<HashMap<Vec<BudgetLine>, Vec<Slice>>>,
    /// One slice acquisition at a time per set of lines.
    acquiring: Mutex<HashMap<Vec<BudgetLine>, Arc<tokio::sync::Mutex<()>>>>,
}

struct Slice {
    id: String,
    amount: Micros,
    /// Worst cases of the calls drawn and not yet settled.
    in_flight: Micros,
    /// What settled calls cost.
    spent: Micros,
    created: Instant,
    last_used: Instant,
    retiring: bool,
}

impl Slice {
    fn room(&self) -> Micros {
        self.amount - self.spent - self.in_flight
    }
}

/// A call's share of a slice, returned with its cost by [`Leases::settle`].
#[derive(Debug)]
pub struct Draw {
    pub lease: String,
    lines: Vec<BudgetLine>,
    worst: Micros,
}

/// A retired slice to settle in the ledger: its reservation and what its calls cost.
pub type Retired = (String, Micros);

impl Leases {
    pub fn new(policy: LeasePolicy) -> Leases {
        Leases {
            policy,
            unsettled: Mutex::new(Vec::new()),
            taken: std::sync::atomic::AtomicU64::new(0),
            table: Mutex::new(HashMap::new()),
            acquiring: Mutex::new(HashMap::new()),
        }
    }

    /// Whether calls draw from slices at all.
    pub fn enabled(&self) -> bool {
        self.policy.calls_per_lease > 0
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<BudgetLine>, Vec<Slice>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `call.amount_micros` from a slice of `call.lines`, leasing a new slice when
    /// none has room. `Ok(None)`: no slice (leases off, or the lines too near their
    /// limits) — reserve the call on its own.
    pub async fn draw(
        &self,
        store: &Store,
        call: &NewReservation,
    ) -> Result<Option<Draw>, StoreError> {
        if !self.enabled() {
            return Ok(None);
        }
        let mut lines = call.lines.clone();
        lines.sort();
        let worst = call.amount_micros;
        if let Some(draw) = self.take(&lines, worst) {
            return Ok(Some(draw));
        }
        let smallest = lines.iter().map(|l| l.limit_micros).min().unwrap_or(0);
        let size = worst
            .saturating_mul(i64::from(self.policy.calls_per_lease))
            .min(smallest / MAX_SHARE_OF_LIMIT);
        if size < worst.saturating_mul(2) {
            return Ok(None);
        }
        let gate = {
            let mut acquiring = self.acquiring.lock().unwrap_or_else(|e| e.into_inner());
            acquiring.entry(lines.clone()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        // Another call may have leased while this one waited.
        if let Some(draw) = self.take(&lines, worst) {
            return Ok(Some(draw));
        }
        let slice = NewReservation {
            amount_micros: size,
            lines: lines.clone(),
            lease: true,
            ..call.clone()
        };
        let Ok(id) = store.reserve(&slice).await? else {
            return Ok(None);
        };
        self.taken
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        self.table().entry(lines.clone()).or_default().push(Slice {
            id: id.clone(),
            amount: size,
            in_flight: worst,
            spent: 0,
            created: now,
            last_used: now,
            retiring: false,
        });
        Ok(Some(Draw {
            lease: id,
            lines,
            worst,
        }))
    }

    /// Draws from a slice with room, retiring those without.
    fn take(&self, lines: &[BudgetLine], worst: Micros) -> Option<Draw> {
        let mut table = self.table();
        let slices = table.get_mut(lines)?;
        let now = Instant::now();
        for slice in slices.iter_mut().filter(|s| !s.retiring) {
            if slice.room() >= worst && now.duration_since(slice.created) < self.policy.max_age {
                slice.in_flight += worst;
                slice.last_used = now;
                return Some(Draw {
                    lease: slice.id.clone(),
                    lines: lines.to_vec(),
                    worst,
                });
            }
            slice.retiring = true;
        }
        None
    }

    /// Gives a call's worst case back and counts its cost (as reported, like a call
    /// reserved on its own: the ledger records what was spent). A retired slice whose
    /// last call this was is returned, to settle in the ledger.
    pub fn settle(&self, draw: Draw, cost: Micros) -> Option<Retired> {
        let mut table = self.table();
        let slices = table.get_mut(&draw.lines)?;
        let at = slices.iter().position(|s| s.id == draw.lease)?;
        let slice = &mut slices[at];
        slice.in_flight -= draw.worst;
        slice.spent += cost.max(0);
        if slice.retiring && slice.in_flight == 0 {
            let done = slices.swap_remove(at);
            return Some((done.id, done.spent));
        }
        None
    }

    /// Removes the slices that are idle, too old or retired and have no call in flight
    /// (all of them when `all`), to settle in the ledger.
    pub fn due(&self, all: bool) -> Vec<Retired> {
        let mut out: Vec<Retired> =
            std::mem::take(&mut *self.unsettled.lock().unwrap_or_else(|e| e.into_inner()));
        let mut table = self.table();
        let now = Instant::now();
        for slices in table.values_mut() {
            slices.retain(|s| {
                let done = s.in_flight == 0
                    && (all
                        || s.retiring
                        || now.duration_since(s.last_used) >= self.policy.idle
                        || now.duration_since(s.created) >= self.policy.max_age);
                if done {
                    out.push((s.id.clone(), s.spent));
                }
                !done
            });
        }
        table.retain(|_, slices| !slices.is_empty());
        // Forget the acquisition locks of lines without slices that nobody holds (the
        // lines change every day, so they would otherwise pile up).
        self.acquiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|lines, gate| table.contains_key(lines) || Arc::strong_count(gate) > 1);
        out
    }
}

impl Leases {
    /// Slices taken since start, and slices held now.
    pub fn counts(&self) -> (u64, usize) {
        let open = self.table().values().map(Vec::len).sum();
        (self.taken.load(std::sync::atomic::Ordering::Relaxed), open)
    }

    /// Keeps slices the ledger could not settle, for the next [`Leases::due`].
    pub fn retry_later(&self, failed: Vec<Retired>) {
        if !failed.is_empty() {
            self.unsettled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(failed);
        }
    }
}

/// Settles retired slices in the ledger; those that could not be settled are returned
/// (to try again).
pub async fn settle_in_ledger(store: &Store, retired: Vec<Retired>) -> Vec<Retired> {
    let mut failed = Vec::new();
    for (id, spent) in retired {
        if let Err(e) = store.settle(&id, spent).await {
            tracing::warn!(lease = %id, error = %e, "settling a budget lease");
            failed.push((id, spent));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(calls: u32) -> LeasePolicy {
        LeasePolicy {
            calls_per_lease: calls,
            idle: Duration::from_millis(50),
            max_age: Duration::from_secs(60),
        }
    }

    fn call(amount: Micros, limit: Micros) -> NewReservation {
        NewReservation {
            agent: "claude-code".into(),
            project: "acme/api".into(),
            credential: "c0ffee".into(),
            model: "m".into(),
            amount_micros: amount,
            lines: vec![BudgetLine {
                scope: "agent:claude-code".into(),
                period: "day:2026-11-28".into(),
                limit_micros: limit,
            }],
            lease: false,
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    async fn line(store: &Store) -> (Micros, Micros) {
        let b = store
            .budget("agent:claude-code", "day:2026-11-28")
            .await
            .unwrap()
            .unwrap();
        (b.spent_micros, b.reserved_micros)
    }

    #[tokio::test]
    async fn calls_draw_from_one_slice_and_the_ledger_gets_their_cost_when_it_settles() {
        let (_dir, store) = store().await;
        let leases = Leases::new(policy(4));
        let mut draws = Vec::new();
        for _ in 0..4 {
            draws.push(
                leases
                    .draw(&store, &call(100, 1_000_000))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert!(draws.iter().all(|d| d.lease == draws[0].lease), "one slice");
        assert_eq!(line(&store).await, (0, 400));
        // The fifth needs a second slice.
        let fifth = leases
            .draw(&store, &call(100, 1_000_000))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(fifth.lease, draws[0].lease);
        assert_eq!(line(&store).await, (0, 800));
        let mut retired = Vec::new();
        for d in draws {
            retired.extend(leases.settle(d, 30));
        }
        // The full slice retired with its last call: 4 × 30 spent, the rest released.
        assert_eq!(retired.len(), 1);
        assert!(settle_in_ledger(&store, retired).await.is_empty());
        assert_eq!(line(&store).await, (120, 400));
        assert!(leases.settle(fifth, 70).is_none(), "still open");
        std::thread::sleep(Duration::from_millis(60));
        let idle = leases.due(false);
        assert_eq!(idle.len(), 1);
        assert!(leases.table().is_empty());
        assert!(
            leases.acquiring.lock().unwrap().is_empty(),
            "nothing kept for lines without slices"
        );
        assert!(settle_in_ledger(&store, idle).await.is_empty());
        assert_eq!(line(&store).await, (190, 0));
        store.close().await;
    }

    #[tokio::test]
    async fn near_a_limit_calls_are_reserved_one_by_one() {
        let (_dir, store) = store().await;
        let leases = Leases::new(policy(16));
        // An eighth of 1,000 is 125: not room for two calls of 100.
        assert!(
            leases
                .draw(&store, &call(100, 1_000))
                .await
                .unwrap()
                .is_none()
        );
        // Off: never.
        let off = Leases::new(policy(0));
        assert!(
            off.draw(&store, &call(1, 1_000_000))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .budget("agent:claude-code", "day:2026-11-28")
                .await
                .unwrap(),
            None,
            "nothing reserved"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn a_slice_never_takes_more_than_its_amount() {
        let (_dir, store) = store().await;
        let leases = Arc::new(Leases::new(policy(8)));
        let store = Arc::new(store);
        // 200 concurrent calls of 100 against 8,000: slices of 800 (an eighth of the
        // limit would be 1,000); the ledger holds at most the limit.
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (leases, store) = (leases.clone(), store.clone());
                tokio::spawn(async move { leases.draw(&store, &call(100, 8_000)).await.unwrap() })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            if t.await.unwrap().is_some() {
                granted += 1;
            }
        }
        let (spent, reserved) = line(&store).await;
        assert_eq!(spent, 0);
        assert!(reserved <= 8_000, "{reserved}");
        assert_eq!(granted * 100, reserved, "every slice's room was handed out");
    }
}
