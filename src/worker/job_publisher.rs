//! The worker's own publisher of jobs: the scheduler's reconcile and webhook
//! refresh jobs, and the continuation of a reconciliation that has run its
//! slice (docs/reference.md §6.4, §6.5). One broker connection, opened the
//! first time a job is published: a worker that publishes none opens none.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use crate::config::Services;
use crate::queue::job::Job;
use crate::queue::publisher::Broker;
use crate::shutdown::Shutdown;

/// How long a publish waits for the connection to be ready.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Publishes jobs through a broker connection of its own, opened when first needed.
pub struct JobPublisher {
    services: Services,
    shutdown: Shutdown,
    broker: OnceCell<std::sync::Arc<Broker>>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl JobPublisher {
    /// A publisher for `services`' broker that stops with `shutdown`.
    pub fn new(services: &Services, shutdown: Shutdown) -> Self {
        Self {
            services: services.clone(),
            shutdown,
            broker: OnceCell::new(),
            supervisor: Mutex::new(None),
        }
    }

    /// Publishes `job` (confirmed); its message id.
    pub async fn publish<J: Job>(&self, job: &J) -> anyhow::Result<uuid::Uuid> {
        let broker = self.ready().await?;
        Ok(broker.publish_job(job).await?)
    }

    /// The broker, once it is ready to publish (within [`CONNECT_WAIT`]).
    async fn ready(&self) -> anyhow::Result<&Broker> {
        let broker = self
            .broker
            .get_or_init(|| async {
                let (broker, supervisor) = Broker::start(
                    &self.services.broker,
                    crate::integration::messages::names(&self.services.broker),
                    &self.services.retries,
                    "jobs",
                    self.shutdown.clone(),
                );
                *self
                    .supervisor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(supervisor);
                broker
            })
            .await;
        let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
        while !broker.is_ready() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline && !self.shutdown.is_cancelled(),
                "RabbitMQ is not connected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(broker)
    }

    /// Waits for the connection's supervisor to end (after shutdown), if one started.
    pub async fn closed(&self) {
        let supervisor = self
            .supervisor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(supervisor) = supervisor {
            let _ = supervisor.await;
        }
    }
}
