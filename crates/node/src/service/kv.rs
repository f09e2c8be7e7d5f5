//! `distkv.DistKV`: the client API, wire-compatible with the original.
//!
//! The original's RPCs report failures in the body (`success=false` or `found=false` plus
//! `error_message`), never as a gRPC status, because that is what its clients check. A missing
//! key is `found=false` with no error. `Scan` is new and uses gRPC status codes.

use std::sync::Arc;
use std::time::Instant;

use distkv_cluster::{Siblings, VectorClock};
use distkv_proto::distkv::{self as pb, dist_kv_server::DistKv};
use futures::StreamExt;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::consistency;
use crate::error::{NodeError, Result};
use crate::node::{Node, WriteContext};

pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    pub fn new(node: Arc<Node>) -> Self {
        KvService { node }
    }

    /// A slot for one request, or "server busy" when -max-concurrent-requests are in flight:
    /// overload is refused at once, never queued without bound.
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.node.request_slots)
            .try_acquire_owned()
            .map_err(|_| NodeError::Busy {
                limit: self.node.config().max_concurrent_requests,
            })
    }

    /// The span of one request, at `debug`: every event inside carries the node and a request
    /// id. Below `debug` (the default is `info`) the span is disabled and costs a level check,
    /// no allocation and no id.
    fn span(&self, op: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "request",
            node = %self.node.id(),
            request_id = self.node.next_request_id(),
            op
        )
    }
}

fn clock_to_proto(c: VectorClock) -> pb::VectorClock {
    pb::VectorClock {
        clocks: c.into_map().into_iter().collect(),
    }
}

/// The causal context of a put or delete: our opaque `context` bytes, or else the original's
/// `vector_clock` map, or else (a blind write, as every original client makes) the versions the
/// coordinating replica holds (see [`crate::node`]). So sequential writes without context
/// through one node overwrite, as the original's users expect, while writes that race (neither
/// saw the other) are kept as siblings.
fn resolve_context(bytes: &[u8], clock: Option<&pb::VectorClock>) -> Result<WriteContext> {
    if !bytes.is_empty() {
        return VectorClock::decode(bytes)
            .map(WriteContext::Given)
            .map_err(NodeError::BadContext);
    }
    if let Some(c) = clock.filter(|c| !c.clocks.is_empty()) {
        return Ok(WriteContext::Given(VectorClock::from_map(
            c.clocks.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        )));
    }
    Ok(WriteContext::Coordinator)
}

/// Builds a get response from the merged versions of a key.
pub fn get_response(versions: &Siblings) -> pb::GetResponse {
    let live = versions.live();
    let Some(winner) = versions.winner() else {
        return pb::GetResponse::default();
    };
    let context = versions.context();
    pb::GetResponse {
        value: winner.value.clone().unwrap_or_default(),
        found: true,
        vector_clock: Some(clock_to_proto(context.clone())),
        error_message: String::new(),
        siblings: live
            .iter()
            .map(|v| pb::Sibling {
                value: v.value.clone().unwrap_or_default(),
                vector_clock: Some(clock_to_proto(v.clock())),
                timestamp_ms: v.timestamp_ms as i64,
            })
            .collect(),
        context: context.encode(),
    }
}

impl KvService {
    async fn put_inner(&self, r: pb::PutRequest) -> Result<Siblings> {
        let _slot = self.admit()?;
        self.node.check_serving()?;
        self.node.validate_key(&r.key)?;
        self.node.validate_value(&r.value)?;
        let level = consistency(r.consistency_level, r.consistency_set);
        let context = resolve_context(&r.context, r.vector_clock.as_ref())?;
        self.node
            .coordinate_write(&r.key, Some(r.value), &context, level)
            .await
    }
}

