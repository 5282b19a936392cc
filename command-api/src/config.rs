//! Configuration from environment variables, with defaults that work on a developer's
//! machine (the loopback services that `scripts/services.sh` starts).

use std::fmt;
use std::net::SocketAddr;

use crate::auth::{ApiClient, Brands, Scope};
use crate::providers::Provider;
use domain::BrandId;

/// Default listen address of the API.
pub const LISTEN_ADDR_DEFAULT: &str = "127.0.0.1:8080";
/// Default event store: the project-local PostgreSQL.
pub const DATABASE_URL_DEFAULT: &str = "postgres://betledger@127.0.0.1:55432/betledger";
/// Default pool size: enough for a 2-core machine; one command holds one connection at once.
pub const DB_CONNECTIONS_MAX_DEFAULT: u32 = 16;
/// Default read-model store: the project-local Redis.
pub const REDIS_URL_DEFAULT: &str = "redis://127.0.0.1:56379";
/// Default prefix of the read-model keys (the projection workers must use the same).
pub const REDIS_PREFIX_DEFAULT: &str = "betledger";
/// Default provider: one development provider. Never in production.
pub const PROVIDERS_DEFAULT: &str = "devgames:dev-provider-secret-0001";
/// Default session lifetime (extended on use), as the contract says: 30 minutes.
pub const SESSION_TTL_S_DEFAULT: u64 = 1_800;
/// Default rate per client (bearer token or provider), requests per second, and burst.
pub const RATE_LIMIT_PER_S_DEFAULT: u32 = 2_000;
pub const RATE_LIMIT_BURST_DEFAULT: u32 = 4_000;
/// Default requests served at once; the rest wait briefly, then get 503.
pub const CONCURRENCY_MAX_DEFAULT: usize = 256;
/// Default period of the reservation-expiry sweep.
pub const EXPIRY_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default clients: one development client allowed to read and write. Never in production.
pub const API_TOKENS_DEFAULT: &str = "dev:dev-token:read+write+operator";

/// Which write path executes commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// cqrs-es + postgres-es, one transaction per command (`eventstore::CqrsWalletStore`).
    Cqrs,
    /// In-memory owners and group commit (`eventstore::BatchedWalletStore`).
    Batched,
}

impl std::str::FromStr for WritePath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cqrs" => Ok(WritePath::Cqrs),
            "batched" => Ok(WritePath::Batched),
            other => Err(format!("{other:?}; expected cqrs or batched")),
        }
    }
}

/// Everything `betledger-api` needs to start.
#[derive(Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub database_url: String,
    pub db_connections_max: u32,
    pub clients: Vec<ApiClient>,
    pub log_json: bool,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Game providers and their shared secrets.
    pub providers: Vec<Provider>,
    pub session_ttl_s: u64,
    pub rate_limit_per_s: u32,
    pub rate_limit_burst: u32,
    pub concurrency_max: usize,
    /// 0 turns the expiry sweep off (another instance runs it).
    pub expiry_interval_ms: u64,
    pub write_path: WritePath,
    /// Owner tasks of the batched write path (`BETLEDGER_WRITE_SHARDS`): each commits its
    /// own batches, so this many transactions run at once (`eventstore::BatchConfig`).
    /// [`WRITE_SHARDS_DEFAULT`] unless set.
    pub write_shards: usize,
    /// Several instances on one database, each wallet decided by one of them
    /// (`crate::cluster`); `None`: this instance decides every wallet itself.
    pub cluster: Option<ClusterConfig>,
    pub protection: ProtectionConfig,
    /// Operators of the Hub88-style face and their public keys.
    pub hub88: Vec<crate::hub88::Hub88Operator>,
    /// The brands each provider (by id, or `hub88.{operator}`) is enabled in; one not
    /// listed is enabled in the default brand alone.
    pub provider_brands: std::collections::HashMap<String, Brands>,
    /// How long a client may take to send a request's head
    /// (`BETLEDGER_HEADER_READ_TIMEOUT_MS`); then its connection is closed.
    pub header_read_timeout_ms: u64,
    /// What a provider may credit without a stake in one call (`BETLEDGER_CREDIT_CAPS`).
    pub credit_caps: crate::caps::CreditCaps,
}

