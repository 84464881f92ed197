//! OpenAPI 3.1 for the REST surface, generated from the same routing table
//! and JSON mapping the gateway runs: the document cannot drift from what is
//! served.

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use crate::routes::{BodyRule, Route, RouteTable};

/// The OpenAPI document for every route in `table`.
pub fn document(table: &RouteTable) -> Json {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    let mut operation_ids: BTreeMap<String, usize> = BTreeMap::new();
    for route in table.routes() {
        let base = format!("{}_{}", route.method.parent_service().name(), route.method.name());
        let count = operation_ids.entry(base.clone()).or_default();
        *count += 1;
        let operation_id = if *count == 1 { base } else { format!("{base}{count}") };
        let operation = operation(route, operation_id, &mut schemas);
        paths
            .entry(route.template.openapi_path())
            .or_default()
            .insert(route.http_method.as_str().to_lowercase(), operation);
    }
    schemas.0.insert("google.rpc.Status".to_owned(), status_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "meshwork API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST/JSON transcoded to gRPC from the google.api.http rules of the contract (proto3 JSON mapping).",
        },
        "paths": paths,
        "components": { "schemas": schemas.0 },
    })
}

fn operation(route: &Route, operation_id: String, schemas: &mut Schemas) -> Json {
    let input = route.method.input();
    let bound: Vec<Vec<String>> = route.template.bound_fields().map(<[String]>::to_vec).collect();
    let mut parameters = Vec::new();
    for path in &bound {
        if let Some(field) = field_at(&input, path) {
            parameters.push(json!({
                "name": path.join("."),
                "in": "path",
                "required": true,
                "schema": schemas.field(&field),
            }));
        }
    }
    if route.body != BodyRule::All {
        let skip = match &route.body {
            BodyRule::Field(field) => Some(field.as_str()),
            _ => None,
        };
        query_parameters(&input, &mut Vec::new(), &bound, skip, schemas, &mut parameters, 0);
    }
    let mut operation = json!({
        "operationId": operation_id,
        "tags": [route.method.parent_service().name()],
        "summary": route.grpc_path(),
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "OK",
                "content": { "application/json": { "schema": response_schema(route, schemas) } },
            },
            "default": {
                "description": "An error: the gRPC status code, a message, and google.rpc details",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/google.rpc.Status" } } },
            },
        },
    });
    let body = match &route.body {
        BodyRule::None => None,
        BodyRule::All if bound.is_empty() => Some(schemas.message(&input)),
        BodyRule::All => Some(schemas.message_without(&input, &bound)),
        BodyRule::Field(field) => input.get_field_by_name(field).map(|f| schemas.field(&f)),
    };
    if let Some(schema) = body {
        operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    operation
}

fn response_schema(route: &Route, schemas: &mut Schemas) -> Json {
    let output = route.method.output();
    match route.response_body.as_deref().and_then(|field| output.get_field_by_name(field)) {
        Some(field) => schemas.field(&field),
        None => schemas.message(&output),
    }
}

/// Leaf fields not bound elsewhere, as (dotted JSON name) query parameters.
fn query_parameters(
    message: &MessageDescriptor,
    prefix: &mut Vec<String>,
    bound: &[Vec<String>],
    skip: Option<&str>,
    schemas: &mut Schemas,
    out: &mut Vec<Json>,
    depth: usize,
) {
    for field in message.fields() {
        prefix.push(field.name().to_owned());
        let is_bound = bound.contains(prefix);
        let skipped = prefix.len() == 1 && Some(field.name()) == skip;
        match field.kind() {
            _ if is_bound || skipped => {}
            Kind::Message(inner) if !field.is_list() && !field.is_map() && !is_well_known(&inner) && depth < 3 => {
                query_parameters(&inner, prefix, bound, None, schemas, out, depth + 1);
            }
            Kind::Message(inner) if !is_well_known(&inner) => {}
            _ if field.is_map() => {}
            _ => {
                let name = json_path(message, prefix, &field);
                out.push(json!({ "name": name, "in": "query", "required": false, "schema": schemas.field(&field) }));
            }
        }
        prefix.pop();
    }
}

fn json_path(_message: &MessageDescriptor, prefix: &[String], field: &FieldDescriptor) -> String {
    // Parents by proto name (accepted as is), the leaf by its JSON name.
    let mut parts: Vec<String> = prefix[..prefix.len() - 1].to_vec();
    parts.push(field.json_name().to_owned());
    parts.join(".")
}

