//! What every reconcile shares: the Kubernetes client, the data servers, the catalog of service
//! layouts, metrics, the Event recorder, and the resync interval.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::catalog::Catalog;
use crate::dataplane::DataPlane;
use crate::error::Step;
use crate::metrics::Metrics;

/// Shared state of the controllers.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub data: DataPlane,
    pub catalog: Catalog,
    pub metrics: Metrics,
    recorder: Recorder,
    /// How often a Ready tenant is checked for drift.
    pub resync: Duration,
    faults: Faults,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("data", &self.data)
            .field("resync", &self.resync)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: kube::Client, data: DataPlane, catalog: Catalog, resync: Duration) -> Self {
        let reporter = Reporter {
            controller: crate::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            data,
            catalog,
            metrics: Metrics::new(),
            resync,
            faults: Faults::default(),
        }
    }

    /// Publishes an Event about `object`. A failure to record is logged, never fatal: Events
    /// inform, the status is the record.
    pub async fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(truncate(note, 1024)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, object).await {
            tracing::warn!(error = %e, reason, "could not record an Event");
        }
    }

    /// Test hook: the next run of `step` fails once with an injected error (a crash between
    /// steps). Production code never arms it.
    pub fn fail_step_once(&self, step: Step) {
        self.faults.arm(step);
    }

    /// Fails if a fault was armed for `step` (and disarms it).
    pub(crate) fn check_fault(&self, step: Step) -> anyhow::Result<()> {
        if self.faults.take(step) {
            anyhow::bail!("injected failure before the {step} step");
        }
        Ok(())
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[derive(Clone, Default)]
struct Faults(Arc<Mutex<HashSet<Step>>>);

impl Faults {
    fn arm(&self, step: Step) {
        if let Ok(mut f) = self.0.lock() {
            f.insert(step);
        }
    }
    fn take(&self, step: Step) -> bool {
        self.0.lock().map(|mut f| f.remove(&step)).unwrap_or(false)
    }
}