/// A request head's time, unless configured: ample for any client, short enough that
/// half-sent heads cannot pile up (each holds a connection and its buffers). hyper starts
/// it again after each answer, so it is also how long a kept-alive connection may idle:
/// hyper's own default, and about what clients keep an idle connection for (a client
/// that keeps one longer must retry a request the close meets, as with any server).
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// The deployment's player-protection settings (`BETLEDGER_LIMITS_TZ`,
/// `BETLEDGER_LIMIT_COOLING_S`, `BETLEDGER_BONUS_WAGERING_MAX`), placed in each limit
/// change and bonus grant.
#[derive(Debug, Clone, Copy)]
pub struct ProtectionConfig {
    /// The zone of new limits' calendar periods (an IANA name; default `UTC`).
    pub zone: chrono_tz::Tz,
    /// How long a looser limit or a removal waits before it applies (default 24 h).
    pub cooling_s: u32,
    /// The highest wagering multiplier a bonus may carry (default 10, UK SR 5.1.1).
    pub wagering_max: u32,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            zone: chrono_tz::Tz::UTC,
            cooling_s: LIMIT_COOLING_S_DEFAULT,
            wagering_max: domain::wallet::bonus::WAGERING_MULTIPLIER_MAX_DEFAULT,
        }
    }
}

/// A looser limit's or a removal's cooling-off period when none is configured: a day.
pub const LIMIT_COOLING_S_DEFAULT: u32 = 24 * 3_600;

fn protection_from_env() -> Result<ProtectionConfig, ConfigError> {
    let zone_name = var("BETLEDGER_LIMITS_TZ", "UTC");
    let zone = zone_name.trim().parse().map_err(|_| ConfigError {
        variable: "BETLEDGER_LIMITS_TZ",
        problem: format!(
            "{zone_name:?} is not an IANA time zone; use a name such as UTC or Europe/Malta"
        ),
    })?;
    let cooling_s = number(
        "BETLEDGER_LIMIT_COOLING_S",
        LIMIT_COOLING_S_DEFAULT.into(),
        0,
        366 * 24 * 3_600,
    )? as u32;
    let wagering_max = number(
        "BETLEDGER_BONUS_WAGERING_MAX",
        domain::wallet::bonus::WAGERING_MULTIPLIER_MAX_DEFAULT.into(),
        1,
        1_000,
    )? as u32;
    Ok(ProtectionConfig {
        zone,
        cooling_s,
        wagering_max,
    })
}

/// How this instance joins the others on its database (`BETLEDGER_CLUSTER_ADDR`,
/// `BETLEDGER_CLUSTER_SECRET`).
#[derive(Clone)]
pub struct ClusterConfig {
    /// `HOST:PORT` at which the other instances reach this one; `None` (`auto`): the
    /// address it listens on.
    pub advertise: Option<String>,
    /// Shared by the instances; authenticates their calls to each other.
    pub secret: String,
}

/// Shortest cluster secret accepted.
pub const CLUSTER_SECRET_LEN_MIN: usize = 16;

/// A configuration variable had a value we cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn var(name: &'static str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Owner tasks of an instance's batched path, unless configured, alone or in a cluster.
/// One task's batches hold all the instance's commands, so they stay large: fewer
/// transactions, less PostgreSQL work per event. With the read side on, one task was
/// faster than four on this 2-core machine alone as in a cluster, and used less of it
/// (docs/0011, "Shards per instance").
pub const WRITE_SHARDS_DEFAULT: usize = 1;

