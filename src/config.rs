//! One validated configuration built from the command line and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

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
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

/// Everything the Hub needs to start. Built once; handed to the server through app data.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub allow_non_loopback: bool,
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

fn env_secret(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
}

impl Config {
    /// Validates the parsed arguments and reads secrets from the environment or files.
    pub fn from_args(args: &ServeArgs) -> Result<Config, ConfigError> {
        if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
            return Err(ConfigError::NonLoopback(args.listen));
        }
        let data_dir = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => dirs::data_dir()
                .ok_or(ConfigError::NoDataDir)?
                .join("workshop-hub"),
        };
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

fn read_passphrase_file(path: &PathBuf) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::PassphraseFile {
        path: path.clone(),
        source,
    })?;
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
    fn non_loopback_needs_the_flag() {
        let err = parse(&["--listen", "0.0.0.0:8420", "--data-dir", "/tmp/x"]).unwrap_err();
        assert!(err.to_string().contains("--allow-non-loopback"));
        assert!(
            parse(&[
                "--listen",
                "0.0.0.0:8420",
                "--allow-non-loopback",
                "--data-dir",
                "/tmp/x"
            ])
            .is_ok()
        );
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
}
