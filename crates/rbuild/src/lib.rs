//! The rbuild library: build a container image for a Python application and publish it to a registry, an OCI layout or a docker-archive.
