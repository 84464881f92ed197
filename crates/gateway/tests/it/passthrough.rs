//! Native gRPC (unary and streaming), gRPC-Web and reflection through the
//! gateway's port, and CORS for browsers.

use gateway::codec::DynamicCodec;
use prost::Message;
use prost_reflect::{DynamicMessage, Value};

use crate::harness::start;

fn echo_request(pool: &prost_reflect::DescriptorPool, id: &str, count: i32) -> DynamicMessage {
    let mut message = DynamicMessage::new(pool.get_message_by_name("echo.v1.EchoRequest").unwrap());
    message.set_field_by_name("id", Value::String(id.to_owned()));
    let mut sub = DynamicMessage::new(pool.get_message_by_name("echo.v1.Sub").unwrap());
    sub.set_field_by_name("count", Value::I32(count));
    message.set_field_by_name("sub", Value::Message(sub));
    message
}

fn echoed_id(response: &DynamicMessage) -> String {
    let request = response.get_field_by_name("request").unwrap();
    request.as_message().unwrap().get_field_by_name("id").unwrap().as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_clients_call_through_the_gateway_unary_and_streaming() {
    let harness = start().await;
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let mut client = tonic::client::Grpc::new(harness.channel().await);
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/echo.v1.EchoService/Echo");
    let reply = client
        .unary(tonic::Request::new(echo_request(&harness.pool, "g1", 1)), path, DynamicCodec::new(output.clone()))
        .await
        .unwrap();
    assert_eq!(echoed_id(reply.get_ref()), "g1");

    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/echo.v1.EchoService/Repeat");
    let mut stream = client
        .server_streaming(tonic::Request::new(echo_request(&harness.pool, "s1", 3)), path, DynamicCodec::new(output))
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    while let Some(message) = stream.message().await.unwrap() {
        assert_eq!(echoed_id(&message), "s1");
        received += 1;
    }
    assert_eq!(received, 3);

    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/nope.v1.Nothing/Call");
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let status = client
        .unary(tonic::Request::new(echo_request(&harness.pool, "x", 1)), path, DynamicCodec::new(output))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_calls_through_the_gateway() {
    let harness = start().await;
    let message = echo_request(&harness.pool, "w1", 1).encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let reply = {
        use http_body_util::{BodyExt, Full};
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<bytes::Bytes>>();
        let request = http::Request::post(format!("http://{}/echo.v1.EchoService/Echo", harness.gateway))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .body(Full::new(bytes::Bytes::from(frame)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/grpc-web"));
        response.into_body().collect().await.unwrap().to_bytes()
    };
    // A data frame (flag 0) with the message, then a trailer frame (flag 0x80).
    assert_eq!(reply[0], 0);
    let length = u32::from_be_bytes(reply[1..5].try_into().unwrap()) as usize;
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let decoded = DynamicMessage::decode(output, &reply[5..5 + length]).unwrap();
    assert_eq!(echoed_id(&decoded), "w1");
    let trailers = String::from_utf8_lossy(&reply[5 + length + 5..]).to_lowercase();
    assert_eq!(reply[5 + length], 0x80);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_get_cors_from_configured_origins() {
    let harness = start().await;
    let headers = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type,x-grpc-web"),
    ];
    let preflight = harness.request("OPTIONS", "/echo.v1.EchoService/Echo", None, &headers).await;
    assert_eq!(preflight.headers.get("access-control-allow-origin").unwrap(), "https://app.example");
    // A browser's Connect call asks for Connect's own headers.
    let allowed = preflight.headers.get("access-control-allow-headers").unwrap().to_str().unwrap().to_owned();
    for header in ["authorization", "content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web"] {
        assert!(allowed.split(',').any(|h| h.trim().eq_ignore_ascii_case(header)), "{header} not in {allowed}");
    }
    let other = [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")];
    let refused = harness.request("OPTIONS", "/echo.v1.EchoService/Echo", None, &other).await;
    assert!(refused.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_through_the_gateway_lists_the_fronted_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let harness = start().await;
    let mut client = ServerReflectionClient::new(harness.channel().await);
    let requests = [
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol("echo.v1.EchoService".to_owned())),
        },
    ];
    let mut responses = client.server_reflection_info(tokio_stream::iter(requests)).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"echo.v1.EchoService".to_owned()), "{names:?}");
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected the file of the echo service");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

/// A gRPC-Web text call as a browser sends it: base64 body, with a
/// Content-Length (of the base64 text).
async fn grpc_web_text(harness: &crate::harness::Harness, body: Vec<u8>) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let request = http::Request::post(format!("http://{}/echo.v1.EchoService/Echo", harness.gateway))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .header("content-length", body.len())
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let grpc_status = format!("{:?}", tonic::Status::from_header_map(response.headers()));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    (status, if body.is_empty() { grpc_status } else { body })
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_text_with_a_content_length_works_and_a_malformed_one_never_trips_the_breaker() {
    use base64::Engine;
    let harness = start().await;
    let message = echo_request(&harness.pool, "t1", 1).encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let text = base64::engine::general_purpose::STANDARD.encode(&frame).into_bytes();
    let (status, reply) = grpc_web_text(&harness, text.clone()).await;
    assert_eq!(status, 200);
    // Each frame is base64-encoded on its own; the first is the data frame.
    let b64 = base64::engine::general_purpose::STANDARD;
    let header = b64.decode(&reply[..8]).unwrap_or_else(|_| panic!("{reply}"));
    assert_eq!(header[0], 0, "a data frame comes back: {reply}");
    let length = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
    let reply = b64.decode(&reply[..(5 + length).div_ceil(3) * 4]).unwrap();
    let output = harness.pool.get_message_by_name("echo.v1.EchoResponse").unwrap();
    let decoded = DynamicMessage::decode(output, &reply[5..5 + length]).unwrap();
    assert_eq!(echoed_id(&decoded), "t1");

    // Ten undecodable bodies: the caller's fault, never the upstream's.
    for _ in 0..10 {
        let (_, refused) = grpc_web_text(&harness, b"!!not base64!!".to_vec()).await;
        assert!(refused.contains("InvalidArgument"), "{refused}");
    }
    let (status, _) = grpc_web_text(&harness, text).await;
    assert_eq!(status, 200, "the breaker stayed closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preflight_allows_the_authorization_header_by_name_and_is_cached() {
    let harness = start().await;
    let headers = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout"),
    ];
    let preflight = harness.request("OPTIONS", "/echo.v1.EchoService/Echo", None, &headers).await;
    let allowed = preflight.headers["access-control-allow-headers"].to_str().unwrap().to_owned();
    for header in ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"] {
        assert!(allowed.contains(header), "{header} not in {allowed}");
    }
    assert!(!allowed.contains('*'), "{allowed}");
    assert_eq!(preflight.headers["access-control-max-age"], "600");
}
