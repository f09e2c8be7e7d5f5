//! Backups end to end: a node writes one while it serves; a node restored from it holds
//! exactly what it held then, and catches up with the cluster through repair.

mod common;

use common::{Cluster, put};
use distkv_proto::distkv::{self as pb, ConsistencyLevel};
use distkv_proto::internal::ReplicaReadRequest;

/// Whether node `i` itself stores `key` (asked directly, not through a coordinator).
async fn stored_on(c: &Cluster, i: usize, key: &str) -> bool {
    let mut r = c.replica(i).await;
    r.read(ReplicaReadRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner()
        .found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_a_backup_holds_its_data_and_catches_up() {
    let mut c = Cluster::start(3, &["-anti-entropy-interval=0s"]).await;
    let mut kv = c.kv(0).await;
    for i in 0..200 {
        let r = put(
            &mut kv,
            &format!("before-{i:03}"),
            "v",
            Some(ConsistencyLevel::All),
        )
        .await;
        assert!(r.success, "{}", r.error_message);
    }

    let mut admin = c.admin(0).await;
    let b = admin
        .backup(pb::BackupRequest {
            name: "nightly".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(b.success, "{}", b.error_message);
    assert_eq!((b.name.as_str(), b.node_id.as_str()), ("nightly", "node1"));
    assert!(b.files > 0 && b.bytes > 0, "{b:?}");
    let backup = c.nodes[0].dir.join("backups/nightly");
    assert_eq!(
        std::path::Path::new(&b.path),
        std::path::absolute(&backup).unwrap()
    );
    let description = std::fs::read_to_string(backup.join("BACKUP.json")).unwrap();
    assert!(
        description.contains("\"node_id\": \"node1\""),
        "{description}"
    );
    assert!(backup.join("members.pb").exists());

    // The same name again, and a name that could escape the directory, are refused.
    for (name, why) in [("nightly", "already exists"), ("../x", "use letters")] {
        let r = admin
            .backup(pb::BackupRequest { name: name.into() })
            .await
            .unwrap()
            .into_inner();
        assert!(!r.success && r.error_message.contains(why), "{name}: {r:?}");
    }
    // Without a name, the node's UTC time.
    let r = admin
        .backup(pb::BackupRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.success && r.name.ends_with('Z') && r.name.len() == 16,
        "{r:?}"
    );

    // Writes after the backup, then node1 restored from it.
    for i in 0..50 {
        let r = put(
            &mut kv,
            &format!("after-{i:03}"),
            "v",
            Some(ConsistencyLevel::All),
        )
        .await;
        assert!(r.success, "{}", r.error_message);
    }
    c.kill(0);
    let dir = c.nodes[0].dir.clone();
    for part in ["storage", "hints"] {
        std::fs::remove_dir_all(dir.join(part)).unwrap();
        copy_dir(&backup.join(part), &dir.join(part));
    }
    c.restart(0).await;
    for i in (0..200).step_by(7) {
        assert!(
            stored_on(&c, 0, &format!("before-{i:03}")).await,
            "before-{i:03} lost"
        );
    }
    assert!(
        !stored_on(&c, 0, "after-000").await,
        "the restore kept newer data"
    );

    // Repair brings what the cluster took meanwhile.
    let r = c
        .admin(0)
        .await
        .repair(pb::RepairRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(r.success, "{}", r.error_message);
    assert!(r.keys_repaired >= 50, "{r:?}");
    for i in 0..50 {
        assert!(
            stored_on(&c, 0, &format!("after-{i:03}")).await,
            "after-{i:03} missing"
        );
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
