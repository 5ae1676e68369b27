//! The dynamic webhook of a Jira Cloud 3LO integration (docs/reference.md
//! §11.3) kept alive by the worker's scheduler and the `jira_cloud.webhook_refresh`
//! job, against the real RabbitMQ and Postgres and the fake Atlassian gateway
//! (`fake_cloud`), whose webhook group takes only the integration's bearer
//! token: a due webhook refreshed, a vanished one registered again, and the
//! claim that makes many workers enqueue one refresh per interval.

use crate::common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::TestApp;
use common::app::WAIT;
use common::fake_cloud::{CLOUD_ID, FakeCloud};
use jirasync::cloud::dynamic_webhook;
use jirasync::integration::install_record::{CloudInstall, save_cloud};
use jirasync::integration::{self, Credentials, Integration};
use serde_json::Value;

/// The 3LO access token the fake gateway takes.
const ACCESS_TOKEN: &str = "3lo-access-token-5566";
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// A test app without a worker, refreshing dynamic webhooks every second.
async fn app() -> TestApp {
    TestApp::builder()
        .no_worker()
        .configure(|settings| {
            settings.atlassian.webhook_refresh_interval = REFRESH_INTERVAL;
            settings.atlassian.webhook_jql = "project IN (ACME, OPS)".to_owned();
        })
        .start()
        .await
}

/// The site connected with OAuth 2.0 (3LO) through the gateway, as the install
/// job saves it, its token one the fake takes.
async fn connected(fake: &FakeCloud, pool: &jirasync::db::DbPool) -> Integration {
    fake.grant_access_token(ACCESS_TOKEN);
    let credentials = Credentials::OAuth2 {
        client_id: "3lo-client".into(),
        client_secret: "3lo-client-secret".into(),
        access_token: ACCESS_TOKEN.into(),
        refresh_token: Some("3lo-refresh".into()),
        expires_at: Some(Utc::now() + TimeDelta::hours(1)),
        refreshed_at: Some(Utc::now()),
    };
    let client = pool.get().await.expect("a connection");
    let site = fake.site.uri();
    let gateway = fake.gateway();
    let install = CloudInstall {
        site: &site,
        cloud_id: CLOUD_ID,
        base_url: &gateway,
        name: None,
        credentials: &credentials,
    };
    save_cloud(&client, pool.keys(), &install)
        .await
        .expect("save the Cloud integration")
}

/// The app, the fake, a pool, and the 3LO integration with its dynamic
/// webhook registered as the install registers it; no worker yet.
struct Registered {
    app: TestApp,
    fake: FakeCloud,
    pool: jirasync::db::DbPool,
    saved: Integration,
    webhook: dynamic_webhook::Recorded,
}

impl Registered {
    async fn start() -> Self {
        let app = app().await;
        let fake = FakeCloud::start().await;
        let pool = jirasync::db::connect(&app.settings.database, 2)
            .await
            .expect("a pool");
        let saved = connected(&fake, &pool).await;
        let (public_url, jql) = (
            &app.settings.public.url,
            &app.settings.atlassian.webhook_jql,
        );
        let webhook = dynamic_webhook::register(&pool, &saved, public_url, jql)
            .await
            .expect("register the dynamic webhook");
        Self {
            app,
            fake,
            pool,
            saved,
            webhook,
        }
    }

    fn webhook_url(&self) -> String {
        self.saved
            .webhook_url(&self.app.settings.public.url)
            .expect("the webhook URL")
    }
}

async fn reread(pool: &jirasync::db::DbPool, id: i64) -> Integration {
    let client = pool.get().await.expect("a connection");
    integration::by_id(&client, pool.keys(), id)
        .await
        .expect("read")
        .expect("the integration")
}

/// `integration status ID --json`'s `webhook`.
fn status_webhook(app: &TestApp, id: i64) -> Value {
    let output = common::output(
        &["integration", "status", &id.to_string(), "--json"],
        &app.settings,
    );
    assert!(output.status.success(), "{output:?}");
    let json: Value = serde_json::from_slice(&output.stdout).expect("status prints JSON");
    json["webhook"].clone()
}

