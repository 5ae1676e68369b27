//! A worker's idle slots lent (docs/reference.md §10.2, "Slots lent"), against
//! the real Postgres and RabbitMQ, the real worker and a fake Jira that checks
//! every call's OAuth signature and answers each after [`SLOW`]: with a backlog
//! of pushes and no webhooks or jobs, a worker at concurrency 16 has more pushes
//! at Jira at once than its 4 push slots allow, never more than its 16; a
//! webhook or a job sent meanwhile is handled while pushes still wait; and every
//! push lands once. The other way round, a burst of webhooks whose assignees
//! Jira must be asked about takes the idle push and job slots, and a push
//! captured meanwhile is made while webhooks still wait.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::common::fake_jira::FakeJira;
use crate::common::seed::{assignee_changed, jira_user};
use crate::common::{self, TestApp as Scene, app::T1, eventually};

const ACCESS_TOKEN: &str = "acc-tok";
/// How long the fake Jira takes to answer each call: a push makes four (read,
/// user search, write, read back), one after the other.
const SLOW: Duration = Duration::from_millis(300);
/// Pushes in the backlog: at 15 at a time they take about 6 s, at 4 about 24 s.
const BACKLOG: usize = 80;
const WAIT: Duration = Duration::from_secs(40);

/// When each call reached the fake Jira.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

/// Verifies the call's OAuth signature, notes when it came, and answers
/// `answer` after `delay`.
struct Timed {
    jira: Arc<FakeJira>,
    arrivals: Arrivals,
    answer: ResponseTemplate,
    delay: Duration,
}

impl Respond for Timed {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.arrivals.lock().expect("arrivals").push(Instant::now());
        match self.jira.verify(request) {
            Ok(_) => self.answer.clone().set_delay(self.delay),
            Err(problem) => ResponseTemplate::new(401)
                .set_body_string(format!("oauth_problem={problem}&oauth_problem_advice=fake")),
        }
    }
}

