//! Image archives: `save` writes and `load` reads the tar format `docker save` produces, so
//! archives move between berth and Docker both ways.
//!
//! # The format written (Docker 25's)
//!
//! ```text
//! blobs/sha256/<config hex>     the image config, byte for byte (its digest is the image id)
//! blobs/sha256/<diff id hex>    each layer, an uncompressed tar (its digest is the diff id)
//! blobs/sha256/<manifest hex>   an OCI image manifest per image (config + layers)
//! index.json                    OCI index: one manifest descriptor per tag, named by the
//!                               `io.containerd.image.name` / `org.opencontainers.image.ref.name`
//!                               annotations
//! manifest.json                 docker-archive: [{"Config", "RepoTags", "Layers"}] (paths)
//! oci-layout                    {"imageLayoutVersion": "1.0.0"}
//! repositories                  legacy: {repo: {tag: top layer hex}}
//! ```
//!
//! # What is read ([`ImageStore::load`](crate::ImageStore::load))
//!
//! Any docker-archive (`manifest.json` naming config and layer paths, e.g. Docker 20.10's
//! `<id>/layer.tar` layout, with symlinked duplicate layers) or OCI image layout (`index.json`,
//! nested indexes included), the whole archive plain, gzip or zstd, each layer plain, gzip or
//! zstd. Ingest is transactional: the archive is read once, as a stream; each layer is unpacked
//! into the store's ingest area while it is hashed, everything is checked (manifest against
//! config, diff ids, blob digests and sizes), and only then are the images published (layers
//! renamed into place, blobs committed, the image record written, tags set). An error at any
//! point drops what was staged, so no partial image, orphan blob or snapshot remains, and
//! nothing is ever written outside the data root: archive paths are only names to look up,
//! and layer extraction cannot escape its directory ([`crate::layer`]).

mod error;
mod format;
mod ingest;
mod save;

pub use error::ArchiveError;
pub use ingest::{LoadOptions, LoadProgress, LoadedImage};
pub use save::SaveSet;

#[cfg(test)]
mod tests;
