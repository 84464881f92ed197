//! REST/JSON <-> protobuf for one route, with the proto3 JSON mapping (as
//! grpc-gateway v2 does it): the request message is assembled from the path
//! bindings, the query string and the body; the response is rendered with
//! unpopulated fields emitted.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};
use serde_json::{Map, Value as Json};

use resilience::direct::{Framed, Frames};

use crate::routes::{BodyRule, Route};
use crate::template::Binding;

/// Why a request could not be turned into a message: always the client's
/// fault (400), and the message names the field. When one field is to
/// blame, `violation` names it by its path of proto names
/// (`items[1].quantity`), for the `google.rpc.BadRequest` detail that the
/// services' own refusals carry, so that a client finds the field the same
/// way whoever refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadRequest {
    pub message: String,
    pub violation: Option<FieldViolation>,
}

/// One field of the request and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl BadRequest {
    /// A refusal that blames no one field.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), violation: None }
    }

    /// A refusal of the value of `field`, told as `message`.
    fn of_field(field: String, description: String, message: String) -> Self {
        Self { message, violation: Some(FieldViolation { field, description }) }
    }

    /// Its `google.rpc.BadRequest`, if a field is to blame.
    pub fn detail(&self) -> Option<tonic_types::pb::BadRequest> {
        let violation = self.violation.as_ref()?;
        Some(tonic_types::pb::BadRequest {
            field_violations: vec![tonic_types::pb::bad_request::FieldViolation {
                field: violation.field.clone(),
                description: violation.description.clone(),
                ..Default::default()
            }],
        })
    }
}

/// Builds the request message of `route` from the parts of an HTTP request.
fn request_message(
    route: &Route,
    bindings: Vec<Binding>,
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, BadRequest> {
    let input = route.method.input();
    let body = match route.body {
        BodyRule::None => None,
        _ => parse_body(body)?,
    };
    message_of(route, input, bindings, query, body)
}

/// The request messages of `route`, framed for gRPC: the one
/// [`request_message`] builds, or for a method that takes a stream and a
/// body, one for each JSON value of the body, one after another (none for
/// an empty body), as grpc-gateway sends a client stream. Each is built as
/// a lone request's would be, the path and query applied to it; any
/// refused refuses them all, before anything is sent.
///
/// A stream's messages are made and framed one at a time, so what is held
/// is the body and the frames. 1 MiB of `{}`, 350,000 empty messages, took
/// the gateway's peak RSS up by 63 MB when the values and then the
/// messages were all held before framing, and by 6 MB framed as they are
/// made (a debug build, the request refused by its upstream).
pub fn request_frames(
    route: &Route,
    bindings: Vec<Binding>,
    query: Option<&str>,
    body: &[u8],
) -> Result<Framed, BadRequest> {
    let unencodable = |status: tonic::Status| BadRequest::new(status.message());
    if !route.method.is_client_streaming() || route.body == BodyRule::None {
        if let Some(encoded) = encoded_straight(route, &bindings, query, body) {
            let mut frames = Frames::default();
            frames.push_encoded(&encoded).map_err(unencodable)?;
            return Ok(frames.finish());
        }
        let message = request_message(route, bindings, query, body)?;
        return Framed::encode(std::slice::from_ref(&message)).map_err(unencodable);
    }
    let malformed = |error: serde_json::Error| BadRequest::new(format!("malformed JSON body: {error}"));
    let (count, values) = crate::strict_json::parse_sequence(body).map_err(malformed)?;
    let mut frames = Frames::default();
    for (index, value) in values.enumerate() {
        let numbered = |refused: BadRequest| BadRequest {
            message: format!("message {} of {count} in the body: {}", index + 1, refused.message),
            ..refused
        };
        let message = message_of(route, route.method.input(), bindings.clone(), query, Some(value.map_err(malformed)?))
            .map_err(numbered)?;
        frames.push(&message).map_err(unencodable)?;
    }
    Ok(frames.finish())
}

/// The request message, `input`, from the body's JSON value (if there is
/// one), the path's bindings and the query.
fn message_of(
    route: &Route,
    input: MessageDescriptor,
    bindings: Vec<Binding>,
    query: Option<&str>,
    body: Option<Json>,
) -> Result<DynamicMessage, BadRequest> {
    let mut root = Map::new();
    match (&route.body, body) {
        (BodyRule::None, _) | (_, None) => {}
        (BodyRule::All, Some(Json::Object(object))) => root = object,
        (BodyRule::All, Some(_)) => return Err(BadRequest::new("the request body must be a JSON object")),
        (BodyRule::Field(field), Some(value)) => {
            root.insert(field.clone(), value);
        }
    }
    // The body alone: a path or query value takes its field's place by design.
    crate::strict_json::one_name_per_field(&root, &input)
        .map_err(|why| BadRequest::new(format!("malformed JSON body: {why}")))?;
    for (path, raw) in bindings {
        let field =
            resolve(&input, &path).ok_or_else(|| BadRequest::new(format!("unknown path field {}", path.join("."))))?;
        let problem = |why: String| {
            let field = path.join(".");
            BadRequest::of_field(field.clone(), why.clone(), format!("path parameter {field}: {why}"))
        };
        let value = scalar(&field, &raw).map_err(problem)?;
        insert(&mut root, &path, value, Join::Replace).map_err(problem)?;
    }
    if route.body != BodyRule::All
        && let Some(query) = query
    {
        apply_query(&mut root, route, &input, query)?;
    }
    message_from_json(input, Json::Object(root))
}

/// The message `input` from its proto3 JSON, unknown fields refused. A
/// value of the wrong type or out of range is refused naming its field,
/// by its path as the request wrote it, and the field's type (`invalid
/// value for items[1].quantity (int32): invalid digit found in string`), as
/// protojson names the field for grpc-gateway: prost-reflect's error says
/// only what was wrong with the value. The path is followed on every
/// request, not only once one fails: 121,500 -> 121,900-122,500
/// instructions per REST POST of two fields (callgrind, 2,000 requests).
pub fn message_from_json<'de, D: serde::Deserializer<'de>>(
    input: MessageDescriptor,
    json: D,
) -> Result<DynamicMessage, BadRequest> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut track = serde_path_to_error::Track::new();
    let outcome = DynamicMessage::deserialize_with_options(
        input.clone(),
        serde_path_to_error::Deserializer::new(json, &mut track),
        &options,
    );
    outcome.map_err(|error| {
        let path = track.path();
        match field_at(&input, &path) {
            Some((field, proto_path)) => {
                let type_name = type_name(&field);
                BadRequest::of_field(
                    proto_path,
                    format!("invalid {type_name}: {error}"),
                    format!("invalid value for {path} ({type_name}): {error}"),
                )
            }
            None => BadRequest::new(format!("invalid request: {error}")),
        }
    })
}

