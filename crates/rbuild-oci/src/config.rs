//! The image configuration (OCI image-spec `config.json`, Docker's container image v1).
//!
//! Fields rbuild does not know (Docker's `Healthcheck`, `OnBuild`, `ArgsEscaped`, `container_config`, ...)
//! are kept in `extra` maps, so a base config read and written back keeps them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Digest;

/// An image configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// OS version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runtime defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// Layer diff_ids.
    pub rootfs: RootFs,
    /// One entry per layer (plus empty-layer entries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields rbuild does not model, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Runtime defaults (`config` in the image config).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// `uid[:gid]` or a name.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports (`8000/tcp` → `{}`).
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `KEY=VALUE` entries.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes.
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// Working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Fields rbuild does not model (`Healthcheck`, `OnBuild`, `ArgsEscaped`, `Shell`, ...), kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The layers of the root filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// sha256 of each uncompressed layer, base first.
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// A history entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when this entry made no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

impl ImageConfig {
    /// Parses config bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Canonical bytes (see [`crate::canonical_json`]).
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::canonical_json(self)
    }

    /// The runtime defaults, created empty when missing.
    pub fn config_mut(&mut self) -> &mut ContainerConfig {
        self.config.get_or_insert_with(ContainerConfig::default)
    }

    /// The value of an environment variable in `config.Env`.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.config.as_ref()?.env.as_ref()?.iter().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == key).then_some(v)
        })
    }
}

impl ContainerConfig {
    /// Sets `KEY=VALUE` in `Env`, replacing an existing entry for `KEY` in place (order kept).
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CONFIG: &str = r#"{
      "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
      "config": {"Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"], "Cmd": ["python3"],
                 "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000},
                 "OnBuild": ["RUN echo hi"], "ArgsEscaped": true},
      "container_config": {"Hostname": "x"}, "docker_version": "20.10",
      "rootfs": {"type": "layers", "diff_ids": ["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
      "history": [{"created_by": "/bin/sh -c #(nop) ADD file:x in /"}]
    }"#;

    #[test]
    fn unknown_fields_survive_a_round_trip_and_output_is_stable() {
        let cfg = ImageConfig::from_slice(DOCKER_CONFIG.as_bytes()).unwrap();
        let bytes = cfg.to_canonical_json().unwrap();
        let again = ImageConfig::from_slice(&bytes).unwrap();
        assert_eq!(again, cfg);
        assert_eq!(
            again.to_canonical_json().unwrap(),
            bytes,
            "the same config serializes to the same bytes"
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["config"]["Healthcheck"]["Test"][1], "true");
        assert_eq!(v["config"]["OnBuild"][0], "RUN echo hi");
        assert_eq!(v["config"]["ArgsEscaped"], true);
        assert_eq!(v["container_config"]["Hostname"], "x");
        assert_eq!(v["docker_version"], "20.10");
    }

    #[test]
    fn set_env_replaces_in_place() {
        let mut cfg = ImageConfig::from_slice(DOCKER_CONFIG.as_bytes()).unwrap();
        cfg.config_mut().set_env("LANG", "C");
        cfg.config_mut().set_env("PYTHONUNBUFFERED", "1");
        assert_eq!(
            cfg.config.as_ref().unwrap().env.as_ref().unwrap(),
            &vec![
                "PATH=/usr/local/bin:/usr/bin".to_string(),
                "LANG=C".into(),
                "PYTHONUNBUFFERED=1".into()
            ]
        );
        assert_eq!(cfg.env("PATH"), Some("/usr/local/bin:/usr/bin"));
    }
}
