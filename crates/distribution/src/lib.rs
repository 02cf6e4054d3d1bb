//! The OCI distribution protocol (registry API v2, OCI distribution spec 1.1), and berth's
//! registry server, `berth registry serve`.
//!
//! [`protocol`] holds what both sides of the wire share: digests, repository names, manifest
//! media types and the rules for reading manifests, the error codes and their JSON body, the
//! auth challenge and token shapes, pagination links and the v1 search document. [`server`]
//! is the registry: a thin HTTP layer over a storage module that owns the on-disk layout. A
//! registry client lives beside `server` on the same [`protocol`] types.
//!
//! The image documents themselves (descriptors, manifests, indexes, configs) and the reference
//! grammar are `berth-image`'s: one model of an image for the store, archives and registries.
//!
//! # Example
//!
//! ```
//! use berth_distribution::protocol::auth::Scope;
//! use berth_distribution::protocol::{Digest, RepositoryName};
//!
//! let name = RepositoryName::parse("library/busybox")?;
//! assert!(RepositoryName::parse("../etc").is_err());
//! let digest = Digest::of(b"hello");
//! assert_eq!(Digest::parse(digest.as_str())?, digest);
//! let scope = Scope::repository(name.as_str(), &["pull", "push"]);
//! assert_eq!(scope.to_string(), "repository:library/busybox:pull,push");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod protocol;
pub mod server;
