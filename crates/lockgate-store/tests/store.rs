//! The ledger's behaviour, case by case, on both backends: an SQLite file and a
//! PostgreSQL database (a scratch database on the server `LOCKGATE_TEST_DATABASE_URL`
//! names; without it the PostgreSQL half prints a notice and is skipped).

use lockgate_store::scratch::{self, TEST_DATABASE_URL};
use lockgate_store::*;
use std::future::Future;

/// Runs `case` against a fresh SQLite file and a fresh PostgreSQL database.
fn on_both<F, Fut>(name: &str, case: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    on_each_database(name, |url| {
        let case = &case;
        async move {
            let store = Store::open(&url).await.unwrap();
            case(store.clone()).await;
            store.close().await;
        }
    });
}

/// Runs `case` with two stores on one database — two replicas — on each backend.
fn on_both_replicas<F, Fut>(name: &str, case: F)
where
    F: Fn([Store; 2]) -> Fut,
    Fut: Future<Output = ()>,
{
    on_each_database(name, |url| {
        let case = &case;
        async move {
            let one = Store::open(&url).await.unwrap();
            let two = Store::open(&url).await.unwrap();
            case([one.clone(), two.clone()]).await;
            one.close().await;
            two.close().await;
        }
    });
}

/// Runs `case` with the URL of a fresh SQLite file, then of a fresh PostgreSQL
/// database when one is configured.
fn on_each_database<F, Fut>(name: &str, case: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        case(url).await;

        match std::env::var(TEST_DATABASE_URL) {
            Ok(admin) if !admin.is_empty() => {
                let (url, db) = scratch::create_database(&admin).await.unwrap();
                eprintln!("{name}: PostgreSQL half on scratch database {db}");
                case(url).await;
                scratch::drop_database(&admin, &db).await.unwrap();
            }
            _ => notice(name),
        }
    });
}

/// Says, past the test harness's output capture, that PostgreSQL was skipped.
fn notice(name: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: {name}: PostgreSQL half skipped — set {TEST_DATABASE_URL}=postgres://user@host/db to run it"
    );
}

const HEAD1: &str = "1111111111111111111111111111111111111111";
const HEAD2: &str = "2222222222222222222222222222222222222222";
const BASE: &str = "0000000000000000000000000000000000000000";

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn decision(change: &str, head: &str, verdict: &str, n: u8) -> NewDecision {
    NewDecision {
        repo: "acme/api".into(),
        change_ref: change.into(),
        base_sha: BASE.into(),
        head_sha: head.into(),
        verdict: verdict.into(),
        input_digest: digest(n),
        author_kind: "agent".into(),
        agent: Some("claude-code".into()),
        trust_score: 71,
        document: format!("{{\"verdict\":\"{verdict}\"}}"),
    }
}

fn approval(head: &str, who: &str, state: ApprovalState) -> NewApproval {
    NewApproval {
        repo: "acme/api".into(),
        change_ref: "pr/1".into(),
        head_sha: head.into(),
        approver: who.into(),
        state,
        source: "web".into(),
        comment: String::new(),
    }
}

#[test]
fn decisions_are_idempotent_per_input_and_listed_by_change_and_commit() {
    on_both("decisions", |store| async move {
        let first = store
            .record_decision(&decision("pr/1", HEAD1, "needs_approval", 1))
            .await
            .unwrap();
        assert!(first.changed);
        let again = store
            .record_decision(&decision("pr/1", HEAD1, "needs_approval", 1))
            .await
            .unwrap();
        assert!(!again.changed);
        assert_eq!(again.record, first.record);
        assert_eq!(first.record.trust_score, 71);
        assert_eq!(first.record.agent.as_deref(), Some("claude-code"));

        store
            .record_decision(&decision("pr/1", HEAD2, "auto_merge", 2))
            .await
            .unwrap();
        let history = store.decision_history("acme/api", "pr/1").await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].head_sha, HEAD1);
        let at_head = store.decisions_for_commit("acme/api", HEAD2).await.unwrap();
        assert_eq!(at_head.len(), 1);
        assert_eq!(at_head[0].verdict, "auto_merge");
        assert_eq!(store.counts().await.unwrap().decisions, 2);
    });
}

