//! Settings and credentials for suites that serve components directly.

use platform::access::ServiceTokens;
use platform::{Env, Settings};

/// The service secret every suite's components share.
pub const SERVICE_SECRET: &str = "meshwork test service secret, 32+ bytes";

/// Settings for a component under test: the shared service secret, and
/// `MESHWORK_AUTH=optional`, so a suite testing a service's own logic calls
/// it without tokens (as a trusted caller), as `meshwork up` allows. Suites
/// about access use [`settings_with`] and `MESHWORK_AUTH=required`.
pub fn settings() -> Settings {
    settings_with(&[("MESHWORK_AUTH", "optional")])
}

/// Settings with the shared service secret and `pairs`.
pub fn settings_with(pairs: &[(&str, &str)]) -> Settings {
    let mut all = vec![("MESHWORK_SERVICE_SECRET", SERVICE_SECRET)];
    all.extend_from_slice(pairs);
    Settings::load(&Env::from_pairs(all), &[]).expect("test settings are valid")
}

/// `message` as a request from a service (`name`), for calling internal methods.
pub fn as_service<T>(name: &str, message: T) -> tonic::Request<T> {
    as_service_with(SERVICE_SECRET, name, message)
}

/// The same, for components sharing `secret` (`meshwork up`'s own).
pub fn as_service_with<T>(secret: &str, name: &str, message: T) -> tonic::Request<T> {
    let tokens = ServiceTokens::new(name, secret.as_bytes()).expect("the secret is long enough");
    let mut request = tonic::Request::new(message);
    tokens.attach(&mut request);
    request
}
