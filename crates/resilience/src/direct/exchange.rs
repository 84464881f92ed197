//! A call of any kind passed through as it comes (the gateway's native gRPC
//! and gRPC-Web): its request body sent while it arrives, the response's
//! body and trailers handed back as they arrive.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::uri::PathAndQuery;
use http::{HeaderMap, Version};
use http_body::{Body, Frame};
use tonic::Status;

use super::{DirectConnection, InFlight, Live, sent};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Takes out of `headers` those of one HTTP/1 hop that HTTP/2 forbids (RFC
/// 9113 §8.2.2; a gRPC-Web call may come over HTTP/1 with them), and a `te`
/// other than `trailers` (a gRPC call's says `trailers`).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    super::remove_where(headers, |name, value| match name {
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" => true,
        "te" => value != "trailers",
        _ => false,
    });
}

impl DirectConnection {
    /// Sends `request` (whose URI needs only its path), its body as it
    /// comes, and answers with the response, its body still coming.
    pub async fn exchange<B>(&self, request: http::Request<B>) -> Result<http::Response<ResponseBody>, Status>
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.ready_to_send().await?.exchange(request).await
    }

    /// The connection, open and ready for a call: for a caller that can
    /// send its request once only, and so must not give it up to a
    /// connection that cannot be made (a failure here is one to connect,
    /// which may be tried on another endpoint).
    pub async fn ready_to_send(&self) -> Result<ReadyToSend<'_>, Status> {
        Ok(ReadyToSend { connection: self, live: self.ready().await? })
    }
}

/// A connection made ready for one call ([`DirectConnection::ready_to_send`]).
pub struct ReadyToSend<'a> {
    connection: &'a DirectConnection,
    live: Live,
}

impl ReadyToSend<'_> {
    /// [`DirectConnection::exchange`], on this connection.
    pub async fn exchange<B>(self, request: http::Request<B>) -> Result<http::Response<ResponseBody>, Status>
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Self { connection, mut live } = self;
        let (mut head, body) = request.into_parts();
        let path = head.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        head.uri = connection.target.uri(path);
        head.version = Version::HTTP_2;
        strip_hop_by_hop(&mut head.headers);

        let end_of_stream = body.is_end_stream();
        let in_flight = InFlight::enter(live.calls.clone());
        let (response, stream) = connection.open(&mut live, http::Request::from_parts(head, ()), end_of_stream)?;
        // Held while the answer is wanted: its drop (with this call, or
        // with the response body) tells a pump still sending the request
        // to reset the stream at once, as hyper's client does. Otherwise
        // the upstream would wait on a body nobody finishes, and then take
        // its end (a cancelled caller's body ends cleanly) for a whole request.
        let mut wanted = None;
        if !end_of_stream {
            let mut pump = Pump { body, stream, waiting: None, abandoned: None };
            // A unary call's request has most often arrived whole: it is
            // sent here. A request still coming is sent by a task of its
            // own, while this one waits for the response.
            match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut pump).poll(cx))).await {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(refused)) => return Err(refused),
                Poll::Pending => {
                    let (sender, abandoned) = tokio::sync::oneshot::channel::<()>();
                    wanted = Some(sender);
                    pump.abandoned = Some(abandoned);
                    tokio::spawn(pump);
                }
            }
        }
        let response = response.await.map_err(|error| {
            // This side reset the stream: the request body it was sending failed.
            if error.is_reset() && !error.is_remote() {
                Status::invalid_argument("the request body could not be read or decoded")
            } else {
                sent(error)
            }
        })?;
        Ok(response.map(|stream| ResponseBody { stream, data_done: false, _in_flight: in_flight, _wanted: wanted }))
    }
}