#[test]
fn pending_lists_changes_whose_latest_decision_needs_approval() {
    on_both("pending", |store| async move {
        store
            .record_decision(&decision("pr/1", HEAD1, "needs_approval", 1))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        store
            .record_decision(&decision("pr/2", HEAD1, "needs_approval", 2))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        // pr/2 was re-checked after a push and may now merge: no longer pending.
        store
            .record_decision(&decision("pr/2", HEAD2, "auto_merge", 3))
            .await
            .unwrap();
        let pending = store.pending(None, 100).await.unwrap();
        let changes: Vec<&str> = pending.iter().map(|d| d.change_ref.as_str()).collect();
        assert_eq!(changes, ["pr/1"]);
        assert_eq!(store.pending(Some("acme/api"), 100).await.unwrap().len(), 1);
        assert!(
            store
                .pending(Some("other/repo"), 100)
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn approvals_bind_to_the_head_and_are_idempotent_per_person() {
    on_both("approvals", |store| async move {
        let a = store
            .record_approval(&approval(HEAD1, "ada", ApprovalState::Approved))
            .await
            .unwrap();
        assert!(a.changed);
        let again = store
            .record_approval(&approval(HEAD1, "ada", ApprovalState::Approved))
            .await
            .unwrap();
        assert!(!again.changed, "the same approval twice is one approval");
        assert_eq!(again.record.id, a.record.id);
        store
            .record_approval(&approval(HEAD1, "grace", ApprovalState::ChangesRequested))
            .await
            .unwrap();
        let flipped = store
            .record_approval(&approval(HEAD1, "grace", ApprovalState::Approved))
            .await
            .unwrap();
        assert!(flipped.changed);
        let at_head = store
            .approvals_for_head("acme/api", "pr/1", HEAD1)
            .await
            .unwrap();
        assert_eq!(at_head.len(), 2);
        assert!(at_head.iter().all(|x| x.state == ApprovalState::Approved));
        // A new push: nothing approved for the new head.
        assert!(
            store
                .approvals_for_head("acme/api", "pr/1", HEAD2)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.counts().await.unwrap().approvals, 2);
    });
}

#[test]
fn concurrent_identical_approvals_store_one_row() {
    on_both("concurrent approvals", |store| async move {
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .record_approval(&approval(HEAD1, "ada", ApprovalState::Approved))
                    .await
                    .unwrap()
                    .changed
            }));
        }
        let mut changed = 0;
        for t in tasks {
            changed += usize::from(t.await.unwrap());
        }
        assert_eq!(changed, 1, "exactly one call recorded it");
        assert_eq!(store.counts().await.unwrap().approvals, 1);
    });
}

/// Many decisions at once (SQLite commits them in groups): each caller gets its own
/// row back, duplicates inside one group are one row, and every row is stored.
#[test]
fn concurrent_decisions_are_each_answered_and_stored_once() {
    on_both("concurrent decisions", |store| async move {
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let store = store.clone();
            // 100 changes, each recorded twice.
            let change = format!("pr/{}", i % 100);
            tasks.push(tokio::spawn(async move {
                let r = store
                    .record_decision(&decision(&change, HEAD1, "needs_approval", 1))
                    .await
                    .unwrap();
                assert_eq!(r.record.change_ref, change, "the caller's own row");
                (change, r.record.id, r.changed)
            }));
        }
        let mut ids = std::collections::BTreeMap::<String, Vec<(String, bool)>>::new();
        for t in tasks {
            let (change, id, changed) = t.await.unwrap();
            ids.entry(change).or_default().push((id, changed));
        }
        assert_eq!(ids.len(), 100);
        for (change, calls) in &ids {
            assert_eq!(calls[0].0, calls[1].0, "{change}: both calls see one row");
            assert_eq!(
                calls.iter().filter(|(_, changed)| *changed).count(),
                1,
                "{change}: exactly one call recorded it"
            );
        }
        assert_eq!(store.counts().await.unwrap().decisions, 100);
    });
}

