//! A response message as REST JSON, written in one pass: the proto3 JSON
//! mapping with every unpopulated field emitted, as grpc-gateway v2's
//! default marshaler writes it, and every field in field-number order
//! whether it is set or not.
//!
//! Numbers are protojson's too ([`crate::json_number`]: `10`, not `10.0`).
//!
//! The same JSON value as [`crate::transcode::to_json`] gives (whose keys
//! come in another order: the unset fields after the set ones, and whose
//! `float` fields are widened to doubles), without building it. Answers
//! were written from such a value, or, when every field was set, by
//! prost-reflect's serializer after a walk to check that they were. In one pass: 108,000-108,100 -> 106,100-106,300 instructions
//! per REST GET, 122,700 -> 121,400 per POST (callgrind, 2,000 requests);
//! an answer with a field unset, such as a product with no description,
//! no longer builds the value at all.

use base64::Engine;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, SerializeOptions, Value};

use crate::json_number;
use crate::routes::Route;

/// The HTTP body of `route`'s unary answer, `encoded` as it came: written
/// straight from the wire when it can be ([`crate::wire_json`]), else
/// decoded and written as [`response_json`] writes it.
pub fn answer_json(route: &Route, encoded: bytes::Bytes) -> Result<Vec<u8>, prost::DecodeError> {
    if let Some(plan) = &route.response_plan {
        let mut body = Vec::with_capacity(256);
        if crate::wire_json::write(plan, &encoded, &mut body) {
            return Ok(body);
        }
    }
    Ok(response_json(route, &DynamicMessage::decode(route.method.output(), encoded)?))
}

/// The HTTP body of `route`'s answer `message`.
pub fn response_json(route: &Route, message: &DynamicMessage) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    match &route.response_body {
        None => write_message(&mut body, message),
        // `response_body`: that field is the whole body (null when it is
        // a oneof's, unset).
        Some(name) => match message.descriptor().get_field_by_name(name) {
            Some(field) if field.containing_oneof().is_none() || message.has_field(&field) => {
                write_field(&mut body, message, &field)
            }
            _ => body.extend_from_slice(b"null"),
        },
    }
    body
}

fn write_message(out: &mut Vec<u8>, message: &DynamicMessage) {
    let descriptor = message.descriptor();
    if descriptor.full_name().starts_with("google.protobuf.") {
        // A well-known type has a JSON form of its own (a Timestamp is a
        // string, a Struct any object): prost-reflect's. One its form cannot
        // show (a Timestamp after the year 9999) is null, not the whole
        // answer as it was.
        let start = out.len();
        let mut serializer = serde_json::Serializer::with_formatter(&mut *out, json_number::ProtoJsonNumbers);
        if message.serialize_with_options(&mut serializer, &SerializeOptions::new()).is_err() {
            out.truncate(start);
            out.extend_from_slice(b"null");
        }
        return;
    }
    out.push(b'{');
    let mut first = true;
    for field in descriptor.fields() {
        // A field of a oneof (a proto3 `optional` one too) is absent when unset.
        if field.containing_oneof().is_some() && !message.has_field(&field) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_string(out, field.json_name());
        out.push(b':');
        write_field(out, message, &field);
    }
    out.push(b'}');
}

/// The value of `field` in `message`, its default when it is unset.
fn write_field(out: &mut Vec<u8>, message: &DynamicMessage, field: &FieldDescriptor) {
    if !message.has_field(field) {
        write_default(out, field);
        return;
    }
    write_value(out, &message.get_field(field), &field.kind());
}

/// What an unset `field` is written as.
pub(crate) fn write_default(out: &mut Vec<u8>, field: &FieldDescriptor) {
    out.extend_from_slice(match field.kind() {
        _ if field.is_map() => b"{}",
        _ if field.is_list() => b"[]",
        Kind::Message(_) => b"null",
        Kind::Bool => b"false",
        Kind::String | Kind::Bytes => b"\"\"",
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => b"\"0\"",
        Kind::Enum(enumeration) => {
            write_string(out, enumeration.default_value().name());
            return;
        }
        _ => b"0",
    });
}

