//! The operator's Prometheus metrics.
//!
//! One [`Metrics`] value is built at start-up and cloned into the controller context, the leader
//! election loop and the HTTP server; every clone writes to the same atomics. Data flows one way:
//!
//! ```text
//! reconcile ──► Metrics::reconcile_timer(resource) ──► ReconcileTimer::finish(outcome)
//!                   └─► reconciles_total, reconcile_duration_seconds, reconcile_errors_total{reason}
//! each step ──► Metrics::step_timer(resource, step) ──► StepTimer::finish(ok)
//!                   └─► reconcile_step_duration_seconds{step}, reconcile_step_failures_total{step}
//! tenant scan ──► Metrics::set_tenants_by_state(counts) ──► tenants{state}
//! leader loop ──► Metrics::set_leader(leading)          ──► leader
//! GET /metrics ──► Metrics::render() (OpenMetrics text)
//! ```
//!
//! Every label value comes from a bounded set (resource kinds are `&'static str`, error reasons
//! come from [`Error::metric_label`], steps from [`Step::as_str`], tenant states from [`TENANT_STATES`]), so the number of
//! series cannot grow with the number of tenants.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::{Error, Step};

/// The prefix of every metric name.
const PREFIX: &str = "prismicx_operator";

/// Upper bounds (seconds) of the reconcile duration buckets: from a 1 ms no-op reconcile to a
/// 60 s one that waited on slow data servers.
const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The values of the `state` label of `prismicx_operator_tenants`. Every one is always exported
/// (0 when no tenant is in it) so dashboards and alerts never see a series vanish.
pub const TENANT_STATES: [&str; 5] = ["ready", "provisioning", "suspended", "failed", "deleting"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    resource: &'static str,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    resource: &'static str,
    step: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// The operator's metrics registry and handles to its metrics; cheap to clone (all clones share
/// the same values).
#[derive(Clone)]
pub struct Metrics {
    /// Never written after [`Metrics::new`], so it needs no lock.
    registry: Arc<Registry>,
    reconciles: Family<ResourceLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ResourceLabels, Histogram>,
    step_durations: Family<StepLabels, Histogram>,
    step_failures: Family<StepLabels, Counter>,
    tenants: Family<StateLabels, Gauge>,
    leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Builds the registry with every operator metric registered. Tenant states start at 0 and
    /// the leader gauge at 0 (not leading).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Family::<ResourceLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<ResourceLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        let step_durations = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        let step_failures = Family::<StepLabels, Counter>::default();
        let tenants = Family::<StateLabels, Gauge>::default();
        let leader = Gauge::default();

        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "reconciles",
            "Reconciles run, by resource kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by resource kind and reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, by resource kind",
            durations.clone(),
        );
        registry.register(
            "reconcile_step_duration_seconds",
            "Time spent in one step of a reconcile, by resource kind and step",
            step_durations.clone(),
        );
        registry.register(
            "reconcile_step_failures",
            "Steps of a reconcile that failed, by resource kind and step",
            step_failures.clone(),
        );
        registry.register(
            "tenants",
            "Tenants by state, from the operator's last scan",
            tenants.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica holds the leader lease, else 0",
            leader.clone(),
        );

        let metrics = Metrics {
            registry: Arc::new(registry),
            reconciles,
            errors,
            durations,
            step_durations,
            step_failures,
            tenants,
            leader,
        };
        metrics.set_tenants_by_state(&BTreeMap::new());
        metrics
    }

    /// Starts timing one reconcile of `resource` (a kind such as `"tenant"`). Call
    /// [`ReconcileTimer::finish`] with the outcome; a timer dropped without `finish` (a cancelled
    /// reconcile) records nothing.
    pub fn reconcile_timer(&self, resource: &'static str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            resource,
            start: Instant::now(),
        }
    }

    /// Starts timing one step of a reconcile of `resource`; [`StepTimer::finish`] records it.
    pub fn step_timer(&self, resource: &'static str, step: Step) -> StepTimer {
        StepTimer {
            metrics: self.clone(),
            labels: StepLabels {
                resource,
                step: step.as_str(),
            },
            start: Instant::now(),
        }
    }

    /// Sets `prismicx_operator_tenants{state}` for every state in [`TENANT_STATES`]; states absent
    /// from `counts` are set to 0. Keys outside [`TENANT_STATES`] are ignored (and logged) so the
    /// label keeps its documented values.
    pub fn set_tenants_by_state(&self, counts: &BTreeMap<&'static str, i64>) {
        for state in TENANT_STATES {
            let count = counts.get(state).copied().unwrap_or(0);
            self.tenants
                .get_or_create(&StateLabels { state })
                .set(count);
        }
        for state in counts.keys().filter(|s| !TENANT_STATES.contains(*s)) {
            tracing::warn!(state, "unknown tenant state not exported as a metric");
        }
    }

    /// Sets `prismicx_operator_leader` to 1 when `leading`, else 0.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Every metric in the OpenMetrics text format (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; the encoder only returns errors from the writer.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Times one reconcile; made by [`Metrics::reconcile_timer`].
#[derive(Debug)]
#[must_use = "call finish() with the reconcile's outcome, or nothing is recorded"]
pub struct ReconcileTimer {
    metrics: Metrics,
    resource: &'static str,
    start: Instant,
}

