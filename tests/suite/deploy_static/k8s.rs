//! deploy/k8s: commands, probes, KEDA, disruption budgets, references, resources.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::support::*;
use super::*;

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

/// The port of the ConfigMap's `JIRASYNC_METRICS_LISTEN` (0 when it sets none).
fn metrics_port(objects: &[(String, Json)]) -> u64 {
    of_kind(objects, "ConfigMap")
        .iter()
        .find_map(|(_, map)| map["data"]["JIRASYNC_METRICS_LISTEN"].as_str())
        .and_then(|listen| listen.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or(0)
}

/// Whether a probe's `port` (by name or number) is the container's `number`.
fn probe_port_is(container: &Json, port: &Json, number: u64) -> bool {
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| {
            p["containerPort"] == number && (p["name"] == *port || p["containerPort"] == *port)
        })
}

/// Both probe the metrics listener, which no client of the ingress can flood
/// (docs/reference.md §3): probes on the port Jira posts to failed under the
/// security review's floods and took the pods out and restarted them.
#[test]
fn the_ingress_and_worker_deployments_probe_readyz_and_healthz_on_the_metrics_port() {
    let objects = k8s_objects();
    let metrics = metrics_port(&objects);
    assert!(
        metrics > 0,
        "{K8S_DIR}: no ConfigMap sets JIRASYNC_METRICS_LISTEN"
    );
    let mut failures = Vec::new();
    for role in ["ingress", "worker"] {
        let (file, deployment) = deployment_running(&objects, role);
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
                } else if !probe_port_is(container, &get["port"], metrics) {
                    failures.push(format!(
                        "{place}.port {} is not the metrics port {metrics} (JIRASYNC_METRICS_LISTEN)",
                        get["port"]
                    ));
                }
            }
        }
    }
    assert_none(failures);
}

#[test]
fn the_scaled_object_scales_the_worker_deployment_on_the_webhook_queue() {
    let objects = k8s_objects();
    let (_, worker) = deployment_running(&objects, "worker");
    // The queue is <JIRASYNC_QUEUE_PREFIX>.webhooks (docs/reference.md §4), with the ConfigMap's prefix.
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
fn prometheus_scrapes_the_metrics_listener_which_no_service_exposes() {
    let objects = k8s_objects();
    let mut failures = Vec::new();
    let listen = of_kind(&objects, "ConfigMap")
        .iter()
        .find_map(|(_, map)| map["data"]["JIRASYNC_METRICS_LISTEN"].as_str())
        .unwrap_or_default()
        .to_owned();
    let port: u64 = listen
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    assert!(
        port > 0,
        "{K8S_DIR}: no ConfigMap sets JIRASYNC_METRICS_LISTEN"
    );
    for role in ["ingress", "worker"] {
        let (file, deployment) = deployment_running(&objects, role);
        let place = format!("{file}: {}", name(deployment));
        let annotated =
            &deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"];
        if annotated.as_str() != Some(port.to_string().as_str()) {
            failures.push(format!(
                "{place}: annotation prometheus.io/port is {annotated}, expected {port} (JIRASYNC_METRICS_LISTEN)"
            ));
        }
        if !containers(deployment)
            .iter()
            .any(|c| probe_port_exists(c, &Json::from(port)))
        {
            failures.push(format!("{place}: no container port {port}"));
        }
    }
    let (_, ingress) = deployment_running(&objects, "ingress");
    let metrics_names: Vec<Json> = containers(ingress)
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["containerPort"] == port)
        .map(|p| p["name"].clone())
        .collect();
    for (file, service) in of_kind(&objects, "Service") {
        for target in service["spec"]["ports"].as_array().into_iter().flatten() {
            let target = &target["targetPort"];
            if *target == port || metrics_names.contains(target) {
                failures.push(format!(
                    "{file}: Service {} exposes the metrics port {target}",
                    name(service)
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

#[test]
fn the_rabbitmq_cluster_example_runs_three_replicas_one_per_node() {
    let file = "deploy/k8s/rabbitmq-cluster/rabbitmq-cluster.yaml";
    let cluster = yaml_file(file);
    let mut failures = Vec::new();
    if cluster["kind"] != "RabbitmqCluster" || cluster["apiVersion"] != "rabbitmq.com/v1beta1" {
        failures.push(format!(
            "{file}: not a rabbitmq.com/v1beta1 RabbitmqCluster"
        ));
    }
    if cluster["spec"]["replicas"] != 3 {
        failures.push(format!(
            "{file}: spec.replicas is {}, expected 3",
            cluster["spec"]["replicas"]
        ));
    }
    let anti = &cluster["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0];
    if anti["topologyKey"] != "kubernetes.io/hostname" {
        failures.push(format!(
            "{file}: the replicas are not spread one per Kubernetes node"
        ));
    }
    let readme = read("deploy/k8s/rabbitmq-cluster/README.md");
    for n in 0..3 {
        let host = format!("rabbitmq-server-{n}.rabbitmq-nodes.rabbitmq.svc");
        if !readme.contains(&host) {
            failures.push(format!(
                "deploy/k8s/rabbitmq-cluster/README.md: AMQP_URL does not list {host}"
            ));
        }
    }
    assert_none(failures);
}
