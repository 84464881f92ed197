//! `GET /openapi.json`: generated from the routes the gateway runs, and
//! valid OpenAPI 3.1 by an independent validator (openapi-spec-validator).

use crate::harness::start;

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_the_routes_and_validates() {
    let harness = start().await;
    let reply = harness.get("/openapi.json").await;
    assert_eq!(reply.status, 200);
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for path in
        ["/v1/echo/{id}", "/v1/echo/{id}:shout", "/v1/users/{user}/echo/{id}", "/v1/{name}", "/v1/fail", "/users/{id}"]
    {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    let get = &document["paths"]["/v1/echo/{id}"]["get"];
    let parameters: Vec<&str> =
        get["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(
        parameters.contains(&"id") && parameters.contains(&"sub.value") && parameters.contains(&"sleepMs"),
        "{parameters:?}"
    );
    assert_eq!(
        get["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/google.rpc.Status"
    );
    // A server stream: what each of its lines holds.
    let stream = &document["paths"]["/v1/echo/{id}:repeat"]["get"]["responses"]["200"];
    assert!(stream["description"].as_str().unwrap().starts_with("A stream, one JSON object per line"), "{stream}");
    let line = &stream["content"]["application/json"]["schema"]["properties"];
    assert_eq!(line["result"]["$ref"], "#/components/schemas/echo.v1.EchoResponse", "{stream}");
    assert_eq!(line["error"]["$ref"], "#/components/schemas/google.rpc.Status", "{stream}");
    assert_eq!(stream["content"]["text/event-stream"]["schema"]["type"], "string", "{stream}");
    // A client stream: the body is several of its message, one after another.
    let collect = &document["paths"]["/v1/echo:collect"]["post"]["requestBody"];
    assert!(collect["description"].as_str().unwrap().starts_with("A stream: any number of these objects"), "{collect}");
    assert_eq!(
        collect["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/echo.v1.EchoRequestInput"
    );
    assert_eq!(collect["content"]["application/x-ndjson"], collect["content"]["application/json"], "{collect}");

    // The contract's comments, access rules and always-emitted fields.
    assert_eq!(document["servers"][0]["url"], "/");
    assert_eq!(document["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    let create_product = &document["paths"]["/products"]["post"];
    assert_eq!(create_product["summary"], "Adds a product.");
    assert!(create_product["description"].as_str().unwrap().contains("otherwise one is generated"));
    assert_eq!(create_product["security"], serde_json::json!([{ "bearerAuth": [] }]));
    assert!(create_product["responses"]["403"]["description"].as_str().unwrap().contains("admin"));
    let get_product = &document["paths"]["/products/{id}"]["get"];
    assert_eq!(get_product["security"], serde_json::json!([]), "public");
    assert!(get_product["responses"].get("401").is_none());
    assert!(document["paths"]["/users/{id}"]["get"]["responses"]["401"].is_object(), "for signed-in users");
    let schemas = &document["components"]["schemas"];
    let product = &schemas["shop.products.v1.Product"];
    let required: Vec<&str> = product["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(required.contains(&"price") && required.contains(&"currency") && required.contains(&"createdAt"));
    assert!(product["properties"]["currency"]["description"].as_str().unwrap().contains("ISO 4217"));
    assert_eq!(product["properties"]["createdAt"]["anyOf"][1]["type"], "null", "an unset message is null");
    let price = &schemas["shop.products.v1.CreateProductRequest"]["properties"]["price"];
    assert_eq!(
        (&price["examples"][0], &price["description"]),
        (&serde_json::json!(29.99), &serde_json::json!("Decimal, in whole cents."))
    );
    let line_item = &schemas["shop.orders.v1.LineItem"];
    assert_eq!(line_item["type"], "object", "{line_item}");
    assert!(line_item.get("required").is_none(), "a request requires nothing");
    // A request holds its message's fields and no others, as the gateway
    // refuses the rest; an answer may gain fields.
    assert_eq!(schemas["shop.products.v1.CreateProductRequest"]["additionalProperties"], false);
    assert_eq!(line_item["additionalProperties"], false, "inside a request too");
    let update = &document["paths"]["/products/{id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(update["additionalProperties"], false, "a body less the fields in its path: {update}");
    assert!(update["properties"]["name"].is_object() && update["properties"].get("id").is_none(), "{update}");
    assert!(product.get("additionalProperties").is_none(), "{product}");

    let file = std::env::temp_dir().join(format!("openapi-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, &reply.body).unwrap();
    let validated = std::process::Command::new("python3").args(["-m", "openapi_spec_validator"]).arg(&file).output();
    let typed = typescript_client_type_checks(&file);
    std::fs::remove_file(&file).unwrap();
    let validated = validated.expect("python3 runs");
    let stderr = String::from_utf8_lossy(&validated.stderr);
    if stderr.contains("No module named openapi_spec_validator") {
        let required = std::env::var("MESHWORK_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
        assert!(!required, "openapi-spec-validator is not installed (scripts/services installs it)");
        eprintln!("skipped validation: pip install openapi-spec-validator");
        return;
    }
    assert!(validated.status.success(), "{}{stderr}", String::from_utf8_lossy(&validated.stdout));
    match typed {
        Ok(()) => {}
        Err(Missing(tool)) => {
            let required = std::env::var("MESHWORK_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
            assert!(!required, "{tool} is not installed (scripts/services installs it)");
            eprintln!("skipped the TypeScript client: {tool} is not installed");
        }
    }
}

struct Missing(&'static str);

/// Generates a TypeScript client from the document with openapi-typescript
/// and type-checks code using it under `strict`: a field the document marks
/// required is there without a check, and a public route needs no token.
fn typescript_client_type_checks(document: &std::path::Path) -> Result<(), Missing> {
    let dir = std::env::temp_dir().join(format!("openapi-ts-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let generated = std::process::Command::new("openapi-typescript")
        .arg(document)
        .arg("-o")
        .arg(dir.join("api.d.ts"))
        .output()
        .map_err(|_| Missing("openapi-typescript"))?;
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    std::fs::write(
        dir.join("use.ts"),
        r#"import type { components, paths } from "./api";
type Product = components["schemas"]["shop.products.v1.Product"];
export function label(product: Product): string {
  // Required and typed: no undefined to rule out first.
  return `${product.name}: ${product.price.toFixed(2)} ${product.currency}, ${product.stock} left`;
}
type Fetched = paths["/products/{id}"]["get"]["responses"]["200"]["content"]["application/json"];
export const fetched: (p: Fetched) => string = label;
type NewProduct = NonNullable<paths["/products"]["post"]["requestBody"]>["content"]["application/json"];
export const minimal: NewProduct = { name: "Widget", price: 29.99 };
"#,
    )
    .unwrap();
    let checked = std::process::Command::new("tsc")
        .args(["--strict", "--noEmit", "--target", "es2022", "--module", "es2022", "--moduleResolution", "bundler"])
        .arg(dir.join("use.ts"))
        .output()
        .map_err(|_| Missing("tsc"))?;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
    Ok(())
}
