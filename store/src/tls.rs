//! The process-wide TLS provider.
//!
//! rustls needs one crypto provider per process. When a build enables two (a workspace build
//! unifies features, and one dependency asks for aws-lc-rs while another asks for ring), rustls
//! cannot choose and the first TLS-capable client (kube, reqwest, the MongoDB driver with TLS)
//! panics when it is built. Every binary therefore installs ring explicitly at start-up.

/// Installs ring as the process's rustls provider; harmless when one is already installed.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn installing_twice_is_harmless() {
        super::install_default_provider();
        super::install_default_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
