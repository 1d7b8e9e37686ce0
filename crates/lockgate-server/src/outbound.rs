//! Outbound HTTP to webhooks (on-call, Slack) and forge APIs: blocking ureq calls made
//! from `spawn_blocking`, with a timeout, no redirects, and errors that never repeat the
//! URL (webhook URLs are secrets).

use std::time::Duration;

/// Time allowed for one outbound call.
pub const TIMEOUT: Duration = Duration::from_secs(10);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("lockgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// An error's text with the URL (and anything after its host) taken out.
fn scrub(error: &str, url: &str) -> String {
    error.replace(url, "<webhook>")
}

/// POSTs JSON; Ok on a 2xx answer. `signature` goes in `X-Lockgate-Signature`.
pub fn post_json(url: &str, body: &[u8], signature: Option<&str>) -> Result<(), String> {
    let mut request = agent().post(url).header("Content-Type", "application/json");
    if let Some(s) = signature {
        request = request.header("X-Lockgate-Signature", s);
    }
    match request.send(body) {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the webhook answered HTTP {}", r.status().as_u16())),
        Err(e) => Err(scrub(&e.to_string(), url)),
    }
}