/// The field a JSON path (`items[1].quantity`, `labels.color`) reaches in
/// `input`: fields by JSON or proto name, list elements by index, map
/// values by key; and the same path by proto names, an element or a map
/// value in brackets (`items[1].quantity`, `labels[color]`). `None` for a
/// path that names no field (an unknown one).
fn field_at(input: &MessageDescriptor, path: &serde_path_to_error::Path) -> Option<(FieldDescriptor, String)> {
    use serde_path_to_error::Segment;
    // The field reached so far, and whether its list or map is entered.
    let mut at: Option<(FieldDescriptor, bool)> = None;
    let mut proto_path = String::new();
    for segment in path.iter() {
        at = match (at, segment) {
            (Some((field, false)), Segment::Seq { index }) if field.is_list() => {
                proto_path.push_str(&format!("[{index}]"));
                Some((field, true))
            }
            (Some((field, false)), Segment::Map { key }) if field.is_map() => match field.kind() {
                Kind::Message(entry) => {
                    proto_path.push_str(&format!("[{key}]"));
                    Some((entry.map_entry_value_field(), true))
                }
                _ => None,
            },
            (at, Segment::Map { key }) => {
                let message = match at {
                    None => input.clone(),
                    Some((field, entered)) if entered || !(field.is_list() || field.is_map()) => {
                        field.kind().as_message()?.clone()
                    }
                    Some(_) => return None,
                };
                let field = message.get_field_by_json_name(key).or_else(|| message.get_field_by_name(key))?;
                if !proto_path.is_empty() {
                    proto_path.push('.');
                }
                proto_path.push_str(field.name());
                Some((field, false))
            }
            _ => return None,
        };
    }
    at.map(|(field, _)| (field, proto_path))
}

