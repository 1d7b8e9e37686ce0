//! Agent credentials: short-lived, scoped, attenuable offline, revocable.
//!
//! A credential names an agent and a project and carries a chain of caveats (expiry,
//! allowed models, allowed task classes, a spending cap). Its signature is an HMAC
//! chain, as in macaroons: `sig₀ = HMAC(server key, root)`, `sigᵢ = HMAC(sigᵢ₋₁,
//! caveatᵢ)`. Whoever holds a credential can append a caveat and compute the next
//! signature without the server key — so the CI step that hands a credential to an
//! agent can narrow it first — but nobody can remove one: that needs an earlier
//! signature, which the credential does not carry. Caveats only ever narrow (expiry
//! and caps take the minimum, lists intersect), so a longer chain is never wider.
//!
//! Hand-written rather than taken from a macaroon or biscuit crate: the construction
//! is a few lines over `hmac`, the caveat language is ours, and the crates available
//! either are unmaintained (macaroon) or bring a Datalog engine we do not need
//! (biscuit-auth).
//!
//! Wire form: `lgc_` followed by base64url (no padding) of the JSON [`Credential`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::price::Micros;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a credential's wire form.
pub const PREFIX: &str = "lgc_";
/// The longest credential accepted (bytes of wire form).
pub const MAX_WIRE_LEN: usize = 8 * 1024;
/// The most caveats a credential may carry.
pub const MAX_CAVEATS: usize = 32;
/// The most entries in one caveat's list.
pub const MAX_LIST: usize = 64;
/// The longest name (agent, project, model, task class).
pub const MAX_NAME: usize = 128;

/// One restriction. Each caveat narrows what the credential allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Caveat {
    /// Not valid at or after this time (milliseconds since the epoch).
    ExpiresAt { ms: i64 },
    /// Only these models (exact names, or a prefix ending in `*`).
    Models { allow: Vec<String> },
    /// Only these task classes (tests, docs, scaffold, refactor, security, infra, …;
    /// a prefix ending in `*` too).
    TaskClasses { allow: Vec<String> },
    /// Spend at most this much through this credential (and its narrowings), ever.
    MaxSpend { micros: Micros },
}

/// A credential as carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Random id of the issued credential: revoking it revokes every narrowing.
    pub id: String,
    pub agent: String,
    pub project: String,
    pub issued_ms: i64,
    pub caveats: Vec<Caveat>,
    /// Hex HMAC-SHA256 at the end of the chain.
    pub sig: String,
}

/// What a verified credential allows, all caveats applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub id: String,
    pub agent: String,
    pub project: String,
    pub expires_ms: i64,
    /// `None`: any model the gateway routes.
    pub models: Option<Vec<String>>,
    /// `None`: any task class.
    pub task_classes: Option<Vec<String>>,
    /// Every spending cap in the chain, each with its own ledger key (a narrowing's cap
    /// counts only what is spent through that narrowing).
    pub spend_caps: Vec<SpendCap>,
}

/// A spending cap and the budget key its spend is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendCap {
    pub key: String,
    pub micros: Micros,
}

/// Why a credential was refused. Messages never include the credential itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("not a Lockgate credential (expected lgc_…)")]
    Malformed,
    #[error("credential signature does not verify")]
    BadSignature,
    #[error("credential expired")]
    Expired,
    #[error("credential has no expiry; Lockgate issues short-lived credentials only")]
    NoExpiry,
    #[error("invalid credential: {0}")]
    Invalid(String),
}

