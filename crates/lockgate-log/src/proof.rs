//! Proofs as documents: what `lockgate log prove` prints, what a Sigstore bundle's
//! `inclusionProof` carries, and the one-call checks a third party runs offline.
//!
//! The JSON shape is Sigstore's `InclusionProof` (protobuf-specs, JSON mapping): 64-bit
//! integers as decimal strings, hashes in standard base64, and the checkpoint note as
//! `checkpoint.envelope`. A proof is only as good as its checkpoint, so verifying one
//! always verifies the checkpoint's signature with the log's key first.

use crate::checkpoint::{Checkpoint, CheckpointError, LogVerifyingKey};
use crate::merkle::{self, Hash, ProofError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Most hashes a proof may hold (a tree of 2^64 leaves needs at most 128).
pub const MAX_PROOF_HASHES: usize = 128;

/// A proof document failed to parse or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofDocError {
    #[error("malformed proof: {0}")]
    Malformed(String),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("the proof's {field} ({proof}) differs from its checkpoint's ({checkpoint})")]
    CheckpointMismatch {
        field: &'static str,
        proof: String,
        checkpoint: String,
    },
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// `{"envelope": "<signed note>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointDoc {
    pub envelope: String,
}

/// An inclusion proof with the checkpoint it leads to (Sigstore `InclusionProof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProofDoc {
    #[serde(with = "decimal")]
    pub log_index: u64,
    #[serde(with = "b64_hash")]
    pub root_hash: Hash,
    #[serde(with = "decimal")]
    pub tree_size: u64,
    #[serde(with = "b64_hashes")]
    pub hashes: Vec<Hash>,
    pub checkpoint: CheckpointDoc,
}

/// A consistency proof between two checkpoints of one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyProofDoc {
    pub old_checkpoint: CheckpointDoc,
    pub new_checkpoint: CheckpointDoc,
    #[serde(with = "b64_hashes")]
    pub hashes: Vec<Hash>,
}

impl InclusionProofDoc {
    /// Verifies that `entry` is in the log: the checkpoint is signed by `key`, agrees
    /// with the proof's size and root, and the proof leads from the entry's leaf hash to
    /// that root. Returns the verified checkpoint.
    pub fn verify(&self, entry: &[u8], key: &LogVerifyingKey) -> Result<Checkpoint, ProofDocError> {
        self.verify_leaf(&merkle::leaf_hash(entry), key)
    }

    /// As [`InclusionProofDoc::verify`], for a leaf hash.
    pub fn verify_leaf(
        &self,
        leaf: &Hash,
        key: &LogVerifyingKey,
    ) -> Result<Checkpoint, ProofDocError> {
        let cp = Checkpoint::verify(self.checkpoint.envelope.as_bytes(), key)?;
        if cp.size != self.tree_size {
            return Err(ProofDocError::CheckpointMismatch {
                field: "tree size",
                proof: self.tree_size.to_string(),
                checkpoint: cp.size.to_string(),
            });
        }
        if cp.root != self.root_hash {
            return Err(ProofDocError::CheckpointMismatch {
                field: "root hash",
                proof: STANDARD.encode(self.root_hash),
                checkpoint: STANDARD.encode(cp.root),
            });
        }
        merkle::verify_inclusion(self.log_index, self.tree_size, leaf, &self.hashes, &cp.root)?;
        Ok(cp)
    }
}

impl ConsistencyProofDoc {
    /// Verifies both checkpoints with `key` and that the newer extends the older.
    /// Returns `(old, new)`.
    pub fn verify(&self, key: &LogVerifyingKey) -> Result<(Checkpoint, Checkpoint), ProofDocError> {
        let old = Checkpoint::verify(self.old_checkpoint.envelope.as_bytes(), key)?;
        let new = Checkpoint::verify(self.new_checkpoint.envelope.as_bytes(), key)?;
        verify_extends(&old, &new, &self.hashes)?;
        Ok((old, new))
    }
}

/// Checks that `new` extends `old` with `proof`. Unlike the bare RFC check, an empty
/// `old` is extended by anything (every tree extends the empty one), and two trees of
/// the same size must have the same root: anything else is a fork.
pub fn verify_extends(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old.size == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength {
                got: proof.len(),
                expected: 0,
            })
        };
    }
    merkle::verify_consistency(old.size, new.size, proof, &old.root, &new.root)
}

mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    /// Accepts a decimal string (the protobuf JSON mapping) or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Number(u64),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(n),
            Either::Text(t) => t
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not an unsigned integer"))),
        }
    }
}

fn decode_hash<E: serde::de::Error>(text: &str) -> Result<Hash, E> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| E::custom(format!("{text:?} is not base64")))?;
    bytes
        .try_into()
        .map_err(|_| E::custom("a hash is 32 bytes"))
}

