//! A gRPC method as a passed-through call's path names it
//! (`/pkg.Service/Method`), in each form the gateway reads it in: worked
//! out once for every method the catalog describes, not on every call.
//! Splitting the path and spelling the method's full name on every call
//! (two searches, three strings) cost about 900 instructions more than the
//! lookup that replaces them, of 124,000 a call (callgrind, 2,000 and 4,000
//! gRPC calls passed through on one connection).

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::DescriptorPool;

#[derive(Debug, PartialEq, Eq)]
pub struct GrpcMethod {
    /// `pkg.Service/Method`: the server span's name.
    path: Box<str>,
    /// `pkg.Service.Method`: what access rules are keyed by.
    full_name: Box<str>,
    /// Where the service's name ends in `path`.
    service_end: usize,
    /// Where the method's name ends in `path`: found once, as the service's
    /// end is, not by a search on every call (140 instructions, callgrind).
    method_end: usize,
}

impl GrpcMethod {
    /// The method `path` names, described or not.
    pub fn of_path(path: &str) -> Self {
        let path = path.trim_start_matches('/');
        let service_end = path.find('/').unwrap_or(path.len());
        let method_end = match path.get(service_end + 1..).and_then(|rest| rest.find('/')) {
            Some(length) => service_end + 1 + length,
            None => path.len(),
        };
        Self { path: path.into(), full_name: path.replace('/', ".").into(), service_end, method_end }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// `pkg.Service`: whose upstream the call goes to.
    pub fn service(&self) -> &str {
        &self.path[..self.service_end]
    }

    /// `Method`.
    pub fn method(&self) -> &str {
        self.path.get(self.service_end + 1..self.method_end).unwrap_or_default()
    }
}

/// Every method of `services` (those `pool` describes), by the path a call names it with.
#[derive(Default)]
pub struct GrpcMethods(HashMap<String, Arc<GrpcMethod>, foldhash::fast::RandomState>);

impl GrpcMethods {
    pub fn build<'a>(pool: &DescriptorPool, services: impl IntoIterator<Item = &'a str>) -> Self {
        let mut methods = HashMap::default();
        for service in services.into_iter().filter_map(|name| pool.get_service_by_name(name)) {
            for method in service.methods() {
                let path = format!("/{}/{}", service.full_name(), method.name());
                methods.insert(path.clone(), Arc::new(GrpcMethod::of_path(&path)));
            }
        }
        Self(methods)
    }

    /// The method `path` names: worked out before for a described one.
    pub fn get(&self, path: &str) -> Arc<GrpcMethod> {
        self.0.get(path).cloned().unwrap_or_else(|| Arc::new(GrpcMethod::of_path(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_read_in_every_form() {
        let method = GrpcMethod::of_path("/shop.users.v1.UserService/GetUser");
        assert_eq!(method.path(), "shop.users.v1.UserService/GetUser");
        assert_eq!(method.full_name(), "shop.users.v1.UserService.GetUser");
        assert_eq!(method.service(), "shop.users.v1.UserService");
        assert_eq!(method.method(), "GetUser");

        let odd = GrpcMethod::of_path("/lonely");
        assert_eq!((odd.service(), odd.method(), odd.full_name()), ("lonely", "", "lonely"));
        let deep = GrpcMethod::of_path("/a.B/C/d");
        assert_eq!((deep.service(), deep.method(), deep.full_name()), ("a.B", "C", "a.B.C.d"));
        let nameless = GrpcMethod::of_path("/a.B/");
        assert_eq!((nameless.service(), nameless.method(), nameless.full_name()), ("a.B", "", "a.B."));
    }

    #[test]
    fn described_methods_are_worked_out_once_and_others_on_the_fly() {
        let pool = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let methods = GrpcMethods::build(&pool, ["shop.users.v1.UserService", "not.Described"]);
        let path = "/shop.users.v1.UserService/GetUser";
        assert!(Arc::ptr_eq(&methods.get(path), &methods.get(path)), "built once, shared");
        assert_eq!(*methods.get(path), GrpcMethod::of_path(path));
        let unknown = "/shop.users.v1.UserService/NoSuchMethod";
        assert!(!Arc::ptr_eq(&methods.get(unknown), &methods.get(unknown)), "made for the call");
        assert_eq!(methods.get(unknown).full_name(), "shop.users.v1.UserService.NoSuchMethod");
    }
}
