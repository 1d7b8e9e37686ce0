//! in-toto Attestation Framework: Statement v1 and ResourceDescriptor, with the
//! validation rules of the reference implementation (in-toto/attestation `go/v1`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `_type` of a v1 statement.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// `_type` of the legacy v0.1 statement, still accepted on input.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";

/// An in-toto Statement: subjects plus a typed predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<ResourceDescriptor>,
    pub predicate_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<serde_json::Value>,
}

/// A ResourceDescriptor: names an artifact by name, URI and/or digests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub download_location: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Why a statement or descriptor is invalid (names follow the reference errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("not an in-toto statement: _type is {0:?}")]
    InvalidStatementType(String),
    #[error("statement has no subject")]
    SubjectRequired,
    #[error("resource descriptor needs one of name, uri or digest")]
    RdRequiredField,
    #[error("statement subjects need a digest")]
    DigestRequired,
    #[error("predicateType is required")]
    PredicateTypeRequired,
    #[error("predicate is required")]
    PredicateRequired,
    #[error("digest {alg}: not lowercase hex")]
    InvalidDigestEncoding { alg: String },
    #[error("digest {alg}: {len} hex characters, expected {expected}")]
    IncorrectDigestLength {
        alg: String,
        len: usize,
        expected: String,
    },
}

/// Hex lengths of well-known digest algorithms (`gitCommit`/`gitTree` allow SHA-1 or
/// SHA-256 object ids).
fn known_lengths(alg: &str) -> Option<&'static [usize]> {
    Some(match alg {
        "sha256" | "sha512_256" | "sha3_256" => &[64],
        "sha224" | "sha512_224" | "sha3_224" => &[56],
        "sha384" | "sha3_384" => &[96],
        "sha512" | "sha3_512" => &[128],
        "sha1" => &[40],
        "md5" => &[32],
        "gitCommit" | "gitTree" | "gitBlob" | "gitTag" => &[40, 64],
        _ => return None,
    })
}

impl ResourceDescriptor {
    /// A descriptor with one digest.
    pub fn with_digest(name: &str, alg: &str, value: &str) -> ResourceDescriptor {
        ResourceDescriptor {
            name: name.to_string(),
            digest: BTreeMap::from([(alg.to_string(), value.to_string())]),
            ..ResourceDescriptor::default()
        }
    }

    /// Validates required fields and the encoding of known digests.
    pub fn validate(&self) -> Result<(), StatementError> {
        if self.name.is_empty() && self.uri.is_empty() && self.digest.is_empty() {
            return Err(StatementError::RdRequiredField);
        }
        for (alg, value) in &self.digest {
            let Some(lengths) = known_lengths(alg) else {
                continue;
            };
            if !value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(StatementError::InvalidDigestEncoding { alg: alg.clone() });
            }
            if !lengths.contains(&value.len()) {
                return Err(StatementError::IncorrectDigestLength {
                    alg: alg.clone(),
                    len: value.len(),
                    expected: lengths
                        .iter()
                        .map(|l| l.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                });
            }
        }
        Ok(())
    }
}

impl Statement {
    /// Validates the statement as the reference implementation does.
    pub fn validate(&self) -> Result<(), StatementError> {
        if self.type_ != STATEMENT_V1 && self.type_ != STATEMENT_V01 {
            return Err(StatementError::InvalidStatementType(self.type_.clone()));
        }
        if self.subject.is_empty() {
            return Err(StatementError::SubjectRequired);
        }
        for s in &self.subject {
            s.validate()?;
            if s.digest.is_empty() {
                return Err(StatementError::DigestRequired);
            }
        }
        if self.predicate_type.is_empty() {
            return Err(StatementError::PredicateTypeRequired);
        }
        if self.predicate.is_none() {
            return Err(StatementError::PredicateRequired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_digests_accept_sha1_and_sha256_object_ids() {
        let ok = ResourceDescriptor::with_digest("c", "gitCommit", &"a".repeat(40));
        assert!(ok.validate().is_ok());
        let ok = ResourceDescriptor::with_digest("c", "gitTree", &"b".repeat(64));
        assert!(ok.validate().is_ok());
        let bad = ResourceDescriptor::with_digest("c", "gitTree", "abc");
        assert!(matches!(
            bad.validate(),
            Err(StatementError::IncorrectDigestLength { .. })
        ));
        let upper = ResourceDescriptor::with_digest("c", "sha256", &"A".repeat(64));
        assert!(matches!(
            upper.validate(),
            Err(StatementError::InvalidDigestEncoding { .. })
        ));
    }
}
