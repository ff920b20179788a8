//! The rbuild library: build container images for Python applications without Docker.
//!
//! Pipeline: resolve (base image, target, wheels) → fetch (verified into the content store) → layer
//! (dependency, user and app layers, deterministic) → assemble (config + manifest) → publish
//! (registry, OCI layout, docker-archive).

pub mod assemble;
pub mod base_facts;
pub mod build;
pub mod config;
pub mod image;
pub mod publish;
pub mod recipe;
pub mod time;
pub mod user;
