//! What the workers drive: a DistKV cluster, through a token-aware [`ClusterClient`] (each
//! key's requests straight to a replica of it) or through the node each worker was given; or,
//! for comparison on the same load (as YCSB does with its bindings), a Redis server or an
//! etcd cluster: gets and plain sets or puts of the same keys and values.

use std::fmt;

use crate::client::Client;
use crate::routing::ClusterClient;
use crate::types::Consistency;

/// A failed request to any target.
pub type OpError = Box<dyn std::error::Error + Send + Sync>;

/// The store under test (`-target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// DistKV at the `-server` nodes.
    DistKv,
    /// A Redis server: `redis://host:port` (any URL the `redis` crate takes).
    Redis(String),
    /// An etcd cluster: its client endpoints, `http://host:port` each.
    Etcd(Vec<String>),
}

impl Target {
    /// `distkv`, `redis://host:port` or `etcd://host:port,host:port,...`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        if s.is_empty() || s == "distkv" {
            return Ok(Target::DistKv);
        }
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            return Ok(Target::Redis(s.to_string()));
        }
        if let Some(rest) = s.strip_prefix("etcd://") {
            let endpoints: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| format!("http://{e}"))
                .collect();
            if endpoints.is_empty() {
                return Err("-target etcd:// names no endpoint".to_string());
            }
            return Ok(Target::Etcd(endpoints));
        }
        Err(format!(
            "-target must be distkv, redis://host:port or etcd://host:port,..., got {s:?}"
        ))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::DistKv => f.write_str("distkv"),
            Target::Redis(url) => f.write_str(url),
            Target::Etcd(endpoints) => {
                let hosts: Vec<&str> = endpoints
                    .iter()
                    .map(|e| e.trim_start_matches("http://"))
                    .collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
        }
    }
}

/// One connection of the benchmark.
#[derive(Clone)]
pub enum Conn {
    /// Every request to one node, which coordinates or forwards it.
    Node(Box<Client>),
    /// Each key's requests to a replica of it.
    Routed(ClusterClient),
    /// A multiplexed Redis connection: GET and SET.
    Redis(redis::aio::MultiplexedConnection),
    /// An etcd KV client: linearizable range reads and puts.
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd_client::KvClient>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conn::Node(c) => f.debug_tuple("Node").field(&c.server()).finish(),
            Conn::Routed(c) => f.debug_tuple("Routed").field(c).finish(),
            Conn::Redis(_) => f.write_str("Redis"),
            #[cfg(feature = "etcd")]
            Conn::Etcd(_) => f.write_str("Etcd"),
        }
    }
}

impl Conn {
    /// Connects to a peer target (DistKV connections are made by the caller).
    pub async fn connect_peer(target: &Target) -> Result<Conn, OpError> {
        match target {
            Target::DistKv => Err("a DistKV target connects through its -server nodes".into()),
            Target::Redis(url) => {
                let client = redis::Client::open(url.as_str())?;
                Ok(Conn::Redis(
                    client.get_multiplexed_async_connection().await?,
                ))
            }
            #[cfg(feature = "etcd")]
            Target::Etcd(endpoints) => {
                let client = etcd_client::Client::connect(endpoints, None).await?;
                Ok(Conn::Etcd(Box::new(client.kv_client())))
            }
            #[cfg(not(feature = "etcd"))]
            Target::Etcd(_) => Err("this distkv-bench was built without etcd support: \
                                    build it with `--features etcd` (needs protoc)"
                .into()),
        }
    }

    pub async fn get(&self, key: String, consistency: Option<Consistency>) -> Result<(), OpError> {
        match self {
            Conn::Node(c) => c.get(key, consistency).await.map(drop)?,
            Conn::Routed(c) => c.get(key, consistency).await.map(drop)?,
            Conn::Redis(c) => {
                let _: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut c.clone())
                    .await?;
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                c.as_ref().clone().get(key, None).await?;
            }
        }
        Ok(())
    }

    pub async fn put(
        &self,
        key: String,
        value: Vec<u8>,
        consistency: Option<Consistency>,
    ) -> Result<(), OpError> {
        match self {
            Conn::Node(c) => c.put(key, value, consistency, None).await.map(drop)?,
            Conn::Routed(c) => c.put(key, value, consistency, None).await.map(drop)?,
            Conn::Redis(c) => {
                let () = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .query_async(&mut c.clone())
                    .await?;
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                c.as_ref().clone().put(key, value, None).await?;
            }
        }
        Ok(())
    }

    /// Writes `items` in one request where the target has one (DistKV's batch put, Redis's
    /// MSET, an etcd transaction); returns how many failed.
    pub async fn put_many(
        &self,
        items: Vec<(String, Vec<u8>)>,
        consistency: Option<Consistency>,
    ) -> Result<u64, OpError> {
        let len = items.len() as u64;
        match self {
            Conn::Node(c) => batch_put(c, items, consistency).await,
            Conn::Routed(c) => batch_put(c.seed(), items, consistency).await,
            Conn::Redis(c) => {
                let mut mset = redis::cmd("MSET");
                for (k, v) in items {
                    mset.arg(k).arg(v);
                }
                let () = mset.query_async(&mut c.clone()).await?;
                Ok(0)
            }
            #[cfg(feature = "etcd")]
            Conn::Etcd(c) => {
                let puts: Vec<etcd_client::TxnOp> = items
                    .into_iter()
                    .map(|(k, v)| etcd_client::TxnOp::put(k, v, None))
                    .collect();
                let reply = c
                    .clone()
                    .txn(etcd_client::Txn::new().and_then(puts))
                    .await?;
                Ok(if reply.succeeded() { 0 } else { len })
            }
        }
        .map(|failed: u64| failed.min(len))
    }
}

async fn batch_put(
    client: &Client,
    items: Vec<(String, Vec<u8>)>,
    consistency: Option<Consistency>,
) -> Result<u64, OpError> {
    let len = items.len() as u64;
    let result = client.batch_put(items, consistency).await?;
    Ok(if result.success {
        0
    } else if !result.failed_keys.is_empty() {
        result.failed_keys.len() as u64
    } else {
        len
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("distkv"), Ok(Target::DistKv));
        assert_eq!(Target::parse(""), Ok(Target::DistKv));
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379"),
            Ok(Target::Redis("redis://127.0.0.1:6379".into()))
        );
        let etcd = Target::parse("etcd://127.0.0.1:2379, 127.0.0.1:22379").unwrap();
        assert_eq!(
            etcd,
            Target::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.1:22379".into()
            ])
        );
        assert_eq!(etcd.to_string(), "etcd://127.0.0.1:2379,127.0.0.1:22379");
        assert!(Target::parse("etcd://").is_err());
        assert!(
            Target::parse("mysql://x")
                .unwrap_err()
                .contains("-target must be")
        );
    }
}
