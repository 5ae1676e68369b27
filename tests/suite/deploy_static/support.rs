//! Loading and small helpers shared by the deploy_static checks: YAML and env files
//! as JSON, k8s object lookups, and running `jirasync <args> --help`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value as Json;

use super::{COMPOSE, DOCKERFILE, K8S_DIR, SETTING_VARS, SUBCOMMANDS};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file's text; panics naming the file when it cannot be read.
pub fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{relative}: cannot read {}: {e}", path.display()))
}

/// Every YAML document of `text` as JSON, with `<<` merge keys applied (as Compose does).
pub fn yaml_documents(file: &str, text: &str) -> Vec<Json> {
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

/// A single-document YAML file as JSON.
pub fn yaml_file(relative: &str) -> Json {
    let mut documents = yaml_documents(relative, &read(relative));
    assert_eq!(documents.len(), 1, "{relative}: expected one YAML document");
    documents.remove(0)
}

/// `docker-compose.yml` as JSON, merge keys applied.
pub fn compose() -> Json {
    yaml_file(COMPOSE)
}

/// The `services` mapping of the compose file.
pub fn services(compose: &Json) -> &serde_json::Map<String, Json> {
    compose["services"]
        .as_object()
        .unwrap_or_else(|| panic!("{COMPOSE}: no `services` mapping"))
}

/// One compose service; panics naming it when missing.
pub fn service<'a>(compose: &'a Json, name: &str) -> &'a Json {
    services(compose)
        .get(name)
        .unwrap_or_else(|| panic!("{COMPOSE}: no service `{name}`"))
}

/// The compose services that run the jirasync image (built from deploy/Dockerfile).
pub fn jirasync_services(compose: &Json) -> Vec<(&String, &Json)> {
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
pub fn k8s_objects() -> Vec<(String, Json)> {
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

/// The last component of `path`.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a listed file has a name")
        .to_string_lossy()
        .into_owned()
}

/// The k8s objects of one `kind`.
pub fn of_kind<'a>(objects: &'a [(String, Json)], kind: &str) -> Vec<&'a (String, Json)> {
    objects
        .iter()
        .filter(|(_, object)| object["kind"] == kind)
        .collect()
}

/// `metadata.name` of a k8s object.
pub fn name(object: &Json) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("<unnamed>")
}

/// The containers of a Deployment's or Job's pod template.
pub fn containers(pod_owner: &Json) -> Vec<&Json> {
    pod_owner
        .pointer("/spec/template/spec/containers")
        .and_then(Json::as_array)
        .map(|containers| containers.iter().collect())
        .unwrap_or_default()
}

/// The Deployment whose container runs `jirasync <subcommand>`.
pub fn deployment_running<'a>(
    objects: &'a [(String, Json)],
    subcommand: &str,
) -> &'a (String, Json) {
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
pub fn words(command: &Json) -> Vec<String> {
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

/// Whether an image reference names the jirasync image (any repository, any tag).
pub fn is_jirasync_image(image: &Json) -> bool {
    image.as_str().is_some_and(|image| {
        let repository = image.split(':').next().unwrap_or(image);
        repository == "jirasync" || repository.ends_with("/jirasync")
    })
}

/// Whether every label of a non-empty `selector` is in `labels`.
pub fn labels_match(selector: &Json, labels: &Json) -> bool {
    let (Some(selector), Some(labels)) = (selector.as_object(), labels.as_object()) else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// `KEY=value` lines of an env file, comments and blank lines skipped.
pub fn env_file_keys(file: &str, text: &str) -> Vec<String> {
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
pub fn help_succeeds(args: &[String]) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jirasync"));
    command.args(args).arg("--help");
    // The settings are read from the environment too: keep the caller's out.
    for var in SETTING_VARS {
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

/// Records a failure unless `args` starts with a real subcommand and `--help` accepts them.
pub fn check_command(place: &str, args: &[String], failures: &mut Vec<String>) {
    match args.first() {
        None => failures.push(format!(
            "{place}: no command (the image's default is --help)"
        )),
        Some(first) if !SUBCOMMANDS.contains(&first.as_str()) => failures.push(format!(
            "{place}: `{first}` is not a jirasync subcommand (docs/reference.md §1: {SUBCOMMANDS:?})"
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

/// Fails the test with every collected failure, one per line.
pub fn assert_none(failures: Vec<String>) {
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}
