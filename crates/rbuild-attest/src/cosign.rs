//! cosign's key-based signatures, made and checked without cosign.
//!
//! **Keys.** A private key is read from PEM: `ENCRYPTED SIGSTORE PRIVATE KEY` (cosign 2+) or
//! `ENCRYPTED COSIGN PRIVATE KEY` (cosign 1), whose body is the JSON envelope of
//! go-securesystemslib's `encrypted` package (`{"kdf": {"name": "scrypt", "params": {"N", "r",
//! "p"}, "salt"}, "cipher": {"name": "nacl/secretbox", "nonce"}, "ciphertext"}`) around a PKCS#8
//! ECDSA P-256 key, the password from `COSIGN_PASSWORD`; or plain `PRIVATE KEY` (PKCS#8) and
//! `EC PRIVATE KEY` (SEC1). A public key is `PUBLIC KEY` (SPKI) PEM, as `cosign.pub`.
//!
//! **Signatures.** The payload is the "simple signing" JSON
//! (`{"critical": {"identity": {"docker-reference": REPO}, "image": {"docker-manifest-digest":
//! DIGEST}, "type": "cosign container image signature"}, "optional": null}`); the signature is
//! ECDSA-SHA256 (ASN.1 DER, base64) over those exact bytes. The signature manifest is tagged
//! `sha256-<hex>.sig` in the image's repository; each layer is one payload
//! (`application/vnd.dev.cosign.simplesigning.v1+json`) with the signature in the annotation
//! `dev.cosignproject.cosign/signature`. Verification checks each layer's signature with the
//! public key and that its payload names the expected digest.

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rbuild_oci::{Descriptor, Digest, Image, Manifest, MediaType, RawManifest, canonical_json};
use serde::{Deserialize, Serialize};

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The environment variable holding an encrypted key's password (as cosign reads it).
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a key could not be read, or a signature not made or verified.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// The PEM is not a key rbuild reads.
    #[error(
        "{what}: {why}; use an ECDSA P-256 key as `cosign generate-key-pair` writes it, or a PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)"
    )]
    Key {
        /// Which key (a file name).
        what: String,
        /// What is wrong.
        why: String,
    },
    /// An encrypted key with a wrong (or missing) password.
    #[error(
        "{what}: cannot decrypt the key with the password in {PASSWORD_ENV}; set {PASSWORD_ENV} to the password given to `cosign generate-key-pair`"
    )]
    Password {
        /// Which key.
        what: String,
    },
    /// A signature that does not verify.
    #[error("{0}")]
    Invalid(String),
}

fn key_err(what: &str, why: impl Into<String>) -> CosignError {
    CosignError::Key {
        what: what.to_string(),
        why: why.into(),
    }
}

/// Splits a PEM text into (label, DER) blocks.
fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        for l in lines.by_ref() {
            if l == end {
                break;
            }
            if !l.contains(':') {
                body.push_str(l);
            }
        }
        if let Ok(der) = B64.decode(body.as_bytes()) {
            out.push((label.to_string(), der));
        }
    }
    out
}

/// The envelope of go-securesystemslib's `encrypted` package.
#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

/// scrypt cost parameters (`N` a power of two).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ScryptParams {
    /// CPU/memory cost.
    #[serde(rename = "N")]
    pub n: u64,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::B64.decode(s).map_err(serde::de::Error::custom)
    }
}