/// A field's type as the contract writes it: `int32`, `string`, or the
/// full name of a message or enum.
fn type_name(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Message(message) => message.full_name().to_owned(),
        Kind::Enum(enumeration) => enumeration.full_name().to_owned(),
        // `TYPE_INT32` and the like.
        _ => field.field_descriptor_proto().r#type().as_str_name().trim_start_matches("TYPE_").to_ascii_lowercase(),
    }
}

/// The encoded message of the commonest requests, written without
/// building the message (see the two below); `None` for any other, which
/// the general path builds or refuses.
fn encoded_straight(route: &Route, bindings: &[Binding], query: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
    if !query.is_none_or(str::is_empty) {
        return None;
    }
    match route.body {
        BodyRule::None => string_bindings_encoded(&route.method.input(), bindings),
        BodyRule::All if bindings.is_empty() => text_object_encoded(&route.method.input(), body),
        _ => None,
    }
}

/// The encoded message of a request made of path values alone, each for a
/// different string field of the request itself (a GET of one resource by
/// its id), as the message built through a JSON object and the
/// deserializer encodes. Set straight on a `DynamicMessage` instead of
/// through the JSON object, callgrind counted 146,600-146,700 ->
/// 144,500-144,700 instructions per GET (2,000 REST GETs, two runs each);
/// encoded straight, without the message: 93,200-94,000 -> 90,200.
fn string_bindings_encoded(input: &MessageDescriptor, bindings: &[Binding]) -> Option<Vec<u8>> {
    let texts = bindings.iter().map(|(path, raw)| match path.as_slice() {
        [name] => Some((input.get_field_by_name(name)?, raw)),
        _ => None,
    });
    encode_texts(texts)
}

/// The encoded message of a body that is a JSON object of texts alone,
/// each for a different string field of `input` by either of its names (a
/// sign-up's form), as the general path encodes it: parsed without a JSON
/// tree, the message or the field checks, which a body that is anything
/// else goes on to (a key twice or a field by its two names, an unknown
/// key, a value that is not text, a null). Callgrind per REST POST of two
/// fields: 108,400 -> 100,200 instructions.
fn text_object_encoded(input: &MessageDescriptor, body: &[u8]) -> Option<Vec<u8>> {
    if input.full_name().starts_with("google.protobuf.") {
        return None;
    }
    let TextObject(pairs) = serde_json::from_slice(body).ok()?;
    let texts = pairs.iter().map(|(key, text)| {
        let field = input.get_field_by_json_name(key).or_else(|| input.get_field_by_name(key))?;
        Some((field, text))
    });
    encode_texts(texts)
}

/// `texts`, each for a different singular string field, encoded as a
/// message holding them encodes: in field number order, an empty text left
/// out where the field has no presence. `None` if one is not such a field,
/// or is in a oneof (of which one field at most may be set; a proto3
/// `optional` field's oneof is only its presence).
fn encode_texts<'a>(texts: impl Iterator<Item = Option<(FieldDescriptor, &'a String)>>) -> Option<Vec<u8>> {
    let mut fields: Vec<(u32, bool, &String)> = Vec::new();
    for text in texts {
        let (field, text) = text?;
        if field.kind() != Kind::String
            || field.is_list()
            || field.containing_oneof().is_some_and(|oneof| !oneof.is_synthetic())
            || fields.iter().any(|(n, ..)| *n == field.number())
        {
            return None;
        }
        fields.push((field.number(), field.supports_presence(), text));
    }
    fields.sort_unstable_by_key(|(number, ..)| *number);
    let sent = || fields.iter().filter(|(_, presence, text)| *presence || !text.is_empty());
    let mut encoded =
        Vec::with_capacity(sent().map(|(n, _, text)| prost::encoding::string::encoded_len(*n, text)).sum());
    for (number, _, text) in sent() {
        prost::encoding::string::encode(*number, text, &mut encoded);
    }
    Some(encoded)
}

