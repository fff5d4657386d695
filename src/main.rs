//! The `portcullis` binary: parse the subcommand, load the configuration
//! (exit code 2 on a bad value), and call into the library.

use std::process::ExitCode;
use std::sync::Arc;

use portcullis::config::{Config, ConfigError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: portcullis <api|worker|migrate|openapi|keys|admin-keys>
  api      serve the HTTP API on API_ADDR, and the admin API on ADMIN_ADDR
  worker   consume jobs from RabbitMQ; /metrics and /healthz on WORKER_METRICS_ADDR
  migrate  apply the SQL migrations and exit
  openapi [--admin]
           print the OpenAPI document (of the admin API with --admin)
  keys generate [--algorithm EdDSA|ES256] --out FILE
           write a new private signing key (PKCS#8 PEM, mode 0600) and print its kid
  admin-keys create --name NAME [--read-only]
           make an admin key and print it (once: only its hash is kept)
  admin-keys list
           list the admin keys: name, scope, created, last used, revoked
  admin-keys revoke NAME
           revoke an admin key at once, on every api process";

/// Exit code for a bad command line or configuration.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("keys") => return keys(&args[1..]),
        Some("admin-keys") => return admin_keys(&args[1..]),
        Some("openapi") if args.len() == 2 && args[1] == "--admin" => {
            print!("{}", portcullis::http::openapi::admin_document());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let command = match args.as_slice() {
        [command] => command.as_str(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match command {
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        "openapi" => {
            print!("{}", portcullis::http::openapi::document());
            ExitCode::SUCCESS
        }
        "api" | "worker" | "migrate" => run(command),
        other => {
            eprintln!("unknown command `{other}`\n{USAGE}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `portcullis keys generate [--algorithm EdDSA|ES256] --out FILE`.
fn keys(args: &[String]) -> ExitCode {
    use portcullis::security::keys::{SigningAlgorithm, generate, write_private_key};
    let mut algorithm = SigningAlgorithm::EdDsa;
    let mut out = None;
    let mut rest = args.iter().map(String::as_str);
    if rest.next() != Some("generate") {
        eprintln!("{USAGE}");
        return ExitCode::from(EXIT_CONFIG);
    }
    while let Some(flag) = rest.next() {
        match (flag, rest.next()) {
            ("--algorithm", Some(name)) => match SigningAlgorithm::parse(name) {
                Some(SigningAlgorithm::Hs256) | None => {
                    eprintln!("--algorithm must be EdDSA or ES256");
                    return ExitCode::from(EXIT_CONFIG);
                }
                Some(chosen) => algorithm = chosen,
            },
            ("--out", Some(path)) => out = Some(std::path::PathBuf::from(path)),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    let Some(out) = out else {
        eprintln!("keys generate needs --out FILE\n{USAGE}");
        return ExitCode::from(EXIT_CONFIG);
    };
    let written = generate(algorithm).and_then(|(pem, kid)| {
        write_private_key(&out, &pem)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        Ok(kid)
    });
    match written {
        Ok(kid) => {
            println!("{kid}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `admin-keys` was asked to do.
enum KeyCommand {
    Create { name: String, read_only: bool },
    List,
    Revoke { name: String },
}

/// `portcullis admin-keys create --name NAME [--read-only] | list | revoke NAME`,
/// against `DATABASE_URL` (migrated first, unless `MIGRATE_ON_START=false`).
fn admin_keys(args: &[String]) -> ExitCode {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let command = match args.as_slice() {
        ["create", "--name", name] => KeyCommand::Create {
            name: (*name).to_owned(),
            read_only: false,
        },
        ["create", "--name", name, "--read-only"] | ["create", "--read-only", "--name", name] => {
            KeyCommand::Create {
                name: (*name).to_owned(),
                read_only: true,
            }
        }
        ["list"] => KeyCommand::List,
        ["revoke", name] => KeyCommand::Revoke {
            name: (*name).to_owned(),
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        use portcullis::services::admin_keys;
        let pool = portcullis::db::create_pool(&config)?;
        if config.migrate_on_start {
            portcullis::db::migrate(&pool).await?;
        }
        let client = pool.get().await?;
        match command {
            KeyCommand::Create { name, read_only } => {
                let key = admin_keys::create(&client, &name, read_only).await?;
                eprintln!(
                    "admin key `{name}` ({}) created; it is shown once, here:",
                    if read_only { "read-only" } else { "read-write" }
                );
                println!("{key}");
            }
            KeyCommand::List => {
                println!("name\tscope\tcreated_at\tlast_used_at\trevoked_at");
                for key in admin_keys::list(&client).await? {
                    let when = |at: Option<time::OffsetDateTime>| {
                        at.and_then(|at| {
                            at.format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .unwrap_or_else(|| "-".to_owned())
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        key.name,
                        if key.read_only {
                            "read-only"
                        } else {
                            "read-write"
                        },
                        when(Some(key.created_at)),
                        when(key.last_used_at),
                        when(key.revoked_at),
                    );
                }
            }
            KeyCommand::Revoke { name } => {
                admin_keys::revoke(&client, &name).await?;
                eprintln!("admin key `{name}` revoked");
            }
        }
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("admin-keys: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: &str) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => Arc::new(config),
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    portcullis::telemetry::init_logging(config.log_format, &config.log_filter);
    log_panics();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "cannot start the async runtime");
            portcullis::telemetry::flush_logs();
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(portcullis::cancel_on_signal(shutdown.clone()));
        match command {
            "api" => {
                let listener = bind(config.api_addr, "API_ADDR").await?;
                let admin_listener = match config.admin_addr {
                    Some(addr) => Some(bind(addr, "ADMIN_ADDR").await?),
                    None => None,
                };
                portcullis::run_api(config, listener, admin_listener, shutdown).await
            }
            "worker" => {
                let listener = bind(config.worker_metrics_addr, "WORKER_METRICS_ADDR").await?;
                portcullis::run_worker(config, listener, shutdown).await
            }
            _ => {
                let pool = portcullis::db::create_pool(&config)?;
                portcullis::db::migrate(&pool).await?;
                tracing::info!("migrations are up to date");
                Ok(())
            }
        }
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        // A setting only the stored data can show to be wrong (the key of
        // the sealed second factors): as bad as any other, exit code 2.
        Err(error) if error.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("configuration error: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{command} failed");
            ExitCode::FAILURE
        }
    };
    portcullis::telemetry::flush_logs();
    code
}

async fn bind(addr: std::net::SocketAddr, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {variable}={addr}: {e}"))
}

/// Panics become one JSON log line instead of free text on stderr.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = message, location, "panic");
        portcullis::telemetry::flush_logs();
    }));
}
