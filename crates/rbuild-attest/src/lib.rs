//! Attestations of built images: what is attached to an image, and how it is found and checked.
//!
//! - [`referrers`]: OCI 1.1 artifact manifests (`artifactType`, `subject`, an empty config, one
//!   blob) and the referrers tag schema (`sha256-<hex>` naming an index of referrer descriptors),
//!   for registries without the referrers API (distribution 2.8);
//! - [`provenance`]: an in-toto v1 statement with a SLSA v1 provenance predicate: the builder,
//!   the resolved inputs (base digest, lockfile digest, context digest) and the settings that
//!   shaped the image, never a secret, a host path or the clock;
//! - [`cosign`]: cosign's key-based signatures: keys as `cosign generate-key-pair` writes them
//!   (encrypted with scrypt + NaCl secretbox, password from `COSIGN_PASSWORD`) or plain PKCS#8 /
//!   SEC1 PEM; the simple-signing payload; the `sha256-<hex>.sig` signature manifest with its
//!   `dev.cosignproject.cosign/signature` annotation; and verification with a public key.
//!   ECDSA signatures use RFC 6979 nonces, so the same image and key give the same signature
//!   manifest. Keyless (Fulcio/Rekor) signing is out of scope.

pub mod cosign;
pub mod provenance;
pub mod referrers;

pub use cosign::{
    CosignError, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, ScryptParams, SignatureManifest,
    SigningKey, VerifyingKey, encrypt_key, signature_tag, simple_signing_payload,
    verify_signatures,
};
pub use provenance::{
    PROVENANCE_PREDICATE_TYPE, Provenance, ResolvedInput, STATEMENT_MEDIA_TYPE, STATEMENT_TYPE,
};
pub use referrers::{
    ArtifactManifest, REFERRERS_TAG_PREFIX, merge_referrers, referrer_descriptor, referrers_tag,
};
