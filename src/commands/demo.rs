//! `jirasync demo [--send]`: seeds a small organization wired to a demo Jira
//! integration, prints the webhook URL and a ready `curl`; `--send` posts it to the
//! running ingress and prints the resulting assignment. Safe to re-run.

use std::time::{Duration, Instant};

use anyhow::Context;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};

use crate::config::{DatabaseSettings, PublicSettings};
use crate::integration::install_record::{self, Install};
use crate::secrets::Keyring;

/// The arguments of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Send the demo webhook and print the resulting assignment.
    #[arg(long)]
    pub send: bool,
    /// Postgres.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// Where the ingress is, and the base of the webhook URL.
    #[command(flatten)]
    pub public: PublicSettings,
}

/// The demo Jira's base URL (nothing answers there: the demo calls no Jira).
const BASE_URL: &str = "http://demo.jira.local";
/// What names the demo's application link, so its external id is
/// `demo.jira.local:jirasync-demo`.
const LINK: &str = "jirasync-demo";
/// The Jira issue the demo group is linked to.
pub const ISSUE_KEY: &str = "DEMO-1";
/// Who the demo webhook assigns.
pub const ASSIGNEE_EMAIL: &str = "jane@example.org";

/// What `demo` seeded.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The demo integration.
    pub integration_id: i64,
    /// The group linked to DEMO-1.
    pub group_id: i64,
    /// Where Jira would post.
    pub webhook_url: String,
}

/// `jirasync demo`.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let demo = seed(&args.database, &args.public).await?;
    let body = payload(chrono::Utc::now());
    if !args.send {
        println!(
            "Seeded organization `demo`: users jane@example.org and john@example.org, a group linked to {ISSUE_KEY}."
        );
        println!(
            "Webhook URL (register it in Jira, or try it yourself):\n  {}\n",
            demo.webhook_url
        );
        println!("Start the service (`jirasync run`), then assign {ISSUE_KEY} to Jane:\n");
        println!(
            "curl -i -X POST -H 'content-type: application/json' \\\n  --data '{}' \\\n  '{}'",
            body.to_string().replace('\'', "'\\''"),
            demo.webhook_url
        );
        println!("\nor run `jirasync demo --send`.");
        return Ok(());
    }
    let response = reqwest::Client::new()
        .post(&demo.webhook_url)
        .timeout(Duration::from_secs(10))
        .json(&body)
        .send()
        .await
        .with_context(|| {
            format!(
                "cannot reach the ingress at {} (JIRASYNC_PUBLIC_URL); start it with `jirasync run`",
                args.public.url
            )
        })?;
    let status = response.status();
    let answer = response.text().await.unwrap_or_default();
    if status.as_u16() != 202 {
        anyhow::bail!("the ingress answered {status}: {answer}");
    }
    println!("ingress: {status} {answer}");
    let (client, _) = super::database(&args.database).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(row) = client
            .query_opt(
                "SELECT ga.user_id, u.username, ga.date_added::text
                   FROM group_assignees ga JOIN users u ON u.id = ga.user_id
                  WHERE ga.group_id = $1",
                &[&demo.group_id],
            )
            .await
            .context("failed to read the assignment")?
        {
            let assignment = json!({
                "issue": ISSUE_KEY,
                "group_id": demo.group_id,
                "assignee": {"user_id": row.get::<_, i64>(0), "username": row.get::<_, String>(1)},
                "date_added": row.get::<_, String>(2),
            });
            println!("{assignment:#}");
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the webhook was accepted but the group is still unassigned after 10 s; is a worker running (`jirasync run` or `jirasync worker`)?"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seeds (or refreshes) the demo rows; returns their ids and the webhook URL.
pub async fn seed(database: &DatabaseSettings, public: &PublicSettings) -> anyhow::Result<Demo> {
    crate::db::migrate::run(&database.url).await?;
    let (mut client, keys) = super::database(database).await?;
    let tx = client.transaction().await.context("failed to begin")?;
    let demo = seed_rows(&tx, &keys, public)
        .await
        .context("failed to seed the demo rows")?;
    tx.commit()
        .await
        .context("failed to commit the demo rows")?;
    Ok(demo)
}

async fn id(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one(sql, params).await?.get(0))
}

