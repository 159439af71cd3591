//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! only one reconciles at a time.
//!
//! Every candidate runs the same round ([`LeaderElector::try_acquire_or_renew`]) every
//! `renew_interval`:
//!
//! ```text
//! GET lease ──► absent                                  ──► CREATE (holder = us)        ──► leader
//!           ──► held by us                              ──► REPLACE (renewTime = now)   ──► leader
//!           ──► no holder, or renewTime + duration past ──► REPLACE (holder = us,
//!                                                            leaseTransitions + 1)      ──► leader
//!           ──► held by someone else, still fresh       ──────────────────────────────► not leader
//! ```
//!
//! Every write carries the `resourceVersion` read in the same round, so when two candidates race
//! the API server accepts one write and answers the other with 409 Conflict (or AlreadyExists for
//! a racing create); the loser is simply not leader this round. [`LeaderElector::spawn`] runs
//! the rounds in a task and publishes the outcome on a `watch` channel; on shutdown it publishes
//! `false` and then [`LeaderElector::release`]s the lease so a successor takes over at once
//! instead of waiting for the lease to expire.
//!
//! Expiry compares the holder's `renewTime` with this replica's clock, so replicas' clocks must
//! agree to well within the lease duration (as they do on NTP-synced nodes).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Where the lease lives, who we are, and the timing of the election.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease (usually the operator's own namespace).
    pub namespace: String,
    /// Name of the Lease, shared by every replica of the operator.
    pub name: String,
    /// This replica's identity, unique among the candidates (usually the pod name).
    pub identity: String,
    /// How long a lease stays valid after its last renewal; written to `leaseDurationSeconds`
    /// (whole seconds, at least 1).
    pub lease_duration: Duration,
    /// How often a round runs, and how long one round may take before this replica stops
    /// leading. Keep it at most a third of `lease_duration` (e.g. 15 s lease, 5 s renew): a holder
    /// cut off from the API server then steps down (after at most two intervals) before the other
    /// candidates see its lease expire.
    pub renew_interval: Duration,
}

/// Takes part in the election for one Lease.
#[derive(Clone, Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl LeaderElector {
    /// An elector for the Lease `settings.namespace/settings.name`; nothing is sent until the
    /// first round.
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    /// Runs one election round: creates, renews or takes over the Lease as described in the
    /// module docs. `Ok(true)` means we hold the lease until about `lease_duration` from now;
    /// `Ok(false)` means another candidate holds it or won a race this round. Other API failures
    /// are errors, and the caller must then assume it is not leader.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = now();
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_duration_seconds: Some(self.lease_duration_seconds()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return lost_race_is_false(self.api.create(&PostParams::default(), &lease).await);
        };

        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        if holder != Some(self.settings.identity.as_str()) {
            if holder.is_some() && !expired(spec, &now, self.settings.lease_duration) {
                return Ok(false);
            }
            // Vacant or expired: take it over. Counting every change of holder (a takeover after
            // a release included) matches client-go, so tools reading the Lease agree with us.
            spec.holder_identity = Some(self.settings.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(self.lease_duration_seconds());

        // `lease` still carries the resourceVersion we read: a write by anyone else since then
        // turns this replace into a 409.
        lost_race_is_false(
            self.api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await,
        )
    }

    /// Gives the lease up if we hold it, by clearing `holderIdentity`, so the next candidate's
    /// round takes it over without waiting for expiry. Does nothing if the Lease is absent or
    /// held by someone else. Stop acting as leader before calling this.
    pub async fn release(&self) -> Result<(), kube::Error> {
        // A conflict means the Lease changed after our read; read again and retry, since only
        // the outcome "we no longer hold it" matters.
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
                return Ok(());
            };
            let Some(spec) = lease.spec.as_mut() else {
                return Ok(());
            };
            if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            match self
                .api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.is_conflict() && attempt < ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs election rounds every `renew_interval` in a new task until `shutdown` becomes `true`
    /// (or its sender is dropped), and returns a receiver that says whether this replica leads.
    ///
    /// A round that fails or takes longer than `renew_interval` is logged (`tracing::warn`); a
    /// leader keeps leading through such rounds until two thirds of `lease_duration` have passed
    /// since its last successful renewal, then publishes `false`, so a replica cut off from the
    /// API server stops leading before its lease can expire for the others. On shutdown the task publishes `false`, releases the lease (logging a failure)
    /// and ends; the returned receiver's `changed()` then fails, which a caller can await to know
    /// the lease has been released. Must be called inside a Tokio runtime.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        let publish = move |leading: bool| {
            tx.send_if_modified(|current| {
                let changed = *current != leading;
                *current = leading;
                changed
            })
        };
        tokio::spawn(async move {
            // `interval` panics on a zero period; a misconfigured zero becomes 1 ms.
            let period = self.settings.renew_interval.max(Duration::from_millis(1));
            let round_timeout = period;
            // A leader keeps leading through failed rounds until it has gone this long without a
            // successful renewal (client-go's renew deadline): well before its lease can expire
            // for others, but one lost request does not end its leadership.
            let renew_deadline = self.settings.lease_duration * 2 / 3;
            let mut last_renewal: Option<std::time::Instant> = None;
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if *shutdown.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            break; // the sender is gone: nobody can ask us to stop any more
                        }
                        continue; // re-check the value at the top of the loop
                    }
                    _ = ticks.tick() => {}
                }
                let round = tokio::time::timeout(round_timeout, self.try_acquire_or_renew());
                let leading = tokio::select! {
                    round = round => match round {
                        Ok(Ok(leading)) => {
                            last_renewal = leading.then(std::time::Instant::now);
                            leading
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(%error, lease = %self.settings.name, "leader election round failed");
                            // Judged when the round ends, so a slow failing round cannot carry a
                            // leader past its deadline.
                            last_renewal.is_some_and(|t| t.elapsed() < renew_deadline)
                        }
                        Err(_) => {
                            tracing::warn!(lease = %self.settings.name, timeout = ?round_timeout, "leader election round timed out");
                            last_renewal.is_some_and(|t| t.elapsed() < renew_deadline)
                        }
                    },
                    // Shutting down mid-round: the round's outcome no longer matters, and the
                    // release below undoes whatever it wrote.
                    _ = shutdown.wait_for(|stop| *stop) => break,
                };
                if publish(leading) {
                    tracing::info!(leading, identity = %self.settings.identity, lease = %self.settings.name, "leadership changed");
                }
            }
            publish(false);
            if let Err(error) = self.release().await {
                tracing::warn!(%error, lease = %self.settings.name, "releasing the leader lease failed");
            }
            // Dropping `publish` (and with it the sender) tells receivers the task has ended.
        });
        rx
    }

    /// `lease_duration` in whole seconds for `leaseDurationSeconds`, at least 1.
    fn lease_duration_seconds(&self) -> i32 {
        duration_seconds(self.settings.lease_duration)
    }
}

