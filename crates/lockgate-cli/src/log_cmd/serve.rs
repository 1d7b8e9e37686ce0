//! `lockgate log serve`: the C2SP tlog-tiles read API and an authenticated append
//! endpoint over one log directory.
//!
//! Reads are answered from the published tree only: the checkpoint in memory, and
//! tiles and bundles that belong to it (files a crashed batch left past the checkpoint
//! are never served). Appends go to the batcher, which integrates them every
//! `--batch-interval` and answers each with an inclusion proof to the new checkpoint.

use super::index;
use super::remote::{ADD_PATH, AddResponse};
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lockgate_log::batch::Batcher;
use lockgate_log::dir::LogDir;
use lockgate_log::log::LogReader;
use lockgate_log::proof::{CheckpointDoc, InclusionProofDoc};
use lockgate_log::storage::{DirStorage, Storage};
use lockgate_log::tiles::{MAX_ENTRY_BYTES, parse_tile_path};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The log directory (from `lockgate log init`).
    dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// File holding the bearer token that authorizes appends (or LOCKGATE_LOG_TOKEN).
    /// Without a token the server is read-only.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// How long the batcher collects entries before integrating them.
    #[arg(long, default_value_t = 1000)]
    batch_interval_ms: u64,
    /// Integrate sooner once this many entries wait.
    #[arg(long, default_value_t = 65536)]
    max_batch: usize,
}

/// The published tree the read API serves.
struct Published {
    size: u64,
    checkpoint: Vec<u8>,
}

struct AppState {
    published: RwLock<Published>,
    storage: DirStorage,
    batcher: Batcher,
    /// SHA-256 of the token: compared digest to digest, so timing says nothing
    /// about the token.
    token_digest: Option<[u8; 32]>,
}

pub fn run(args: ServeArgs) -> Result<u8> {
    let dir = LogDir::open(&args.dir)?;
    let token = match (&args.token_file, std::env::var("LOCKGATE_LOG_TOKEN")) {
        (Some(p), _) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        (None, Ok(t)) => Some(t),
        (None, Err(_)) => None,
    };
    let token_digest = match token.as_deref().map(str::trim) {
        Some(t) if t.len() < 16 => bail!("the append token must be at least 16 characters"),
        Some(t) => Some(Sha256::digest(t.as_bytes()).into()),
        None => None,
    };
    let (log, lock) = dir.writer()?;
    // The index catches up with anything a previous writer published but did not index.
    index::catch_up(&dir.index_path(), log.storage(), log.size(), true)?;
    let published = RwLock::new(Published {
        size: log.size(),
        checkpoint: log.checkpoint().to_vec(),
    });
    let state = Arc::new_cyclic(|weak: &std::sync::Weak<AppState>| {
        let weak = weak.clone();
        let index_path = dir.index_path();
        let batcher = Batcher::spawn(
            log,
            Duration::from_millis(args.batch_interval_ms),
            args.max_batch.max(1),
            Box::new(move |appended, entries| {
                let lines: Vec<_> = entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| index::describe(appended.first_index + i as u64, e))
                    .collect();
                if let Err(e) = index::append(&index_path, &lines) {
                    tracing::error!("search index: {e:#}");
                }
                if let Some(state) = weak.upgrade() {
                    let mut p = state.published.write().expect("lock");
                    p.size = appended.size;
                    p.checkpoint = appended.checkpoint.clone();
                }
            }),
        );
        AppState {
            published,
            storage: dir.storage().expect("the log directory opened"),
            batcher,
            token_digest,
        }
    });

    let app = Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*rest}", get(tile))
        .route(&format!("/{ADD_PATH}"), post(add))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_ENTRY_BYTES))
        .with_state(state.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!(
            "serving log {} at http://{addr} ({})",
            dir.root().display(),
            if state.token_digest.is_some() {
                "appends need the token"
            } else {
                "read-only: no token"
            }
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await?;
        anyhow::Ok(())
    })?;
    drop(lock);
    Ok(0)
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn text_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

async fn checkpoint(State(state): State<Arc<AppState>>) -> Response {
    let note = state.published.read().expect("lock").checkpoint.clone();
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        note,
    )
        .into_response()
}

async fn tile(State(state): State<Arc<AppState>>, UrlPath(rest): UrlPath<String>) -> Response {
    let path = format!("tile/{rest}");
    let size = state.published.read().expect("lock").size;
    let Some(tile) = parse_tile_path(&path).filter(|t| t.is_in_tree(size)) else {
        return text_response(
            StatusCode::NOT_FOUND,
            "no such tile in the published tree\n",
        );
    };
    let st = state.clone();
    let read = tokio::task::spawn_blocking(move || st.storage.read(&path)).await;
    match read {
        Ok(Ok(Some(bytes))) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                // A tile of a given width never changes once published.
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        Ok(Ok(None)) => {
            tracing::error!(?tile, "a published tile is missing");
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "tile missing\n")
        }
        Ok(Err(e)) => {
            tracing::error!("{e}");
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "storage error\n")
        }
        Err(_) => text_response(StatusCode::INTERNAL_SERVER_ERROR, "storage error\n"),
    }
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = state.token_digest else {
        return false;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    given == expected
}

async fn add(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if state.token_digest.is_none() {
        return text_response(StatusCode::FORBIDDEN, "this server is read-only\n");
    }
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    if body.is_empty() {
        return text_response(StatusCode::BAD_REQUEST, "empty entry\n");
    }
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<AddResponse> {
        let (index, appended) = st.batcher.submit(body.to_vec())?;
        let hashes = LogReader::new(&st.storage).inclusion_proof(index, appended.size)?;
        Ok(AddResponse {
            inclusion_proof: InclusionProofDoc {
                log_index: index,
                root_hash: appended.root,
                tree_size: appended.size,
                hashes,
                checkpoint: CheckpointDoc {
                    envelope: String::from_utf8(appended.checkpoint)?,
                },
            },
        })
    })
    .await;
    match result {
        Ok(Ok(response)) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&response).expect("a response serializes"),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!("append failed: {e:#}");
            text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the log could not append\n",
            )
        }
        Err(_) => text_response(StatusCode::INTERNAL_SERVER_ERROR, "append failed\n"),
    }
}
