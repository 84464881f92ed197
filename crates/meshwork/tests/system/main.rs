//! System tests: the whole platform in process (`meshwork up`'s code, on
//! port 0, embedded backends; and, for the security suites, the components
//! started separately on their production backends), driven through its
//! public surfaces.

#[macro_use]
mod harness;

mod access;
mod fuzz;
mod key_rotation;
mod metrics;
mod pipeline;
mod security;
mod template;
