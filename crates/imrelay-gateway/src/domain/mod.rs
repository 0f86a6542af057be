//! Types and traits shared by the store, the dispatcher and the API: the leaf
//! of the gateway's module graph (it depends on nothing else in the crate).

pub mod attempt;
pub mod cluster;
pub mod config;
pub mod ids;
pub mod labels;
pub mod matcher;
pub mod mentions;
pub mod window;
