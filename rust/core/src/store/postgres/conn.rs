//! Reaching the server: the connection string (with libpq's `verify-*` TLS modes), TLS by
//! rustls, passwords kept out of messages, and server errors sorted into passing and
//! lasting ones.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            return classify_db_error(db);
        }
        if e.is_closed() {
            return Error::Database("lost the connection to PostgreSQL".into());
        }
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
        Error::Database(format!("cannot reach PostgreSQL: {e}{cause}"))
    }
}

/// A server error as one line (SQLSTATE, message, detail, hint), sorted into what may pass
/// (serialization failures, lock timeouts, a server shutting down) and what will not.
fn classify_db_error(db: &postgres::error::DbError) -> Error {
    use postgres::error::SqlState;
    let mut text = format!("PostgreSQL error {}: {}", db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    if *db.code() == SqlState::DISK_FULL {
        // It passes once space is freed: workers wait for it.
        return Error::Database(format!("{text}: free space on the database server; running workers wait and go on"));
    }
    let next = match db.code() {
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            "the database is read-only (a standby, or default_transaction_read_only): point --db at the primary"
        }
        c if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            "the server reports corruption: stop the workers, run `queuectl check`, and restore a backup"
        }
        c if *c == SqlState::UNDEFINED_TABLE => {
            "the queue's tables are gone (dropped while workers ran?): start the workers again to create them"
        }
        c if *c == SqlState::INVALID_CATALOG_NAME => "the database does not exist: check --db or QUEUECTL_DB",
        c if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            "the server refused these credentials: check the user and password in --db"
        }
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => "grant this user the rights on the queue's schema",
        _ => return Error::Database(text),
    };
    Error::Lasting(format!("{text}: {next}"))
}

/// Whether a TLS certificate is checked: `sslmode=verify-ca|verify-full` check it against
/// the system's roots; `prefer` and `require` encrypt without checking, as libpq does.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(super) fn tls_connector(verify: bool) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Database(format!("cannot set up TLS: {e}")))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A certificate the system store holds but rustls cannot parse is skipped.
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider))).with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Parses a connection URL (or libpq key=value string). `verify-ca` and `verify-full`,
/// which the driver does not know, become `require` with certificate checks.
pub(super) fn parse_location(location: &str) -> Result<(postgres::Config, bool)> {
    let mut verify = false;
    let mut text = location.to_string();
    for mode in ["sslmode=verify-full", "sslmode=verify-ca"] {
        if text.contains(mode) {
            verify = true;
            text = text.replace(mode, "sslmode=require");
        }
    }
    let mut config: postgres::Config =
        text.parse().map_err(|e| Error::InvalidInput(format!("invalid PostgreSQL URL {}: {e}", redact(location))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    // A peer that vanished without a word (a cable pulled, a host or firewall dropping
    // packets) is noticed in about 20 s rather than the kernel's two hours; a URL that sets
    // these keeps its own.
    if !location.contains("keepalives_idle") {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if !location.contains("keepalives_interval") {
        config.keepalives_interval(Duration::from_secs(3));
    }
    if !location.contains("keepalives_retries") {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(20));
    }
    if config.get_application_name().is_none() {
        config.application_name("queuectl");
    }
    Ok((config, verify))
}

/// The location with any password left out, for messages and `--version`.
pub fn redact(location: &str) -> String {
    // postgresql://user:secret@host/db -> postgresql://user@host/db
    if let Some((scheme, rest)) = location.split_once("://") {
        let (auth, tail) = match rest.find('@') {
            Some(at) if !rest[..at].contains('/') => (&rest[..at], &rest[at..]),
            _ => return location.to_string(),
        };
        let user = auth.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}{tail}");
    }
    location.split_whitespace().filter(|kv| !kv.starts_with("password=")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use postgres::config::SslMode;

    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgresql://u:secret@db.example/q"), "postgresql://u@db.example/q");
        assert_eq!(redact("postgresql://db.example/q"), "postgresql://db.example/q");
        assert_eq!(redact("host=db password=secret dbname=q"), "host=db dbname=q");
    }

    #[test]
    fn verify_modes_become_require_with_checks() {
        let (c, verify) = parse_location("postgresql://u@h/db?sslmode=verify-full").unwrap();
        assert!(verify);
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let (c, verify) = parse_location("postgresql://u@h/db").unwrap();
        assert!(!verify);
        assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
        assert!(matches!(parse_location("postgresql://u@h/db?sslmode=bogus"), Err(Error::InvalidInput(_))));
    }
}
