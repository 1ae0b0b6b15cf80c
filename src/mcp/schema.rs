//! Tool schemas in the plain dialect every client accepts.
//!
//! schemars writes correct JSON Schema 2020-12, but clients read a narrower dialect: the
//! TypeScript SDK 1.x rejects the whole tool list for a boolean schema (`"value": true`),
//! Gemini-backed hosts refuse `["string", "null"]` type arrays, and several hosts neither
//! follow `$ref` nor know `format: uint32`. Each schema is rewritten once, when the router
//! is built:
//! - `$ref`s are inlined and `$defs` dropped;
//! - an optional field has one `type` and is simply not `required` (outputs leave such a
//!   field out rather than writing `null`, so the rewrite describes them exactly);
//! - a `oneOf` of `const`s becomes an `enum`, the variants' docs joined into the description;
//! - the numeric `format`s schemars adds are dropped (their bounds stay as `minimum`);
//! - `true` becomes `{}`, and `default: null` goes.

use serde_json::{Map, Value};

/// Formats schemars writes for Rust's number types, which no validator knows.
const NUMBER_FORMATS: &[&str] = &[
    "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
    "float", "double",
];

/// Keywords whose value is a schema.
const SCHEMA_KEYWORDS: &[&str] = &["items", "additionalProperties", "not", "contains"];

/// Keywords whose value is a list of schemas.
const SCHEMA_LIST_KEYWORDS: &[&str] = &["anyOf", "oneOf", "allOf", "prefixItems"];

/// `schema` rewritten into the portable dialect.
pub(super) fn portable(schema: &Map<String, Value>) -> Map<String, Value> {
    let definitions = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let rewriter = Rewriter { definitions };
    match rewriter.rewrite(Value::Object(schema.clone()), &mut Vec::new()) {
        Value::Object(object) => object,
        _ => Map::new(),
    }
}

struct Rewriter {
    definitions: Map<String, Value>,
}

impl Rewriter {
    /// `schema` rewritten; `resolving` holds the definitions being inlined, so that a
    /// recursive type ends in an open schema instead of looping.
    fn rewrite(&self, schema: Value, resolving: &mut Vec<String>) -> Value {
        match schema {
            Value::Bool(true) => Value::Object(Map::new()),
            Value::Bool(false) => serde_json::json!({ "not": {} }),
            Value::Object(object) => Value::Object(self.rewrite_object(object, resolving)),
            other => other,
        }
    }

    fn rewrite_object(
        &self,
        mut object: Map<String, Value>,
        resolving: &mut Vec<String>,
    ) -> Map<String, Value> {
        object.remove("$defs");
        if let Some(Value::String(reference)) = object.remove("$ref") {
            object = self.inline(&reference, object, resolving);
        }
        if let Some(Value::Object(properties)) = object.remove("properties") {
            let properties = properties
                .into_iter()
                .map(|(name, value)| (name, self.rewrite(value, resolving)))
                .collect();
            object.insert("properties".into(), Value::Object(properties));
        }
        for keyword in SCHEMA_KEYWORDS {
            if let Some(value) = object.remove(*keyword) {
                let value = match value {
                    // `additionalProperties: false` is a constraint, not a schema to open up.
                    Value::Bool(flag) if *keyword == "additionalProperties" => Value::Bool(flag),
                    value => self.rewrite(value, resolving),
                };
                object.insert((*keyword).into(), value);
            }
        }
        for keyword in SCHEMA_LIST_KEYWORDS {
            if let Some(Value::Array(list)) = object.remove(*keyword) {
                let list = list
                    .into_iter()
                    .map(|value| self.rewrite(value, resolving))
                    .collect();
                object.insert((*keyword).into(), Value::Array(list));
            }
        }
        drop_null_type(&mut object);
        drop_null_branch(&mut object, "anyOf");
        drop_null_branch(&mut object, "oneOf");
        consts_to_enum(&mut object, "oneOf");
        consts_to_enum(&mut object, "anyOf");
        drop_number_format(&mut object);
        if object.get("default") == Some(&Value::Null) {
            object.remove("default");
        }
        object
    }

    /// The definition `reference` names, rewritten, under the keywords written beside the
    /// reference (a field's own description wins over its type's).
    fn inline(
        &self,
        reference: &str,
        siblings: Map<String, Value>,
        resolving: &mut Vec<String>,
    ) -> Map<String, Value> {
        let name = reference.rsplit('/').next().unwrap_or(reference).to_owned();
        let definition = match self.definitions.get(&name) {
            Some(definition) if !resolving.contains(&name) => definition.clone(),
            _ => return siblings,
        };
        resolving.push(name);
        let mut inlined = match self.rewrite(definition, resolving) {
            Value::Object(object) => object,
            _ => Map::new(),
        };
        resolving.pop();
        inlined.remove("title");
        inlined.extend(siblings);
        inlined
    }
}

