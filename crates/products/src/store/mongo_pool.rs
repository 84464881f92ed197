//! The MongoDB driver's connection pool in `/metrics`, read from its
//! connection monitoring events (CMAP), in the families the SQL pools use
//! (`platform::database::StorePool`), labelled `pool="products"`.

use mongodb::event::EventHandler;
use mongodb::event::cmap::CmapEvent;
use mongodb::options::ClientOptions;

/// The driver's own default for `maxPoolSize`.
const DRIVER_MAX_POOL_SIZE: u32 = 10;

/// Has the client built from `options` report its pool.
pub(super) fn report(options: &mut ClientOptions) {
    platform::database::describe_pool_metrics();
    let pool = || ("pool", "products");
    metrics::gauge!("db_client_connections_max", &[pool()]).set(options.max_pool_size.unwrap_or(DRIVER_MAX_POOL_SIZE));
    let used = metrics::gauge!("db_client_connections", &[pool(), ("state", "used")]);
    let idle = metrics::gauge!("db_client_connections", &[pool(), ("state", "idle")]);
    let pending = metrics::gauge!("db_client_connection_pending_requests", &[pool()]);
    let wait_time = metrics::histogram!("db_client_connection_wait_time_seconds", &[pool()]);
    // Steps, not totals: two clients in one process (tests) add up.
    options.cmap_event_handler = Some(EventHandler::callback(move |event: CmapEvent| match event {
        CmapEvent::ConnectionCreated(_) | CmapEvent::ConnectionCheckedIn(_) => {
            idle.increment(1.0);
            if matches!(event, CmapEvent::ConnectionCheckedIn(_)) {
                used.decrement(1.0);
            }
        }
        CmapEvent::ConnectionClosed(_) => idle.decrement(1.0),
        CmapEvent::ConnectionCheckoutStarted(_) => pending.increment(1.0),
        CmapEvent::ConnectionCheckoutFailed(failed) => {
            pending.decrement(1.0);
            wait_time.record(failed.duration);
        }
        CmapEvent::ConnectionCheckedOut(taken) => {
            pending.decrement(1.0);
            wait_time.record(taken.duration);
            idle.decrement(1.0);
            used.increment(1.0);
        }
        _ => {}
    }));
}
