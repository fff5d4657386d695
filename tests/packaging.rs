//! Static checks of what ships with the code: the Compose file, the
//! Dockerfile, `.env.example` and the README agree with each other and with
//! the binary. No Docker engine runs on the build machines, so this is how
//! the stack is kept honest (parsed, not grepped).

use std::collections::BTreeSet;

use serde_norway::Value;

const COMPOSE: &str = include_str!("../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../Dockerfile");
const ENV_EXAMPLE: &str = include_str!("../.env.example");
const README: &str = include_str!("../README.md");
const CONFIG_SOURCE: &str = include_str!("../src/config.rs");
const SUBCOMMANDS: [&str; 4] = ["api", "worker", "migrate", "openapi"];

fn compose() -> Value {
    let mut value: Value = serde_norway::from_str(COMPOSE).expect("docker-compose.yml parses");
    value.apply_merge().expect("its merge keys resolve");
    value
}

fn services() -> Vec<(String, Value)> {
    compose()["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

fn env_example_names() -> BTreeSet<String> {
    ENV_EXAMPLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap().to_owned())
        .collect()
}

fn is_portcullis(service: &Value) -> bool {
    service.get("build").is_some()
        || service["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("portcullis"))
}

#[test]
fn every_portcullis_service_runs_a_real_subcommand() {
    let ours: Vec<(String, Value)> = services()
        .into_iter()
        .filter(|(_, s)| is_portcullis(s))
        .collect();
    let names: BTreeSet<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["api", "migrate", "worker"]));
    for (name, service) in &ours {
        let command = service["command"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has a command"));
        assert!(
            SUBCOMMANDS.contains(&command),
            "{name}: `{command}` is not a subcommand"
        );
    }
}

#[test]
fn every_variable_the_stack_uses_is_in_env_example() {
    let documented = env_example_names();
    // ${NAME} and ${NAME:-default} anywhere in the file.
    let mut used = BTreeSet::new();
    for part in COMPOSE.split("${").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        used.insert(name);
    }
    for (_, service) in services().into_iter().filter(|(_, s)| is_portcullis(s)) {
        if let Some(environment) = service["environment"].as_mapping() {
            used.extend(environment.keys().map(|k| k.as_str().unwrap().to_owned()));
        }
        assert_eq!(
            service["env_file"].as_str(),
            Some(".env"),
            "secrets come from .env"
        );
    }
    let missing: Vec<&String> = used.iter().filter(|n| !documented.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "used by docker-compose.yml but not in .env.example: {missing:?}"
    );
}

#[test]
fn every_configuration_variable_is_in_env_example() {
    // Every "NAME" the configuration reads is a quoted upper-case literal.
    let mut read = BTreeSet::new();
    for part in CONFIG_SOURCE.split('"').skip(1).step_by(2) {
        if part.len() > 3
            && part
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            && part.contains('_')
        {
            read.insert(part.to_owned());
        }
    }
    assert!(read.contains("JWT_SECRET") && read.contains("LOGIN_MAX_FAILURES_PER_ACCOUNT"));
    let documented = env_example_names();
    let missing: Vec<&String> = read.iter().filter(|n| !documented.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "read by the configuration but not in .env.example: {missing:?}"
    );
    assert!(README.contains("`JWT_SECRET`"));
}

#[test]
fn published_ports_match_the_readme_table() {
    let mut published = BTreeSet::new();
    for (name, service) in services() {
        for port in service["ports"].as_sequence().cloned().unwrap_or_default() {
            let port = port
                .as_str()
                .unwrap_or_else(|| panic!("{name}: ports are quoted strings"));
            // `HOST:CONTAINER`, or `IP:HOST:CONTAINER` for a port kept on
            // one interface (the admin API's, on loopback).
            let parts: Vec<&str> = port.split(':').collect();
            let host = parts[parts.len().saturating_sub(2)];
            published.insert(host.parse::<u16>().unwrap());
        }
    }
    let table = README
        .split("## Services of the Compose stack")
        .nth(1)
        .expect("the README has a services table")
        .split("\n## ")
        .next()
        .unwrap();
    let mut documented = BTreeSet::new();
    for piece in table.split("localhost:").skip(1) {
        let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
        documented.insert(digits.parse::<u16>().unwrap());
    }
    assert_eq!(
        published, documented,
        "docker-compose.yml publishes, the README lists"
    );
    for port in [8000, 3000, 9090, 8025, 15672] {
        assert!(published.contains(&port), "{port}");
    }
}

#[test]
fn the_services_start_in_order_and_are_health_checked() {
    let all = compose();
    let services = &all["services"];
    for name in ["postgres", "redis", "rabbitmq"] {
        assert!(
            services[name]["healthcheck"]["test"].is_sequence(),
            "{name} has a health check"
        );
    }
    assert_eq!(
        services["migrate"]["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    for name in ["api", "worker"] {
        assert_eq!(
            services[name]["depends_on"]["migrate"]["condition"].as_str(),
            Some("service_completed_successfully"),
            "{name} waits for the migrations"
        );
        assert_eq!(
            services[name]["depends_on"]["rabbitmq"]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    let volumes = all["volumes"].as_mapping().expect("named volumes");
    assert!(volumes.contains_key("postgres-data"));
    let grafana_mounts: Vec<&str> = services["grafana"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        grafana_mounts
            .iter()
            .any(|m| m.starts_with("./monitoring/grafana/provisioning:"))
    );
    assert!(
        grafana_mounts
            .iter()
            .any(|m| m.starts_with("./monitoring/grafana/dashboards:"))
    );
}

#[test]
fn the_dockerfile_copies_what_the_build_needs_and_runs_unprivileged() {
    let copies: Vec<&str> = DOCKERFILE
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "sql",
        "openapi",
        "src",
    ] {
        assert!(
            copies
                .iter()
                .any(|l| l.split_whitespace().any(|w| w == needed)),
            "the Dockerfile copies {needed}"
        );
    }
    let user = DOCKERFILE
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "runs as {user}"
    );
    assert!(DOCKERFILE.contains("HEALTHCHECK"));
    assert!(DOCKERFILE.contains(r#"ENTRYPOINT ["portcullis"]"#));
    let dockerignore = include_str!("../.dockerignore");
    assert!(dockerignore.lines().any(|l| l.trim() == "target"));
    assert!(
        dockerignore.lines().any(|l| l.trim() == ".env"),
        "no secrets in the build context"
    );
}
