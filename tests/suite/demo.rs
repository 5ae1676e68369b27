//! `jirasync demo`: seeding is idempotent and `--send` assigns DEMO-1 through the
//! real ingress and worker.

use crate::common;

use jirasync::commands::demo;

#[tokio::test]
async fn seeding_twice_keeps_the_same_rows_and_webhook_url() {
    let settings = common::migrated().await;
    let first = demo::seed(&settings.database, &settings.public)
        .await
        .expect("first seed");
    let second = demo::seed(&settings.database, &settings.public)
        .await
        .expect("second seed");
    assert_eq!(first.integration_id, second.integration_id);
    assert_eq!(first.group_id, second.group_id);
    assert_eq!(
        first.webhook_url, second.webhook_url,
        "the secret is kept, so old URLs stay valid"
    );
    let db = common::db(&settings).await;
    for (table, rows) in [
        ("organizations", 1),
        ("users", 2),
        ("user_emails", 2),
        ("team_members", 2),
        ("groups", 1),
        ("group_links", 1),
    ] {
        let count: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(count, rows, "{table}");
    }
}

#[tokio::test]
async fn sending_the_demo_webhook_assigns_demo_1_to_jane() {
    let mut settings = common::migrated().await;
    let ingress = common::spawn_ingress(&settings, true).await;
    settings.public.url = format!("http://{}", ingress.address);
    let worker = common::spawn_worker(&settings);
    demo::run(&demo::Args {
        send: true,
        database: settings.database.clone(),
        public: settings.public.clone(),
    })
    .await
    .expect("demo --send");
    let demo = demo::seed(&settings.database, &settings.public)
        .await
        .expect("seed");
    let db = common::db(&settings).await;
    let username: String = db
        .query_one(
            "SELECT u.username FROM group_assignees ga JOIN users u ON u.id = ga.user_id WHERE ga.group_id = $1",
            &[&demo.group_id],
        )
        .await
        .expect("DEMO-1's group is assigned")
        .get(0);
    assert_eq!(username, "demo-jane");
    worker.stop().await;
    ingress.stop().await;
}