impl ReconcileTimer {
    /// Records the reconcile: increments `reconciles_total`, observes its duration and, on `Err`,
    /// increments `reconcile_errors_total` with `reason = err.metric_label()`.
    pub fn finish(self, outcome: Result<(), &Error>) {
        let labels = ResourceLabels {
            resource: self.resource,
        };
        self.metrics.reconciles.get_or_create(&labels).inc();
        self.metrics
            .durations
            .get_or_create(&labels)
            .observe(self.start.elapsed().as_secs_f64());
        if let Err(err) = outcome {
            self.metrics
                .errors
                .get_or_create(&ErrorLabels {
                    resource: self.resource,
                    reason: err.metric_label(),
                })
                .inc();
        }
    }
}

/// Times one step of a reconcile; made by [`Metrics::step_timer`].
#[derive(Debug)]
#[must_use = "call finish() with the step's outcome, or nothing is recorded"]
pub struct StepTimer {
    metrics: Metrics,
    labels: StepLabels,
    start: Instant,
}

impl StepTimer {
    /// Observes the step's duration and, unless `ok`, counts a failure of it.
    pub fn finish(self, ok: bool) {
        self.metrics
            .step_durations
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
        if !ok {
            self.metrics.step_failures.get_or_create(&self.labels).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Step;

    /// The value of the sample line that starts with `series ` (name plus labels), if any.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().expect("sample value is a number"))
    }

    #[test]
    fn fresh_registry_exports_zero_gauges_and_no_reconciles() {
        let text = Metrics::new().render();
        assert_eq!(sample(&text, "prismicx_operator_leader"), Some(0.0));
        for state in TENANT_STATES {
            let series = format!("prismicx_operator_tenants{{state=\"{state}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        assert!(
            !text.contains("prismicx_operator_reconciles_total{"),
            "no reconcile series before the first reconcile:\n{text}"
        );
        assert!(text.contains("# TYPE prismicx_operator_reconciles counter"));
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn finish_counts_reconciles_durations_and_error_reasons() {
        let metrics = Metrics::new();
        metrics.reconcile_timer("tenant").finish(Ok(()));
        metrics.reconcile_timer("tenant").finish(Ok(()));
        let step_err = Error::Step {
            step: Step::Postgres,
            source: anyhow::anyhow!("connection refused"),
        };
        metrics.reconcile_timer("tenant").finish(Err(&step_err));
        let spec_err = Error::InvalidSpec("bad".into());
        metrics
            .reconcile_timer("databaseservice")
            .finish(Err(&spec_err));

        let text = metrics.render();
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconciles_total{resource=\"tenant\"}"
            ),
            Some(3.0)
        );
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconciles_total{resource=\"databaseservice\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconcile_errors_total{resource=\"tenant\",reason=\"step_postgres\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconcile_errors_total{resource=\"databaseservice\",reason=\"invalid_spec\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconcile_duration_seconds_count{resource=\"tenant\"}"
            ),
            Some(3.0)
        );
        // The timed section is far below 60 s, so every observation lands in the top bucket.
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconcile_duration_seconds_bucket{le=\"60.0\",resource=\"tenant\"}"
            ),
            Some(3.0)
        );
        // Error messages never become label values.
        assert!(!text.contains("connection refused"));
    }

    #[test]
    fn steps_are_timed_and_failures_counted_by_step() {
        let metrics = Metrics::new();
        metrics.step_timer("tenant", Step::Postgres).finish(true);
        metrics.step_timer("tenant", Step::Mongo).finish(false);
        let text = metrics.render();
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconcile_step_duration_seconds_count{resource=\"tenant\",step=\"postgres\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconcile_step_failures_total{resource=\"tenant\",step=\"mongo\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconcile_step_failures_total{resource=\"tenant\",step=\"postgres\"}"
            ),
            None
        );
    }

    #[test]
    fn dropped_timer_records_nothing() {
        let metrics = Metrics::new();
        drop(metrics.reconcile_timer("tenant"));
        let text = metrics.render();
        assert_eq!(
            sample(
                &text,
                "prismicx_operator_reconciles_total{resource=\"tenant\"}"
            ),
            None
        );
    }

    #[test]
    fn tenant_states_are_all_set_and_missing_ones_reset_to_zero() {
        /// The `prismicx_operator_tenants` gauge of each state in `text`.
        fn assert_states(text: &str, expected: &[(&str, f64)]) {
            for (state, value) in expected {
                let series = format!("prismicx_operator_tenants{{state=\"{state}\"}}");
                assert_eq!(sample(text, &series), Some(*value), "{series}");
            }
        }
        let metrics = Metrics::new();
        let counts = BTreeMap::from([("ready", 7), ("failed", 2), ("bogus", 99)]);
        metrics.set_tenants_by_state(&counts);
        let text = metrics.render();
        assert_states(&text, &[("ready", 7.0), ("failed", 2.0), ("deleting", 0.0)]);
        assert!(!text.contains("bogus"), "unknown states are not exported");

        // A later scan without failed tenants brings the gauge back to 0.
        metrics.set_tenants_by_state(&BTreeMap::from([("ready", 9)]));
        let text = metrics.render();
        assert_states(&text, &[("ready", 9.0), ("failed", 0.0)]);
    }

    #[test]
    fn leader_gauge_follows_set_leader_across_clones() {
        let metrics = Metrics::new();
        let clone = metrics.clone();
        clone.set_leader(true);
        assert_eq!(
            sample(&metrics.render(), "prismicx_operator_leader"),
            Some(1.0)
        );
        clone.set_leader(false);
        assert_eq!(
            sample(&metrics.render(), "prismicx_operator_leader"),
            Some(0.0)
        );
    }

    #[test]
    fn debug_prints_no_values() {
        let metrics = Metrics::new();
        metrics.set_leader(true);
        assert_eq!(format!("{metrics:?}"), "Metrics { .. }");
    }
}
