//! Cross-role integration tests (one binary; see STYLE).

mod common;
mod bad_input;
mod full_path;
mod recovery;
mod smoke;
mod varchar_partitions;
