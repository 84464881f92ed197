//! grpc-gateway v2 compatibility, one table per rule family (DESIGN §5,
//! gateway-compat.md), through a real gateway and a real upstream.

use serde_json::{Value as Json, json};

use crate::harness::{Harness, start};

/// A request and what must be true of the answer.
struct Case {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// JSON pointers into the response and the values they must hold.
    expect: &'static [(&'static str, Json)],
}

fn case(method: &'static str, path: &'static str, status: u16) -> Case {
    Case { method, path, body: None, headers: &[], status, expect: &[] }
}

async fn run(harness: &Harness, cases: Vec<Case>) {
    for case in cases {
        let reply = harness.request(case.method, case.path, case.body, case.headers).await;
        let label = format!("{} {} {:?}", case.method, case.path, case.body);
        assert_eq!(reply.status, case.status, "{label}: {}", String::from_utf8_lossy(&reply.body));
        let json = reply.json();
        for (pointer, expected) in case.expect {
            let actual = json.pointer(pointer).unwrap_or_else(|| panic!("{label}: no {pointer} in {json}"));
            assert_eq!(actual, expected, "{label}: {pointer} in {json}");
        }
    }
}

fn with(mut case: Case, expect: &'static [(&'static str, Json)]) -> Case {
    case.expect = expect;
    case
}

