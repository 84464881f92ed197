//! The Connect protocol's unary calls through the gateway, as a Connect
//! client sends them over HTTP/1.1: JSON and binary messages, the Connect
//! error format with its google.rpc details, and streaming methods refused.
//! (`scripts/check-clients` runs connect-es's own client too.)

use base64::Engine;
use prost::Message;
use prost_reflect::{DynamicMessage, Value};

use crate::harness::start;

#[tokio::test(flavor = "multi_thread")]
async fn connect_unary_calls_answer_in_json_and_binary_with_connect_errors() {
    let harness = start().await;
    let json = [("content-type", "application/json"), ("connect-protocol-version", "1")];
    let reply =
        harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"id":"c1","sub":{"count":2}}"#), &json).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.json()["request"]["id"], "c1");
    let forwarded = reply.json()["metadata"].as_array().unwrap().clone();
    assert!(!forwarded.iter().any(|m| m.as_str().unwrap().starts_with("connect-")), "Connect's own headers stay here");

    let input = harness.pool.get_message_by_name("echo.v1.EchoRequest").unwrap();
    let mut request = DynamicMessage::new(input);
    request.set_field_by_name("id", Value::String("c2".to_owned()));
    // (The harness sends text; this message's bytes happen to be UTF-8.)
    let body = String::from_utf8(request.encode_to_vec()).unwrap();
    let binary = [("content-type", "application/proto"), ("connect-timeout-ms", "5000")];
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(&body), &binary).await;
    assert_eq!((reply.status, &reply.headers["content-type"]), (200, &"application/proto".parse().unwrap()));
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let answer = DynamicMessage::decode(output, reply.body.as_slice()).unwrap();
    let echoed = answer.get_field_by_name("request").unwrap();
    assert_eq!(echoed.as_message().unwrap().get_field_by_name("id").unwrap().as_str(), Some("c2"));
    let metadata = answer.get_field_by_name("metadata").unwrap();
    let metadata: Vec<&str> = metadata.as_list().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(metadata.iter().any(|m| m.starts_with("grpc-timeout=")), "the deadline travels: {metadata:?}");

    // An error: its Connect code, HTTP status, and google.rpc details.
    let reply =
        harness.request("POST", "/echo.v1.EchoService/Fail", Some(r#"{"code":3,"message":"no good"}"#), &json).await;
    assert_eq!(reply.status, 400);
    let error = reply.json();
    assert_eq!((error["code"].as_str(), error["message"].as_str()), (Some("invalid_argument"), Some("no good")));
    assert_eq!(error["details"][0]["type"], "google.rpc.BadRequest");
    let value = base64::engine::general_purpose::STANDARD_NO_PAD.decode(error["details"][0]["value"].as_str().unwrap());
    let bad_request = tonic_types::pb::BadRequest::decode(value.unwrap().as_slice()).unwrap();
    assert_eq!(bad_request.field_violations[0].field, "code");

    let reply = harness.request("POST", "/echo.v1.EchoService/Fail", Some(r#"{"code":5}"#), &json).await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (404, Some("not_found")));
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"id":"#), &json).await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (400, Some("invalid_argument")));
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"nope":1}"#), &json).await;
    assert_eq!(reply.json()["code"], "invalid_argument", "unknown fields are refused");
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"sub":{"count":"x"}}"#), &json).await;
    assert_eq!(reply.json()["code"], "invalid_argument");
    let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.starts_with("invalid value for sub.count (int32): "), "names the field: {message}");
    assert_eq!(reply.json()["details"][0]["type"], "google.rpc.BadRequest");
    let value =
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(reply.json()["details"][0]["value"].as_str().unwrap());
    let bad_request = tonic_types::pb::BadRequest::decode(value.unwrap().as_slice()).unwrap();
    assert_eq!(bad_request.field_violations[0].field, "sub.count");
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some("\u{7f}\u{7f}\u{7f}"), &binary).await;
    assert_eq!(
        (reply.status, reply.json()["code"].as_str()),
        (400, Some("invalid_argument")),
        "not the upstream's 500"
    );
    let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.starts_with("the request message is not a echo.v1.EchoRequest: "), "{message}");
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"id":"a","id":"b"}"#), &json).await;
    let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("duplicate field \"id\""), "a field given twice is refused: {message}");
    let body = r#"{"sub":{"count":1}, "sleep_ms":1, "sleepMs":2}"#;
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(body), &json).await;
    let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains(r#"duplicate field "sleep_ms" (also given as "sleepMs")"#),
        "a field given by both its names is refused: {message}"
    );
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"id":"a"} {}"#), &json).await;
    assert_eq!(reply.json()["code"], "invalid_argument", "trailing data is refused");
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some("{}"), &json).await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (501, Some("unimplemented")));
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_get_calls_carry_the_message_in_the_query_for_methods_without_side_effects() {
    let harness = start().await;
    let path = "/echo.v1.EchoService/EchoName";
    // connect-es's JSON form: the message percent-encoded, `+` a space.
    let query = "connect=v1&encoding=json&message=%7B%22name%22%3A%22shelves%2Fa+b%22%7D&cachebust=1";
    let reply = harness.request("GET", &format!("{path}?{query}"), None, &[("connect-protocol-version", "1")]).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.json()["request"]["name"], "shelves/a b");
    assert_eq!(reply.headers["x-echoed"], "yes", "the answer is a unary call's, headers and all");

    // The binary form: the message in URL-safe base64, without padding.
    let input = harness.pool.get_message_by_name("echo.v1.EchoRequest").unwrap();
    let mut request = DynamicMessage::new(input);
    request.set_field_by_name("name", Value::String("shelves/~?".to_owned()));
    let message = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request.encode_to_vec());
    let reply = harness.get(&format!("{path}?encoding=proto&base64=1&message={message}")).await;
    assert_eq!((reply.status, &reply.headers["content-type"]), (200, &"application/proto".parse().unwrap()));
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let answer = DynamicMessage::decode(output, reply.body.as_slice()).unwrap();
    let echoed = answer.get_field_by_name("request").unwrap();
    assert_eq!(echoed.as_message().unwrap().get_field_by_name("name").unwrap().as_str(), Some("shelves/~?"));

    // A method the contract does not mark NO_SIDE_EFFECTS is not called by GET.
    let reply = harness.get("/echo.v1.EchoService/Echo?encoding=json&message=%7B%7D").await;
    assert_eq!((reply.status, reply.headers.get("allow").map(|v| v.to_str().unwrap())), (405, Some("POST")));
    let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("echo.v1.EchoService.Echo is not marked idempotency_level = NO_SIDE_EFFECTS"),
        "{message}"
    );

    // Bad queries are refused, naming what is wrong.
    for (query, status, code, says) in [
        ("encoding=json", 400, "invalid_argument", "the query has no message parameter"),
        ("encoding=xml&message=x", 400, "invalid_argument", "unsupported encoding=xml: expected json or proto"),
        ("encoding=json&connect=v2&message=%7B%7D", 400, "invalid_argument", "unsupported connect=v2: expected v1"),
        ("encoding=proto&base64=1&message=%25%25", 400, "invalid_argument", "the message parameter is not base64"),
        ("encoding=proto&base64=2&message=", 400, "invalid_argument", "invalid base64=2: expected 0 or 1"),
        ("encoding=json&message=%7B&message=%7D", 400, "invalid_argument", "query parameter message given twice"),
        ("encoding=json&message=%zz", 400, "invalid_argument", "malformed percent-encoding in query parameter message"),
        ("encoding=json&message=%7B%22nope%22%3A1%7D", 400, "invalid_argument", "invalid request: unrecognized field"),
        (
            "encoding=proto&message=%7F%7F%7F",
            400,
            "invalid_argument",
            "the request message is not a echo.v1.EchoRequest",
        ),
        ("encoding=json&compression=gzip&message=x", 501, "unimplemented", "compressed messages are not accepted"),
    ] {
        let reply = harness.get(&format!("{path}?{query}")).await;
        let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
        assert_eq!((reply.status, reply.json()["code"].as_str()), (status, Some(code)), "{query}: {message}");
        assert!(message.starts_with(says), "{query}: {message}");
    }
    // A GET with no `encoding` is not Connect's: it goes to the REST routes.
    assert_eq!(harness.get(&format!("{path}?message=%7B%7D")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compressed_connect_request_is_refused_naming_its_encoding() {
    let harness = start().await;
    let headers = [("content-type", "application/json"), ("content-encoding", "gzip")];
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some("\u{1f}\u{8b}"), &headers).await;
    let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
    assert_eq!((reply.status, reply.json()["code"].as_str()), (501, Some("unimplemented")), "{message}");
    assert!(message.starts_with("compressed requests are not accepted (Content-Encoding: gzip)"), "{message}");
    let headers = [("content-type", "application/json"), ("content-encoding", "identity")];
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"id":"i"}"#), &headers).await;
    assert_eq!(reply.status, 200, "identity is no compression");
}

