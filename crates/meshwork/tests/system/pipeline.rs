//! The order pipeline shows itself from the start: before any order, the
//! orders service exports its outbox metrics and the products service its
//! consumer's, each with a value (a dashboard sees 0, not "no data").

use crate::harness::{Deployment, deploy};

const OUTBOX: [&str; 4] = [
    "outbox_unsent_events",
    "outbox_oldest_unsent_age_seconds",
    "outbox_events_published_total",
    "outbox_publish_failures_total",
];
const CONSUMER: [&str; 4] =
    ["events_applied_total", "events_redelivered_total", "events_dead_lettered_total", "events_consumer_lag_seconds"];

/// The value of the sample `name` (with the products consumer's label, if it has labels).
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let labelled = series.strip_prefix(name)?;
        (labelled.is_empty() || labelled.contains("consumer=\"products.order-events\"")).then(|| value.parse().ok())?
    })
}

async fn pipeline_metrics_are_there_before_the_first_order(deployment: Deployment, test: &str) {
    let Some(platform) = deploy(deployment, test, &[]).await else { return };
    for (address, names) in [(platform.orders, OUTBOX), (platform.products, CONSUMER)] {
        let names = names.to_vec();
        testkit::eventually("the pipeline's metrics", std::time::Duration::from_secs(10), || {
            let names = names.clone();
            let platform = &platform;
            async move {
                let page = platform.get(address, "/metrics").await;
                let page = String::from_utf8(page.body).unwrap();
                names.iter().all(|name| sample(&page, name).is_some())
            }
        })
        .await;
    }
}

in_both_deployments!(pipeline_metrics_are_there_before_the_first_order);
