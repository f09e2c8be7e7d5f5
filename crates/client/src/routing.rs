//! Token-aware routing, as Cassandra's drivers do it: the client learns the ring from the node
//! it connects to and sends each read, write and delete straight to a replica of its key, so
//! that the request costs one hop less (no forwarding) and every client's blind writes of a
//! key meet at the same coordinator (its first replica), where they overwrite rather than
//! become siblings.
//!
//! [`Router`] is the pure part: the ring and the replicas of a key. [`ClusterClient`] keeps
//! one [`Client`] per node it sends to, fetches the ring with its first request and again in
//! the background every [`RING_REFRESH`], and falls back to the node it was given (which coordinates or forwards the request itself)
//! whenever the ring is unknown (the original's servers do not send tokens), the key's
//! replicas are down or unreachable, or a routed request finds its node unreachable.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use distkv_cluster::{Ring, Token, key_token};

use crate::client::{Client, ClientConfig};
use crate::error::{ClientError, Result};
use crate::types::{Consistency, GetResult, NodeState, PutResult, RingInfo};

/// How often the ring is fetched again.
pub const RING_REFRESH: Duration = Duration::from_secs(10);
/// How long a node that could not be reached is left out of routing.
pub const UNREACHABLE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest a connection to a node found on the ring may take before it is left out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The replicas of keys, from a node's view of the ring: for every token on the ring, the
/// serving replicas of the keys up to it, worked out once, so that routing a key is a hash
/// and a binary search.
#[derive(Debug, Clone)]
pub struct Router {
    /// The ring's distinct tokens, ascending.
    tokens: Vec<Token>,
    /// For `tokens[i]`: the addresses of the serving replicas of the keys in
    /// `(tokens[i - 1], tokens[i]]`, in preference-list order (indexes into `addresses`).
    replicas: Vec<Vec<u16>>,
    /// The address of every node that serves client requests (alive or leaving).
    addresses: Vec<String>,
}

impl Router {
    /// The router of `info`; `None` when a node that serves requests sent no tokens (a
    /// server that does not send them, such as the original, or one of an older release in a
    /// cluster being upgraded) or none serves.
    pub fn from_ring(info: &RingInfo) -> Option<Router> {
        let serving_nodes = || {
            info.nodes
                .iter()
                .filter(|n| matches!(n.status, NodeState::Alive | NodeState::Leaving))
        };
        if serving_nodes().any(|n| n.tokens.is_empty()) {
            return None;
        }
        let mut ring = Ring::new();
        for node in info.nodes.iter().filter(|n| !n.tokens.is_empty()) {
            ring.add_node_tokens(&node.node_id, &node.tokens);
        }
        let serving: Vec<(&str, &str)> = serving_nodes()
            .map(|n| (n.node_id.as_str(), n.address.as_str()))
            .collect();
        if ring.is_empty() || serving.is_empty() || info.replicas == 0 {
            return None;
        }
        let index: HashMap<&str, u16> = serving
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i as u16))
            .collect();
        let mut tokens: Vec<Token> = ring.tokens().map(|(t, _)| t).collect();
        tokens.dedup();
        let replicas = tokens
            .iter()
            .map(|t| {
                ring.preference_list_for_token(*t, info.replicas as usize)
                    .iter()
                    .filter_map(|id| index.get(id.as_str()).copied())
                    .collect()
            })
            .collect();
        Some(Router {
            tokens,
            replicas,
            addresses: serving.iter().map(|(_, a)| a.to_string()).collect(),
        })
    }

    /// The addresses of the replicas of `key` that serve requests, in preference-list order.
    pub fn replicas(&self, key: &str) -> impl Iterator<Item = &str> {
        let token = key_token(key.as_bytes());
        // The first token at or after the key's, wrapping past the top.
        let at = self.tokens.partition_point(|t| *t < token) % self.tokens.len();
        self.replicas[at]
            .iter()
            .map(|i| self.addresses[*i as usize].as_str())
    }

    /// Every address that serves requests.
    pub fn addresses(&self) -> HashSet<&str> {
        self.addresses.iter().map(String::as_str).collect()
    }
}

/// What routing knows now.
#[derive(Default)]
struct Routes {
    router: Option<Router>,
    /// When the ring was last fetched (or tried).
    fetched: Option<Instant>,
    /// A connection per node address.
    clients: HashMap<String, Arc<Client>>,
    /// Nodes found unreachable, and when.
    unreachable: HashMap<String, Instant>,
}

struct Shared {
    routes: RwLock<Routes>,
    refreshing: AtomicBool,
}

/// A client that sends each key's requests to a replica of it (see the module). Cheap to
/// clone; clones share connections and the ring.
#[derive(Clone)]
pub struct ClusterClient {
    seed: Arc<Client>,
    config: ClientConfig,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("seed", &self.seed.server())
            .finish_non_exhaustive()
    }
}

