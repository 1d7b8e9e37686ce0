"""Independent DSSE implementation (securesystemslib) checking Lockgate, both ways.

verify PUB.pem BUNDLE.json   -> exit 0 if the bundle's DSSE envelope verifies with the key
sign   DIR ALGORITHM         -> writes DIR/pub.pem and DIR/envelope.json signed by a fresh key
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey


def key_id(public_key) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def scheme(public_key) -> str:
    return "ed25519" if isinstance(public_key, ed25519.Ed25519PublicKey) else "ecdsa-sha2-nistp256"


def verify(pub_path: str, bundle_path: str) -> int:
    with open(pub_path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    with open(bundle_path) as f:
        bundle = json.load(f)
    envelope = Envelope.from_dict(bundle["dsseEnvelope"])
    key = SSlibKey.from_crypto(public, keyid=key_id(public), scheme=scheme(public))
    verified = envelope.verify([key], 1)
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1", statement["_type"]
    print("verified by", list(verified))
    return 0


def sign(out_dir: str, algorithm: str) -> int:
    private = ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    public = private.public_key()
    key = SSlibKey.from_crypto(public, keyid=key_id(public), scheme=scheme(public))
    signer = CryptoSigner(private, key)
    envelope = Envelope(
        payload=b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"'
        + b"0" * 64
        + b'"}}],"predicateType":"https://example.com/p","predicate":{}}',
        payload_type="application/vnd.in-toto+json",
        signatures={},
    )
    envelope.sign(signer)
    with open(f"{out_dir}/pub.pem", "wb") as f:
        f.write(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with open(f"{out_dir}/envelope.json", "w") as f:
        json.dump(envelope.to_dict(), f)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        sys.exit(verify(sys.argv[2], sys.argv[3]))
    sys.exit(sign(sys.argv[2], sys.argv[3]))
