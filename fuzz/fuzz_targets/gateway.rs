//! Credentials and requests come from agents and model responses from upstreams:
//! decoding, verifying, keying and following streams must never panic, no credential
//! the fuzzer makes verifies, and a request's cache key does not depend on its layout.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lockgate_gateway::api::{Api, RequestFacts, StreamUsage, usage_from_response};
use lockgate_gateway::cache::cache_key;
use lockgate_gateway::credential::Credential;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = Credential::decode(&text) {
        assert!(c.verify(b"a key the fuzzer never sees, 32b", 0).is_err());
        let _ = c.encode();
    }
    for api in [Api::ChatCompletions, Api::Responses, Api::Messages] {
        let _ = RequestFacts::parse(api, data);
        let _ = usage_from_response(api, data);
        let mut usage = StreamUsage::new(api);
        for chunk in data.chunks(7) {
            usage.feed(chunk);
        }
        let _ = usage.usage();
        if let Some(key) = cache_key(api, "p", data) {
            let doc: serde_json::Value = serde_json::from_slice(data).unwrap();
            let pretty = serde_json::to_vec_pretty(&doc).unwrap();
            assert_eq!(cache_key(api, "p", &pretty), Some(key));
        }
    }
});