impl ClusterClient {
    /// Connects to `config.server` (which must answer, as [`Client::connect`]). The ring is
    /// fetched with the first request routed by key, and connections to other nodes are
    /// made as requests need them (or all at once with [`ClusterClient::connect_nodes`]).
    pub async fn connect(config: ClientConfig) -> Result<ClusterClient> {
        let seed = Arc::new(Client::connect(config.clone()).await?);
        Ok(ClusterClient {
            seed,
            config,
            shared: Arc::new(Shared {
                routes: RwLock::new(Routes::default()),
                refreshing: AtomicBool::new(false),
            }),
        })
    }

    /// The node this client was given, for every request that is not routed by key.
    pub fn seed(&self) -> &Client {
        &self.seed
    }

    /// The routing in use: `None` while the ring is unknown.
    pub fn router(&self) -> Option<Router> {
        self.read_routes().router.clone()
    }

    /// Fetches the ring from the seed. When the seed cannot tell it, the routing stays as
    /// it was (none at first: requests go to the seed) until the next refresh.
    pub async fn refresh(&self) {
        // Cleared however this ends, also when the caller drops it half-way.
        let _refreshing = Refreshing(&self.shared.refreshing);
        let fetched = self.seed.ring().await;
        let mut routes = self.write_routes();
        routes.fetched = Some(Instant::now());
        let Ok(info) = fetched else {
            return;
        };
        let router = Router::from_ring(&info);
        if let Some(r) = &router {
            let serving = r.addresses();
            routes.clients.retain(|a, _| serving.contains(a.as_str()));
        }
        routes.router = router;
    }

    /// Fetches the ring and connects to every node on it that serves requests, in parallel
    /// (each within a second); returns how many nodes are connected.
    pub async fn connect_nodes(&self) -> usize {
        self.shared.refreshing.store(true, Ordering::Release);
        self.refresh().await;
        let addresses: Vec<String> = match self.router() {
            Some(r) => r.addresses().into_iter().map(str::to_string).collect(),
            None => return 0,
        };
        let connects = addresses.into_iter().map(|a| async move {
            let _ = self.node(&a).await;
        });
        futures::future::join_all(connects).await;
        self.read_routes().clients.len()
    }