#[test]
fn outcomes_make_the_track_record() {
    on_both("outcomes", |store| async move {
        let outcome = |sha: &str, o: Outcome, agent: &str| NewOutcome {
            repo: "acme/api".into(),
            change_ref: "pr/1".into(),
            commit_sha: sha.into(),
            agent: Some(agent.into()),
            outcome: o,
        };
        assert!(
            store
                .record_outcome(&outcome(HEAD1, Outcome::Merged, "codex"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .record_outcome(&outcome(HEAD1, Outcome::Merged, "codex"))
                .await
                .unwrap()
        );
        store
            .record_outcome(&outcome(HEAD1, Outcome::Reverted, "codex"))
            .await
            .unwrap();
        store
            .record_outcome(&outcome(HEAD2, Outcome::Merged, "codex"))
            .await
            .unwrap();
        store
            .record_outcome(&outcome(BASE, Outcome::Rejected, "devin"))
            .await
            .unwrap();
        let r = store.track_record("codex").await.unwrap();
        assert_eq!((r.merged, r.reverted, r.rejected), (2, 1, 0));
        assert_eq!(store.track_record("devin").await.unwrap().rejected, 1);
        assert_eq!(
            store.track_record("nobody").await.unwrap(),
            Default::default()
        );
    });
}

#[test]
fn holds_are_placed_listed_and_released_once() {
    on_both("holds", |store| async move {
        let hold = store
            .place_hold(&NewHold {
                scope: HoldScope::Agent,
                target: "codex".into(),
                reason: "incident 42: spend spike".into(),
                placed_by: "ada".into(),
            })
            .await
            .unwrap();
        store
            .place_hold(&NewHold {
                scope: HoldScope::Global,
                target: String::new(),
                reason: "release freeze".into(),
                placed_by: "grace".into(),
            })
            .await
            .unwrap();
        assert_eq!(store.active_holds().await.unwrap().len(), 2);
        let released = store.release_hold(&hold.id, "ada").await.unwrap();
        assert_eq!(released.released_by.as_deref(), Some("ada"));
        let again = store.release_hold(&hold.id, "grace").await.unwrap();
        assert_eq!(again.released_by.as_deref(), Some("ada"), "released once");
        let active = store.active_holds().await.unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].scope, HoldScope::Global);
        assert!(matches!(
            store.release_hold("nope", "ada").await,
            Err(StoreError::NotFound(_))
        ));
    });
}

#[test]
fn attestations_are_kept_per_commit() {
    on_both("attestations", |store| async move {
        let a = NewAttestation {
            repo: "acme/api".into(),
            commit_sha: HEAD1.into(),
            agent: "claude-code".into(),
            model: Some("claude-sonnet-4-5".into()),
            digest: digest(7),
            bundle: "{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\"}".into(),
        };
        assert!(store.record_attestation(&a).await.unwrap());
        assert!(!store.record_attestation(&a).await.unwrap());
        let got = store
            .attestations_for_commit("acme/api", HEAD1)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].model.as_deref(), Some("claude-sonnet-4-5"));
    });
}

#[test]
fn bad_input_is_refused_before_the_database() {
    on_both("validation", |store| async move {
        let mut d = decision("pr/1", "not-a-sha", "needs_approval", 1);
        assert!(matches!(
            store.record_decision(&d).await,
            Err(StoreError::Invalid {
                field: "head_sha",
                ..
            })
        ));
        d.head_sha = HEAD1.into();
        d.verdict = "maybe".into();
        assert!(matches!(
            store.record_decision(&d).await,
            Err(StoreError::Invalid {
                field: "verdict",
                ..
            })
        ));
        let mut a = approval(HEAD1, "ada\u{0}", ApprovalState::Approved);
        assert!(store.record_approval(&a).await.is_err());
        a.approver = "x".repeat(MAX_NAME + 1);
        assert!(store.record_approval(&a).await.is_err());
        // Text is stored as given (bound parameters, never spliced into SQL).
        let mut a = approval(
            HEAD1,
            "o'brien; DROP TABLE approvals; --",
            ApprovalState::Approved,
        );
        a.comment = "looks good'); --".into();
        let stored = store.record_approval(&a).await.unwrap().record;
        assert_eq!(stored.approver, a.approver);
        assert_eq!(stored.comment, a.comment);
        assert_eq!(store.counts().await.unwrap().approvals, 1);
    });
}

#[test]
fn reopening_keeps_everything_and_migrations_run_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let store = Store::open(&url).await.unwrap();
        store
            .record_decision(&decision("pr/1", HEAD1, "needs_approval", 1))
            .await
            .unwrap();
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.counts().await.unwrap().decisions, 1);
        assert!(matches!(
            Store::open("mysql://x").await,
            Err(StoreError::BadUrl(_))
        ));
    });
}

