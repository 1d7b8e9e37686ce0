//! Signing keys: Ed25519 and ECDSA P-256, as PKCS#8 private keys (optionally
//! passphrase-encrypted with scrypt + AES-256-CBC, readable by OpenSSL) and SPKI PEM
//! public keys — the formats `openssl`, `cosign` and Sigstore use.
//!
//! A key id is `sha256:` + the hex SHA-256 of the public key's SPKI DER encoding: stable
//! across PEM formatting, the same for a key however it was generated.
//!
//! ```
//! use lockgate_attest::keys::{KeyAlgorithm, PrivateKey, PublicKey};
//! let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
//! let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
//! let sig = key.sign(b"message");
//! public.verify(b"message", &sig).unwrap();
//! assert!(public.verify(b"other", &sig).is_err());
//! ```

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::ecdsa::signature::{Signer, Verifier};
use pkcs8::LineEnding;
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The signature schemes Lockgate signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032), 64-byte signatures.
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256; DER signatures (raw r‖s accepted on verify).
    EcdsaP256,
}

impl KeyAlgorithm {
    /// The name used on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

/// A key could not be read, or a signature does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM private key this tool supports (PKCS#8 Ed25519 or ECDSA P-256): {0}")]
    PrivateKey(String),
    #[error("the private key is encrypted: a passphrase is required")]
    PassphraseRequired,
    #[error("could not decrypt the private key (wrong passphrase?)")]
    Decrypt,
    #[error("not a PEM public key this tool supports (SPKI Ed25519 or ECDSA P-256): {0}")]
    PublicKey(String),
    #[error("signature does not verify")]
    BadSignature,
}

enum SigningInner {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// A private signing key. Its secret material is zeroized on drop.
pub struct PrivateKey {
    inner: SigningInner,
}

#[derive(Clone)]
enum VerifyingInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// A public verification key.
#[derive(Clone)]
pub struct PublicKey {
    inner: VerifyingInner,
    spki_der: Vec<u8>,
    /// Computed once: verification compares ids for every signature.
    key_id: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicKey({} {})",
            self.algorithm().as_str(),
            self.key_id()
        )
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl PrivateKey {
    /// A fresh key from the operating system's random source.
    pub fn generate(algorithm: KeyAlgorithm) -> PrivateKey {
        let inner = match algorithm {
            KeyAlgorithm::Ed25519 => {
                SigningInner::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
            KeyAlgorithm::EcdsaP256 => {
                SigningInner::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
            }
        };
        PrivateKey { inner }
    }

    /// Reads a PKCS#8 PEM key (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a
    /// passphrase).
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<PrivateKey, KeyError> {
        let (label, der) = parse_pem(pem).map_err(KeyError::PrivateKey)?;
        match label.as_str() {
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
                let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| KeyError::PrivateKey(e.to_string()))?;
                let der = encrypted
                    .decrypt(passphrase)
                    .map_err(|_| KeyError::Decrypt)?;
                Self::from_pkcs8_der(der.as_bytes())
            }
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            other => Err(KeyError::PrivateKey(format!(
                "PEM label {other:?}; expected \"PRIVATE KEY\" or \"ENCRYPTED PRIVATE KEY\" (PKCS#8){}",
                if other.contains("SIGSTORE") || other.contains("COSIGN") {
                    ": cosign's own private key format is not supported, export PKCS#8 instead"
                } else {
                    ""
                }
            ))),
        }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(PrivateKey {
                inner: SigningInner::Ed25519(k),
            });
        }
        match p256::SecretKey::from_pkcs8_der(der) {
            Ok(k) => Ok(PrivateKey {
                inner: SigningInner::P256(p256::ecdsa::SigningKey::from(k)),
            }),
            Err(e) => Err(KeyError::PrivateKey(format!(
                "neither Ed25519 nor P-256 PKCS#8: {e}"
            ))),
        }
    }

    /// PKCS#8 PEM, encrypted (scrypt, AES-256-CBC) when a passphrase is given.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Zeroizing<String> {
        let der = match &self.inner {
            SigningInner::Ed25519(k) => k.to_pkcs8_der(),
            SigningInner::P256(k) => p256::SecretKey::from(k).to_pkcs8_der(),
        }
        .expect("a valid key always encodes");
        match passphrase {
            None => Zeroizing::new(
                der.to_pem("PRIVATE KEY", LineEnding::LF)
                    .expect("PEM encoding of valid DER")
                    .to_string(),
            ),
            Some(pass) => {
                let info =
                    pkcs8::PrivateKeyInfo::try_from(der.as_bytes()).expect("our own DER parses");
                let encrypted = info.encrypt(OsRng, pass).expect("encryption succeeds");
                Zeroizing::new(
                    encrypted
                        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                        .expect("PEM encoding of valid DER")
                        .to_string(),
                )
            }
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let inner = match &self.inner {
            SigningInner::Ed25519(k) => VerifyingInner::Ed25519(k.verifying_key()),
            SigningInner::P256(k) => VerifyingInner::P256(*k.verifying_key()),
        };
        PublicKey::from_inner(inner)
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            SigningInner::Ed25519(_) => KeyAlgorithm::Ed25519,
            SigningInner::P256(_) => KeyAlgorithm::EcdsaP256,
        }
    }

    /// Signs `message`: Ed25519 (64 bytes) or ECDSA P-256 SHA-256 (DER, as Sigstore and
    /// cosign write it).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.inner {
            SigningInner::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SigningInner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