impl Credential {
    /// Issues a credential signed with `key`. `caveats` must include an expiry.
    pub fn issue(
        key: &[u8],
        agent: &str,
        project: &str,
        issued_ms: i64,
        caveats: Vec<Caveat>,
    ) -> Result<Credential, CredentialError> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let mut c = Credential {
            sig: hex::encode(root_sig(key, &id, agent, project, issued_ms)),
            id,
            agent: agent.to_string(),
            project: project.to_string(),
            issued_ms,
            caveats: Vec::new(),
        };
        for caveat in caveats {
            c = c.attenuate(caveat)?;
        }
        c.check_shape()?;
        if !c
            .caveats
            .iter()
            .any(|v| matches!(v, Caveat::ExpiresAt { .. }))
        {
            return Err(CredentialError::NoExpiry);
        }
        Ok(c)
    }

    /// This credential narrowed by `caveat` — no key needed.
    pub fn attenuate(&self, caveat: Caveat) -> Result<Credential, CredentialError> {
        check_caveat(&caveat)?;
        if self.caveats.len() >= MAX_CAVEATS {
            return Err(CredentialError::Invalid(format!(
                "at most {MAX_CAVEATS} caveats"
            )));
        }
        let prev = decode_sig(&self.sig)?;
        let mut next = self.clone();
        next.sig = hex::encode(caveat_sig(&prev, &caveat));
        next.caveats.push(caveat);
        Ok(next)
    }

    /// The wire form.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("plain data serializes");
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Parses a wire form (bounded; no signature check — see [`Credential::verify`]).
    pub fn decode(wire: &str) -> Result<Credential, CredentialError> {
        let wire = wire.trim();
        if wire.len() > MAX_WIRE_LEN {
            return Err(CredentialError::Malformed);
        }
        let body = wire
            .strip_prefix(PREFIX)
            .ok_or(CredentialError::Malformed)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CredentialError::Malformed)?;
        let c: Credential =
            serde_json::from_slice(&json).map_err(|_| CredentialError::Malformed)?;
        c.check_shape()?;
        Ok(c)
    }

    /// Checks the chain against `key` and the expiry against `now_ms`, and returns what
    /// the credential allows. Revocation is the caller's to check (by [`Scope::id`]).
    pub fn verify(&self, key: &[u8], now_ms: i64) -> Result<Scope, CredentialError> {
        self.check_shape()?;
        let mut sig = root_sig(key, &self.id, &self.agent, &self.project, self.issued_ms);
        let mut spend_caps = Vec::new();
        for caveat in &self.caveats {
            sig = caveat_sig(&sig, caveat);
            if let Caveat::MaxSpend { micros } = caveat {
                spend_caps.push(SpendCap {
                    key: format!(
                        "credential:{}:{}",
                        self.id,
                        &hex::encode(Sha256::digest(sig))[..32]
                    ),
                    micros: *micros,
                });
            }
        }
        let claimed = decode_sig(&self.sig)?;
        if !bool::from(sig.as_slice().ct_eq(claimed.as_slice())) {
            return Err(CredentialError::BadSignature);
        }
        self.scope(spend_caps, now_ms)
    }

    /// The caveats applied, given the spending caps with their ledger keys.
    fn scope(&self, spend_caps: Vec<SpendCap>, now_ms: i64) -> Result<Scope, CredentialError> {
        let mut scope = Scope {
            id: self.id.clone(),
            agent: self.agent.clone(),
            project: self.project.clone(),
            expires_ms: i64::MAX,
            models: None,
            task_classes: None,
            spend_caps,
        };
        let mut has_expiry = false;
        for caveat in &self.caveats {
            match caveat {
                Caveat::ExpiresAt { ms } => {
                    has_expiry = true;
                    scope.expires_ms = scope.expires_ms.min(*ms);
                }
                Caveat::Models { allow } => narrow(&mut scope.models, allow),
                Caveat::TaskClasses { allow } => narrow(&mut scope.task_classes, allow),
                Caveat::MaxSpend { .. } => {}
            }
        }
        if !has_expiry {
            return Err(CredentialError::NoExpiry);
        }
        if now_ms >= scope.expires_ms {
            return Err(CredentialError::Expired);
        }
        Ok(scope)
    }

    fn check_shape(&self) -> Result<(), CredentialError> {
        if self.id.len() != 32 || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CredentialError::Invalid("id".into()));
        }
        check_name("agent", &self.agent)?;
        check_name("project", &self.project)?;
        if self.caveats.len() > MAX_CAVEATS {
            return Err(CredentialError::Invalid(format!(
                "at most {MAX_CAVEATS} caveats"
            )));
        }
        self.caveats.iter().try_for_each(check_caveat)
    }
}

/// What a credential claims to allow, without checking its signature (spending caps
/// carry no ledger key): for showing and narrowing a credential offline. Never
/// authorize with it — that is [`Credential::verify`]'s job.
pub fn unverified_scope(c: &Credential, now_ms: i64) -> Result<Scope, CredentialError> {
    c.check_shape()?;
    let caps = c
        .caveats
        .iter()
        .filter_map(|v| match v {
            Caveat::MaxSpend { micros } => Some(SpendCap {
                key: String::new(),
                micros: *micros,
            }),
            _ => None,
        })
        .collect();
    c.scope(caps, now_ms)
}

impl Scope {
    /// Whether `model` may be called.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|pattern| name_matches(pattern, model)))
    }

    /// Whether `class` is an allowed task class.
    pub fn allows_task_class(&self, class: &str) -> bool {
        self.task_classes
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|pattern| name_matches(pattern, class)))
    }
}

