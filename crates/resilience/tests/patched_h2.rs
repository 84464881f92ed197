//! The h2 this workspace is built with (`third_party/h2`, see its
//! MESHWORK.md): a header string under 512 bytes goes out as it is, not
//! Huffman-coded, a header of any length still arrives as it was sent, raw
//! or coded, the same coded token on every request of a connection is
//! decoded once and still arrives as sent, and a request with a
//! connection-specific header is refused before it is sent, as by the
//! published h2. A client connection still ends when its last handle goes,
//! though a closed stream's dropped handle no longer wakes it otherwise.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// `len` bytes of what tokens and ids are made of: letters, digits, `-`,
/// `_` and `.`, whose Huffman codes take 5 to 8 bits, so a coded value is
/// shorter than the value and does not hold it.
fn value(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    (0..len).map(|i| ALPHABET[(i * 7 + i / 3) % ALPHABET.len()] as char).collect()
}

/// An h2 client on a new connection to `address`, ready to send.
async fn client(address: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let (sender, connection) = h2::client::handshake(TcpStream::connect(address).await.unwrap()).await.unwrap();
    tokio::spawn(connection);
    sender.ready().await.unwrap()
}

/// A unary call's request to `address`, headers to add.
fn request(address: SocketAddr) -> http::request::Builder {
    http::Request::post(format!("http://{address}/pkg.Service/Method"))
}

/// Sends one request carrying `headers` from an h2 client on a connection
/// to `address`, and keeps the connection open for as long as the test runs.
fn send(address: SocketAddr, headers: Vec<(String, String)>) {
    tokio::spawn(async move {
        let mut sender = client(address).await;
        let request = headers.iter().fold(request(address), |request, (name, value)| request.header(name, value));
        let (response, _) = sender.send_request(request.body(()).unwrap(), true).unwrap();
        let _ = response.await;
    });
}

#[tokio::test]
async fn a_header_value_under_512_bytes_goes_out_as_it_was_written() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // As long as the token the gateway's bench sends.
    let authorization = format!("Bearer {}", value(377));
    send(listener.local_addr().unwrap(), vec![("authorization".to_owned(), authorization.clone())]);

    // What the client wrote, read as it comes: no server answers it.
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut written = Vec::new();
    let found = tokio::time::timeout(FIVE_SECONDS, async {
        let mut chunk = [0u8; 4096];
        while !written.windows(authorization.len()).any(|w| w == authorization.as_bytes()) {
            let read = socket.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the client closed the connection before its request was seen");
            written.extend_from_slice(&chunk[..read]);
        }
    })
    .await;
    assert!(found.is_ok(), "the value is not in the {} bytes the client wrote: Huffman-coded?", written.len());
}

#[tokio::test]
async fn a_header_of_any_length_arrives_as_it_was_sent_raw_or_huffman_coded() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Around each edge: a length that takes one byte and more than one
    // (127), and the threshold between raw and coded (512).
    let lengths = [0, 1, 5, 126, 127, 128, 300, 511, 512, 513, 2000];
    let sent: Vec<(String, String)> = lengths.iter().map(|&len| (format!("x-length-{len}"), value(len))).collect();
    send(listener.local_addr().unwrap(), sent.clone());

    let (socket, _) = listener.accept().await.unwrap();
    let mut connection = h2::server::handshake(socket).await.unwrap();
    let (request, _respond) = tokio::time::timeout(FIVE_SECONDS, connection.accept()).await.unwrap().unwrap().unwrap();
    for (name, value) in &sent {
        assert_eq!(request.headers().get(name).map(|v| v.as_bytes()), Some(value.as_bytes()), "{name}");
    }
}

#[tokio::test]
async fn a_token_repeated_on_one_connection_arrives_as_sent_every_time() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Over 512 bytes, so this h2 Huffman-codes them, and `authorization`,
    // which it never indexes: each request carries its token coded anew, as
    // a client on nghttp2 sends one, and the server's decoder remembers the
    // last. The short one goes raw, between them.
    let first = format!("Bearer {}", value(600));
    let second = format!("Bearer {}", value(700));
    let short = "Bearer short".to_owned();
    let tokens = [&first, &first, &second, &first, &short, &first, &second, &second];
    let sent: Vec<String> = tokens.iter().map(|token| token.to_string()).collect();

    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(socket).await.unwrap();
        let mut seen = Vec::new();
        while let Some(accepted) = connection.accept().await {
            let (request, mut respond) = accepted.unwrap();
            seen.push(request.headers()["authorization"].to_str().unwrap().to_owned());
            respond.send_response(http::Response::new(()), true).unwrap();
        }
        seen
    });
    let mut sender = client(address).await;
    for token in &sent {
        let call = request(address).header("authorization", token).body(()).unwrap();
        sender = sender.ready().await.unwrap();
        let (response, _) = sender.send_request(call, true).unwrap();
        assert_eq!(tokio::time::timeout(FIVE_SECONDS, response).await.unwrap().unwrap().status(), 200);
    }
    drop(sender);
    assert_eq!(tokio::time::timeout(FIVE_SECONDS, server).await.unwrap().unwrap(), sent);
}

#[tokio::test]
async fn a_request_with_a_connection_specific_header_is_refused_before_it_is_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut sender = client(address).await;
    // HTTP/2 has no connection-specific headers (RFC 9113 §8.2.2); `te`
    // may only say `trailers`.
    for (name, value) in [
        ("connection", "close"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("keep-alive", "5"),
        ("proxy-connection", "close"),
        ("te", "gzip"),
    ] {
        // Among other headers, as it would come: the check looks at every name.
        let sent = request(address).header("x-before", "1").header(name, value).header("x-after", "2");
        let refused = sender.send_request(sent.body(()).unwrap(), true).err();
        assert_eq!(refused.map(|e| e.to_string()).as_deref(), Some("user error: malformed headers"), "{name}");
    }
    let allowed = request(address).header("te", "trailers").body(()).unwrap();
    assert!(sender.send_request(allowed, true).is_ok());
}

/// Answers every request on each connection to it with an empty 200 and
/// its end, and keeps the connection open for as long as the client does.
async fn answering_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut connection = h2::server::handshake(socket).await.unwrap();
                while let Some(Ok((_, mut respond))) = connection.accept().await {
                    let _ = respond.send_response(http::Response::new(()), true);
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_client_connection_ends_when_its_last_handle_goes_whichever_goes_last() {
    let address = answering_server().await;
    for stream_last in [true, false] {
        let (sender, connection) = h2::client::handshake(TcpStream::connect(address).await.unwrap()).await.unwrap();
        let connection = tokio::spawn(connection);
        let mut sender = sender.ready().await.unwrap();
        let (response, _) = sender.send_request(request(address).body(()).unwrap(), true).unwrap();
        // The stream is closed (its answer and end came), its handle still held.
        let body = response.await.unwrap().into_body();
        assert!(body.is_end_stream());
        if stream_last {
            drop(sender);
            drop(body);
        } else {
            drop(body);
            drop(sender);
        }
        let ended = tokio::time::timeout(FIVE_SECONDS, connection).await;
        assert!(ended.is_ok(), "the connection ended (the stream's handle dropped last: {stream_last})");
    }
}
