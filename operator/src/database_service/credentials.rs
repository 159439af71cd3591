//! The credentials step: the value of every Secret key the pods' env references (for the
//! config hash; a missing key that is not optional fails the `secret` step), and, unless
//! `spec.databaseSecret` names the user's own, the operator's database Secret
//! (`<k8s-name>-db`), applied before any login uses its password (timed as the `secret` step).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use prismicx_operator_api::DatabaseService;
use prismicx_store::Secret as Hidden;

use super::{resources, Deploy, SecretRefs, SecretValues};
use crate::error::{Result, Step, StepContext};
use crate::pipeline::{server_side_apply as apply, Run};

/// Reads the referenced Secrets into `d.values` and, for the operator's own Secret, ensures it
/// and keeps its password in `d.password`.
pub async fn step(run: &Run<'_, DatabaseService>, d: &mut Deploy<'_>) -> Result<()> {
    let own = d
        .plan
        .operator_secret
        .then_some(d.plan.database_secret.as_str());
    d.values = read_secrets(&d.apis.secrets, &d.refs, own).await?;
    if d.plan.operator_secret {
        let password = run.step(Step::Secret, ensure_operator_secret(d)).await?;
        d.password = Some(password);
    }
    Ok(())
}

/// The operator's database Secret (`<k8s-name>-db`), with the password it already holds or a
/// new one; the values the env reads from it join `d.values` (for the config hash). Returns
/// the password for the logins.
async fn ensure_operator_secret(d: &mut Deploy<'_>) -> Result<Hidden<String>> {
    d.ctx.check_fault(Step::Secret).step(Step::Secret)?;
    let secrets = &d.apis.secrets;
    let password =
        match crate::tenant::secret::existing_password(secrets, &d.plan.database_secret).await? {
            Some(p) => p,
            None => crate::tenant::secret::new_password(),
        };
    if let Some(secret) = resources::database_secret(&d.plan, &d.ctx.data.endpoints, &password) {
        let data = secret.data.clone().unwrap_or_default();
        let own = &d.plan.database_secret;
        for ((name, key), _) in d.refs.iter().filter(|((n, _), _)| n == own) {
            d.values.insert(
                (name.clone(), key.clone()),
                data.get(key).map(|b| b.0.clone()),
            );
        }
        apply(secrets, &secret).await?;
    }
    Ok(password)
}

/// The value of every referenced Secret key (`None`: optional and missing), except those of
/// `skip` (the operator's own Secret, whose values the reconciler knows). A missing Secret or
/// key that is not optional fails the `secret` step: the pods could not start without it.
async fn read_secrets(
    api: &Api<Secret>,
    refs: &SecretRefs,
    skip: Option<&str>,
) -> Result<SecretValues> {
    let names: BTreeSet<&str> = refs
        .keys()
        .map(|(n, _)| n.as_str())
        .filter(|n| Some(*n) != skip)
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let found = api.get_opt(name).await?;
        let data = found.as_ref().and_then(|s| s.data.clone());
        for ((_, key), optional) in refs.iter().filter(|((n, _), _)| n == name) {
            let value = data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone());
            if value.is_none() && !optional {
                let what = if found.is_none() {
                    format!("Secret {name} not found")
                } else {
                    format!("Secret {name} has no key {key}")
                };
                return Err(anyhow::anyhow!(what)).step(Step::Secret);
            }
            out.insert((name.to_string(), key.clone()), value);
        }
    }
    Ok(out)
}
