//! The store over a real engine: limits, the index, tombstone purge, an old directory.

use super::*;
use distkv_cluster::TokenRange;

fn store(dir: &Path) -> Store {
    let opts = Options {
        memtable_bytes: 64 << 10,
        ..Options::default()
    };
    Store::open(dir, opts, ConflictMode::Siblings).unwrap()
}

fn value(v: &str, node: &str, counter: u64, ts: u64) -> Siblings {
    Siblings::new().write(
        Dot::new(node, counter),
        &VectorClock::new(),
        Some(v.as_bytes().to_vec()),
        ts,
        ConflictMode::Siblings,
    )
}

#[tokio::test]
async fn too_many_large_concurrent_versions_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_bytes: 64 << 10,
        max_value_bytes: 5000,
        ..Options::default()
    };
    let s = Store::open(dir.path(), opts, ConflictMode::Siblings).unwrap();
    let big = "x".repeat(2000);
    // Two concurrent writes fit; a third does not, and the error says why.
    s.merge("k".into(), value(&big, "n1", 1, 1)).await.unwrap();
    s.merge("k".into(), value(&big, "n2", 1, 2)).await.unwrap();
    let e = s
        .merge("k".into(), value(&big, "n3", 1, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(e, NodeError::TooManyVersions { versions: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("resolve them with a put"), "{e}");
    assert_eq!(s.read("k".into()).await.unwrap().versions().len(), 2);
}

#[tokio::test]
async fn the_index_follows_every_write_in_token_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut want = Vec::new();
    for i in 0..300 {
        let k = format!("key-{i}");
        let v = value("x", "n1", i + 1, 10);
        s.merge(k.clone(), v.clone()).await.unwrap();
        want.push((key_token(k.as_bytes()), k, versions_digest(&v)));
    }
    want.sort();
    let all = RangeSet::new(&[TokenRange::new(0, 0)]);
    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let (page, more) = s.index_page(all.clone(), cursor.clone(), 7).await.unwrap();
        for e in &page {
            got.push((e.token, e.key.clone(), e.digest));
        }
        cursor = page.last().map(|e| Cursor {
            token: e.token,
            key: e.key.clone(),
        });
        if !more {
            break;
        }
    }
    assert_eq!(got, want);
    // A range holds exactly the keys whose tokens fall in it, wrapping included.
    let mid = want[150].0;
    let ranges = RangeSet::new(&[TokenRange::new(mid, want[10].0)]);
    let (page, more) = s.index_page(ranges.clone(), None, 1000).await.unwrap();
    assert!(!more);
    let expect: Vec<&String> = want
        .iter()
        .filter(|(t, _, _)| ranges.contains(*t))
        .map(|(_, k, _)| k)
        .collect();
    assert_eq!(page.iter().map(|e| &e.key).collect::<Vec<_>>(), expect);
    // Scans of user keys never see the index.
    let (keys, _) = s
        .scan(Vec::new(), Vec::new(), 1000, usize::MAX)
        .await
        .unwrap();
    assert_eq!(keys.len(), 300);
    // A byte budget cuts the page (after at least one key) and says there is more.
    let (few, more) = s.scan(Vec::new(), Vec::new(), 1000, 1).await.unwrap();
    assert_eq!((few.len(), more), (1, true));
}

#[tokio::test]
async fn old_tombstones_are_purged_and_live_keys_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let live = value("v", "n1", 1, 100);
    s.merge("live".into(), live.clone()).await.unwrap();
    let dead = live.write(
        Dot::new("n1", 2),
        &live.context(),
        None,
        200,
        ConflictMode::Siblings,
    );
    s.merge("dead".into(), dead).await.unwrap();
    let all = RangeSet::new(&[TokenRange::new(0, 0)]);
    let (page, _) = s.index_page(all.clone(), None, 10).await.unwrap();
    let ts: std::collections::BTreeMap<String, u64> =
        page.into_iter().map(|e| (e.key, e.tombstone_ms)).collect();
    assert_eq!(ts["live"], 0);
    assert_eq!(ts["dead"], 200);
    // Not yet old enough, then old enough; the live key never.
    let keys = vec!["dead".to_string(), "live".to_string()];
    assert_eq!(s.purge_tombstones(keys.clone(), 200).await.unwrap(), 0);
    assert_eq!(s.purge_tombstones(keys, 201).await.unwrap(), 1);
    assert!(s.read("dead".into()).await.unwrap().is_empty());
    let (page, _) = s.index_page(all, None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
}

#[tokio::test]
async fn an_index_is_built_for_a_directory_written_without_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.put(b"old-key", &value("v", "n1", 1, 5).encode())
            .unwrap();
        db.close().unwrap();
    }
    let s = store(dir.path());
    let all = RangeSet::new(&[TokenRange::new(0, 0)]);
    let (page, _) = s.index_page(all, None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].key, "old-key");
    assert_eq!(page[0].token, key_token(b"old-key"));
}
