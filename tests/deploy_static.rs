//! Static checks of the deployment files: `docker-compose.yml`, `.env.example`,
//! `deploy/Dockerfile`, `deploy/k8s/*.yaml`, Prometheus and Grafana. They check the
//! files against the Compose Specification, the binary's own command line and
//! CONTRACT §2, and against each other. No network, no Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value as Json;

/// CONTRACT §2: the only environment variables jirasync reads. Keep in step with it.
const CONTRACT_VARS: &[&str] = &[
    "DATABASE_URL",
    "AMQP_URL",
    "JIRASYNC_QUEUE_PREFIX",
    "JIRASYNC_LISTEN",
    "JIRASYNC_PUBLIC_URL",
    "JIRASYNC_WORKER_CONCURRENCY",
    "JIRASYNC_MAX_BODY_BYTES",
    "JIRASYNC_RETRY_DELAYS",
    "JIRASYNC_RECONCILE_INTERVAL",
    "JIRASYNC_LOG_FORMAT",
    "RUST_LOG",
];

/// CONTRACT §1: the subcommands of `jirasync`.
const SUBCOMMANDS: &[&str] = &[
    "migrate",
    "ingress",
    "worker",
    "run",
    "integration",
    "oauth",
    "dlq",
    "demo",
    "reconcile",
];

/// The build command CI uses for release builds; the image must be built the same way.
const RELEASE_BUILD: &str = "cargo build --release --locked";

const COMPOSE: &str = "docker-compose.yml";
const ENV_EXAMPLE: &str = ".env.example";
const DOCKERFILE: &str = "deploy/Dockerfile";
const K8S_DIR: &str = "deploy/k8s";

// ---- loading ---------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{relative}: cannot read {}: {e}", path.display()))
}

/// Every YAML document of `text` as JSON, with `<<` merge keys applied (as Compose does).
fn yaml_documents(file: &str, text: &str) -> Vec<Json> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| {
            let mut value = serde_yaml_ng::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{file}: not valid YAML: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{file}: bad merge key: {e}"));
            serde_json::to_value(value)
                .unwrap_or_else(|e| panic!("{file}: not representable as JSON: {e}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn yaml_file(relative: &str) -> Json {
    let mut documents = yaml_documents(relative, &read(relative));
    assert_eq!(documents.len(), 1, "{relative}: expected one YAML document");
    documents.remove(0)
}

fn compose() -> Json {
    yaml_file(COMPOSE)
}

fn services(compose: &Json) -> &serde_json::Map<String, Json> {
    compose["services"]
        .as_object()
        .unwrap_or_else(|| panic!("{COMPOSE}: no `services` mapping"))
}

fn service<'a>(compose: &'a Json, name: &str) -> &'a Json {
    services(compose)
        .get(name)
        .unwrap_or_else(|| panic!("{COMPOSE}: no service `{name}`"))
}

/// The compose services that run the jirasync image (built from deploy/Dockerfile).
fn jirasync_services(compose: &Json) -> Vec<(&String, &Json)> {
    let found: Vec<_> = services(compose)
        .iter()
        .filter(|(_, service)| {
            service["build"]["dockerfile"].as_str() == Some(DOCKERFILE)
                || service["image"]
                    .as_str()
                    .is_some_and(|image| image.starts_with("jirasync"))
        })
        .collect();
    assert!(
        found.len() >= 3,
        "{COMPOSE}: expected the migrate, ingress and worker services to build {DOCKERFILE}, found {:?}",
        found.iter().map(|(name, _)| name).collect::<Vec<_>>()
    );
    found
}

/// Every object of every `deploy/k8s/*.yaml`, with the file it came from.
fn k8s_objects() -> Vec<(String, Json)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(K8S_DIR))
        .unwrap_or_else(|e| panic!("{K8S_DIR}: cannot list: {e}"))
        .map(|entry| entry.expect("a directory entry can be read").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{K8S_DIR}: no *.yaml files");
    files
        .iter()
        .flat_map(|path| {
            let file = format!("{K8S_DIR}/{}", file_name(path));
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("{file}: cannot read: {e}"));
            yaml_documents(&file, &text)
                .into_iter()
                .map(move |object| (file.clone(), object))
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a listed file has a name")
        .to_string_lossy()
        .into_owned()
}

fn of_kind<'a>(objects: &'a [(String, Json)], kind: &str) -> Vec<&'a (String, Json)> {
    objects
        .iter()
        .filter(|(_, object)| object["kind"] == kind)
        .collect()
}

