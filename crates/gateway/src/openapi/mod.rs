//! OpenAPI 3.1 for the REST surface, generated from the same routing table
//! and JSON mapping the gateway runs: the document cannot drift from what is
//! served. The proto comments are its summaries and descriptions, the
//! contract's access rules its security requirements, and a response's
//! fields are `required` as the gateway always emits them.

mod comments;

use std::collections::{BTreeMap, HashSet};

use platform::access::Rule;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use crate::routes::{BodyRule, Route, RouteTable};

/// The OpenAPI document for every route in `table` a caller can reach;
/// `access` gives each method's rule (`pkg.Service.Method`), and methods
/// no caller may reach here (internal ones) are left out.
pub fn document(table: &RouteTable, access: impl Fn(&str) -> Option<Rule>) -> Json {
    let mut schemas = Schemas::for_responses_of(table);
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    let mut operation_ids: BTreeMap<String, usize> = BTreeMap::new();
    for route in table.routes() {
        // A method that declares nothing is for signed-in users (`auth`).
        let rule = access(route.method.full_name()).unwrap_or(Rule::User);
        if matches!(rule, Rule::Internal | Rule::Nobody) {
            continue;
        }
        let base = format!("{}_{}", route.method.parent_service().name(), route.method.name());
        let count = operation_ids.entry(base.clone()).or_default();
        *count += 1;
        let operation_id = if *count == 1 { base } else { format!("{base}{count}") };
        let operation = operation(route, operation_id, &rule, &mut schemas);
        paths
            .entry(route.template.openapi_path())
            .or_default()
            .insert(route.http_method.as_str().to_lowercase(), operation);
    }
    schemas.components.insert("google.rpc.Status".to_owned(), status_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "meshwork API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST/JSON transcoded to gRPC from the google.api.http rules of the contract (proto3 JSON mapping).",
        },
        "servers": [{ "url": "/", "description": "the gateway that serves this document" }],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from the users service's Login (POST /users/login).",
                },
            },
        },
    })
}

/// The security scheme's name in the document.
const BEARER: &str = "bearerAuth";

fn operation(route: &Route, operation_id: String, rule: &Rule, schemas: &mut Schemas) -> Json {
    let input = route.method.input();
    let bound: Vec<Vec<String>> = route.template.bound_fields().map(<[String]>::to_vec).collect();
    let mut parameters = Vec::new();
    for path in &bound {
        if let Some(field) = field_at(&input, path) {
            let mut schema = schemas.field(&field, Direction::Request);
            document_field(&mut schema, &field);
            parameters.push(json!({ "name": path.join("."), "in": "path", "required": true, "schema": schema }));
        }
    }
    if route.body != BodyRule::All {
        let skip = match &route.body {
            BodyRule::Field(field) => Some(field.as_str()),
            _ => None,
        };
        query_parameters(&input, &mut Vec::new(), &bound, skip, schemas, &mut parameters, 0);
    }
    let comment = comments::of_method(&route.method);
    let grpc = format!("gRPC: `{}`", route.grpc_path());
    let output = route.method.output();
    let mut answer = comments::of_message(&output)
        .map_or_else(|| format!("A {} message", output.name()), |comment| comments::summary(&comment));
    let mut answer_schema = response_schema(route, schemas);
    let mut content = json!({});
    if route.method.is_server_streaming() {
        // As grpc-gateway's generator documents a stream: what each line is.
        answer = format!(
            "A stream, one JSON object per line: each message as `result`, then `error` if the stream fails; \
             with `Accept: text/event-stream`, each object is a Server-Sent Event's `data`. {answer}"
        );
        answer_schema = json!({
            "type": "object",
            "properties": { "result": answer_schema, "error": { "$ref": "#/components/schemas/google.rpc.Status" } },
        });
        content["text/event-stream"] = json!({ "schema": { "type": "string" } });
    }
    content["application/json"] = json!({ "schema": answer_schema });
    let mut operation = json!({
        "operationId": operation_id,
        "tags": [route.method.parent_service().name()],
        "summary": comment.as_deref().map_or_else(|| route.grpc_path().to_owned(), comments::summary),
        "description": comment.map_or(grpc.clone(), |comment| format!("{comment}\n\n{grpc}")),
        "parameters": parameters,
        "responses": {
            "200": {
                "description": answer,
                "content": content,
            },
            "default": error("An error: the gRPC status code, a message, and google.rpc details"),
        },
    });
    match rule {
        Rule::Public => operation["security"] = json!([]),
        _ => {
            operation["security"] = json!([{ BEARER: [] }]);
            operation["responses"]["401"] = error("No access token, or one that is not valid (expired, forged)");
        }
    }
    if let Rule::Roles(roles) = rule {
        let why = format!("The caller holds none of the roles this needs: {}", roles.join(", "));
        operation["responses"]["403"] = error(&why);
    }
    let body = match &route.body {
        BodyRule::None => None,
        BodyRule::All if bound.is_empty() => Some(schemas.message(&input, Direction::Request)),
        BodyRule::All => Some(schemas.message_without(&input, &bound)),
        BodyRule::Field(field) => input.get_field_by_name(field).map(|f| schemas.field(&f, Direction::Request)),
    };
    if let Some(schema) = body {
        operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
        if route.method.is_client_streaming() {
            // JSON Schema cannot say "several of these, one after another".
            operation["requestBody"]["description"] = json!(
                "A stream: any number of these objects, one after another (a newline between them, as NDJSON, \
                 or nothing), each one request message; none for an empty body."
            );
            operation["requestBody"]["required"] = json!(false);
            let schema = operation["requestBody"]["content"]["application/json"].clone();
            operation["requestBody"]["content"]["application/x-ndjson"] = schema;
        }
    }
    operation
}

