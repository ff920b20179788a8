//! A [`BuildEnv`] over a package index ([`rbuild_index::IndexClient`]) and the content store.

use rbuild_index::{IndexClient, NoProgress, WheelRequest};
use rbuild_oci::{Digest, Store};
use rbuild_python::requirement::Requirement;
use rbuild_python::wheel_name::WheelFilename;

use crate::env::{BuildEnv, Candidate, FetchedWheel};

/// Build requirements from the configured indexes (and find-links directories), downloaded into
/// the content store and verified by sha256 ([`IndexClient::download_all`]).
///
/// The frontend is synchronous; this environment blocks on `handle` for each request, so call
/// the build from a blocking thread (`tokio::task::spawn_blocking`), never from an async task.
pub struct IndexBuildEnv<'a> {
    client: &'a IndexClient,
    store: &'a Store,
    handle: tokio::runtime::Handle,
}

impl<'a> IndexBuildEnv<'a> {
    /// An environment asking `client`, storing into `store`, running requests on `handle`.
    pub fn new(client: &'a IndexClient, store: &'a Store, handle: tokio::runtime::Handle) -> Self {
        IndexBuildEnv {
            client,
            store,
            handle,
        }
    }
}

impl BuildEnv for IndexBuildEnv<'_> {
    fn wheels_for(&self, req: &Requirement) -> Result<Vec<Candidate>, String> {
        let files = self
            .handle
            .block_on(self.client.list_files(&req.name))
            .map_err(|e| e.to_string())?;
        Ok(files
            .into_iter()
            .filter(|f| f.is_wheel() && !f.yanked)
            .map(|f| Candidate {
                filename: f.filename,
                sha256: f.sha256.map(|d| d.hex()),
                requires_python: f.requires_python,
                location: f.url,
            })
            .collect())
    }

    fn fetch(&self, c: &Candidate) -> Result<FetchedWheel, String> {
        let w = WheelFilename::parse(&c.filename).map_err(|e| e.to_string())?;
        let sha256 = match &c.sha256 {
            Some(h) => Some(Digest::parse(&format!("sha256:{h}")).map_err(|e| e.to_string())?),
            None => None,
        };
        let req = WheelRequest {
            name: w.name.clone(),
            version: w.version_as_written().to_string(),
            filename: c.filename.clone(),
            url: Some(c.location.clone()),
            sha256,
            ..Default::default()
        };
        let mut got = self
            .handle
            .block_on(self.client.download_all(vec![req], self.store, &NoProgress))
            .map_err(|e| e.to_string())?;
        let got = got.pop().ok_or("the download returned nothing")?;
        Ok(FetchedWheel {
            path: got.path,
            sha256: got.sha256.hex(),
        })
    }
}
