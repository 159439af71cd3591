//! The configuration hash (pure): SHA-256 over everything the pods read, so any change of it
//! changes the pod template and rolls the pods. The same value is `status.configHash`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use sha2::{Digest, Sha256};

/// SHA-256 (hex) over the ConfigMap's data, the container's env and the value of every Secret
/// key the env references (`None`: an optional key that is missing), each in a stable order.
/// Any change to what the pods read changes it, so the pod template changes and the pods roll.
pub fn config_hash(
    config: &BTreeMap<String, String>,
    env: &[EnvVar],
    secrets: &BTreeMap<(String, String), Option<Vec<u8>>>,
) -> String {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    field(&mut h, b"configmap");
    for (k, v) in config {
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    field(&mut h, b"env");
    for e in env {
        // EnvVar serializes its fields in declaration order: stable.
        field(&mut h, &serde_json::to_vec(e).unwrap_or_default());
    }
    field(&mut h, b"secrets");
    for ((name, key), value) in secrets {
        field(&mut h, name.as_bytes());
        field(&mut h, key.as_bytes());
        match value {
            Some(v) => {
                field(&mut h, b"1");
                field(&mut h, v);
            }
            None => field(&mut h, b"0"),
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
