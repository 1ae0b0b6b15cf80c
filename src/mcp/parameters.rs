//! Tool arguments that fail to parse become tool errors naming the field, not protocol errors.
//!
//! rmcp's own `Parameters` turns a bad argument into JSON-RPC "invalid params", which many
//! clients show to the user rather than to the model; a tool error lets the model fix its call.
//! The tool macro finds this type by its name, `Parameters`, and takes the input schema from it.

use std::borrow::Cow;

use rmcp::{
    ErrorData,
    handler::server::{common::FromContextPart, tool::ToolCallContext},
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// The arguments of a tool call, or what is wrong with them.
pub struct Parameters<T>(pub Result<T, InvalidArguments>);

/// Arguments that do not fit the tool's input schema.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArguments(String);

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<T> {
    fn from_context_part(context: &mut ToolCallContext<S>) -> Result<Self, ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        Ok(Parameters(parse(serde_json::Value::Object(arguments))))
    }
}

pub(super) fn parse<T: DeserializeOwned>(
    arguments: serde_json::Value,
) -> Result<T, InvalidArguments> {
    serde_path_to_error::deserialize(arguments).map_err(|error| {
        let path = error.path().to_string();
        let reason = error.into_inner();
        // serde names a missing or unknown field itself; the path names where a bad value sits.
        InvalidArguments(match path.as_str() {
            "." => format!("invalid arguments: {reason}"),
            _ => format!("{path}: {reason}"),
        })
    })
}

impl<T: JsonSchema> JsonSchema for Parameters<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        count: u32,
    }

    fn error(value: serde_json::Value) -> String {
        parse::<Outer>(value).unwrap_err().to_string()
    }

    #[test]
    fn names_the_field_of_a_wrong_type() {
        let message = error(json!({"items": [{"count": 1}, {"count": "two"}]}));
        assert!(
            message.starts_with("items[1].count: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn names_missing_and_unknown_fields() {
        assert!(error(json!({})).contains("missing field `items`"));
        assert!(error(json!({"items": [], "extra": 1})).contains("unknown field `extra`"));
    }
}
