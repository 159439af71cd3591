//! The operator's one error type. Every failed step of a reconcile becomes one of these, reaches
//! the controller's error policy (which backs off and requeues) and is counted in the metrics by
//! [`Error::metric_label`]. Messages name the step and the object, never a credential.

/// What went wrong during a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),

    /// The spec cannot be planned (it passed the CRD's rules but breaks an operator rule).
    /// Nothing was touched; the reconcile waits for the spec to change.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// The object asks for something its namespace may not have (a DatabaseService outside the
    /// platform's namespace). Nothing was touched; the reconcile waits for a change.
    #[error("refused: {message}")]
    Refused {
        /// The condition reason (`OutsidePlatformNamespace`).
        reason: crate::conditions::Reason,
        message: String,
    },

    /// A provisioning step against a data server failed.
    #[error("{step}: {source:#}")]
    Step {
        step: Step,
        #[source]
        source: anyhow::Error,
    },

    /// The operator's own configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

/// The steps of a tenant reconcile, as they appear in errors, metrics, conditions and Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Postgres,
    Mongo,
    Pool,
    Registry,
    Secret,
    Isolation,
    /// The final comparison of the catalogs with the plan.
    Verify,
    Cleanup,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Postgres => "postgres",
            Step::Mongo => "mongo",
            Step::Pool => "pool",
            Step::Registry => "registry",
            Step::Secret => "secret",
            Step::Isolation => "isolation",
            Step::Verify => "verify",
            Step::Cleanup => "cleanup",
        }
    }
}

impl Step {
    /// The condition reason of a failure of this step: `PostgresFailed`, `MongoFailed`, …
    pub fn failed_reason(self) -> crate::conditions::Reason {
        crate::conditions::Reason::Failed(self)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// A short, bounded label for the `reason` of the error metrics.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Kube(_) => "kube".into(),
            Error::InvalidSpec(_) => "invalid_spec".into(),
            Error::Refused { .. } => "refused".into(),
            Error::Step { step, .. } => format!("step_{step}"),
            Error::Config(_) => "config".into(),
        }
    }

    /// Whether retrying without a change to the object can help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::InvalidSpec(_) | Error::Refused { .. } | Error::Config(_)
        )
    }
}

/// Attaches a [`Step`] to any error.
pub trait StepContext<T> {
    fn step(self, step: Step) -> Result<T, Error>;
}

impl<T, E: Into<anyhow::Error>> StepContext<T> for Result<T, E> {
    fn step(self, step: Step) -> Result<T, Error> {
        self.map_err(|e| Error::Step {
            step,
            source: e.into(),
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_name_the_step() {
        let e: Result<()> = Err(anyhow::anyhow!("boom")).step(Step::Mongo);
        let e = e.unwrap_err();
        assert_eq!(e.metric_label(), "step_mongo");
        assert_eq!(Step::Postgres.failed_reason().as_str(), "PostgresFailed");
        assert!(e.to_string().starts_with("mongo: boom"));
        assert!(!e.is_permanent());
        assert!(Error::InvalidSpec("x".into()).is_permanent());
    }
}