impl Config {
    /// Reads `BETLEDGER_API_ADDR`, `BETLEDGER_DATABASE_URL`, `BETLEDGER_DB_CONNECTIONS_MAX`,
    /// `BETLEDGER_API_TOKENS` (`name:token:scope+scope[:brand+brand],...`, scopes `read`,
    /// `write` and `operator`, brands all when absent or `*`), `BETLEDGER_LIMITS_TZ`, `BETLEDGER_LIMIT_COOLING_S`,
    /// `BETLEDGER_BONUS_WAGERING_MAX` and
    /// `BETLEDGER_LOG_FORMAT` (`text` or `json`), `BETLEDGER_REDIS_URL`,
    /// `BETLEDGER_REDIS_PREFIX`, `BETLEDGER_WRITE_PATH`, `BETLEDGER_WRITE_SHARDS`,
    /// `BETLEDGER_HEADER_READ_TIMEOUT_MS` and `BETLEDGER_CREDIT_CAPS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let listen_addr = var("BETLEDGER_API_ADDR", LISTEN_ADDR_DEFAULT)
            .parse()
            .map_err(|e| ConfigError {
                variable: "BETLEDGER_API_ADDR",
                problem: format!("{e}; expected HOST:PORT such as {LISTEN_ADDR_DEFAULT}"),
            })?;
        let db_connections_max = var(
            "BETLEDGER_DB_CONNECTIONS_MAX",
            &DB_CONNECTIONS_MAX_DEFAULT.to_string(),
        )
        .parse()
        .ok()
        .filter(|n| (1..=1_000).contains(n))
        .ok_or_else(|| ConfigError {
            variable: "BETLEDGER_DB_CONNECTIONS_MAX",
            problem: "expected a whole number from 1 to 1000".into(),
        })?;
        let clients = parse_clients(&var("BETLEDGER_API_TOKENS", API_TOKENS_DEFAULT))?;
        let log_json = match var("BETLEDGER_LOG_FORMAT", "text").as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError {
                    variable: "BETLEDGER_LOG_FORMAT",
                    problem: format!("{other:?}; expected text or json"),
                })
            }
        };
        let config = Self {
            listen_addr,
            database_url: var("BETLEDGER_DATABASE_URL", DATABASE_URL_DEFAULT),
            db_connections_max,
            clients,
            log_json,
            redis_url: var("BETLEDGER_REDIS_URL", REDIS_URL_DEFAULT),
            redis_prefix: var("BETLEDGER_REDIS_PREFIX", REDIS_PREFIX_DEFAULT),
            providers: parse_providers(&var("BETLEDGER_PROVIDERS", PROVIDERS_DEFAULT))?,
            session_ttl_s: number("BETLEDGER_SESSION_TTL_S", SESSION_TTL_S_DEFAULT, 10, 86_400)?,
            rate_limit_per_s: number(
                "BETLEDGER_RATE_LIMIT_PER_S",
                RATE_LIMIT_PER_S_DEFAULT.into(),
                1,
                1_000_000,
            )? as u32,
            rate_limit_burst: number(
                "BETLEDGER_RATE_LIMIT_BURST",
                RATE_LIMIT_BURST_DEFAULT.into(),
                1,
                1_000_000,
            )? as u32,
            concurrency_max: number(
                "BETLEDGER_CONCURRENCY_MAX",
                CONCURRENCY_MAX_DEFAULT as u64,
                1,
                100_000,
            )? as usize,
            expiry_interval_ms: number(
                "BETLEDGER_EXPIRY_INTERVAL_MS",
                EXPIRY_INTERVAL_MS_DEFAULT,
                0,
                3_600_000,
            )?,
            write_path: var("BETLEDGER_WRITE_PATH", "batched")
                .parse()
                .map_err(|problem| ConfigError {
                    variable: "BETLEDGER_WRITE_PATH",
                    problem,
                })?,
            write_shards: number("BETLEDGER_WRITE_SHARDS", WRITE_SHARDS_DEFAULT as u64, 1, 64)?
                as usize,
            cluster: cluster_from_env()?,
            protection: protection_from_env()?,
            hub88: parse_hub88(&var("BETLEDGER_HUB88_OPERATORS", ""))?,
            provider_brands: parse_provider_brands(&var("BETLEDGER_PROVIDER_BRANDS", ""))?,
            header_read_timeout_ms: number(
                "BETLEDGER_HEADER_READ_TIMEOUT_MS",
                HEADER_READ_TIMEOUT_MS_DEFAULT,
                100,
                600_000,
            )?,
            credit_caps: crate::caps::CreditCaps::parse(&var("BETLEDGER_CREDIT_CAPS", ""))
                .map_err(|problem| ConfigError {
                    variable: "BETLEDGER_CREDIT_CAPS",
                    problem: format!("{problem}; e.g. EUR=50000.00,alpha/EUR=2000000.00"),
                })?,
        };
        for id in config.provider_brands.keys() {
            let hub88 = id
                .strip_prefix("hub88.")
                .is_some_and(|op| config.hub88.iter().any(|o| o.id == op));
            if !hub88 && !config.providers.iter().any(|p| &p.id == id) {
                return Err(ConfigError {
                    variable: "BETLEDGER_PROVIDER_BRANDS",
                    problem: format!(
                        "{id:?} is neither a provider of BETLEDGER_PROVIDERS nor hub88.OPERATOR \
                         of BETLEDGER_HUB88_OPERATORS"
                    ),
                });
            }
        }
        Ok(config)
    }
}

