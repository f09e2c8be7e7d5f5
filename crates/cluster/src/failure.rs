//! The failure detector: from the heartbeats a node hears, is a peer up?
//!
//! **Guarantees.** A peer whose heartbeat has not advanced for `suspect_timeout` is
//! [`Liveness::Suspect`] and for `dead_timeout` is [`Liveness::Dead`], whatever else happens;
//! a peer whose heartbeat advances is [`Liveness::Alive`] again at once. The verdict is a pure
//! function of the arrival times recorded and the time asked about, so no verdict can get
//! stuck: it is recomputed from evidence every time.
//!
//! **How.** A phi-accrual detector as Cassandra uses (Hayashibara et al., 2004), with the
//! original DistKV's timeouts as hard bounds. For each peer it keeps the last arrival of a
//! heartbeat advance and a window of recent inter-arrival times. Modelling the gaps as
//! exponentially distributed with the window's mean, the suspicion after a silence of `t` is
//! `phi = t / (mean * ln 10)`: phi 1 means a 10 % chance that the peer is still up, phi 8 one
//! in 10^8. A peer is suspected when phi passes the threshold (it adapts to how often gossip
//! brings that peer's heartbeat: fast in a small cluster, slower in a large one) or when the
//! silence reaches `suspect_timeout`, whichever comes first, but never before `min_suspect` of
//! silence (a few gossip rounds), so jitter alone cannot trigger it. A peer only ever known from
//! gossip, whose heartbeat this node has not yet seen advance, is suspect until it does.
//!
//! **Left out.** Where heartbeats come from ([`crate::gossip`]); what to do about a verdict
//! (the node routes around dead peers and keeps hints for them).

use std::collections::{BTreeMap, VecDeque};

use crate::NodeId;

/// Inter-arrival times kept per peer.
const WINDOW: usize = 100;
/// Intervals needed before phi is trusted; until then only the timeouts count.
const MIN_SAMPLES: usize = 3;

/// How up a peer looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Liveness {
    Alive,
    Suspect,
    Dead,
}

/// Thresholds, in milliseconds of the driver's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Silence after which a peer is suspect at the latest.
    pub suspect_timeout_ms: u64,
    /// Silence after which a peer is dead.
    pub dead_timeout_ms: u64,
    /// Silence below which a peer is never suspect.
    pub min_suspect_ms: u64,
    /// Phi at or above which a peer is suspect (Cassandra's default is 8).
    pub phi_threshold: f64,
}

#[derive(Clone, Debug)]
struct Arrivals {
    /// When the peer was first tracked.
    since: u64,
    /// The last heartbeat advance heard, if any.
    last: Option<u64>,
    intervals: VecDeque<u64>,
    sum: u64,
}

/// Arrival history of every peer.
#[derive(Clone, Debug)]
pub struct FailureDetector {
    cfg: DetectorConfig,
    peers: BTreeMap<NodeId, Arrivals>,
}

