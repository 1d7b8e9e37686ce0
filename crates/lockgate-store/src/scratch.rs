//! Throwaway PostgreSQL databases for tests and benchmarks: each gets its own database
//! on the server named by a URL, dropped afterwards.

use crate::StoreError;
use sqlx::{Connection, Executor};

/// The environment variable naming a PostgreSQL server for tests
/// (e.g. `postgres://postgres@127.0.0.1/postgres`).
pub const TEST_DATABASE_URL: &str = "LOCKGATE_TEST_DATABASE_URL";

/// Creates a fresh database on the server `admin_url` points at; returns its URL and
/// its name (for [`drop_database`]).
pub async fn create_database(admin_url: &str) -> Result<(String, String), StoreError> {
    sqlx::any::install_default_drivers();
    let name = format!("lockgate_t_{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    Ok((with_database(admin_url, &name)?, name))
}

/// Drops a database made by [`create_database`] (closing other sessions first).
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    if !name.starts_with("lockgate_t_")
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(StoreError::Invalid {
            field: "database",
            reason: format!("{name:?} is not a scratch database"),
        });
    }
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    conn.close().await?;
    Ok(())
}

/// `admin_url` with its database path replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> Result<String, StoreError> {
    let bad = || StoreError::BadUrl(admin_url.to_string());
    let scheme_end = admin_url.find("://").ok_or_else(bad)? + 3;
    let (base, query) = match admin_url.find('?') {
        Some(q) => (&admin_url[..q], &admin_url[q..]),
        None => (admin_url, ""),
    };
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    Ok(format!("{}/{name}{query}", &base[..host_end]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_path() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "x").unwrap(),
            "postgres://u@h/x"
        );
    }
}
