//! Registry client: references, authentication, streaming pull and push, cross-repo mounts and retries.
