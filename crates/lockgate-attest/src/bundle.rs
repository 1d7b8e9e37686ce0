//! Sigstore bundles (JSON, media type `application/vnd.dev.sigstore.bundle.v0.3+json`),
//! key-based: the verification material is a public-key hint, the content a DSSE
//! envelope (attestations) or a message signature (`cosign sign-blob --bundle`).
//!
//! Lockgate writes v0.3 bundles with one DSSE signature (the Sigstore rule) and reads
//! v0.1–v0.3. Certificate-based (keyless) bundles are recognized and refused with a
//! clear error: Lockgate's trust roots are keys. Transparency-log entries are carried
//! through untouched (the log issue verifies them).

use crate::dsse::{DsseError, Envelope, MAX_ENVELOPE_BYTES};
use crate::keys::{KeyError, PrivateKey, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The media type Lockgate writes.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const ACCEPTED_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    BUNDLE_V03,
];

/// A Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<MessageSignature>,
}

/// How to find the key (key-based bundles) and log/timestamp evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyHint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<serde_json::Value>,
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

/// `publicKey.hint`: base64 of SHA-256 over the key's SPKI DER, by Sigstore convention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyHint {
    #[serde(default)]
    pub hint: String,
}

/// A signature over an artifact's bytes, with the artifact's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_digest: Option<MessageDigest>,
    pub signature: String,
}

/// `{ "algorithm": "SHA2_256", "digest": base64 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDigest {
    pub algorithm: String,
    pub digest: String,
}

/// A bundle is malformed, unsupported, or does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("bundle is {0} bytes, more than the {MAX_ENVELOPE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("not a Sigstore bundle: {0}")]
    Malformed(String),
    #[error("unsupported bundle media type {0:?}")]
    MediaType(String),
    #[error("certificate-based (keyless) bundles are not supported: trust roots are keys")]
    Keyless,
    #[error("bundle must hold exactly one of dsseEnvelope or messageSignature")]
    Content,
    #[error("a Sigstore bundle's DSSE envelope must have exactly one signature, found {0}")]
    SignatureCount(usize),
    #[error(transparent)]
    Dsse(#[from] DsseError),
    #[error("message digest does not match the artifact")]
    DigestMismatch,
    #[error("unsupported message digest algorithm {0:?}")]
    DigestAlgorithm(String),
    #[error("signature is not valid base64")]
    Base64,
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The Sigstore key hint for a key.
pub fn key_hint(key: &PublicKey) -> String {
    STANDARD.encode(Sha256::digest(key.spki_der()))
}

impl Bundle {
    /// Wraps a DSSE envelope signed by `signer`.
    pub fn for_envelope(envelope: Envelope, signer: &PublicKey) -> Bundle {
        Bundle {
            media_type: BUNDLE_V03.into(),
            verification_material: VerificationMaterial {
                public_key: Some(PublicKeyHint {
                    hint: key_hint(signer),
                }),
                ..VerificationMaterial::default()
            },
            dsse_envelope: Some(envelope),
            message_signature: None,
        }
    }

    /// Signs `payload` as a DSSE envelope with one key and wraps it.
    pub fn sign_dsse(payload_type: &str, payload: &[u8], key: &PrivateKey) -> Bundle {
        let envelope = Envelope::sign(payload_type, payload, &[key]);
        Bundle::for_envelope(envelope, &key.public_key())
    }

    /// Parses and checks the shape: size, media type, key-based material, one content.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(BundleError::TooLarge(bytes.len()));
        }
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if !ACCEPTED_MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
            return Err(BundleError::MediaType(bundle.media_type));
        }
        let vm = &bundle.verification_material;
        if vm.certificate.is_some() || vm.x509_certificate_chain.is_some() {
            return Err(BundleError::Keyless);
        }
        match (&bundle.dsse_envelope, &bundle.message_signature) {
            (Some(env), None) => {
                if env.signatures.len() != 1 {
                    return Err(BundleError::SignatureCount(env.signatures.len()));
                }
            }
            (None, Some(_)) => {}
            _ => return Err(BundleError::Content),
        }
        Ok(bundle)
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("bundles serialize")
    }

    /// The hint, if any.
    pub fn hint(&self) -> Option<&str> {
        self.verification_material
            .public_key
            .as_ref()
            .map(|k| k.hint.as_str())
            .filter(|h| !h.is_empty())
    }

    /// Verifies a message-signature bundle over `artifact` (as `cosign verify-blob
    /// --bundle --key` does): the digest, when present, must match, and the signature
    /// must verify over the artifact bytes with `key`.
    pub fn verify_message(&self, artifact: &[u8], key: &PublicKey) -> Result<(), BundleError> {
        let ms = self
            .message_signature
            .as_ref()
            .ok_or(BundleError::Content)?;
        if let Some(d) = &ms.message_digest {
            if d.algorithm != "SHA2_256" {
                return Err(BundleError::DigestAlgorithm(d.algorithm.clone()));
            }
            let claimed = STANDARD
                .decode(&d.digest)
                .map_err(|_| BundleError::Base64)?;
            let actual = Sha256::digest(artifact);
            if !crate::ct_eq(&claimed, &actual) {
                return Err(BundleError::DigestMismatch);
            }
        }
        verify_blob(artifact, &ms.signature, key)
    }
}