/// `BETLEDGER_CLUSTER_ADDR` (`off`, the default; `auto`; or `HOST:PORT`) and
/// `BETLEDGER_CLUSTER_SECRET` (16+ characters, required unless off).
fn cluster_from_env() -> Result<Option<ClusterConfig>, ConfigError> {
    let addr = var("BETLEDGER_CLUSTER_ADDR", "off");
    let advertise = match addr.trim() {
        "off" | "" => return Ok(None),
        "auto" => None,
        other => match other.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Some(other.to_string())
            }
            _ => {
                return Err(ConfigError {
                    variable: "BETLEDGER_CLUSTER_ADDR",
                    problem: format!("{other:?}; expected off, auto or HOST:PORT"),
                })
            }
        },
    };
    let secret = var("BETLEDGER_CLUSTER_SECRET", "");
    if secret.chars().count() < CLUSTER_SECRET_LEN_MIN {
        return Err(ConfigError {
            variable: "BETLEDGER_CLUSTER_SECRET",
            problem: format!(
                "must be at least {CLUSTER_SECRET_LEN_MIN} characters when \
                 BETLEDGER_CLUSTER_ADDR is set (the same on every instance)"
            ),
        });
    }
    Ok(Some(ClusterConfig { advertise, secret }))
}

/// Parses `BETLEDGER_PROVIDER_BRANDS`: `id:brand+brand` entries separated by commas, `id`
/// a provider's id or `hub88.{operator}` (checked against the configured ones at start).
pub fn parse_provider_brands(
    text: &str,
) -> Result<std::collections::HashMap<String, Brands>, ConfigError> {
    let err = |problem: String| ConfigError {
        variable: "BETLEDGER_PROVIDER_BRANDS",
        problem,
    };
    let mut map = std::collections::HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, list)) = entry.split_once(':') else {
            return Err(err(format!(
                "entry {entry:?} is not provider:brand+brand (e.g. devgames:casino-a+casino-b)"
            )));
        };
        let brands = list
            .split('+')
            .map(|b| BrandId::new(b).map_err(|e| err(format!("brand {b:?} of {id:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if map.insert(id.to_string(), Brands::Only(brands)).is_some() {
            return Err(err(format!("provider {id:?} is listed twice")));
        }
    }
    Ok(map)
}

/// Parses `BETLEDGER_HUB88_OPERATORS`: `id:path` entries separated by commas, each the
/// operator's id and the PEM file of the public key its calls are signed with.
pub fn parse_hub88(text: &str) -> Result<Vec<crate::hub88::Hub88Operator>, ConfigError> {
    let err = |problem: String| ConfigError {
        variable: "BETLEDGER_HUB88_OPERATORS",
        problem,
    };
    let mut operators: Vec<crate::hub88::Hub88Operator> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, path)) = entry.split_once(':') else {
            return Err(err(format!(
                "{entry:?}: expected ID:PATH, the operator and its public key's PEM file"
            )));
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| err(format!("reading the key of {id:?} from {path:?}: {e}")))?;
        let operator =
            crate::hub88::Hub88Operator::new(id, &pem).map_err(|e| err(format!("{id:?}: {e}")))?;
        if operators.iter().any(|o| o.id == operator.id) {
            return Err(err(format!("operator {id:?} is listed twice")));
        }
        operators.push(operator);
    }
    Ok(operators)
}

