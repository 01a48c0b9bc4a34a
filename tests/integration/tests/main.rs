//! Cross-role integration tests (one binary; see STYLE).

mod common;
mod smoke;
