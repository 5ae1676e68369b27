//! jirasync keeps issue assignments in step with Jira (Data Center and Cloud):
//! a thin HTTP ingress puts Jira's webhooks on RabbitMQ, workers apply them to
//! Postgres. README.md shows the architecture; docs/reference.md the interfaces.

pub mod cli;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod console;
pub mod db;
pub mod health;
pub mod ingress;
pub mod integration;
pub mod jira;
pub mod outbound;
pub mod queue;
pub mod reconnect;
pub mod secrets;
pub mod shutdown;
pub mod sync;
pub mod telemetry;
pub mod worker;
