//! Deterministic layers: reproducible tar streams, pinned compression, Docker-exact .dockerignore
//! matching and the build-context walk.

mod compress;
mod error;
mod tar;
mod writer;

pub use compress::{Compression, GZIP_HEADER, GZIP_LEVEL, GzipEncoder, ZSTD_LEVEL};
pub use error::{Error, Result};
pub use writer::{
    DEFAULT_DIR_MODE, DEFAULT_SOURCE_DATE_EPOCH, LayerInfo, LayerOptions, LayerWriter,
    normalize_mode, parse_source_date_epoch, source_date_epoch_from_env,
};
