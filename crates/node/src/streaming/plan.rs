//! What a join or a decommission plans to move ([`StreamPlan`]): its transfers grouped into
//! one task per source to pull from, or per target to push to, with the progress each made.
//! The plan is kept in the hint store and a restarted node resumes it.

use std::collections::BTreeMap;

use distkv_cluster::{NodeId, TokenRange, Transfer};

use distkv_proto::internal;

use crate::storage::Cursor;
use crate::transport::convert::{range_from_proto, range_to_proto};

/// One source to pull from (or target to push to) and its ranges, with the progress made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTask {
    pub peer: NodeId,
    pub ranges: Vec<TokenRange>,
    pub alternates: Vec<NodeId>,
    pub cursor: Option<Cursor>,
    pub done: bool,
    pub keys: u64,
    pub bytes: u64,
}

impl StreamTask {
    /// A task with no ranges yet and no progress.
    pub fn new(peer: NodeId, alternates: Vec<NodeId>) -> StreamTask {
        StreamTask {
            peer,
            ranges: Vec::new(),
            alternates,
            cursor: None,
            done: false,
            keys: 0,
            bytes: 0,
        }
    }
}

/// A join's or a decommission's tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamPlan {
    pub kind: String,
    pub tasks: Vec<StreamTask>,
}

/// Groups pull transfers into tasks: one per list of sources, so that a task's alternates
/// hold every one of its ranges. Sources are ordered for consistency: first the replicas the
/// change displaces (no longer replicas afterwards: they may hold writes the remaining ones
/// missed, and the new replica takes their place in reads), then the others; sources known
/// to be down go last, and `exclude`d nodes are left out.
pub fn group_pulls(
    transfers: &[Transfer],
    exclude: &[NodeId],
    displaced: impl Fn(&Transfer, &str) -> bool,
    down: impl Fn(&str) -> bool,
) -> Vec<StreamTask> {
    let mut by_sources: BTreeMap<Vec<NodeId>, StreamTask> = BTreeMap::new();
    for t in transfers {
        let mut sources: Vec<NodeId> = t
            .sources
            .iter()
            .filter(|s| !exclude.contains(s))
            .cloned()
            .collect();
        // Stable: preference order within each class.
        sources.sort_by_key(|s| (down(s), !displaced(t, s)));
        let Some(first) = sources.first().cloned() else {
            continue;
        };
        by_sources
            .entry(sources.clone())
            .or_insert_with(|| StreamTask::new(first, sources[1..].to_vec()))
            .ranges
            .push(t.range);
    }
    by_sources.into_values().collect()
}

/// Groups push transfers into tasks: one per target.
pub fn group_pushes(transfers: &[Transfer]) -> Vec<StreamTask> {
    let mut by_target: BTreeMap<NodeId, StreamTask> = BTreeMap::new();
    for t in transfers {
        by_target
            .entry(t.target.clone())
            .or_insert_with(|| StreamTask::new(t.target.clone(), Vec::new()))
            .ranges
            .push(t.range);
    }
    by_target.into_values().collect()
}

// ---- the plan as the node keeps it (protobuf, in the hint store) ----

pub fn plan_to_proto(plan: &StreamPlan) -> internal::StreamPlan {
    internal::StreamPlan {
        kind: plan.kind.clone(),
        tasks: plan
            .tasks
            .iter()
            .map(|t| internal::StreamTask {
                peer: t.peer.clone(),
                ranges: t.ranges.iter().copied().map(range_to_proto).collect(),
                alternates: t.alternates.clone(),
                has_cursor: t.cursor.is_some(),
                cursor_token: t.cursor.as_ref().map_or(0, |c| c.token),
                cursor_key: t.cursor.as_ref().map_or(String::new(), |c| c.key.clone()),
                done: t.done,
                keys: t.keys,
                bytes: t.bytes,
            })
            .collect(),
    }
}

pub fn plan_from_proto(p: internal::StreamPlan) -> StreamPlan {
    StreamPlan {
        kind: p.kind,
        tasks: p
            .tasks
            .into_iter()
            .map(|t| StreamTask {
                peer: t.peer,
                ranges: t.ranges.iter().map(range_from_proto).collect(),
                alternates: t.alternates,
                cursor: t.has_cursor.then_some(Cursor {
                    token: t.cursor_token,
                    key: t.cursor_key,
                }),
                done: t.done,
                keys: t.keys,
                bytes: t.bytes,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(start: u64, end: u64, target: &str, sources: &[&str]) -> Transfer {
        Transfer {
            range: TokenRange::new(start, end),
            target: target.into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn pulls_group_by_the_first_live_source() {
        let transfers = [
            transfer(0, 10, "d", &["a", "b", "c"]),
            transfer(10, 20, "d", &["b", "c", "a"]),
            transfer(20, 30, "d", &["a", "c", "b"]),
        ];
        // a is down; c is displaced by d in the ranges from 10 on.
        let tasks = group_pulls(
            &transfers,
            &["d".to_string()],
            |t, s| t.range.start >= 10 && s == "c",
            |n| n == "a",
        );
        let lists: Vec<Vec<&str>> = tasks
            .iter()
            .map(|t| {
                std::iter::once(t.peer.as_str())
                    .chain(t.alternates.iter().map(String::as_str))
                    .collect()
            })
            .collect();
        assert_eq!(lists, [vec!["b", "c", "a"], vec!["c", "b", "a"]]);
        assert_eq!(tasks[0].ranges, [TokenRange::new(0, 10)]);
        assert_eq!(
            tasks[1].ranges,
            [TokenRange::new(10, 20), TokenRange::new(20, 30)]
        );
        let pushes = group_pushes(&transfers);
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].ranges.len(), 3);
    }

    #[test]
    fn plans_round_trip_through_protobuf() {
        let plan = StreamPlan {
            kind: "join".into(),
            tasks: vec![StreamTask {
                peer: "a".into(),
                ranges: vec![TokenRange::new(5, 1)],
                alternates: vec!["b".into()],
                cursor: Some(Cursor {
                    token: 3,
                    key: "k".into(),
                }),
                done: false,
                keys: 4,
                bytes: 99,
            }],
        };
        assert_eq!(plan_from_proto(plan_to_proto(&plan)), plan);
    }
}
