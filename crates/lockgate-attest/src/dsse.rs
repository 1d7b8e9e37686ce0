//! DSSE (Dead Simple Signing Envelope) v1: the signature is over the pre-authentication
//! encoding `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, so
//! the payload type cannot be swapped and nothing is signed that was not meant to be.
//!
//! Hand-written because it is small, central, and the one shared crate
//! (`sigstore-types`) allows a single signature per envelope and pulls in a C crypto
//! backend; this module allows several signers and is checked against the DSSE spec's
//! test vector and envelopes made by other implementations.
//!
//! ```
//! use lockgate_attest::{dsse::Envelope, keys::{KeyAlgorithm, PrivateKey}};
//! let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
//! let env = Envelope::sign("application/vnd.in-toto+json", b"{}", &[&key]);
//! let verified = env.verify(&[key.public_key()]).unwrap();
//! assert_eq!(verified.payload, b"{}");
//! ```

use crate::keys::PublicKey;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};

/// The in-toto payload type.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Largest envelope accepted (serialized JSON).
pub const MAX_ENVELOPE_BYTES: usize = 8 * 1024 * 1024;
/// Most signatures accepted on one envelope.
pub const MAX_SIGNATURES: usize = 16;

/// A DSSE envelope as JSON (`payload` and `sig` are standard base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Optional, unauthenticated hint for which key signed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    pub sig: String,
}

/// An envelope is malformed or does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsseError {
    #[error("envelope is {0} bytes, more than the {MAX_ENVELOPE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("envelope is not valid DSSE JSON: {0}")]
    Malformed(String),
    #[error("envelope has no signatures")]
    Unsigned,
    #[error("envelope has {0} signatures, more than the limit of {MAX_SIGNATURES}")]
    TooManySignatures(usize),
    #[error("envelope field {0} is not valid base64")]
    Base64(&'static str),
    #[error("no signature verifies with a trusted key")]
    NoValidSignature,
}

/// What verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// Key ids (`sha256:…`) of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
}

/// The pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Decodes standard base64, also accepting URL-safe (the DSSE spec allows either).
fn decode_b64(text: &str, field: &'static str) -> Result<Vec<u8>, DsseError> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| DsseError::Base64(field))
}

impl Envelope {
    /// Signs `payload` with every key in `signers`.
    pub fn sign(
        payload_type: &str,
        payload: &[u8],
        signers: &[&crate::keys::PrivateKey],
    ) -> Envelope {
        let message = pae(payload_type, payload);
        Envelope {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: signers
                .iter()
                .map(|k| Signature {
                    keyid: k.public_key().key_id(),
                    sig: STANDARD.encode(k.sign(&message)),
                })
                .collect(),
        }
    }

    /// Parses an envelope, bounded in size and signature count.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, DsseError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DsseError::TooLarge(bytes.len()));
        }
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))?;
        env.check_shape()?;
        Ok(env)
    }

    pub(crate) fn check_shape(&self) -> Result<(), DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::Unsigned);
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures(self.signatures.len()));
        }
        Ok(())
    }

    /// The decoded payload, **unauthenticated**: use [`Envelope::verify`] to trust it.
    pub fn payload_unverified(&self) -> Result<Vec<u8>, DsseError> {
        decode_b64(&self.payload, "payload")
    }

    /// Checks every signature against every trusted key (no early exit, so timing does
    /// not reveal which signature or key matched) and succeeds when at least one
    /// trusted key verified one signature.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<Verified, DsseError> {
        self.check_shape()?;
        let payload = decode_b64(&self.payload, "payload")?;
        let message = pae(&self.payload_type, &payload);
        let mut signers: Vec<String> = Vec::new();
        for signature in &self.signatures {
            let Ok(sig) = decode_b64(&signature.sig, "sig") else {
                continue;
            };
            for key in trusted {
                if key.verify(&message, &sig).is_ok()
                    && !signers.iter().any(|s| s == key.key_id_str())
                {
                    signers.push(key.key_id());
                }
            }
        }
        if signers.is_empty() {
            return Err(DsseError::NoValidSignature);
        }
        Ok(Verified {
            payload_type: self.payload_type.clone(),
            payload,
            signers,
        })
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("envelopes serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlgorithm, PrivateKey};

    #[test]
    fn pae_matches_the_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn multi_signer_envelopes_verify_with_any_trusted_key() {
        let a = PrivateKey::generate(KeyAlgorithm::Ed25519);
        let b = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"x\":1}", &[&a, &b]);
        assert_eq!(env.signatures.len(), 2);
        let v = env.verify(&[b.public_key()]).unwrap();
        assert_eq!(v.signers, [b.public_key().key_id()]);
        let v = env.verify(&[a.public_key(), b.public_key()]).unwrap();
        assert_eq!(v.signers.len(), 2);
        let stranger = PrivateKey::generate(KeyAlgorithm::Ed25519);
        assert_eq!(
            env.verify(&[stranger.public_key()]),
            Err(DsseError::NoValidSignature)
        );
    }

    #[test]
    fn tampering_is_detected() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"x\":1}", &[&key]);
        let trusted = [key.public_key()];

        let mut t = env.clone();
        t.payload = STANDARD.encode(b"{\"x\":2}");
        assert_eq!(t.verify(&trusted), Err(DsseError::NoValidSignature));

        let mut t = env.clone();
        t.payload_type = "application/json".into();
        assert_eq!(t.verify(&trusted), Err(DsseError::NoValidSignature));

        let mut t = env.clone();
        t.signatures.clear();
        assert_eq!(t.verify(&trusted), Err(DsseError::Unsigned));

        let mut t = env;
        t.payload = "%%%".into();
        assert_eq!(t.verify(&trusted), Err(DsseError::Base64("payload")));
    }

    #[test]
    fn parsing_is_bounded() {
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(
            Envelope::from_json(&huge),
            Err(DsseError::TooLarge(MAX_ENVELOPE_BYTES + 1))
        );
        assert!(matches!(
            Envelope::from_json(b"{\"payload\":1}"),
            Err(DsseError::Malformed(_))
        ));
        let sigs: Vec<String> = (0..17).map(|_| "{\"sig\":\"AA==\"}".to_string()).collect();
        let many = format!(
            "{{\"payload\":\"\",\"payloadType\":\"t\",\"signatures\":[{}]}}",
            sigs.join(",")
        );
        assert_eq!(
            Envelope::from_json(many.as_bytes()),
            Err(DsseError::TooManySignatures(17))
        );
    }
}
