//! What the gateway reads from the provider APIs it proxies — and nothing more: the
//! model, whether the call streams and its output limit from a request; the token usage
//! from a response or a server-sent event stream. Bodies otherwise pass through as they
//! are.
//!
//! Three APIs: OpenAI Chat Completions (`POST /v1/chat/completions`), OpenAI Responses
//! (`POST /v1/responses`) and Anthropic Messages (`POST /v1/messages`).

use crate::price::Usage;
use serde_json::Value;

/// The longest SSE line kept while looking for usage (longer lines pass through but are
/// not parsed: usage events are small).
pub const MAX_EVENT_LINE: usize = 1 << 20;

/// A provider API the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    ChatCompletions,
    Responses,
    Messages,
}

impl Api {
    /// The API served at `path`, if any.
    pub fn from_path(path: &str) -> Option<Api> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" => Some(Api::ChatCompletions),
            "/v1/responses" => Some(Api::Responses),
            "/v1/messages" => Some(Api::Messages),
            _ => None,
        }
    }

    /// The path of this API on an upstream.
    pub fn path(self) -> &'static str {
        match self {
            Api::ChatCompletions => "/v1/chat/completions",
            Api::Responses => "/v1/responses",
            Api::Messages => "/v1/messages",
        }
    }
}

/// What the gateway needs to know about a request before calling upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: String,
    pub stream: bool,
    /// The request's own output limit, if it set one.
    pub max_output_tokens: Option<u64>,
    /// For Chat Completions streams: whether the request asked for the usage chunk.
    pub stream_usage: bool,
    /// Whether the request asks for a deterministic answer (`temperature` 0, one
    /// choice): the only requests the response cache serves by default.
    pub deterministic: bool,
}

/// A request the gateway cannot budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request body is not a JSON object")]
    NotJson,
    #[error("the request names no model")]
    NoModel,
    #[error("{0} must be a non-negative integer")]
    BadLimit(&'static str),
}

impl RequestFacts {
    /// Reads the facts from a request body of `api`.
    pub fn parse(api: Api, body: &[u8]) -> Result<RequestFacts, RequestError> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| RequestError::NotJson)?;
        let obj = doc.as_object().ok_or(RequestError::NotJson)?;
        let model = obj
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .ok_or(RequestError::NoModel)?
            .to_string();
        let limit_fields: &[&'static str] = match api {
            Api::ChatCompletions => &["max_completion_tokens", "max_tokens"],
            Api::Responses => &["max_output_tokens"],
            Api::Messages => &["max_tokens"],
        };
        let mut max_output_tokens = None;
        for field in limit_fields {
            match obj.get(*field) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    let n = v.as_u64().ok_or(RequestError::BadLimit(field))?;
                    // With both set, the smaller one binds.
                    max_output_tokens = Some(max_output_tokens.map_or(n, |m: u64| m.min(n)));
                }
            }
        }
        let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let stream_usage = obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let deterministic = obj.get("temperature").and_then(Value::as_f64) == Some(0.0)
            && obj.get("n").is_none_or(|n| n.as_u64() == Some(1));
        Ok(RequestFacts {
            model,
            stream,
            max_output_tokens,
            stream_usage,
            deterministic,
        })
    }
}

/// The usage a non-streaming response reports (`None` when it reports none).
pub fn usage_from_response(api: Api, body: &[u8]) -> Option<Usage> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    usage_from_object(api, doc.get("usage")?)
}

fn usage_from_object(api: Api, usage: &Value) -> Option<Usage> {
    let n = |field: &str| usage.get(field).and_then(Value::as_u64);
    match api {
        Api::ChatCompletions => Some(Usage {
            input_tokens: n("prompt_tokens")?,
            output_tokens: n("completion_tokens")?,
        }),
        Api::Responses => Some(Usage {
            input_tokens: n("input_tokens")?,
            output_tokens: n("output_tokens")?,
        }),
        // Cache writes and reads are input too (charged at the full input rate).
        Api::Messages => Some(Usage {
            input_tokens: n("input_tokens")?
                + n("cache_creation_input_tokens").unwrap_or(0)
                + n("cache_read_input_tokens").unwrap_or(0),
            output_tokens: n("output_tokens").unwrap_or(0),
        }),
    }
}

