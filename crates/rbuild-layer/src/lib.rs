//! Deterministic layers: reproducible tar streams, pinned compression, Docker-exact
//! `.dockerignore` matching and the build-context walk.
//!
//! - [`LayerWriter`] writes a layer in one pass: a deterministic tar stream (owner 0:0 unless an `append_*_owned` call names another, empty
//!   user/group names, one mtime from [`LayerOptions`], PAX for long names), compressed with a
//!   pinned backend ([`Compression`]; choice and measurements in [`compress`]), hashed as it goes into a [`LayerInfo`] (diff_id, digest,
//!   sizes). Memory does not grow with file or layer size.
//! - [`IgnoreFile`] reads `.containerignore`/`.dockerignore` and decides what is excluded exactly
//!   as `docker build` (BuildKit) does; the rules, with examples, are in the [`dockerignore`]
//!   module docs.
//! - [`walk_context`]/[`load_context`] walk a build context as BuildKit's sender does, and
//!   [`write_context_layer`] turns the result into the app layer under `/app`.
//!
//! # Determinism
//!
//! The same entries give the same bytes on every machine: the writer never reads the clock, the
//! owner, the umask or file timestamps; modes are what the caller passes ([`normalize_mode`] for
//! context files: `0755` if any executable bit is set, else `0644`; directories `0755`); gzip is
//! produced by zlib-rs `=0.6.8` at level 6 behind a fixed gzip header, zstd by libzstd 1.5.7 at
//! level 3, and both see their input in fixed 64 KiB chunks whatever the read sizes (see
//! [`GzipEncoder`]). The mtime is `SOURCE_DATE_EPOCH` when set, else
//! [`DEFAULT_SOURCE_DATE_EPOCH`] (1980-01-01T00:00:00Z).
//!
//! # Paths in layers
//!
//! Paths given to [`LayerWriter`] are relative and `/`-separated: no leading `/` or `./`, no
//! empty, `.` or `..` component, no NUL. Directories are written as `path/`. Names longer than
//! ustar allows, and non-ASCII names, are carried by PAX `path`/`linkpath` records.
//!
//! ```
//! use rbuild_layer::{load_context, write_context_layer, LayerOptions};
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("main.py"), "print('hi')\n")?;
//! let ctx = load_context(dir.path())?;
//! let (blob, info) = write_context_layer(&ctx, "app", &LayerOptions::from_env()?, Vec::new())?;
//! println!("{} {} {}", info.media_type(), info.digest, info.diff_id);
//! # assert_eq!(info.size, blob.len() as u64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod compress;
mod context;
mod defaults;
pub mod dockerignore;
mod error;
mod tar;
mod writer;

pub use compress::{CHUNK, Compression, GZIP_HEADER, GZIP_LEVEL, GzipEncoder, ZSTD_LEVEL};
pub use context::{
    CLUTTER_NAMES, Context, ContextEntry, EntryKind, WalkWarning, load_context, walk_context,
    write_context_entries, write_context_layer,
};
pub use defaults::{
    DEFAULT_IGNORES, gitignore_to_dockerignore, load_context_with_defaults, looks_secret,
};
pub use dockerignore::{IGNORE_FILE_NAMES, IgnoreFile, MatchInfo, Pattern};
pub use error::{Error, Result};
pub use writer::{
    DEFAULT_DIR_MODE, DEFAULT_SOURCE_DATE_EPOCH, LayerInfo, LayerOptions, LayerWriter,
    normalize_mode, parse_source_date_epoch, source_date_epoch_from_env,
};
