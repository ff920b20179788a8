//! Building the registry client from the global flags; its progress goes to the one renderer
//! ([`crate::bars`]).

use std::sync::Arc;

use anyhow::Context;
use rbuild_oci::Store;
use rbuild_registry::{
    ChainCredentials, Client, ClientOptions, Credential, DefaultCredentials, Reference,
    ReportEvents, StaticCredentials, parse_user_pass,
};

use crate::cli::GlobalArgs;

/// Parses a `USER:PASSWORD` flag without ever echoing its value.
pub fn user_pass(flag: &str, value: &str) -> anyhow::Result<Credential> {
    parse_user_pass(value)
        .with_context(|| format!("{flag} must be USER:PASSWORD (the value is not shown)"))
}

/// Explicit credentials: `--creds` (then `RBUILD_REGISTRY_USERNAME`/`RBUILD_REGISTRY_PASSWORD`)
/// for `target`, plus per-registry ones (`--src-creds`, `--dest-creds`: reference, credential,
/// flag; later entries win). Each remembers the flag or variables it came from, for the error
/// when a registry rejects it.
pub fn explicit_credentials(
    global: &GlobalArgs,
    target: &Reference,
    extra: &[(&Reference, Credential, &str)],
) -> anyhow::Result<StaticCredentials> {
    let mut creds = StaticCredentials::new();
    let env_user = std::env::var("RBUILD_REGISTRY_USERNAME")
        .ok()
        .filter(|u| !u.is_empty());
    let env_pass = std::env::var("RBUILD_REGISTRY_PASSWORD").ok();
    match (&global.creds, env_user, env_pass) {
        (Some(c), _, _) => {
            creds.insert_from(target.registry(), user_pass("--creds", c)?, "--creds")
        }
        (None, Some(u), Some(p)) => creds.insert_from(
            target.registry(),
            Credential::basic(u, p),
            "RBUILD_REGISTRY_USERNAME and RBUILD_REGISTRY_PASSWORD",
        ),
        (None, Some(_), None) => {
            anyhow::bail!("RBUILD_REGISTRY_USERNAME is set but RBUILD_REGISTRY_PASSWORD is not")
        }
        _ => {}
    }
    for (r, c, flag) in extra {
        creds.insert_from(r.registry(), c.clone(), flag);
    }
    Ok(creds)
}

/// Client options from the global flags, with credentials from podman's and Docker's files only.
/// Commands that write to a registry should use [`client_options_for`] with
/// [`explicit_credentials`] for their target, so `--creds` and `RBUILD_REGISTRY_*` apply.
pub fn client_options(global: &GlobalArgs) -> ClientOptions {
    client_options_for(global, StaticCredentials::new())
}

/// Client options from the global flags, with `explicit` credentials consulted before podman's
/// and Docker's files.
pub fn client_options_for(global: &GlobalArgs, explicit: StaticCredentials) -> ClientOptions {
    let mut opts = ClientOptions {
        insecure_registries: global.insecure_registry.clone(),
        certs_dirs: vec![
            "/etc/containers/certs.d".into(),
            "/etc/docker/certs.d".into(),
        ],
        credentials: Arc::new(ChainCredentials(vec![
            Box::new(explicit),
            Box::new(DefaultCredentials::from_env().with_helper_timeout(global.timeouts().idle)),
        ])),
        timeouts: global.timeouts(),
        ..Default::default()
    };
    opts.tls.extra_ca_files = global.ca_file.clone();
    opts
}

/// A registry client configured from the global flags.
pub fn client(global: &GlobalArgs, opts: ClientOptions) -> anyhow::Result<Client> {
    let _ = global;
    Ok(Client::new(opts)?.with_progress(Arc::new(ReportEvents(crate::bars::renderer()))))
}

/// The content store (`$RBUILD_CACHE_DIR`, default `$XDG_CACHE_HOME/rbuild`).
pub fn store() -> anyhow::Result<Store> {
    let root = Store::default_root();
    Store::open(&root).with_context(|| format!("opening the content store {}", root.display()))
}