#[test]
fn tokens_are_hashed_at_rest_checked_and_revocable() {
    on_both("tokens", |store| async move {
        let (token, record) = store.create_token("ada", Role::Person).await.unwrap();
        assert!(token.starts_with(&format!("lgt_{}_", record.id)));
        let found = store.authenticate(&token).await.unwrap().unwrap();
        assert_eq!((found.subject.as_str(), found.role), ("ada", Role::Person));
        // Wrong secret, malformed, unknown id: all simply not authenticated.
        let mut wrong = token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert!(store.authenticate(&wrong).await.unwrap().is_none());
        assert!(store.authenticate("lgt_x_y").await.unwrap().is_none());
        assert!(
            store
                .authenticate("Bearer nonsense")
                .await
                .unwrap()
                .is_none()
        );
        // Revoked at once.
        store.revoke_token(&record.id).await.unwrap();
        assert!(store.authenticate(&token).await.unwrap().is_none());
    });
}

#[test]
fn the_same_head_in_two_changes_is_two_decisions() {
    on_both("stacked changes", |store| async move {
        let a = store
            .record_decision(&decision("pr/1", HEAD1, "needs_approval", 1))
            .await
            .unwrap();
        let b = store
            .record_decision(&decision("pr/2", HEAD1, "needs_approval", 1))
            .await
            .unwrap();
        assert!(a.changed && b.changed);
        assert_ne!(a.record.id, b.record.id);
        assert_eq!(
            store
                .decision_history("acme/api", "pr/2")
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .decisions_for_commit("acme/api", HEAD1)
                .await
                .unwrap()
                .len(),
            2
        );
    });
}

fn line(scope: &str, period: &str, limit: i64) -> BudgetLine {
    BudgetLine {
        scope: scope.into(),
        period: period.into(),
        limit_micros: limit,
    }
}

fn call(amount: i64, lines: Vec<BudgetLine>) -> NewReservation {
    NewReservation {
        agent: "claude-code".into(),
        project: "acme/api".into(),
        credential: "c0ffee".into(),
        model: "claude-sonnet-4-5".into(),
        amount_micros: amount,
        lines,
        lease: false,
    }
}

/// Fires `n` reservations of `amount` at once, alternating between two stores on one
/// database (two replicas); returns how many were granted, with their ids.
async fn burst(stores: &[Store; 2], n: usize, amount: i64) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .reserve(&call(
                        amount,
                        vec![
                            line("agent:claude-code", "day:2026-11-28", 1_000),
                            line("project:acme/api", "month:2026-11", 5_000),
                        ],
                    ))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tasks {
        if let Ok(id) = t.await.unwrap() {
            granted.push(id);
        }
    }
    granted
}

#[test]
fn concurrent_reservations_never_overspend_a_budget() {
    on_both_replicas("budget race", |stores| async move {
        let store = stores[0].clone();
        // 300 calls of 7 µ$ against a 1,000 µ$ day: exactly 142 fit.
        let granted = burst(&stores, 300, 7).await;
        assert_eq!(granted.len(), 142);
        let day = store
            .budget("agent:claude-code", "day:2026-11-28")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((day.spent_micros, day.reserved_micros), (0, 994));
        // The project line holds exactly what the agent line holds: all or nothing.
        let month = store
            .budget("project:acme/api", "month:2026-11")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(month.reserved_micros, 994);

        // Each call really cost 5: settling releases 2 per call.
        let settles: Vec<_> = granted
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let (store, id) = (stores[i % 2].clone(), id.clone());
                tokio::spawn(async move { store.settle(&id, 5).await.unwrap() })
            })
            .collect();
        for s in settles {
            assert!(s.await.unwrap());
        }
        assert!(!store.settle(&granted[0], 5).await.unwrap(), "settled once");
        let day = store
            .budget("agent:claude-code", "day:2026-11-28")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((day.spent_micros, day.reserved_micros), (710, 0));

        // Room for 290 more: 41 calls of 7.
        assert_eq!(burst(&stores, 100, 7).await.len(), 41);
        let refused = store
            .reserve(&call(
                7,
                vec![line("agent:claude-code", "day:2026-11-28", 1_000)],
            ))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.scope, "agent:claude-code");
        assert_eq!(refused.needed_micros, 7);
        assert_eq!(refused.spent_micros + refused.reserved_micros, 997);
    });
}

