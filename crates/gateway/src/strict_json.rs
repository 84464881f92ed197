//! JSON request bodies read as protojson reads them for grpc-gateway: an
//! object that names a key twice is refused (`duplicate field "quantity"`),
//! and so is one that names a field twice by its two names (`user_id` and
//! `userId`), where serde_json's `Value`, and prost-reflect reading a
//! stream, keep the last one silently: `{"quantity": 1, "quantity": 2}`
//! would order two.

use prost_reflect::{Kind, MessageDescriptor};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

/// Parses `body`, one JSON value and nothing after it, refusing a key
/// given twice in any object.
pub fn parse(body: &[u8]) -> Result<Json, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Strict.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Reads `body` as a stream of JSON values, each as [`parse`] reads one,
/// with whitespace (a newline, as in NDJSON) or nothing between them: a
/// client stream's messages over REST, as grpc-gateway's JSON decoder
/// reads them. An empty body is a stream of none.
///
/// Gives how many values there are and the values, parsed one at a time
/// as they are asked for. The body is read through once first, each value
/// dropped as soon as it is checked, so that a malformed body is refused
/// before any value is used, and the values are never all held at once
/// (1 MiB of `{}` is 350,000 of them: see `transcode::request_frames`).
pub fn parse_sequence(
    body: &[u8],
) -> Result<(usize, impl Iterator<Item = Result<Json, serde_json::Error>> + '_), serde_json::Error> {
    let values = || serde_json::Deserializer::from_slice(body).into_iter::<StrictJson>();
    let count = values().try_fold(0, |count, value| value.map(|_| count + 1))?;
    Ok((count, values().map(|value| value.map(|v| v.0))))
}

/// A value read by [`Strict`], for serde_json's stream of values.
struct StrictJson(Json);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Strict.deserialize(deserializer).map(StrictJson)
    }
}

/// Refuses a field of `message` that `object` gives twice, by its JSON
/// name and by its proto name, there or in any message inside it. A key
/// that names no field is left to the deserializer, which refuses it; a
/// well-known type's JSON form (a `Struct`'s keys are anyone's) is not
/// looked into. One field lookup per key, as the deserializer makes:
/// 122,100-122,400 -> 122,700 instructions per REST POST of two fields
/// (callgrind, 2,000 requests; 123,300 with a list of the fields seen).
pub fn one_name_per_field(object: &Map<String, Json>, message: &MessageDescriptor) -> Result<(), String> {
    if message.full_name().starts_with("google.protobuf.") {
        return Ok(());
    }
    for (key, value) in object {
        // Two keys are one field only as its JSON name and its proto name.
        let field = match message.get_field_by_json_name(key) {
            Some(field) => field,
            None => {
                let Some(field) = message.get_field_by_name(key) else { continue };
                if object.contains_key(field.json_name()) {
                    return Err(format!("duplicate field \"{key}\" (also given as \"{}\")", field.json_name()));
                }
                field
            }
        };
        let Kind::Message(inner) = field.kind() else { continue };
        let inner = if field.is_map() {
            match inner.map_entry_value_field().kind() {
                Kind::Message(value_type) => value_type,
                _ => continue,
            }
        } else {
            inner
        };
        let nested: Vec<&Json> = match value {
            Json::Object(entries) if field.is_map() => entries.values().collect(),
            Json::Array(items) if field.is_list() => items.iter().collect(),
            other => vec![other],
        };
        for item in nested {
            if let Json::Object(item) = item {
                one_name_per_field(item, &inner)?;
            }
        }
    }
    Ok(())
}

/// Builds a `Value` as serde_json's own visitor does, but for the check.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Json;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        // serde_json reads no NaN or infinity, the only floats without a number.
        Ok(serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Json, A::Error> {
        let mut array = Vec::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(item) = items.next_element_seed(Strict)? {
            array.push(item);
        }
        Ok(Json::Array(array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Json, A::Error> {
        let mut object = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            match object.entry(key) {
                serde_json::map::Entry::Occupied(entry) => {
                    return Err(A::Error::custom(format!("duplicate field \"{}\"", entry.key())));
                }
                serde_json::map::Entry::Vacant(entry) => {
                    entry.insert(entries.next_value_seed(Strict)?);
                }
            }
        }
        Ok(Json::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let body = br#"{"a": [1, -2, 3.5, 18446744073709551615, "x", true, null, {}], "b": {"c": "\u00e9"}}"#;
        assert_eq!(parse(body).unwrap(), serde_json::from_slice::<Json>(body).unwrap());
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        let error = parse(br#"{"quantity": 1, "quantity": 2}"#).unwrap_err();
        assert!(error.to_string().starts_with("duplicate field \"quantity\""), "{error}");
        let error = parse(br#"{"items": [{"id": "a"}, {"id": "b", "id": "c"}]}"#).unwrap_err();
        assert!(error.to_string().starts_with("duplicate field \"id\""), "{error}");
        assert!(parse(br#"{"id": "a", "other": {"id": "b"}}"#).is_ok(), "the same key in two objects");
    }

    #[test]
    fn a_field_named_by_both_its_names_is_refused_at_any_depth() {
        let pool = prost_reflect::DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let order = pool.get_message_by_name("shop.orders.v1.CreateOrderRequest").unwrap();
        let check = |body: &str| match parse(body.as_bytes()).unwrap() {
            Json::Object(object) => one_name_per_field(&object, &order),
            _ => unreachable!(),
        };
        assert_eq!(
            check(r#"{"user_id": "a", "userId": "b"}"#).unwrap_err(),
            r#"duplicate field "user_id" (also given as "userId")"#
        );
        let nested = r#"{"items": [{"productId": "a"}, {"product_id": "a", "productId": "b"}]}"#;
        assert!(check(nested).unwrap_err().starts_with("duplicate field "), "in a message in a list");
        assert!(check(r#"{"userId": "a", "productId": "b", "items": [{"productId": "c"}]}"#).is_ok());
        assert!(check(r#"{"userId": "a", "nope": 1, "items": 5}"#).is_ok(), "left to the deserializer");
    }

    #[test]
    fn a_sequence_is_values_one_after_another_each_read_strictly() {
        let (count, values) = parse_sequence(b"{\"id\": \"a\"}\n{\"id\": \"b\"}{\"id\": \"c\"}  \r\n").unwrap();
        let ids: Vec<String> = values.map(|v| v.unwrap()["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(count, 3);
        let (count, mut values) = parse_sequence(b" \n").unwrap();
        assert_eq!((count, values.next().is_none()), (0, true), "an empty body is a stream of none");
        assert!(parse_sequence(br#"{"id": "a"}, {"id": "b"}"#).is_err(), "not a list: nothing between but whitespace");
        let Err(error) = parse_sequence(br#"{"id": "a"} {"id": "b", "id": "c"}"#) else {
            panic!("a duplicate key in the second value is refused before the first is given")
        };
        assert!(error.to_string().starts_with("duplicate field \"id\""), "{error}");
        assert!(parse_sequence(br#"{"id": "a"} {"id": "#).is_err(), "a value cut short");
    }

    #[test]
    fn what_follows_the_value_is_refused() {
        assert!(parse(br#"{"id": "a"} {}"#).is_err());
        assert!(parse(b"{} ").is_ok());
    }
}