fn scrypt_key(password: &[u8], salt: &[u8], p: ScryptParams) -> Result<[u8; 32], String> {
    if !p.n.is_power_of_two() || p.n < 2 {
        return Err(format!("scrypt N={} is not a power of two", p.n));
    }
    let params = scrypt::Params::new(p.n.trailing_zeros() as u8, p.r, p.p, 32)
        .map_err(|e| format!("scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).map_err(|e| e.to_string())?;
    Ok(key)
}

/// Encrypts a PKCS#8 DER key the way `cosign generate-key-pair` does (scrypt + NaCl secretbox),
/// with the salt (32 bytes) and nonce (24 bytes) given, and returns the PEM
/// (`ENCRYPTED SIGSTORE PRIVATE KEY`). For tests and tooling; cosign's default cost is
/// `N=32768, r=8, p=1`.
pub fn encrypt_key(
    pkcs8_der: &[u8],
    password: &[u8],
    salt: [u8; 32],
    nonce: [u8; 24],
    params: ScryptParams,
) -> Result<String, CosignError> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let key = scrypt_key(password, &salt, params).map_err(|e| key_err("encrypt", e))?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    let ciphertext = cipher
        .encrypt(&nonce.into(), pkcs8_der)
        .map_err(|_| key_err("encrypt", "secretbox failed"))?;
    let env = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params,
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    let body = B64.encode(serde_json::to_vec(&env).expect("serializable"));
    let mut pem = String::from("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n");
    Ok(pem)
}

fn decrypt_envelope(what: &str, json: &[u8], password: &[u8]) -> Result<Vec<u8>, CosignError> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let env: Envelope = serde_json::from_slice(json).map_err(|e| {
        key_err(
            what,
            format!("the encrypted key's envelope does not parse: {e}"),
        )
    })?;
    if env.kdf.name != "scrypt" || env.cipher.name != "nacl/secretbox" {
        return Err(key_err(
            what,
            format!(
                "encrypted with {} + {}; only scrypt + nacl/secretbox is read",
                env.kdf.name, env.cipher.name
            ),
        ));
    }
    if env.cipher.nonce.len() != 24 {
        return Err(key_err(what, "the secretbox nonce is not 24 bytes"));
    }
    let key = scrypt_key(password, &env.kdf.salt, env.kdf.params).map_err(|e| key_err(what, e))?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    let nonce = crypto_secretbox::Nonce::from_slice(&env.cipher.nonce);
    cipher
        .decrypt(nonce, env.ciphertext.as_slice())
        .map_err(|_| CosignError::Password {
            what: what.to_string(),
        })
}

/// An ECDSA P-256 private key.
#[derive(Clone)]
pub struct SigningKey(p256::ecdsa::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(P-256, redacted)")
    }
}

impl SigningKey {
    /// Reads a key from PEM text (`what` names it in errors). `password` is used for encrypted
    /// cosign keys (`None`: an encrypted key fails, naming [`PASSWORD_ENV`]).
    pub fn from_pem(
        what: &str,
        pem: &str,
        password: Option<&[u8]>,
    ) -> Result<SigningKey, CosignError> {
        let blocks = pem_blocks(pem);
        let Some((label, der)) = blocks.into_iter().find(|(l, _)| l.contains("PRIVATE KEY")) else {
            return Err(key_err(what, "no PEM private key block"));
        };
        let secret = match label.as_str() {
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let Some(password) = password else {
                    return Err(CosignError::Password {
                        what: what.to_string(),
                    });
                };
                let der = decrypt_envelope(what, &der, password)?;
                p256::SecretKey::from_pkcs8_der(&der).map_err(|e| {
                    key_err(
                        what,
                        format!("the decrypted key is not a P-256 PKCS#8 key: {e}"),
                    )
                })?
            }
            "PRIVATE KEY" => p256::SecretKey::from_pkcs8_der(&der)
                .map_err(|e| key_err(what, format!("not a P-256 PKCS#8 key: {e}")))?,
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                .map_err(|e| key_err(what, format!("not a P-256 SEC1 key: {e}")))?,
            other => return Err(key_err(what, format!("a {other} block is not read"))),
        };
        Ok(SigningKey(p256::ecdsa::SigningKey::from(secret)))
    }

    /// Reads a key file; an encrypted key's password comes from [`PASSWORD_ENV`].
    pub fn from_file(path: &std::path::Path) -> Result<SigningKey, CosignError> {
        let what = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| key_err(&what, format!("cannot read it: {e}")))?;
        let password = std::env::var(PASSWORD_ENV).ok();
        SigningKey::from_pem(&what, &text, password.as_deref().map(str::as_bytes))
    }

    /// A key from its 32-byte scalar (tests).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<SigningKey, CosignError> {
        p256::ecdsa::SigningKey::from_slice(bytes)
            .map(SigningKey)
            .map_err(|e| key_err("key bytes", e.to_string()))
    }

    /// The PKCS#8 DER of the key (tests and [`encrypt_key`]).
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        use p256::pkcs8::EncodePrivateKey;
        p256::SecretKey::from(&self.0)
            .to_pkcs8_der()
            .expect("encodable")
            .as_bytes()
            .to_vec()
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(*self.0.verifying_key())
    }

    /// ECDSA-SHA256 over `message`, ASN.1 DER (RFC 6979: the same key and message give the same
    /// signature).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.0.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

