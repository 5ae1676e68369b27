//! Publishing jobs from CLI commands (`oauth start`, `oauth finish`): one short
//! connection that declares the topology like every other publisher and waits
//! for the broker's confirm of each job.

use anyhow::Context;
use lapin::{Channel, Connection};
use uuid::Uuid;

use crate::config::{Settings, redact_url};
use crate::queue::message::job_properties;
use crate::queue::publisher::{confirm_channel, publish_confirmed};
use crate::queue::{Names, connection, topology};

/// A connection to RabbitMQ for publishing jobs.
pub struct JobPublisher {
    connection: Connection,
    channel: Channel,
    names: Names,
    url: String,
}

impl JobPublisher {
    /// Connects (a clear error naming the URL when RabbitMQ is unreachable)
    /// and declares the topology, so a job is never published into nothing.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let connection = connection::connect(&settings.amqp_url, "cli").await?;
        let channel = confirm_channel(&connection).await?;
        let names = Names::new(settings.queue_prefix.clone());
        topology::declare(&channel, &names, &settings.retry_delays.0).await?;
        Ok(Self {
            connection,
            channel,
            names,
            url: settings.amqp_url.clone(),
        })
    }

    /// Publishes a job of `job_type` with a JSON body; its message id once confirmed.
    pub async fn publish(&self, job_type: &str, body: &serde_json::Value) -> anyhow::Result<Uuid> {
        let bytes = serde_json::to_vec(body).context("failed to encode the job")?;
        let (id, properties) = job_properties(job_type);
        publish_confirmed(
            &self.channel,
            &self.names.exchange(),
            job_type,
            &bytes,
            properties,
        )
        .await
        .with_context(|| {
            format!(
                "failed to enqueue the {job_type} job on RabbitMQ at {}",
                redact_url(&self.url)
            )
        })?;
        Ok(id)
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}