/// The envelopes of a Connect streaming body: (flags, payload) each.
fn envelopes(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        out.push((body[0], body[5..5 + length].to_vec()));
        body = &body[5 + length..];
    }
    out
}

fn enveloped(message: &str) -> String {
    // Short messages only: every byte of the prefix stays text.
    assert!(message.len() < 128);
    let mut text = String::from("\0\0\0\0");
    text.push(char::from(u8::try_from(message.len()).unwrap()));
    text + message
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_server_streams_answer_in_envelopes_and_end_with_the_status() {
    let harness = start().await;
    let stream = [("content-type", "application/connect+json")];
    let body = enveloped(r#"{"id":"cs1","sub":{"count":2}}"#);
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some(&body), &stream).await;
    assert_eq!((reply.status, &reply.headers["content-type"]), (200, &"application/connect+json".parse().unwrap()));
    let frames = envelopes(&reply.body);
    assert_eq!(frames.len(), 3, "two messages and the end: {frames:?}");
    for (flags, payload) in &frames[..2] {
        let message: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!((*flags, message["request"]["id"].as_str()), (0, Some("cs1")), "{message}");
    }
    let (flags, end) = &frames[2];
    let end: serde_json::Value = serde_json::from_slice(end).unwrap();
    assert_eq!(*flags, 2, "the end of the stream");
    assert!(end.get("error").is_none() && end["metadata"].is_object(), "{end}");

    // An error after the messages is in the end of the stream; the status is 200.
    let body = enveloped(r#"{"id":"cs2","sub":{"count":1,"value":"fail"}}"#);
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some(&body), &stream).await;
    assert_eq!(reply.status, 200);
    let frames = envelopes(&reply.body);
    assert_eq!((frames.len(), frames[1].0), (2, 2), "{frames:?}");
    let end: serde_json::Value = serde_json::from_slice(&frames[1].1).unwrap();
    assert_eq!(
        (end["error"]["code"].as_str(), end["error"]["message"].as_str()),
        (Some("aborted"), Some("the stream failed as asked"))
    );

    // In binary, the messages as the upstream sent them.
    let binary = [("content-type", "application/connect+proto")];
    let input = harness.pool.get_message_by_name("echo.v1.EchoRequest").unwrap();
    let mut request = DynamicMessage::new(input.clone());
    request.set_field_by_name("id", Value::String("cs3".to_owned()));
    let sub = input.get_field_by_name("sub").unwrap().kind().as_message().unwrap().clone();
    let mut one = DynamicMessage::new(sub);
    one.set_field_by_name("count", Value::I32(1));
    request.set_field_by_name("sub", Value::Message(one));
    let body = enveloped(&String::from_utf8(request.encode_to_vec()).unwrap());
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some(&body), &binary).await;
    let frames = envelopes(&reply.body);
    assert_eq!(frames.len(), 2, "{frames:?}");
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let answer = DynamicMessage::decode(output, frames[0].1.as_slice()).unwrap();
    let echoed = answer.get_field_by_name("request").unwrap();
    assert_eq!(echoed.as_message().unwrap().get_field_by_name("id").unwrap().as_str(), Some("cs3"));

    // What is not a server stream, or not an enveloped message, ends at once with its error.
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(&enveloped("{}")), &stream).await;
    let end: serde_json::Value = serde_json::from_slice(&envelopes(&reply.body)[0].1).unwrap();
    assert_eq!((reply.status, end["error"]["code"].as_str()), (200, Some("unimplemented")));
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some("{}"), &stream).await;
    let end: serde_json::Value = serde_json::from_slice(&envelopes(&reply.body)[0].1).unwrap();
    assert_eq!(end["error"]["code"], "invalid_argument", "{end}");
    let body = enveloped(r#"{"sub":{"count":"x"}}"#);
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some(&body), &stream).await;
    let end: serde_json::Value = serde_json::from_slice(&envelopes(&reply.body)[0].1).unwrap();
    assert!(end["error"]["message"].as_str().unwrap().starts_with("invalid value for sub.count (int32)"), "{end}");
    assert_eq!(end["error"]["details"][0]["type"], "google.rpc.BadRequest", "{end}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_client_and_bidi_streams_send_every_enveloped_message() {
    let harness = start().await;
    let stream = [("content-type", "application/connect+json")];
    let end_of = |body: &[u8]| -> serde_json::Value {
        let frames = envelopes(body);
        let (flags, end) = frames.last().unwrap();
        assert_eq!(*flags, 2, "the end of the stream: {frames:?}");
        serde_json::from_slice(end).unwrap()
    };

    // A client stream: its one answer, then the end.
    let body = [r#"{"id":"a"}"#, r#"{"id":"b"}"#, r#"{"id":"c"}"#].map(enveloped).concat();
    let reply = harness.request("POST", "/echo.v1.EchoService/Collect", Some(&body), &stream).await;
    assert_eq!(reply.status, 200);
    let frames = envelopes(&reply.body);
    assert_eq!(frames.len(), 2, "{frames:?}");
    let collected: serde_json::Value = serde_json::from_slice(&frames[0].1).unwrap();
    let ids: Vec<&str> = collected["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(end_of(&reply.body).get("error").is_none());
    // No message at all is a stream too.
    let reply = harness.request("POST", "/echo.v1.EchoService/Collect", Some(""), &stream).await;
    let collected: serde_json::Value = serde_json::from_slice(&envelopes(&reply.body)[0].1).unwrap();
    assert_eq!(collected, serde_json::json!({}), "no request collected (an empty list is not written)");

    // Both ways, in binary: each request echoed as its own message.
    let input = harness.pool.get_message_by_name("echo.v1.EchoRequest").unwrap();
    let request = |id: &str| {
        let mut request = DynamicMessage::new(input.clone());
        request.set_field_by_name("id", Value::String(id.to_owned()));
        enveloped(&String::from_utf8(request.encode_to_vec()).unwrap())
    };
    let binary = [("content-type", "application/connect+proto")];
    let body = [request("x"), request("y")].concat();
    let reply = harness.request("POST", "/echo.v1.EchoService/Chat", Some(&body), &binary).await;
    let frames = envelopes(&reply.body);
    assert_eq!(frames.len(), 3, "{frames:?}");
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    for (frame, id) in frames.iter().zip(["x", "y"]) {
        let answer = DynamicMessage::decode(output.clone(), frame.1.as_slice()).unwrap();
        let echoed = answer.get_field_by_name("request").unwrap();
        assert_eq!(echoed.as_message().unwrap().get_field_by_name("id").unwrap().as_str(), Some(id));
    }

    // One bad message ends the call before it is made, naming which.
    let body = [enveloped(r#"{"id":"a"}"#), enveloped(r#"{"id":5}"#)].concat();
    let reply = harness.request("POST", "/echo.v1.EchoService/Collect", Some(&body), &stream).await;
    let end = end_of(&reply.body);
    assert_eq!(envelopes(&reply.body).len(), 1, "no answer, only the end");
    assert!(end["error"]["message"].as_str().unwrap().starts_with("request message 2: invalid value for id"), "{end}");
    let cut = enveloped(r#"{"id":"a"}"#) + "\0\0\0";
    let reply = harness.request("POST", "/echo.v1.EchoService/Chat", Some(&cut), &stream).await;
    let end = end_of(&reply.body);
    assert_eq!(end["error"]["message"], "request message 2: the request body ends inside an envelope's prefix");
    // A server stream still takes one message, no more.
    let body = [enveloped(r#"{"id":"a"}"#), enveloped(r#"{"id":"b"}"#)].concat();
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some(&body), &stream).await;
    assert_eq!(end_of(&reply.body)["error"]["message"], "the request body must be one enveloped message");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_call_is_admitted_before_its_body_is_read() {
    let mut builder = crate::harness::Builder::new();
    let upstream = builder.echo_upstream().await;
    builder.route("echo.v1.EchoService", vec![format!("http://{upstream}")]);
    builder.auth_mode = gateway::auth::AuthMode::Required;
    let harness = builder.start().await;
    // Bodies that would be refused as malformed, sent with no token to
    // methods for signed-in callers: the caller is refused for who it is,
    // before any of the body is decoded.
    let json = [("content-type", "application/json")];
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some(r#"{"id":"#), &json).await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (401, Some("unauthenticated")));
    let proto = [("content-type", "application/proto")];
    let reply = harness.request("POST", "/echo.v1.EchoService/Echo", Some("\u{7}\u{7}"), &proto).await;
    assert_eq!((reply.status, reply.json()["code"].as_str()), (401, Some("unauthenticated")));
    let stream = [("content-type", "application/connect+json")];
    let reply = harness.request("POST", "/echo.v1.EchoService/Repeat", Some("{}"), &stream).await;
    let end: serde_json::Value = serde_json::from_slice(&envelopes(&reply.body)[0].1).unwrap();
    assert_eq!((reply.status, end["error"]["code"].as_str()), (200, Some("unauthenticated")), "{end}");
}