/// `type: ["T", "null"]` becomes `type: "T"`.
fn drop_null_type(object: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = object.get("type") else {
        return;
    };
    let mut types: Vec<Value> = types
        .iter()
        .filter(|kind| kind.as_str() != Some("null"))
        .cloned()
        .collect();
    let kind = match types.len() {
        1 => types.remove(0),
        _ => Value::Array(types),
    };
    object.insert("type".into(), kind);
}

/// `anyOf: [S, {type: null}]` becomes S merged into the object (its own keywords win).
fn drop_null_branch(object: &mut Map<String, Value>, keyword: &str) {
    let Some(Value::Array(branches)) = object.get(keyword) else {
        return;
    };
    let is_null = |branch: &Value| branch.get("type").and_then(Value::as_str) == Some("null");
    if !branches.iter().any(is_null) {
        return;
    }
    let mut rest: Vec<Value> = branches.iter().filter(|b| !is_null(b)).cloned().collect();
    if rest.len() != 1 {
        object.insert(keyword.into(), Value::Array(rest));
        return;
    }
    object.remove(keyword);
    if let Value::Object(branch) = rest.remove(0) {
        for (key, value) in branch {
            object.entry(key).or_insert(value);
        }
    }
}

/// A `oneOf` whose branches are all `const`s becomes an `enum` of the same type, with the
/// branches' descriptions appended to the object's own.
fn consts_to_enum(object: &mut Map<String, Value>, keyword: &str) {
    let Some(Value::Array(branches)) = object.get(keyword) else {
        return;
    };
    let constants: Option<Vec<&Value>> = branches.iter().map(|b| b.get("const")).collect();
    let Some(constants) = constants else {
        return;
    };
    let values: Vec<Value> = constants.into_iter().cloned().collect();
    let notes: Vec<String> = branches
        .iter()
        .filter_map(|branch| {
            let description = branch.get("description")?.as_str()?;
            let name = branch.get("const")?;
            Some(format!("{}: {description}", plain(name)))
        })
        .collect();
    if values.iter().all(Value::is_string) {
        object.insert("type".into(), Value::String("string".into()));
    }
    object.remove(keyword);
    object.insert("enum".into(), Value::Array(values));
    if !notes.is_empty() {
        let own = object.get("description").and_then(Value::as_str);
        let joined = notes.join("; ");
        let description = match own {
            Some(own) => format!("{own} ({joined})"),
            None => joined,
        };
        object.insert("description".into(), Value::String(description));
    }
}

fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn drop_number_format(object: &mut Map<String, Value>) {
    let numeric = object
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|format| NUMBER_FORMATS.contains(&format));
    if numeric {
        object.remove("format");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rewritten(schema: Value) -> Value {
        Value::Object(portable(schema.as_object().unwrap()))
    }

    #[test]
    fn references_are_inlined_with_the_fields_own_description() {
        let schema = json!({
            "type": "object",
            "properties": { "item": { "$ref": "#/$defs/Item", "description": "the item" } },
            "$defs": { "Item": { "title": "Item", "type": "object", "description": "any item",
                "properties": { "n": { "type": "integer" } } } }
        });
        assert_eq!(
            rewritten(schema),
            json!({
                "type": "object",
                "properties": { "item": { "type": "object", "description": "the item",
                    "properties": { "n": { "type": "integer" } } } }
            })
        );
    }

    #[test]
    fn a_recursive_reference_ends_in_an_open_schema() {
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": { "Node": { "type": "object",
                "properties": { "next": { "$ref": "#/$defs/Node" } } } }
        });
        assert_eq!(
            rewritten(schema),
            json!({ "type": "object", "properties": { "next": {} } })
        );
    }

    #[test]
    fn optional_fields_get_one_type() {
        let schema = json!({ "type": "object", "properties": {
            "a": { "type": ["string", "null"], "default": null },
            "b": { "anyOf": [{ "$ref": "#/$defs/B" }, { "type": "null" }], "description": "b" },
        }, "$defs": { "B": { "type": "array", "items": { "type": "string" } } } });
        assert_eq!(
            rewritten(schema),
            json!({ "type": "object", "properties": {
                "a": { "type": "string" },
                "b": { "type": "array", "items": { "type": "string" }, "description": "b" },
            } })
        );
    }

    #[test]
    fn constants_become_an_enum_with_their_descriptions() {
        let schema = json!({ "description": "Mode.", "oneOf": [
            { "const": "text", "type": "string", "description": "words" },
            { "const": "hybrid", "type": "string" },
        ] });
        assert_eq!(
            rewritten(schema),
            json!({ "type": "string", "enum": ["text", "hybrid"], "description": "Mode. (text: words)" })
        );
    }

    #[test]
    fn boolean_schemas_and_number_formats_go() {
        let schema = json!({ "type": "object", "properties": {
            "value": true,
            "n": { "type": "integer", "format": "uint32", "minimum": 0 },
            "t": { "type": "string", "format": "date-time" },
        }, "additionalProperties": false });
        assert_eq!(
            rewritten(schema),
            json!({ "type": "object", "properties": {
                "value": {},
                "n": { "type": "integer", "minimum": 0 },
                "t": { "type": "string", "format": "date-time" },
            }, "additionalProperties": false })
        );
    }
}
