//! A unary answer written as REST JSON straight from its protobuf bytes,
//! without decoding it into a `DynamicMessage` first: the same bytes as
//! [`crate::response_json::response_json`] writes from the decoded
//! message, in one pass over the wire and one over the fields.
//!
//! Why: decoding built a map of the fields and a `String` for each text,
//! to be read once and dropped. Answering `scripts/bench-peers`' four-text
//! message, callgrind counts 96,700-97,200 -> 94,000 instructions per REST
//! GET and 113,600 -> 108,400 per POST (the difference of 2,000 and 4,000
//! requests).
//!
//! It writes what most answers are: scalars, texts, enums and messages of
//! those, each field given once (as every encoder writes them), any
//! field unset. Whatever else it leaves to the decoding path, by writing
//! nothing and saying so: a list, a map or a well-known type that is
//! present (their JSON forms are that path's), a message field given twice
//! (merged, not replaced), two fields of one oneof (the last one stays),
//! a group, and bytes that do not decode, which that path then refuses
//! with the decoder's own message. A field it does not know is skipped, as
//! the decoder keeps it and the writer leaves it out.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use prost::encoding::{WireType, decode_key, decode_varint};
use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value};

use crate::json_number;
use crate::response_json::{write_default, write_float, write_quoted, write_string};

/// How one message's fields are written: built once per route.
#[derive(Debug)]
pub struct Plan {
    /// In the order they are written: the descriptor's, field numbers'.
    fields: Vec<FieldPlan>,
    /// Field number -> index in `fields`, sorted by number.
    by_number: Vec<(u32, usize)>,
}

#[derive(Debug)]
struct FieldPlan {
    descriptor: FieldDescriptor,
    /// `"jsonName":`, escaped.
    key: Box<[u8]>,
    shape: Shape,
    /// Set on the wire is set (a message, a proto3 `optional`, a oneof's
    /// field, proto2's): otherwise a default on the wire is unset.
    presence: bool,
    /// The oneof it is in: such a field is written only when it is set.
    oneof: Option<usize>,
}

#[derive(Debug)]
enum Shape {
    Bool,
    Int32,
    Sint32,
    Sfixed32,
    Uint32,
    Fixed32,
    Int64,
    Sint64,
    Sfixed64,
    Uint64,
    Fixed64,
    Float,
    Double,
    String,
    Bytes,
    /// With the number of its default value.
    Enum(EnumDescriptor, i32),
    Message(Arc<Plan>),
    /// Written by the decoding path when it is present: a list, a map, a
    /// well-known type, a group, or a message inside itself.
    Other,
}

impl Plan {
    /// The plan for answers of `message`; none for a well-known type, whose
    /// JSON form is prost-reflect's.
    pub fn of(message: &MessageDescriptor) -> Option<Arc<Plan>> {
        if is_well_known(message) {
            return None;
        }
        Some(Self::build(message, &mut Building::default()))
    }

    fn build(message: &MessageDescriptor, building: &mut Building) -> Arc<Plan> {
        if let Some(built) = building.built.get(message.full_name()) {
            return built.clone();
        }
        building.within.push(message.full_name().to_owned());
        let fields: Vec<FieldPlan> = message
            .fields()
            .map(|field| {
                let mut key = Vec::new();
                write_string(&mut key, field.json_name());
                key.push(b':');
                FieldPlan {
                    key: key.into_boxed_slice(),
                    shape: Shape::of(&field, building),
                    presence: field.supports_presence(),
                    oneof: field
                        .containing_oneof()
                        .and_then(|oneof| message.oneofs().position(|o| o.name() == oneof.name())),
                    descriptor: field,
                }
            })
            .collect();
        building.within.pop();
        let mut by_number: Vec<(u32, usize)> =
            fields.iter().enumerate().map(|(index, field)| (field.descriptor.number(), index)).collect();
        by_number.sort_unstable();
        let plan = Arc::new(Plan { fields, by_number });
        building.built.insert(message.full_name().to_owned(), plan.clone());
        plan
    }
}

