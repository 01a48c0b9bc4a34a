//! A small Milvus-API client over the proxy's Rust interface, plus data generators and
//! brute-force references, for the cross-role tests in `tests/`.

pub mod client;
pub mod data;
