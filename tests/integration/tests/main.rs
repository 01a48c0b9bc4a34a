//! Cross-role integration tests (one binary; see STYLE).

mod bad_input;
mod common;
mod full_path;
mod indexes;
mod recovery;
mod smoke;
mod traces;
mod varchar_partitions;
