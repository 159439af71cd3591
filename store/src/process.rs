//! Process start-up and shutdown every PrismicX binary shares (the services and the operator):
//! logging and the TLS provider first, a shutdown signal last.

/// Process start-up every binary runs first: logging at `log_level` in `log_format`
/// ([`crate::telemetry`]), and the TLS provider ([`crate::tls`]).
pub fn init(log_level: &str, log_format: &str) {
    crate::telemetry::init(log_level, log_format);
    crate::tls::install_default_provider();
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining connections");
}