mod b64_hash {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        decode_hash(&String::deserialize(d)?)
    }
}

mod b64_hashes {
    use super::*;
    use serde::{Deserializer, Serializer, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(hashes: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hashes.len()))?;
        for h in hashes {
            seq.serialize_element(&STANDARD.encode(h))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        if texts.len() > MAX_PROOF_HASHES {
            return Err(serde::de::Error::custom(format!(
                "a proof has at most {MAX_PROOF_HASHES} hashes"
            )));
        }
        texts.iter().map(|t| decode_hash(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LogSigningKey;

    fn checkpoint_of(origin: &str, leaves: &[Hash]) -> Checkpoint {
        Checkpoint {
            origin: origin.into(),
            size: leaves.len() as u64,
            root: merkle::root_of(leaves),
            extension: String::new(),
        }
    }

    #[test]
    fn inclusion_documents_round_trip_and_verify() {
        let (skey, vkey) = LogSigningKey::generate("example.com/log").unwrap();
        let entries: Vec<Vec<u8>> = (0..11u8).map(|i| vec![i; 3]).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let cp = checkpoint_of("example.com/log", &leaves);
        let doc = InclusionProofDoc {
            log_index: 6,
            root_hash: cp.root,
            tree_size: cp.size,
            hashes: merkle::inclusion_proof(&merkle::Leaves(&leaves), 6, 11).unwrap(),
            checkpoint: CheckpointDoc {
                envelope: String::from_utf8(cp.sign(&skey)).unwrap(),
            },
        };
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["logIndex"], "6");
        assert_eq!(json["treeSize"], "11");
        let back: InclusionProofDoc = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
        assert_eq!(back.verify(&entries[6], &vkey).unwrap(), cp);

        // The wrong entry, a different size or root, or another key: all refused.
        assert!(doc.verify(&entries[5], &vkey).is_err());
        let mut bigger = doc.clone();
        bigger.tree_size = 12;
        assert!(matches!(
            bigger.verify(&entries[6], &vkey),
            Err(ProofDocError::CheckpointMismatch { .. })
        ));
        let mut other_root = doc.clone();
        other_root.root_hash[0] ^= 1;
        assert!(other_root.verify(&entries[6], &vkey).is_err());
        let (_, stranger) = LogSigningKey::generate("example.com/log").unwrap();
        assert!(matches!(
            doc.verify(&entries[6], &stranger),
            Err(ProofDocError::Checkpoint(_))
        ));
    }

    #[test]
    fn consistency_documents_verify_and_catch_forks() {
        let (skey, vkey) = LogSigningKey::generate("example.com/log").unwrap();
        let leaves: Vec<Hash> = (0..20u8).map(|i| merkle::leaf_hash(&[i])).collect();
        let old = checkpoint_of("example.com/log", &leaves[..7]);
        let new = checkpoint_of("example.com/log", &leaves);
        let note = |c: &Checkpoint| CheckpointDoc {
            envelope: String::from_utf8(c.sign(&skey)).unwrap(),
        };
        let doc = ConsistencyProofDoc {
            old_checkpoint: note(&old),
            new_checkpoint: note(&new),
            hashes: merkle::consistency_proof(&merkle::Leaves(&leaves), 7, 20).unwrap(),
        };
        let text = serde_json::to_string(&doc).unwrap();
        let back: ConsistencyProofDoc = serde_json::from_str(&text).unwrap();
        assert_eq!(back.verify(&vkey).unwrap(), (old.clone(), new));

        let mut forked_leaves = leaves.clone();
        forked_leaves[3] = merkle::leaf_hash(b"rewritten");
        let fork = checkpoint_of("example.com/log", &forked_leaves);
        let forked = ConsistencyProofDoc {
            new_checkpoint: note(&fork),
            hashes: merkle::consistency_proof(&merkle::Leaves(&forked_leaves), 7, 20).unwrap(),
            ..doc
        };
        assert!(forked.verify(&vkey).is_err());

        let empty = checkpoint_of("example.com/log", &[]);
        assert!(verify_extends(&empty, &old, &[]).is_ok());
        assert!(verify_extends(&empty, &old, &[[0; 32]]).is_err());
    }

    #[test]
    fn oversized_or_malformed_documents_are_refused() {
        let many = vec!["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; MAX_PROOF_HASHES + 1];
        let json = serde_json::json!({
            "logIndex": "0", "rootHash": many[0], "treeSize": "1",
            "hashes": many, "checkpoint": {"envelope": ""}
        });
        let err = serde_json::from_value::<InclusionProofDoc>(json).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        let json = serde_json::json!({
            "logIndex": "-1", "rootHash": "", "treeSize": "1",
            "hashes": [], "checkpoint": {"envelope": ""}
        });
        assert!(serde_json::from_value::<InclusionProofDoc>(json).is_err());
    }
}
