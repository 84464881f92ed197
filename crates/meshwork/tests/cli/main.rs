//! The `meshwork` binary as an operator runs it: help, configuration
//! failures, serving, and a clean exit on SIGTERM.

mod breaker;
mod config;
mod harness;
mod orders;
mod products;
mod serving;
mod users;