/// A JSON object whose every value is a string, its pairs in order; any
/// other JSON is an error.
struct TextObject(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for TextObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = TextObject;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an object of strings")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TextObject, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(TextObject(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

fn parse_body(body: &[u8]) -> Result<Option<Json>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::strict_json::parse(body).map(Some).map_err(|error| BadRequest::new(format!("malformed JSON body: {error}")))
}

/// Query parameters: `field=v`, `a.b.c=v` (proto or JSON names), repeated
/// keys for repeated fields, `map[key]=v`. Unknown keys are ignored (as
/// grpc-gateway does); fields under the body field are not taken from the query.
fn apply_query(
    root: &mut Map<String, Json>,
    route: &Route,
    input: &MessageDescriptor,
    query: &str,
) -> Result<(), BadRequest> {
    let bound: Vec<Vec<String>> = route.template.bound_fields().map(<[String]>::to_vec).collect();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let key = crate::template::form_decode(key)
            .ok_or_else(|| BadRequest::new("malformed percent-encoding in the query"))?;
        let raw = crate::template::form_decode(raw)
            .ok_or_else(|| BadRequest::new(format!("malformed percent-encoding in query parameter {key}")))?;
        let (key, map_key) = match key.split_once('[') {
            Some((field, rest)) => (field.to_owned(), Some(rest.strip_suffix(']').unwrap_or(rest).to_owned())),
            None => (key, None),
        };
        let Some((field, path)) = resolve_names(input, &key) else { continue };
        if bound.contains(&path) || matches!(&route.body, BodyRule::Field(body) if *body == path[0]) {
            continue;
        }
        let problem =
            |why: String| BadRequest::of_field(path.join("."), why.clone(), format!("query parameter {key}: {why}"));
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { continue };
            let value_field = entry.map_entry_value_field();
            let value = scalar(&value_field, &raw).map_err(problem)?;
            let map_key = map_key.ok_or_else(|| problem("a map needs field[key]=value".to_owned()))?;
            let object = entry_object(root, &path).map_err(problem)?;
            object.insert(map_key, value);
            continue;
        }
        let value = scalar(&field, &raw).map_err(problem)?;
        let join = if field.is_list() { Join::Append } else { Join::Once };
        insert(root, &path, value, join).map_err(problem)?;
    }
    Ok(())
}

/// The map object at `path`, created if needed.
fn entry_object<'a>(root: &'a mut Map<String, Json>, path: &[String]) -> Result<&'a mut Map<String, Json>, String> {
    let (last, parents) = path.split_last().expect("a field path");
    let mut current = root;
    for part in parents {
        current = match current.entry(part.clone()).or_insert_with(|| Json::Object(Map::new())) {
            Json::Object(object) => object,
            _ => return Err(format!("{part} is not a message")),
        };
    }
    match current.entry(last.clone()).or_insert_with(|| Json::Object(Map::new())) {
        Json::Object(object) => Ok(object),
        _ => Err("given twice".to_owned()),
    }
}

/// How a value joins what the JSON object already holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Join {
    /// A path value: wins over the body's.
    Replace,
    /// A query value of a singular field: a second one is an error.
    Once,
    /// A query value of a repeated field: collected.
    Append,
}

/// Puts `value` at `path` in the JSON object.
fn insert(root: &mut Map<String, Json>, path: &[String], value: Json, join: Join) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("a field path");
    let mut current = root;
    for part in parents {
        current = match current.entry(part.clone()).or_insert_with(|| Json::Object(Map::new())) {
            Json::Object(object) => object,
            _ => return Err(format!("{part} is not a message")),
        };
    }
    match join {
        Join::Append => match current.entry(last.clone()).or_insert_with(|| Json::Array(Vec::new())) {
            Json::Array(values) => values.push(value),
            _ => return Err("mixes a list and a single value".to_owned()),
        },
        Join::Once if current.contains_key(last) => {
            return Err("given twice for a field that takes one value".to_owned());
        }
        Join::Once | Join::Replace => {
            current.insert(last.clone(), value);
        }
    }
    Ok(())
}

/// The field at a dotted path of proto names (path variables).
fn resolve(message: &MessageDescriptor, path: &[String]) -> Option<FieldDescriptor> {
    let mut current = message.clone();
    let mut field = None;
    for part in path {
        let found = current.get_field_by_name(part)?;
        if let Kind::Message(inner) = found.kind() {
            current = inner;
        }
        field = Some(found);
    }
    field
}