fn write_value(out: &mut Vec<u8>, value: &Value, kind: &Kind) {
    match value {
        Value::Bool(value) => out.extend_from_slice(if *value { b"true" } else { b"false" }),
        Value::I32(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::U32(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        // 64-bit integers are strings in proto3 JSON.
        Value::I64(n) => write_quoted(out, itoa::Buffer::new().format(*n)),
        Value::U64(n) => write_quoted(out, itoa::Buffer::new().format(*n)),
        Value::F32(x) => write_float(out, *x, json_number::write_f32),
        Value::F64(x) => write_float(out, *x, json_number::write_f64),
        Value::String(text) => write_string(out, text),
        Value::Bytes(bytes) => {
            out.push(b'"');
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(bytes).as_bytes());
            out.push(b'"');
        }
        Value::EnumNumber(number) => match kind.as_enum().and_then(|enumeration| enumeration.get_value(*number)) {
            Some(known) => write_string(out, known.name()),
            None => out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes()),
        },
        Value::Message(message) => write_message(out, message),
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, kind);
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => kind.clone(),
            };
            // In key order: a map has none of its own, and the same answer
            // should read the same every time.
            let mut entries: Vec<(&MapKey, &Value)> = entries.iter().collect();
            entries.sort_by_key(|(key, _)| *key);
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match key {
                    MapKey::String(text) => write_string(out, text),
                    MapKey::Bool(value) => write_quoted(out, if *value { "true" } else { "false" }),
                    MapKey::I32(n) => write_quoted(out, itoa::Buffer::new().format(*n)),
                    MapKey::I64(n) => write_quoted(out, itoa::Buffer::new().format(*n)),
                    MapKey::U32(n) => write_quoted(out, itoa::Buffer::new().format(*n)),
                    MapKey::U64(n) => write_quoted(out, itoa::Buffer::new().format(*n)),
                }
                out.push(b':');
                write_value(out, value, &value_kind);
            }
            out.push(b'}');
        }
    }
}

/// A float or double as protojson writes it, and the three that JSON has
/// no number for as proto3 JSON's strings.
pub(crate) fn write_float<F>(out: &mut Vec<u8>, x: F, finite: fn(&mut Vec<u8>, F) -> std::io::Result<()>)
where
    F: Copy + Into<f64>,
{
    let wide: f64 = x.into();
    if wide.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if wide.is_infinite() {
        out.extend_from_slice(if wide > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    } else {
        finite(out, x).expect("writing to a Vec does not fail");
    }
}

pub(crate) fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("a string writes");
}

