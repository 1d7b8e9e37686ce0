//! `POST /api/v1/transcripts`: CI uploads the redacted session transcript an
//! attestation names, so reviewers can read it in the web UI.
//!
//! The server re-runs the secret scanner and refuses a transcript that still holds a
//! secret (upload the bytes `lockgate attest --transcript-out` wrote, which are the
//! ones that were hashed). It is stored under `sha256:<hex>` of its bytes: the digest
//! the attestation carries, so the viewer shows exactly what was attested.

use crate::{ApiError, ApiResult, AppState, caller, require};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use lockgate_attest::transcript::{self, TranscriptFormat};
use lockgate_core::secrets::{SecretScanner, SecretSettings};
use lockgate_store::{Role, TranscriptRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    /// A format name, or `auto` (the default).
    format: Option<String>,
}

/// The answer to an upload.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadedTranscript {
    pub digest: String,
    pub format: String,
    pub steps: u32,
    /// False when the same transcript was stored before.
    pub new: bool,
}

/// The default secret detectors, built once.
fn scanner() -> &'static SecretScanner {
    static SCANNER: std::sync::OnceLock<SecretScanner> = std::sync::OnceLock::new();
    SCANNER.get_or_init(|| {
        SecretScanner::new(&SecretSettings::default()).expect("the default detectors compile")
    })
}

pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> ApiResult<UploadedTranscript> {
    let token = caller(&state, &headers).await?;
    require(&token, &[Role::Ci, Role::Admin])?;
    let unprocessable = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, m);
    let format = match q.format.as_deref().unwrap_or("auto") {
        "auto" => transcript::detect(&body).map_err(|e| unprocessable(e.to_string()))?,
        name => TranscriptFormat::parse(name)
            .ok_or_else(|| unprocessable(format!("unknown transcript format {name:?}")))?,
    };
    // Scanning a large transcript is CPU work: off the request threads.
    let bytes = body.clone();
    let imported =
        tokio::task::spawn_blocking(move || transcript::import(&bytes, format, scanner()))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| unprocessable(e.to_string()))?;
    if imported.summary.redactions > 0 || imported.redacted != body.as_ref() {
        return Err(unprocessable(format!(
            "the transcript still holds {} secret(s); upload the redacted transcript \
             (`lockgate attest --transcript-out`), whose digest the attestation carries",
            imported.summary.redactions
        )));
    }
    let digest = format!("sha256:{}", imported.summary.digest["sha256"]);
    let body = String::from_utf8(imported.redacted)
        .map_err(|_| unprocessable("the transcript is not UTF-8".into()))?;
    let new = state
        .store
        .put_transcript(&TranscriptRecord {
            digest: digest.clone(),
            format: format.as_str().into(),
            body,
            steps: u64::from(imported.summary.steps),
            created_ms: 0,
        })
        .await?;
    tracing::info!(%digest, format = format.as_str(), new, "transcript stored");
    Ok(Json(UploadedTranscript {
        digest,
        format: format.as_str().into(),
        steps: imported.summary.steps,
        new,
    }))
}
