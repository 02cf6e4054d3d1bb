//! The API served on a real unix socket, with real services in a temp dir, driven by a plain
//! hyper client the way the docker CLI drives it. Nothing here needs root: no container is
//! started (the lead's end-to-end suite does that).
mod api;
mod archive;
mod harness;
mod streams;
