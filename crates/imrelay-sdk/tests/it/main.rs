//! The crate's integration tests, one binary (it links once): each module
//! is what was a test file; the support modules are shared.

mod fuzz_corpus;
mod http_hardening;
mod pacing;
mod support;
