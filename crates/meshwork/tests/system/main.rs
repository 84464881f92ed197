//! System tests: the whole platform in process (`meshwork up`'s code, on
//! port 0, embedded backends), driven through its public surfaces.

mod access;
mod fuzz;
mod harness;
mod key_rotation;
mod security;
mod template;
