//! docker-compose.yml: the Compose schema, the commands, scaling and start order.

use serde_json::Value as Json;

use super::support::*;
use super::*;

/// The Compose Specification's JSON schema (compose-spec/compose-spec,
/// `schema/compose-spec.json`, Apache-2.0): `../shared/compose-spec.json` where the
/// project's shared folder is beside the repository, else the copy vendored in
/// `tests/fixtures/` so a clean clone is self-contained.
fn compose_schema() -> (String, Json) {
    let shared = root().join("../shared/compose-spec.json");
    let vendored = root().join("tests/fixtures/compose-spec.json");
    let path = if shared.is_file() { shared } else { vendored };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the Compose schema {}: {e}", path.display()));
    let schema =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    (path.display().to_string(), schema)
}

#[test]
fn the_compose_file_is_valid_under_the_compose_specification() {
    let (schema_path, schema) = compose_schema();
    let validator = jsonschema::draft7::new(&schema)
        .unwrap_or_else(|e| panic!("{schema_path}: not a usable draft-07 schema: {e}"));
    let compose = compose();
    let failures: Vec<String> = validator
        .iter_errors(&compose)
        .map(|error| format!("{COMPOSE}: at `{}`: {error}", error.instance_path()))
        .collect();
    assert_none(failures);
}

#[test]
fn every_jirasync_compose_service_runs_a_real_subcommand_with_valid_flags() {
    let compose = compose();
    let mut failures = Vec::new();
    for (name, service) in jirasync_services(&compose) {
        let place = format!("{COMPOSE}: services.{name}.command");
        check_command(&place, &words(&service["command"]), &mut failures);
        // Every service builds the same image, from the repository root.
        if service["build"]["dockerfile"].as_str() != Some(DOCKERFILE) {
            failures.push(format!(
                "{COMPOSE}: services.{name}.build.dockerfile is not {DOCKERFILE}"
            ));
        }
        if service["build"]["context"].as_str() != Some(".") {
            failures.push(format!(
                "{COMPOSE}: services.{name}.build.context is not `.`"
            ));
        }
    }
    assert_none(failures);
}

#[test]
fn the_worker_service_can_be_scaled_without_container_name_or_host_ports() {
    let compose = compose();
    let worker = service(&compose, "worker");
    let mut failures = Vec::new();
    if !worker["container_name"].is_null() {
        failures.push(format!(
            "{COMPOSE}: services.worker.container_name is set: `--scale worker=N` needs unique names"
        ));
    }
    if !worker["ports"].is_null() {
        failures.push(format!(
            "{COMPOSE}: services.worker.ports is set: N workers cannot bind one host port"
        ));
    }
    let replicas = &worker["deploy"]["replicas"];
    let replicas_ok = replicas.as_u64().is_some_and(|n| n >= 1)
        || replicas
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1) || s.starts_with("${"));
    if !replicas_ok {
        failures.push(format!(
            "{COMPOSE}: services.worker.deploy.replicas is missing or not a count: {replicas}"
        ));
    }
    assert_none(failures);
}

#[test]
fn the_compose_stack_migrates_before_the_ingress_and_workers_start() {
    let compose = compose();
    let mut failures = Vec::new();
    let mut expect = |service_name: &str, dependency: &str, condition: &str| {
        let actual = &service(&compose, service_name)["depends_on"][dependency]["condition"];
        if actual != condition {
            failures.push(format!(
                "{COMPOSE}: services.{service_name}.depends_on.{dependency}.condition is {actual}, expected {condition}"
            ));
        }
    };
    expect("migrate", "rabbitmq", "service_healthy");
    expect("migrate", "postgres", "service_healthy");
    expect("ingress", "migrate", "service_completed_successfully");
    expect("worker", "migrate", "service_completed_successfully");
    for dependency in ["rabbitmq", "postgres"] {
        if service(&compose, dependency)["healthcheck"]["test"].is_null() {
            failures.push(format!(
                "{COMPOSE}: services.{dependency}.healthcheck.test is missing (service_healthy needs it)"
            ));
        }
    }
    let restart = &service(&compose, "migrate")["restart"];
    if restart != "no" {
        failures.push(format!(
            "{COMPOSE}: services.migrate.restart is {restart}, expected \"no\" (one-shot)"
        ));
    }
    let listen = &service(&compose, "ingress")["environment"]["JIRASYNC_LISTEN"];
    if listen != "0.0.0.0:8080" {
        failures.push(format!(
            "{COMPOSE}: services.ingress.environment.JIRASYNC_LISTEN is {listen}, expected 0.0.0.0:8080"
        ));
    }
    // The healthcheck asks the metrics listener, which a flood of the port Jira
    // posts to cannot fail (docs/reference.md §3).
    let metrics = service(&compose, "ingress")["environment"]["JIRASYNC_METRICS_LISTEN"]
        .as_str()
        .and_then(|listen| listen.rsplit(':').next())
        .unwrap_or_default()
        .to_owned();
    let check = service(&compose, "ingress")["healthcheck"]["test"].to_string();
    if metrics.is_empty() || !check.contains(&format!("/dev/tcp/127.0.0.1/{metrics} ")) {
        failures.push(format!(
            "{COMPOSE}: services.ingress.healthcheck.test {check} does not ask the metrics port {metrics:?} (JIRASYNC_METRICS_LISTEN)"
        ));
    }
    assert_none(failures);
}

#[test]
fn the_cluster_profile_runs_three_nodes_that_find_each_other_with_one_cookie() {
    let compose = compose();
    let conf = read("deploy/rabbitmq/cluster.conf");
    let mut failures = Vec::new();
    let mut cookies = std::collections::BTreeSet::new();
    for n in 0..3 {
        let name = format!("rabbitmq-{n}");
        let node = service(&compose, &name);
        if node["profiles"] != serde_json::json!(["cluster"]) {
            failures.push(format!(
                "{COMPOSE}: {name} is not in the `cluster` profile only"
            ));
        }
        if node["hostname"] != name.as_str() {
            failures.push(format!(
                "{COMPOSE}: {name}'s hostname is {}",
                node["hostname"]
            ));
        }
        if !conf.contains(&format!("= rabbit@{name}\n")) {
            failures.push(format!(
                "deploy/rabbitmq/cluster.conf does not list rabbit@{name}"
            ));
        }
        let volumes: Vec<&str> = node["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if !volumes
            .contains(&"./deploy/rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro")
        {
            failures.push(format!(
                "{COMPOSE}: {name} does not mount the cluster config"
            ));
        }
        if !volumes
            .iter()
            .any(|v| v.starts_with(&format!("{name}-data:")))
        {
            failures.push(format!("{COMPOSE}: {name} has no data volume of its own"));
        }
        let environment = &node["environment"];
        for key in [
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "RABBITMQ_CTL_ERL_ARGS",
        ] {
            cookies.insert(environment[key].as_str().unwrap_or_default().to_owned());
        }
    }
    if cookies.len() != 1 || !cookies.iter().all(|c| c.starts_with("-setcookie ")) {
        failures.push(format!(
            "{COMPOSE}: the three nodes and their CLI need one -setcookie, found {cookies:?}"
        ));
    }
    assert_none(failures);
}
