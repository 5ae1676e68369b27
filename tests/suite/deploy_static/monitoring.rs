//! Prometheus scrape targets and the Grafana dashboard's datasource.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::support::*;
use super::*;

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
    // The ingress serves /metrics on its metrics listener, not where Jira posts.
    let metrics_listen = service(&compose, "ingress")["environment"]["JIRASYNC_METRICS_LISTEN"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let port = metrics_listen.rsplit(':').next().unwrap_or_default();
    let expected = format!("ingress:{port}");
    if port.is_empty() || jobs.get("jirasync-ingress") != Some(&expected) {
        failures.push(format!(
            "{file}: job jirasync-ingress does not scrape {expected} (JIRASYNC_METRICS_LISTEN \
             {metrics_listen:?} of the ingress in {COMPOSE})"
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

#[test]
fn the_dashboard_shows_the_sync_decisions_by_outcome() {
    let dashboard: Json = serde_json::from_str(&read("deploy/grafana/dashboards/jirasync.json"))
        .expect("the dashboard is JSON");
    let shown = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .any(|target| {
            target["expr"].as_str().is_some_and(|expr| {
                expr.contains("jirasync_sync_decisions_total") && expr.contains("outcome")
            })
        });
    assert!(
        shown,
        "no panel plots jirasync_sync_decisions_total by outcome"
    );
}
