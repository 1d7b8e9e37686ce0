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

/// Largest response body read from a forge API.
pub const MAX_RESPONSE: u64 = 4 << 20;

/// Calls a JSON API with a bearer token: the status and the JSON answer (`null` when
/// empty). Errors name the method and path, never the token.
pub fn api(
    method: &str,
    url: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let agent = agent();
    let auth = format!("Bearer {token}");
    let sent = match method {
        "GET" => agent
            .get(url)
            .header("Authorization", &auth)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .call(),
        "POST" | "PATCH" | "PUT" => {
            let request = match method {
                "POST" => agent.post(url),
                "PATCH" => agent.patch(url),
                _ => agent.put(url),
            };
            let bytes = serde_json::to_vec(body.unwrap_or(&serde_json::Value::Null))
                .map_err(|e| e.to_string())?;
            request
                .header("Authorization", &auth)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .header("Content-Type", "application/json")
                .send(&bytes[..])
        }
        other => return Err(format!("unsupported method {other}")),
    };
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or(rest, |i| &rest[i..]));
    let mut response =
        sent.map_err(|e| format!("{method} {path}: {}", scrub(&e.to_string(), url)))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_string()
        .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
    let json = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{method} {path}: not JSON: {e}"))?
    };
    Ok((status, json))
}