fn field_at(message: &MessageDescriptor, path: &[String]) -> Option<FieldDescriptor> {
    let mut current = message.clone();
    let mut found = None;
    for part in path {
        let field = current.get_field_by_name(part)?;
        if let Kind::Message(inner) = field.kind() {
            current = inner;
        }
        found = Some(field);
    }
    found
}

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.full_name().starts_with("google.protobuf.")
}

/// Component schemas, one per message, keyed by full proto name.
#[derive(Default)]
struct Schemas(BTreeMap<String, Json>);

impl Schemas {
    /// A `$ref` to the message's schema, adding it (and what it uses) once.
    fn message(&mut self, message: &MessageDescriptor) -> Json {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.0.contains_key(&name) {
            self.0.insert(name.clone(), Json::Null); // placeholder: recursion stops here
            let schema = self.object(message, &[]);
            self.0.insert(name.clone(), schema);
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// The message's schema without the fields bound in the path.
    fn message_without(&mut self, message: &MessageDescriptor, bound: &[Vec<String>]) -> Json {
        self.object(message, bound)
    }

    fn object(&mut self, message: &MessageDescriptor, bound: &[Vec<String>]) -> Json {
        let mut properties = Map::new();
        for field in message.fields() {
            if bound.iter().any(|path| path.len() == 1 && path[0] == field.name()) {
                continue;
            }
            let mut schema = self.field(&field);
            if field.field_descriptor_proto().options.as_ref().and_then(|o| o.deprecated) == Some(true) {
                // `[deprecated = true]`: still filled, to be read no more.
                schema["deprecated"] = Json::Bool(true);
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        json!({ "type": "object", "properties": properties })
    }

    fn field(&mut self, field: &FieldDescriptor) -> Json {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("a map field is a message of entries") };
            return json!({ "type": "object", "additionalProperties": self.single(&entry.map_entry_value_field()) });
        }
        let single = self.single(field);
        if field.is_list() { json!({ "type": "array", "items": single }) } else { single }
    }

    fn single(&mut self, field: &FieldDescriptor) -> Json {
        match field.kind() {
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
            Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "format": "int64", "minimum": 0 }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "type": "string", "format": "int64" }),
            Kind::Uint64 | Kind::Fixed64 => json!({ "type": "string", "format": "uint64" }),
            Kind::Float => json!({ "type": "number", "format": "float" }),
            Kind::Double => json!({ "type": "number", "format": "double" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
            Kind::Enum(enumeration) => {
                let names: Vec<String> = enumeration.values().map(|v| v.name().to_owned()).collect();
                json!({ "type": "string", "enum": names })
            }
            Kind::Message(message) => self.message(&message),
        }
    }
}

/// The JSON forms of the well-known types.
fn well_known(message: &MessageDescriptor) -> Option<Json> {
    let schema = match message.full_name() {
        "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        "google.protobuf.Duration" => json!({ "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$" }),
        "google.protobuf.FieldMask" => json!({ "type": "string" }),
        "google.protobuf.Empty" => json!({ "type": "object" }),
        "google.protobuf.Struct" => json!({ "type": "object", "additionalProperties": true }),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({ "type": "array" }),
        "google.protobuf.Any" => any_schema(),
        "google.protobuf.BoolValue" => json!({ "type": ["boolean", "null"] }),
        "google.protobuf.StringValue" | "google.protobuf.BytesValue" => json!({ "type": ["string", "null"] }),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({ "type": ["integer", "null"] }),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => json!({ "type": ["string", "null"] }),
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({ "type": ["number", "null"] }),
        _ => return None,
    };
    Some(schema)
}

fn any_schema() -> Json {
    json!({
        "type": "object",
        "properties": { "@type": { "type": "string" } },
        "required": ["@type"],
        "additionalProperties": true,
    })
}

fn status_schema() -> Json {
    json!({
        "type": "object",
        "properties": {
            "code": { "type": "integer", "format": "int32", "description": "the gRPC status code" },
            "message": { "type": "string" },
            "details": { "type": "array", "items": any_schema() },
        },
        "required": ["code", "message", "details"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_fields_are_marked_and_the_others_are_not() {
        let pool = prost_reflect::DescriptorPool::decode(contract::FILE_DESCRIPTOR_SET).unwrap();
        let created = pool.get_message_by_name("shop.events.v1.OrderCreated").unwrap();
        let mut schemas = Schemas::default();
        schemas.message(&created);
        let properties = &schemas.0["shop.events.v1.OrderCreated"]["properties"];
        assert_eq!(properties["total"]["deprecated"], true);
        assert_eq!(properties["totalMinor"].get("deprecated"), None);
    }
}
