//! One validated configuration built from the command line and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;
use zeroize::Zeroizing;

use crate::cli::ServeArgs;
use crate::providers::PerProvider;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--listen {0} is not a loopback address; the Hub holds your provider keys. Use \
         127.0.0.1, or add --allow-non-loopback (WORKSHOP_HUB_ALLOW_NON_LOOPBACK=1) if you \
         really mean it"
    )]
    NonLoopback(SocketAddr),
    #[error(
        "--listen {0} reaches beyond this machine, so the passphrase and session would cross \
         the network: give --tls-cert FILE --tls-key FILE (WORKSHOP_HUB_TLS_CERT, \
         WORKSHOP_HUB_TLS_KEY), or add --insecure-http (WORKSHOP_HUB_INSECURE_HTTP=1) on a \
         network you trust completely"
    )]
    NeedsTls(SocketAddr),
    #[error(
        "--listen {0} answers no network client by name: add --public-host NAME \
         (WORKSHOP_HUB_PUBLIC_HOST), the name they use to reach this Hub"
    )]
    NeedsPublicHost(SocketAddr),
    #[error("--public-host `{0}` is not a host name or host:port")]
    BadPublicHost(String),
    #[error("{flag}: `{value}` is not a usable URL root ({why}); use e.g. https://api.openai.com")]
    BadBaseUrl {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "no data directory: set --data-dir or WORKSHOP_HUB_DATA_DIR (the platform data dir is unknown)"
    )]
    NoDataDir,
    #[error("--passphrase-file {path}: {source}")]
    PassphraseFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--passphrase-file {path} can be read or changed by other users (mode {mode:o}); \
         run `chmod 600 {path}` and start again"
    )]
    PassphraseFileOpen { path: PathBuf, mode: u32 },
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

/// Everything the Hub needs to start. Built once; handed to the server through app data.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub allow_non_loopback: bool,
    /// HTTPS certificate chain and key files; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The name network clients use, added to the Host allow-list (`host` or `host:port`).
    pub public_host: Option<String>,
    pub data_dir: PathBuf,
    pub offline: bool,
    /// Headless unlock: from `WORKSHOP_HUB_PASSPHRASE` or `--passphrase-file`.
    pub passphrase: Option<SecretString>,
    pub upstreams: Upstreams,
    /// Platform keys for managed connections, from `WORKSHOP_HUB_MANAGED_*_KEY`.
    pub managed_keys: ManagedKeys,
    pub upstream_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub session_idle: Duration,
    pub max_body_bytes: usize,
    /// Bounds of the gateway's front door and of what it takes from providers.
    pub gateway: GatewayLimits,
    /// Argon2id parameters for a new vault.
    pub kdf: crate::vault::KdfParams,
}

/// The PEM files of `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How much the gateway reads and holds: request bodies in flight, the time to send one, and
/// the largest answer and stream event it takes from a provider.
#[derive(Debug, Clone, Copy)]
pub struct GatewayLimits {
    pub bodies_in_flight_bytes: usize,
    pub body_timeout: Duration,
    pub max_upstream_body_bytes: usize,
    pub max_stream_event_bytes: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            bodies_in_flight_bytes: 128 * MIB,
            body_timeout: Duration::from_secs(30),
            max_upstream_body_bytes: 64 * MIB,
            max_stream_event_bytes: 8 * MIB,
        }
    }
}

const MIB: usize = 1024 * 1024;

/// Provider API roots, without a version path.
pub type Upstreams = PerProvider<Url>;

/// Platform keys for managed connections, from `WORKSHOP_HUB_MANAGED_*_KEY`.
pub type ManagedKeys = PerProvider<Option<SecretString>>;

fn managed_keys_from_env() -> ManagedKeys {
    PerProvider::from_fn(|p| {
        env_secret(&format!(
            "WORKSHOP_HUB_MANAGED_{}_KEY",
            p.as_str().to_ascii_uppercase()
        ))
    })
}

/// A secret from the environment; the intermediate copies are wiped.
fn env_secret(name: &str) -> Option<SecretString> {
    let raw = Zeroizing::new(std::env::var(name).ok()?);
    let value = raw.trim();
    (!value.is_empty()).then(|| SecretString::from(value.to_string()))
}