/// A whole number from `min` to `max` in variable `name`, or `default` when unset.
fn number(name: &'static str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ConfigError {
                variable: name,
                problem: format!("{text:?}; expected a whole number from {min} to {max}"),
            }),
    }
}

/// Parses `BETLEDGER_PROVIDERS`: `id:secret` entries separated by commas. Ids are 1 to 32
/// of `A-Z a-z 0-9 _ -`; secrets at least 16 characters.
pub fn parse_providers(text: &str) -> Result<Vec<Provider>, ConfigError> {
    let err = |problem: String| ConfigError {
        variable: "BETLEDGER_PROVIDERS",
        problem,
    };
    let mut providers: Vec<Provider> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, secret)) = entry.split_once(':') else {
            return Err(err("an entry is not id:secret".into()));
        };
        let id_ok = (1..=32).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !id_ok {
            return Err(err(format!(
                "provider id {id:?}: 1 to 32 letters, digits, '_' or '-'"
            )));
        }
        if secret.len() < 16 {
            return Err(err(format!(
                "the secret of {id:?} is shorter than 16 characters"
            )));
        }
        if providers.iter().any(|p| p.id == id) {
            return Err(err(format!("provider {id:?} is configured twice")));
        }
        providers.push(Provider::new(id, secret));
    }
    Ok(providers)
}