/// Whether `name` matches `pattern`: an exact name, or a prefix ending in `*`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Intersects an allow-list with a narrower one. Patterns intersect conservatively: an
/// entry survives when the other list admits it (a `*` prefix pattern survives only
/// against an equal or wider pattern).
fn narrow(current: &mut Option<Vec<String>>, allow: &[String]) {
    let next = match current.take() {
        None => allow.to_vec(),
        Some(existing) => {
            let admitted_by = |list: &[String], entry: &str| {
                list.iter()
                    .any(|p| match (p.strip_suffix('*'), entry.strip_suffix('*')) {
                        (Some(wide), Some(narrow)) => narrow.starts_with(wide),
                        (Some(wide), None) => entry.starts_with(wide),
                        (None, Some(_)) => false,
                        (None, None) => p == entry,
                    })
            };
            let mut out: Vec<String> = allow
                .iter()
                .filter(|e| admitted_by(&existing, e))
                .cloned()
                .collect();
            for e in existing.iter().filter(|e| admitted_by(allow, e)) {
                if !out.contains(e) {
                    out.push(e.clone());
                }
            }
            out
        }
    };
    *current = Some(next);
}

fn root_sig(key: &[u8], id: &str, agent: &str, project: &str, issued_ms: i64) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in [
        "lockgate-credential-v1",
        id,
        agent,
        project,
        &issued_ms.to_string(),
    ] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

fn caveat_sig(prev: &[u8; 32], caveat: &Caveat) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(prev).expect("HMAC takes any key length");
    mac.update(&serde_json::to_vec(caveat).expect("plain data serializes"));
    mac.finalize().into_bytes().into()
}

fn decode_sig(sig: &str) -> Result<[u8; 32], CredentialError> {
    let bytes = hex::decode(sig).map_err(|_| CredentialError::Malformed)?;
    bytes.try_into().map_err(|_| CredentialError::Malformed)
}

fn check_name(field: &str, value: &str) -> Result<(), CredentialError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@*".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CredentialError::Invalid(format!("{field} {value:?}")))
    }
}

