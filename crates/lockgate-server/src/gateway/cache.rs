//! The response cache: answers to deterministic requests (see
//! [`lockgate_gateway::api::RequestFacts::deterministic`]), kept in memory on each
//! replica for a TTL under a size bound (moka: concurrent, weighed by answer bytes,
//! evicting the least useful first). Keyed by project and the canonical request
//! ([`lockgate_gateway::cache`]), so projects never share answers.
//!
//! A hit is answered without calling an upstream or touching the budget (it costs
//! nothing); the credential, freeze and scope checks still run first. Only complete
//! `200` answers are kept — a stream only once it ended cleanly — and a streamed answer
//! is replayed as a stream, event by event. `X-Lockgate-Cache: bypass` on a request skips
//! the cache both ways; answers to cacheable requests say `X-Lockgate-Cache: hit` or
//! `miss`.
//!
//! Identical cacheable requests in flight at once collapse into one upstream call: the
//! first leads ([`Turn::Lead`]), the others wait for it and are answered from the cache
//! when it kept an answer — or, when it did not (an error, a broken stream, an answer
//! too large), go on to make their own call.

use super::config::CacheSettings;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use lockgate_gateway::cache::CacheKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

/// The request and response header.
pub const CACHE_HEADER: &str = "x-lockgate-cache";

/// A kept answer.
#[derive(Debug)]
pub struct Cached {
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
    pub streamed: bool,
}

/// The cache.
pub struct ResponseCache {
    entries: moka::future::Cache<CacheKey, Arc<Cached>>,
    max_entry_bytes: usize,
    /// Keys an upstream call is answering now; write-locked by the call until it ends.
    inflight: Inflight,
}

type Inflight = Arc<Mutex<HashMap<CacheKey, Arc<RwLock<()>>>>>;

/// Whether a cacheable call leads or waits for an identical one in flight.
pub enum Turn {
    Lead(Leader),
    /// Read-lock it to wait until the leader is done, then look in the cache again.
    Follow(Arc<RwLock<()>>),
}

/// The call that answers a key others may be waiting for: dropping it (after keeping
/// its answer, or on any failure) lets them go.
pub struct Leader {
    inflight: Inflight,
    key: CacheKey,
    _running: OwnedRwLockWriteGuard<()>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Unlisted first, so a request arriving now looks in the cache or leads; the
        // waiting ones wake when the guard drops right after.
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl ResponseCache {
    pub fn new(settings: &CacheSettings) -> ResponseCache {
        let entries = moka::future::Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|_key: &CacheKey, value: &Arc<Cached>| {
                // The answer's bytes plus a little for the entry itself.
                u32::try_from(value.body.len() + 128).unwrap_or(u32::MAX)
            })
            .time_to_live(settings.ttl)
            .build();
        ResponseCache {
            entries,
            max_entry_bytes: settings.max_entry_bytes,
            inflight: Inflight::default(),
        }
    }

    /// Leads the upstream call for `key`, or follows the one in flight.
    pub fn turn(&self, key: &CacheKey) -> Turn {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = inflight.get(key) {
            return Turn::Follow(running.clone());
        }
        let running = Arc::new(RwLock::new(()));
        let guard = running
            .clone()
            .try_write_owned()
            .expect("a new lock is free");
        inflight.insert(*key, running);
        Turn::Lead(Leader {
            inflight: self.inflight.clone(),
            key: *key,
            _running: guard,
        })
    }

    /// The largest answer kept.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Cached>> {
        self.entries.get(key).await
    }

    /// Keeps an answer (unless it is larger than an entry may be).
    pub async fn put(&self, key: CacheKey, answer: Cached) {
        if answer.body.len() <= self.max_entry_bytes {
            self.entries.insert(key, Arc::new(answer)).await;
        }
    }

    /// Entries and their weight in bytes (approximate while evictions are pending).
    pub fn size(&self) -> (u64, u64) {
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

/// Whether the request asked to skip the cache.
pub fn bypassed(headers: &HeaderMap) -> bool {
    headers
        .get(CACHE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("bypass"))
}

/// A kept answer as a response: the body at once, or a stream replayed event by event.
pub fn replay(answer: &Cached) -> Response {
    let mut response = if answer.streamed {
        let events = split_events(answer.body.clone());
        Response::new(Body::from_stream(futures_util::stream::iter(
            events.into_iter().map(Ok::<_, std::io::Error>),
        )))
    } else {
        Response::new(Body::from(answer.body.clone()))
    };
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    if let Some(ct) = &answer.content_type {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    if answer.streamed {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    headers.insert(CACHE_HEADER, HeaderValue::from_static("hit"));
    response
}

/// An event stream cut after each blank line (the end of an event), without copying.
fn split_events(body: Bytes) -> Vec<Bytes> {
    let mut events = Vec::new();
    let mut start = 0;
    let bytes = &body[..];
    let mut i = 0;
    while i + 1 < bytes.len() {
        let end = if bytes[i] == b'\n' && bytes[i + 1] == b'\n' {
            Some(i + 2)
        } else if bytes[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else {
            None
        };
        match end {
            Some(e) => {
                events.push(body.slice(start..e));
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        events.push(body.slice(start..));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_after_blank_lines_and_join_back() {
        let text = "event: a\ndata: 1\n\nevent: b\r\ndata: 2\r\n\r\ndata: [DONE]\n\ntrailing";
        let events = split_events(Bytes::from(text));
        assert_eq!(
            events,
            [
                Bytes::from("event: a\ndata: 1\n\n"),
                Bytes::from("event: b\r\ndata: 2\r\n\r\n"),
                Bytes::from("data: [DONE]\n\n"),
                Bytes::from("trailing"),
            ]
        );
        assert!(split_events(Bytes::new()).is_empty());
    }

    #[tokio::test]
    async fn identical_calls_in_flight_follow_the_first_until_it_is_done() {
        let cache = ResponseCache::new(&CacheSettings {
            ttl: std::time::Duration::from_secs(60),
            max_bytes: 1 << 20,
            max_entry_bytes: 1024,
        });
        let Turn::Lead(leader) = cache.turn(&[7; 32]) else {
            panic!("the first call leads");
        };
        let Turn::Follow(running) = cache.turn(&[7; 32]) else {
            panic!("the second follows");
        };
        assert!(
            matches!(cache.turn(&[8; 32]), Turn::Lead(_)),
            "another key leads"
        );
        assert!(running.try_read().is_err(), "waits while the leader runs");
        drop(leader);
        assert!(running.try_read().is_ok(), "goes once the leader is done");
        assert!(
            matches!(cache.turn(&[7; 32]), Turn::Lead(_)),
            "the key is free again"
        );
    }

    #[tokio::test]
    async fn answers_larger_than_an_entry_are_not_kept() {
        let cache = ResponseCache::new(&CacheSettings {
            ttl: std::time::Duration::from_secs(60),
            max_bytes: 1 << 20,
            max_entry_bytes: 4,
        });
        let answer = |body: &'static str| Cached {
            content_type: None,
            body: Bytes::from(body),
            streamed: false,
        };
        cache.put([1; 32], answer("tiny")).await;
        cache.put([2; 32], answer("too large")).await;
        assert_eq!(cache.get(&[1; 32]).await.unwrap().body, "tiny");
        assert!(cache.get(&[2; 32]).await.is_none());
    }
}
