//! The `portcullis` binary: parse the subcommand, load the configuration
//! (exit code 2 on a bad value), and call into the library.

use std::process::ExitCode;
use std::sync::Arc;

use portcullis::config::{Config, ConfigError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: portcullis <api|worker|migrate|openapi|keys generate>
  api      serve the HTTP API on API_ADDR
  worker   consume jobs from RabbitMQ; /metrics and /healthz on WORKER_METRICS_ADDR
  migrate  apply the SQL migrations and exit
  openapi  print the OpenAPI document
  keys generate [--algorithm EdDSA|ES256] --out FILE
           write a new private signing key (PKCS#8 PEM, mode 0600) and print its kid";

/// Exit code for a bad command line or configuration.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("keys") {
        return keys(&args[1..]);
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
                portcullis::run_api(config, listener, shutdown).await
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
