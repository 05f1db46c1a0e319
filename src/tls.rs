//! The server's TLS material.
//!
//! Azure's clients only speak HTTPS, and they verify the server: the certificate must name
//! `IP:127.0.0.1` (and `DNS:localhost`) in its subjectAltName, and it must be issued by a real CA
//! certificate (`basicConstraints CA:TRUE`, `keyUsage keyCertSign`) that the client was told to
//! trust (`connection_verify=CA_FILE` or `REQUESTS_CA_BUNDLE`). This module owns that material:
//!
//! * [`local`] keeps a local development CA (`ca.pem` + `ca-key.pem`) and a server certificate
//!   signed by it (`server.pem` + `server-key.pem`) in the data directory. Whatever is missing is
//!   generated; the server certificate is renewed before it expires or when the names it is
//!   issued for change. Clients trust `ca.pem`.
//! * [`from_files`] uses a certificate chain and private key supplied by the user instead.
//! * Servers sharing one database (replicas behind a load balancer) share one CA: the first makes
//!   it ([`new_ca_pem`]) and keeps it in the database; each [`install_ca`]s it into its data
//!   directory before [`local`], so each issues its own server certificate from the same CA and
//!   clients trust one `ca.pem` for all of them.
//!
//! Both produce a [`ServerTls`] whose rustls configuration uses the aws-lc-rs provider, asks for
//! no client certificate and offers ALPN `h2` and `http/1.1`.
//!
//! Crates do the reading and checking: PEM through rustls' `pki_types`, certificate fields
//! (validity, names, CA flags, subject, public key) through `x509-parser` ([`CertFacts`]), chain
//! and name verification through webpki, exactly as a client does it. rcgen writes certificates.
//!
//! Private keys are created with mode 0600 and are never logged.

use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{RootCertStore, ServerConfig};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Install the one crypto provider of the process (rustls and jsonwebtoken share aws-lc-rs).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// File name of the local CA certificate in the data directory; clients trust this file.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the local CA's private key in the data directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// File name of the server certificate issued by the local CA.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// File name of the server certificate's private key.
pub const SERVER_KEY_FILE: &str = "server-key.pem";
/// ALPN protocols offered by the server, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

const CA_COMMON_NAME: &str = "securescore local CA";
const SERVER_COMMON_NAME: &str = "localhost";
const CA_VALIDITY: Duration = Duration::days(3650);
const SERVER_VALIDITY: Duration = Duration::days(365);
/// Certificates that expire within this window are replaced.
const RENEW_BEFORE: Duration = Duration::days(7);
/// Certificates are valid from slightly in the past to tolerate clock skew.
const BACKDATE: Duration = Duration::hours(1);

/// The TLS configuration the server listens with.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// rustls server configuration (aws-lc-rs provider, no client auth, ALPN h2 + http/1.1).
    pub config: Arc<ServerConfig>,
    /// The local CA certificate clients must trust; `Some` when [`local`] manages the material.
    pub ca_path: Option<PathBuf>,
}

/// Load DATA_DIR/ca.pem + ca-key.pem and DATA_DIR/server.pem + server-key.pem, generating what
/// is missing: a CA (basicConstraints CA:TRUE, keyUsage keyCertSign+cRLSign, CN "securescore
/// local CA", 10 years) and a server certificate signed by it (subjectAltName IP:127.0.0.1,
/// IP:::1, DNS:localhost; EKU serverAuth; 1 year).
///
/// The server certificate is regenerated if it expires within 7 days, if it names other hosts
/// than those three, if it does not verify against the CA (for instance because the CA was
/// regenerated), or if it or its key is unreadable. The CA is regenerated only when one of its
/// two files is missing or it expires within 7 days; a CA that exists but cannot be used is an
/// error, since clients trust it. Private keys are created with mode 0600.
pub fn local(data_dir: &Path) -> Result<ServerTls> {
    fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let files = LocalFiles::in_dir(data_dir);
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);

    let (ca, ca_is_new) = load_or_create_ca(&files, now)?;
    let reused = if ca_is_new { None } else { reuse_server_cert(&files, &ca, now) };
    let config = match reused {
        Some(config) => config,
        None => {
            let (chain, key) = create_server_cert(&files, &ca, now)?;
            server_config(chain, key)
                .context("cannot build the TLS configuration for the generated certificate")?
        }
    };
    Ok(ServerTls { config, ca_path: Some(files.ca_cert) })
}

