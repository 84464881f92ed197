//! Server reflection, v1 and v1alpha (older grpcurl builds ask only the
//! latter), for a server's own descriptors or for descriptors that change
//! while it runs: the gateway's grow as it learns services from their
//! upstreams' reflection, and grpcurl pointed at the gateway lists and
//! describes those too.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;
use tower::ServiceExt;
use tower::util::{BoxCloneSyncService, Oneshot};

const V1_NAME: &str = tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME;
const V1ALPHA_NAME: &str = tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME;

/// The services every server adds to the ones it is given.
pub(crate) const PLATFORM_SERVICES: [&str; 3] = [tonic_health::pb::health_server::SERVICE_NAME, V1_NAME, V1ALPHA_NAME];

/// Their descriptors: for reflection, and the methods the metrics name.
pub(crate) const PLATFORM_DESCRIPTOR_SETS: [&[u8]; 3] = [
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
];

type ReflectionService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// Both versions of reflection over one set of descriptors; cheap to clone.
#[derive(Clone)]
pub struct Reflection {
    v1: ReflectionService,
    v1alpha: ReflectionService,
}

impl Reflection {
    /// Reflection of the platform's own services (health, reflection) and
    /// of the encoded `FileDescriptorSet`s in `sets`, listing `services`
    /// beside the platform's: exactly the services a client may call here
    /// (a descriptor set may describe other components' services too).
    pub fn build<'a>(
        sets: impl IntoIterator<Item = &'a [u8]> + Clone,
        services: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<Self, tonic_reflection::server::Error> {
        let builder = || {
            let builder = tonic_reflection::server::Builder::configure().include_reflection_service(false);
            let builder = PLATFORM_DESCRIPTOR_SETS
                .into_iter()
                .chain(sets.clone())
                .fold(builder, |builder, set| builder.register_encoded_file_descriptor_set(set));
            PLATFORM_SERVICES
                .into_iter()
                .chain(services.clone())
                .fold(builder, |builder, name| builder.with_service_name(name))
        };
        Ok(Self {
            v1: BoxCloneSyncService::new(builder().build_v1()?),
            v1alpha: BoxCloneSyncService::new(builder().build_v1alpha()?),
        })
    }
}

/// Where a server finds the reflection to answer a stream with: asked once
/// per stream, so a stream answers from one set of descriptors throughout.
pub type ReflectionSource = Arc<dyn Fn() -> Reflection + Send + Sync>;

/// A version of the reflection protocol: its service name, and its half of
/// a [`Reflection`].
pub(crate) trait Version: Clone + Send + Sync + 'static {
    const NAME: &'static str;
    fn of(reflection: Reflection) -> ReflectionService;
}

#[derive(Clone)]
pub(crate) struct V1;

impl Version for V1 {
    const NAME: &'static str = V1_NAME;
    fn of(reflection: Reflection) -> ReflectionService {
        reflection.v1
    }
}

#[derive(Clone)]
pub(crate) struct V1Alpha;

impl Version for V1Alpha {
    const NAME: &'static str = V1ALPHA_NAME;
    fn of(reflection: Reflection) -> ReflectionService {
        reflection.v1alpha
    }
}

/// One version of reflection, answered from what `source` gives now.
#[derive(Clone)]
pub(crate) struct Current<V> {
    source: ReflectionSource,
    version: PhantomData<V>,
}

impl<V: Version> Current<V> {
    pub(crate) fn new(source: ReflectionSource) -> Self {
        Self { source, version: PhantomData }
    }
}

impl<V: Version> NamedService for Current<V> {
    const NAME: &'static str = V::NAME;
}

impl<V: Version> tower::Service<http::Request<Body>> for Current<V> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Oneshot<ReflectionService, http::Request<Body>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        V::of((self.source)()).oneshot(request)
    }
}
