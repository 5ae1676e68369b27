//! deploy/Dockerfile: the release build flags and the runtime stage.

use super::support::*;
use super::*;

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
