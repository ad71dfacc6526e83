//! `PATCH /users/{id}` with a `passwordProfile`: success, Entra's cloud policy, synced users,
//! permissions and roles.

use std::time::Duration;

use latchkey_graph_emulator::{DirectoryRole, NewUser, parse_graph_datetime, permission};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Answer, emulator, get, http, patch_user, token};

const COMPLEXITY: &str = "The specified password does not comply with password complexity \
                          requirements. Please provide a different password.";

fn reset(password: &str) -> serde_json::Value {
    json!({"passwordProfile": {
        "password": password,
        "forceChangePasswordNextSignIn": true,
        "forceChangePasswordNextSignInWithMfa": false,
    }})
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str, message: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.code(), code, "{}", answer.body);
    assert_eq!(answer.message(), message);
    assert!(answer.body["error"]["innerError"]["request-id"].is_string());
}

#[tokio::test]
async fn a_cloud_user_is_reset_and_the_profile_recorded() {
    let graph = emulator().await;
    let user = graph
        .add_user(NewUser {
            last_password_change: Some(std::time::SystemTime::now() - Duration::from_secs(86_400)),
            ..NewUser::cloud("adelev@contoso.test", "Adele Vance")
        })
        .expect("seeded");
    let bearer = token(&graph).await;
    let read = |key: String| {
        let (graph, bearer) = (&graph, &bearer);
        async move {
            let answer = get(
                graph,
                bearer,
                &format!("/v1.0/users/{key}?$select=lastPasswordChangeDateTime,passwordProfile"),
            )
            .await;
            answer.body
        }
    };
    let before = read(user.id.clone()).await;

    let answer = patch_user(&graph, &bearer, &user.id, &reset("Qx7-a1b2c3-Zk9")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert!(answer.header("request-id").is_some());

    let state = graph.user(&user.id).expect("the user");
    assert_eq!(state.password.as_deref(), Some("Qx7-a1b2c3-Zk9"));
    assert_eq!(state.password_resets, 1);
    let profile = state.last_password_profile.expect("recorded");
    assert_eq!(profile.force_change_password_next_sign_in, Some(true));
    assert_eq!(
        profile.force_change_password_next_sign_in_with_mfa,
        Some(false)
    );

    let after = read(user.id.clone()).await;
    let changed = |body: &serde_json::Value| {
        parse_graph_datetime(body["lastPasswordChangeDateTime"].as_str().unwrap()).unwrap()
    };
    assert!(changed(&after) > changed(&before) + Duration::from_secs(3600));
    assert_eq!(
        after["passwordProfile"]["forceChangePasswordNextSignIn"],
        true
    );
    assert_eq!(
        after["passwordProfile"]["password"],
        serde_json::Value::Null
    );

    // By userPrincipalName too; an empty object changes nothing.
    let answer = patch_user(&graph, &bearer, "adelev@contoso.test", &json!({})).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(graph.user(&user.id).unwrap().password_resets, 1);
}

#[tokio::test]
async fn the_cloud_password_policy_refuses_weak_and_banned_passwords() {
    let graph = emulator().await;
    let user = graph.add_cloud_user("alexw@contoso.test", "Alex Wilber");
    let bearer = token(&graph).await;
    for password in [
        "short1A",
        "alllowercase12",
        "Ünïcode-Pass1",
        "Welcome#2026",
        "My-P@ssw0rd-1",
        "xLATCHKEY-9x",
    ] {
        let answer = patch_user(&graph, &bearer, &user.id, &reset(password)).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            COMPLEXITY,
        );
    }
    let state = graph.user(&user.id).unwrap();
    assert_eq!(state.password_resets, 0);
    assert!(state.last_password_profile.is_none());

    // DisableStrongPassword lifts the complexity rules.
    assert!(graph.set_password_policies(&user.id, Some("DisableStrongPassword")));
    let answer = patch_user(&graph, &bearer, &user.id, &reset("weak")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
}

#[tokio::test]
async fn a_synced_user_cannot_be_reset_through_graph() {
    let graph = emulator().await;
    let user = graph.add_synced_user("bob@corp.test", "Bob Hybrid", "bob");
    let bearer = token(&graph).await;
    let answer = patch_user(&graph, &bearer, &user.id, &reset("Qx7-a1b2c3-Zk9")).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
        "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
    );
    assert_eq!(graph.user(&user.id).unwrap().password_resets, 0);
}

#[tokio::test]
async fn the_permission_is_checked_before_the_user_so_a_probe_tells_403_from_404() {
    let graph = emulator().await;
    let user = graph.add_cloud_user("megan@contoso.test", "Megan Bowen");
    let nobody = "00000000-0000-0000-0000-000000000000";

    let allowed = token(&graph).await;
    let answer = patch_user(&graph, &allowed, nobody, &json!({})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "Request_ResourceNotFound");

    graph.set_app_permissions(&[permission::USER_READ_ALL, permission::ORGANIZATION_READ_ALL]);
    let denied = token(&graph).await;
    let answer = patch_user(&graph, &denied, nobody, &json!({})).await;
    assert_error(
        &answer,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    );
    let answer = patch_user(&graph, &denied, &user.id, &reset("Qx7-a1b2c3-Zk9")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(graph.user(&user.id).unwrap().password_resets, 0);
}

#[tokio::test]
async fn administrators_need_privileged_authentication_administrator() {
    let graph = emulator().await;
    let admin = graph
        .add_user(NewUser {
            privileged: true,
            ..NewUser::cloud("admin@contoso.test", "Global Admin")
        })
        .expect("seeded");
    let bearer = token(&graph).await;
    let answer = patch_user(&graph, &bearer, &admin.id, &reset("Qx7-a1b2c3-Zk9")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    graph.set_directory_roles(&[DirectoryRole::PrivilegedAuthenticationAdministrator]);
    let answer = patch_user(&graph, &bearer, &admin.id, &reset("Qx7-a1b2c3-Zk9")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests() {
    let graph = emulator().await;
    let user = graph.add_cloud_user("pat@contoso.test", "Pat O'Brien");
    let bearer = token(&graph).await;
    let answer = http()
        .patch(format!("{}/v1.0/users/{}", graph.url(), user.id))
        .bearer_auth(&bearer)
        .header("content-type", "application/json")
        .body("{\"passwordProfile\": {")
        .send()
        .await
        .expect("PATCH");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest");

    let answer = patch_user(
        &graph,
        &bearer,
        &user.id,
        &json!({"passwordProfile": {"password": 7}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "BadRequest");
    let answer = patch_user(
        &graph,
        &bearer,
        &user.id,
        &json!({"lastPasswordChangeDateTime": "2026-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = patch_user(&graph, &bearer, &user.id, &json!({"noSuchThing": 1})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "BadRequest");
    assert_eq!(graph.user(&user.id).unwrap().password_resets, 0);
}
