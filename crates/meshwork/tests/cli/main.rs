//! The `meshwork` binary as an operator runs it: help, configuration
//! failures, serving, a clean exit on SIGTERM, and no stock lost to SIGKILL.

mod breaker;
mod compose;
mod config;
mod dependencies;
mod harness;
mod holds;
mod logs;
mod orders;
mod products;
mod serving;
mod users;