/// What building one answer's plan has got to.
#[derive(Default)]
struct Building {
    /// The messages the one being built is inside, by name, so that a
    /// message that holds itself has a field the decoding path writes, not
    /// a plan without end.
    within: Vec<String>,
    /// Each message's plan, built once: a message used by several fields
    /// (and theirs by several more) is one plan, not one per path to it.
    /// One built inside a message it holds has that field left to
    /// decoding wherever it is used, which decoding writes the same.
    built: HashMap<String, Arc<Plan>>,
}

impl Shape {
    fn of(field: &FieldDescriptor, building: &mut Building) -> Shape {
        if field.is_list() || field.is_map() || field.is_group() {
            return Shape::Other;
        }
        match field.kind() {
            Kind::Bool => Shape::Bool,
            Kind::Int32 => Shape::Int32,
            Kind::Sint32 => Shape::Sint32,
            Kind::Sfixed32 => Shape::Sfixed32,
            Kind::Uint32 => Shape::Uint32,
            Kind::Fixed32 => Shape::Fixed32,
            Kind::Int64 => Shape::Int64,
            Kind::Sint64 => Shape::Sint64,
            Kind::Sfixed64 => Shape::Sfixed64,
            Kind::Uint64 => Shape::Uint64,
            Kind::Fixed64 => Shape::Fixed64,
            Kind::Float => Shape::Float,
            Kind::Double => Shape::Double,
            Kind::String => Shape::String,
            Kind::Bytes => Shape::Bytes,
            Kind::Enum(enumeration) => {
                let default = match field.default_value() {
                    Value::EnumNumber(number) => number,
                    _ => enumeration.default_value().number(),
                };
                Shape::Enum(enumeration, default)
            }
            Kind::Message(inner)
                if is_well_known(&inner) || building.within.iter().any(|name| name == inner.full_name()) =>
            {
                Shape::Other
            }
            Kind::Message(inner) => Shape::Message(Plan::build(&inner, building)),
        }
    }

    /// The wire type its values come in; none for what only decoding writes.
    fn wire_type(&self) -> Option<WireType> {
        Some(match self {
            Shape::Bool
            | Shape::Int32
            | Shape::Sint32
            | Shape::Uint32
            | Shape::Int64
            | Shape::Sint64
            | Shape::Uint64
            | Shape::Enum(..) => WireType::Varint,
            Shape::Fixed64 | Shape::Sfixed64 | Shape::Double => WireType::SixtyFourBit,
            Shape::String | Shape::Bytes | Shape::Message(_) => WireType::LengthDelimited,
            Shape::Fixed32 | Shape::Sfixed32 | Shape::Float => WireType::ThirtyTwoBit,
            Shape::Other => return None,
        })
    }
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.full_name().starts_with("google.protobuf.")
}

/// A field's value as it came: a number's bits, or a slice of the bytes
/// (checked UTF-8 for a text field).
#[derive(Clone, Copy)]
enum Raw<'a> {
    Number(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
}

/// Writes the message `wire`, an answer of `plan`'s message, to `out` as
/// JSON; writes nothing and answers `false` when it is one to decode.
pub fn write(plan: &Plan, wire: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let written = write_message(plan, wire, out).is_some();
    if !written {
        out.truncate(start);
    }
    written
}