/// Sends a request's body as it comes, within the stream's flow control
/// (hyper's `PipeToSendStream`, without what it does for CONNECT).
struct Pump<B> {
    body: B,
    stream: SendStream<Bytes>,
    /// A chunk taken from the body, waiting for room in the window.
    waiting: Option<(Bytes, bool)>,
    /// Ready when the answer is no longer wanted (see `exchange`).
    abandoned: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl<B> Future for Pump<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// A failure of the caller's body is the caller's: INVALID_ARGUMENT,
    /// which no breaker counts. The stream is reset either way.
    type Output = Result<(), Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pump = &mut *self;
        if let Some(abandoned) = &mut pump.abandoned
            && Pin::new(abandoned).poll(cx).is_ready()
        {
            pump.stream.send_reset(Reason::CANCEL);
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Some((_, end_of_stream)) = &pump.waiting {
                let end_of_stream = *end_of_stream;
                while pump.stream.capacity() == 0 {
                    match ready!(pump.stream.poll_capacity(cx)) {
                        Some(Ok(_)) => {}
                        // The stream was reset or closed: its response says why.
                        Some(Err(_)) | None => return Poll::Ready(Ok(())),
                    }
                }
                let (data, _) = pump.waiting.take().expect("a chunk waits");
                if pump.stream.send_data(data, end_of_stream).is_err() || end_of_stream {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // The next frame before any capacity is asked for: capacity
            // asked for early is held from every other stream (hyper #4003).
            let Poll::Ready(frame) = Pin::new(&mut pump.body).poll_frame(cx) else {
                // Woken too if the upstream resets the stream meanwhile (a
                // wait for capacity is woken by that already). Asked only
                // here, where the pump waits on the caller: asked on every
                // turn, it left the call's task with the stream to be woken
                // for nothing when the stream opened, after the pump had
                // sent all: a poll of the call more, 1,100 instructions
                // (callgrind, 2,000 calls passed through the gateway).
                if let Poll::Ready(reason) = pump.stream.poll_reset(cx) {
                    tracing::debug!(?reason, "the upstream reset the stream before the request was sent");
                    return Poll::Ready(Ok(()));
                }
                return Poll::Pending;
            };
            match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let end_of_stream = pump.body.is_end_stream();
                        // The body's last chunk goes to h2 at once, without
                        // waiting for capacity: h2 holds it and sends it as
                        // the stream's window allows, and holding it costs
                        // nothing, it has arrived. Waiting put off every
                        // unary call: h2 gives a stream capacity only once
                        // its connection's task has sent the stream's
                        // headers, so the pump went to a task of its own,
                        // and the request's DATA to a write of its own after
                        // its HEADERS. Without: 82,000 -> 78,600
                        // instructions per passed-through call, the floor
                        // proxy's 65,600 -> 62,000 and its writes 4 -> 3
                        // (callgrind and strace, 2,000 and 5,000 calls on
                        // one connection).
                        if data.is_empty() || end_of_stream {
                            if pump.stream.send_data(data, end_of_stream).is_err() || end_of_stream {
                                return Poll::Ready(Ok(()));
                            }
                        } else {
                            // h2 raises the claim to the chunk's length as it sends.
                            pump.stream.reserve_capacity(1);
                            pump.waiting = Some((data, end_of_stream));
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            pump.stream.reserve_capacity(0);
                            let _ = pump.stream.send_trailers(trailers);
                            return Poll::Ready(Ok(()));
                        }
                    }
                },
                Some(Err(error)) => {
                    pump.stream.send_reset(Reason::CANCEL);
                    return Poll::Ready(Err(body_failure(error.into())));
                }
                None => {
                    let _ = pump.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// Why the caller's request body failed: a frame that would not decode (a
/// gRPC-Web body tonic-web could not read) or a caller gone.
fn body_failure(error: BoxError) -> Status {
    match error.downcast::<Status>() {
        Ok(status) => Status::invalid_argument(format!("the request body is malformed: {}", status.message())),
        Err(error) => Status::invalid_argument(format!("the request body could not be read: {error}")),
    }
}

/// A response's body as h2 receives it: its data, then its trailers. It
/// counts as a call in flight on its connection (for the keep-alive)
/// until it is dropped.
#[derive(Debug)]
pub struct ResponseBody {
    stream: RecvStream,
    data_done: bool,
    _in_flight: InFlight,
    _wanted: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let body = &mut *self;
        if !body.data_done {
            match ready!(body.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Taken: the window opens again for more.
                    let _ = body.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(ended_early(error)),
                None => body.data_done = true,
            }
        }
        match ready!(body.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(ended_early(error)),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

/// A stream the server reset with NO_ERROR or CANCEL ends the body, as
/// hyper's client reads it; any other error is the body's.
fn ended_early(error: h2::Error) -> Option<Result<Frame<Bytes>, h2::Error>> {
    let quietly = error.is_remote() && matches!(error.reason(), Some(Reason::NO_ERROR | Reason::CANCEL));
    if quietly { None } else { Some(Err(error)) }
}