/// Follows a server-sent event stream chunk by chunk (chunks may split lines anywhere)
/// and keeps the usage it reports: the usage chunk of Chat Completions, the
/// `response.completed` event of Responses, `message_start` and `message_delta` of
/// Messages (output tokens there are cumulative).
#[derive(Debug)]
pub struct StreamUsage {
    api: Api,
    line: Vec<u8>,
    overlong: bool,
    input: Option<u64>,
    output: Option<u64>,
}

impl StreamUsage {
    pub fn new(api: Api) -> StreamUsage {
        StreamUsage {
            api,
            line: Vec::new(),
            overlong: false,
            input: None,
            output: None,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.push(&chunk[..end]);
            if !self.overlong {
                let line = std::mem::take(&mut self.line);
                self.on_line(&line);
            }
            self.line.clear();
            self.overlong = false;
            chunk = &chunk[end + 1..];
        }
        self.push(chunk);
    }

    /// The usage seen so far; `None` until the stream reported both counts.
    pub fn usage(&self) -> Option<Usage> {
        Some(Usage {
            input_tokens: self.input?,
            output_tokens: self.output?,
        })
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.overlong || self.line.len() + bytes.len() > MAX_EVENT_LINE {
            self.overlong = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return; // `[DONE]` and anything that is not JSON.
        };
        match self.api {
            Api::ChatCompletions => {
                if let Some(u) = event
                    .get("usage")
                    .and_then(|u| usage_from_object(self.api, u))
                {
                    self.input = Some(u.input_tokens);
                    self.output = Some(u.output_tokens);
                }
            }
            Api::Responses => {
                let usage = event
                    .get("response")
                    .and_then(|r| r.get("usage"))
                    .and_then(|u| usage_from_object(self.api, u));
                if let Some(u) = usage {
                    self.input = Some(u.input_tokens);
                    self.output = Some(u.output_tokens);
                }
            }
            Api::Messages => match event.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    if let Some(u) = event
                        .get("message")
                        .and_then(|m| m.get("usage"))
                        .and_then(|u| usage_from_object(self.api, u))
                    {
                        self.input = Some(u.input_tokens);
                        self.output = Some(u.output_tokens);
                    }
                }
                Some("message_delta") => {
                    let usage = event.get("usage");
                    if let Some(out) = usage
                        .and_then(|u| u.get("output_tokens"))
                        .and_then(Value::as_u64)
                    {
                        self.output = Some(self.output.map_or(out, |o| o.max(out)));
                    }
                    // Newer streams repeat the input counts here; keep the larger.
                    if let Some(u) = usage.and_then(|u| usage_from_object(self.api, u))
                        && u.input_tokens > 0
                    {
                        self.input =
                            Some(self.input.map_or(u.input_tokens, |i| i.max(u.input_tokens)));
                    }
                }
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_facts_per_api() {
        let chat = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":300,"max_completion_tokens":200,"stream":true,"stream_options":{"include_usage":true}}"#;
        assert_eq!(
            RequestFacts::parse(Api::ChatCompletions, chat).unwrap(),
            RequestFacts {
                model: "gpt-4o-mini".into(),
                stream: true,
                max_output_tokens: Some(200),
                stream_usage: true,
                deterministic: false,
            }
        );
        let greedy = |body: &str| {
            RequestFacts::parse(Api::Messages, body.as_bytes())
                .unwrap()
                .deterministic
        };
        assert!(greedy(r#"{"model":"m","temperature":0}"#));
        assert!(greedy(r#"{"model":"m","temperature":0.0,"n":1}"#));
        assert!(
            !greedy(r#"{"model":"m"}"#),
            "the default temperature samples"
        );
        assert!(!greedy(r#"{"model":"m","temperature":0.2}"#));
        assert!(!greedy(r#"{"model":"m","temperature":0,"n":3}"#));
        let responses = br#"{"model":"gpt-4.1","input":"hi","max_output_tokens":50}"#;
        let f = RequestFacts::parse(Api::Responses, responses).unwrap();
        assert_eq!((f.max_output_tokens, f.stream), (Some(50), false));
        let messages = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[]}"#;
        assert_eq!(
            RequestFacts::parse(Api::Messages, messages)
                .unwrap()
                .max_output_tokens,
            Some(1024)
        );
        assert_eq!(
            RequestFacts::parse(Api::Messages, br#"{"max_tokens":1}"#),
            Err(RequestError::NoModel)
        );
        assert_eq!(
            RequestFacts::parse(Api::Messages, br#"{"model":"m","max_tokens":-1}"#),
            Err(RequestError::BadLimit("max_tokens"))
        );
        assert_eq!(
            RequestFacts::parse(Api::Messages, b"[1]"),
            Err(RequestError::NotJson)
        );
        assert_eq!(Api::from_path("/v1/messages/"), Some(Api::Messages));
        assert_eq!(Api::from_path("/v1/embeddings"), None);
    }

    #[test]
    fn usage_from_documented_responses() {
        // Shapes from the providers' API references.
        let chat = br#"{"id":"chatcmpl-123","object":"chat.completion","created":1677652288,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"completion_tokens_details":{"reasoning_tokens":0}}}"#;
        assert_eq!(
            usage_from_response(Api::ChatCompletions, chat),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 12
            })
        );
        let responses = br#"{"id":"resp_1","object":"response","status":"completed","model":"gpt-4.1","output":[],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#;
        assert_eq!(
            usage_from_response(Api::Responses, responses),
            Some(Usage {
                input_tokens: 36,
                output_tokens: 87
            })
        );
        let messages = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":100,"cache_read_input_tokens":5,"output_tokens":503}}"#;
        assert_eq!(
            usage_from_response(Api::Messages, messages),
            Some(Usage {
                input_tokens: 2200,
                output_tokens: 503
            })
        );
        assert_eq!(usage_from_response(Api::Messages, b"{}"), None);
    }

    const CHAT_STREAM: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":17,\"completion_tokens\":2,\"total_tokens\":19}}\n\n\
data: [DONE]\n\n";

    const MESSAGES_STREAM: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n\
event: ping\r\n\
data: {\"type\": \"ping\"}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\r\n\r\n\
event: message_delta\r\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\r\n\r\n\
event: message_stop\r\n\
data: {\"type\":\"message_stop\"}\r\n\r\n";

    const RESPONSES_STREAM: &str = "event: response.created\n\
data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n\
event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":37,\"output_tokens\":11,\"total_tokens\":48}}}\n\n";

    fn followed(api: Api, stream: &str, split: &[usize]) -> Option<Usage> {
        let mut u = StreamUsage::new(api);
        let bytes = stream.as_bytes();
        let mut at = 0;
        for &cut in split {
            let cut = cut.min(bytes.len()).max(at);
            u.feed(&bytes[at..cut]);
            at = cut;
        }
        u.feed(&bytes[at..]);
        u.usage()
    }

    #[test]
    fn usage_from_documented_streams() {
        assert_eq!(
            followed(Api::ChatCompletions, CHAT_STREAM, &[]),
            Some(Usage {
                input_tokens: 17,
                output_tokens: 2
            })
        );
        assert_eq!(
            followed(Api::Messages, MESSAGES_STREAM, &[]),
            Some(Usage {
                input_tokens: 25,
                output_tokens: 15
            })
        );
        assert_eq!(
            followed(Api::Responses, RESPONSES_STREAM, &[]),
            Some(Usage {
                input_tokens: 37,
                output_tokens: 11
            })
        );
        // A chat stream without the usage chunk reports nothing (the caller charges
        // the reservation).
        let without: String = CHAT_STREAM
            .split("\n\n")
            .filter(|e| !e.contains("\"usage\":{"))
            .collect::<Vec<_>>()
            .join("\n\n");
        assert_eq!(followed(Api::ChatCompletions, &without, &[]), None);
    }

    #[test]
    fn overlong_lines_are_skipped_not_kept() {
        let mut u = StreamUsage::new(Api::ChatCompletions);
        u.feed(b"data: ");
        u.feed(&vec![b'x'; MAX_EVENT_LINE + 10]);
        u.feed(b"\n");
        assert!(u.line.is_empty());
        u.feed(CHAT_STREAM.as_bytes());
        assert_eq!(
            u.usage(),
            Some(Usage {
                input_tokens: 17,
                output_tokens: 2
            })
        );
    }

    proptest! {
        /// However the network splits a stream, the usage read is the same.
        #[test]
        fn chunking_does_not_change_usage(mut cuts in prop::collection::vec(0usize..1500, 0..12)) {
            cuts.sort();
            for (api, stream) in [
                (Api::ChatCompletions, CHAT_STREAM),
                (Api::Messages, MESSAGES_STREAM),
                (Api::Responses, RESPONSES_STREAM),
            ] {
                prop_assert_eq!(followed(api, stream, &cuts), followed(api, stream, &[]));
            }
        }
    }
}