#[tonic::async_trait]
impl DistKv for KvService {
    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let span = self.span("put");
        let reply = match self.put_inner(r).instrument(span).await {
            Ok(written) => {
                let clock = written.context();
                pb::PutResponse {
                    success: true,
                    error_message: String::new(),
                    vector_clock: Some(clock_to_proto(clock.clone())),
                    context: clock.encode(),
                }
            }
            Err(e) => pb::PutResponse {
                success: false,
                error_message: e.to_string(),
                ..Default::default()
            },
        };
        self.node.record_request("put", started, reply.success);
        Ok(Response::new(reply))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let result = async {
            let _slot = self.admit()?;
            self.node.check_serving()?;
            self.node.validate_key(&r.key)?;
            self.node
                .coordinate_read(&r.key, consistency(r.consistency_level, r.consistency_set))
                .await
        }
        .instrument(self.span("get"))
        .await;
        let reply = match result {
            Ok(versions) => {
                let reply = get_response(&versions);
                if reply.siblings.len() > 1 {
                    self.node
                        .metrics
                        .siblings_returned
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                reply
            }
            Err(e) => pb::GetResponse {
                error_message: e.to_string(),
                ..Default::default()
            },
        };
        self.node
            .record_request("get", started, reply.error_message.is_empty());
        Ok(Response::new(reply))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let result = async {
            let _slot = self.admit()?;
            self.node.check_serving()?;
            self.node.validate_key(&r.key)?;
            let level = consistency(r.consistency_level, r.consistency_set);
            let context = resolve_context(&r.context, None)?;
            self.node
                .coordinate_write(&r.key, None, &context, level)
                .await
        }
        .instrument(self.span("delete"))
        .await;
        let reply = match result {
            Ok(_) => pb::DeleteResponse {
                success: true,
                error_message: String::new(),
            },
            Err(e) => pb::DeleteResponse {
                success: false,
                error_message: e.to_string(),
            },
        };
        self.node.record_request("delete", started, reply.success);
        Ok(Response::new(reply))
    }

    async fn batch_put(
        &self,
        req: Request<pb::BatchPutRequest>,
    ) -> Result<Response<pb::BatchPutResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let max = self.node.config().max_batch_items;
        // One slot for the whole batch, held until it is done.
        let admitted = self.admit().and_then(|slot| {
            self.node.check_serving()?;
            if r.items.len() > max {
                return Err(NodeError::BatchTooLarge {
                    items: r.items.len(),
                    max,
                });
            }
            Ok(slot)
        });
        let (_slot, refused) = match admitted {
            Ok(slot) => (Some(slot), None),
            Err(e) => (None, Some(e)),
        };
        if let Some(e) = refused {
            return Ok(Response::new(pb::BatchPutResponse {
                success: false,
                error_message: e.to_string(),
                failed_keys: r.items.into_keys().collect(),
            }));
        }
        let level = consistency(r.consistency_level, r.consistency_set);
        let mut items: Vec<(String, Vec<u8>)> = r.items.into_iter().collect();
        items.sort();
        let results: Vec<(String, Result<Siblings>)> = futures::stream::iter(items)
            .map(|(key, value)| {
                let node = Arc::clone(&self.node);
                async move {
                    let res = async {
                        node.validate_key(&key)?;
                        node.validate_value(&value)?;
                        node.coordinate_write(&key, Some(value), &WriteContext::Coordinator, level)
                            .await
                    }
                    .await;
                    (key, res)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let mut failed: Vec<(String, String)> = results
            .into_iter()
            .filter_map(|(k, r)| r.err().map(|e| (k, e.to_string())))
            .collect();
        failed.sort();
        let reply = pb::BatchPutResponse {
            success: failed.is_empty(),
            error_message: failed
                .first()
                .map(|(k, e)| format!("{} of the keys failed; first, {k:?}: {e}", failed.len()))
                .unwrap_or_default(),
            failed_keys: failed.into_iter().map(|(k, _)| k).collect(),
        };
        self.node.record_request("batch", started, reply.success);
        Ok(Response::new(reply))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let started = Instant::now();
        let r = req.into_inner();
        let limit = match r.limit {
            0 => 100,
            n => n.min(10_000) as usize,
        };
        let (mut start, end) = if r.prefix.is_empty() {
            (r.start_key.into_bytes(), r.end_key.into_bytes())
        } else {
            let p = r.prefix.into_bytes();
            let end = prefix_successor(&p);
            (p, end)
        };
        if !r.page_token.is_empty() {
            let mut after = r.page_token.into_bytes();
            after.push(0);
            start = start.max(after);
        }
        let level = consistency(r.consistency_level, r.consistency_set);
        let _slot = self.admit().map_err(|e| e.to_status())?;
        self.node.check_serving().map_err(|e| e.to_status())?;
        let result = self
            .node
            .coordinate_scan(start, end, limit, level)
            .instrument(self.span("scan"))
            .await
            .map_err(|e| e.to_status());
        self.node.record_request("scan", started, result.is_ok());
        let (page, next) = result?;
        Ok(Response::new(pb::ScanResponse {
            items: page
                .into_iter()
                .map(|(key, v)| {
                    let winner = v.winner().cloned();
                    pb::KeyValue {
                        key,
                        value: winner
                            .as_ref()
                            .and_then(|w| w.value.clone())
                            .unwrap_or_default(),
                        vector_clock: Some(clock_to_proto(v.context())),
                        is_deleted: false,
                    }
                })
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

/// The smallest byte string above every string starting with `prefix` (empty: unbounded).
fn prefix_successor(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}
