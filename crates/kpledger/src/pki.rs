//! The certificates of a test network's API: a CA of its own (`DIR/ca.pem`, key `DIR/ca.key`),
//! a TLS certificate per node, and client certificates whose role is a `kp-ledger:` URI
//! (`kp_node::access::parse_role`). Keys are ECDSA P-256, written with mode 0600.
//!
//! A deployed network's CA is the KP's (or a participant's own, for its authorities); these
//! commands are what a test network needs, and show what such a CA issues.

use anyhow::{Context, Result, ensure};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use std::net::IpAddr;
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// A CA that can issue: its key and its certificate.
pub struct Ca {
    key: KeyPair,
    cert: Certificate,
}

impl std::fmt::Debug for Ca {
    // Neither the key nor rcgen's certificate is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a serial number: {e}"))?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Kimberley Process test network");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// Writes `text` to a new file `path` with mode 0600 (a private key) or 0644.
fn write(path: &Path, text: &str, secret: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}

impl Ca {
    /// A new CA named `name`, valid ten years from `now`.
    pub fn new(name: &str, now: OffsetDateTime) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(name);
        params.serial_number = Some(serial()?);
        params.not_before = now - Duration::days(2);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(Ca { key, cert })
    }

    /// Writes `DIR/ca.pem` and `DIR/ca.key`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write(&dir.join("ca.pem"), &self.cert.pem(), false)?;
        write(&dir.join("ca.key"), &self.key.serialize_pem(), true)
    }

    /// The CA of a test network, from `DIR/ca.pem` and `DIR/ca.key`: certificates it issues
    /// chain to the CA certificate in the file (same subject, same key).
    pub fn load(dir: &Path) -> Result<Ca> {
        let key_file = dir.join("ca.key");
        let key_pem = std::fs::read_to_string(&key_file).with_context(|| format!("reading {}", key_file.display()))?;
        let key = KeyPair::from_pem(&key_pem).with_context(|| format!("{} is not a PEM key", key_file.display()))?;
        let cert_file = dir.join("ca.pem");
        let pem = std::fs::read(&cert_file).with_context(|| format!("reading {}", cert_file.display()))?;
        let der = ::pem::parse(&pem).with_context(|| format!("{} is not PEM", cert_file.display()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(der.contents())
            .map_err(|e| anyhow::anyhow!("{} is not a certificate: {e}", cert_file.display()))?;
        let name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .with_context(|| format!("{}: the CA's subject has no common name", cert_file.display()))?
            .to_owned();
        ensure!(
            parsed.public_key().raw == key.public_key_der().as_slice(),
            "{} is not the key of the CA certificate {}",
            key_file.display(),
            cert_file.display()
        );
        // Re-signed as issuer only: what a certificate takes from its issuer is the subject
        // (rebuilt identically) and the key.
        let cert = ca_params(&name).self_signed(&key)?;
        ensure!(
            cert.params().distinguished_name == ca_params(&name).distinguished_name
                && parsed.subject().as_raw() == subject_der(&cert)?.as_slice(),
            "{}: the CA's subject is not one this tool wrote; issue with the CA's own tools",
            cert_file.display()
        );
        Ok(Ca { key, cert })
    }

    /// A node's TLS server certificate for `names` (DNS names) and `ips`, valid two years.
    pub fn issue_server(
        &self,
        name: &str,
        dns: &[&str],
        ips: &[IpAddr],
        now: OffsetDateTime,
    ) -> Result<(String, String)> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        for d in dns {
            params.subject_alt_names.push(SanType::DnsName((*d).try_into()?));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(serial()?);
        params.not_before = now - Duration::days(2);
        params.not_after = now + Duration::days(730);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A client certificate for `name` with the role URI `role` (like
    /// `kp-ledger:authority:BW`), valid from `not_before` to `not_after`.
    pub fn issue_client(
        &self,
        name: &str,
        role: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(String, String)> {
        kp_node::access::parse_role(role).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names.push(SanType::URI(role.try_into()?));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(serial()?);
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn subject_der(cert: &Certificate) -> Result<Vec<u8>> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.der()).map_err(|e| anyhow::anyhow!("a certificate just made: {e}"))?;
    Ok(parsed.subject().as_raw().to_vec())
}

/// Writes a certificate and its key as `PREFIX.pem` and `PREFIX.key` (0600).
pub fn write_pair(dir: &Path, stem: &str, (cert, key): &(String, String)) -> Result<()> {
    write(&dir.join(format!("{stem}.pem")), cert, false)?;
    write(&dir.join(format!("{stem}.key")), key, true)
}

/// The time now, for certificates.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_reloaded_ca_issues_what_chains_to_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("KP test CA", now()).unwrap();
        ca.write(dir.path()).unwrap();
        let again = Ca::load(dir.path()).unwrap();
        let (cert, _) = again.issue_client("r", "kp-ledger:reviewer", now(), now() + Duration::days(1)).unwrap();
        let der = ::pem::parse(cert).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(der.contents()).unwrap();
        let ca_der = ::pem::parse(std::fs::read(dir.path().join("ca.pem")).unwrap()).unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca_der.contents()).unwrap();
        assert_eq!(c.issuer().as_raw(), ca_cert.subject().as_raw());
        assert!(c.verify_signature(Some(ca_cert.public_key())).is_ok());
        assert!(ca.issue_client("r", "kp-ledger:admin", now(), now()).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