/// An error response: `google.rpc.Status` as JSON.
fn error(description: &str) -> Json {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/google.rpc.Status" } } },
    })
}

fn response_schema(route: &Route, schemas: &mut Schemas) -> Json {
    match response_field(route) {
        Some(field) => schemas.field(&field, Direction::Response),
        None => schemas.message(&route.method.output(), Direction::Response),
    }
}

/// The field of the response message that is the response body
/// (`response_body`), if the route names one.
fn response_field(route: &Route) -> Option<FieldDescriptor> {
    route.response_body.as_deref().and_then(|field| route.method.output().get_field_by_name(field))
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
                let mut schema = schemas.field(&field, Direction::Request);
                document_field(&mut schema, &field);
                out.push(json!({ "name": name, "in": "query", "required": false, "schema": schema }));
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

/// Which way a message goes. A response has every field the gateway always
/// emits `required` (all but those of a oneof, proto3 `optional` included),
/// and an unset message field as `null`; a request requires nothing, and
/// holds no property but its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

/// Component schemas, one per message and direction, keyed by full proto
/// name; a message sent both ways has its request form under `<name>Input`.
#[derive(Default)]
struct Schemas {
    components: BTreeMap<String, Json>,
    /// Every message some response contains.
    in_responses: HashSet<String>,
}

impl Schemas {
    fn for_responses_of(table: &RouteTable) -> Self {
        let mut in_responses = HashSet::new();
        for route in table.routes() {
            let answered = match response_field(route) {
                Some(field) => message_of(&field),
                None => Some(route.method.output()),
            };
            if let Some(message) = answered {
                collect_messages(&message, &mut in_responses);
            }
        }
        Self { components: BTreeMap::new(), in_responses }
    }

    /// A `$ref` to the message's schema, adding it (and what it uses) once.
    fn message(&mut self, message: &MessageDescriptor, direction: Direction) -> Json {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let name = match direction {
            Direction::Request if self.in_responses.contains(message.full_name()) => {
                format!("{}Input", message.full_name())
            }
            _ => message.full_name().to_owned(),
        };
        if !self.components.contains_key(&name) {
            self.components.insert(name.clone(), Json::Null); // placeholder: recursion stops here
            let schema = self.object(message, &[], direction);
            self.components.insert(name.clone(), schema);
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// The request message's schema without the fields bound in the path.
    fn message_without(&mut self, message: &MessageDescriptor, bound: &[Vec<String>]) -> Json {
        self.object(message, bound, Direction::Request)
    }

    fn object(&mut self, message: &MessageDescriptor, bound: &[Vec<String>], direction: Direction) -> Json {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in message.fields() {
            if bound.iter().any(|path| path.len() == 1 && path[0] == field.name()) {
                continue;
            }
            let always_emitted = direction == Direction::Response && field.containing_oneof().is_none();
            let mut schema = self.field(&field, direction);
            if always_emitted && message_of(&field).is_some() && !field.is_list() && !field.is_map() {
                // Emitted as null when unset.
                schema = json!({ "anyOf": [schema, { "type": "null" }] });
            }
            document_field(&mut schema, &field);
            if field.field_descriptor_proto().options.as_ref().and_then(|o| o.deprecated) == Some(true) {
                // `[deprecated = true]`: still filled, to be read no more.
                schema["deprecated"] = Json::Bool(true);
            }
            if always_emitted {
                required.push(Json::String(field.json_name().to_owned()));
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut schema = json!({ "type": "object", "properties": properties });
        if direction == Direction::Request {
            // The gateway refuses a body with a field its message lacks (400
            // naming it). An answer may gain fields as the contract grows:
            // it stays open.
            schema["additionalProperties"] = Json::Bool(false);
        }
        if !required.is_empty() {
            schema["required"] = Json::Array(required);
        }
        if let Some(comment) = comments::of_message(message) {
            schema["description"] = Json::String(comment);
        }
        schema
    }

    fn field(&mut self, field: &FieldDescriptor, direction: Direction) -> Json {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("a map field is a message of entries") };
            let value = self.single(&entry.map_entry_value_field(), direction);
            return json!({ "type": "object", "additionalProperties": value });
        }
        let single = self.single(field, direction);
        if field.is_list() { json!({ "type": "array", "items": single }) } else { single }
    }

    fn single(&mut self, field: &FieldDescriptor, direction: Direction) -> Json {
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
            Kind::Message(message) => self.message(&message, direction),
        }
    }
}

/// Adds the field's comment (description and example) to its schema.
fn document_field(schema: &mut Json, field: &FieldDescriptor) {
    let (description, example) = comments::of_field(field);
    if let Some(description) = description {
        schema["description"] = Json::String(description);
    }
    if let Some(example) = example {
        schema["examples"] = Json::Array(vec![example]);
    }
}

/// The message a field holds (a map's: its values'), if any.
fn message_of(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(entry) if field.is_map() => match entry.map_entry_value_field().kind() {
            Kind::Message(value) => Some(value),
            _ => None,
        },
        Kind::Message(message) => Some(message),
        _ => None,
    }
}

/// `message` and every message it contains, by full name.
fn collect_messages(message: &MessageDescriptor, names: &mut HashSet<String>) {
    if is_well_known(message) || !names.insert(message.full_name().to_owned()) {
        return;
    }
    for field in message.fields() {
        if let Some(inner) = message_of(&field) {
            collect_messages(&inner, names);
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
        schemas.message(&created, Direction::Response);
        let properties = &schemas.components["shop.events.v1.OrderCreated"]["properties"];
        assert_eq!(properties["total"]["deprecated"], true);
        assert_eq!(properties["totalMinor"].get("deprecated"), None);
    }
}
