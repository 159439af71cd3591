//! Logging setup from the service's `*_LOG_LEVEL` variable (`INFO`, `debug`, `WARNING`, … or a
//! full tracing filter such as `info,sqlx=warn`).

use tracing_subscriber::EnvFilter;

/// The filter for a `*_LOG_LEVEL` value.
pub fn filter_for(level: &str) -> EnvFilter {
    let l = level.trim().to_ascii_lowercase();
    let directive = match l.as_str() {
        "" => "info".to_string(),
        "warning" => "warn".to_string(),
        "critical" | "fatal" => "error".to_string(),
        "trace" | "debug" | "info" | "warn" | "error" | "off" => l.clone(),
        _ if l.contains('=') || l.contains(',') => l.clone(),
        _ => "info".to_string(),
    };
    // sqlx logs every statement at debug; keep it at warn unless asked for explicitly.
    let directive = if directive.contains("sqlx") {
        directive
    } else {
        format!("{directive},sqlx=warn")
    };
    EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber (once; later calls are ignored). `format`: `text` or `json`.
pub fn init(level: &str, format: &str) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter_for(level));
    let _ = if format.eq_ignore_ascii_case("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_level_names_map_to_filters() {
        assert_eq!(filter_for("INFO").to_string(), "sqlx=warn,info");
        assert_eq!(filter_for("WARNING").to_string(), "sqlx=warn,warn");
        assert!(filter_for("debug,sqlx=debug")
            .to_string()
            .contains("sqlx=debug"));
        assert_eq!(filter_for("nonsense").to_string(), "sqlx=warn,info");
    }
}
