//! A three-node RabbitMQ cluster of private nodes on this machine (RabbitMQ's
//! "clustering on a single machine"): own names, ports and data dirs, one Erlang
//! cookie, the second and third joined to the first with `join_cluster`.

use super::private_broker::{NodeOptions, PrivateBroker};

/// The nodes of one cluster; dropping it shuts every node down.
pub struct PrivateCluster {
    pub nodes: Vec<PrivateBroker>,
}

impl PrivateCluster {
    /// Boots `size` nodes and joins them into one cluster.
    pub async fn start(size: usize) -> Self {
        let cookie = format!("JSTCLUSTER{}", super::unique().to_uppercase());
        let mut nodes = Vec::with_capacity(size);
        for _ in 0..size {
            nodes.push(
                PrivateBroker::start_with(NodeOptions {
                    cookie: Some(cookie.clone()),
                    ..NodeOptions::default()
                })
                .await,
            );
        }
        let first = nodes[0].node().to_owned();
        for node in &nodes[1..] {
            node.ctl(&["stop_app"]).await;
            node.ctl(&["join_cluster", &first]).await;
            node.ctl(&["start_app"]).await;
            node.ctl(&["await_startup", "--timeout", "60"]).await;
        }
        let status = nodes[0]
            .ctl(&["cluster_status", "--formatter", "json"])
            .await;
        for node in &nodes {
            assert!(
                status.contains(node.node()),
                "{} joined: {status}",
                node.node()
            );
        }
        Self { nodes }
    }

    /// `AMQP_URL` listing every node.
    pub fn amqp_url(&self) -> String {
        self.nodes
            .iter()
            .map(PrivateBroker::amqp_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the node that holds a connection whose name starts with
    /// `name` (e.g. `jirasync-ingress-`), asked of node `via`.
    pub async fn node_holding(&self, via: usize, name: &str) -> Option<usize> {
        let out = self.nodes[via]
            .ctl(&[
                "list_connections",
                "--quiet",
                "--no-table-headers",
                "pid",
                "client_properties",
            ])
            .await;
        // A connection's pid names its node: `<jst_…@localhost.1.2.3>`.
        let line = out.lines().find(|line| line.contains(name))?;
        let pid = line.split_whitespace().next()?.trim_start_matches('<');
        let node = pid.split('.').next()?;
        self.nodes.iter().position(|n| n.node() == node)
    }
}