impl FailureDetector {
    pub fn new(cfg: DetectorConfig) -> Self {
        FailureDetector {
            cfg,
            peers: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Starts tracking `id` (known, not yet heard from) at `now`; nothing if it is tracked.
    pub fn track(&mut self, id: &str, now: u64) {
        self.peers.entry(id.to_string()).or_insert(Arrivals {
            since: now,
            last: None,
            intervals: VecDeque::new(),
            sum: 0,
        });
    }

    /// Records that `id`'s heartbeat advanced at `now`.
    pub fn heard(&mut self, id: &str, now: u64) {
        self.track(id, now);
        let Some(a) = self.peers.get_mut(id) else {
            return;
        };
        if let Some(last) = a.last {
            let gap = now.saturating_sub(last);
            if a.intervals.len() == WINDOW
                && let Some(old) = a.intervals.pop_front()
            {
                a.sum -= old;
            }
            a.intervals.push_back(gap);
            a.sum += gap;
        }
        a.last = Some(now.max(a.last.unwrap_or(0)));
    }

    /// Stops tracking `id` (it left, or restarted: a new history starts).
    pub fn forget(&mut self, id: &str) {
        self.peers.remove(id);
    }

    /// The suspicion level of `id` at `now`; 0 while there is too little history.
    pub fn phi(&self, id: &str, now: u64) -> f64 {
        let Some(a) = self.peers.get(id) else {
            return 0.0;
        };
        let Some(last) = a.last else {
            return 0.0;
        };
        if a.intervals.len() < MIN_SAMPLES {
            return 0.0;
        }
        let mean = (a.sum as f64 / a.intervals.len() as f64).max(1.0);
        now.saturating_sub(last) as f64 / (mean * std::f64::consts::LN_10)
    }

    /// Milliseconds since `id`'s heartbeat last advanced (or since it was first tracked).
    pub fn silence(&self, id: &str, now: u64) -> Option<u64> {
        self.peers
            .get(id)
            .map(|a| now.saturating_sub(a.last.unwrap_or(a.since)))
    }

    /// The verdict on `id` at `now`. An untracked peer is suspect.
    pub fn verdict(&self, id: &str, now: u64) -> Liveness {
        let Some(a) = self.peers.get(id) else {
            return Liveness::Suspect;
        };
        let silence = now.saturating_sub(a.last.unwrap_or(a.since));
        if silence >= self.cfg.dead_timeout_ms {
            return Liveness::Dead;
        }
        if a.last.is_none() || silence >= self.cfg.suspect_timeout_ms {
            return Liveness::Suspect;
        }
        if silence >= self.cfg.min_suspect_ms && self.phi(id, now) >= self.cfg.phi_threshold {
            return Liveness::Suspect;
        }
        Liveness::Alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> FailureDetector {
        FailureDetector::new(DetectorConfig {
            suspect_timeout_ms: 30_000,
            dead_timeout_ms: 120_000,
            min_suspect_ms: 2_000,
            phi_threshold: 8.0,
        })
    }

    #[test]
    fn silence_makes_a_peer_suspect_then_dead_and_a_heartbeat_revives_it() {
        let mut d = detector();
        d.track("p", 0);
        assert_eq!(d.verdict("p", 0), Liveness::Suspect, "not heard yet");
        assert_eq!(d.verdict("p", 120_000), Liveness::Dead);
        d.heard("p", 120_000);
        assert_eq!(d.verdict("p", 120_001), Liveness::Alive);
        // Heartbeats every second: phi needs about 18.4 s of silence to reach 8.
        for t in 1..=20 {
            d.heard("p", 120_000 + t * 1000);
        }
        let last = 140_000;
        assert_eq!(d.verdict("p", last + 10_000), Liveness::Alive);
        assert!((d.phi("p", last + 10_000) - 4.34).abs() < 0.01);
        assert_eq!(d.verdict("p", last + 19_000), Liveness::Suspect);
        assert_eq!(d.verdict("p", last + 119_999), Liveness::Suspect);
        assert_eq!(d.verdict("p", last + 120_000), Liveness::Dead);
        d.heard("p", last + 500_000);
        assert_eq!(d.verdict("p", last + 500_000), Liveness::Alive);
    }

    #[test]
    fn the_suspect_timeout_bounds_phi_and_the_floor_bounds_jitter() {
        let mut d = FailureDetector::new(DetectorConfig {
            suspect_timeout_ms: 3_000,
            dead_timeout_ms: 10_000,
            min_suspect_ms: 2_000,
            phi_threshold: 8.0,
        });
        // Slow heartbeats (every 5 s) would let phi wait 92 s; the timeout says 3 s.
        for t in 0..10 {
            d.heard("slow", t * 5_000);
        }
        assert_eq!(d.verdict("slow", 45_000 + 2_999), Liveness::Alive);
        assert_eq!(d.verdict("slow", 45_000 + 3_000), Liveness::Suspect);
        assert_eq!(d.verdict("slow", 45_000 + 10_000), Liveness::Dead);
        // Very fast heartbeats (every 10 ms) would let phi fire after 200 ms: not before 2 s.
        for t in 0..50 {
            d.heard("fast", t * 10);
        }
        assert!(d.phi("fast", 490 + 1_000) > 8.0);
        assert_eq!(d.verdict("fast", 490 + 1_000), Liveness::Alive);
        assert_eq!(d.verdict("fast", 490 + 2_000), Liveness::Suspect);
    }

    #[test]
    fn unknown_and_forgotten_peers() {
        let mut d = detector();
        assert_eq!(d.verdict("x", 5), Liveness::Suspect);
        assert_eq!(d.phi("x", 5), 0.0);
        d.heard("x", 10);
        d.forget("x");
        assert_eq!(d.silence("x", 20), None);
        d.track("x", 100);
        assert_eq!(d.silence("x", 150), Some(50));
    }
}