/// Use the user's certificate chain and key (PEM files; PKCS#8, PKCS#1 or SEC1 keys).
///
/// The certificate file holds the server certificate first, then any intermediates. Errors name
/// the file and say what is wrong with it.
pub fn from_files(cert: &Path, key: &Path) -> Result<ServerTls> {
    let chain = read_cert_chain(cert)?;
    let key_der = read_private_key(key)?;
    let facts = CertFacts::of(&chain[0])
        .with_context(|| format!("the first certificate in {} is unusable", cert.display()))?;
    let now = OffsetDateTime::now_utc();
    if facts.not_after <= now {
        tracing::warn!(
            cert = %cert.display(),
            not_after = %rfc3339(facts.not_after),
            "the TLS certificate has expired; clients will reject it"
        );
    } else if facts.not_before > now {
        tracing::warn!(
            cert = %cert.display(),
            not_before = %rfc3339(facts.not_before),
            "the TLS certificate is not valid yet; clients will reject it"
        );
    }
    if facts.is_ca {
        tracing::warn!(
            cert = %cert.display(),
            "the first certificate is a CA certificate (basicConstraints CA:TRUE), not a server \
             certificate; clients will reject it (put the server's own certificate first)"
        );
    }
    let config = server_config(chain, key_der).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => anyhow!(
            "the private key in {} does not match the certificate in {} (the first certificate \
             in the file must be the server's own, issued for that key)",
            key.display(),
            cert.display()
        ),
        other => anyhow!(
            "cannot use the certificate in {} with the private key in {}: {other}",
            cert.display(),
            key.display()
        ),
    })?;
    tracing::info!(
        cert = %cert.display(),
        names = %facts.names.join(", "),
        not_after = %rfc3339(facts.not_after),
        "using the TLS certificate and key from files"
    );
    Ok(ServerTls { config, ca_path: None })
}

/// What this module reads from a certificate, parsed by x509-parser.
#[derive(Debug)]
struct CertFacts {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    /// The encoded subject Name, to compare issuers byte for byte.
    subject: Vec<u8>,
    /// The encoded SubjectPublicKeyInfo, to match a certificate with its key.
    public_key: Vec<u8>,
    /// basicConstraints CA:TRUE.
    is_ca: bool,
    /// keyUsage keyCertSign (or no keyUsage extension, which allows every use).
    signs_certificates: bool,
    /// The subjectAltName entries this module understands, as `DNS:name` and `IP:address`,
    /// sorted; other kinds are shown by their kind.
    names: Vec<String>,
}

impl CertFacts {
    fn of(der: &[u8]) -> Result<Self> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| anyhow!("not a valid X.509 certificate ({e})"))?;
        let validity = cert.validity();
        let key_usage = cert.key_usage().map_err(|e| anyhow!("bad keyUsage extension ({e})"))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| anyhow!("bad subjectAltName extension ({e})"))?;
        let mut names: Vec<String> = san
            .map(|ext| ext.value.general_names.iter().map(general_name).collect())
            .unwrap_or_default();
        names.sort();
        Ok(Self {
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            subject: cert.subject().as_raw().to_vec(),
            public_key: cert.public_key().raw.to_vec(),
            is_ca: cert
                .basic_constraints()
                .map_err(|e| anyhow!("bad basicConstraints extension ({e})"))?
                .is_some_and(|bc| bc.value.ca),
            signs_certificates: key_usage.is_none_or(|ku| ku.value.key_cert_sign()),
            names,
        })
    }
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => format!("IP:{}", Ipv4Addr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*bytes) {
                Ok(v6) => format!("IP:{}", Ipv6Addr::from(v6)),
                Err(_) => "IP:(malformed)".to_string(),
            },
        },
        other => format!("{other}"),
    }
}

/// The paths of the four files [`local`] manages.
struct LocalFiles {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl LocalFiles {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join(CA_CERT_FILE),
            ca_key: dir.join(CA_KEY_FILE),
            server_cert: dir.join(SERVER_CERT_FILE),
            server_key: dir.join(SERVER_KEY_FILE),
        }
    }
}

/// The local CA, ready to issue certificates.
struct LocalCa {
    /// The CA certificate as stored in ca.pem (the trust anchor clients use).
    cert: CertificateDer<'static>,
    /// rcgen's view of the CA, carrying the subject and key identifier used when issuing.
    issuer: Certificate,
    key: KeyPair,
    not_after: OffsetDateTime,
}

fn load_or_create_ca(files: &LocalFiles, now: OffsetDateTime) -> Result<(LocalCa, bool)> {
    let have_cert = exists(&files.ca_cert)?;
    let have_key = exists(&files.ca_key)?;
    if have_cert && have_key {
        let ca = load_ca(files)?;
        if ca.not_after - now > RENEW_BEFORE {
            tracing::info!(
                ca = %files.ca_cert.display(),
                not_after = %rfc3339(ca.not_after),
                "using the local CA"
            );
            return Ok((ca, false));
        }
        tracing::warn!(
            ca = %files.ca_cert.display(),
            not_after = %rfc3339(ca.not_after),
            "the local CA expires within 7 days; generating a new one (clients must trust the new file)"
        );
    } else if have_cert || have_key {
        let missing = if have_cert { &files.ca_key } else { &files.ca_cert };
        tracing::warn!(
            missing = %missing.display(),
            "half of the local CA is missing; generating a new CA (clients must trust the new file)"
        );
    }
    Ok((create_ca(files, now)?, true))
}

