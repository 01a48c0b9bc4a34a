//! Crate-level tests, through the public API: type checking against a schema,
//! evaluation against a naive row-by-row reference over random data, primary-key
//! extraction, templates, limits. Unit tests of each module sit in that module.

mod evaluation;
mod fixtures;
mod limits;
mod primary_keys;
mod reference;
mod templates;
mod typecheck;
