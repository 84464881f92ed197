//! Which connection to an endpoint a call goes through. By default every
//! caller of an endpoint shares one HTTP/2 connection. A thread that serves
//! its own connections on a runtime of its own (the platform's serving
//! threads) marks itself with [`connect_per_thread`], and its calls then go
//! through a connection of its own, driven by its own runtime: a call never
//! leaves the thread that serves the request it is made for, and each
//! thread's connection carries only its share of the load.

use std::cell::Cell;

thread_local! {
    static PER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Calls made on this thread from now on use this thread's own connections.
pub fn connect_per_thread() {
    PER_THREAD.set(true);
}

pub(crate) fn is_per_thread() -> bool {
    PER_THREAD.get()
}