/// The field at a dotted path of proto or JSON names, and its proto-name path.
fn resolve_names(message: &MessageDescriptor, dotted: &str) -> Option<(FieldDescriptor, Vec<String>)> {
    let mut current = message.clone();
    let mut field = None;
    let mut path = Vec::new();
    for part in dotted.split('.') {
        let found = current.get_field_by_name(part).or_else(|| current.get_field_by_json_name(part))?;
        path.push(found.name().to_owned());
        if let Kind::Message(inner) = found.kind()
            && !found.is_map()
        {
            current = inner;
        }
        field = Some(found);
    }
    field.map(|field| (field, path))
}

/// The JSON form of a path or query value for `field`, checked against its type.
fn scalar(field: &FieldDescriptor, raw: &str) -> Result<Json, String> {
    fn number<T: std::str::FromStr + Into<serde_json::Number>>(raw: &str, what: &str) -> Result<Json, String> {
        raw.parse::<T>().map(|n| Json::Number(n.into())).map_err(|_| format!("{raw:?} is not {what}"))
    }
    match field.kind() {
        Kind::Bool => match raw {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(format!("{raw:?} is not true or false")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => number::<i32>(raw, "a 32-bit integer"),
        Kind::Uint32 | Kind::Fixed32 => number::<u32>(raw, "an unsigned 32-bit integer"),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            raw.parse::<i64>().map(|_| Json::String(raw.to_owned())).map_err(|_| format!("{raw:?} is not an integer"))
        }
        Kind::Uint64 | Kind::Fixed64 => raw
            .parse::<u64>()
            .map(|_| Json::String(raw.to_owned()))
            .map_err(|_| format!("{raw:?} is not an unsigned integer")),
        Kind::Float | Kind::Double => match raw {
            "NaN" | "Infinity" | "-Infinity" => Ok(Json::String(raw.to_owned())),
            _ => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or_else(|| format!("{raw:?} is not a number")),
        },
        Kind::String | Kind::Bytes => Ok(Json::String(raw.to_owned())),
        Kind::Enum(enumeration) => {
            if enumeration.get_value_by_name(raw).is_some() {
                Ok(Json::String(raw.to_owned()))
            } else if let Some(value) = raw.parse::<i32>().ok().filter(|n| enumeration.get_value(*n).is_some()) {
                Ok(Json::Number(value.into()))
            } else {
                let names: Vec<String> = enumeration.values().map(|v| v.name().to_owned()).collect();
                Err(format!("{raw:?} is not one of {}", names.join(", ")))
            }
        }
        Kind::Message(message) => match message.full_name() {
            // Wrappers take their inner type's form; other well-known types
            // (Timestamp, Duration, FieldMask) their JSON string form.
            name if name.starts_with("google.protobuf.")
                && name.ends_with("Value")
                && name != "google.protobuf.Value" =>
            {
                let inner = message.get_field_by_name("value").expect("a wrapper has a value field");
                scalar(&inner, raw)
            }
            _ => Ok(Json::String(raw.to_owned())),
        },
    }
}

/// The proto3 JSON of `message` with every unpopulated field emitted, as
/// grpc-gateway v2's default marshaler does (fields of a oneof, proto3
/// `optional` included, stay absent when unset).
pub fn to_json(message: &DynamicMessage) -> Json {
    let options = SerializeOptions::new().skip_default_fields(true);
    let mut json = message.serialize_with_options(serde_json::value::Serializer, &options).unwrap_or(Json::Null);
    emit_unpopulated(&mut json, &message.descriptor());
    json
}

fn emit_unpopulated(json: &mut Json, descriptor: &MessageDescriptor) {
    if descriptor.full_name().starts_with("google.protobuf.") {
        return; // well-known types have their own JSON forms
    }
    let Json::Object(object) = json else { return };
    for field in descriptor.fields() {
        let key = field.json_name();
        match object.get_mut(key) {
            Some(value) => {
                if let Kind::Message(inner) = field.kind() {
                    if field.is_map() {
                        let value_field = inner.map_entry_value_field();
                        if let (Json::Object(entries), Kind::Message(value_type)) = (value, value_field.kind()) {
                            entries.values_mut().for_each(|v| emit_unpopulated(v, &value_type));
                        }
                    } else if let Json::Array(items) = value {
                        items.iter_mut().for_each(|item| emit_unpopulated(item, &inner));
                    } else {
                        emit_unpopulated(value, &inner);
                    }
                }
            }
            None if field.containing_oneof().is_some() => {}
            None => {
                object.insert(key.to_owned(), default_json(&field));
            }
        }
    }
}

fn default_json(field: &FieldDescriptor) -> Json {
    if field.is_map() {
        return Json::Object(Map::new());
    }
    if field.is_list() {
        return Json::Array(Vec::new());
    }
    match field.kind() {
        Kind::Message(_) => Json::Null,
        Kind::Bool => Json::Bool(false),
        Kind::String | Kind::Bytes => Json::String(String::new()),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => Json::String("0".to_owned()),
        Kind::Enum(enumeration) => Json::String(enumeration.default_value().name().to_owned()),
        _ => Json::Number(0.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Lookup, RouteTable};
    use http::Method;
    use prost_reflect::DescriptorPool;

    fn table() -> RouteTable {
        RouteTable::from_pool(&DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap()).unwrap()
    }

    fn build(method: Method, path_and_query: &str, body: &str) -> Result<Json, BadRequest> {
        let table = table();
        let (path, query) = path_and_query.split_once('?').map_or((path_and_query, None), |(p, q)| (p, Some(q)));
        let Lookup::Found { route, bindings } = table.lookup(&method, path) else { panic!("no route") };
        request_message(route, bindings, query, body.as_bytes()).map(|m| to_json(&m))
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_naming_its_field_and_type() {
        let refusal = |body: &str| build(Method::POST, "/orders", body).unwrap_err().message;
        assert_eq!(
            refusal(r#"{"quantity": "x"}"#),
            "invalid value for quantity (int32): invalid digit found in string"
        );
        // By the name the request used, JSON or proto, and by its path.
        assert!(refusal(r#"{"userId": 5}"#).starts_with("invalid value for userId (string): "));
        assert!(refusal(r#"{"user_id": 5}"#).starts_with("invalid value for user_id (string): "));
        assert!(
            refusal(r#"{"items": [{"quantity": 1}, {"quantity": 3000000000}]}"#)
                .starts_with("invalid value for items[1].quantity (int32): "),
        );
        assert!(refusal(r#"{"items": 5}"#).starts_with("invalid value for items (shop.orders.v1.LineItem): "));
        // A field given twice, as protojson refuses it.
        assert_eq!(
            refusal(r#"{"quantity": 1, "quantity": 2}"#),
            "malformed JSON body: duplicate field \"quantity\" at line 1 column 26"
        );
        // An unknown field names itself, and where it is when it is inside another.
        assert_eq!(refusal(r#"{"bogus": 1}"#), "invalid request: unrecognized field name 'bogus'");
        assert_eq!(
            refusal(r#"{"items": [{"bogus": 1}]}"#),
            "invalid value for items[0] (shop.orders.v1.LineItem): unrecognized field name 'bogus'"
        );
    }

    #[test]
    fn body_star_takes_the_template_bodies() {
        let json = build(Method::POST, "/users", r#"{"email":"user@example.com","name":"John Doe"}"#).unwrap();
        assert_eq!(json["email"], "user@example.com");
        let json =
            build(Method::POST, "/products", r#"{"id":"prod-123","name":"Widget","price":29.99,"stock":100}"#).unwrap();
        assert_eq!((json["price"].as_f64(), json["stock"].as_i64()), (Some(29.99), Some(100)));
        let json = build(Method::POST, "/orders", r#"{"userId":"u","productId":"prod-123","quantity":2}"#).unwrap();
        assert_eq!((json["userId"].as_str(), json["quantity"].as_i64()), (Some("u"), Some(2)));
    }

    #[test]
    fn path_values_win_and_query_fills_the_rest() {
        let json = build(Method::PATCH, "/users/abc", r#"{"id":"other","name":"N"}"#).unwrap();
        assert_eq!(json["id"], "abc");
        let json = build(Method::GET, "/products?page_size=5&filter.min_price=1.5&filter.inStock=true&pageToken=t", "")
            .unwrap();
        assert_eq!((json["pageSize"].as_i64(), json["pageToken"].as_str()), (Some(5), Some("t")));
        assert_eq!((json["filter"]["minPrice"].as_f64(), json["filter"]["inStock"].as_bool()), (Some(1.5), Some(true)));
        let json = build(Method::GET, "/orders?status=ORDER_STATUS_PAID", "").unwrap();
        assert_eq!(json["status"], "ORDER_STATUS_PAID");
        let json = build(Method::GET, "/orders?status=2&unknown=ignored", "").unwrap();
        assert_eq!(json["status"], "ORDER_STATUS_PAID");
        let json = build(Method::GET, "/products/search?q=blue+widget", "").unwrap();
        assert_eq!(json["q"], "blue widget");
    }

    #[test]
    fn path_values_alone_are_set_as_the_json_path_would_set_them() {
        use prost::Message;
        let table = table();
        for path in ["/users/abc", "/products/prod-1", "/orders/0190-x", "/orders/user/u%201"] {
            let Lookup::Found { route, bindings } = table.lookup(&Method::GET, path) else { panic!("no route {path}") };
            let input = route.method.input();
            let direct = string_bindings_encoded(&input, &bindings).expect("path values alone, for string fields");
            let mut object = Map::new();
            for (field, raw) in &bindings {
                insert(&mut object, field, Json::String(raw.clone()), Join::Replace).unwrap();
            }
            let via_json = DynamicMessage::deserialize(input, Json::Object(object)).unwrap();
            assert_eq!(direct, via_json.encode_to_vec(), "{path}");
            let built = request_message(route, bindings.clone(), None, b"").unwrap();
            assert_eq!(built.encode_to_vec(), direct, "{path}");
            let mut framed = Frames::default();
            framed.push_encoded(&direct).unwrap();
            assert_eq!(request_frames(route, bindings, None, b"").unwrap(), framed.finish(), "{path}");
        }
        // With a query too, the query is read.
        let json = build(Method::GET, "/orders/user/u1?page_size=2", "").unwrap();
        assert_eq!((json["userId"].as_str(), json["pageSize"].as_i64()), (Some("u1"), Some(2)));
    }

    #[test]
    fn path_values_are_encoded_in_field_number_order_as_the_message_encodes_them() {
        use prost::Message;
        let pool = DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let input = pool.get_message_by_name("shop.users.v1.CreateUserRequest").unwrap();
        let binding = |name: &str, raw: &str| (vec![name.to_owned()], raw.to_owned());
        // `password` is optional: set, it is sent even empty.
        for bindings in [
            vec![binding("password", ""), binding("name", "b"), binding("email", "a")],
            vec![binding("name", ""), binding("email", "a")],
            vec![],
        ] {
            let mut message = DynamicMessage::new(input.clone());
            for (path, raw) in &bindings {
                message.set_field_by_name(&path[0], prost_reflect::Value::String(raw.clone()));
            }
            assert_eq!(string_bindings_encoded(&input, &bindings).unwrap(), message.encode_to_vec(), "{bindings:?}");
        }
        // One field twice is left to the general path.
        assert!(string_bindings_encoded(&input, &[binding("email", "a"), binding("email", "b")]).is_none());
    }

    #[test]
    fn a_body_of_texts_is_encoded_as_the_general_path_encodes_it_and_anything_else_goes_there() {
        use prost::Message;
        let table = table();
        let post = |path: &str| match table.lookup(&Method::POST, path) {
            Lookup::Found { route, .. } => route,
            _ => panic!("no route POST {path}"),
        };
        let (users, orders) = (post("/users"), post("/orders"));
        let texts = [
            (users, r#"{"email":"a@example.com","name":"A"}"#),
            // In another order, escaped, empty; `password` has presence.
            (users, r#" {"name":"A \"quoted\" \u00e9", "password":"", "email":""} "#),
            (users, "{}"),
            (orders, r#"{"user_id":"u","productId":"p"}"#),
        ];
        for (route, body) in texts {
            let straight = text_object_encoded(&route.method.input(), body.as_bytes()).expect(body);
            let general = request_message(route, vec![], None, body.as_bytes()).unwrap().encode_to_vec();
            assert_eq!(straight, general, "{body}");
            let mut framed = Frames::default();
            framed.push_encoded(&straight).unwrap();
            assert_eq!(request_frames(route, vec![], None, body.as_bytes()).unwrap(), framed.finish(), "{body}");
        }
        let refused_there = [
            (users, r#"{"email":"a","email":"b"}"#),
            (orders, r#"{"userId":"a","user_id":"b"}"#),
            (users, r#"{"email":5}"#),
            (users, r#"{"nickname":"x"}"#),
            (users, r#"{"email":"a"} x"#),
            (users, "[]"),
        ];
        for (route, body) in refused_there {
            assert!(text_object_encoded(&route.method.input(), body.as_bytes()).is_none(), "{body}");
            assert!(request_frames(route, vec![], None, body.as_bytes()).is_err(), "{body}");
        }
        // Built there: a null, a number, no body.
        for (route, body) in [(users, r#"{"email":null}"#), (orders, r#"{"quantity":2}"#), (users, "")] {
            assert!(text_object_encoded(&route.method.input(), body.as_bytes()).is_none(), "{body}");
            assert!(request_frames(route, vec![], None, body.as_bytes()).is_ok(), "{body}");
        }
        // A oneof's texts, where one at most may be set, go there too.
        let (kinds, _) = crate::test_support::kinds();
        assert!(text_object_encoded(&kinds, br#"{"word":"w"}"#).is_none());
        assert!(string_bindings_encoded(&kinds, &[(vec!["word".to_owned()], "w".to_owned())]).is_none());
    }

    #[test]
    fn a_refused_value_names_its_field_by_proto_names_for_the_bad_request_detail() {
        let field = |method: Method, path: &str, body: &str| {
            let refused = build(method, path, body).unwrap_err();
            refused.violation.map(|v| (v.field, v.description))
        };
        let (name, why) = field(Method::POST, "/orders", r#"{"userId": 5}"#).unwrap();
        assert_eq!(name, "user_id");
        assert!(why.starts_with("invalid string: "), "{why}");
        let items = r#"{"items": [{"quantity": 1}, {"productId": "p", "quantity": 3000000000}]}"#;
        assert_eq!(field(Method::POST, "/orders", items).unwrap().0, "items[1].quantity");
        let (name, why) = field(Method::GET, "/products?filter.inStock=maybe", "").unwrap();
        assert_eq!((name.as_str(), why.as_str()), ("filter.in_stock", r#""maybe" is not true or false"#));
        // No one field to blame: an unknown one, or a body that is not JSON.
        assert_eq!(field(Method::POST, "/orders", r#"{"nope": 1}"#), None);
        assert_eq!(field(Method::POST, "/orders", "{"), None);
        let refused = build(Method::POST, "/orders", r#"{"userId": 5}"#).unwrap_err();
        let detail = refused.detail().expect("a detail");
        assert_eq!(detail.field_violations[0].field, "user_id");
    }

    #[test]
    fn bad_values_name_the_field() {
        let error = build(Method::GET, "/products?page_size=ten", "").unwrap_err();
        assert!(error.message.contains("page_size") && error.message.contains("ten"), "{error}");
        let error = build(Method::GET, "/products?filter.in_stock=maybe", "").unwrap_err();
        assert!(error.message.contains("filter.in_stock"), "{error}");
        let error = build(Method::GET, "/orders?status=LOST", "").unwrap_err();
        assert!(error.message.contains("status") && error.message.contains("ORDER_STATUS_PAID"), "{error}");
        let error = build(Method::GET, "/products?page_size=1&page_size=2", "").unwrap_err();
        assert!(error.message.contains("page_size"), "{error}");
        let error = build(Method::POST, "/users", r#"{"email": 5}"#).unwrap_err();
        assert!(error.message.contains("invalid"), "{error}");
        let error = build(Method::POST, "/users", r#"{"emial": "x"}"#).unwrap_err();
        assert!(error.message.contains("emial"), "{error}");
        let error = build(Method::POST, "/users", r#"{"email": "#).unwrap_err();
        assert!(error.message.contains("malformed JSON"), "{error}");
        let error = build(Method::POST, "/users", "[1]").unwrap_err();
        assert!(error.message.contains("JSON object"), "{error}");
    }
}
