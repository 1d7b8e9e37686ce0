//! The fake model provider the gateway benchmark calls (directly, through Lockgate and
//! through LiteLLM): an OpenAI-compatible `POST /v1/chat/completions` that answers at
//! once with a fixed completion reporting 100 input and 50 output tokens, and
//! `GET /count` (calls answered so far), so the race test can count what reached it.
//! Runs as its own process (`lockgate-bench --fake-upstream`), so its CPU is not the
//! load generator's.

use axum::Router;
use axum::http::header;
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The answer, as OpenAI documents a chat completion.
pub const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"cheap-1","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}"#;

/// Serves until killed; prints `listening on http://ADDR` first.
pub fn serve_forever() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let app = Router::new()
            .route(
                "/v1/chat/completions",
                post(move || {
                    let calls = counted.clone();
                    async move {
                        calls.fetch_add(1, Ordering::Relaxed);
                        ([(header::CONTENT_TYPE, "application/json")], ANSWER)
                    }
                }),
            )
            .route(
                "/count",
                get(move || {
                    let calls = calls.clone();
                    async move { calls.load(Ordering::Relaxed).to_string() }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("listening on http://{}", listener.local_addr().unwrap());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, app).await.expect("serve");
    });
}