impl Config {
    /// Validates the parsed arguments and reads secrets from the environment or files.
    pub fn from_args(args: &ServeArgs) -> Result<Config, ConfigError> {
        check_reach(args)?;
        let public_host = match &args.public_host {
            Some(name) => Some(public_host(name)?),
            None => None,
        };
        let data_dir = data_dir_or_default(args.data_dir.as_deref())?;
        let passphrase = match &args.passphrase_file {
            Some(path) => Some(read_passphrase_file(path)?),
            None => env_secret("WORKSHOP_HUB_PASSPHRASE"),
        };
        for (value, name) in [
            (args.upstream_timeout_secs, "--upstream-timeout-secs"),
            (args.stream_idle_timeout_secs, "--stream-idle-timeout-secs"),
            (args.session_idle_minutes, "--session-idle-minutes"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (value, name) in [
            (args.max_body_mib, "--max-body-mib"),
            (args.max_bodies_in_flight_mib, "--max-bodies-in-flight-mib"),
            (args.max_upstream_body_mib, "--max-upstream-body-mib"),
            (args.max_stream_event_mib, "--max-stream-event-mib"),
            (args.body_timeout_secs as usize, "--body-timeout-secs"),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(Config {
            listen: args.listen,
            allow_non_loopback: args.allow_non_loopback,
            tls: match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            public_host,
            data_dir,
            offline: args.offline,
            passphrase,
            upstreams: Upstreams {
                openai: base_url("--openai-base-url", &args.openai_base_url)?,
                anthropic: base_url("--anthropic-base-url", &args.anthropic_base_url)?,
                gemini: base_url("--gemini-base-url", &args.gemini_base_url)?,
            },
            managed_keys: managed_keys_from_env(),
            upstream_timeout: Duration::from_secs(args.upstream_timeout_secs),
            stream_idle_timeout: Duration::from_secs(args.stream_idle_timeout_secs),
            session_idle: Duration::from_secs(args.session_idle_minutes * 60),
            max_body_bytes: args.max_body_mib.saturating_mul(MIB),
            gateway: GatewayLimits {
                bodies_in_flight_bytes: args
                    .max_bodies_in_flight_mib
                    .saturating_mul(MIB)
                    .max(args.max_body_mib.saturating_mul(MIB)),
                body_timeout: Duration::from_secs(args.body_timeout_secs),
                max_upstream_body_bytes: args.max_upstream_body_mib.saturating_mul(MIB),
                max_stream_event_bytes: args.max_stream_event_mib.saturating_mul(MIB),
            },
            kdf: crate::vault::KdfParams::DEFAULT,
        })
    }
}

/// `--data-dir`, or the platform data dir's `workshop-hub`.
pub fn data_dir_or_default(given: Option<&std::path::Path>) -> Result<PathBuf, ConfigError> {
    match given {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(dirs::data_dir()
            .ok_or(ConfigError::NoDataDir)?
            .join("workshop-hub")),
    }
}

impl Config {
    /// True when the Hub listens beyond loopback: network clients may reach it.
    pub fn network_facing(&self) -> bool {
        !self.listen.ip().is_loopback()
    }
}

/// Beyond loopback only when asked for, with TLS or an explicit acknowledgement, and with a
/// name network clients can use.
fn check_reach(args: &ServeArgs) -> Result<(), ConfigError> {
    let ip = args.listen.ip();
    if ip.is_loopback() {
        return Ok(());
    }
    if !args.allow_non_loopback {
        return Err(ConfigError::NonLoopback(args.listen));
    }
    if args.tls_cert.is_none() && !args.insecure_http {
        return Err(ConfigError::NeedsTls(args.listen));
    }
    if ip.is_unspecified() && args.public_host.is_none() {
        return Err(ConfigError::NeedsPublicHost(args.listen));
    }
    Ok(())
}

/// A host name or `host:port`, lowercased; nothing else (no scheme, path or credentials).
fn public_host(name: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::BadPublicHost(name.to_string());
    let name = name.trim().to_ascii_lowercase();
    let url = Url::parse(&format!("http://{name}/")).map_err(|_| bad())?;
    let round_trip = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    if name.is_empty() || round_trip != name || url.path() != "/" {
        return Err(bad());
    }
    Ok(name)
}

/// Reads the passphrase file, refusing one that other users can read or change.
fn read_passphrase_file(path: &PathBuf) -> Result<SecretString, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| ConfigError::PassphraseFile {
        path: path.clone(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(ConfigError::PassphraseFileOpen {
            path: path.clone(),
            mode: mode & 0o777,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    // A trailing newline from `echo … > file` is not part of the passphrase.
    let trimmed = text.trim_end_matches(['\n', '\r']);
    Ok(SecretString::from(trimmed.to_string()))
}

/// Parses an API root: http or https, with no path beyond `/`, no query, no credentials.
fn base_url(flag: &'static str, value: &str) -> Result<Url, ConfigError> {
    let bad = |why: &str| ConfigError::BadBaseUrl {
        flag,
        value: value.to_string(),
        why: why.to_string(),
    };
    let url = Url::parse(value.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(bad("there is no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials do not belong in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    let path = url.path().trim_end_matches('/');
    if !path.is_empty() {
        return Err(bad("give the host root without /v1 or any other path"));
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = crate::cli::Cli::try_parse_from(
            std::iter::once("workshop-hub").chain(args.iter().copied()),
        )
        .unwrap();
        Config::from_args(&cli.serve)
    }

    #[test]
    fn defaults_listen_on_loopback_8420() {
        let c = parse(&["--data-dir", "/tmp/x"]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8420");
        assert_eq!(c.upstreams.openai.as_str(), "https://api.openai.com/");
    }

    #[test]
    fn non_loopback_needs_the_flag_tls_or_insecure_http_and_a_name() {
        let err = parse(&["--listen", "0.0.0.0:8420", "--data-dir", "/tmp/x"]).unwrap_err();
        assert!(err.to_string().contains("--allow-non-loopback"));
        let wide = ["--listen", "0.0.0.0:8420", "--allow-non-loopback"];
        let with = |extra: &[&str]| {
            let mut all = wide.to_vec();
            all.extend_from_slice(extra);
            all.extend_from_slice(&["--data-dir", "/tmp/x"]);
            parse(&all)
        };
        let err = with(&[]).unwrap_err().to_string();
        assert!(
            err.contains("--tls-cert") && err.contains("--insecure-http"),
            "{err}"
        );
        let err = with(&["--insecure-http"]).unwrap_err().to_string();
        assert!(err.contains("--public-host"), "{err}");
        let c = with(&["--insecure-http", "--public-host", "Hub.Example.lan"]).unwrap();
        assert_eq!(c.public_host.as_deref(), Some("hub.example.lan"));
        assert!(c.network_facing() && c.tls.is_none());
        let c = with(&[
            "--tls-cert",
            "/tmp/c.pem",
            "--tls-key",
            "/tmp/k.pem",
            "--public-host",
            "hub.lan:8443",
        ])
        .unwrap();
        assert!(c.tls.is_some());
        assert!(with(&["--insecure-http", "--public-host", "http://x/"]).is_err());
        assert!(with(&["--insecure-http", "--public-host", "a b"]).is_err());
        let specific = parse(&[
            "--listen",
            "192.0.2.7:8420",
            "--allow-non-loopback",
            "--insecure-http",
            "--data-dir",
            "/tmp/x",
        ]);
        assert!(specific.is_ok(), "an explicit address is a name of its own");
    }

    #[test]
    fn base_urls_must_be_roots() {
        let err = parse(&[
            "--openai-base-url",
            "https://api.openai.com/v1",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--openai-base-url"));
        assert!(parse(&["--gemini-base-url", "ftp://x", "--data-dir", "/tmp/x"]).is_err());
        assert!(
            parse(&[
                "--anthropic-base-url",
                "http://127.0.0.1:9/",
                "--data-dir",
                "/tmp/x"
            ])
            .is_ok()
        );
    }

    #[test]
    fn passphrase_file_drops_the_trailing_newline() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pass");
        std::fs::write(&f, "correct horse battery\n").unwrap();
        set_mode(&f, 0o600);
        let c = parse(&[
            "--passphrase-file",
            f.to_str().unwrap(),
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(
            c.passphrase.unwrap().expose_secret(),
            "correct horse battery"
        );
    }

    fn set_mode(path: &std::path::Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_passphrase_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pass");
        std::fs::write(&f, "correct horse battery\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            set_mode(&f, mode);
            let err = parse(&[
                "--passphrase-file",
                f.to_str().unwrap(),
                "--data-dir",
                "/tmp/x",
            ])
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(&format!("chmod 600 {}", f.display())),
                "mode {mode:o}: {err}"
            );
        }
        set_mode(&f, 0o400);
        assert!(
            parse(&[
                "--passphrase-file",
                f.to_str().unwrap(),
                "--data-dir",
                "/tmp/x"
            ])
            .is_ok()
        );
    }
}