fn check_caveat(caveat: &Caveat) -> Result<(), CredentialError> {
    match caveat {
        Caveat::ExpiresAt { .. } => Ok(()),
        Caveat::Models { allow } | Caveat::TaskClasses { allow } => {
            if allow.len() > MAX_LIST {
                return Err(CredentialError::Invalid(format!(
                    "at most {MAX_LIST} entries in a list"
                )));
            }
            allow.iter().try_for_each(|v| check_name("list entry", v))
        }
        Caveat::MaxSpend { micros } if *micros >= 0 => Ok(()),
        Caveat::MaxSpend { .. } => Err(CredentialError::Invalid("negative spend cap".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"server key for tests, 32 bytes!!";
    const NOW: i64 = 1_800_000_000_000;

    fn issued() -> Credential {
        Credential::issue(
            KEY,
            "claude-code",
            "acme/api",
            NOW,
            vec![
                Caveat::ExpiresAt {
                    ms: NOW + 3_600_000,
                },
                Caveat::Models {
                    allow: vec!["claude-*".into(), "gpt-4o-mini".into()],
                },
                Caveat::MaxSpend { micros: 5_000_000 },
            ],
        )
        .unwrap()
    }

    #[test]
    fn issued_credentials_verify_and_round_trip() {
        let c = issued();
        let wire = c.encode();
        assert!(wire.starts_with("lgc_"));
        let back = Credential::decode(&wire).unwrap();
        assert_eq!(back, c);
        let scope = back.verify(KEY, NOW).unwrap();
        assert_eq!(scope.agent, "claude-code");
        assert!(scope.allows_model("claude-sonnet-4-5"));
        assert!(scope.allows_model("gpt-4o-mini"));
        assert!(!scope.allows_model("gpt-4o"));
        assert!(scope.allows_task_class("anything"));
        assert_eq!(scope.spend_caps.len(), 1);
        assert_eq!(scope.spend_caps[0].micros, 5_000_000);
    }

    #[test]
    fn attenuation_needs_no_key_and_only_narrows() {
        let c = issued();
        let narrowed = c
            .attenuate(Caveat::Models {
                allow: vec!["claude-3-5-haiku".into(), "gpt-4o".into()],
            })
            .unwrap()
            .attenuate(Caveat::TaskClasses {
                allow: vec!["tests".into()],
            })
            .unwrap()
            .attenuate(Caveat::MaxSpend { micros: 100_000 })
            .unwrap()
            .attenuate(Caveat::ExpiresAt { ms: NOW + 60_000 })
            .unwrap();
        let scope = Credential::decode(&narrowed.encode())
            .unwrap()
            .verify(KEY, NOW)
            .unwrap();
        // gpt-4o was not allowed by the parent: asking for it again does not widen.
        assert_eq!(scope.models, Some(vec!["claude-3-5-haiku".to_string()]));
        assert!(scope.allows_task_class("tests"));
        assert!(!scope.allows_task_class("infra"));
        assert_eq!(scope.expires_ms, NOW + 60_000);
        // Both caps apply, each under its own key; the parent's key is the parent's.
        assert_eq!(scope.spend_caps.len(), 2);
        let parent = c.verify(KEY, NOW).unwrap();
        assert_eq!(scope.spend_caps[0], parent.spend_caps[0]);
        assert_ne!(scope.spend_caps[1].key, parent.spend_caps[0].key);
        // A later expiry than the parent's changes nothing.
        let later = c
            .attenuate(Caveat::ExpiresAt {
                ms: NOW + 999_999_999,
            })
            .unwrap();
        assert_eq!(later.verify(KEY, NOW).unwrap().expires_ms, NOW + 3_600_000);
    }

    #[test]
    fn tampering_is_refused() {
        let c = issued();
        // Dropping a caveat (here the spending cap) breaks the chain.
        let mut dropped = c.clone();
        dropped.caveats.pop();
        assert_eq!(dropped.verify(KEY, NOW), Err(CredentialError::BadSignature));
        // Editing one: widen the models.
        let mut widened = c.clone();
        widened.caveats[1] = Caveat::Models {
            allow: vec!["*".into()],
        };
        assert_eq!(widened.verify(KEY, NOW), Err(CredentialError::BadSignature));
        // Another agent or project.
        let mut other = c.clone();
        other.agent = "devin".into();
        assert_eq!(other.verify(KEY, NOW), Err(CredentialError::BadSignature));
        // Another server's key.
        assert_eq!(
            c.verify(b"another key", NOW),
            Err(CredentialError::BadSignature)
        );
        // Expired.
        assert_eq!(
            c.verify(KEY, NOW + 3_600_000),
            Err(CredentialError::Expired)
        );
    }

    #[test]
    fn credentials_must_expire_and_stay_bounded() {
        let never = Credential::issue(KEY, "a", "p", NOW, vec![]);
        assert_eq!(never.unwrap_err(), CredentialError::NoExpiry);
        let mut c = issued();
        for i in 0..(MAX_CAVEATS - c.caveats.len()) {
            c = c
                .attenuate(Caveat::ExpiresAt {
                    ms: NOW + i as i64 + 10,
                })
                .unwrap();
        }
        assert!(c.attenuate(Caveat::ExpiresAt { ms: NOW }).is_err());
        assert_eq!(
            Credential::decode(&format!("lgc_{}", "A".repeat(MAX_WIRE_LEN))),
            Err(CredentialError::Malformed)
        );
        for junk in ["", "lgc_", "lgc_!!!", "lgt_abc", "lgc_e30"] {
            assert!(Credential::decode(junk).is_err(), "{junk:?}");
        }
    }

    fn caveat() -> impl Strategy<Value = Caveat> {
        let names = prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "a*", "claude-*", "*"]),
            0..4,
        )
        .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
        prop_oneof![
            (0i64..10_000).prop_map(|d| Caveat::ExpiresAt { ms: NOW + d }),
            names.clone().prop_map(|allow| Caveat::Models { allow }),
            names.prop_map(|allow| Caveat::TaskClasses { allow }),
            (0i64..1_000).prop_map(|micros| Caveat::MaxSpend { micros }),
        ]
    }

    proptest! {
        /// Appending any caveat never lets a model, task class or time through that the
        /// shorter chain refused, and never drops a spending cap.
        #[test]
        fn a_longer_chain_is_never_wider(
            first in prop::collection::vec(caveat(), 0..6),
            extra in caveat(),
            model in prop::sample::select(vec!["a", "b", "c", "ab", "claude-x", "gpt"]),
            at in 0i64..10_000,
        ) {
            let mut caveats = vec![Caveat::ExpiresAt { ms: NOW + 10_000 }];
            caveats.extend(first);
            let c = Credential::issue(KEY, "agent", "proj", NOW, caveats).unwrap();
            let longer = c.attenuate(extra).unwrap();
            let now = NOW + at;
            match (c.verify(KEY, now), longer.verify(KEY, now)) {
                (Err(_), Ok(_)) => prop_assert!(false, "narrowing revived a refused credential"),
                (Ok(short), Ok(long)) => {
                    prop_assert!(!long.allows_model(model) || short.allows_model(model));
                    prop_assert!(!long.allows_task_class(model) || short.allows_task_class(model));
                    prop_assert!(long.expires_ms <= short.expires_ms);
                    prop_assert!(long.spend_caps.starts_with(&short.spend_caps));
                }
                _ => {}
            }
        }
    }
}