/// A new local CA as PEM text: (certificate, PKCS#8 private key). Nothing is written.
pub fn new_ca_pem() -> Result<(String, String)> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let key = KeyPair::generate().context("cannot generate the local CA key")?;
    let cert = ca_params(now - BACKDATE, now + CA_VALIDITY)
        .self_signed(&key)
        .context("cannot create the local CA certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Make `cert_pem` + `key_pem` (a CA from [`new_ca_pem`], shared through a database) the local CA
/// of `data_dir`, unless it already is; [`local`] then issues this server's certificate from it
/// (a certificate from another CA no longer verifies, so it is replaced).
pub fn install_ca(data_dir: &Path, cert_pem: &str, key_pem: &str) -> Result<()> {
    fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let files = LocalFiles::in_dir(data_dir);
    let same = |path: &Path, text: &str| fs::read_to_string(path).is_ok_and(|t| t == text);
    if same(&files.ca_cert, cert_pem) && same(&files.ca_key, key_pem) {
        return Ok(());
    }
    write_file(&files.ca_key, key_pem.as_bytes(), true)?;
    write_file(&files.ca_cert, cert_pem.as_bytes(), false)?;
    tracing::info!(ca = %files.ca_cert.display(), "installed the local CA shared through the database");
    Ok(())
}

/// The parameters of the local CA certificate. [`load_ca`] rebuilds the same parameters to get
/// an issuer for a reloaded CA: the subject and key identifier rcgen puts into issued
/// certificates depend only on these parameters and the key, so they match the stored CA.
fn ca_params(not_before: OffsetDateTime, not_after: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

fn create_ca(files: &LocalFiles, now: OffsetDateTime) -> Result<LocalCa> {
    let key = KeyPair::generate().context("cannot generate the local CA key")?;
    let not_after = now + CA_VALIDITY;
    // rcgen derives the serial number from the (new, random) key, so every certificate differs.
    let issuer = ca_params(now - BACKDATE, not_after)
        .self_signed(&key)
        .context("cannot create the local CA certificate")?;
    // Key first: a crash in between leaves the CA incomplete, and it is regenerated next time.
    write_file(&files.ca_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&files.ca_cert, issuer.pem().as_bytes(), false)?;
    tracing::info!(
        ca = %files.ca_cert.display(),
        not_after = %rfc3339(not_after),
        "generated a local CA; clients must trust this file (connection_verify or REQUESTS_CA_BUNDLE)"
    );
    Ok(LocalCa { cert: issuer.der().clone(), issuer, key, not_after })
}

fn load_ca(files: &LocalFiles) -> Result<LocalCa> {
    let remedy = format!(
        "delete {} and {} to generate a new local CA (clients must then trust the new {}), \
         or run the server with your own certificate and key",
        files.ca_cert.display(),
        files.ca_key.display(),
        CA_CERT_FILE
    );
    let cert = read_cert_chain(&files.ca_cert)?.swap_remove(0);
    let facts = CertFacts::of(&cert).map_err(|e| {
        anyhow!("{} does not hold a usable CA: {e:#}; {remedy}", files.ca_cert.display())
    })?;
    warn_if_exposed(&files.ca_key);
    let key_pem = fs::read_to_string(&files.ca_key)
        .with_context(|| format!("cannot read the local CA key {}", files.ca_key.display()))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        anyhow!(
            "{} is not a usable private key ({e}); securescore expects the PKCS#8 key it \
             generated; {remedy}",
            files.ca_key.display()
        )
    })?;
    if key.public_key_der() != facts.public_key {
        bail!(
            "the key in {} does not belong to the certificate in {}; {remedy}",
            files.ca_key.display(),
            files.ca_cert.display()
        );
    }
    let issuer = ca_params(facts.not_before, facts.not_after)
        .self_signed(&key)
        .context("cannot rebuild the local CA from its key")?;
    // Issued certificates carry the rebuilt subject as their issuer; it must be the stored one
    // byte for byte, or clients cannot chain them to ca.pem.
    if CertFacts::of(issuer.der())?.subject != facts.subject {
        bail!(
            "{} is not a securescore local CA (its subject is not \"CN={CA_COMMON_NAME}\"), so \
             securescore cannot issue server certificates from it; {remedy}",
            files.ca_cert.display()
        );
    }
    if !facts.is_ca || !facts.signs_certificates {
        bail!(
            "{} is not a CA certificate (it needs basicConstraints CA:TRUE and keyUsage \
             keyCertSign), so certificates it issues would be rejected; {remedy}",
            files.ca_cert.display()
        );
    }
    Ok(LocalCa { cert, issuer, key, not_after: facts.not_after })
}

/// The existing server certificate, if it names exactly the hosts the server answers to, chains
/// to the CA and is valid for at least [`RENEW_BEFORE`] more. Otherwise says why (in the log)
/// and returns `None`, so a new one is issued.
fn reuse_server_cert(
    files: &LocalFiles,
    ca: &LocalCa,
    now: OffsetDateTime,
) -> Option<Arc<ServerConfig>> {
    let have_cert = files.server_cert.exists();
    let have_key = files.server_key.exists();
    if !have_cert || !have_key {
        if have_cert || have_key {
            tracing::info!("half of the server certificate is missing; generating a new one");
        }
        return None;
    }
    let attempt = || -> Result<Arc<ServerConfig>> {
        let chain = read_cert_chain(&files.server_cert)?;
        warn_if_exposed(&files.server_key);
        let key = read_private_key(&files.server_key)?;
        let shown = files.server_cert.display();
        let facts = CertFacts::of(&chain[0]).with_context(|| format!("{shown} is unusable"))?;
        if facts.not_after - now <= RENEW_BEFORE {
            bail!("{shown} expires at {}, within 7 days", rfc3339(facts.not_after));
        }
        let wanted = server_name_labels();
        if facts.names != wanted {
            bail!(
                "{shown} is issued for [{}], not for [{}]",
                facts.names.join(", "),
                wanted.join(", ")
            );
        }
        verify_server_cert(&ca.cert, &chain[0], now)
            .with_context(|| format!("{shown} is not valid under {CA_CERT_FILE}"))?;
        server_config(chain, key).with_context(|| {
            format!("{shown} and {} do not form a usable pair", files.server_key.display())
        })
    };
    match attempt() {
        Ok(config) => {
            tracing::info!(cert = %files.server_cert.display(), "using the server certificate");
            Some(config)
        }
        Err(e) => {
            tracing::info!("renewing the server certificate: {e:#}");
            None
        }
    }
}

