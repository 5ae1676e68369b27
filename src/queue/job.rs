//! The [`Job`] trait (docs/reference.md §4, §6): a serde struct per job type,
//! carrying its type name, published by its producer (CLI commands, the
//! ingress's OAuth callback, the reconcile scheduler) and parsed by the worker
//! that consumes it. The jobs themselves live beside their handlers
//! (`worker::jobs`). Modelled on crates.io's `BackgroundJob`.

use lapin::BasicProperties;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::handler::{Failure, Outcome};
use super::message::job_properties;

/// A job: its routing key and message `type` is [`Job::TYPE`], its body the
/// struct as JSON.
pub trait Job: Serialize + DeserializeOwned + Send + Sync {
    /// Routing key and message type, e.g. `<provider>.reconcile`.
    const TYPE: &'static str;
    /// The body's shape, for the error about a malformed one.
    const SHAPE: &'static str;

    /// Checks what serde cannot; `Err` says what is wrong.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// The message to publish: its new id, body and properties.
    fn to_message(&self) -> (Uuid, Vec<u8>, BasicProperties) {
        let (id, properties) = job_properties(Self::TYPE);
        // A struct of strings and numbers always serializes.
        let body = serde_json::to_vec(self).unwrap_or_default();
        (id, body, properties)
    }

    /// Parses a body; a permanent [`Outcome::MALFORMED`] failure when it is not
    /// [`Job::SHAPE`].
    fn parse(body: &[u8]) -> Result<Self, Failure> {
        let malformed = |detail: String| {
            Failure::permanent(
                Outcome::MALFORMED,
                anyhow::anyhow!("the job body is not {}: {detail}", Self::SHAPE),
            )
        };
        let job: Self =
            serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
        job.validate().map_err(malformed)?;
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// A job as a producer and the worker see it.
    #[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Sample {
        id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<i64>,
        #[serde(default)]
        name: String,
    }

    impl Job for Sample {
        const TYPE: &'static str = "p.sample";
        const SHAPE: &'static str = r#"{"id":…}"#;

        fn validate(&self) -> Result<(), String> {
            if self.id < 0 {
                return Err("id is negative".into());
            }
            Ok(())
        }
    }

    #[test]
    fn jobs_round_trip_and_leave_absent_options_out() {
        let job = Sample {
            id: 7,
            since: None,
            name: String::new(),
        };
        let (_, body, properties) = job.to_message();
        assert_eq!(body, br#"{"id":7,"name":""}"#);
        assert_eq!(
            super::super::message::message_type(&properties),
            Sample::TYPE
        );
        assert_eq!(Sample::parse(&body).expect("parses"), job);
    }

    #[test]
    fn malformed_bodies_are_permanent_and_name_the_shape() {
        for (body, says) in [
            (&b"nope"[..], r#"{"id""#),
            (br#"{"id":-1}"#, "id is negative"),
        ] {
            let failure = Sample::parse(body).expect_err("malformed");
            assert!(
                matches!(failure, Failure::Permanent { outcome, .. } if outcome == Outcome::MALFORMED),
                "{failure:?}"
            );
            assert!(failure.to_string().contains(says), "{failure}");
        }
    }
}
