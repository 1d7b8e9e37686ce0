//! The response cache's key: the API, a partition (the project: answers are never
//! shared across projects) and the request in canonical form — object keys sorted at
//! every depth, no insignificant whitespace, integral numbers as integers — so two requests that differ only in key
//! order or formatting share an answer, and any other difference does not.
//!
//! The model is part of the request (after routing, so a routed call and a call that
//! named the tier's model directly share an entry).

use crate::api::Api;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A cache key: SHA-256 over the API, the partition and the canonical request.
pub type CacheKey = [u8; 32];

/// The key of `body` (a JSON request of `api`), or `None` when it is not JSON.
pub fn cache_key(api: Api, partition: &str, body: &[u8]) -> Option<CacheKey> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let mut hasher = Sha256::new();
    hasher.update(b"lockgate-cache-v1\0");
    hasher.update(api.path().as_bytes());
    hasher.update(b"\0");
    hasher.update((partition.len() as u64).to_be_bytes());
    hasher.update(partition.as_bytes());
    let mut canonical = Vec::with_capacity(body.len());
    write_canonical(&doc, &mut canonical);
    hasher.update(&canonical);
    Some(hasher.finalize().into())
}

/// `value` as JSON with object keys sorted (by their UTF-8 bytes) at every depth.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("a string serializes");
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        Value::Number(n) => match n.as_f64() {
            // 0, 0.0 and 0e0 are one number: integral values are written as integers.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                out.extend_from_slice((f as i64).to_string().as_bytes())
            }
            _ => serde_json::to_writer(&mut *out, n).expect("a number serializes"),
        },
        scalar => serde_json::to_writer(&mut *out, scalar).expect("a scalar serializes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(body: &str) -> CacheKey {
        cache_key(Api::ChatCompletions, "acme/api", body.as_bytes()).unwrap()
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter_anything_else_does() {
        let a = key(r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#);
        let b = key(
            r#"{ "messages": [ {"content": "hi", "role": "user"} ], "temperature": 0, "model": "m" }"#,
        );
        assert_eq!(a, b);
        assert_eq!(
            key(r#"{"model":"m","temperature":0}"#),
            key(r#"{"model":"m","temperature":0.0}"#)
        );
        assert_ne!(
            key(r#"{"model":"m","temperature":0}"#),
            key(r#"{"model":"m","temperature":0.5}"#)
        );
        assert_ne!(
            a,
            key(r#"{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi "}]}"#)
        );
        assert_ne!(
            a,
            key(r#"{"model":"n","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#)
        );
        // Array order is meaning.
        assert_ne!(
            key(r#"{"model":"m","stop":["a","b"]}"#),
            key(r#"{"model":"m","stop":["b","a"]}"#)
        );
        let body = br#"{"model":"m"}"#;
        assert_ne!(
            cache_key(Api::ChatCompletions, "acme/api", body),
            cache_key(Api::ChatCompletions, "acme/web", body),
            "projects never share answers"
        );
        assert_ne!(
            cache_key(Api::ChatCompletions, "p", body),
            cache_key(Api::Responses, "p", body)
        );
        assert_eq!(cache_key(Api::Messages, "p", b"not json"), None);
    }

    #[test]
    fn canonical_form_is_json_with_sorted_keys() {
        let doc: Value =
            serde_json::from_str(r#"{"b":[{"z":1,"y":"\u00e9\n"}],"a":null,"é":1.5}"#).unwrap();
        let mut out = Vec::new();
        write_canonical(&doc, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"a":null,"b":[{"y":"é\n","z":1}],"é":1.5}"#
        );
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, doc);
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z\\u{e9} ]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-d]{1,2}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// However a request is formatted, it has one key; and its canonical form reads
        /// back as the same document.
        #[test]
        fn formatting_never_changes_the_key(doc in json()) {
            let compact = serde_json::to_vec(&doc).unwrap();
            let pretty = serde_json::to_vec_pretty(&doc).unwrap();
            prop_assert_eq!(
                cache_key(Api::Messages, "p", &compact),
                cache_key(Api::Messages, "p", &pretty)
            );
            let mut canonical = Vec::new();
            write_canonical(&doc, &mut canonical);
            prop_assert_eq!(serde_json::from_slice::<Value>(&canonical).unwrap(), doc);
        }
    }
}
