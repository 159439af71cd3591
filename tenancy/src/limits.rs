//! Per-tenant limits a Tenant's spec may set, carried to the services by the tenant directory.

use serde::{Deserialize, Serialize};

/// What one tenant may keep in vector-store-service: collections, points and bytes across all
/// its collections. A field left out takes the service's platform default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_collections: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_points: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

impl VectorQuota {
    /// This quota with every unset field taken from `default`.
    pub fn or(self, default: VectorQuota) -> VectorQuota {
        VectorQuota {
            max_collections: self.max_collections.or(default.max_collections),
            max_points: self.max_points.or(default.max_points),
            max_bytes: self.max_bytes.or(default.max_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_fields_take_the_default_and_set_ones_win() {
        let default = VectorQuota {
            max_collections: Some(10),
            max_points: Some(1000),
            max_bytes: None,
        };
        let own = VectorQuota {
            max_points: Some(5),
            ..VectorQuota::default()
        };
        assert_eq!(
            own.or(default),
            VectorQuota {
                max_collections: Some(10),
                max_points: Some(5),
                max_bytes: None
            }
        );
        let wire: VectorQuota = serde_json::from_str(r#"{"maxBytes": 7}"#).expect("parses");
        assert_eq!(wire.max_bytes, Some(7));
        assert_eq!(wire.max_points, None);
    }
}
