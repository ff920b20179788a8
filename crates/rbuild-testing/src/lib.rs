//! Test harness for rbuild: the real registry, the base-image fixture and a fault-injecting
//! proxy. Dev-only; every integration test in the workspace uses it.
//!
//! # The registry
//!
//! [`Registry::start`] runs Debian's `docker-registry serve` (CNCF distribution 2.8) on a free
//! `127.0.0.1` port with its own config, storage directory and log file, waits until `GET /v2/`
//! answers, and kills and reaps the process when the value is dropped. Modes ([`Mode`]): plain
//! HTTP, htpasswd Basic auth, TLS with a generated CA, TLS + htpasswd, and Docker-style token auth
//! with an in-process [`TokenServer`].
//!
//! ```no_run
//! use rbuild_testing::{BaseFixture, Mode, Registry};
//!
//! let registry = Registry::start(Mode::Plain)?;
//! let fixture = BaseFixture::ensure()?; // built once per machine, then cached
//! fixture.push_to(&registry, "library/python:3.11-slim")?;
//! assert_eq!(registry.blob_uploads(), 3); // two layers + config, counted in the access log
//! let image = format!("{}/library/python:3.11-slim", registry.host()); // 127.0.0.1:PORT/...
//! # let _ = image;
//! // ... run rbuild against `image`, then count again ...
//! # Ok::<(), rbuild_testing::Error>(())
//! ```
//!
//! Counting requests: the registry writes one access-log line per request
//! (`"PUT /v2/NAME/blobs/uploads/UUID?digest=... HTTP/1.1" 201`); [`Registry::access_log`] parses
//! them, [`Registry::blob_uploads`] counts finished uploads and [`Registry::blob_mounts`]
//! successful cross-repository mounts (`POST .../blobs/uploads/?mount=...&from=...` answered 201).
//!
//! # The base fixture
//!
//! [`BaseFixture`] is `python:3.11-slim` rebuilt from Debian packages with independent tools
//! (mmdebstrap, python3-installer, umoci, jq) by `tests/fixtures/base/build-base.sh`, cached under
//! `$RBUILD_FIXTURE_CACHE` (default `~/.cache/rbuild-fixtures`). See [`BaseFixture`] for its
//! contents and `RBUILD_TEST_ARM64=1` for the two-platform variant.
//!
//! # The kinds of base images
//!
//! [`KindFixture::ensure`] builds (once, then cached) one of the [`Kind`]s of Python base image
//! users bring: an S2I/UBI-like venv base owned by `1001:0`, a shell-less base, a trimmed Debian
//! python, Docker Hub's `/usr/local` layout and Debian trixie, with
//! `tests/fixtures/kinds/build-kind.sh`.
//!
//! # The fault proxy
//!
//! [`FaultProxy`] sits between a client and a plain-HTTP registry and injects faults into the
//! requests that match a rule: error statuses, 429 with `Retry-After`, connection resets in the
//! middle of a body, delays, corrupted bytes, and redirects of blob GETs to a second listener that
//! plays a CDN. It records every request with its headers.
//!
//! # The latency relay
//!
//! [`LatencyRelay`] passes every byte on a fixed time later, each way, with connections kept
//! open: a far-away registry, through which pipelined requests and round trips can be counted.
//!
//! # Requirements
//!
//! `docker-registry`, `skopeo`, `openssl`, `htpasswd` (apache2-utils); for the fixture also root,
//! `mmdebstrap`, `umoci`, `jq`, `curl`, `python3-installer` and network access to the Debian
//! mirror and PyPI. `.ci/run` installs all of them.

mod error;
mod fixture;
mod http;
mod kinds;
mod process;
mod proxy;
mod registry;
mod relay;
mod tls;
mod token;
mod updated;

pub use error::{Error, Result};
pub use fixture::{BUILD_SCRIPT, BaseFixture, FIXTURE_TAG, Platform, SLIM_BASE_REPO};
pub use kinds::{KIND_SCRIPT, Kind, KindFixture};
pub use proxy::{Fault, FaultProxy, Listener, SeenRequest, Times};
pub use registry::{AccessLogEntry, Mode, Registry, parse_access_log};
pub use relay::{LatencyRelay, RelayedRequest};
pub use tls::tls_client_config;
pub use token::{TOKEN_ISSUER, TOKEN_SERVICE, TokenRequest, TokenServer};
pub use updated::{UPDATED_SCRIPT, UPDATED_TAG, UpdatedBaseFixture};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn harness_types_can_be_shared_between_threads_and_tasks() {
        send_sync::<crate::Registry>();
        send_sync::<crate::FaultProxy>();
        send_sync::<crate::TokenServer>();
        send_sync::<crate::BaseFixture>();
        send_sync::<crate::Error>();
    }
}
