//! Reading users (and the organization): `$select`, `$filter`, `$search`, `$count`, advanced
//! query rules, paging, single users.

use std::collections::HashSet;

use latchkey_graph_emulator::{GraphEmulator, NewUser};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{emulator, get, get_eventual, get_url, token, values_of};

/// Four cloud users and one synced.
fn seed(graph: &GraphEmulator) {
    graph.add_cloud_user("adelev@contoso.test", "Adele Vance");
    graph.add_cloud_user("alexw@contoso.test", "Alex Wilber");
    graph.add_cloud_user("pat@contoso.test", "Pat O'Brien");
    graph.add_cloud_user("megan@contoso.test", "Megan Bowen");
    graph.add_synced_user("bob@corp.test", "Bob Hybrid", "bob");
}

#[tokio::test]
async fn select_returns_only_the_selected_properties() {
    let graph = emulator().await;
    seed(&graph);
    let bearer = token(&graph).await;

    let answer = get(
        &graph,
        &bearer,
        "/v1.0/users?$select=displayName,accountEnabled,onPremisesSyncEnabled",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.header("request-id").is_some());
    assert!(answer.header("client-request-id").is_some());
    let context = answer.body["@odata.context"].as_str().unwrap();
    assert!(
        context
            .ends_with("/v1.0/$metadata#users(displayName,accountEnabled,onPremisesSyncEnabled)"),
        "{context}"
    );
    for user in answer.body["value"].as_array().unwrap() {
        let keys: HashSet<&str> = user
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["displayName", "accountEnabled", "onPremisesSyncEnabled"])
        );
    }
    let bob = &answer.body["value"][4];
    assert_eq!(bob["onPremisesSyncEnabled"], true);
    assert_eq!(
        answer.body["value"][0]["onPremisesSyncEnabled"],
        Value::Null
    );

    // Without $select: v1.0's default set, which has id but not accountEnabled.
    let answer = get(&graph, &bearer, "/v1.0/users").await;
    let first = &answer.body["value"][0];
    assert!(first["id"].is_string());
    assert!(first.get("accountEnabled").is_none());
    assert!(first.get("lastPasswordChangeDateTime").is_none());

    let answer = get(&graph, &bearer, "/v1.0/users?$select=displayName,nosuch").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "BadRequest");
    assert!(
        answer.message().contains("'nosuch'"),
        "{}",
        answer.message()
    );
}

