//! The integration tests, in one binary (one link instead of one per file): the
//! real ingress, workers and commands against the real Postgres and RabbitMQ,
//! with a fake Jira. Each test has its own database and queue prefix, removed
//! when it ends (`common::Isolated`). The disruptive ones (`broker_outage`,
//! `db_outage`, `rabbitmq4`, `amqps`, `cluster_failover`: they boot private nodes) are `#[ignore]`d
//! here and run one at a time by `.ci/run`:
//! `cargo test --test suite -- --ignored --test-threads=1`.

mod common;

mod amqps;
mod audit;
mod batching;
mod bench_script;
mod broker_outage;
mod cloud_connect;
mod cloud_migrate;
mod cloud_oauth;
mod cloud_outbound;
mod cloud_reconcile;
mod cloud_webhook_refresh;
mod cloud_webhooks;
mod cluster_failover;
mod config;
mod console_browser;
mod console_http;
mod console_records;
mod crash;
mod crash_loop;
mod db_errors;
mod db_outage;
mod db_wait;
mod demo;
mod deploy_static;
mod dlq;
mod echo;
mod event_times;
mod fair_ingress;
mod hidden_email;
mod hostile_clients;
mod hostile_input;
mod ingress;
mod issue_moves;
mod jira_limits;
mod jira_outage;
mod kept_integrations;
mod lent_slots;
mod migrate;
mod oauth2;
mod oauth_flow;
mod oauth_hardening;
mod oauth_signature;
mod outbound;
mod outbound_capture;
mod outbound_crash;
mod outbound_faults;
mod outbound_push;
mod pat;
mod poison;
mod postgres_tls;
mod push_batches;
mod query_plans;
mod rabbitmq4;
mod reconcile;
mod reference;
mod sealed_rows;
mod secret_rotation;
mod secrets;
mod status_map;
mod status_sync;
mod teardown;
mod token_refresh;
mod token_security;
mod unit_of_work;
mod user_map;
mod verdicts;
mod webhook_rotation;
mod worker;
mod worker_lifecycle;