impl PublicKey {
    fn from_inner(inner: VerifyingInner) -> PublicKey {
        let spki_der = match &inner {
            VerifyingInner::Ed25519(k) => k.to_public_key_der(),
            VerifyingInner::P256(k) => k.to_public_key_der(),
        }
        .expect("a valid key always encodes")
        .into_vec();
        let key_id = format!("sha256:{}", hex::encode(Sha256::digest(&spki_der)));
        PublicKey {
            inner,
            spki_der,
            key_id,
        }
    }

    /// Reads an SPKI PEM public key (`PUBLIC KEY`), as written by OpenSSL, cosign
    /// (`cosign generate-key-pair`, `cosign public-key`) and this tool.
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = parse_pem(pem).map_err(KeyError::PublicKey)?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::PublicKey(format!(
                "PEM label {label:?}; expected \"PUBLIC KEY\" (SPKI)"
            )));
        }
        Self::from_spki_der(&der)
    }

    /// Reads a DER-encoded SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::from_inner(VerifyingInner::Ed25519(k)));
        }
        match p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            Ok(k) => Ok(Self::from_inner(VerifyingInner::P256(k))),
            Err(e) => Err(KeyError::PublicKey(format!(
                "neither Ed25519 nor P-256 SubjectPublicKeyInfo: {e}"
            ))),
        }
    }

    /// SPKI PEM.
    pub fn to_pem(&self) -> String {
        pkcs8::Document::try_from(self.spki_der.as_slice())
            .and_then(|d| d.to_pem("PUBLIC KEY", LineEnding::LF))
            .expect("our own SPKI DER encodes")
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// `sha256:<hex of SHA-256(SPKI DER)>`.
    pub fn key_id(&self) -> String {
        self.key_id.clone()
    }

    /// The key id without copying it.
    pub fn key_id_str(&self) -> &str {
        &self.key_id
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            VerifyingInner::Ed25519(_) => KeyAlgorithm::Ed25519,
            VerifyingInner::P256(_) => KeyAlgorithm::EcdsaP256,
        }
    }

    /// Verifies `signature` over `message`. P-256 accepts DER and raw 64-byte r‖s (the
    /// DSSE spec's test vector uses the latter). Ed25519 uses strict verification
    /// (rejects small-order keys and non-canonical signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        match &self.inner {
            VerifyingInner::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| KeyError::BadSignature)?;
                k.verify_strict(message, &sig)
                    .map_err(|_| KeyError::BadSignature)
            }
            VerifyingInner::P256(k) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(signature))
                    .map_err(|_| KeyError::BadSignature)?;
                k.verify(message, &sig).map_err(|_| KeyError::BadSignature)
            }
        }
    }
}

/// Largest PEM text accepted.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// Reads one PEM block leniently: any line length, CRLF, surrounding text. (Real PEM
/// files are not always RFC 7468-strict; cosign and sigstore-go write one long line.)
fn parse_pem(text: &str) -> Result<(String, Zeroizing<Vec<u8>>), String> {
    use base64::Engine;
    if text.len() > MAX_PEM_BYTES {
        return Err(format!("{} bytes is too large for a key", text.len()));
    }
    let begin = text
        .find("-----BEGIN ")
        .ok_or("no PEM \"-----BEGIN\" line")?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("unterminated PEM BEGIN line")?;
    let label = rest[..label_end].to_string();
    let body_start = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_start
        .find(&end_marker)
        .ok_or_else(|| format!("no matching \"{end_marker}\" line"))?;
    let body: String = body_start[..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("PEM body is not valid base64: {e}"))?;
    Ok((label, Zeroizing::new(der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_algorithms_with_and_without_passphrase() {
        for alg in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
            let key = PrivateKey::generate(alg);
            let pem = key.to_pem(None);
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let back = PrivateKey::from_pem(&pem, None).unwrap();
            assert_eq!(back.public_key(), key.public_key());

            let encrypted = key.to_pem(Some(b"correct horse"));
            assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
            assert_eq!(
                PrivateKey::from_pem(&encrypted, None).err(),
                Some(KeyError::PassphraseRequired)
            );
            assert_eq!(
                PrivateKey::from_pem(&encrypted, Some(b"wrong")).err(),
                Some(KeyError::Decrypt)
            );
            let back = PrivateKey::from_pem(&encrypted, Some(b"correct horse")).unwrap();
            assert_eq!(back.public_key(), key.public_key());

            let public = key.public_key();
            let reread = PublicKey::from_pem(&public.to_pem()).unwrap();
            assert_eq!(reread.key_id(), public.key_id());
            let sig = key.sign(b"payload");
            reread.verify(b"payload", &sig).unwrap();
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(reread.verify(b"payload", &bad), Err(KeyError::BadSignature));
        }
    }

    #[test]
    fn rejects_the_wrong_kind_of_pem() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519);
        assert!(matches!(
            PublicKey::from_pem(&key.to_pem(None)),
            Err(KeyError::PublicKey(_))
        ));
        assert!(matches!(
            PrivateKey::from_pem(&key.public_key().to_pem(), None),
            Err(KeyError::PrivateKey(_))
        ));
        assert!(PublicKey::from_pem("not pem").is_err());
    }
}