fn name(object: &Json) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("<unnamed>")
}

fn containers(pod_owner: &Json) -> Vec<&Json> {
    pod_owner
        .pointer("/spec/template/spec/containers")
        .and_then(Json::as_array)
        .map(|containers| containers.iter().collect())
        .unwrap_or_default()
}

/// The Deployment whose container runs `jirasync <subcommand>`.
fn deployment_running<'a>(objects: &'a [(String, Json)], subcommand: &str) -> &'a (String, Json) {
    of_kind(objects, "Deployment")
        .into_iter()
        .find(|(_, deployment)| {
            containers(deployment)
                .iter()
                .any(|c| words(&c["args"]).first().map(String::as_str) == Some(subcommand))
        })
        .unwrap_or_else(|| panic!("{K8S_DIR}: no Deployment runs `jirasync {subcommand}`"))
}

/// A command given as a list or as one string, split into words.
fn words(command: &Json) -> Vec<String> {
    match command {
        Json::String(line) => line.split_whitespace().map(str::to_owned).collect(),
        Json::Array(items) => items
            .iter()
            .map(|item| match item {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_jirasync_image(image: &Json) -> bool {
    image.as_str().is_some_and(|image| {
        let repository = image.split(':').next().unwrap_or(image);
        repository == "jirasync" || repository.ends_with("/jirasync")
    })
}

fn labels_match(selector: &Json, labels: &Json) -> bool {
    let (Some(selector), Some(labels)) = (selector.as_object(), labels.as_object()) else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// `KEY=value` lines of an env file, comments and blank lines skipped.
fn env_file_keys(file: &str, text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, _) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{file}: line without `=`: {line:?}"));
            let key = key.trim();
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{file}: malformed variable name {key:?}"
            );
            key.to_owned()
        })
        .collect()
}

/// Runs `jirasync <args> --help`: clap exits 0 only when the subcommand and every
/// flag before `--help` exist.
fn help_succeeds(args: &[String]) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jirasync"));
    command.args(args).arg("--help");
    // The settings are read from the environment too: keep the caller's out.
    for var in CONTRACT_VARS {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run jirasync: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn check_command(place: &str, args: &[String], failures: &mut Vec<String>) {
    match args.first() {
        None => failures.push(format!(
            "{place}: no command (the image's default is --help)"
        )),
        Some(first) if !SUBCOMMANDS.contains(&first.as_str()) => failures.push(format!(
            "{place}: `{first}` is not a jirasync subcommand (CONTRACT §1: {SUBCOMMANDS:?})"
        )),
        Some(_) => {
            if let Err(stderr) = help_succeeds(args) {
                failures.push(format!(
                    "{place}: `jirasync {} --help` failed: {stderr}",
                    args.join(" ")
                ));
            }
        }
    }
}

fn assert_none(failures: Vec<String>) {
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

// ---- docker-compose.yml ----------------------------------------------------

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
fn every_environment_variable_given_to_jirasync_is_named_in_the_contract() {
    let mut failures = Vec::new();
    let check = |failures: &mut Vec<String>, place: String, key: &str| {
        if !CONTRACT_VARS.contains(&key) {
            failures.push(format!("{place}: `{key}` is not a CONTRACT §2 variable"));
        }
    };

    for key in env_file_keys(ENV_EXAMPLE, &read(ENV_EXAMPLE)) {
        check(&mut failures, ENV_EXAMPLE.to_owned(), &key);
    }

    let compose = compose();
    for (name, service) in jirasync_services(&compose) {
        match &service["environment"] {
            Json::Object(map) => {
                for key in map.keys() {
                    check(
                        &mut failures,
                        format!("{COMPOSE}: services.{name}.environment"),
                        key,
                    );
                }
            }
            Json::Array(items) => {
                for item in items {
                    let entry = item.as_str().unwrap_or_default();
                    let key = entry.split_once('=').map_or(entry, |(key, _)| key);
                    check(
                        &mut failures,
                        format!("{COMPOSE}: services.{name}.environment"),
                        key,
                    );
                }
            }
            _ => {}
        }
        // env_file: the checked-in ones must exist; an optional .env is the user's.
        let env_files: Vec<(String, bool)> = match &service["env_file"] {
            Json::String(path) => vec![(path.clone(), true)],
            Json::Array(items) => items
                .iter()
                .map(|item| match item {
                    Json::String(path) => (path.clone(), true),
                    other => (
                        other["path"].as_str().unwrap_or_default().to_owned(),
                        other["required"].as_bool().unwrap_or(true),
                    ),
                })
                .collect(),
            _ => Vec::new(),
        };
        if !env_files.iter().any(|(path, _)| path == ENV_EXAMPLE) {
            failures.push(format!(
                "{COMPOSE}: services.{name}.env_file does not read {ENV_EXAMPLE}"
            ));
        }
        for (path, required) in env_files {
            match std::fs::read_to_string(root().join(&path)) {
                Ok(text) => {
                    for key in env_file_keys(&path, &text) {
                        check(
                            &mut failures,
                            format!("{COMPOSE}: services.{name}.env_file {path}"),
                            &key,
                        );
                    }
                }
                Err(_) if !required => {}
                Err(e) => panic!("{COMPOSE}: services.{name}.env_file: cannot read {path}: {e}"),
            }
        }
    }

    let objects = k8s_objects();
    for (file, object) in &objects {
        match object["kind"].as_str() {
            Some("ConfigMap") => {
                for key in object["data"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
                {
                    check(
                        &mut failures,
                        format!("{file}: ConfigMap {}", name(object)),
                        key,
                    );
                }
            }
            Some("Secret") => {
                for field in ["data", "stringData"] {
                    for key in object[field].as_object().into_iter().flat_map(|m| m.keys()) {
                        check(
                            &mut failures,
                            format!("{file}: Secret {}.{field}", name(object)),
                            key,
                        );
                    }
                }
            }
            _ => {
                for container in containers(object) {
                    if !is_jirasync_image(&container["image"]) {
                        continue;
                    }
                    for env in container["env"].as_array().into_iter().flatten() {
                        check(
                            &mut failures,
                            format!("{file}: {} container env", name(object)),
                            env["name"].as_str().unwrap_or_default(),
                        );
                    }
                }
            }
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
    assert_none(failures);
}

// ---- deploy/Dockerfile -----------------------------------------------------

/// The Dockerfile's instructions, with `\` continuations joined.
fn dockerfile_instructions() -> Vec<String> {
    let text = read(DOCKERFILE);
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions
}

#[test]
fn the_dockerfile_builds_with_the_release_flags_ci_uses() {
    let builds: Vec<String> = dockerfile_instructions()
        .iter()
        .filter(|instruction| instruction.starts_with("RUN "))
        .flat_map(|run| {
            run.split("&&")
                .map(|step| step.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|step| step.starts_with("cargo build"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !builds.is_empty(),
        "{DOCKERFILE}: no RUN step runs `{RELEASE_BUILD}`"
    );
    let wrong: Vec<String> = builds
        .into_iter()
        .filter(|build| build != RELEASE_BUILD)
        .map(|build| format!("{DOCKERFILE}: `{build}` is not `{RELEASE_BUILD}`"))
        .collect();
    assert_none(wrong);
}

#[test]
fn the_runtime_image_runs_the_binary_as_a_non_root_user() {
    let instructions = dockerfile_instructions();
    let last_stage_start = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no FROM"));
    let runtime = &instructions[last_stage_start..];
    let mut failures = Vec::new();
    if !runtime
        .iter()
        .any(|i| i.starts_with("COPY --from=") && i.ends_with(" /usr/local/bin/jirasync"))
    {
        failures.push(format!(
            "{DOCKERFILE}: the runtime stage does not copy the binary to /usr/local/bin/jirasync"
        ));
    }
    match runtime.iter().rev().find(|i| i.starts_with("USER ")) {
        Some(user) if user.trim_start_matches("USER ").starts_with("10001") => {}
        other => failures.push(format!(
            "{DOCKERFILE}: the runtime stage's USER is {other:?}, expected uid 10001"
        )),
    }
    if !runtime.iter().any(|i| i == r#"ENTRYPOINT ["jirasync"]"#) {
        failures.push(format!(
            "{DOCKERFILE}: the runtime stage's ENTRYPOINT is not [\"jirasync\"]"
        ));
    }
    assert_none(failures);
}

// ---- deploy/k8s ------------------------------------------------------------

#[test]
fn every_k8s_container_runs_a_real_subcommand_with_valid_flags() {
    let objects = k8s_objects();
    let mut failures = Vec::new();
    let mut seen = 0;
    for (file, object) in &objects {
        for container in containers(object) {
            if !is_jirasync_image(&container["image"]) {
                continue;
            }
            seen += 1;
            if !container["command"].is_null() {
                failures.push(format!(
                    "{file}: {} container `command` overrides the image's ENTRYPOINT; use `args`",
                    name(object)
                ));
            }
            let place = format!("{file}: {} container args", name(object));
            check_command(&place, &words(&container["args"]), &mut failures);
        }
    }
    assert!(
        seen >= 3,
        "{K8S_DIR}: expected the migrate Job and the ingress and worker Deployments to run the jirasync image, found {seen} containers"
    );
    assert_none(failures);
}

/// The container port a probe's `port` names (by name or number), if any.
fn probe_port_exists(container: &Json, port: &Json) -> bool {
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| {
            (port.is_string() && p["name"] == *port)
                || (port.is_number() && p["containerPort"] == *port)
        })
}

#[test]
fn the_ingress_deployment_probes_readyz_and_healthz() {
    let objects = k8s_objects();
    let (file, deployment) = deployment_running(&objects, "ingress");
    let mut failures = Vec::new();
    for container in containers(deployment) {
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &container[probe]["httpGet"];
            let place = format!("{file}: {} {probe}.httpGet", name(deployment));
            if get["path"] != path {
                failures.push(format!("{place}.path is {}, expected {path}", get["path"]));
            }
            if !probe_port_exists(container, &get["port"]) {
                failures.push(format!(
                    "{place}.port {} is not one of the container's ports",
                    get["port"]
                ));
            }
        }
    }
    assert_none(failures);
}

#[test]
fn the_scaled_object_scales_the_worker_deployment_on_the_webhook_queue() {
    let objects = k8s_objects();
    let (_, worker) = deployment_running(&objects, "worker");
    // The queue is <JIRASYNC_QUEUE_PREFIX>.webhooks (CONTRACT §4), with the ConfigMap's prefix.
    let prefix = of_kind(&objects, "ConfigMap")
        .iter()
        .find_map(|(_, map)| map["data"]["JIRASYNC_QUEUE_PREFIX"].as_str())
        .unwrap_or("jirasync")
        .to_owned();
    let queue = format!("{prefix}.webhooks");
    let scaled = of_kind(&objects, "ScaledObject");
    assert!(!scaled.is_empty(), "{K8S_DIR}: no KEDA ScaledObject");
    let mut failures = Vec::new();
    for (file, object) in scaled {
        let place = format!("{file}: ScaledObject {}", name(object));
        if object["apiVersion"] != "keda.sh/v1alpha1" {
            failures.push(format!(
                "{place}: apiVersion is {}, expected keda.sh/v1alpha1",
                object["apiVersion"]
            ));
        }
        let target = &object["spec"]["scaleTargetRef"];
        if target["name"] != name(worker) {
            failures.push(format!(
                "{place}: spec.scaleTargetRef.name is {}, expected the worker Deployment {}",
                target["name"],
                name(worker)
            ));
        }
        if !target["kind"].is_null() && target["kind"] != "Deployment" {
            failures.push(format!(
                "{place}: spec.scaleTargetRef.kind is {}",
                target["kind"]
            ));
        }
        let triggers = object["spec"]["triggers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let on_webhooks = triggers.iter().any(|trigger| {
            trigger["type"] == "rabbitmq"
                && trigger["metadata"]["queueName"] == queue.as_str()
                && trigger["metadata"]["mode"] == "QueueLength"
        });
        if !on_webhooks {
            failures.push(format!(
                "{place}: spec.triggers has no rabbitmq trigger with queueName {queue} and mode QueueLength"
            ));
        }
        for trigger in &triggers {
            let auth = &trigger["authenticationRef"]["name"];
            let resolves = auth.is_null()
                || of_kind(&objects, "TriggerAuthentication")
                    .iter()
                    .any(|(_, a)| name(a) == auth.as_str().unwrap_or_default());
            if !resolves {
                failures.push(format!(
                    "{place}: trigger authenticationRef {auth} names no TriggerAuthentication"
                ));
            }
        }
    }
    assert_none(failures);
}

#[test]
fn every_deployment_has_a_disruption_budget_whose_selector_matches_its_pods() {
    let objects = k8s_objects();
    let deployments = of_kind(&objects, "Deployment");
    let budgets = of_kind(&objects, "PodDisruptionBudget");
    let mut failures = Vec::new();
    for (file, budget) in &budgets {
        let selector = &budget["spec"]["selector"]["matchLabels"];
        let matched = deployments
            .iter()
            .any(|(_, d)| labels_match(selector, &d["spec"]["template"]["metadata"]["labels"]));
        if !matched {
            failures.push(format!(
                "{file}: PodDisruptionBudget {} spec.selector.matchLabels {selector} matches no Deployment's pod labels",
                name(budget)
            ));
        }
    }
    for (file, deployment) in &deployments {
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        if !labels_match(&deployment["spec"]["selector"]["matchLabels"], labels) {
            failures.push(format!(
                "{file}: Deployment {} spec.selector.matchLabels does not match its own pod labels",
                name(deployment)
            ));
        }
        let covered = budgets
            .iter()
            .any(|(_, b)| labels_match(&b["spec"]["selector"]["matchLabels"], labels));
        if !covered {
            failures.push(format!(
                "{file}: Deployment {} has no PodDisruptionBudget selecting its pods",
                name(deployment)
            ));
        }
    }
    assert_none(failures);
}

#[test]
fn k8s_references_name_objects_and_ports_that_exist() {
    let objects = k8s_objects();
    let names_of = |kind: &str| -> BTreeSet<String> {
        of_kind(&objects, kind)
            .iter()
            .map(|(_, o)| name(o).to_owned())
            .collect()
    };
    let config_maps = names_of("ConfigMap");
    let secrets = names_of("Secret");
    let mut failures = Vec::new();
    for (file, object) in &objects {
        for container in containers(object) {
            for source in container["envFrom"].as_array().into_iter().flatten() {
                for (field, known) in [("configMapRef", &config_maps), ("secretRef", &secrets)] {
                    if let Some(referenced) = source[field]["name"].as_str()
                        && !known.contains(referenced)
                    {
                        failures.push(format!(
                            "{file}: {} envFrom.{field}.name {referenced} is not defined in {K8S_DIR}",
                            name(object)
                        ));
                    }
                }
            }
        }
    }
    for (file, auth) in of_kind(&objects, "TriggerAuthentication") {
        for reference in auth["spec"]["secretTargetRef"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let secret = reference["name"].as_str().unwrap_or_default();
            let key = reference["key"].as_str().unwrap_or_default();
            let has_key = of_kind(&objects, "Secret").iter().any(|(_, s)| {
                name(s) == secret && (!s["stringData"][key].is_null() || !s["data"][key].is_null())
            });
            if !has_key {
                failures.push(format!(
                    "{file}: TriggerAuthentication {} secretTargetRef {secret}/{key} is not a key of a Secret in {K8S_DIR}",
                    name(auth)
                ));
            }
        }
    }
    let (_, ingress) = deployment_running(&objects, "ingress");
    let ingress_container = containers(ingress)[0];
    for (file, service) in of_kind(&objects, "Service") {
        let place = format!("{file}: Service {}", name(service));
        if !labels_match(
            &service["spec"]["selector"],
            &ingress["spec"]["template"]["metadata"]["labels"],
        ) {
            failures.push(format!(
                "{place}: spec.selector does not select the ingress pods"
            ));
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            if !probe_port_exists(ingress_container, &port["targetPort"]) {
                failures.push(format!(
                    "{place}: targetPort {} is not a port of the ingress container",
                    port["targetPort"]
                ));
            }
        }
    }
    assert_none(failures);
}

#[test]
fn every_k8s_container_requests_cpu_and_memory_and_limits_memory() {
    let objects = k8s_objects();
    let mut failures = Vec::new();
    for (file, object) in &objects {
        for container in containers(object) {
            let resources = &container["resources"];
            for pointer in ["/requests/cpu", "/requests/memory", "/limits/memory"] {
                if resources.pointer(pointer).is_none() {
                    failures.push(format!(
                        "{file}: {} container resources{} is missing",
                        name(object),
                        pointer.replace('/', ".")
                    ));
                }
            }
        }
    }
    assert_none(failures);
}

#[test]
fn the_kustomization_lists_every_manifest_except_the_example_secret() {
    let kustomization = yaml_file(&format!("{K8S_DIR}/kustomization.yaml"));
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = k8s_objects()
        .iter()
        .map(|(file, _)| file.trim_start_matches(&format!("{K8S_DIR}/")).to_owned())
        .filter(|file| file != "kustomization.yaml" && file != "secret.yaml")
        .collect();
    let mut failures: Vec<String> = expected
        .difference(&listed)
        .map(|file| format!("{K8S_DIR}/kustomization.yaml: resources does not list {file}"))
        .collect();
    failures.extend(listed.difference(&expected).map(|file| {
        format!("{K8S_DIR}/kustomization.yaml: resources lists {file}, which is not a manifest here (or is the example secret)")
    }));
    assert_none(failures);
}

// ---- monitoring --------------------------------------------------------------

#[test]
fn prometheus_scrapes_only_services_that_compose_defines() {
    let file = "deploy/prometheus/prometheus.yml";
    let config = yaml_file(file);
    let compose = compose();
    let mut failures = Vec::new();
    let mut jobs = BTreeMap::new();
    for job in config["scrape_configs"].as_array().into_iter().flatten() {
        let job_name = job["job_name"].as_str().unwrap_or("<unnamed>").to_owned();
        for target in job
            .pointer("/static_configs")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c["targets"].as_array().cloned().unwrap_or_default())
        {
            let target = target.as_str().unwrap_or_default().to_owned();
            let host = target.split(':').next().unwrap_or_default();
            if services(&compose).get(host).is_none() {
                failures.push(format!(
                    "{file}: job {job_name} target {target}: no compose service `{host}`"
                ));
            }
            jobs.insert(job_name.clone(), target);
        }
    }
    if jobs.get("jirasync-ingress").map(String::as_str) != Some("ingress:8080") {
        failures.push(format!(
            "{file}: job jirasync-ingress does not scrape ingress:8080 (JIRASYNC_LISTEN in {COMPOSE})"
        ));
    }
    assert_none(failures);
}

#[test]
fn the_grafana_dashboard_queries_the_provisioned_datasource() {
    let datasources_file = "deploy/grafana/provisioning/datasources/prometheus.yml";
    let uid = yaml_file(datasources_file)["datasources"][0]["uid"].clone();
    assert!(
        uid.is_string(),
        "{datasources_file}: datasources[0].uid is missing"
    );
    let dashboard_file = "deploy/grafana/dashboards/jirasync.json";
    let dashboard: Json = serde_json::from_str(&read(dashboard_file))
        .unwrap_or_else(|e| panic!("{dashboard_file}: not JSON: {e}"));
    let mut failures = Vec::new();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("<untitled>");
        if panel["datasource"]["uid"] != uid {
            failures.push(format!(
                "{dashboard_file}: panel {title:?} datasource.uid is {}, expected {uid}",
                panel["datasource"]["uid"]
            ));
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries += 1;
            if target["expr"].as_str().is_none_or(str::is_empty) {
                failures.push(format!(
                    "{dashboard_file}: panel {title:?} has a target without expr"
                ));
            }
        }
    }
    assert!(queries > 0, "{dashboard_file}: no queries");
    assert_none(failures);
}
