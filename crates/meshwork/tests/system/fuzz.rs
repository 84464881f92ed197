//! Random paths, queries and bodies at every route of the gateway, with the
//! real services behind it: never a 500, never a dropped connection, and
//! every error in the `{"code","message","details"}` shape.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::harness::start;

/// Every REST route as (method, path with `{var}` placeholders).
fn routes() -> Vec<(String, String)> {
    let pool = prost_reflect::DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
    let table = gateway::routes::RouteTable::from_pool(&pool).unwrap();
    table.routes().iter().map(|r| (r.http_method.to_string(), r.template.openapi_path())).collect()
}

/// Segments, query values and JSON fragments that have broken gateways.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~-]{0,12}",
        Just("%zz".to_owned()),
        Just("%00".to_owned()),
        Just("%2F".to_owned()),
        Just("..".to_owned()),
        Just("a b".to_owned()),
        Just("%E2%82".to_owned()),
        Just("9999999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("NaN".to_owned()),
        Just("ORDER_STATUS_PAID".to_owned()),
        Just("💥".to_owned()),
        "\\PC{0,8}",
    ]
}

fn body() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        Just(Some("{}".to_owned())),
        Just(Some("[]".to_owned())),
        Just(Some("null".to_owned())),
        Just(Some("{\"id\":".to_owned())),
        Just(Some(r#"{"price":1e400}"#.to_owned())),
        Just(Some(r#"{"quantity":"2"}"#.to_owned())),
        Just(Some(r#"{"stock":-5,"price":-1}"#.to_owned())),
        Just(Some(r#"{"email":["a"],"name":{"x":1}}"#.to_owned())),
        Just(Some(r#"{"userId":"00000000-0000-0000-0000-000000000000","productId":"p","quantity":1}"#.to_owned())),
        "\\PC{0,40}".prop_map(Some),
        ("[a-zA-Z]{1,10}", nasty()).prop_map(|(k, v)| Some(format!("{{\"{k}\":\"{v}\"}}"))),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn random_requests_at_every_route_never_get_a_500() {
    let platform = start().await;
    let routes = routes();
    let strategy = (
        0..routes.len(),
        proptest::collection::vec(nasty(), 3),
        proptest::collection::vec((nasty(), nasty()), 0..4),
        body(),
    );
    let mut runner = TestRunner::new(Config { cases: 400, failure_persistence: None, ..Config::default() });
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(index, segments, query, body)| {
            let (method, template) = &routes[index];
            let mut path = String::new();
            let mut vars = segments.iter();
            for part in template.split('/').skip(1) {
                path.push('/');
                match (part.find('{'), part.find('}')) {
                    (Some(open), Some(close)) => {
                        path.push_str(&part[..open]);
                        path.push_str(&encode_segment(vars.next().map(String::as_str).unwrap_or("x")));
                        path.push_str(&part[close + 1..]);
                    }
                    _ => path.push_str(part),
                }
            }
            if !query.is_empty() {
                let pairs: Vec<String> =
                    query.iter().map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v))).collect();
                path.push('?');
                path.push_str(&pairs.join("&"));
            }
            let reply = handle.block_on(platform.rest(method, &path, body.as_deref().map(str::as_bytes)));
            prop_assert!(reply.status != 500 && reply.status < 600, "{method} {path} {body:?} -> {}", reply.status);
            if reply.status >= 400 {
                let json = reply.json();
                prop_assert!(
                    json["code"].is_number() && json["message"].is_string() && json["details"].is_array(),
                    "{json}"
                );
            }
            Ok(())
        })
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Percent-encodes what cannot stand in a URL as is, but leaves existing
/// escapes (good and bad) alone so that they reach the gateway.
fn encode_segment(raw: &str) -> String {
    let mut out = String::new();
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
