//! The token server: Docker-style GET and OAuth2 POST flows, pull-only for anonymous users,
//! scopes recorded, expiry enforced by the real registry.

mod common;

use base64::Engine as _;
use common::*;
use rbuild_testing::{Mode, Registry};

const USER: &str = "tokenuser";
const PASS: &str = "token-secret-9";

fn claims(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

async fn token(
    client: &reqwest::Client,
    registry: &Registry,
    scopes: &[&str],
    auth: Option<(&str, &str)>,
) -> reqwest::Response {
    let ts = registry.token_server().unwrap();
    let mut query = vec![("service", ts.service())];
    query.extend(scopes.iter().map(|s| ("scope", *s)));
    let mut rb = client.get(format!("{}?{}", ts.realm(), form_encode(&query)));
    if let Some((u, p)) = auth {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send().await.unwrap()
}

async fn bearer_json(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn anonymous_users_get_pull_only_and_the_registry_enforces_it() {
    let registry = Registry::start(Mode::token(USER, PASS)).unwrap();
    let client = client_for(&registry);
    let ts = registry.token_server().unwrap();
    let body =
        bearer_json(token(&client, &registry, &["repository:lib/app:pull,push"], None).await).await;
    let t = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    let c = claims(t);
    assert_eq!(
        c["access"],
        serde_json::json!([{"type": "repository", "name": "lib/app", "actions": ["pull"]}])
    );
    assert_eq!(c["aud"], "rbuild-test-registry");
    assert_eq!(c["iss"], "rbuild-test-token-server");
    let reqs = ts.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].user, None);
    assert_eq!(reqs[0].scopes, ["repository:lib/app:pull,push"]);
    assert_eq!(reqs[0].granted, ["repository:lib/app:pull"]);

    // The registry accepts the token for pulling (404: the repo is empty, not 401)...
    let resp = client
        .get(format!("{}/v2/lib/app/tags/list", registry.url()))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // ...and refuses a push with insufficient_scope.
    let resp = client
        .post(format!("{}/v2/lib/app/blobs/uploads/", registry.url()))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    // distribution lists the actions in Go map order: pull,push or push,pull.
    assert!(
        challenge.contains("scope=\"repository:lib/app:pull,push\"")
            || challenge.contains("scope=\"repository:lib/app:push,pull\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn one_token_carries_several_scopes_and_allows_a_cross_repo_mount() {
    let registry = Registry::start(Mode::token(USER, PASS)).unwrap();
    let client = client_for(&registry);
    let ts = registry.token_server().unwrap();
    let t1 = bearer_json(
        token(
            &client,
            &registry,
            &["repository:src/app:pull,push"],
            Some((USER, PASS)),
        )
        .await,
    )
    .await;
    let t1 = t1["token"].as_str().unwrap().to_string();
    // Upload a blob with a bearer token (raw calls; push_blob uses Basic).
    let bytes = blob(5000, 7);
    let digest = sha256(&bytes);
    let resp = client
        .post(format!("{}/v2/src/app/blobs/uploads/", registry.url()))
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let loc = absolute(
        &registry.url(),
        resp.headers()["location"].to_str().unwrap(),
    );
    let resp = client
        .put(format!("{loc}&digest={digest}"))
        .bearer_auth(&t1)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let both = bearer_json(
        token(
            &client,
            &registry,
            &["repository:src/app:pull", "repository:dst/app:pull,push"],
            Some((USER, PASS)),
        )
        .await,
    )
    .await;
    let c = claims(both["token"].as_str().unwrap());
    assert_eq!(c["sub"], USER);
    assert_eq!(c["access"].as_array().unwrap().len(), 2);
    let resp = client
        .post(format!(
            "{}/v2/dst/app/blobs/uploads/?mount={digest}&from=src/app",
            registry.url()
        ))
        .bearer_auth(both["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "mount with one multi-scope token");
    assert_eq!(registry.blob_mounts(), 1);
    assert_eq!(registry.blob_uploads(), 1);
    assert_eq!(ts.request_count(), 2);
    assert_eq!(
        ts.requests()[1].scopes,
        ["repository:src/app:pull", "repository:dst/app:pull,push"]
    );
    assert!(ts.issued_tokens().contains(&t1));
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let registry = Registry::start(Mode::token(USER, PASS)).unwrap();
    let client = client_for(&registry);
    let resp = token(
        &client,
        &registry,
        &["repository:x/y:pull"],
        Some((USER, "nope")),
    )
    .await;
    assert_eq!(resp.status(), 401);
    let ts = registry.token_server().unwrap();
    assert_eq!(ts.requests()[0].status, 401);
    assert!(ts.issued_tokens().is_empty());
}

#[tokio::test]
async fn oauth2_password_and_refresh_grants() {
    let registry = Registry::start(Mode::token(USER, PASS)).unwrap();
    let client = client_for(&registry);
    let ts = registry.token_server().unwrap();
    let form = |pairs: &[(&str, &str)]| {
        client
            .post(ts.realm())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(pairs))
    };
    let resp = form(&[
        ("grant_type", "password"),
        ("username", USER),
        ("password", PASS),
        ("service", "rbuild-test-registry"),
        ("scope", "repository:a/b:pull,push"),
        ("client_id", "rbuild-tests"),
        ("access_type", "offline"),
    ])
    .send()
    .await
    .unwrap();
    let body = bearer_json(resp).await;
    let refresh = body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string();
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!(["pull", "push"])
    );

    let resp = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "rbuild-test-registry"),
        ("scope", "repository:c/d:push"),
        ("client_id", "rbuild-tests"),
    ])
    .send()
    .await
    .unwrap();
    let body = bearer_json(resp).await;
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], USER);
    assert_eq!(c["access"][0]["name"], "c/d");

    let resp = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "made-up"),
        ("service", "rbuild-test-registry"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = form(&[
        ("grant_type", "password"),
        ("username", USER),
        ("password", "bad"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);
    let grants: Vec<_> = ts
        .requests()
        .iter()
        .map(|r| (r.grant_type.clone().unwrap(), r.status))
        .collect();
    assert_eq!(
        grants,
        [
            ("password".into(), 200),
            ("refresh_token".into(), 200),
            ("refresh_token".into(), 400),
            ("password".into(), 401)
        ]
    );
    let issued = ts.issued_tokens();
    assert!(issued.contains(&refresh));
    assert_eq!(issued.len(), 3, "two access tokens and one refresh token");
}

#[tokio::test]
async fn expired_tokens_are_rejected_by_the_registry() {
    let registry = Registry::start(Mode::token(USER, PASS)).unwrap();
    let client = client_for(&registry);
    let ts = registry.token_server().unwrap();
    ts.set_lifetime_secs(0);
    let body = bearer_json(
        token(
            &client,
            &registry,
            &["repository:a/b:pull"],
            Some((USER, PASS)),
        )
        .await,
    )
    .await;
    assert_eq!(
        body["expires_in"], 60,
        "the server claims the usual lifetime"
    );
    let resp = client
        .get(format!("{}/v2/a/b/tags/list", registry.url()))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "an expired token must be refused");
    ts.set_lifetime_secs(300);
    let body = bearer_json(
        token(
            &client,
            &registry,
            &["repository:a/b:pull"],
            Some((USER, PASS)),
        )
        .await,
    )
    .await;
    assert_eq!(body["expires_in"], 300);
    let resp = client
        .get(format!("{}/v2/a/b/tags/list", registry.url()))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "a fresh token is accepted (empty repo)");
}
