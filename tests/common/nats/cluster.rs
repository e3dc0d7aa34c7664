//! A cluster of `nats-server` processes routed to each other.

use super::*;

/// `n` clustered JetStream servers named `n0`..`n<n-1>`, each with its own
/// client port, cluster port and store directory (docs/nats-backend.md, "Test harness", "Cluster"). Dropping it
/// kills them all.
pub struct NatsCluster {
    name: String,
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` (≥ 2) nodes fully routed to each other and waits until
    /// every node is ready and a probe `min(n, 3)`-replica stream can be
    /// created and deleted (a meta leader exists). Retries with new ports up
    /// to 5 times.
    pub fn start(n: usize) -> NatsCluster {
        assert!(
            n >= 2,
            "a JetStream cluster needs at least 2 nodes, got {n}"
        );
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            match NatsCluster::try_start(n) {
                Ok(cluster) => return cluster,
                Err(err) => failures.push(format!("attempt {attempt}: {err}")),
            }
        }
        panic!(
            "a {n}-node nats-server cluster did not form in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(n: usize) -> Result<NatsCluster, String> {
        let ports = free_ports(2 * n);
        let (client_ports, cluster_ports) = ports.split_at(n);
        let name = format!("kvfold-test-{}-{}", std::process::id(), next_seq());
        let nodes = (0..n)
            .map(|i| {
                let role = ClusterRole {
                    cluster_name: name.clone(),
                    cluster_port: cluster_ports[i],
                    route_ports: (0..n)
                        .filter(|&j| j != i)
                        .map(|j| cluster_ports[j])
                        .collect(),
                };
                NatsServer::unstarted(format!("n{i}"), client_ports[i], Some(role))
            })
            .collect();
        let mut cluster = NatsCluster { name, nodes };
        for node in &mut cluster.nodes {
            node.spawn();
        }
        for (i, node) in cluster.nodes.iter_mut().enumerate() {
            node.await_ready(READY_WITHIN)
                .map_err(|err| format!("n{i} (port {}): {err}", node.port))?;
        }
        cluster.probe_replicated_stream(CLUSTER_READY_WITHIN)?;
        Ok(cluster)
    }

    /// Creates and deletes a memory stream with `min(n, 3)` replicas,
    /// retrying through every live node until `within` passes.
    fn probe_replicated_stream(&self, within: Duration) -> Result<(), String> {
        let replicas = self.nodes.len().min(3);
        let stream = format!("KVFOLD_PROBE_{}", next_seq());
        let config = json!({
            "name": stream,
            "subjects": [format!("kvfold.probe.{stream}")],
            "num_replicas": replicas,
            "storage": "memory",
        });
        let deadline = Instant::now() + within;
        let mut last = String::new();
        let mut created = false;
        for turn in 0.. {
            let port = self.nodes[turn % self.nodes.len()].port;
            if !created {
                match js_request_sync(port, &format!("$JS.API.STREAM.CREATE.{stream}"), &config) {
                    Ok(_) => created = true,
                    Err(err) => last = format!("create R{replicas} probe: {err}"),
                }
            }
            if created {
                match js_request_sync(
                    port,
                    &format!("$JS.API.STREAM.DELETE.{stream}"),
                    &Value::Null,
                ) {
                    Ok(_) => return Ok(()),
                    Err(JsError::Api {
                        err_code: 10059, ..
                    }) => return Ok(()),
                    Err(err) => last = format!("delete R{replicas} probe: {err}"),
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL);
        }
        Err(format!(
            "no JetStream meta leader within {within:?}; last: {last}"
        ))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The cluster name (`--cluster_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every node's client URL, comma-separated (usable as
    /// `NatsConnectionConfig::url`; split it for `async_nats::connect`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Every node's client URL (for `async_nats::connect`, which takes a
    /// list rather than a comma-separated string).
    pub fn url_list(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Whether node `i` runs (not killed by us).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// SIGKILL node `i` (keeps its ports and store).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Restart node `i` on its ports and store and wait until it is ready
    /// (connected, named right, and answering `$JS.API.INFO`, which needs a
    /// meta leader, i.e. a quorum of live nodes including it).
    pub fn restart(&mut self, i: usize) {
        self.restart_many(&[i]);
    }

    /// Restart several nodes at once (spawn all, then wait for each), e.g.
    /// when no quorum is left without them.
    pub fn restart_many(&mut self, nodes: &[usize]) {
        for &i in nodes {
            self.nodes[i].kill();
            self.nodes[i].spawn();
        }
        for &i in nodes {
            self.nodes[i].finish_restart();
        }
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n')?
            .parse()
            .ok()
            .filter(|&i| i < self.nodes.len())
    }

    /// `$JS.API.STREAM.INFO.<stream>` through a live node, retried (round
    /// robin over live nodes) until `accept` takes the answer or 30 s pass.
    fn poll_stream_info<T>(
        &self,
        stream: &str,
        what: &str,
        mut accept: impl FnMut(&Value) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + LEADER_WITHIN;
        let mut last = String::from("no live node");
        for turn in 0.. {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.is_running(i))
                .collect();
            if !live.is_empty() {
                let node = &self.nodes[live[turn % live.len()]];
                match js_request_sync(
                    node.port,
                    &format!("$JS.API.STREAM.INFO.{stream}"),
                    &Value::Null,
                ) {
                    Ok(info) => match accept(&info) {
                        Ok(found) => return found,
                        Err(why) => last = format!("via {}: {why}", node.name),
                    },
                    Err(err) => last = format!("via {}: {err}", node.name),
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL);
        }
        panic!("stream {stream}: {what} within {LEADER_WITHIN:?}; last: {last}");
    }

    /// Stream info of `stream`, as JSON (retried through live nodes for up
    /// to 30 s).
    pub fn stream_info(&self, stream: &str) -> Value {
        self.poll_stream_info(stream, "no stream info", |info| Ok(info.clone()))
    }

    /// The index of the live node leading `stream` (from the stream info's
    /// `cluster.leader`, `n<i>`); waits up to 30 s for an election.
    pub fn stream_leader(&self, stream: &str) -> usize {
        self.poll_stream_info(stream, "no live leader", |info| {
            let leader = info["cluster"]["leader"].as_str().unwrap_or_default();
            match self.node_index(leader) {
                Some(i) if self.is_running(i) => Ok(i),
                _ => Err(format!("leader is {leader:?}")),
            }
        })
    }

    /// Asks the leader of `stream` to step down (`$JS.API.STREAM.LEADER.STEPDOWN.<stream>`,
    /// sent through each live node until one answers); returns the index of the
    /// node that led before. A new leader is elected among the other replicas.
    pub fn step_down_leader(&self, stream: &str) -> usize {
        let leader = self.stream_leader(stream);
        let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}");
        let mut last = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.is_running(i) {
                continue;
            }
            match js_request_sync(node.port, &subject, &Value::Null) {
                Ok(_) => return leader,
                Err(err) => last = format!("n{i}: {err}"),
            }
        }
        panic!("stream {stream}: step-down of n{leader} refused; last: {last}");
    }

    /// The nodes leading the consumers of `stream` (`$JS.API.CONSUMER.LIST.<stream>`,
    /// each consumer's `cluster.leader`), through the first live node that answers.
    pub fn consumer_leaders(&self, stream: &str) -> Vec<usize> {
        let subject = format!("$JS.API.CONSUMER.LIST.{stream}");
        let mut last = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !self.is_running(i) {
                continue;
            }
            match js_request_sync(node.port, &subject, &json!({})) {
                Ok(list) => {
                    return list["consumers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["cluster"]["leader"].as_str())
                        .filter_map(|name| self.node_index(name))
                        .collect();
                }
                Err(err) => last = format!("n{i}: {err}"),
            }
        }
        panic!("stream {stream}: no consumer list; last: {last}");
    }

    /// Moves the leadership of `stream` to node `to` (step-down requests with
    /// `placement.preferred`, repeated until `to` leads, at most 10 times).
    pub fn move_leader(&self, stream: &str, to: usize) {
        let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}");
        let body = json!({ "placement": { "preferred": self.nodes[to].name } });
        for _ in 0..10 {
            if self.stream_leader(stream) == to {
                return;
            }
            for (i, node) in self.nodes.iter().enumerate() {
                if self.is_running(i) && js_request_sync(node.port, &subject, &body).is_ok() {
                    break;
                }
            }
            thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(
            self.stream_leader(stream),
            to,
            "stream {stream}: leadership did not move"
        );
    }

    /// SIGKILL the node leading `stream`; returns its index.
    pub fn kill_leader(&mut self, stream: &str) -> usize {
        let leader = self.stream_leader(stream);
        self.kill(leader);
        leader
    }

    /// Waits until node `i` is the leader of `stream` or a current replica
    /// of it (e.g. after [`restart`](Self::restart)).
    pub fn wait_caught_up(&self, stream: &str, i: usize) {
        let name = format!("n{i}");
        self.poll_stream_info(stream, &format!("{name} is not a current peer"), |info| {
            let cluster = &info["cluster"];
            let leads = cluster["leader"].as_str() == Some(name.as_str());
            let current = cluster["replicas"].as_array().is_some_and(|replicas| {
                replicas.iter().any(|r| {
                    r["name"].as_str() == Some(name.as_str())
                        && r["current"].as_bool() == Some(true)
                })
            });
            if leads || current {
                Ok(())
            } else {
                Err(format!("cluster: {cluster}"))
            }
        })
    }
}