/// Verifies a `cosign sign-blob --key` signature: base64 text over the artifact bytes.
pub fn verify_blob(
    artifact: &[u8],
    signature_b64: &str,
    key: &PublicKey,
) -> Result<(), BundleError> {
    let sig = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| BundleError::Base64)?;
    key.verify(artifact, &sig)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyAlgorithm;

    #[test]
    fn round_trip_and_shape_rules() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
        let b = Bundle::sign_dsse("application/vnd.in-toto+json", b"{}", &key);
        let parsed = Bundle::from_json(b.to_json().as_bytes()).unwrap();
        assert_eq!(parsed, b);
        assert_eq!(parsed.hint(), Some(key_hint(&key.public_key()).as_str()));

        let mut two = b.clone();
        let sig = two.dsse_envelope.as_ref().unwrap().signatures[0].clone();
        two.dsse_envelope.as_mut().unwrap().signatures.push(sig);
        assert_eq!(
            Bundle::from_json(two.to_json().as_bytes()),
            Err(BundleError::SignatureCount(2))
        );

        let mut v = serde_json::to_value(&b).unwrap();
        v["mediaType"] = "application/vnd.dev.sigstore.bundle.v9+json".into();
        assert!(matches!(
            Bundle::from_json(v.to_string().as_bytes()),
            Err(BundleError::MediaType(_))
        ));
        let mut v = serde_json::to_value(&b).unwrap();
        v["verificationMaterial"]["certificate"] = serde_json::json!({"rawBytes": "AA=="});
        assert_eq!(
            Bundle::from_json(v.to_string().as_bytes()),
            Err(BundleError::Keyless)
        );
    }

    #[test]
    fn message_signatures_check_digest_and_signature() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        let artifact = b"release.tar.gz bytes";
        let bundle = Bundle {
            media_type: BUNDLE_V03.into(),
            verification_material: VerificationMaterial::default(),
            dsse_envelope: None,
            message_signature: Some(MessageSignature {
                message_digest: Some(MessageDigest {
                    algorithm: "SHA2_256".into(),
                    digest: STANDARD.encode(Sha256::digest(artifact)),
                }),
                signature: STANDARD.encode(key.sign(artifact)),
            }),
        };
        bundle.verify_message(artifact, &key.public_key()).unwrap();
        assert_eq!(
            bundle.verify_message(b"other", &key.public_key()),
            Err(BundleError::DigestMismatch)
        );
        let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
        assert!(
            bundle
                .verify_message(artifact, &other.public_key())
                .is_err()
        );
    }
}
