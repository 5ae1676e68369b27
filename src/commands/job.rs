//! Publishing jobs from CLI commands (`oauth start`, `oauth finish`,
//! `reconcile`): one short connection that declares the topology like every
//! other publisher and waits for the broker's confirm of each job.

use anyhow::Context;
use lapin::{Channel, Connection};
use uuid::Uuid;

use crate::config::{Services, redact_url};
use crate::queue::job::Job;
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
    pub async fn connect(services: &Services) -> anyhow::Result<Self> {
        let broker = &services.broker;
        let connection = connection::connect(&broker.url, "cli").await?;
        let channel = confirm_channel(&connection).await?;
        let names = crate::integration::messages::names(broker);
        topology::declare(&connection, &names, &services.retries.delays.0).await?;
        Ok(Self {
            connection,
            channel,
            names,
            url: broker.url.clone(),
        })
    }

    /// Publishes `job`; its message id once confirmed.
    pub async fn publish<J: Job>(&self, job: &J) -> anyhow::Result<Uuid> {
        let (id, body, properties) = job.to_message();
        publish_confirmed(
            &self.channel,
            self.names.exchange(),
            J::TYPE,
            &body,
            properties,
        )
        .await
        .with_context(|| {
            format!(
                "failed to enqueue the {} job on RabbitMQ at {}",
                J::TYPE,
                redact_url(&self.url)
            )
        })?;
        Ok(id)
    }

    /// Connects, publishes `job` alone and closes; its message id once confirmed.
    pub async fn enqueue<J: Job>(services: &Services, job: &J) -> anyhow::Result<Uuid> {
        let publisher = Self::connect(services).await?;
        let published = publisher.publish(job).await;
        publisher.close().await;
        published
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}
