//! The GET form of a Connect unary call, which connect-es sends with
//! `useHttpGet` so that a browser or a CDN may cache the answer: the
//! request message goes in the query, `?encoding=json&message={...}` or
//! `?encoding=proto&base64=1&message=...`, and the answer is a unary
//! call's. Only for methods the contract marks `idempotency_level =
//! NO_SIDE_EFFECTS`, as connect-go and Vanguard allow it: a GET that
//! changes something could be repeated by any cache or prefetch on the way.

use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http::{HeaderValue, Method, header};
use prost_reflect::MethodDescriptor;

use crate::connect::{JSON, PROTO, error};

/// Connect's base64: the URL alphabet, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether `request` is in the GET form: a GET whose query names an `encoding`.
pub(crate) fn is_get<B>(request: &http::Request<B>) -> bool {
    request.method() == Method::GET
        && request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.split('=').next() == Some("encoding")))
}

/// Why a GET is refused: a Connect error, answered with its code's HTTP
/// status, or a method with side effects, answered 405 with `Allow: POST`.
#[derive(Debug)]
pub(crate) struct Refused {
    code: tonic::Code,
    message: String,
    side_effects: bool,
}

impl Refused {
    fn new(code: tonic::Code, message: String) -> Self {
        Self { code, message, side_effects: false }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = error(self.code, &self.message, &[]);
        if self.side_effects {
            *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// The encoding and the bytes of the request message a GET of `method`
/// carries in its `query`.
pub(crate) fn message(method: &MethodDescriptor, query: &str, limit: usize) -> Result<(&'static str, Bytes), Refused> {
    use prost_types::method_options::IdempotencyLevel;
    let level = method.method_descriptor_proto().options.as_ref().map(|o| o.idempotency_level());
    if level != Some(IdempotencyLevel::NoSideEffects) {
        let why = format!(
            "{} is not marked idempotency_level = NO_SIDE_EFFECTS, so it is not called with GET: use POST",
            method.full_name()
        );
        return Err(Refused { side_effects: true, ..Refused::new(tonic::Code::InvalidArgument, why) });
    }
    let invalid = |why: String| Refused::new(tonic::Code::InvalidArgument, why);
    let query = Query::parse(query).map_err(invalid)?;
    // Shown as given, in a message that names the parameter.
    let shown = |value: &[u8]| String::from_utf8_lossy(value).into_owned();
    if let Some(version) = query.connect.as_deref().filter(|v| *v != b"v1") {
        return Err(invalid(format!("unsupported connect={}: expected v1", shown(version))));
    }
    let encoding = match query.encoding.as_deref() {
        Some(b"json") => JSON,
        Some(b"proto") => PROTO,
        other => {
            let given = shown(other.unwrap_or_default());
            return Err(invalid(format!("unsupported encoding={given}: expected json or proto")));
        }
    };
    if let Some(compression) = query.compression.as_deref().filter(|c| *c != b"identity") {
        let why =
            format!("compressed messages are not accepted (compression={}): send it uncompressed", shown(compression));
        return Err(Refused::new(tonic::Code::Unimplemented, why));
    }
    let base64 = match query.base64.as_deref() {
        None | Some(b"0") => false,
        Some(b"1") => true,
        Some(other) => return Err(invalid(format!("invalid base64={}: expected 0 or 1", shown(other)))),
    };
    let message = query.message.ok_or_else(|| invalid("the query has no message parameter".to_owned()))?;
    let message = if base64 {
        BASE64.decode(&message).map_err(|e| invalid(format!("the message parameter is not base64: {e}")))?
    } else {
        message
    };
    if message.len() > limit {
        let why = format!("request message larger than {limit} bytes");
        return Err(Refused::new(tonic::Code::ResourceExhausted, why));
    }
    Ok((encoding, Bytes::from(message)))
}

/// The parameters of a GET's query that Connect defines; others are left
/// alone (a cache-busting one, say).
#[derive(Debug, Default)]
struct Query {
    connect: Option<Vec<u8>>,
    encoding: Option<Vec<u8>>,
    compression: Option<Vec<u8>>,
    base64: Option<Vec<u8>>,
    /// Decoded from the query, but not from base64.
    message: Option<Vec<u8>>,
}

impl Query {
    fn parse(query: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "connect" => &mut parsed.connect,
                "encoding" => &mut parsed.encoding,
                "compression" => &mut parsed.compression,
                "base64" => &mut parsed.base64,
                "message" => &mut parsed.message,
                _ => continue,
            };
            let value = crate::template::form_decode_bytes(value)
                .ok_or_else(|| format!("malformed percent-encoding in query parameter {key}"))?;
            if slot.replace(value).is_some() {
                return Err(format!("query parameter {key} given twice"));
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_read_as_a_form_and_its_message_may_be_any_bytes() {
        let query = Query::parse("encoding=json&message=%7B%22id%22%3A%22a+b%22%7D&cb=1&connect=v1").unwrap();
        assert_eq!(query.encoding.as_deref(), Some(b"json".as_slice()));
        assert_eq!(query.connect.as_deref(), Some(b"v1".as_slice()));
        assert_eq!(query.message.as_deref(), Some(br#"{"id":"a b"}"#.as_slice()));
        let binary = Query::parse("encoding=proto&message=%0A%FF").unwrap();
        assert_eq!(binary.message.as_deref(), Some([0x0a, 0xff].as_slice()));
    }

    #[test]
    fn a_query_given_twice_or_malformed_is_refused_naming_the_parameter() {
        assert_eq!(Query::parse("message=a&message=b").unwrap_err(), "query parameter message given twice");
        assert_eq!(Query::parse("encoding=json&encoding=proto").unwrap_err(), "query parameter encoding given twice");
        assert_eq!(Query::parse("message=%zz").unwrap_err(), "malformed percent-encoding in query parameter message");
    }

    #[test]
    fn base64_is_the_url_alphabet_padded_or_not() {
        assert_eq!(BASE64.decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(BASE64.decode("-_8=").unwrap(), [0xfb, 0xff]);
        assert!(BASE64.decode("+/8=").is_err(), "the standard alphabet is not Connect's");
    }
}
