//! `mdhub keygen` and `mdhub token`: credentials for `[gateway.auth]`.
//!
//! `keygen` makes a random API key and prints it once, with the TOML that
//! configures its hash (the gateway never stores the key). `token` mints an
//! HS256 JWT with the configured `gateway.auth.jwt_secret` (or `--secret`),
//! for a user, a lifetime and entitlements.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

/// Flags of `mdhub keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Who the key is for (shown in logs, counted for connection limits).
    #[arg(long)]
    pub name: String,
    /// Symbol patterns it is entitled to (comma-separated; `*` matches any run of characters). Default: all.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub symbols: Vec<String>,
    /// Channels it may use: quotes, trades, status (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    /// Connections it may hold at once.
    #[arg(long)]
    pub max_connections: Option<usize>,
}

/// Flags of `mdhub token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The JWT's subject: the user.
    #[arg(long)]
    pub sub: String,
    /// Lifetime: 90s, 15m, 12h, 30d (negative: already expired, for tests).
    #[arg(long, default_value = "1h", allow_hyphen_values = true)]
    pub ttl: String,
    /// Symbol patterns (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub symbols: Vec<String>,
    /// Channels (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    /// HS256 secret. Default: gateway.auth.jwt_secret.
    #[arg(long, env = "MDHUB_JWT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

/// `mdhub keygen`.
pub fn keygen(args: KeygenArgs) -> ExitCode {
    let (key, sha256) = mdhub_gateway::new_key();
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    println!(
        "# API key for {:?}: hand it to the client; it is shown only now.",
        args.name
    );
    println!("# {key}");
    println!("[[gateway.auth.keys]]");
    println!("name = {:?}", args.name);
    println!("sha256 = {sha256:?}");
    println!("symbols = {}", list(&args.symbols));
    if !args.channels.is_empty() {
        println!("channels = {}", list(&args.channels));
    }
    if let Some(n) = args.max_connections {
        println!("max_connections = {n}");
    }
    eprintln!("key: {key}");
    ExitCode::SUCCESS
}

/// `mdhub token`.
pub fn token(cfg: Config, args: TokenArgs) -> ExitCode {
    let Some(secret) = args.secret.or(cfg.gateway.auth.jwt_secret) else {
        eprintln!(
            "error: no secret: set gateway.auth.jwt_secret (MDHUB_GATEWAY__AUTH__JWT_SECRET) or pass --secret"
        );
        return ExitCode::from(2);
    };
    let ttl = match parse_ttl(&args.ttl) {
        Some(t) => t,
        None => {
            eprintln!("error: --ttl {:?}: use e.g. 90s, 15m, 12h, 30d", args.ttl);
            return ExitCode::from(2);
        }
    };
    match mdhub_gateway::mint_hs256(&secret, &args.sub, ttl, &args.symbols, &args.channels) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `90s`, `15m`, `12h`, `30d`, optionally negative, in seconds.
fn parse_ttl(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90s"), Some(90));
        assert_eq!(parse_ttl("15m"), Some(900));
        assert_eq!(parse_ttl("-10s"), Some(-10));
        assert_eq!(parse_ttl("2d"), Some(172_800));
        assert_eq!(parse_ttl("1w"), None);
        assert_eq!(parse_ttl(""), None);
    }
}