fn duration_seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX).max(1)
}

/// Whether the holder's lease has run out at `now`: its last renewal (or acquisition) plus the
/// holder's own `leaseDurationSeconds` (ours if it wrote none) is in the past. A lease with no
/// time at all counts as expired.
fn expired(spec: &LeaseSpec, now: &MicroTime, default_duration: Duration) -> bool {
    let Some(last) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration_secs = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .unwrap_or_else(|| duration_seconds(default_duration));
    let deadline_us = last
        .0
        .as_microsecond()
        .saturating_add(i64::from(duration_secs).saturating_mul(1_000_000));
    deadline_us < now.0.as_microsecond()
}

/// Maps the 409 answers of a lost race (Conflict on replace, AlreadyExists on create) to
/// `Ok(false)`, and a successful write to `Ok(true)`.
fn lost_race_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The current time as a `MicroTime`. Built from chrono's clock because k8s-openapi enables
/// jiff without its `std` feature, which `Timestamp::now` needs.
fn now() -> MicroTime {
    let micros = chrono::Utc::now().timestamp_micros();
    MicroTime(
        Timestamp::from_microsecond(micros)
            .expect("the system clock is within jiff's range (years -9999..=9999)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> MicroTime {
        MicroTime(Timestamp::from_second(secs).expect("in range"))
    }

    fn spec(renew: Option<i64>, duration: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("other".into()),
            renew_time: renew.map(at),
            lease_duration_seconds: duration,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn expiry_uses_the_holders_duration() {
        let d = Duration::from_secs(100);
        // Renewed at 1000 for 15 s: fresh until 1015.
        assert!(!expired(&spec(Some(1000), Some(15)), &at(1010), d));
        assert!(!expired(&spec(Some(1000), Some(15)), &at(1015), d));
        assert!(expired(&spec(Some(1000), Some(15)), &at(1016), d));
        // Without a duration on the lease, ours applies.
        assert!(!expired(&spec(Some(1000), None), &at(1050), d));
        assert!(expired(&spec(Some(1000), None), &at(1101), d));
        // Without any time, the lease is up for grabs.
        assert!(expired(&spec(None, Some(15)), &at(0), d));
    }

    #[test]
    fn lease_duration_is_whole_seconds_at_least_one() {
        assert_eq!(duration_seconds(Duration::from_millis(200)), 1);
        assert_eq!(duration_seconds(Duration::from_secs(15)), 15);
        assert_eq!(duration_seconds(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn now_is_close_to_the_system_clock() {
        let ours = now().0.as_second();
        let system = chrono::Utc::now().timestamp();
        assert!((system - ours).abs() <= 1);
    }
}
