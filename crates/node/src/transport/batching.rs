//! Replica calls to one peer (writes, reads), batched while that peer is busy.
//!
//! Up to [`CallQueues::max_in_flight`] calls of a kind to a peer run at once, each carrying
//! one request as before. A request that finds that many in flight waits in the peer's
//! queue; when a call ends, everything queued by then leaves as the next call, one batch. So
//! a lightly loaded peer sees the same single calls with no added wait, and a busy one sees
//! fewer, larger calls (fewer HTTP/2 streams, protobuf envelopes and task wake-ups per
//! request; writes share the replica's group commit). Nothing waits on a timer. This module
//! keeps the queues; the transport sends.
//!
//! One call in flight per peer and kind measured best: on 3 nodes under a mixed load, server
//! CPU per operation 211 µs with one, 223 with two, 273 without batching; p99 lower too.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{NodeError, Result};

/// How many calls of a kind to one peer may be in flight before requests queue up.
pub const MAX_IN_FLIGHT: usize = 1;

/// A request waiting for a call to its peer.
pub struct Queued<Q, A> {
    pub request: Q,
    done: oneshot::Sender<Result<A>>,
}

impl<Q, A> Queued<Q, A> {
    /// Tells the request's caller how it ended.
    pub fn finish(self, result: Result<A>) {
        let _ = self.done.send(result);
    }

    /// The request, and what answers its caller.
    pub fn split(self) -> (Q, Answer<A>) {
        (self.request, Answer(self.done))
    }
}

/// Answers the caller of a request taken out of the queue.
pub struct Answer<A>(oneshot::Sender<Result<A>>);

impl<A> Answer<A> {
    pub fn finish(self, result: Result<A>) {
        let _ = self.0.send(result);
    }
}

/// What a request does next.
pub enum Turn<A> {
    /// Send it now, alone; call [`CallQueues::finished`] when the call ends.
    SendNow,
    /// It is queued: the answer comes when a later batch carrying it ends.
    Queued(oneshot::Receiver<Result<A>>),
}

struct Peer<Q, A> {
    in_flight: usize,
    /// Requests waiting; not empty only while `in_flight` is at the limit.
    waiting: Vec<Queued<Q, A>>,
}

/// The queues of one kind of call (requests `Q`, answers `A`) to every peer, by address.
pub struct CallQueues<Q, A> {
    peers: Mutex<HashMap<String, Peer<Q, A>>>,
    max_in_flight: usize,
}

impl<Q, A> Default for CallQueues<Q, A> {
    fn default() -> Self {
        CallQueues::new(MAX_IN_FLIGHT)
    }
}

impl<Q, A> CallQueues<Q, A> {
    pub fn new(max_in_flight: usize) -> Self {
        CallQueues {
            peers: Mutex::new(HashMap::new()),
            max_in_flight: max_in_flight.max(1),
        }
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// A request for the peer at `address`: sent now when the peer has room, else queued
    /// (`request()` is then kept in the queue).
    pub fn enqueue(&self, address: &str, request: impl FnOnce() -> Q) -> Turn<A> {
        let mut peers = self.peers.lock();
        let peer = match peers.get_mut(address) {
            Some(p) => p,
            None => peers.entry(address.to_string()).or_insert(Peer {
                in_flight: 0,
                waiting: Vec::new(),
            }),
        };
        if peer.in_flight < self.max_in_flight {
            peer.in_flight += 1;
            return Turn::SendNow;
        }
        let (done, answer) = oneshot::channel();
        peer.waiting.push(Queued {
            request: request(),
            done,
        });
        Turn::Queued(answer)
    }

    /// Queues `request` for the next batch to the peer at `address` if a call of this kind to
    /// it is in flight (it then rides along with the others), else gives it back.
    pub fn join_if_busy(
        &self,
        address: &str,
        request: Q,
    ) -> std::result::Result<oneshot::Receiver<Result<A>>, Q> {
        let mut peers = self.peers.lock();
        match peers.get_mut(address) {
            Some(peer) if peer.in_flight >= self.max_in_flight => {
                let (done, answer) = oneshot::channel();
                peer.waiting.push(Queued { request, done });
                Ok(answer)
            }
            _ => Err(request),
        }
    }

    /// A call to the peer at `address` ended: the requests queued meanwhile, to send as the
    /// next batch in the same slot (then call this again when it ends), or `None` when there
    /// are none and the slot is free.
    pub fn finished(&self, address: &str) -> Option<Vec<Queued<Q, A>>> {
        let mut peers = self.peers.lock();
        let peer = peers.get_mut(address)?;
        // A request whose caller is gone (its future was dropped) is not sent.
        peer.waiting.retain(|q| !q.done.is_closed());
        if peer.waiting.is_empty() {
            peer.in_flight = peer.in_flight.saturating_sub(1);
            if peer.in_flight == 0 {
                peers.remove(address);
            }
            return None;
        }
        Some(std::mem::take(&mut peer.waiting))
    }
}

/// Requests that may wait to share a call (reads for read repair only): gathered per peer until
/// the first one's wait is over, then sent together. Nothing here keeps time: the caller that
/// gets `first` waits, then takes the peer's requests.
pub struct Gathered<Q, A> {
    peers: Mutex<HashMap<String, Vec<Queued<Q, A>>>>,
}

impl<Q, A> Default for Gathered<Q, A> {
    fn default() -> Self {
        Gathered {
            peers: Mutex::new(HashMap::new()),
        }
    }
}

impl<Q, A> Gathered<Q, A> {
    /// Adds `request` for the peer at `address`: its answer, and whether it is the first one
    /// gathered for that peer (whose caller sends them all once its wait is over).
    pub fn add(&self, address: &str, request: Q) -> (oneshot::Receiver<Result<A>>, bool) {
        let (done, answer) = oneshot::channel();
        let mut peers = self.peers.lock();
        let waiting = peers.entry(address.to_string()).or_default();
        waiting.push(Queued { request, done });
        (answer, waiting.len() == 1)
    }

