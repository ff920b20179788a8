//! The registry client: references, authentication, streaming pull and push, cross-repository
//! mounts and retries.
//!
//! # Semantics
//!
//! - **References** are parsed as Docker parses them ([`Reference`]): `python:3.12-slim` is
//!   `docker.io/library/python:3.12-slim`, served by `registry-1.docker.io`.
//! - **Transport**: one HTTP client per registry host, each with its own TLS trust ([`tls`]): the
//!   system store (`SSL_CERT_FILE` honoured), `--ca-file`s, and `certs.d/HOST/` directories. Plain
//!   HTTP is used only for loopback hosts and `--insecure-registry` hosts that do not speak TLS
//!   (HTTPS is tried first, as Docker does); an insecure host's certificate is not verified.
//! - **Pull**: manifests are fetched with every manifest and index type in `Accept`, kept as exact
//!   bytes ([`RawManifest`](rbuild_oci::RawManifest)) and verified against the digest asked for and
//!   `Docker-Content-Digest`. Blobs stream into the content store, verified as they arrive, several
//!   at a time; redirects are followed by rbuild itself and `Authorization` never leaves the
//!   registry's origin.
//! - **Push**: `HEAD` first and skip what exists (blobs the destination's previous manifest
//!   names are not checked); mount across repositories of one registry (falling back to an
//!   upload in the session the registry opens); a small blob goes up in one request
//!   (`POST ...?digest=` with the body) where the registry accepts that, else (and for larger
//!   blobs) `POST` + one streamed `PUT` (chunked `PATCH`es when refused). A blob that is most
//!   likely new (not in the previous manifest, not mountable) has its upload started together
//!   with its `HEAD`, and the session cancelled if the `HEAD` finds it. Child manifests by
//!   digest, then the index, then the tag, with the attachments (SBOM, provenance) alongside;
//!   then the referrers tags, read while the blobs went up (or ahead, for the previous image:
//!   [`Client::prefetch_referrers`]). A tag this client read moments ago as naming the same
//!   manifest is not pushed again ([`TAG_MEMORY`]), nor an attachment its referrers tag lists.
//! - **Retries** ([`RetryPolicy`]): connection errors, timeouts, resets, 408/429/5xx and content
//!   that does not match its digest restart the whole operation with backoff and jitter, honouring
//!   `Retry-After`; other errors fail at once with the registry's `errors[]` message.
//! - **Authentication** ([`auth`]): Basic and Bearer challenges, one token per operation carrying
//!   every scope it needs, cached per scope set until it expires; credentials from a
//!   [`CredentialProvider`]: explicit ones ([`StaticCredentials`]), then podman's `auth.json`, then
//!   Docker's `config.json` and its credential helpers ([`credentials`]). No password, token or
//!   `Authorization` value is ever logged or put in an error.
//! - The library never prints; progress goes to a [`Progress`] the caller implements.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rbuild_registry::Error> {
//! use rbuild_registry::{Client, ClientOptions, Reference};
//! let client = Client::new(ClientOptions::default())?;
//! let store = rbuild_oci::Store::open_default()?;
//! let src: Reference = "127.0.0.1:5000/library/python:3.11-slim".parse()?;
//! let dst: Reference = "127.0.0.1:5000/mirror/python:3.11-slim".parse()?;
//! let artifact = client.pull(&src, None, &store).await?;
//! let blobs = rbuild_registry::RegistryBlobs::of_repository(client.clone(), store.clone(), src);
//! let sink = rbuild_registry::RegistrySink::new(client, store, vec![dst]);
//! let done = sink.push(&artifact, &blobs).await?;
//! println!("{} blobs mounted", done.mounted);
//! # Ok(()) }
//! ```

pub mod auth;
mod client;
pub mod credentials;
mod error;
mod host_memory;
mod ops;
mod progress;
mod push;
mod reference;
mod repository;
/// TLS trust setup, shared with the package-index client (it lives in `rbuild-http`).
pub use rbuild_http::tls;

pub use auth::{Anonymous, Credential, CredentialProvider, Secret};
pub use client::{
    Client, ClientOptions, PIPELINE_MIN_ROUND_TRIP, TAG_MEMORY, UploadMode, is_loopback,
};
pub use credentials::{ChainCredentials, DefaultCredentials, StaticCredentials, parse_user_pass};
pub use error::{Error, Result};
pub use ops::ResolvedImage;
pub use progress::{NOTICE_AFTER, NoProgress, Progress, ProgressEvent, ReportEvents};
pub use push::{RegistryBlobs, RegistrySink, sink_error};
pub use rbuild_http::{RetryPolicy, Timeouts, parse_retry_after};
pub use reference::{DOCKER_HUB, DOCKER_HUB_API, DOCKER_HUB_LEGACY, Reference, ReferenceError};
pub use repository::{
    Access, MAX_MANIFEST_SIZE, MountOutcome, Repository, SINGLE_POST_MAX, UploadSession,
    UploadStart,
};
