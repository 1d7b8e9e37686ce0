//! A log over HTTP: reads tiles and checkpoints from any static server or `lockgate log
//! serve`, and appends through the server's authenticated endpoint.
//!
//! Nothing read here is trusted: checkpoints are verified with the log key the caller
//! holds, and tiles only matter through proofs checked against such a checkpoint.

use anyhow::{Context, Result, bail};
use lockgate_log::storage::{Storage, StorageError};
use lockgate_log::tiles::{MAX_ENTRY_BYTES, TILE_WIDTH};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Largest response read: a full entry bundle of maximal entries.
const MAX_RESPONSE_BYTES: u64 = TILE_WIDTH * (MAX_ENTRY_BYTES as u64 + 2);

/// The append endpoint, relative to the log's URL.
pub const ADD_PATH: &str = "lockgate/v1/add";

/// Read-only storage over HTTP(S).
pub struct HttpStorage {
    base: String,
    agent: ureq::Agent,
}

/// What the append endpoint answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddResponse {
    pub inclusion_proof: lockgate_log::proof::InclusionProofDoc,
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .user_agent(concat!("lockgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

impl HttpStorage {
    /// Reads the log published at `base` (`http(s)://…`, with or without a final `/`).
    pub fn new(base: &str) -> HttpStorage {
        HttpStorage {
            base: base.trim_end_matches('/').to_string(),
            agent: agent(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Storage for HttpStorage {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let url = self.url(path);
        let err = |message: String| StorageError {
            path: url.clone(),
            message,
        };
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| err(e.to_string()))?;
        match response.status().as_u16() {
            200 => response
                .body_mut()
                .with_config()
                .limit(MAX_RESPONSE_BYTES)
                .read_to_vec()
                .map(Some)
                .map_err(|e| err(e.to_string())),
            404 => Ok(None),
            code => Err(err(format!("HTTP {code}"))),
        }
    }

    fn write(&self, path: &str, _: &[u8]) -> Result<(), StorageError> {
        Err(StorageError {
            path: self.url(path),
            message: "a log read over HTTP is read-only: append through its server".into(),
        })
    }

    fn sync(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Appends one entry through `base`'s append endpoint with a bearer token.
pub fn add(base: &str, token: &str, entry: &[u8]) -> Result<AddResponse> {
    let url = format!("{}/{ADD_PATH}", base.trim_end_matches('/'));
    let mut response = agent()
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/octet-stream")
        .send(entry)
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .with_context(|| format!("reading the answer of {url}"))?;
    if status != 200 {
        let text = String::from_utf8_lossy(&body);
        bail!("{url} refused the entry: HTTP {status}: {}", text.trim());
    }
    serde_json::from_slice(&body).with_context(|| format!("{url} answered malformed JSON"))
}