#[tokio::test]
async fn a_due_dynamic_webhook_is_refreshed_by_the_workers_scheduler() {
    let started = Registered::start().await;
    let url = started.webhook_url();
    let Registered {
        app,
        fake,
        pool,
        saved,
        webhook: registered,
    } = started;
    assert!(registered.registered);
    let webhooks = fake.dynamic_webhooks();
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    assert_eq!(webhooks[0].0.to_string(), registered.id);
    assert_eq!(webhooks[0].1.url, url);
    assert_eq!(webhooks[0].1.jql, "project IN (ACME, OPS)");
    let first = reread(&pool, saved.id).await.metadata;
    assert_eq!(first.webhook_kind.as_deref(), Some("dynamic"));
    assert_eq!(first.webhook_id.as_deref(), Some(registered.id.as_str()));
    assert_eq!(fake.dynamic_refreshes(), 0);

    let worker = common::spawn_worker(&app.settings);
    common::eventually("the worker refreshes the webhook", WAIT, || async {
        fake.dynamic_refreshes() >= 1
            && reread(&pool, saved.id).await.metadata.webhook_refreshed_at
                > first.webhook_refreshed_at
    })
    .await;
    let refreshed = reread(&pool, saved.id).await.metadata;
    assert_eq!(refreshed.webhook_id, first.webhook_id, "the same webhook");
    let expires_at = refreshed.webhook_expires_at.expect("an expiry");
    let ahead = expires_at - Utc::now();
    assert!(
        ahead > TimeDelta::days(29) && ahead <= TimeDelta::days(30),
        "{expires_at}"
    );
    assert_eq!(fake.dynamic_webhooks().len(), 1, "no second webhook");
    let webhook = status_webhook(&app, saved.id);
    assert_eq!(webhook["kind"], "dynamic", "{webhook}");
    assert_eq!(webhook["id"], registered.id.as_str(), "{webhook}");
    assert_eq!(webhook["hmac_signed"], false, "{webhook}");
    let shown: DateTime<Utc> = webhook["expires_at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .expect("expires_at");
    assert!(shown > Utc::now() + TimeDelta::days(29), "{webhook}");
    worker.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_dynamic_webhook_gone_from_jira_is_registered_again() {
    let registered = Registered::start().await;
    let url = registered.webhook_url();
    let Registered {
        app,
        fake,
        pool,
        saved,
        webhook: old,
    } = registered;
    // Expired, or deleted by an admin.
    fake.drop_dynamic_webhooks();

    let worker = common::spawn_worker(&app.settings);
    common::eventually("the worker registers a new webhook", WAIT, || async {
        fake.dynamic_webhooks().len() == 1
    })
    .await;
    let (id, webhook) = fake.dynamic_webhooks().remove(0);
    assert_ne!(id.to_string(), old.id, "a new webhook");
    assert_eq!(webhook.url, url);
    assert_eq!(webhook.jql, "project IN (ACME, OPS)");
    common::eventually("its id is recorded", WAIT, || async {
        reread(&pool, saved.id).await.metadata.webhook_id == Some(id.to_string())
    })
    .await;
    worker.stop().await;
    app.finish().await;
}

/// Claims of two schedulers at once, then again at once.
async fn claims(pool: &jirasync::db::DbPool, every: Duration) -> Vec<i64> {
    let (a, b) = (
        pool.get().await.expect("a connection"),
        pool.get().await.expect("a connection"),
    );
    let (one, two) = tokio::join!(
        jirasync::db::webhook_refresh::claim_due(&a, every),
        jirasync::db::webhook_refresh::claim_due(&b, every),
    );
    let mut all = one.expect("claim");
    all.extend(two.expect("claim"));
    all.sort_unstable();
    all
}

#[tokio::test]
async fn of_many_schedulers_one_claims_each_due_refresh_and_only_3lo_integrations_are_due() {
    let app = app().await;
    let fake = FakeCloud::start().await;
    let pool = jirasync::db::connect(&app.settings.database, 4)
        .await
        .expect("a pool");
    let threelo = connected(&fake, &pool).await;
    // An API-token Cloud integration has an admin webhook that never expires.
    let api_token = common::fake_cloud::connected_site(
        &app.settings,
        "https://other.atlassian.net",
        "7c3f6a5e-0000-4000-8000-0000000000aa",
        &Credentials::ApiToken {
            email: "admin@example.org".into(),
            token: "atl-token".into(),
        },
    )
    .await;
    let every = Duration::from_secs(3600);

    // Connected just now: left to the install job, which registers the webhook.
    assert_eq!(claims(&pool, every).await, Vec::<i64>::new());
    let client = pool.get().await.expect("a connection");
    let db = common::db(&app.settings).await;
    db.execute(
        "UPDATE integration_credentials SET refreshed_at = now() - interval '11 minutes'",
        &[],
    )
    .await
    .expect("age the install");
    assert_eq!(
        claims(&pool, every).await,
        vec![threelo.id],
        "never registered"
    );
    assert_eq!(
        claims(&pool, every).await,
        Vec::<i64>::new(),
        "claimed once"
    );

    // Registered: due one interval later, claimed once then.
    jirasync::db::webhook_refresh::refreshed(&client, threelo.id, Utc::now())
        .await
        .expect("record");
    db.execute(
        "UPDATE cloud_webhook_refreshes SET scheduled_at = NULL",
        &[],
    )
    .await
    .expect("forget the claim");
    assert_eq!(claims(&pool, every).await, Vec::<i64>::new(), "fresh");
    db.execute(
        "UPDATE cloud_webhook_refreshes SET refreshed_at = now() - interval '2 hours'",
        &[],
    )
    .await
    .expect("age the webhook");
    assert_eq!(claims(&pool, every).await, vec![threelo.id], "due");
    // A claim given back (its job was not enqueued) is claimed at the next look.
    jirasync::db::webhook_refresh::release_claim(&client, threelo.id)
        .await
        .expect("release");
    assert_eq!(claims(&pool, every).await, vec![threelo.id], "given back");

    // Needing to be connected again, or disabled: not due.
    db.execute(
        "UPDATE cloud_webhook_refreshes SET scheduled_at = NULL",
        &[],
    )
    .await
    .expect("forget the claim");
    db.execute(
        "UPDATE integration_credentials SET needs_reauth_at = now() WHERE integration_id = $1",
        &[&threelo.id],
    )
    .await
    .expect("needs reauth");
    assert_eq!(
        claims(&pool, every).await,
        Vec::<i64>::new(),
        "needs_reauth"
    );
    db.execute(
        "UPDATE integration_credentials SET needs_reauth_at = NULL WHERE integration_id = $1",
        &[&threelo.id],
    )
    .await
    .expect("connected again");
    db.execute(
        "UPDATE integrations SET status = 'disabled' WHERE id = $1",
        &[&threelo.id],
    )
    .await
    .expect("disable");
    assert_eq!(claims(&pool, every).await, Vec::<i64>::new(), "disabled");
    assert!(api_token.id != threelo.id);
    app.finish().await;
}

#[tokio::test]
async fn a_refresh_jira_refuses_is_dead_lettered_naming_its_answer_and_a_5xx_waits() {
    use jirasync::queue::job::Job;
    use jirasync::worker::jobs::WebhookRefresh;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let app = TestApp::builder()
        .no_worker()
        .configure(|settings| {
            // Never due by itself: the test enqueues the job.
            settings.atlassian.webhook_refresh_interval = Duration::from_secs(86_400);
        })
        .start()
        .await;
    // A gateway whose webhook list refuses the app (e.g. the scope was taken
    // away), then one that is failing.
    let gateway = MockServer::start().await;
    let credentials = Credentials::OAuth2 {
        client_id: "3lo-client".into(),
        client_secret: "3lo-client-secret".into(),
        access_token: ACCESS_TOKEN.into(),
        refresh_token: Some("3lo-refresh".into()),
        expires_at: Some(Utc::now() + TimeDelta::hours(1)),
        refreshed_at: Some(Utc::now()),
    };
    let saved =
        common::fake_cloud::connected_site(&app.settings, &gateway.uri(), CLOUD_ID, &credentials)
            .await;
    let bearer = format!("Bearer {ACCESS_TOKEN}");
    Mock::given(method("GET"))
        .and(path("/rest/api/3/webhook"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "errorMessages": ["The app is not allowed to manage webhooks."], "errors": {}
        })))
        .up_to_n_times(1)
        .mount(&gateway)
        .await;
    let db = common::db(&app.settings).await;
    db.execute(
        "UPDATE integrations SET metadata = metadata || '{\"webhook_id\":\"10001\",\"webhook_kind\":\"dynamic\"}' WHERE id = $1",
        &[&saved.id],
    )
    .await
    .expect("record a webhook");
    let worker = common::spawn_worker(&app.settings);
    let publish = || async {
        let (_, body, props) = WebhookRefresh {
            integration_id: saved.id,
        }
        .to_message();
        common::publish(
            &app.channel,
            &app.settings,
            WebhookRefresh::TYPE,
            &body,
            props,
        )
        .await;
    };
    publish().await;
    let dead = common::names(&app.settings).dead();
    common::eventually("the refused refresh is dead-lettered", WAIT, || async {
        common::depth(&app.channel, &dead).await == 1
    })
    .await;
    let letters = common::output(&["dlq", "list", "--json"], &app.settings);
    let listed = String::from_utf8_lossy(&letters.stdout).into_owned();
    assert!(
        listed.contains("refresh the dynamic webhook in Jira Cloud")
            && listed.contains("403")
            && listed.contains("not allowed to manage webhooks"),
        "{listed}"
    );
    assert!(!listed.contains(ACCESS_TOKEN), "{listed}");

    // Now Jira fails for a while: the job waits on the retry tiers and asks
    // again, and is not dead-lettered.
    Mock::given(method("GET"))
        .and(path("/rest/api/3/webhook"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&gateway)
        .await;
    publish().await;
    let lists = || async {
        gateway
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| request.url.path() == "/rest/api/3/webhook")
            .count()
    };
    common::eventually("the failing refresh is asked again", WAIT, || async {
        lists().await >= 3
    })
    .await;
    assert_eq!(
        common::depth(&app.channel, &dead).await,
        1,
        "not dead-lettered"
    );
    worker.stop().await;
    app.finish().await;
}
