//! Every answer the integration tests get is checked against the served
//! contract document, `src/api/openapi.json`: its status must be one the
//! operation documents, its content type the documented one, and a JSON
//! body must validate against the documented schema. A shape that drifts
//! from the document fails whichever test met it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(hallcast::api::OPENAPI).expect("openapi.json parses"))
}

/// Follows a `#/…` reference within the document.
fn resolve(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local references only");
            resolve(
                doc()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{r} is in openapi.json")),
            )
        }
        None => v,
    }
}

/// A validator for one schema of the document, its references resolved
/// against the document's components; built once per schema.
fn validator(key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(key.to_string())
        .or_insert_with(|| {
            let mut root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": doc()["components"].clone(),
            });
            for (k, v) in schema.as_object().expect("a schema object") {
                root[k] = v.clone();
            }
            Arc::new(
                jsonschema::options()
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("the schema of {key} compiles: {e}")),
            )
        })
        .clone()
}

/// Checks one answer; panics naming the route and what does not fit.
pub fn check(method: &str, path: &str, status: u16, content_type: &str, body: &str) {
    let path = path.split('?').next().unwrap_or(path);
    let method = method.to_ascii_lowercase();
    let op = hallcast::api::route_of(path).and_then(|t| Some((t, doc()["paths"][t].get(&method)?)));
    let what = format!("{} {path} → {status}", method.to_uppercase());
    let response = match op {
        Some((template, op)) => {
            let r = op["responses"].get(status.to_string()).unwrap_or_else(|| {
                panic!("{what}: status {status} is not documented for {template} in openapi.json")
            });
            resolve(r)
        }
        // Not a route (or not this method): only the contract's error.
        None => {
            assert!(
                status == 404 || status == 405,
                "{what}: not a documented route, yet not 404/405"
            );
            resolve(&doc()["components"]["responses"]["NotFound"])
        }
    };
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            body.is_empty(),
            "{what}: documented without a body, got {body}"
        );
        return;
    };
    let media = content_type.split(';').next().unwrap_or("").trim();
    let Some(media_doc) = content.get(media) else {
        panic!(
            "{what}: content type {media:?} is not documented (only {:?})",
            content.keys()
        );
    };
    if media != "application/json" {
        return;
    }
    let value: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e}): {body}"));
    let key = format!("{what} {media}");
    let v = validator(&key, &media_doc["schema"]);
    let errors: Vec<String> = v
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the body does not fit openapi.json:\n  {}\nbody: {body}",
        errors.join("\n  ")
    );
}
