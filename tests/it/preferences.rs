//! Preferences end to end.

use serde_json::json;

use crate::support::{call_err, call_ok, data_dir, start};

#[tokio::test]
async fn set_get_replace_and_delete_preferences_per_user() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    let set = call_ok(
        &client,
        "set_preference",
        json!({"key": "editor", "value": {"tabs": 4, "theme": "dark"}}),
    )
    .await;
    assert_eq!(set["created"], true);
    assert_eq!(set["user_id"], "default");
    let replaced = call_ok(
        &client,
        "set_preference",
        json!({"key": "editor", "value": {"tabs": 2}}),
    )
    .await;
    assert_eq!(replaced["created"], false);
    call_ok(
        &client,
        "set_preference",
        json!({"key": "language", "value": "fr"}),
    )
    .await;
    call_ok(
        &client,
        "set_preference",
        json!({"user_id": "zoe", "key": "language", "value": false}),
    )
    .await;

    let all = call_ok(&client, "get_preferences", json!({})).await;
    assert_eq!(
        all["preferences"],
        json!({"editor": {"tabs": 2}, "language": "fr"})
    );
    let some = call_ok(
        &client,
        "get_preferences",
        json!({"keys": ["language", "absent"]}),
    )
    .await;
    assert_eq!(some["preferences"], json!({"language": "fr"}));
    assert_eq!(some["missing"], json!(["absent"]));
    let zoe = call_ok(&client, "get_preferences", json!({"user_id": "zoe"})).await;
    assert_eq!(zoe["preferences"], json!({"language": false}));

    let deleted = call_ok(&client, "delete_preference", json!({"key": "language"})).await;
    assert_eq!(deleted["deleted"], true);
    let again = call_ok(&client, "delete_preference", json!({"key": "language"})).await;
    assert_eq!(again["deleted"], false);
    let all = call_ok(&client, "get_preferences", json!({})).await;
    assert_eq!(all["preferences"], json!({"editor": {"tabs": 2}}));

    let error = call_err(&client, "set_preference", json!({"key": "", "value": 1})).await;
    assert_eq!(error, "key: must not be empty");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_null_preference_value_is_refused() {
    let dir = data_dir();
    let client = start(dir.path()).await;
    let error = call_err(
        &client,
        "set_preference",
        json!({"key": "language", "value": null}),
    )
    .await;
    assert!(
        error.starts_with("value: null is not a preference value"),
        "{error}"
    );
    client.cancel().await.unwrap();
}