fn create_server_cert(
    files: &LocalFiles,
    ca: &LocalCa,
    now: OffsetDateTime,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let not_after = (now + SERVER_VALIDITY).min(ca.not_after);
    let (cert, key) = issue_server_cert(ca, now - BACKDATE, not_after)?;
    verify_server_cert(&ca.cert, cert.der(), now).with_context(|| {
        format!(
            "the generated server certificate does not verify against {}",
            files.ca_cert.display()
        )
    })?;
    write_file(&files.server_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&files.server_cert, cert.pem().as_bytes(), false)?;
    tracing::info!(
        cert = %files.server_cert.display(),
        not_after = %rfc3339(not_after),
        "generated a server certificate for 127.0.0.1, ::1 and localhost"
    );
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((vec![cert.der().clone()], key_der))
}

/// A server certificate for 127.0.0.1, ::1 and localhost, signed by the local CA.
fn issue_server_cert(
    ca: &LocalCa,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(Certificate, KeyPair)> {
    let key = KeyPair::generate().context("cannot generate the server key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, SERVER_COMMON_NAME);
    params.subject_alt_names = server_names()
        .into_iter()
        .map(|name| match name {
            ServerName::IpAddress(ip) => Ok(SanType::IpAddress(IpAddr::from(ip))),
            other => Ok(SanType::DnsName(other.to_str().as_ref().try_into()?)),
        })
        .collect::<Result<_>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .signed_by(&key, &ca.issuer, &ca.key)
        .context("cannot sign the server certificate with the local CA")?;
    Ok((cert, key))
}

/// Check `leaf` the way a client trusting only `ca` would, for every name the server answers
/// to, at time `at`.
fn verify_server_cert(
    ca: &CertificateDer<'static>,
    leaf: &CertificateDer<'_>,
    at: OffsetDateTime,
) -> Result<()> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| anyhow!("{e}"))?;
    let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    for name in server_names() {
        verifier
            .verify_server_cert(leaf, &[], &name, &[], at)
            .with_context(|| format!("not valid for {}", name.to_str()))?;
    }
    Ok(())
}

/// The names the local server certificate is issued for: the one list its subjectAltName, the
/// reuse check and the verification all derive from.
fn server_names() -> [ServerName<'static>; 3] {
    [
        ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
        ServerName::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST).into()),
        ServerName::try_from("localhost").expect("\"localhost\" is a valid DNS name"),
    ]
}

