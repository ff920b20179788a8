//! Deterministic layers: reproducible tar streams, pinned compression, Docker-exact .dockerignore matching and the build-context walk.