/// Text that needs no escaping (digits, `true`), in quotes.
pub(crate) fn write_quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::RouteTable;
    use crate::test_support::kinds;
    use crate::transcode::to_json;
    use prost::Message as _;
    use prost_reflect::{DescriptorPool, MessageDescriptor};
    use serde_json::Value as Json;

    /// `descriptor`'s message with fields set to something other than their
    /// default, `depth` messages deep: every field, or every other one
    /// (`every` 2). Of a oneof, the last field set stays.
    fn populated(descriptor: &MessageDescriptor, depth: usize, every: usize) -> DynamicMessage {
        fn item(kind: &Kind, depth: usize, every: usize) -> Value {
            match kind {
                Kind::String => Value::String("a \"quoted\" é".to_owned()),
                Kind::Bytes => Value::Bytes(bytes::Bytes::from_static(&[0, 1, 250])),
                Kind::Bool => Value::Bool(true),
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-7),
                Kind::Uint32 | Kind::Fixed32 => Value::U32(7),
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(-9_007_199_254_740_993),
                Kind::Uint64 | Kind::Fixed64 => Value::U64(u64::MAX),
                // A float the value path's widening leaves as it is.
                Kind::Float => Value::F32(0.5),
                Kind::Double => Value::F64(29.99),
                Kind::Enum(enumeration) => Value::EnumNumber(enumeration.values().last().map_or(1, |v| v.number())),
                // Within the range their JSON forms can show.
                Kind::Message(time)
                    if ["Timestamp", "Duration"]
                        .map(|t| format!("google.protobuf.{t}"))
                        .contains(&time.full_name().to_owned()) =>
                {
                    let mut time = DynamicMessage::new(time.clone());
                    time.set_field_by_name("seconds", Value::I64(1_700_000_000));
                    time.set_field_by_name("nanos", Value::I32(5_000_000));
                    Value::Message(time)
                }
                Kind::Message(inner) if depth > 0 => Value::Message(populated(inner, depth - 1, every)),
                Kind::Message(inner) => Value::Message(DynamicMessage::new(inner.clone())),
            }
        }
        let mut message = DynamicMessage::new(descriptor.clone());
        for (index, field) in descriptor.fields().enumerate() {
            if index % every != 0 {
                continue;
            }
            let value = match field.kind() {
                Kind::Message(entry) if field.is_map() => {
                    let keys = match entry.map_entry_key_field().kind() {
                        Kind::String => vec![MapKey::String("b".to_owned()), MapKey::String("a \"q\"".to_owned())],
                        Kind::Bool => vec![MapKey::Bool(true), MapKey::Bool(false)],
                        _ => vec![MapKey::I64(10), MapKey::I64(-2)],
                    };
                    let value_kind = entry.map_entry_value_field().kind();
                    Value::Map(keys.into_iter().map(|key| (key, item(&value_kind, depth, every))).collect())
                }
                kind if field.is_list() => Value::List(vec![item(&kind, depth, every), item(&kind, depth, every)]),
                kind => item(&kind, depth, every),
            };
            message.set_field(&field, value);
        }
        message
    }

    /// What the value path answers: `to_json`, or its `response_body` field.
    fn by_value(route: &Route, message: &DynamicMessage) -> Json {
        let json = to_json(message);
        match &route.response_body {
            None => json,
            Some(name) => {
                let key = message.descriptor().get_field_by_name(name).unwrap().json_name().to_owned();
                json.get(&key).cloned().unwrap_or(Json::Null)
            }
        }
    }

    fn written(route: &Route, message: &DynamicMessage) -> Json {
        serde_json::from_slice(&response_json(route, message)).expect("the answer is JSON")
    }

    #[test]
    fn every_answer_of_the_contract_is_the_json_value_of_its_message() {
        let table = RouteTable::from_pool(&DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap()).unwrap();
        for route in table.routes() {
            let output = route.method.output();
            let context = format!("{} from {}", output.full_name(), route.names.span);
            for message in [populated(&output, 3, 1), populated(&output, 0, 1)] {
                // Every field set: the same bytes, keys in the same order.
                let by_value = json_number::to_vec(&by_value(route, &message)).unwrap();
                let written = response_json(route, &message);
                assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&by_value), "{context}");
            }
            for message in [populated(&output, 3, 2), DynamicMessage::new(output.clone())] {
                assert_eq!(written(route, &message), by_value(route, &message), "{context}");
            }
        }
    }

    fn answering<'a>(routes: &'a RouteTable, path: &str) -> &'a Route {
        routes.routes().iter().find(|route| route.names.span.ends_with(path)).expect("a route")
    }

    #[test]
    fn every_kind_of_field_is_written_as_the_json_value_has_it() {
        let (kinds, routes) = kinds();
        let route = answering(&routes, " /kinds");
        let messages = [populated(&kinds, 2, 1), populated(&kinds, 2, 2), populated(&kinds, 0, 3)];
        for message in messages.into_iter().chain([DynamicMessage::new(kinds.clone())]) {
            assert_eq!(written(route, &message), by_value(route, &message));
        }
        // What JSON has no number for, an enum number the contract does not
        // name, and a map in key order.
        let mut message = DynamicMessage::new(kinds.clone());
        message.set_field_by_name("score", Value::F64(f64::NAN));
        let infinities = vec![Value::F32(f32::INFINITY), Value::F32(f32::NEG_INFINITY)];
        message.set_field_by_name("ratios", Value::List(infinities));
        message.set_field_by_name("level", Value::EnumNumber(7));
        let by_flag = [(MapKey::Bool(true), "t"), (MapKey::Bool(false), "f")];
        let by_flag = by_flag.into_iter().map(|(key, text)| (key, Value::String(text.to_owned())));
        message.set_field_by_name("by_flag", Value::Map(by_flag.collect()));
        assert_eq!(written(route, &message), by_value(route, &message));
        let text = String::from_utf8(response_json(route, &message)).unwrap();
        assert!(text.contains(r#""score":"NaN""#), "{text}");
        assert!(text.contains(r#""ratios":["Infinity","-Infinity"]"#), "{text}");
        assert!(text.contains(r#""level":7"#), "{text}");
        assert!(text.contains(r#""byFlag":{"false":"f","true":"t"}"#), "{text}");

        // Numbers as protojson writes them: a float in its own width's
        // shortest digits, a whole double without a fraction.
        message.set_field_by_name("ratio", Value::F32(0.1));
        message.set_field_by_name("score", Value::F64(10.0));
        message.set_field_by_name("ratios", Value::List(vec![Value::F32(1e-7), Value::F32(2.5)]));
        let text = String::from_utf8(response_json(route, &message)).unwrap();
        assert!(text.starts_with(r#"{"ratio":0.1,"score":10,"#), "{text}");
        assert!(text.contains(r#""ratios":[1e-7,2.5]"#), "{text}");
    }

    #[test]
    fn a_time_its_json_cannot_show_is_null_and_the_rest_is_written() {
        let (kinds, routes) = kinds();
        let mut message = populated(&kinds, 1, 1);
        let at = kinds.get_field_by_name("at").unwrap();
        let mut never = DynamicMessage::new(at.kind().as_message().unwrap().clone());
        never.set_field_by_name("seconds", Value::I64(i64::MAX));
        message.set_field(&at, Value::Message(never));
        let answer = written(answering(&routes, " /kinds"), &message);
        assert_eq!(answer["at"], Json::Null);
        assert_eq!(answer["inner"]["count"], "-9007199254740993");
    }

    #[test]
    fn keys_come_in_field_number_order_set_or_not() {
        let (kinds, routes) = kinds();
        let message = populated(&kinds, 1, 2);
        let text = String::from_utf8(response_json(answering(&routes, " /kinds"), &message)).unwrap();
        let positions: Vec<usize> = kinds
            .fields()
            .filter(|field| field.containing_oneof().is_none() || message.has_field(field))
            .map(|field| text.find(&format!("\"{}\":", field.json_name())).expect("every field is written"))
            .collect();
        assert!(positions.is_sorted(), "{text}");
    }

    #[test]
    fn a_response_body_field_is_the_whole_answer() {
        let (kinds, routes) = kinds();
        for field in ["inner", "inners", "by_name", "word", "maybe", "score", "at"] {
            let route = answering(&routes, &format!(" /kinds/{field}"));
            assert_eq!(route.response_body.as_deref(), Some(field));
            for message in [populated(&kinds, 1, 1), populated(&kinds, 1, 2), DynamicMessage::new(kinds.clone())] {
                assert_eq!(written(route, &message), by_value(route, &message), "{field}");
            }
        }
    }

    /// What the decoding path answers for `encoded`, or its error.
    fn decoded(route: &Route, encoded: &[u8]) -> Result<Vec<u8>, prost::DecodeError> {
        Ok(response_json(route, &DynamicMessage::decode(route.method.output(), encoded)?))
    }

    /// Whether `encoded` is written straight from the wire.
    fn from_wire(route: &Route, encoded: &[u8]) -> bool {
        let plan = route.response_plan.as_ref().expect("the route has a plan");
        let mut out = b"kept".to_vec();
        let written = crate::wire_json::write(plan, encoded, &mut out);
        assert!(written || out == b"kept", "a message left to decode writes nothing");
        written
    }

    fn assert_answers_alike(route: &Route, encoded: &[u8]) {
        let by_wire = answer_json(route, bytes::Bytes::copy_from_slice(encoded)).map(String::from_utf8);
        let by_decoding = decoded(route, encoded).map(String::from_utf8);
        assert_eq!(format!("{by_wire:?}"), format!("{by_decoding:?}"), "{encoded:?}");
    }

    /// `message` without the fields the wire path leaves to decoding.
    fn without_lists_maps_and_well_known(mut message: DynamicMessage) -> DynamicMessage {
        for field in message.descriptor().fields() {
            let well_known = field.kind().as_message().is_some_and(|m| m.full_name().starts_with("google.protobuf."));
            if field.is_list() || field.is_map() || well_known {
                message.clear_field(&field);
            }
        }
        message
    }

    #[test]
    fn an_answer_written_from_the_wire_is_the_decoded_answer_byte_for_byte() {
        let contract = RouteTable::from_pool(&DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap()).unwrap();
        let (_, kinds) = kinds();
        let mut planned = 0;
        for route in contract.routes().iter().chain(kinds.routes()) {
            let output = route.method.output();
            let may_decode = [populated(&output, 3, 1), populated(&output, 3, 2), populated(&output, 0, 3)];
            for message in may_decode {
                assert_answers_alike(route, &message.encode_to_vec());
            }
            // Every field set, or none; messages inside empty.
            let single =
                [without_lists_maps_and_well_known(populated(&output, 0, 1)), DynamicMessage::new(output.clone())];
            for message in single {
                let encoded = message.encode_to_vec();
                assert_answers_alike(route, &encoded);
                if route.response_plan.is_some() {
                    assert!(from_wire(route, &encoded), "{} from {}", output.full_name(), route.names.span);
                }
            }
            let whole_message = route.response_body.is_none() && !output.full_name().starts_with("google.protobuf.");
            assert_eq!(route.response_plan.is_some(), whole_message, "{}", route.names.span);
            planned += usize::from(whole_message);
        }
        assert!(planned > 0);
    }

    #[test]
    fn the_wire_path_writes_single_fields_and_leaves_lists_maps_and_times_to_decoding() {
        let (kinds, routes) = kinds();
        let route = answering(&routes, " /kinds");
        // Messages inside set too, but for the tree's child: a `Tree` in a `Tree`.
        let mut scalars = without_lists_maps_and_well_known(populated(&kinds, 2, 1));
        let mut tree = scalars.get_field_by_name("tree").unwrap().as_message().unwrap().clone();
        tree.clear_field_by_name("child");
        scalars.set_field_by_name("tree", Value::Message(tree));
        assert!(from_wire(route, &scalars.encode_to_vec()));
        assert_answers_alike(route, &scalars.encode_to_vec());
        assert!(from_wire(route, &[]), "an empty answer is every field's default");
        // Present, these are written by decoding; so is a message inside itself (the tree's child).
        for field in ["ratios", "by_name", "at", "inners", "tree"] {
            let mut message = scalars.clone();
            let full = populated(&kinds, 1, 1);
            message.set_field_by_name(field, full.get_field_by_name(field).unwrap().into_owned());
            assert!(!from_wire(route, &message.encode_to_vec()), "{field}");
        }
        // A response_body route has no plan: its field is written from the decoded message.
        assert!(answering(&routes, " /kinds/inner").response_plan.is_none());
    }

    /// Writes one field's encoding.
    type Field<'a> = &'a dyn Fn(&mut Vec<u8>);

    /// `fields` encoded one after another: a wire no encoder of one message writes.
    fn wire(fields: &[Field]) -> Vec<u8> {
        let mut out = Vec::new();
        fields.iter().for_each(|field| field(&mut out));
        out
    }

    #[test]
    fn what_the_decoder_makes_of_an_unusual_wire_the_wire_path_writes_too() {
        use prost::encoding;
        let (kinds, routes) = kinds();
        let route = answering(&routes, " /kinds");
        let message = |set: &dyn Fn(&mut DynamicMessage)| {
            let mut message = DynamicMessage::new(kinds.clone());
            set(&mut message);
            message.encode_to_vec()
        };
        let inner = kinds.get_field_by_name("inner").unwrap().kind().as_message().unwrap().clone();
        let inner_with = |name: &str, value: Value| {
            let mut inner = DynamicMessage::new(inner.clone());
            inner.set_field_by_name(name, value);
            Value::Message(inner)
        };
        let word = message(&|m| m.set_field_by_name("word", Value::String("w".into())));
        let nested = message(&|m| m.set_field_by_name("nested", inner_with("text", Value::String("n".into()))));
        let text_a = message(&|m| m.set_field_by_name("inner", inner_with("text", Value::String("a".into()))));
        let count_2 = message(&|m| m.set_field_by_name("inner", inner_with("count", Value::I64(2))));

        // A field given twice: the last one stays.
        let twice =
            wire(&[&|b| encoding::bytes::encode(3, &vec![1u8], b), &|b| encoding::bytes::encode(3, &vec![2u8], b)]);
        assert!(from_wire(route, &twice));
        assert_answers_alike(route, &twice);
        // Defaults given on the wire are unset where there is no presence,
        // -0.0 too; set where there is (`maybe`).
        let defaults = wire(&[
            &|b| encoding::float::encode(1, &-0.0, b),
            &|b| encoding::int32::encode(4, &0, b),
            &|b| encoding::uint64::encode(15, &0, b),
            &|b| encoding::int32::encode(11, &0, b),
            &|b| encoding::int32::encode(21, &-5, b),
        ]);
        assert!(from_wire(route, &defaults));
        assert_answers_alike(route, &defaults);
        // A field the contract does not name is skipped.
        let unknown =
            wire(&[&|b| encoding::uint64::encode(99, &7, b), &|b| encoding::string::encode(98, &"x".into(), b)]);
        assert!(from_wire(route, &unknown));
        assert_answers_alike(route, &unknown);

        // Left to decoding: a message given twice is merged, and of a oneof the last field stays.
        for (left, what) in [([&text_a, &count_2], "merged"), ([&word, &nested], "oneof"), ([&nested, &word], "oneof")]
        {
            let encoded = [left[0].as_slice(), left[1].as_slice()].concat();
            assert!(!from_wire(route, &encoded), "{what}");
            assert_answers_alike(route, &encoded);
        }

        // Refused as the decoder refuses them: text that is not UTF-8 (even
        // given before the text that stays), a wrong wire type, bytes cut short.
        let not_utf8 = |b: &mut Vec<u8>| encoding::bytes::encode(9, &vec![0xff, 0xfe], b);
        let malformed = [
            wire(&[&not_utf8]),
            wire(&[&not_utf8, &|b| encoding::string::encode(9, &"w".into(), b)]),
            wire(&[&|b| encoding::int32::encode(9, &1, b)]),
            word[..word.len() - 1].to_vec(),
            vec![0x08],
            // A key past 32 bits (2^32 + 8: field 2^29 + 1, a varint), then its value.
            vec![0x88, 0x80, 0x80, 0x80, 0x10, 0x01],
        ];
        for encoded in malformed {
            assert!(answer_json(route, bytes::Bytes::from(encoded.clone())).is_err(), "{encoded:?}");
            assert_answers_alike(route, &encoded);
        }
    }
}