#[tokio::test]
async fn filter_eq_startswith_or_and_quotes() {
    let graph = emulator().await;
    seed(&graph);
    let bearer = token(&graph).await;
    let users = |filter: &str| {
        let path = format!(
            "/v1.0/users?$select=userPrincipalName&$filter={}",
            urlencode(filter)
        );
        let (graph, bearer, filter) = (&graph, &bearer, filter.to_string());
        async move {
            let answer = get(graph, bearer, &path).await;
            assert_eq!(answer.status, StatusCode::OK, "{filter}: {}", answer.body);
            values_of(&answer.body, "userPrincipalName")
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        users("userPrincipalName eq 'ADELEV@contoso.test'").await,
        ["adelev@contoso.test"]
    );
    assert_eq!(
        users("startswith(displayName,'a')").await,
        ["adelev@contoso.test", "alexw@contoso.test"]
    );
    assert_eq!(
        users("startswith(displayName,'meg') or mail eq 'pat@contoso.test'").await,
        ["pat@contoso.test", "megan@contoso.test"]
    );
    assert_eq!(
        users("(startswith(displayName,'a') or startswith(displayName,'p')) and accountEnabled eq true").await,
        ["adelev@contoso.test", "alexw@contoso.test", "pat@contoso.test"]
    );
    assert_eq!(
        users("displayName eq 'Pat O''Brien'").await,
        ["pat@contoso.test"]
    );
    let id = graph.user("megan@contoso.test").unwrap().id;
    assert_eq!(
        users(&format!("id eq '{id}'")).await,
        ["megan@contoso.test"]
    );

    let answer = get(
        &graph,
        &bearer,
        &format!("/v1.0/users?$filter={}", urlencode("displayName eq")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "BadRequest");
    assert!(
        answer.message().starts_with("Invalid filter clause"),
        "{}",
        answer.message()
    );
}

#[tokio::test]
async fn advanced_queries_need_consistency_level_and_count() {
    let graph = emulator().await;
    seed(&graph);
    let bearer = token(&graph).await;
    let by_sam = format!(
        "/v1.0/users?$filter={}",
        urlencode("onPremisesSamAccountName eq 'BOB'")
    );

    let answer = get(&graph, &bearer, &by_sam).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "Request_UnsupportedQuery");
    assert!(
        answer.message().contains("onPremisesSamAccountName"),
        "{}",
        answer.message()
    );
    // The header alone is not enough for a filter; $count=true alone neither.
    assert_eq!(
        get_eventual(&graph, &bearer, &by_sam).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&graph, &bearer, &format!("{by_sam}&$count=true"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    let answer = get_eventual(
        &graph,
        &bearer,
        &format!("{by_sam}&$count=true&$select=id,onPremisesSamAccountName"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["@odata.count"], 1);
    assert_eq!(values_of(&answer.body, "onPremisesSamAccountName"), ["bob"]);

    // $search: the header is what it needs.
    let search = format!(
        "/v1.0/users?$search={}&$select=displayName",
        urlencode("\"displayName:wil\" OR \"displayName:bow\"")
    );
    let answer = get(&graph, &bearer, &search).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "Request_UnsupportedQuery");
    assert!(
        answer.message().contains("ConsistencyLevel"),
        "{}",
        answer.message()
    );
    let answer = get_eventual(&graph, &bearer, &format!("{search}&$count=true")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        values_of(&answer.body, "displayName"),
        ["Alex Wilber", "Megan Bowen"]
    );
    assert_eq!(answer.body["@odata.count"], 2);

    let answer = get_eventual(&graph, &bearer, "/v1.0/users/$count").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, 5);
}

#[tokio::test]
async fn paging_follows_next_links_that_keep_the_query() {
    let graph = emulator().await;
    for n in 0..7 {
        graph.add_cloud_user(&format!("user{n}@contoso.test"), &format!("Paged User {n}"));
    }
    graph.add_cloud_user("other@contoso.test", "Someone Else");
    let bearer = token(&graph).await;
    let mut url = format!(
        "{}/v1.0/users?$top=3&$select=id,displayName&$filter={}",
        graph.url(),
        urlencode("startswith(displayName,'Paged')")
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let answer = get_url(&url, &bearer, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}: {}", answer.body);
        pages += 1;
        let names = values_of(&answer.body, "displayName");
        assert!(names.len() <= 3);
        seen.extend(names.into_iter().map(str::to_string));
        match answer.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&format!("{}/v1.0/users?", graph.url())),
                    "{next}"
                );
                assert!(
                    next.contains("$top=3") && next.contains("$skiptoken="),
                    "{next}"
                );
                assert!(next.contains("$select=id,displayName"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        (0..7)
            .map(|n| format!("Paged User {n}"))
            .collect::<Vec<_>>()
    );

    let answer = get(&graph, &bearer, "/v1.0/users?$top=1000").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn one_user_by_id_or_upn_and_what_does_not_exist() {
    let graph = emulator().await;
    let synced = graph
        .add_user(NewUser {
            on_premises_distinguished_name: Some("CN=bob,OU=Staff,DC=corp,DC=test".to_string()),
            password_policies: Some("DisablePasswordExpiration".to_string()),
            ..NewUser::synced("bob@corp.test", "Bob Hybrid", "bob")
        })
        .expect("seeded");
    let bearer = token(&graph).await;
    let select = "$select=id,userPrincipalName,onPremisesSyncEnabled,onPremisesSamAccountName,onPremisesDistinguishedName,lastPasswordChangeDateTime,passwordPolicies";
    for key in [synced.id.as_str(), "bob@corp.test", "bob%40corp.test"] {
        for version in ["v1.0", "beta"] {
            let answer = get(&graph, &bearer, &format!("/{version}/users/{key}?{select}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{key}: {}", answer.body);
            assert_eq!(answer.body["id"], synced.id.as_str());
            assert_eq!(answer.body["onPremisesSyncEnabled"], true);
            assert_eq!(answer.body["onPremisesSamAccountName"], "bob");
            assert_eq!(answer.body["passwordPolicies"], "DisablePasswordExpiration");
            assert_eq!(
                answer.body["onPremisesDistinguishedName"],
                "CN=bob,OU=Staff,DC=corp,DC=test"
            );
            let changed = answer.body["lastPasswordChangeDateTime"].as_str().unwrap();
            assert!(changed.ends_with('Z') && changed.len() == 20, "{changed}");
            let context = answer.body["@odata.context"].as_str().unwrap();
            assert!(
                context.contains(&format!("/{version}/$metadata#users("))
                    && context.ends_with(")/$entity"),
                "{context}"
            );
        }
    }

    let missing = "8a0f6a83-0000-4000-8000-000000000000";
    let answer = get(&graph, &bearer, &format!("/v1.0/users/{missing}")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "Request_ResourceNotFound");
    assert_eq!(
        answer.message(),
        format!(
            "Resource '{missing}' does not exist or one of its queried reference-property objects are not present."
        )
    );

    let answer = get(&graph, &bearer, "/v1.0/groupz").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.message(),
        "Resource not found for the segment 'groupz'."
    );
    let answer = get(&graph, &bearer, "/v1.0/me").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_organization_says_whether_it_syncs() {
    let graph = emulator().await;
    let bearer = token(&graph).await;
    let answer = get(&graph, &bearer, "/v1.0/organization").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let org = &answer.body["value"][0];
    assert_eq!(org["id"], graph.tenant_id().as_str());
    assert_eq!(org["onPremisesSyncEnabled"], Value::Null);
    graph.add_synced_user("bob@corp.test", "Bob Hybrid", "bob");
    let answer = get(
        &graph,
        &bearer,
        "/v1.0/organization?$select=id,onPremisesSyncEnabled,onPremisesLastSyncDateTime",
    )
    .await;
    let org = &answer.body["value"][0];
    assert_eq!(org["onPremisesSyncEnabled"], true);
    assert!(org["onPremisesLastSyncDateTime"].is_string());
    assert!(org.get("displayName").is_none());
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'\''
            | b'('
            | b')'
            | b',' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