/// Parses `name:token:scope+scope[:brand+brand]` entries separated by commas (no brands,
/// or `*`: every brand).
pub fn parse_clients(text: &str) -> Result<Vec<ApiClient>, ConfigError> {
    let err = |problem: String| ConfigError {
        variable: "BETLEDGER_API_TOKENS",
        problem,
    };
    let mut clients = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(4, ':');
        let (Some(name), Some(token), Some(scopes)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(err(format!(
                "entry {:?} is not name:token:scopes",
                entry.split(':').next().unwrap_or_default()
            )));
        };
        if token.len() < 8 {
            return Err(err(format!(
                "token of {name:?} is shorter than 8 characters"
            )));
        }
        let scopes = scopes
            .split('+')
            .map(|s| match s {
                "read" => Ok(Scope::Read),
                "write" => Ok(Scope::Write),
                "operator" => Ok(Scope::Operator),
                other => Err(err(format!(
                    "unknown scope {other:?} for {name:?}: use read, write, operator"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let brands = match parts.next().map(str::trim) {
            None | Some("*") => Brands::All,
            Some(list) => Brands::Only(
                list.split('+')
                    .map(|b| {
                        BrandId::new(b).map_err(|e| {
                            err(format!(
                                "brand {b:?} of {name:?}: {e}; list brands as a+b, or * for all"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        clients.push(ApiClient::new(name, token, scopes).with_brands(brands));
    }
    if clients.is_empty() {
        return Err(err("no client configured".into()));
    }
    Ok(clients)
}

impl fmt::Display for Config {
    /// One line, secrets masked: the database password and every token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clients: Vec<String> = self.clients.iter().map(|c| c.to_string()).collect();
        write!(
            f,
            "listen_addr={} database_url={} db_connections_max={} clients=[{}] log_json={} \
             redis_url={} redis_prefix={} providers=[{}] session_ttl_s={} \
             rate_limit_per_s={} rate_limit_burst={} concurrency_max={} expiry_interval_ms={} \
             write_path={:?} write_shards={} cluster={}",
            self.listen_addr,
            mask_password(&self.database_url),
            self.db_connections_max,
            clients.join(", "),
            self.log_json,
            mask_password(&self.redis_url),
            self.redis_prefix,
            self.providers
                .iter()
                .map(|p| format!("{}:****", p.id))
                .collect::<Vec<_>>()
                .join(", "),
            self.session_ttl_s,
            self.rate_limit_per_s,
            self.rate_limit_burst,
            self.concurrency_max,
            self.expiry_interval_ms,
            self.write_path,
            self.write_shards,
            match &self.cluster {
                None => "off".to_string(),
                Some(c) => format!("{} (secret ****)", c.advertise.as_deref().unwrap_or("auto")),
            }
        )
    }
}

fn mask_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:****{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Sets up `tracing` output: text for people, JSON for log collectors; `RUST_LOG` filters.
pub fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_parse_and_print_masked() {
        let clients =
            parse_clients("ops:s3cret-token:read, game:another-token:read+write").unwrap();
        assert!(!clients[1].has(Scope::Operator));
        let back_office = parse_clients("bo:back-office-token:read+operator").unwrap();
        assert!(back_office[0].has(Scope::Operator) && !back_office[0].has(Scope::Write));
        assert!(parse_clients("x:some-token:read+admin").is_err());
        assert_eq!(clients.len(), 2);
        assert!(clients[1].has(Scope::Write) && !clients[0].has(Scope::Write));
        let shown = clients[0].to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(parse_clients("ops:short:read").is_err());
        assert!(parse_clients("ops:long-enough:admin").is_err());
        assert!(parse_clients("").is_err());
    }

    #[test]
    fn a_token_lists_its_brands_or_is_of_every_brand() {
        let clients = parse_clients(
            "a:token-aaaa:read:casino-a+casino-b, all:token-bbbb:read:*, old:token-cccc:read",
        )
        .unwrap();
        let brand = |b: &str| BrandId::new(b).unwrap();
        assert!(clients[0].brands().admits(&brand("casino-b")));
        assert!(!clients[0].brands().admits(&brand("default")));
        assert_eq!(clients[1].brands(), &Brands::All);
        assert_eq!(clients[2].brands(), &Brands::All);
        assert_eq!(clients[0].to_string(), "a:****:read:casino-a+casino-b");
        for bad in [
            "a:token-aaaa:read:Casino",
            "a:token-aaaa:read:",
            "a:token-aaaa:read:a+",
        ] {
            let e = parse_clients(bad).err().expect("refused").to_string();
            assert!(e.contains("brand"), "{bad}: {e}");
        }
    }

    #[test]
    fn shards_default_to_one_alone_and_in_a_cluster_unless_set() {
        // One default, whatever the cluster: the field does not depend on it.
        let config = Config::from_env().expect("the defaults parse");
        assert!(
            std::env::var("BETLEDGER_WRITE_SHARDS").is_err(),
            "BETLEDGER_WRITE_SHARDS is set in the test's environment"
        );
        assert_eq!(config.write_shards, WRITE_SHARDS_DEFAULT);
        assert_eq!(WRITE_SHARDS_DEFAULT, 1);
    }

    #[test]
    fn database_password_is_masked() {
        assert_eq!(
            mask_password("postgres://u:pw@h:5432/db"),
            "postgres://u:****@h:5432/db"
        );
        assert_eq!(mask_password("postgres://u@h/db"), "postgres://u@h/db");
    }
}