#[test]
fn abandoned_reservations_are_charged_in_full_and_credentials_revoke() {
    on_both("abandoned reservations", |store| async move {
        let id = store
            .reserve(&call(
                400,
                vec![line("agent:devin", "day:2026-11-28", 1_000)],
            ))
            .await
            .unwrap()
            .unwrap();
        // Not yet abandoned.
        assert_eq!(store.settle_abandoned(60_000).await.unwrap(), 0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(store.settle_abandoned(1).await.unwrap(), 1);
        let day = store
            .budget("agent:devin", "day:2026-11-28")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((day.spent_micros, day.reserved_micros), (400, 0));
        // A late settle does not release it again.
        assert!(!store.settle(&id, 1).await.unwrap());

        // A lower limit from the config applies at once; a bad line is refused.
        let lower = store
            .reserve(&call(1, vec![line("agent:devin", "day:2026-11-28", 400)]))
            .await
            .unwrap();
        assert!(lower.is_err());
        assert!(store.reserve(&call(-1, vec![])).await.is_err());

        assert!(!store.credential_revoked("c0ffee").await.unwrap());
        store.revoke_credential("c0ffee", "ada").await.unwrap();
        store.revoke_credential("c0ffee", "bob").await.unwrap();
        assert!(store.credential_revoked("c0ffee").await.unwrap());
    });
}

#[test]
fn spend_is_summed_per_group_and_time_range_and_freezes_and_revocations_are_listed() {
    on_both("spend and call blocks", |store| async move {
        let lines = || vec![line("agent:x", "ever", 1_000_000)];
        let made = |agent: &str, model: &str, amount: i64| {
            let mut c = call(amount, lines());
            c.agent = agent.into();
            c.model = model.into();
            c
        };
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let a = store
            .reserve(&made("claude-code", "m1", 300))
            .await
            .unwrap()
            .unwrap();
        store
            .reserve(&made("claude-code", "m2", 50))
            .await
            .unwrap()
            .unwrap();
        store
            .reserve(&made("codex", "m1", 70))
            .await
            .unwrap()
            .unwrap();
        // Settled calls count at their cost, open ones at their reservation.
        store.settle(&a, 100).await.unwrap();
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + 1;

        let by_agent = store.spend_by(SpendBy::Agent, start).await.unwrap();
        let summary: Vec<_> = by_agent
            .iter()
            .map(|r| (r.key.as_str(), r.calls, r.spent_micros, r.open_calls))
            .collect();
        assert_eq!(summary, [("claude-code", 2, 150, 1), ("codex", 1, 70, 1)]);
        let by_model = store.spend_by(SpendBy::Model, start).await.unwrap();
        assert_eq!(
            by_model
                .iter()
                .map(|r| (r.key.as_str(), r.spent_micros))
                .collect::<Vec<_>>(),
            [("m1", 170), ("m2", 50)]
        );
        let by_project = store.spend_by(SpendBy::Project, start).await.unwrap();
        assert_eq!(by_project[0].spent_micros, 220);
        assert!(
            store
                .spend_by(SpendBy::Agent, end + 1)
                .await
                .unwrap()
                .is_empty()
        );

        assert_eq!(
            store.agent_spend("claude-code", start, end).await.unwrap(),
            150
        );
        assert_eq!(
            store
                .agent_spend("claude-code", end, end + 10)
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.agent_spend("nobody", start, end).await.unwrap(), 0);

        // Agent holds (freezes) and revocations, as the gateway's snapshot reads them.
        let held = |store: &Store| {
            let store = store.clone();
            async move {
                let holds = store.active_agent_holds().await.unwrap();
                holds.into_iter().map(|h| h.id).collect::<Vec<_>>()
            }
        };
        assert!(held(&store).await.is_empty());
        let hold = NewHold {
            scope: HoldScope::Agent,
            target: "codex".into(),
            reason: "spend spike".into(),
            placed_by: "anomaly".into(),
        };
        let placed = store.place_hold_once("freeze-1", &hold).await.unwrap();
        assert!(placed.is_some());
        // A second replica placing the same hold learns it was not the one.
        let again = store.place_hold_once("freeze-1", &hold).await.unwrap();
        assert!(again.is_none());
        // A hold of another scope is not a freeze.
        store
            .place_hold(&NewHold {
                scope: HoldScope::Repo,
                target: "acme/api".into(),
                reason: "release".into(),
                placed_by: "ada".into(),
            })
            .await
            .unwrap();
        assert_eq!(held(&store).await, ["freeze-1"]);
        let frozen = store.active_agent_hold("codex").await.unwrap().unwrap();
        assert_eq!(frozen.id, "freeze-1");
        assert!(
            store
                .active_agent_hold("claude-code")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.agent_last_released_ms("codex").await.unwrap(), None);
        store.release_hold("freeze-1", "ada").await.unwrap();
        assert!(held(&store).await.is_empty());
        let released = store.agent_last_released_ms("codex").await.unwrap();
        assert!(released.is_some());

        assert_eq!(store.revocation_count().await.unwrap(), 0);
        store.revoke_credential("c0ffee", "ada").await.unwrap();
        store.revoke_credential("c0ffee", "bob").await.unwrap();
        assert_eq!(store.revocation_count().await.unwrap(), 1);
        assert_eq!(store.revoked_credentials().await.unwrap(), ["c0ffee"]);
    });
}

#[test]
fn leases_hold_budget_while_the_calls_drawn_from_them_are_what_spend_counts() {
    on_both("budget leases", |store| async move {
        let day = line("agent:claude-code", "day:2026-11-28", 10_000);
        let mut lease = call(4_000, vec![day.clone()]);
        lease.lease = true;
        let lease_id = store.reserve(&lease).await.unwrap().unwrap();
        // The lease holds its slice: a call that needs more than the rest is refused.
        let refused = store
            .reserve(&call(6_001, vec![day.clone()]))
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err().reserved_micros, 4_000);

        // Two calls drawn from the lease, recorded in one batch (twice: kept once).
        let finished = |id: &str, cost: i64| FinishedCall {
            id: id.into(),
            agent: "claude-code".into(),
            project: "acme/api".into(),
            credential: "c0ffee".into(),
            model: "m1".into(),
            requested_model: None,
            upstream: Some("fake".into()),
            reserved_micros: 900,
            cost_micros: cost,
            created_ms: 1_000,
            settled_ms: 1_001,
            lease: lease_id.clone(),
        };
        let calls = [finished("call-1", 300), finished("call-2", 200)];
        store.record_calls(&calls).await.unwrap();
        store.record_calls(&calls).await.unwrap();
        let spend = store.spend_by(SpendBy::Agent, 0).await.unwrap();
        assert_eq!(
            (
                spend.len(),
                spend[0].calls,
                spend[0].spent_micros,
                spend[0].open_calls
            ),
            (1, 2, 500, 0),
            "calls count, the lease does not"
        );
        assert_eq!(
            store.agent_spend("claude-code", 0, 2_000).await.unwrap(),
            500
        );
        let recent = store.recent_calls("claude-code", 10).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].upstream.as_deref(), Some("fake"));

        // The lease settles with what its calls cost; the rest is free again.
        assert!(store.settle(&lease_id, 500).await.unwrap());
        let state = store
            .budget("agent:claude-code", "day:2026-11-28")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((state.spent_micros, state.reserved_micros), (500, 0));
        assert!(
            store
                .reserve(&call(9_500, vec![day]))
                .await
                .unwrap()
                .is_ok()
        );
    });
}