/// An ECDSA P-256 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey(p256::ecdsa::VerifyingKey);

impl VerifyingKey {
    /// Reads a `PUBLIC KEY` PEM (as `cosign.pub`).
    pub fn from_pem(what: &str, pem: &str) -> Result<VerifyingKey, CosignError> {
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
            .map(VerifyingKey)
            .map_err(|e| key_err(what, format!("not a P-256 public key PEM: {e}")))
    }

    /// The `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        self.0.to_public_key_pem(LineEnding::LF).expect("encodable")
    }

    /// Whether `signature` (DER, or the 64-byte r‖s form) is a valid signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let sig = p256::ecdsa::Signature::from_der(signature)
            .or_else(|_| p256::ecdsa::Signature::from_slice(signature));
        sig.is_ok_and(|s| self.0.verify(message, &s).is_ok())
    }
}

/// The signature tag of `digest` (`sha256-<hex>.sig`).
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// The simple-signing payload for `docker_reference` (`registry/repository`) at `digest`
/// (canonical JSON: the key order cosign's Go structs write).
pub fn simple_signing_payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    let v = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    canonical_json(&v).expect("serializable")
}

/// A signature manifest (`sha256-<hex>.sig`) with its blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureManifest {
    /// The manifest and config.
    pub image: Image,
    /// The payload (the one layer).
    pub payload: Vec<u8>,
    /// The config bytes.
    pub config: Vec<u8>,
    /// The tag it goes under.
    pub tag: String,
}

impl SignatureManifest {
    /// Signs `digest` for `docker_reference` with `key`: the payload, its signature, and the
    /// manifest in cosign's layout.
    pub fn sign(key: &SigningKey, docker_reference: &str, digest: &Digest) -> SignatureManifest {
        let payload = simple_signing_payload(docker_reference, digest);
        let signature = B64.encode(key.sign(&payload));
        let payload_digest = Digest::of(&payload);
        // cosign's config: an image config over the payload "layer", times at Go's zero.
        let config = canonical_json(&serde_json::json!({
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [payload_digest.to_string()]},
        }))
        .expect("serializable");
        let mut layer = Descriptor::new(
            SIMPLE_SIGNING_MEDIA_TYPE,
            payload_digest,
            payload.len() as u64,
        );
        layer.annotations = Some(BTreeMap::from([(
            SIGNATURE_ANNOTATION.to_string(),
            signature,
        )]));
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MediaType::from(MediaType::OCI_MANIFEST)),
            artifact_type: None,
            config: Descriptor::new(
                MediaType::OCI_CONFIG,
                Digest::of(&config),
                config.len() as u64,
            ),
            layers: vec![layer],
            subject: None,
            annotations: None,
        };
        let raw = RawManifest::new(
            canonical_json(&m).expect("serializable"),
            Some(MediaType::OCI_MANIFEST),
        );
        let image = Image::new(raw, config.clone()).expect("a valid manifest");
        SignatureManifest {
            image,
            payload,
            config,
            tag: signature_tag(digest),
        }
    }
}