fn write_message(plan: &Plan, mut wire: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut values: Vec<Option<Raw>> = vec![None; plan.fields.len()];
    while !wire.is_empty() {
        // Read by prost's own decoder: what it refuses, this leaves to it.
        let (number, wire_type) = decode_key(&mut wire).ok()?;
        let raw = match wire_type {
            WireType::Varint => Raw::Number(decode_varint(&mut wire).ok()?),
            WireType::SixtyFourBit => Raw::Number(u64::from_le_bytes(take(&mut wire, 8)?.try_into().ok()?)),
            WireType::LengthDelimited => {
                let length = usize::try_from(decode_varint(&mut wire).ok()?).ok()?;
                Raw::Bytes(take(&mut wire, length)?)
            }
            WireType::ThirtyTwoBit => Raw::Number(u32::from_le_bytes(take(&mut wire, 4)?.try_into().ok()?).into()),
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        let Ok(at) = plan.by_number.binary_search_by_key(&number, |&(number, _)| number) else {
            continue;
        };
        let index = plan.by_number[at].1;
        let field = &plan.fields[index];
        if field.shape.wire_type() != Some(wire_type) {
            return None;
        }
        let raw = match (&field.shape, raw) {
            (Shape::Message(_), _) if values[index].is_some() => return None,
            // Checked as the decoder checks it: every time it comes.
            (Shape::String, Raw::Bytes(text)) => Raw::Text(std::str::from_utf8(text).ok()?),
            _ => raw,
        };
        if let Some(oneof) = field.oneof {
            let other_set = |(other, value): (&FieldPlan, &Option<Raw>)| {
                other.oneof == Some(oneof) && value.is_some() && other.descriptor.number() != number
            };
            if plan.fields.iter().zip(&values).any(other_set) {
                return None;
            }
        }
        values[index] = Some(raw);
    }

    out.push(b'{');
    let mut first = true;
    for (field, value) in plan.fields.iter().zip(values) {
        if field.oneof.is_some() && value.is_none() {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(&field.key);
        match value {
            Some(raw) => write_value(field, raw, out)?,
            None => write_default(out, &field.descriptor),
        }
    }
    out.push(b'}');
    Some(())
}

/// A field given on the wire. One without presence holding its default is
/// unset, as the decoder has it, and written as its default.
fn write_value(field: &FieldPlan, raw: Raw, out: &mut Vec<u8>) -> Option<()> {
    let set = |is_default: bool| field.presence || !is_default;
    // Integers are cut to their width as prost reads them (`as i32`).
    match (&field.shape, raw) {
        (Shape::Bool, Raw::Number(n)) if set(n == 0) => out.extend_from_slice(if n != 0 { b"true" } else { b"false" }),
        (Shape::Int32 | Shape::Sfixed32, Raw::Number(n)) if set(n as i32 == 0) => write_integer(out, n as i32),
        (Shape::Sint32, Raw::Number(n)) if set(n as u32 == 0) => write_integer(out, zigzag32(n as u32)),
        (Shape::Uint32 | Shape::Fixed32, Raw::Number(n)) if set(n as u32 == 0) => write_integer(out, n as u32),
        // 64-bit integers are strings in proto3 JSON.
        (Shape::Int64 | Shape::Sfixed64, Raw::Number(n)) if set(n == 0) => {
            write_quoted(out, itoa::Buffer::new().format(n as i64))
        }
        (Shape::Sint64, Raw::Number(n)) if set(n == 0) => write_quoted(out, itoa::Buffer::new().format(zigzag64(n))),
        (Shape::Uint64 | Shape::Fixed64, Raw::Number(n)) if set(n == 0) => {
            write_quoted(out, itoa::Buffer::new().format(n))
        }
        (Shape::Float, Raw::Number(bits)) if set(f32::from_bits(bits as u32) == 0.0) => {
            write_float(out, f32::from_bits(bits as u32), json_number::write_f32)
        }
        (Shape::Double, Raw::Number(bits)) if set(f64::from_bits(bits) == 0.0) => {
            write_float(out, f64::from_bits(bits), json_number::write_f64)
        }
        (Shape::String, Raw::Text(text)) if set(text.is_empty()) => write_string(out, text),
        (Shape::Bytes, Raw::Bytes(bytes)) if set(bytes.is_empty()) => {
            out.push(b'"');
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(bytes).as_bytes());
            out.push(b'"');
        }
        (Shape::Enum(enumeration, default), Raw::Number(n)) if set(n as i32 == *default) => {
            match enumeration.get_value(n as i32) {
                Some(known) => write_string(out, known.name()),
                None => write_integer(out, n as i32),
            }
        }
        (Shape::Message(plan), Raw::Bytes(inner)) => write_message(plan, inner, out)?,
        (Shape::Other, _) => return None,
        // A default where there is no presence.
        _ => write_default(out, &field.descriptor),
    }
    Some(())
}

fn write_integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn zigzag32(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

fn zigzag64(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn take<'a>(wire: &mut &'a [u8], length: usize) -> Option<&'a [u8]> {
    let (taken, rest) = wire.split_at_checked(length)?;
    *wire = rest;
    Some(taken)
}