/// [`server_names`] as [`CertFacts::names`] shows them (sorted).
fn server_name_labels() -> Vec<String> {
    let mut labels: Vec<String> = server_names()
        .iter()
        .map(|name| match name {
            ServerName::IpAddress(ip) => format!("IP:{}", IpAddr::from(*ip)),
            other => format!("DNS:{}", other.to_str()),
        })
        .collect();
    labels.sort();
    labels
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// All certificates in a PEM file, at least one.
fn read_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let data = fs::read(path)
        .with_context(|| format!("cannot read the TLS certificate file {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a well-formed PEM file", path.display()))?;
    if !certs.is_empty() {
        return Ok(certs);
    }
    let path = path.display();
    if contains(&data, b"PRIVATE KEY-----") {
        bail!("{path} holds a private key, not a certificate; are the certificate and key files swapped?")
    } else if !contains(&data, b"-----BEGIN ") {
        bail!(
            "{path} is not a PEM file: expected '-----BEGIN CERTIFICATE-----' blocks (the server \
             certificate first, then intermediates); convert a DER certificate with \
             `openssl x509 -inform der -in FILE -out FILE.pem`"
        )
    } else {
        bail!("{path} holds no '-----BEGIN CERTIFICATE-----' block")
    }
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = fs::read(path)
        .with_context(|| format!("cannot read the TLS private key file {}", path.display()))?;
    let error = match PrivateKeyDer::from_pem_slice(&data) {
        Ok(key) => return Ok(key),
        Err(e) => e,
    };
    let path = path.display();
    if !matches!(error, pem::Error::NoItemsFound) {
        bail!("{path} is not a well-formed PEM file: {error}")
    } else if contains(&data, b"ENCRYPTED PRIVATE KEY-----")
        || contains(&data, b"Proc-Type: 4,ENCRYPTED")
    {
        bail!(
            "{path} holds an encrypted private key, which is not supported; decrypt it with \
             `openssl pkey -in FILE -out FILE.decrypted`"
        )
    } else if contains(&data, b"CERTIFICATE-----") {
        bail!("{path} holds a certificate, not a private key; are the certificate and key files swapped?")
    } else if !contains(&data, b"-----BEGIN ") {
        bail!(
            "{path} is not a PEM file: expected a '-----BEGIN PRIVATE KEY-----' (PKCS#8), \
             '-----BEGIN RSA PRIVATE KEY-----' (PKCS#1) or '-----BEGIN EC PRIVATE KEY-----' \
             (SEC1) block"
        )
    } else {
        bail!(
            "{path} holds no supported private key: expected a 'PRIVATE KEY' (PKCS#8), \
             'RSA PRIVATE KEY' (PKCS#1) or 'EC PRIVATE KEY' (SEC1) block"
        )
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists().with_context(|| format!("cannot check whether {} exists", path.display()))
}

/// Write `contents` to `path` atomically: a temporary file in the same directory, renamed over
/// `path` once complete. Private files are created with mode 0600 from the start, so the key is
/// never readable by others, even briefly.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".securescore-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(if private { 0o600 } else { 0o644 }));
    }
    #[cfg(not(unix))]
    let _ = private;
    let write = || -> io::Result<()> {
        let mut file = builder.tempfile_in(dir)?;
        file.write_all(contents)?;
        file.as_file().sync_all()?;
        file.persist(path)?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Warn when a private key file is readable or writable by other users.
fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "private key is accessible to other users; run `chmod 600` on it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    /// A temporary data directory (removed on drop) and its files.
    struct TempDir(tempfile::TempDir);

    impl TempDir {
        fn new() -> Self {
            Self(tempfile::Builder::new().prefix("securescore-tls-").tempdir().unwrap())
        }

        fn root(&self) -> &Path {
            self.0.path()
        }

        fn path(&self, file: &str) -> PathBuf {
            self.root().join(file)
        }

        fn read(&self, file: &str) -> Vec<u8> {
            fs::read(self.path(file)).unwrap()
        }
    }

    fn ca_roots(ca_pem: &Path) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in read_cert_chain(ca_pem).unwrap() {
            roots.add(cert).unwrap();
        }
        roots
    }

    fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Accept TLS connections forever; each gets "hello" and a close_notify.
    async fn serve(config: Arc<ServerConfig>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"hello").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        addr
    }

    /// Connect, returning the negotiated ALPN protocol and what the server sent.
    async fn connect(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<(Option<Vec<u8>>, Vec<u8>)> {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let mut received = Vec::new();
        tls.read_to_end(&mut received).await?;
        Ok((alpn, received))
    }

    fn ip_name() -> ServerName<'static> {
        ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
    }

    fn localhost_name() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }

    fn error_text(result: Result<ServerTls>) -> String {
        format!("{:#}", result.expect_err("expected an error"))
    }

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> =
            encoded.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).unwrap()).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    }

    /// The inner private key of a PKCS#8 key (PKCS#1 for RSA, SEC1 for EC): the OCTET STRING
    /// after the version and the algorithm.
    fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
        let (_, info) = x509_parser::der_parser::parse_der(der).unwrap();
        info.as_sequence().unwrap()[2].as_slice().unwrap().to_vec()
    }

    /// A self-signed server certificate for `key`, written as PEM to `cert_path`.
    fn write_self_signed(key: &KeyPair, cert_path: &Path) {
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(key)
            .unwrap();
        fs::write(cert_path, cert.pem()).unwrap();
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn local_generates_material_once_and_reuses_it() {
        let dir = TempDir::new();
        let first = local(dir.root()).unwrap();
        assert_eq!(first.ca_path.as_deref(), Some(dir.path(CA_CERT_FILE).as_path()));
        for file in [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE] {
            assert!(dir.path(file).is_file(), "{file} was not created");
        }
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.path(CA_KEY_FILE)), 0o600);
            assert_eq!(mode(&dir.path(SERVER_KEY_FILE)), 0o600);
        }
        let mut names: Vec<_> =
            fs::read_dir(dir.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(
            names,
            [CA_KEY_FILE, CA_CERT_FILE, SERVER_KEY_FILE, SERVER_CERT_FILE],
            "no leftovers"
        );
        let before: Vec<_> = [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE]
            .map(|f| dir.read(f))
            .into();
        let second = local(dir.root()).unwrap();
        assert_eq!(second.ca_path, first.ca_path);
        let after: Vec<_> = [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE]
            .map(|f| dir.read(f))
            .into();
        assert_eq!(before, after, "the second call must reuse the CA and server certificate");
        assert_eq!(first.config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[tokio::test]
    async fn generated_certificates_have_the_required_shape() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        let ca = read_cert_chain(&dir.path(CA_CERT_FILE)).unwrap().remove(0);
        let server = read_cert_chain(&dir.path(SERVER_CERT_FILE)).unwrap().remove(0);
        let ca_info = CertFacts::of(&ca).unwrap();
        let server_info = CertFacts::of(&server).unwrap();
        let now = OffsetDateTime::now_utc();
        assert!((ca_info.not_after - now).whole_days() >= 3649);
        assert!((server_info.not_after - now).whole_days() >= 364);
        assert!((server_info.not_after - now).whole_days() <= 365);
        assert!(ca_info.not_before <= now && server_info.not_before <= now);
        assert!(ca_info.is_ca && ca_info.signs_certificates);
        assert!(!server_info.is_ca && !server_info.signs_certificates);
        assert_eq!(server_info.names, ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]);
        // Valid for all three names, chained to the CA; webpki also checks EKU serverAuth and
        // that the issuer is a CA allowed to sign certificates.
        verify_server_cert(&ca, &server, now).unwrap();
        // A CA-only trust store cannot be fooled into accepting the CA as a server certificate.
        assert!(verify_server_cert(&ca, &ca, now).is_err());
    }

    #[tokio::test]
    async fn handshake_succeeds_with_only_the_local_ca_trusted() {
        let dir = TempDir::new();
        let tls = local(dir.root()).unwrap();
        let addr = serve(tls.config.clone()).await;
        let roots = || ca_roots(tls.ca_path.as_deref().unwrap());
        let both: &[&[u8]] = &[b"h2", b"http/1.1"];

        for name in [ip_name(), localhost_name()] {
            let (alpn, received) = connect(addr, client_config(roots(), both), name.clone())
                .await
                .unwrap_or_else(|e| panic!("handshake as {name:?} failed: {e}"));
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
            assert_eq!(received, b"hello");
        }
        let (alpn, _) =
            connect(addr, client_config(roots(), &[b"http/1.1"]), ip_name()).await.unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

        let untrusting = client_config(RootCertStore::empty(), both);
        let error = connect(addr, untrusting, ip_name()).await.unwrap_err();
        assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    }

    #[tokio::test]
    async fn server_certificate_is_renewed_before_it_expires() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        let ca_before = dir.read(CA_CERT_FILE);

        // Replace the server certificate with one that expires in three days.
        let files = LocalFiles::in_dir(dir.root());
        let ca = load_ca(&files).unwrap();
        let now = OffsetDateTime::now_utc();
        let (cert, key) = issue_server_cert(&ca, now - BACKDATE, now + Duration::days(3)).unwrap();
        write_file(&files.server_key, key.serialize_pem().as_bytes(), true).unwrap();
        write_file(&files.server_cert, cert.pem().as_bytes(), false).unwrap();
        let short_lived = dir.read(SERVER_CERT_FILE);

        let tls = local(dir.root()).unwrap();
        assert_eq!(dir.read(CA_CERT_FILE), ca_before, "the CA must be kept");
        let renewed = dir.read(SERVER_CERT_FILE);
        assert_ne!(renewed, short_lived, "the server certificate must be renewed");
        let renewed = read_cert_chain(&dir.path(SERVER_CERT_FILE)).unwrap().remove(0);
        assert!(CertFacts::of(&renewed).unwrap().not_after - now > Duration::days(300));

        let addr = serve(tls.config).await;
        let client = client_config(ca_roots(&dir.path(CA_CERT_FILE)), &[b"http/1.1"]);
        connect(addr, client, ip_name()).await.unwrap();
    }

    #[tokio::test]
    async fn a_ca_about_to_expire_is_replaced_with_its_server_certificate() {
        let dir = TempDir::new();
        let now = OffsetDateTime::now_utc();
        // A securescore CA that expires in three days.
        let key = KeyPair::generate().unwrap();
        let old_ca = ca_params(now - BACKDATE, now + Duration::days(3)).self_signed(&key).unwrap();
        write_file(&dir.path(CA_KEY_FILE), key.serialize_pem().as_bytes(), true).unwrap();
        write_file(&dir.path(CA_CERT_FILE), old_ca.pem().as_bytes(), false).unwrap();
        assert!(load_ca(&LocalFiles::in_dir(dir.root())).is_ok(), "a usable CA, only short-lived");

        let tls = local(dir.root()).unwrap();
        assert_ne!(dir.read(CA_CERT_FILE), old_ca.pem().into_bytes(), "the CA must be replaced");
        let ca = read_cert_chain(&dir.path(CA_CERT_FILE)).unwrap().remove(0);
        assert!(CertFacts::of(&ca).unwrap().not_after - now > Duration::days(3000));
        let server = read_cert_chain(&dir.path(SERVER_CERT_FILE)).unwrap().remove(0);
        verify_server_cert(&ca, &server, now).unwrap();
        let addr = serve(tls.config).await;
        let client = client_config(ca_roots(&dir.path(CA_CERT_FILE)), &[b"http/1.1"]);
        connect(addr, client, ip_name()).await.unwrap();
    }

    #[tokio::test]
    async fn server_certificate_is_reissued_when_the_ca_is_regenerated() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        let ca_before = dir.read(CA_CERT_FILE);
        let server_before = dir.read(SERVER_CERT_FILE);
        fs::remove_file(dir.path(CA_KEY_FILE)).unwrap();

        let tls = local(dir.root()).unwrap();
        assert_ne!(dir.read(CA_CERT_FILE), ca_before);
        assert_ne!(dir.read(SERVER_CERT_FILE), server_before);
        #[cfg(unix)]
        assert_eq!(mode(&dir.path(CA_KEY_FILE)), 0o600);

        let addr = serve(tls.config).await;
        let client = client_config(ca_roots(&dir.path(CA_CERT_FILE)), &[b"http/1.1"]);
        connect(addr, client, localhost_name()).await.unwrap();
    }

    #[tokio::test]
    async fn damaged_server_files_are_regenerated() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        fs::write(dir.path(SERVER_CERT_FILE), "garbage").unwrap();
        let tls = local(dir.root()).unwrap();
        assert_ne!(dir.read(SERVER_CERT_FILE), b"garbage");

        // A key that does not match the certificate is replaced too.
        let other = KeyPair::generate().unwrap();
        fs::write(dir.path(SERVER_KEY_FILE), other.serialize_pem()).unwrap();
        let cert_before = dir.read(SERVER_CERT_FILE);
        let tls2 = local(dir.root()).unwrap();
        assert_ne!(dir.read(SERVER_CERT_FILE), cert_before);
        drop((tls, tls2));
    }

    #[tokio::test]
    async fn an_unusable_ca_is_an_error_not_silently_replaced() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        let ca_key = dir.path(CA_KEY_FILE);

        // A key that does not belong to the CA certificate.
        fs::write(&ca_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let message = error_text(local(dir.root()));
        assert!(message.contains(&ca_key.display().to_string()), "{message}");
        assert!(message.contains("does not belong"), "{message}");

        // Garbage instead of a key.
        fs::write(&ca_key, "not a key").unwrap();
        let message = error_text(local(dir.root()));
        assert!(message.contains(&ca_key.display().to_string()), "{message}");

        // A CA that securescore did not create.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let foreign = params.self_signed(&key).unwrap();
        fs::write(&ca_key, key.serialize_pem()).unwrap();
        fs::write(dir.path(CA_CERT_FILE), foreign.pem()).unwrap();
        let message = error_text(local(dir.root()));
        assert!(message.contains("is not a securescore local CA"), "{message}");
        assert_eq!(dir.read(CA_CERT_FILE), foreign.pem().into_bytes(), "CA left alone");
    }

    #[tokio::test]
    async fn from_files_serves_a_user_certificate() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        let tls = from_files(&dir.path(SERVER_CERT_FILE), &dir.path(SERVER_KEY_FILE)).unwrap();
        assert_eq!(tls.ca_path, None);
        assert_eq!(tls.config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let addr = serve(tls.config).await;
        let client = client_config(ca_roots(&dir.path(CA_CERT_FILE)), &[b"h2", b"http/1.1"]);
        let (alpn, _) = connect(addr, client, ip_name()).await.unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    }

    #[tokio::test]
    async fn from_files_accepts_pkcs1_and_sec1_keys() {
        let dir = TempDir::new();
        let cert = dir.path("cert.pem");
        let key_path = dir.path("key.pem");

        let ec = KeyPair::generate().unwrap();
        write_self_signed(&ec, &cert);
        let sec1 = pem("EC PRIVATE KEY", &pkcs8_inner(ec.serialized_der()));
        fs::write(&key_path, sec1).unwrap();
        from_files(&cert, &key_path).unwrap();

        let rsa =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        write_self_signed(&rsa, &cert);
        let pkcs1 = pem("RSA PRIVATE KEY", &pkcs8_inner(rsa.serialized_der()));
        fs::write(&key_path, pkcs1).unwrap();
        from_files(&cert, &key_path).unwrap();
    }

    #[tokio::test]
    async fn from_files_errors_name_the_file_and_the_problem() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        let cert = dir.path(SERVER_CERT_FILE);
        let key = dir.path(SERVER_KEY_FILE);
        let shown = |p: &Path| p.display().to_string();

        let missing = dir.path("missing.pem");
        let message = error_text(from_files(&missing, &key));
        assert!(message.contains(&shown(&missing)), "{message}");
        assert!(message.contains("cannot read the TLS certificate file"), "{message}");
        let message = error_text(from_files(&cert, &missing));
        assert!(message.contains(&shown(&missing)), "{message}");
        assert!(message.contains("cannot read the TLS private key file"), "{message}");

        let garbage = dir.path("garbage.pem");
        fs::write(&garbage, "this is not PEM\n").unwrap();
        let message = error_text(from_files(&garbage, &key));
        assert!(message.contains(&shown(&garbage)), "{message}");
        assert!(message.contains("not a PEM file"), "{message}");
        let message = error_text(from_files(&cert, &garbage));
        assert!(message.contains(&shown(&garbage)), "{message}");
        assert!(message.contains("not a PEM file"), "{message}");

        let broken = dir.path("broken.pem");
        fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        let message = error_text(from_files(&broken, &key));
        assert!(message.contains(&shown(&broken)), "{message}");

        // Well-formed PEM around bytes that are no certificate.
        let not_x509 = dir.path("not-x509.pem");
        fs::write(&not_x509, pem("CERTIFICATE", b"\x30\x03\x02\x01\x00")).unwrap();
        let message = error_text(from_files(&not_x509, &key));
        assert!(message.contains(&shown(&not_x509)), "{message}");
        assert!(message.contains("not a valid X.509 certificate"), "{message}");

        let message = error_text(from_files(&key, &cert));
        assert!(message.contains(&shown(&key)), "{message}");
        assert!(message.contains("swapped"), "{message}");

        let encrypted = dir.path("encrypted.pem");
        fs::write(&encrypted, pem("ENCRYPTED PRIVATE KEY", b"0123456789")).unwrap();
        let message = error_text(from_files(&cert, &encrypted));
        assert!(message.contains(&shown(&encrypted)), "{message}");
        assert!(message.contains("encrypted"), "{message}");

        let message = error_text(from_files(&cert, &dir.path(CA_KEY_FILE)));
        assert!(message.contains("does not match"), "{message}");
        assert!(message.contains(&shown(&dir.path(CA_KEY_FILE))), "{message}");
        assert!(message.contains(&shown(&cert)), "{message}");
    }

    #[tokio::test]
    async fn server_certificate_is_reissued_when_its_names_differ() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        let ca_before = dir.read(CA_CERT_FILE);

        // A valid certificate from the same CA, but for localhost only (as an older version
        // might have issued it): clients connecting to 127.0.0.1 would reject it.
        let files = LocalFiles::in_dir(dir.root());
        let ca = load_ca(&files).unwrap();
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(100);
        let cert = params.signed_by(&key, &ca.issuer, &ca.key).unwrap();
        write_file(&files.server_key, key.serialize_pem().as_bytes(), true).unwrap();
        write_file(&files.server_cert, cert.pem().as_bytes(), false).unwrap();
        assert_eq!(CertFacts::of(cert.der()).unwrap().names, ["DNS:localhost"]);

        let tls = local(dir.root()).unwrap();
        assert_eq!(dir.read(CA_CERT_FILE), ca_before, "the CA must be kept");
        let reissued = read_cert_chain(&dir.path(SERVER_CERT_FILE)).unwrap().remove(0);
        assert_eq!(CertFacts::of(&reissued).unwrap().names, server_name_labels());
        let addr = serve(tls.config).await;
        let client = client_config(ca_roots(&dir.path(CA_CERT_FILE)), &[b"http/1.1"]);
        connect(addr, client, ip_name()).await.unwrap();
    }

    #[tokio::test]
    async fn a_ca_file_without_ca_powers_is_an_error() {
        let dir = TempDir::new();
        local(dir.root()).unwrap();
        // The right name and a matching key, but no basicConstraints CA:TRUE.
        let key = KeyPair::generate().unwrap();
        let mut params =
            ca_params(OffsetDateTime::now_utc(), OffsetDateTime::now_utc() + CA_VALIDITY);
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let not_a_ca = params.self_signed(&key).unwrap();
        fs::write(dir.path(CA_KEY_FILE), key.serialize_pem()).unwrap();
        fs::write(dir.path(CA_CERT_FILE), not_a_ca.pem()).unwrap();
        let message = error_text(local(dir.root()));
        assert!(message.contains("is not a CA certificate"), "{message}");
        assert!(message.contains(&dir.path(CA_CERT_FILE).display().to_string()), "{message}");
        assert_eq!(dir.read(CA_CERT_FILE), not_a_ca.pem().into_bytes(), "CA left alone");
    }

    #[test]
    fn cert_facts_read_validity_names_and_ca_flags() {
        use time::macros::datetime;
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["example.test".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))));
        // UTCTime up to 2049, GeneralizedTime from 2050 on.
        params.not_before = datetime!(2049-12-31 23:59:59 UTC);
        params.not_after = datetime!(2061-02-28 12:00:00 UTC);
        let cert = params.self_signed(&key).unwrap();
        let facts = CertFacts::of(cert.der()).unwrap();
        assert_eq!(facts.not_before, datetime!(2049-12-31 23:59:59 UTC));
        assert_eq!(facts.not_after, datetime!(2061-02-28 12:00:00 UTC));
        assert_eq!(facts.names, ["DNS:example.test", "IP:10.1.2.3", "IP:::1"]);
        assert_eq!(facts.public_key, key.public_key_der());
        assert!(!facts.is_ca);
        // No keyUsage extension allows every use.
        assert!(facts.signs_certificates);

        assert!(CertFacts::of(b"\x30\x03\x02\x01\x00").is_err());
        assert!(CertFacts::of(b"").is_err());
        let mut truncated = cert.der().to_vec();
        truncated.truncate(truncated.len() / 2);
        assert!(CertFacts::of(&truncated).is_err());
    }

    /// Two replicas given one CA from the database: each issues its own server certificate,
    /// and a client that trusts the one `ca.pem` connects to both; installing again changes
    /// nothing, and a replica that had another CA adopts the shared one.
    #[tokio::test]
    async fn replicas_sharing_a_ca_are_trusted_through_one_ca_file() {
        install_crypto_provider();
        let (cert, key) = new_ca_pem().unwrap();
        let (a, b) = (TempDir::new(), TempDir::new());
        local(b.root()).unwrap(); // b had a CA of its own before joining
        let mut addrs = Vec::new();
        for dir in [&a, &b] {
            install_ca(dir.root(), &cert, &key).unwrap();
            addrs.push(serve(local(dir.root()).unwrap().config).await);
        }
        assert_eq!(a.read(CA_CERT_FILE), b.read(CA_CERT_FILE));
        assert_ne!(a.read(SERVER_CERT_FILE), b.read(SERVER_CERT_FILE), "each its own certificate");
        let stamp = fs::metadata(a.path(CA_KEY_FILE)).unwrap().modified().unwrap();
        install_ca(a.root(), &cert, &key).unwrap();
        assert_eq!(fs::metadata(a.path(CA_KEY_FILE)).unwrap().modified().unwrap(), stamp);
        let client = client_config(ca_roots(&a.path(CA_CERT_FILE)), &[b"http/1.1"]);
        for addr in addrs {
            let (_, received) = connect(addr, client.clone(), ip_name()).await.unwrap();
            assert_eq!(received, b"hello");
        }
    }
}
