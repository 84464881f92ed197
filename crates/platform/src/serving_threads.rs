//! The threads that serve connections, for a server that asks for them
//! (the gateway: one per core), each running a single-threaded Tokio
//! runtime of its own. A connection is
//! handed to one of them when it is accepted and stays there, with every
//! task its requests spawn and the upstream connections they call through
//! (see `resilience::affinity`). A request is then served start to end on
//! one thread, so no thread has to wake another to pass it on.
//!
//! Why: on a 2-core machine shared with the load and the backend, a
//! work-stealing runtime's threads spend much of their time waking each
//! other; the gateway's REST GET cost 73 µs of CPU with two worker threads
//! and 47 µs with one (`scripts/bench-peers`). With a serving thread per
//! core, alternating runs against the shared runtime in one session gave
//! 60-61 µs instead of 67-73 per GET, 64-68 instead of 73-79 per POST and
//! 55-62 instead of 63-72 per gRPC call, at 8-20% more requests per
//! second; the platform server reached 0.96-1.15× a bare tonic server's
//! req/s in three runs, against 0.75× on the shared runtime in the same
//! run as the last. The price is nginx's: a thread's connections are
//! not stolen by an idle one, which many connections spread round-robin
//! make up for.
//!
//! On a 2-core machine shared with the load and the backend, one serving
//! thread is cheaper per request than two (REST GET: 21 against 25 µs of
//! CPU, alternating runs of one binary, `MESHWORK_SERVING_THREADS=1`) at
//! 8% fewer req/s; the floor proxy, which shares nothing between its
//! threads, showed the same (12% less CPU, 10% fewer req/s), so that is
//! two threads competing for two busy cores, not state they share. A
//! gateway with cores of its own wants one per core, which stays the
//! default; under a CPU limit, `available_parallelism` counts the quota.
//!
//! Where they cost more than they save: a process whose handlers wait on
//! work the shared runtime drives (database drivers, the event relay), and
//! `meshwork up`, where every component shares one process and each hop
//! between them would change threads. There serving threads for the
//! gateway alone took `scripts/bench orders` from 1 352-1 374 orders/s to
//! 912-967, so the services and `up` serve on the shared runtime unless
//! `MESHWORK_SERVING_THREADS` says otherwise.
//!
//! The threads are shared by every server of the process that uses them
//! and live as long as it does; the first server to start them sets how
//! many there are.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;

pub(crate) struct ServingThreads {
    runtimes: Vec<Handle>,
    next: AtomicUsize,
}

static THREADS: OnceLock<ServingThreads> = OnceLock::new();

impl ServingThreads {
    /// The process's serving threads, started on first use with `count`.
    pub(crate) fn get_or_start(count: usize) -> &'static Self {
        THREADS.get_or_init(|| {
            let runtimes = (0..count.max(1)).map(start_thread).collect();
            Self { runtimes, next: AtomicUsize::new(0) }
        })
    }

    /// The runtime the next connection goes to (round-robin: connections
    /// are alike, and a counter costs nothing).
    pub(crate) fn next(&self) -> &Handle {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.runtimes.len();
        &self.runtimes[index]
    }
}

fn start_thread(index: usize) -> Handle {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("meshwork-serve-{index}"))
        .build()
        .expect("a serving thread's runtime starts");
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("meshwork-serve-{index}"))
        .spawn(move || {
            resilience::affinity::connect_per_thread();
            // Drives the connections spawned onto it until the process ends.
            runtime.block_on(std::future::pending::<()>());
        })
        .expect("a serving thread starts");
    handle
}

/// One thread per core the process may use.
pub fn per_core() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