async fn seed_rows(
    tx: &impl GenericClient,
    keys: &Keyring,
    public: &PublicSettings,
) -> anyhow::Result<Demo> {
    let org = id(tx, "INSERT INTO organizations (slug, name) VALUES ('demo', 'Demo') ON CONFLICT (slug) DO UPDATE SET status = 'active' RETURNING id", &[]).await?;
    let project = id(tx, "INSERT INTO projects (organization_id, slug, name) VALUES ($1, 'checkout', 'Checkout') ON CONFLICT (organization_id, slug) DO UPDATE SET name = EXCLUDED.name RETURNING id", &[&org]).await?;
    let team = id(tx, "INSERT INTO teams (organization_id, slug, name) VALUES ($1, 'payments', 'Payments') ON CONFLICT (organization_id, slug) DO UPDATE SET status = 'active' RETURNING id", &[&org]).await?;
    tx.execute(
        "INSERT INTO project_teams (project_id, team_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&project, &team],
    )
    .await?;
    for (username, name, email) in [
        ("demo-jane", "Jane Doe", ASSIGNEE_EMAIL),
        ("demo-john", "John Roe", "john@example.org"),
    ] {
        let user = id(tx, "INSERT INTO users (username, name) VALUES ($1, $2) ON CONFLICT (username) DO UPDATE SET is_active = true RETURNING id", &[&username, &name]).await?;
        tx.execute(
            "INSERT INTO user_emails (user_id, email, is_verified) SELECT $1, $2, true
              WHERE NOT EXISTS (SELECT 1 FROM user_emails WHERE user_id = $1 AND email = $2)",
            &[&user, &email],
        )
        .await?;
        let member = id(tx, "INSERT INTO organization_members (organization_id, user_id) VALUES ($1, $2) ON CONFLICT (organization_id, user_id) DO UPDATE SET role = organization_members.role RETURNING id", &[&org, &user]).await?;
        tx.execute("INSERT INTO team_members (team_id, organization_member_id) VALUES ($1, $2) ON CONFLICT (team_id, organization_member_id) DO UPDATE SET is_active = true", &[&team, &member]).await?;
    }
    // The same save as every install; a re-run keeps the webhook secret, so
    // earlier webhook URLs stay valid.
    let integration = install_record::save(
        tx,
        keys,
        &Install {
            base_url: BASE_URL,
            verify_ssl: true,
            name: Some("Demo Jira"),
            link: LINK,
            credentials: None,
        },
    )
    .await?;
    let config = json!({"sync_reverse_assignment": true, "sync_status_reverse": false});
    tx.execute(
        "INSERT INTO organization_integrations (organization_id, integration_id, config) VALUES ($1, $2, $3)
         ON CONFLICT (organization_id, integration_id) DO UPDATE SET config = EXCLUDED.config, status = 'active'",
        &[&org, &integration.id, &config],
    )
    .await?;
    let issue = id(tx, "INSERT INTO external_issues (organization_id, integration_id, key) VALUES ($1, $2, $3) ON CONFLICT (organization_id, integration_id, key) DO UPDATE SET key = EXCLUDED.key RETURNING id", &[&org, &integration.id, &ISSUE_KEY]).await?;
    let title = "NullPointerException in CheckoutController";
    let group = match tx
        .query_opt(
            "SELECT id FROM groups WHERE project_id = $1 AND title = $2 ORDER BY id LIMIT 1",
            &[&project, &title],
        )
        .await?
    {
        Some(row) => row.get(0),
        None => {
            id(
                tx,
                "INSERT INTO groups (project_id, title) VALUES ($1, $2) RETURNING id",
                &[&project, &title],
            )
            .await?
        }
    };
    tx.execute(
        "INSERT INTO group_links (group_id, project_id, linked_type, linked_id) VALUES ($1, $2, 'issue', $3) ON CONFLICT DO NOTHING",
        &[&group, &project, &issue],
    )
    .await?;
    Ok(Demo {
        integration_id: integration.id,
        group_id: group,
        webhook_url: integration.webhook_url(&public.url)?,
    })
}

/// A real-shaped `jira:issue_updated` body assigning DEMO-1 to Jane, updated `at`.
pub fn payload(at: chrono::DateTime<chrono::Utc>) -> Value {
    let updated = at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
    let jane = json!({"name": "jane", "key": "JIRAUSER10100", "emailAddress": ASSIGNEE_EMAIL, "displayName": "Jane Doe", "active": true});
    json!({
        "timestamp": at.timestamp_millis(),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_assigned",
        "user": jane,
        "issue": {
            "id": "10002",
            "key": ISSUE_KEY,
            "fields": {"summary": "Checkout fails with a NullPointerException", "assignee": jane, "updated": updated,
                       "status": {"name": "In Progress"}, "project": {"key": "DEMO"}}
        },
        "changelog": {"id": "10400", "items": [{"field": "assignee", "fieldtype": "jira", "from": null, "to": "jane", "toString": "Jane Doe"}]}
    })
}
