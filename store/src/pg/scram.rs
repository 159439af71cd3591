//! SCRAM-SHA-256 password verifiers computed on the client (RFC 5802, RFC 7677), in the form
//! PostgreSQL stores in `pg_authid.rolpassword`:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64).
//!
//! The platform sets role passwords with `ALTER ROLE … PASSWORD '<verifier>'`, so the clear
//! password never travels to the server: not in the statement text, not as a bind parameter,
//! so no statement log (`log_statement = 'all'`, `log_min_duration_statement`) can hold it.
//! PostgreSQL stores a well-formed verifier as given, and clients (PgBouncer's `auth_query`
//! included) authenticate against it exactly as against one the server computed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::Secret;

/// PostgreSQL's default `scram_iterations`.
pub const ITERATIONS: u32 = 4096;

/// The verifier of `password` with a fresh random 16-byte salt.
pub fn verifier(password: &Secret<String>) -> String {
    let salt: [u8; 16] = rand::random();
    verifier_with_salt(password.expose(), &salt, ITERATIONS)
}

/// The verifier of `password` with the given salt and iteration count.
pub fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    // PostgreSQL normalizes with SASLprep and, when the password is not valid for it
    // (prohibited characters), uses the bytes as they are; do the same so both agree.
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_string());
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independently_computed_verifier() {
        // Computed with Python's hashlib.pbkdf2_hmac / hmac for password "pencil", salt 0..16.
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            verifier_with_salt("pencil", &salt, 4096),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE="
        );
    }

    #[test]
    fn salts_are_fresh_and_the_password_is_not_in_the_verifier() {
        let pw = Secret::new("correct-horse-battery".to_string());
        let (a, b) = (verifier(&pw), verifier(&pw));
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!a.contains("correct-horse-battery"));
    }
}