/// Leaks a Vec of expectations into the `'static` slice a case holds.
fn expect(pairs: Vec<(&'static str, Json)>) -> &'static [(&'static str, Json)] {
    Box::leak(pairs.into_boxed_slice())
}

#[tokio::test(flavor = "multi_thread")]
async fn path_templates_bind_their_fields() {
    let harness = start().await;
    run(
        &harness,
        vec![
            with(case("GET", "/v1/echo/abc", 200), expect(vec![("/request/id", json!("abc"))])),
            with(case("GET", "/v1/echo/a%20b%2Fc", 200), expect(vec![("/request/id", json!("a b/c"))])),
            with(
                case("GET", "/v1/shelves/s1/books/b2", 200),
                expect(vec![("/request/name", json!("shelves/s1/books/b2"))]),
            ),
            case("GET", "/v1/shelves/s1/notes/b2", 404),
            with(case("GET", "/v1/files/a/b/c.txt", 200), expect(vec![("/request/path", json!("a/b/c.txt"))])),
            with(case("GET", "/v1/nested/deep", 200), expect(vec![("/request/sub/value", json!("deep"))])),
            with(
                case("GET", "/v1/users/u7/echo/e1", 200),
                expect(vec![("/request/user", json!("u7")), ("/request/id", json!("e1"))]),
            ),
            case("GET", "/v1/echo/%zz", 400),
            with(
                Case { headers: &[("X-HTTP-Method-Override", "GET")], ..case("POST", "/v1/echo/o1", 200) },
                expect(vec![("/request/id", json!("o1"))]),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_verbs_and_additional_bindings_route_to_the_same_rpc() {
    let harness = start().await;
    let shout = Case { body: Some(r#"{"user":"u1","flag":true}"#), ..case("POST", "/v1/echo/e9:shout", 200) };
    run(
        &harness,
        vec![
            with(
                shout,
                expect(vec![
                    ("/request/id", json!("e9")),
                    ("/request/user", json!("u1")),
                    ("/request/flag", json!(true)),
                ]),
            ),
            // An unknown verb is part of the id, and that path is GET-only.
            with(case("GET", "/v1/echo/e9:whisper", 200), expect(vec![("/request/id", json!("e9:whisper"))])),
            case("POST", "/v1/echo/e9:whisper", 405),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_star_field_and_none() {
    let harness = start().await;
    // body: "*": everything but the path; a body value for a path field loses.
    let star = Case {
        body: Some(r#"{"id":"ignored","tags":["a","b"],"big":"9007199254740993"}"#),
        ..case("POST", "/v1/echo/p1:shout", 200)
    };
    // body: "note": the body is the note; the rest comes from the query.
    let field = Case { body: Some(r#"{"text":"hello"}"#), ..case("POST", "/v1/echo/n1/note?user=u2", 200) };
    let empty = Case { body: Some(""), ..case("POST", "/v1/echo/e1:shout", 200) };
    run(
        &harness,
        vec![
            with(
                star,
                expect(vec![
                    ("/request/id", json!("p1")),
                    ("/request/tags", json!(["a", "b"])),
                    ("/request/big", json!("9007199254740993")),
                ]),
            ),
            with(field, expect(vec![("/request/note/text", json!("hello")), ("/request/user", json!("u2"))])),
            with(empty, expect(vec![("/request/id", json!("e1"))])),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn query_parameters_fill_unbound_fields() {
    let harness = start().await;
    let path = "/v1/echo/q1?user=u&sub.value=v&sub.count=3&tags=x&tags=y&big=-12&flag=true&color=COLOR_BLUE\
                &at=2024-01-01T00:00:00Z&wait=1.5s&limit=7&ratio=0.25&labels[k]=v&unknownKey=ignored";
    let path: &'static str = Box::leak(path.replace(' ', "").into_boxed_str());
    run(
        &harness,
        vec![
            with(
                case("GET", path, 200),
                expect(vec![
                    ("/request/user", json!("u")),
                    ("/request/sub/value", json!("v")),
                    ("/request/sub/count", json!(3)),
                    ("/request/tags", json!(["x", "y"])),
                    ("/request/big", json!("-12")),
                    ("/request/flag", json!(true)),
                    ("/request/color", json!("COLOR_BLUE")),
                    ("/request/at", json!("2024-01-01T00:00:00Z")),
                    ("/request/wait", json!("1.500s")),
                    ("/request/limit", json!(7)),
                    ("/request/ratio", json!(0.25)),
                    ("/request/labels/k", json!("v")),
                ]),
            ),
            with(
                case("GET", "/v1/echo/q2?color=2&subCount=1", 200),
                expect(vec![("/request/color", json!("COLOR_BLUE"))]),
            ),
            case("GET", "/v1/echo/q3?big=huge", 400),
            case("GET", "/v1/echo/q3?flag=yes", 400),
            case("GET", "/v1/echo/q3?color=COLOR_GREEN", 400),
            case("GET", "/v1/echo/q3?at=yesterday", 400),
            case("GET", "/v1/echo/q3?user=a&user=b", 400),
            case("GET", "/v1/echo/q3?ratio=%zz", 400),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_emit_unpopulated_fields_and_honour_response_body() {
    let harness = start().await;
    let reply = harness.get("/v1/echo/bare").await;
    let request = &reply.json()["request"];
    for (field, default) in [
        ("user", json!("")),
        ("tags", json!([])),
        ("big", json!("0")),
        ("flag", json!(false)),
        ("color", json!("COLOR_UNSPECIFIED")),
        ("sub", Json::Null),
        ("at", Json::Null),
        ("labels", json!({})),
        ("ratio", json!(0)),
    ] {
        assert_eq!(request[field], default, "{field} in {request}");
    }
    assert!(request.get("maybe").is_none(), "an unset proto3 optional stays absent: {request}");

    // response_body: "request" makes that field the whole body.
    let reply = harness.get("/v1/inner/i1").await;
    assert_eq!(reply.json()["id"], "i1");
    assert!(reply.json().get("request").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_codes_map_to_http_statuses_with_the_error_body() {
    let harness = start().await;
    let table = [
        (1, 499),
        (2, 500),
        (3, 400),
        (4, 504),
        (5, 404),
        (6, 409),
        (7, 403),
        (8, 429),
        (9, 400),
        (10, 409),
        (11, 400),
        (12, 501),
        (13, 500),
        (14, 503),
        (15, 500),
        (16, 401),
    ];
    for (code, status) in table {
        let body = format!(r#"{{"code":{code},"message":"failure {code}"}}"#);
        let reply = harness.request("POST", "/v1/fail", Some(&body), &[]).await;
        assert_eq!(reply.status, status, "grpc code {code}");
        let json = reply.json();
        assert_eq!(
            (json["code"].as_i64(), json["message"].as_str()),
            (Some(code), Some(format!("failure {code}").as_str()))
        );
        let details = json["details"].as_array().unwrap();
        assert_eq!(details[0]["@type"], "type.googleapis.com/google.rpc.BadRequest", "{json}");
        assert_eq!(details[0]["fieldViolations"][0]["field"], "code");
        if code == 16 {
            assert_eq!(reply.headers.get("www-authenticate").unwrap(), "Bearer");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_travels_as_grpc_metadata_headers_both_ways() {
    let harness = start().await;
    let headers = [
        ("Grpc-Metadata-Tenant", "acme"),
        ("X-Forwarded-For", "10.1.2.3"),
        ("Grpc-Metadata-Blob-Bin", "AQID"),
        ("X-Not-Forwarded", "dropped"),
        ("User-Agent", "meshwork-test/1"),
        ("Cookie", "session=secret"),
    ];
    let reply = harness.request("GET", "/v1/echo/m1", None, &headers).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers.get("grpc-metadata-x-echoed").unwrap(), "yes");
    let seen: Vec<String> = serde_json::from_value(reply.json()["metadata"].clone()).unwrap();
    let expected = [
        "tenant=acme",
        "x-forwarded-for=10.1.2.3, 127.0.0.1",
        "blob-bin=[1, 2, 3]",
        "grpcgateway-user-agent=meshwork-test/1",
    ];
    for expected in expected {
        assert!(seen.iter().any(|s| s == expected), "{expected} not in {seen:?}");
    }
    assert!(!seen.iter().any(|s| s.starts_with("x-not-forwarded") || s.contains("cookie")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trailer_metadata_travels_as_grpc_trailer_trailers_to_a_caller_that_takes_them() {
    let harness = start().await;
    let asked = ("Grpc-Metadata-X-Trailer", "t1");
    let fail = r#"{"code":5,"message":"no such thing"}"#;
    // Not to a caller that has not said it takes trailers (grpc-gateway's
    // rule, and HTTP's), nor as a header instead.
    for (method, path, body, status) in [("GET", "/v1/echo/tr1", None, 200), ("POST", "/v1/fail", Some(fail), 404)] {
        let reply = harness.request(method, path, body, &[asked]).await;
        assert_eq!(reply.status, status, "{path}");
        assert!(reply.trailers.is_none(), "{path}: {:?}", reply.trailers);
        assert!(!reply.headers.contains_key("grpc-metadata-x-trailed") && !reply.headers.contains_key("trailer"));
        assert!(reply.headers.contains_key("content-length"), "{path}: its length is told");
        assert_eq!(reply.headers["grpc-metadata-x-echoed"], "yes", "{path}: header metadata, failed or not");
    }
    // To one that has, over HTTP/1.1 (chunked) and HTTP/2: named in
    // `Trailer`, sent after the body, which is whole. An error's metadata
    // came with its status, so it is trailer metadata too (the upstream
    // fails here as grpc-go does after its handler set header metadata:
    // the headers, then the status in the trailers).
    use http_body_util::BodyExt;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    for (method, path, body, status) in [("GET", "/v1/echo/tr2", None, 200), ("POST", "/v1/fail", Some(fail), 404)] {
        let reply = harness.request(method, path, body, &[asked, ("TE", "trailers")]).await;
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(reply.headers["trailer"], "grpc-trailer-x-trailed", "{path}");
        assert_eq!(reply.trailers.as_ref().map(|t| &t["grpc-trailer-x-trailed"]), Some(&"t1".parse().unwrap()));
        assert!(!reply.headers.contains_key("grpc-metadata-x-trailed"), "{path}");
        assert_eq!(reply.headers["grpc-metadata-x-echoed"], "yes", "{path}: header metadata stays a header");
        let json = reply.json();
        if status == 200 {
            assert_eq!(json["request"]["id"], "tr2", "{json}");
        } else {
            assert_eq!(json["message"], "no such thing", "{json}");
        }

        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", harness.gateway))
            .header("grpc-metadata-x-trailer", "t2")
            .header("te", "trailers")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let response = h2.request(request).await.unwrap();
        assert_eq!(response.status(), status, "{path}, HTTP/2");
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().map(|t| &t["grpc-trailer-x-trailed"]), Some(&"t2".parse().unwrap()));
        serde_json::from_slice::<serde_json::Value>(&collected.to_bytes()).expect("the body is whole JSON");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_timeout_sets_the_deadline() {
    let harness = start().await;
    let slow = harness.request("GET", "/v1/echo/t1?sleepMs=2000", None, &[("Grpc-Timeout", "100m")]).await;
    assert_eq!(slow.status, 504, "{}", String::from_utf8_lossy(&slow.body));
    assert_eq!(slow.json()["code"], 4);
    let fast = harness.request("GET", "/v1/echo/t2?sleepMs=10", None, &[("Grpc-Timeout", "5S")]).await;
    assert_eq!(fast.status, 200);
    let bad = harness.request("GET", "/v1/echo/t3", None, &[("Grpc-Timeout", "soon")]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["message"].as_str().unwrap().contains("Grpc-Timeout"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_error_body_naming_the_problem() {
    let harness = start().await;
    // (method, path, body, headers, status, what the message must mention)
    type BadCase =
        (&'static str, &'static str, Option<&'static str>, &'static [(&'static str, &'static str)], u16, &'static str);
    let cases: Vec<BadCase> = vec![
        ("POST", "/v1/echo/b1:shout", Some(r#"{"user": "#), &[], 400, "malformed JSON"),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"flag": "yes"}"#), &[], 400, "invalid value for flag (bool)"),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"sub": {"count": "x"}}"#), &[], 400, "sub.count (int32)"),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"labels": {"k": 5}}"#), &[], 400, "labels.k (string)"),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"tags": ["a", 7]}"#), &[], 400, "tags[1] (string)"),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"sleep_ms": -1}"#), &[], 400, "sleep_ms (uint32)"),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"at": "yesterday"}"#), &[], 400, "at (google.protobuf.Timestamp)"),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"nope": 1}"#), &[], 400, "nope"),
        (
            "POST",
            "/v1/echo/b1:shout",
            Some(r#"{"sub": {"count": 1, "count": 2}}"#),
            &[],
            400,
            "duplicate field \"count\"",
        ),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"sleep_ms": 1, "sleepMs": 2}"#), &[], 400, "also given as \"sleepMs\""),
        ("POST", "/v1/echo/b1:shout", Some(r#"{"color": "COLOR_GREEN"}"#), &[], 400, "COLOR_GREEN"),
        ("POST", "/v1/echo/b1:shout", Some("[]"), &[], 400, "JSON object"),
        ("POST", "/v1/echo/b1:shout", Some("{}"), &[("content-type", "text/plain")], 415, "text/plain"),
        ("GET", "/v1/nowhere", None, &[], 404, "/v1/nowhere"),
        ("DELETE", "/v1/echo/b1", None, &[], 405, "method"),
    ];
    for (method, path, body, headers, status, mentions) in cases {
        let reply = harness.request(method, path, body, headers).await;
        assert_eq!(reply.status, status, "{method} {path} {body:?}");
        let json = reply.json();
        let message = json["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{method} {path} {body:?}: {message:?} lacks {mentions:?}");
        assert!(json["code"].is_number() && json["details"].is_array(), "{json}");
    }
    let reply = harness.request("DELETE", "/v1/echo/b1", None, &[]).await;
    assert_eq!(reply.headers.get("allow").unwrap(), "GET, HEAD");
    // HEAD is GET without the body; a route with no GET does not take it.
    let get = harness.get("/v1/echo/h1").await;
    let head = harness.request("HEAD", "/v1/echo/h1", None, &[]).await;
    assert_eq!((head.status, head.body.len(), &head.headers["content-type"]), (200, 0, &get.headers["content-type"]));
    assert_eq!(head.headers["content-length"], get.body.len().to_string().as_str(), "the length GET's body would have");
    let head = harness.request("HEAD", "/v1/fail", None, &[]).await;
    assert_eq!((head.status, head.headers.get("allow").map(|v| v.to_str().unwrap())), (405, Some("POST")));
    // Over HTTP/2 too, where a body on a HEAD answer is a protocol error.
    use http_body_util::BodyExt;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    for (path, status) in [("/v1/echo/h1", 200), ("/v1/fail", 405)] {
        let request = http::Request::head(format!("http://{}{path}", harness.gateway)).body(Default::default());
        let response = h2.request(request.unwrap()).await.expect("a clean HTTP/2 answer");
        assert_eq!(response.status(), status, "{path}");
        assert!(response.into_body().collect().await.expect("no protocol error").to_bytes().is_empty(), "{path}");
    }

    // The field to blame, by proto names, in the detail the services' own
    // refusals carry.
    let reply = harness.request("POST", "/v1/echo/b1:shout", Some(r#"{"sleepMs": -1, "labels": {}}"#), &[]).await;
    let detail = &reply.json()["details"][0];
    assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.BadRequest", "{detail}");
    assert_eq!(detail["fieldViolations"][0]["field"], "sleep_ms", "{detail}");
    assert!(detail["fieldViolations"][0]["description"].as_str().unwrap().starts_with("invalid uint32: "));
    let reply = harness.request("GET", "/v1/echo/q1?flag=maybe", None, &[]).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["details"][0]["fieldViolations"][0]["field"], "flag");

    let big = format!(r#"{{"user":"{}"}}"#, "x".repeat(2000));
    let reply = harness.request("POST", "/v1/echo/b2:shout", Some(&big), &[]).await;
    assert_eq!(reply.status, 413);
    assert!(reply.json()["message"].as_str().unwrap().contains("1024"));
}

/// A streamed REST answer's lines, each a JSON object, the last one ended too.
fn lines(reply: &crate::harness::Reply) -> Vec<Json> {
    let text = String::from_utf8(reply.body.clone()).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_stream_over_rest_is_a_json_line_per_message_then_its_error() {
    let harness = start().await;

    let reply = harness.get("/v1/echo/s1:repeat?sub.count=3").await;
    assert_eq!((reply.status, &reply.headers["content-type"]), (200, &"application/json".parse().unwrap()));
    let answers = lines(&reply);
    assert_eq!(answers.len(), 3, "{answers:?}");
    for answer in &answers {
        assert_eq!(answer["result"]["request"]["id"], "s1", "{answer}");
        assert_eq!(answer["result"]["request"]["sub"]["count"], 3, "every field written: {answer}");
    }

    // An error after the stream has started: the last line, the status 200.
    let reply = harness.get("/v1/echo/s2:repeat?sub.count=2&sub.value=fail").await;
    assert_eq!(reply.status, 200);
    let answers = lines(&reply);
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[1]["result"]["request"]["id"], "s2");
    let error = &answers[2]["error"];
    assert_eq!((error["code"].as_i64(), error["message"].as_str()), (Some(10), Some("the stream failed as asked")));
    assert!(error["details"].is_array(), "{error}");

    // An error before the first message has its HTTP status, as grpc-gateway
    // writes it; no message is no line.
    let reply = harness.get("/v1/echo/s3:repeat?sub.count=0&sub.value=fail").await;
    assert_eq!(reply.status, 409, "ABORTED: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(lines(&reply)[0]["error"]["code"], 10);
    let reply = harness.get("/v1/echo/s4:repeat?sub.count=0").await;
    assert_eq!((reply.status, reply.body.len()), (200, 0));
    // Refused outright (a trailers-only answer): the same one line.
    let reply = harness.get("/v1/echo/s5:repeat?sub.value=refuse").await;
    assert_eq!(reply.status, 400, "FAILED_PRECONDITION: {}", String::from_utf8_lossy(&reply.body));
    let refused = lines(&reply);
    assert_eq!((refused.len(), refused[0]["error"]["message"].as_str()), (1, Some("no stream, as asked")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_stream_is_server_sent_events_for_a_caller_that_accepts_them() {
    let harness = start().await;
    // The `data` of each event, which must be all an event holds.
    let events = |reply: &crate::harness::Reply| -> Vec<serde_json::Value> {
        let text = String::from_utf8(reply.body.clone()).unwrap();
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
        let events = text.split_terminator("\n\n");
        let data = events.map(|event| event.strip_prefix("data: ").unwrap_or_else(|| panic!("not data: {event:?}")));
        data.map(|json| serde_json::from_str(json).expect("each event's data is JSON")).collect()
    };
    let sse = [("accept", "text/html, text/event-stream;q=0.9")];

    let reply = harness.request("GET", "/v1/echo/e1:repeat?sub.count=2", None, &sse).await;
    assert_eq!((reply.status, &reply.headers["content-type"]), (200, &"text/event-stream".parse().unwrap()));
    assert_eq!(reply.headers["cache-control"], "no-cache");
    let answers = events(&reply);
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers.iter().all(|answer| answer["result"]["request"]["id"] == "e1"), "{answers:?}");

    let reply = harness.request("GET", "/v1/echo/e2:repeat?sub.count=1&sub.value=fail", None, &sse).await;
    let answers = events(&reply);
    assert_eq!((reply.status, answers.len(), &answers[1]["error"]["code"]), (200, 2, &serde_json::json!(10)));

    // Refused before any message: its HTTP status, its one event.
    let reply = harness.request("GET", "/v1/echo/e3:repeat?sub.value=refuse", None, &sse).await;
    assert_eq!((reply.status, &reply.headers["content-type"]), (400, &"text/event-stream".parse().unwrap()));
    assert_eq!(events(&reply)[0]["error"]["message"], "no stream, as asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_stream_over_rest_is_the_bodys_json_objects_one_after_another() {
    let harness = start().await;
    let ids = |json: &Json| -> Vec<String> {
        json["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    // Newline-delimited, or nothing between; each message read as a body is.
    let body = "{\"id\": \"a\", \"tags\": [\"x\"]}\n{\"id\": \"b\"}{\"id\": \"c\", \"sub\": {\"count\": 2}}\n";
    let reply = harness.request("POST", "/v1/echo:collect", Some(body), &[]).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let json = reply.json();
    assert_eq!(ids(&json), ["a", "b", "c"]);
    assert_eq!((&json["requests"][0]["tags"][0], &json["requests"][2]["sub"]["count"]), (&"x".into(), &2.into()));
    // Sent as NDJSON says it is, too; a lone request's body stays JSON.
    let ndjson = [("content-type", "application/x-ndjson")];
    let reply = harness.request("POST", "/v1/echo:collect", Some("{\"id\": \"n\"}\n"), &ndjson).await;
    assert_eq!((reply.status, ids(&reply.json())), (200, vec!["n".to_owned()]));
    let reply = harness.request("POST", "/v1/echo/n1:shout", Some("{}"), &ndjson).await;
    assert_eq!(reply.status, 415, "{}", String::from_utf8_lossy(&reply.body));
    // An empty body is a stream of no message.
    let reply = harness.request("POST", "/v1/echo:collect", Some(""), &[]).await;
    assert_eq!((reply.status, ids(&reply.json()).len()), (200, 0));

    // One bad message refuses the whole call (before it is made), saying which.
    let cases = [
        ("{\"id\": \"a\"}\n{\"id\": 5}", "message 2 of 2 in the body: ", Some("id")),
        ("{\"id\": \"a\"}\n{\"nope\": 1}\n{}", "message 2 of 3 in the body: ", None),
        ("{\"id\": \"a\"}\n[1]", "message 2 of 2 in the body: the request body must be a JSON object", None),
        ("{\"id\": \"a\"},\n{\"id\": \"b\"}", "malformed JSON body: ", None),
        ("{\"id\": \"a\"}\n{\"id\": \"b\"", "malformed JSON body: ", None),
    ];
    for (body, starts, field) in cases {
        let reply = harness.request("POST", "/v1/echo:collect", Some(body), &[]).await;
        assert_eq!(reply.status, 400, "{body:?}");
        let json = reply.json();
        assert!(json["message"].as_str().unwrap().starts_with(starts), "{body:?}: {json}");
        assert_eq!(json["details"][0]["fieldViolations"][0]["field"].as_str(), field, "{body:?}: {json}");
    }

    // Both ways: the requests go as a client stream, the answers come back
    // as a server stream's lines; the path's field is in every request.
    let reply = harness.request("POST", "/v1/ann/echo:chat", Some("{\"id\": \"a\"}\n{\"id\": \"b\"}\n"), &[]).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let answers = lines(&reply);
    let echoed: Vec<(&str, &str)> = answers
        .iter()
        .map(|line| {
            (line["result"]["request"]["id"].as_str().unwrap(), line["result"]["request"]["user"].as_str().unwrap())
        })
        .collect();
    assert_eq!(echoed, [("a", "ann"), ("b", "ann")]);
}