    /// The requests gathered for the peer at `address` (its next request starts a new group).
    pub fn take(&self, address: &str) -> Vec<Queued<Q, A>> {
        let mut batch = self.peers.lock().remove(address).unwrap_or_default();
        // A request whose caller is gone is not sent.
        batch.retain(|q| !q.done.is_closed());
        batch
    }
}

/// Waits for a queued request's answer.
pub async fn answer<A>(queued: oneshot::Receiver<Result<A>>) -> Result<A> {
    queued.await.unwrap_or(Err(NodeError::ShuttingDown))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Writes = CallQueues<(&'static str, u8), ()>;

    fn queued(turn: Turn<()>) -> oneshot::Receiver<Result<()>> {
        match turn {
            Turn::Queued(rx) => rx,
            Turn::SendNow => panic!("expected the write to wait"),
        }
    }

    #[test]
    fn writes_go_alone_until_the_limit_then_wait_for_the_next_batch() {
        let q = Writes::new(2);
        assert!(matches!(q.enqueue("p", || ("a", 1)), Turn::SendNow));
        assert!(matches!(q.enqueue("p", || ("b", 2)), Turn::SendNow));
        // Another peer has its own slots.
        assert!(matches!(q.enqueue("other", || ("x", 9)), Turn::SendNow));
        let mut c = queued(q.enqueue("p", || ("c", 3)));
        let mut d = queued(q.enqueue("p", || ("d", 4)));
        // The first call ends: c and d leave together, in the freed slot.
        let batch = q.finished("p").unwrap();
        let keys: Vec<&str> = batch.iter().map(|w| w.request.0).collect();
        assert_eq!(keys, ["c", "d"]);
        assert_eq!(batch[1].request.1, 4);
        // No slot is free.
        let _e = queued(q.enqueue("p", || ("e", 5)));
        for w in batch {
            w.finish(Ok(()));
        }
        assert!(c.try_recv().unwrap().is_ok());
        assert!(d.try_recv().unwrap().is_ok());
        // The batch's call ends: e goes next; then the slots empty one by one.
        assert_eq!(q.finished("p").unwrap().len(), 1);
        assert!(q.finished("p").is_none());
        assert!(q.finished("p").is_none());
        assert!(matches!(q.enqueue("p", || ("f", 6)), Turn::SendNow));
    }

    #[test]
    fn requests_whose_callers_are_gone_are_not_sent() {
        let q = Writes::new(1);
        assert!(matches!(q.enqueue("p", || ("a", 1)), Turn::SendNow));
        drop(queued(q.enqueue("p", || ("b", 2))));
        let _c = queued(q.enqueue("p", || ("c", 3)));
        let batch = q.finished("p").unwrap();
        assert_eq!(batch.iter().map(|w| w.request.0).collect::<Vec<_>>(), ["c"]);
        drop(batch);
        drop(queued(q.enqueue("p", || ("d", 4))));
        assert!(
            q.finished("p").is_none(),
            "only a gone caller was waiting: the slot frees"
        );
    }

    #[test]
    fn a_request_joins_the_next_batch_only_while_a_call_is_in_flight() {
        let q = Writes::new(1);
        // Idle peer: given back.
        assert_eq!(q.join_if_busy("p", ("a", 1)).unwrap_err(), ("a", 1));
        assert!(matches!(q.enqueue("p", || ("b", 2)), Turn::SendNow));
        let _c = q.join_if_busy("p", ("c", 3)).unwrap();
        let batch = q.finished("p").unwrap();
        assert_eq!(batch.iter().map(|w| w.request.0).collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn gathered_requests_leave_together_and_the_next_one_starts_a_new_group() {
        let g = Gathered::<&str, ()>::default();
        let (_a, first) = g.add("p", "a");
        assert!(first);
        let (_b, first) = g.add("p", "b");
        assert!(!first);
        let (gone, _) = g.add("p", "c");
        drop(gone);
        // Another peer has its own group.
        assert!(g.add("q", "x").1);
        let batch = g.take("p");
        assert_eq!(
            batch.iter().map(|q| q.request).collect::<Vec<_>>(),
            ["a", "b"],
            "a request whose caller is gone is not sent"
        );
        assert!(g.take("p").is_empty());
        assert!(
            g.add("p", "d").1,
            "after a take, the next request starts a group"
        );
    }

    #[tokio::test]
    async fn a_dropped_batch_answers_its_writes_with_an_error() {
        let q = Writes::new(1);
        assert!(matches!(q.enqueue("p", || ("a", 1)), Turn::SendNow));
        let waiting = queued(q.enqueue("p", || ("b", 2)));
        drop(q.finished("p"));
        assert!(matches!(
            answer(waiting).await,
            Err(NodeError::ShuttingDown)
        ));
    }
}