/// Checks a signature manifest: every simple-signing layer whose signature verifies with `key`
/// and whose payload names `digest` counts; at least one must. `payload` returns a layer's bytes
/// (already checked against its digest). Returns the docker-references of the valid signatures.
pub fn verify_signatures(
    manifest: &Manifest,
    key: &VerifyingKey,
    digest: &Digest,
    mut payload: impl FnMut(&Descriptor) -> Result<Vec<u8>, String>,
) -> Result<Vec<String>, CosignError> {
    let mut ok = Vec::new();
    let mut reasons = Vec::new();
    for layer in &manifest.layers {
        if layer.media_type.as_str() != SIMPLE_SIGNING_MEDIA_TYPE {
            continue;
        }
        let Some(sig) = layer.annotation(SIGNATURE_ANNOTATION) else {
            reasons.push(format!(
                "layer {} has no signature annotation",
                layer.digest
            ));
            continue;
        };
        let Ok(sig) = B64.decode(sig.trim()) else {
            reasons.push(format!(
                "layer {}: the signature is not base64",
                layer.digest
            ));
            continue;
        };
        let bytes = match payload(layer) {
            Ok(b) => b,
            Err(e) => {
                reasons.push(format!("layer {}: {e}", layer.digest));
                continue;
            }
        };
        if Digest::of(&bytes) != layer.digest {
            reasons.push(format!(
                "layer {}: the payload does not match its digest",
                layer.digest
            ));
            continue;
        }
        if !key.verify(&bytes, &sig) {
            reasons.push(format!(
                "layer {}: the signature does not verify with the key",
                layer.digest
            ));
            continue;
        }
        let v: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                reasons.push(format!(
                    "layer {}: the payload is not JSON: {e}",
                    layer.digest
                ));
                continue;
            }
        };
        let named = v["critical"]["image"]["docker-manifest-digest"].as_str();
        if named != Some(digest.to_string().as_str()) {
            reasons.push(format!(
                "layer {}: signed {}, not {digest}",
                layer.digest,
                named.unwrap_or("no digest")
            ));
            continue;
        }
        ok.push(
            v["critical"]["identity"]["docker-reference"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    if ok.is_empty() {
        return Err(CosignError::Invalid(if reasons.is_empty() {
            "the signature manifest has no simple-signing layer".to_string()
        } else {
            format!("no valid signature: {}", reasons.join("; "))
        }));
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32]).unwrap()
    }

    #[test]
    fn signatures_are_deterministic_and_verify() {
        let k = key();
        let d = Digest::of(b"manifest");
        let a = SignatureManifest::sign(&k, "127.0.0.1:5000/app", &d);
        let b = SignatureManifest::sign(&k, "127.0.0.1:5000/app", &d);
        assert_eq!(a.image.digest(), b.image.digest(), "RFC 6979: same bytes");
        assert_eq!(a.tag, format!("sha256-{}.sig", d.hex()));
        let payload = String::from_utf8(a.payload.clone()).unwrap();
        assert_eq!(
            payload,
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let pub_pem = k.verifying_key().to_pem();
        let vk = VerifyingKey::from_pem("cosign.pub", &pub_pem).unwrap();
        let refs = verify_signatures(a.image.parsed_manifest(), &vk, &d, |_| {
            Ok(a.payload.clone())
        })
        .unwrap();
        assert_eq!(refs, ["127.0.0.1:5000/app"]);
        // Another digest, or another key, fails.
        let err = verify_signatures(
            a.image.parsed_manifest(),
            &vk,
            &Digest::of(b"other"),
            |_| Ok(a.payload.clone()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not sha256:"), "{err}");
        let other = SigningKey::from_bytes(&[9u8; 32]).unwrap().verifying_key();
        assert!(
            verify_signatures(a.image.parsed_manifest(), &other, &d, |_| Ok(a
                .payload
                .clone()))
            .is_err()
        );
    }

    #[test]
    fn encrypted_and_plain_keys_are_read() {
        let k = key();
        let cheap = ScryptParams {
            n: 1024,
            r: 8,
            p: 1,
        };
        let pem = encrypt_key(&k.to_pkcs8_der(), b"secret", [1u8; 32], [2u8; 24], cheap).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let read = SigningKey::from_pem("cosign.key", &pem, Some(b"secret")).unwrap();
        assert_eq!(read.verifying_key(), k.verifying_key());
        let err = SigningKey::from_pem("cosign.key", &pem, Some(b"wrong")).unwrap_err();
        assert!(err.to_string().contains("COSIGN_PASSWORD"), "{err}");
        let err = SigningKey::from_pem("cosign.key", &pem, None).unwrap_err();
        assert!(matches!(err, CosignError::Password { .. }));
        // cosign 1's label.
        let v1 = pem.replace("SIGSTORE", "COSIGN");
        assert!(SigningKey::from_pem("k", &v1, Some(b"secret")).is_ok());
        // Plain PKCS#8.
        let der = k.to_pkcs8_der();
        let plain = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            B64.encode(der)
        );
        let read = SigningKey::from_pem("key.pem", &plain, None).unwrap();
        assert_eq!(read.verifying_key(), k.verifying_key());
        let err = SigningKey::from_pem("x.pem", "hello", None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x.pem: no PEM private key block"),
            "{err}"
        );
    }
}
