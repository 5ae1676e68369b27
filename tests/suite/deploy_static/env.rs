//! Every variable handed to jirasync (compose, .env.example, k8s) is one of docs/reference.md §2.

use serde_json::Value as Json;

use super::support::*;
use super::*;

#[test]
fn the_variable_list_is_the_command_lines_own() {
    use clap::CommandFactory;
    fn collect(command: &clap::Command, vars: &mut std::collections::BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                vars.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            collect(sub, vars);
        }
    }
    let mut read = std::collections::BTreeSet::new();
    collect(&jirasync::cli::Cli::command(), &mut read);
    let listed: std::collections::BTreeSet<String> =
        SETTING_VARS.iter().map(|var| (*var).to_owned()).collect();
    assert_eq!(
        listed, read,
        "SETTING_VARS and the variables jirasync reads"
    );
}

#[test]
fn every_environment_variable_given_to_jirasync_is_named_in_the_contract() {
    let mut failures = Vec::new();
    let check = |failures: &mut Vec<String>, place: String, key: &str| {
        if !SETTING_VARS.contains(&key) {
            failures.push(format!(
                "{place}: `{key}` is not a setting of docs/reference.md §2"
            ));
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
fn the_secret_key_is_carried_as_a_secret_never_in_plain_configuration() {
    let mut failures = Vec::new();
    let keys = ["JIRASYNC_SECRET_KEY", "JIRASYNC_SECRET_KEY_OLD"];
    let objects = k8s_objects();
    let in_secret = of_kind(&objects, "Secret")
        .iter()
        .any(|(_, secret)| !secret["stringData"][keys[0]].is_null());
    if !in_secret {
        failures.push(format!("no Secret in {K8S_DIR} carries {}", keys[0]));
    }
    for (file, object) in &objects {
        for key in keys {
            if object["kind"] != "Secret"
                && serde_json::to_string(object)
                    .unwrap_or_default()
                    .contains(key)
            {
                failures.push(format!(
                    "{file}: {} names {key} outside a Secret",
                    name(object)
                ));
            }
        }
    }
    // .env.example is in the repository: it may name the key, never hold one.
    let example = read(ENV_EXAMPLE);
    for line in example
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
    {
        if let Some((name, value)) = line.split_once('=')
            && keys.contains(&name.trim())
            && !value.trim().is_empty()
        {
            failures.push(format!("{ENV_EXAMPLE}: {name} holds a value"));
        }
    }
    if !example.contains("JIRASYNC_SECRET_KEY=") {
        failures.push(format!("{ENV_EXAMPLE} does not say where the key goes"));
    }
    let compose = read(COMPOSE);
    for key in keys {
        if compose.contains(&format!("{key}:")) || compose.contains(&format!("{key}=")) {
            failures.push(format!("{COMPOSE} sets {key}: it belongs in .env"));
        }
    }
    assert_none(failures);
}