    fn read_routes(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.shared
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_routes(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.shared
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection to the node at `address`, made now if there is none; `None` when it
    /// cannot be reached (it is then left out for [`UNREACHABLE_BACKOFF`]).
    async fn node(&self, address: &str) -> Option<Arc<Client>> {
        if let Some(client) = self.read_routes().clients.get(address) {
            return Some(Arc::clone(client));
        }
        let config = ClientConfig {
            server: address.to_string(),
            timeout: self.config.timeout.min(CONNECT_TIMEOUT),
            tls: self.config.tls.clone(),
        };
        let connected = Client::connect(config).await;
        let mut routes = self.write_routes();
        match connected {
            Ok(client) => {
                // Requests get the configured timeout, not the connect timeout.
                let client = Arc::new(client.with_timeout(self.config.timeout));
                let kept = routes.clients.entry(address.to_string()).or_insert(client);
                Some(Arc::clone(kept))
            }
            Err(_) => {
                routes
                    .unreachable
                    .insert(address.to_string(), Instant::now());
                None
            }
        }
    }

    /// Leaves the node at `address` out of routing for [`UNREACHABLE_BACKOFF`].
    fn left_out(&self, address: String) {
        let mut routes = self.write_routes();
        routes.clients.remove(&address);
        routes.unreachable.insert(address, Instant::now());
    }

    /// The connection for `key`'s first reachable replica, or `None` for the seed. The first
    /// call fetches the ring; later ones start a refresh in the background when it is due.
    async fn route(&self, key: &str) -> Option<Arc<Client>> {
        let fetched = self.read_routes().fetched;
        let due = fetched.is_none_or(|t| t.elapsed() >= RING_REFRESH);
        if due && !self.shared.refreshing.swap(true, Ordering::AcqRel) {
            if fetched.is_none() {
                self.refresh().await;
            } else {
                let this = self.clone();
                tokio::spawn(async move { this.refresh().await });
            }
        }
        let candidates: Vec<String> = {
            let routes = self.read_routes();
            let router = routes.router.as_ref()?;
            let mut reachable = router.replicas(key).filter(|a| !recently(&routes, a));
            // Usually the first replica is connected already.
            let first = reachable.next()?;
            if let Some(client) = routes.clients.get(first) {
                return Some(Arc::clone(client));
            }
            std::iter::once(first)
                .chain(reachable)
                .map(str::to_string)
                .collect()
        };
        for address in candidates {
            if let Some(client) = self.node(&address).await {
                return Some(client);
            }
        }
        None
    }

    /// Runs `call` on `key`'s replica, and again on the seed when that replica could not be
    /// reached (it is then left out of routing for a while). A request that reached the
    /// replica before its connection failed may have been applied there: the retry is then
    /// as a caller's own retry would be (a second write of the same value).
    async fn routed<T, F, Fut>(&self, key: &str, call: F) -> Result<T>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let Some(target) = self.route(key).await else {
            return call(Arc::clone(&self.seed)).await;
        };
        let address = target.server().to_string();
        match call(target).await {
            Err(ClientError::Unavailable { .. }) => {
                self.left_out(address);
                call(Arc::clone(&self.seed)).await
            }
            result => result,
        }
    }

    /// [`Client::put`], sent to a replica of `key`.
    pub async fn put(
        &self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        consistency: Option<Consistency>,
        context: Option<Vec<u8>>,
    ) -> Result<PutResult> {
        let (key, value) = (key.into(), value.into());
        self.routed(&key, |c| {
            let (key, value, context) = (key.clone(), value.clone(), context.clone());
            async move { c.put(key, value, consistency, context).await }
        })
        .await
    }

    /// [`Client::get`], sent to a replica of `key`.
    pub async fn get(
        &self,
        key: impl Into<String>,
        consistency: Option<Consistency>,
    ) -> Result<GetResult> {
        let key = key.into();
        self.routed(&key, |c| {
            let key = key.clone();
            async move { c.get(key, consistency).await }
        })
        .await
    }

    /// [`Client::delete`], sent to a replica of `key`.
    pub async fn delete(
        &self,
        key: impl Into<String>,
        consistency: Option<Consistency>,
        context: Option<Vec<u8>>,
    ) -> Result<()> {
        let key = key.into();
        self.routed(&key, |c| {
            let (key, context) = (key.clone(), context.clone());
            async move { c.delete(key, consistency, context).await }
        })
        .await
    }
}

/// Clears the refresh flag when dropped.
struct Refreshing<'a>(&'a AtomicBool);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// True when `address` was found unreachable within the backoff.
fn recently(routes: &Routes, address: &str) -> bool {
    routes
        .unreachable
        .get(address)
        .is_some_and(|t| t.elapsed() < UNREACHABLE_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RingNode;
    use distkv_cluster::node_tokens;

    fn node(id: &str, status: NodeState, tokens: bool) -> RingNode {
        RingNode {
            node_id: id.to_string(),
            address: format!("{id}:7000"),
            virtual_nodes: 16,
            ownership: 0.0,
            status,
            tokens: if tokens {
                node_tokens(id, 16)
            } else {
                Vec::new()
            },
        }
    }

    fn info(nodes: Vec<RingNode>, replicas: u32) -> RingInfo {
        RingInfo {
            nodes,
            replicas,
            read_quorum: 1,
            write_quorum: 1,
        }
    }

    #[test]
    fn replicas_follow_the_servers_preference_list() {
        let ids = ["a", "b", "c", "d", "e"];
        let router = Router::from_ring(&info(
            ids.iter()
                .map(|i| node(i, NodeState::Alive, true))
                .collect(),
            3,
        ))
        .unwrap();
        let mut server = Ring::new();
        for id in ids {
            server.add_node(id, 16);
        }
        for i in 0..200 {
            let key = format!("key-{i}");
            let expected: Vec<String> = server
                .preference_list(key.as_bytes(), 3)
                .into_iter()
                .map(|id| format!("{id}:7000"))
                .collect();
            assert_eq!(router.replicas(&key).collect::<Vec<_>>(), expected, "{key}");
        }
    }

    #[test]
    fn replicas_that_do_not_serve_are_skipped() {
        let router = Router::from_ring(&info(
            vec![
                node("a", NodeState::Alive, true),
                node("b", NodeState::Dead, true),
                node("c", NodeState::Leaving, true),
                node("d", NodeState::Joining, false),
            ],
            3,
        ))
        .unwrap();
        for i in 0..100 {
            let replicas: Vec<&str> = router.replicas(&format!("k{i}")).collect();
            assert_eq!(replicas.len(), 2);
            assert!(!replicas.contains(&"b:7000"));
        }
        assert_eq!(router.addresses(), HashSet::from(["a:7000", "c:7000"]));
    }

    #[test]
    fn a_ring_without_tokens_gives_no_router() {
        // The original's servers send no tokens: every request goes to the seed.
        let nodes = vec![node("a", NodeState::Alive, false)];
        assert!(Router::from_ring(&info(nodes, 3)).is_none());
        let nodes = vec![node("a", NodeState::Dead, true)];
        assert!(Router::from_ring(&info(nodes, 3)).is_none());
        // A cluster being upgraded: one serving node of an older release sends none.
        let nodes = vec![
            node("a", NodeState::Alive, true),
            node("b", NodeState::Alive, false),
        ];
        assert!(Router::from_ring(&info(nodes, 3)).is_none());
        assert!(Router::from_ring(&info(Vec::new(), 3)).is_none());
    }
}