fn entry(change: &str, head: &str) -> NewEntry {
    NewEntry {
        repo: "acme/api".into(),
        change_ref: change.into(),
        head_sha: head.into(),
        decision_id: "d1".into(),
        agent: Some("claude-code".into()),
    }
}

#[test]
fn queue_entries_enter_once_move_only_from_the_state_seen_and_merge_once() {
    const HEAD3: &str = "3333333333333333333333333333333333333333";
    on_both_replicas("merge queue", |[one, two]| async move {
        let (first, added) = one.enqueue(&entry("pr/1", HEAD1)).await.unwrap();
        assert!(added);
        assert_eq!(first.state, EntryState::Queued);
        let (again, added) = two.enqueue(&entry("pr/1", HEAD1)).await.unwrap();
        assert!(!added, "entering twice is a no-op");
        assert_eq!(again.id, first.id);
        let (second, _) = one.enqueue(&entry("pr/2", HEAD2)).await.unwrap();
        let open = one.open_entries("acme/api").await.unwrap();
        assert_eq!(
            open.iter().map(|e| &e.id).collect::<Vec<_>>(),
            [&first.id, &second.id],
            "oldest first"
        );

        // Two replicas race to move the head of the queue: one wins.
        let start = Transition {
            from: EntryState::Queued,
            to: EntryState::Checking,
            reason: "re-checking the result",
            target_sha: Some(BASE),
            result_sha: Some(HEAD3),
            check_digest: Some("sha256:00"),
            landing_sha: Some(HEAD3),
            built: true,
        };
        let (a, b) = tokio::join!(
            one.transition(&first.id, &start),
            two.transition(&first.id, &start)
        );
        assert_eq!(
            [a.unwrap(), b.unwrap()].iter().filter(|w| **w).count(),
            1,
            "exactly one replica moves the entry"
        );
        let now = one.queue_entry(&first.id).await.unwrap();
        assert_eq!(now.state, EntryState::Checking);
        assert_eq!(now.attempts, 1);
        assert_eq!(now.result_sha.as_deref(), Some(HEAD3));
        assert_eq!(now.landing_sha.as_deref(), Some(HEAD3));

        // A newer head of pr/2 supersedes its queued entry.
        let (newer, _) = one.enqueue(&entry("pr/2", HEAD3)).await.unwrap();
        let old = one.queue_entry(&second.id).await.unwrap();
        assert_eq!(old.state, EntryState::Ejected);
        assert!(old.reason.contains("superseded"), "{}", old.reason);
        assert_eq!(newer.state, EntryState::Queued);

        let merge = NewMerge {
            repo: "acme/api".into(),
            change_ref: "pr/1".into(),
            head_sha: HEAD1.into(),
            merged_sha: HEAD3.into(),
            target: "main".into(),
            target_sha: BASE.into(),
            method: "squash".into(),
            agent: Some("claude-code".into()),
            decision_id: "d1".into(),
            check_digest: "sha256:00".into(),
        };
        let (m1, m2) = tokio::join!(
            one.record_merge(&first.id, &merge),
            two.record_merge(&first.id, &merge)
        );
        assert_eq!(m1.unwrap().id, m2.unwrap().id, "one merge row");
        let by_head = one.merges_for_commit("acme/api", HEAD1).await.unwrap();
        let by_merged = one.merges_for_commit("acme/api", HEAD3).await.unwrap();
        assert_eq!(by_head.len(), 1);
        assert_eq!(by_head, by_merged, "found from either commit");
        assert_eq!(one.track_record("claude-code").await.unwrap().merged, 1);
        assert_eq!(
            one.queue_entry(&first.id).await.unwrap().state,
            EntryState::Merged
        );
        let unlogged = one.unlogged_merges(10).await.unwrap();
        assert_eq!(unlogged.len(), 1);
        assert!(one.mark_merge_logged(&unlogged[0].id, 7).await.unwrap());
        assert!(!two.mark_merge_logged(&unlogged[0].id, 8).await.unwrap());
        assert!(one.unlogged_merges(10).await.unwrap().is_empty());

        // The lease: one holder at a time; it lapses; it can be given back.
        assert!(
            one.take_queue_lease("acme/api", "replica-1", 60_000)
                .await
                .unwrap()
        );
        assert!(
            !two.take_queue_lease("acme/api", "replica-2", 60_000)
                .await
                .unwrap()
        );
        assert!(
            one.take_queue_lease("acme/api", "replica-1", 60_000)
                .await
                .unwrap()
        );
        one.release_queue_lease("acme/api", "replica-1")
            .await
            .unwrap();
        assert!(
            two.take_queue_lease("acme/api", "replica-2", 1)
                .await
                .unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(
            one.take_queue_lease("acme/api", "replica-1", 60_000)
                .await
                .unwrap()
        );

        // Bad shapes never reach the database.
        assert!(one.enqueue(&entry("pr/9", "not-a-sha")).await.is_err());
    });
}