/// The most calls that reached Jira within any `answered_in` (the time the
/// fake takes to answer each): a message's calls come one after the other, each
/// at least `answered_in` after the one before, so this is at most the messages
/// at Jira at once.
fn most_at_once(arrivals: &Arrivals, answered_in: Duration) -> usize {
    let mut times = arrivals.lock().expect("arrivals").clone();
    times.sort();
    (0..times.len())
        .map(|first| {
            times[first..]
                .iter()
                .take_while(|at| at.duration_since(times[first]) < answered_in)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// An issue `key` linked to a group of an organization that pushes
/// assignments, assigned by the application to a teammate Jira knows.
async fn assigned_by_the_host(s: &Scene, arrivals: &Arrivals, key: &str) {
    let (group, project, user) = pushable(s, arrivals, key).await;
    s.host_assigns(group, project, user).await;
}

/// An issue `key` linked to a group of an organization that pushes
/// assignments, and a teammate Jira knows and would let take it: the group,
/// its project and the teammate.
async fn pushable(s: &Scene, arrivals: &Arrivals, key: &str) -> (i64, i64, i64) {
    let org = s.seed().org(s.integration, true, key).await;
    s.forward_assignments(org.id).await;
    let email = format!("{}@example.org", key.to_lowercase());
    let user = s.seed().teammate(&org, &email).await;
    let name = key.to_lowercase();
    let timed = |answer| Timed {
        jira: Arc::clone(&s.jira),
        arrivals: Arc::clone(arrivals),
        answer,
        delay: SLOW,
    };
    let issue = json!({"key": key, "fields": {
        "assignee": null,
        "status": {"id": "1", "name": "Open"},
        "project": {"id": "10000", "key": "LEND"},
        "updated": "2024-01-01T10:00:00.000+0000",
    }});
    Mock::given(method("GET"))
        .and(path(format!("/rest/api/2/issue/{key}")))
        .respond_with(timed(ResponseTemplate::new(200).set_body_json(issue)))
        .mount(&s.server)
        .await;
    let users = json!([{"name": name, "key": format!("JIRAUSER-{name}"),
        "emailAddress": email, "active": true}]);
    Mock::given(method("GET"))
        .and(path("/rest/api/2/user/assignable/search"))
        .and(query_param("issueKey", key))
        .and(query_param("username", email.as_str()))
        .respond_with(timed(ResponseTemplate::new(200).set_body_json(users)))
        .mount(&s.server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/rest/api/2/issue/{key}/assignee")))
        .and(body_json(json!({ "name": name })))
        .respond_with(timed(ResponseTemplate::new(204)))
        .mount(&s.server)
        .await;
    (org.group_id, org.project_id, user)
}

/// The prefetches of the consumers of the scene's `P.webhooks`, `P.jobs` and
/// `P.outbound` on the shared broker, each queue's summed, as RabbitMQ tells
/// them (one `rabbitmqctl list_consumers`).
async fn prefetches(s: &Scene) -> (u32, u32, u32) {
    let listed = common::rabbitmqctl_rows("list_consumers", ["queue_name", "prefetch_count"]).await;
    let prefetch_of = |queue: String| -> u32 {
        listed
            .iter()
            .filter(|(name, _)| *name == queue)
            .filter_map(|(_, prefetch)| prefetch.parse::<u32>().ok())
            .sum()
    };
    let names = common::names(&s.settings);
    (
        prefetch_of(names.webhooks()),
        prefetch_of(names.jobs()),
        prefetch_of(names.outbound()),
    )
}

/// Pushes decided so far.
async fn pushed(s: &Scene) -> i64 {
    s.db.query_one(
        "SELECT count(*) FROM sync_events WHERE kind = 'assignee_outbound' AND outcome = 'pushed'",
        &[],
    )
    .await
    .expect("pushes")
    .get(0)
}

/// A worker's prefetch at one concurrency: its webhooks', its jobs', its
/// pushes', and the webhook and job slots it lends
/// (`queue::consumer::prefetch`).
struct Split {
    concurrency: u16,
    webhooks: u32,
    jobs: u32,
    pushes: u32,
    lent: u32,
}

/// The default concurrency: every webhook slot and the job's lent, and given
/// back in parts when lent pushes still run.
const AT_16: Split = Split {
    concurrency: 16,
    webhooks: 11,
    jobs: 1,
    pushes: 4,
    lent: 12,
};

/// What arrives while the slots are lent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meanwhile {
    /// A webhook assigning a group: applied.
    Webhook,
    /// A job of a type no worker knows, straight into `P.jobs`: dead-lettered.
    Job,
}

#[tokio::test]
async fn idle_webhook_slots_carry_a_push_backlog_and_come_back_when_a_webhook_waits() {
    lent_and_given_back(AT_16, Meanwhile::Webhook).await;
}

#[tokio::test]
async fn the_lent_job_slot_comes_back_when_a_job_waits() {
    lent_and_given_back(AT_16, Meanwhile::Job).await;
}

#[tokio::test]
async fn at_a_high_concurrency_twelve_slots_are_lent_and_the_webhooks_get_their_whole_share_back() {
    lent_and_given_back(
        Split {
            concurrency: 64,
            webhooks: 52,
            jobs: 4,
            pushes: 8,
            lent: 12,
        },
        Meanwhile::Webhook,
    )
    .await;
}

/// Publishes a job of a type no worker knows straight into `P.jobs`, waiting
/// for the broker's confirm.
async fn unknown_job(s: &Scene) {
    s.channel
        .confirm_select(Default::default())
        .await
        .expect("confirm mode");
    let (_, props) = jirasync::queue::message::job_properties("jira_server.lent_slots_test");
    jirasync::queue::publisher::publish_confirmed(
        &s.channel,
        "",
        &common::names(&s.settings).jobs(),
        b"{}",
        props,
    )
    .await
    .expect("publish confirmed");
}

/// A backlog of pushes on a worker at `split.concurrency`: the webhooks' and
/// jobs' slots are lent to it, a webhook or a job sent meanwhile is handled
/// while pushes still wait, every push lands once, and the webhooks and jobs
/// get their share back.
async fn lent_and_given_back(split: Split, meanwhile: Meanwhile) {
    let mut s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .concurrency(split.concurrency)
        .no_worker()
        .start()
        .await;
    let arrivals = Arrivals::default();
    let keys: Vec<String> = (0..BACKLOG).map(|n| format!("LEND-{n}")).collect();
    for key in &keys {
        assigned_by_the_host(&s, &arrivals, key).await;
    }
    // A group Jira will assign by webhook while the pushes run.
    let inbound = s.seed().org(s.integration, true, "INBOUND-1").await;
    let inbound_user = s.seed().teammate(&inbound, "in@example.org").await;

    s.worker = Some(common::spawn_worker(&s.settings));
    let own = split.pushes as usize;
    eventually(
        "more pushes at Jira at once than the push slots",
        WAIT,
        || async { most_at_once(&arrivals, SLOW) > own },
    )
    .await;
    // The broker's view: the lent slots consume pushes, and nothing consumes
    // webhooks or jobs meanwhile.
    let lent = split.pushes + split.lent;
    eventually(
        "the webhooks' and the jobs' slots lent, as RabbitMQ sees them",
        WAIT,
        || async { prefetches(&s).await == (0, 0, lent) },
    )
    .await;

    let sent = Instant::now();
    match meanwhile {
        Meanwhile::Webhook => {
            s.send(&assignee_changed(
                "INBOUND-1",
                jira_user("in@example.org"),
                T1,
            ))
            .await;
            s.wait_assignee(inbound.group_id, Some(inbound_user)).await;
        }
        Meanwhile::Job => {
            unknown_job(&s).await;
            eventually("the job is handled (dead-lettered)", WAIT, || async {
                s.dead_letters().await == 1
            })
            .await;
        }
    }
    let waited = sent.elapsed();
    let done = pushed(&s).await;
    assert!(
        done < BACKLOG as i64,
        "the {meanwhile:?} waited for the whole backlog ({done} pushed, {waited:?})"
    );

    eventually("every push lands", WAIT, || async {
        pushed(&s).await == BACKLOG as i64
    })
    .await;
    for key in &keys {
        let puts = s.assignee_puts(key).await;
        assert_eq!(
            puts,
            [json!({"name": key.to_lowercase()})],
            "{key} written once"
        );
    }
    // Once the lent slots have nothing more to do, webhooks and jobs have their
    // whole share again.
    eventually(
        "the webhooks' and the jobs' slots back, as RabbitMQ sees them",
        WAIT,
        || async { prefetches(&s).await == (split.webhooks, split.jobs, split.pushes) },
    )
    .await;
    let most = most_at_once(&arrivals, SLOW);
    assert!(
        most > own && most <= lent as usize,
        "at most the worker's {lent} slots ({own} of pushes, {} lent): {most} at once",
        split.lent
    );
    let unknown = u32::from(meanwhile == Meanwhile::Job);
    assert_eq!(
        s.dead_letters().await,
        unknown,
        "nothing dead-lettered but an unknown job"
    );
    s.finish().await;
}

/// Webhooks in the burst: at 16 at a time about 9 s, at 11 about 14 s.
const BURST: usize = 300;
/// How long the fake Jira takes to tell each webhook's hidden email.
const LOOKUP: Duration = Duration::from_millis(500);

/// An issue `key` linked to a group, a teammate whose email Jira hides in
/// webhooks and tells when asked, after [`LOOKUP`]; and the webhook that
/// assigns the issue to them. Gives the group, the teammate and the webhook.
async fn hidden_assignee(s: &Scene, arrivals: &Arrivals, key: &str) -> (i64, i64, Value) {
    let org = s.seed().org(s.integration, true, key).await;
    let name = key.to_lowercase();
    let email = format!("{name}@example.org");
    let user = s.seed().teammate(&org, &email).await;
    let answer = ResponseTemplate::new(200).set_body_json(json!({"name": name,
        "key": format!("JIRAUSER-{name}"), "emailAddress": email, "active": true}));
    Mock::given(method("GET"))
        .and(path("/rest/api/2/user"))
        .and(query_param("username", name.as_str()))
        .respond_with(Timed {
            jira: Arc::clone(&s.jira),
            arrivals: Arc::clone(arrivals),
            answer,
            delay: LOOKUP,
        })
        .mount(&s.server)
        .await;
    let hidden = json!({"name": name, "key": format!("JIRAUSER-{name}"), "displayName": name,
        "active": true});
    (org.group_id, user, assignee_changed(key, hidden, T1))
}

/// Groups of `groups` assigned by webhook so far.
async fn assigned(s: &Scene, groups: &[i64]) -> i64 {
    s.db.query_one(
        "SELECT count(*) FROM group_assignees WHERE group_id = ANY($1)",
        &[&groups],
    )
    .await
    .expect("assigned groups")
    .get(0)
}

#[tokio::test]
async fn idle_push_and_job_slots_carry_a_webhook_burst_and_come_back_when_a_push_waits() {
    let mut s = Scene::builder()
        .credentials(Some(ACCESS_TOKEN))
        .concurrency(AT_16.concurrency)
        .no_worker()
        .start()
        .await;
    let (lookups, push_calls) = (Arrivals::default(), Arrivals::default());
    let mut groups = Vec::with_capacity(BURST);
    for n in 0..BURST {
        let (group, _, webhook) = hidden_assignee(&s, &lookups, &format!("BURST-{n}")).await;
        s.send(&webhook).await;
        groups.push(group);
    }
    // A push the application will ask for while the webhooks run.
    let (push_group, push_project, push_user) = pushable(&s, &push_calls, "PUSHED-1").await;

    s.worker = Some(common::spawn_worker(&s.settings));
    let own = AT_16.webhooks as usize;
    eventually(
        "more webhooks asking Jira at once than the webhook slots",
        WAIT,
        || async { most_at_once(&lookups, LOOKUP) > own },
    )
    .await;
    // The broker's view: a second consumer of webhooks holds the pushes' and
    // the job's slots, and nothing consumes pushes or jobs meanwhile.
    let all = u32::from(AT_16.concurrency);
    eventually(
        "the pushes' and the job's slots lent to webhooks, as RabbitMQ sees them",
        WAIT,
        || async { prefetches(&s).await == (all, 0, 0) },
    )
    .await;

    s.host_assigns(push_group, push_project, push_user).await;
    eventually("the push lands", WAIT, || async { pushed(&s).await == 1 }).await;
    let applied = assigned(&s, &groups).await;
    assert!(
        applied < BURST as i64,
        "the push waited for the whole burst ({applied} webhooks applied)"
    );
    assert_eq!(
        s.assignee_puts("PUSHED-1").await,
        [json!({"name": "pushed-1"})],
        "the push written once"
    );

    eventually("every webhook applied", WAIT, || async {
        assigned(&s, &groups).await == BURST as i64
    })
    .await;
    assert_eq!(
        lookups.lock().expect("lookups").len(),
        BURST,
        "each hidden email asked once"
    );
    eventually(
        "the pushes' and the job's slots back, as RabbitMQ sees them",
        WAIT,
        || async { prefetches(&s).await == (AT_16.webhooks, AT_16.jobs, AT_16.pushes) },
    )
    .await;
    let most = most_at_once(&lookups, LOOKUP);
    assert!(
        most > own && most <= all as usize,
        "at most the worker's {all} slots ({own} of webhooks): {most} at once"
    );
    assert_eq!(s.dead_letters().await, 0, "nothing dead-lettered");
    s.finish().await;
}
