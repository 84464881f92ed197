//! The gateway in front of a service it was not compiled with: a test-only
//! proto, loaded from a descriptor set file, answered by an upstream that
//! echoes each request back. One table-driven test per rule family.

mod connect;
mod echo;
#[cfg(feature = "etcd")]
mod etcd;
mod harness;
mod healthz;
mod learned;
mod openapi;
mod passthrough;
mod resilience;
mod rules;
