//! What the gateway knows of the services it fronts: their descriptors, and
//! the REST routes, access rules and OpenAPI document built from them. Built
//! at start from the loaded descriptor sets, and built again, whole, each
//! time reflection teaches the gateway a service or a new version of one
//! (see [`crate::learn`]); a request keeps the catalog it started with.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use prost_reflect::DescriptorPool;

use crate::auth::{Access, Authenticator};
use crate::grpc_method::GrpcMethods;
use crate::routes::{RouteError, RouteTable};

/// Why a catalog cannot be built from these descriptors and settings.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the descriptors {service}'s reflection serves do not fit: {reason}")]
    Learned { service: String, reason: String },
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The access settings name what is not there, or open an internal method.
    #[error("{0}")]
    Access(String),
    #[error("the descriptors do not make a reflection service: {0}")]
    Reflection(String),
}

pub struct Catalog {
    pub pool: DescriptorPool,
    pub routes: RouteTable,
    pub access: Access,
    pub openapi: Bytes,
    /// What the gateway's own reflection answers (grpcurl pointed at the
    /// gateway): every fronted service it has descriptors of, learned ones
    /// included.
    pub reflection: platform::reflection::Reflection,
    /// The methods of the fronted services, for calls passed through.
    pub grpc: GrpcMethods,
    /// Services to be learned from reflection that this catalog does not
    /// describe yet: the gateway knows nothing of who may call them.
    pending: HashSet<String>,
}

impl Catalog {
    /// The catalog of the loaded descriptor sets (`loaded`, decoded from
    /// `loaded_sets`) and the files learned so far for each service in
    /// `learned` (keyed by the services that `to_learn` names), for the
    /// services in `fronted`. A learned file never replaces a loaded one of
    /// the same name, and a learned service that defines a name the loaded
    /// sets define is an error.
    pub fn build(
        loaded: &DescriptorPool,
        loaded_sets: &[&'static [u8]],
        learned: &BTreeMap<String, Vec<Bytes>>,
        to_learn: &HashSet<String>,
        fronted: &[String],
        auth: &Authenticator,
    ) -> Result<Self, CatalogError> {
        let mut pool = loaded.clone();
        let mut learned_sets = Vec::new();
        for (service, files) in learned {
            let set = file_descriptor_set(files);
            pool.decode_file_descriptor_set(set.clone())
                .map_err(|error| CatalogError::Learned { service: service.clone(), reason: error.to_string() })?;
            learned_sets.push(set);
        }
        let described: Vec<&str> =
            fronted.iter().map(String::as_str).filter(|service| pool.get_service_by_name(service).is_some()).collect();
        let sets = loaded_sets.iter().copied().chain(learned_sets.iter().map(|set| &set[..]));
        let reflection = platform::reflection::Reflection::build(sets, described.iter().copied())
            .map_err(|error| CatalogError::Reflection(error.to_string()))?;
        let grpc = GrpcMethods::build(&pool, described.iter().copied());
        let is_learned = |service: &prost_reflect::ServiceDescriptor| {
            loaded.get_file_by_name(service.parent_file().name()).is_none()
        };
        let routes = RouteTable::build(&pool, is_learned)?;
        let access = auth.access(&pool, |service| to_learn.contains(service)).map_err(CatalogError::Access)?;
        let document = crate::openapi::document(&routes, |method| access.rule(method));
        let openapi = serde_json::to_vec_pretty(&document).expect("a JSON value serializes").into();
        let pending = to_learn.iter().filter(|service| pool.get_service_by_name(service).is_none()).cloned().collect();
        Ok(Self { pool, routes, access, openapi, reflection, grpc, pending })
    }

    /// The service of `method` (`pkg.Service.Method`), when it is to be
    /// learned and is not yet. Nearly always none is, and then the method's
    /// name is not split (on every call: 170 instructions, callgrind).
    pub fn pending_service_of<'m>(&self, method: &'m str) -> Option<&'m str> {
        if self.pending.is_empty() {
            return None;
        }
        let (service, _) = method.rsplit_once('.')?;
        self.pending.contains(service).then_some(service)
    }
}

/// An encoded `FileDescriptorSet` of encoded files, kept as bytes: decoding
/// them with prost-types would drop the options (`google.api.http`, access)
/// that are extensions.
fn file_descriptor_set(files: &[Bytes]) -> Bytes {
    let mut set = Vec::with_capacity(files.iter().map(|file| file.len() + 6).sum());
    for file in files {
        prost::encoding::bytes::encode(1, file, &mut set);
    }
    set.into()
}
