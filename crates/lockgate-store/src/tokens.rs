//! API tokens: `lgt_<id>_<secret>`. The id finds the row; only SHA-256 of the secret is
//! stored, compared in constant time. A token is shown once, when it is made.

use crate::records::{MAX_NAME, check_len};
use crate::{Store, StoreError, new_id, now_ms};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A CI job: records decisions, reads.
    Ci,
    /// A person: approves (when the owners allow), reads.
    Person,
    /// A person who also manages tokens and holds.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ci => "ci",
            Role::Person => "person",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ci" => Some(Role::Ci),
            "person" => Some(Role::Person),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A token's row (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: String,
    /// The person id, or the CI job's name.
    pub subject: String,
    pub role: Role,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Makes a token; returns the token text (shown once) and its row.
    pub async fn create_token(
        &self,
        subject: &str,
        role: Role,
    ) -> Result<(String, TokenRecord), StoreError> {
        check_len("subject", subject, 1, MAX_NAME)?;
        let id = new_id();
        let secret = hex::encode(rand::random::<[u8; 32]>());
        sqlx::query(
            "INSERT INTO tokens (id, subject, role, secret_hash, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(subject)
        .bind(role.as_str())
        .bind(hash(&secret))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let record = self
            .token(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("token {id}")))?;
        Ok((format!("lgt_{id}_{secret}"), record))
    }

    /// The token's row when `token` is a live token, else `None` (unknown, wrong secret,
    /// revoked or malformed — indistinguishable to the caller).
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        let Some((id, secret)) = token
            .strip_prefix("lgt_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        if id.len() != 32 || secret.len() != 64 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT id, subject, role, secret_hash, created_ms, revoked_ms FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get("secret_hash")?;
        let matches: bool = stored.as_bytes().ct_eq(hash(secret).as_bytes()).into();
        let record = token_from_row(&row)?;
        Ok((matches && record.revoked_ms.is_none()).then_some(record))
    }

    /// Revokes a token at once.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRecord, StoreError> {
        sqlx::query("UPDATE tokens SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.token(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("token {id}")))
    }

    /// One token's row.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, subject, role, secret_hash, created_ms, revoked_ms FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }
}

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Invalid {
            field: "role",
            reason: format!("{role:?} in the database"),
        })?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}
