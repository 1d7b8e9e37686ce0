//! The writer on a real directory: batches of every shape, proofs against published
//! checkpoints, the C2SP tile layout, reopening, and corruption detection.

use lockgate_log::checkpoint::{Checkpoint, LogSigningKey};
use lockgate_log::log::{Log, LogReader};
use lockgate_log::merkle::*;
use lockgate_log::storage::{DirStorage, Storage};

fn entry(i: u64) -> Vec<u8> {
    format!(
        "{{\"entry\":{i},\"pad\":\"{}\"}}",
        "x".repeat((i % 37) as usize)
    )
    .into_bytes()
}

#[test]
fn batches_publish_verifiable_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = LogSigningKey::generate("log.test/batches").unwrap();
    let mut log = Log::create(DirStorage::new(dir.path()).unwrap(), key, vkey.clone()).unwrap();
    let mut all: Vec<Hash> = Vec::new();
    let mut previous: Option<(u64, Hash)> = None;
    let mut next = 0u64;
    for batch in [1u64, 2, 253, 1, 256, 300, 511, 1, 3000] {
        let entries: Vec<Vec<u8>> = (next..next + batch).map(entry).collect();
        all.extend(entries.iter().map(|e| leaf_hash(e)));
        let appended = log.append(&entries).unwrap();
        assert_eq!(appended.first_index, next);
        next += batch;
        assert_eq!(appended.size, next);

        let cp = Checkpoint::verify(&appended.checkpoint, &vkey).unwrap();
        assert_eq!(cp.size, next);
        assert_eq!(cp.root, root_of(&all), "root after {next}");

        let reader = LogReader::new(log.storage());
        for index in [0, next / 2, next - 1] {
            let proof = reader.inclusion_proof(index, next).unwrap();
            verify_inclusion(index, next, &all[index as usize], &proof, &cp.root).unwrap();
            assert_eq!(reader.entry(index, next).unwrap(), entry(index));
        }
        if let Some((old, old_root)) = previous {
            let proof = reader.consistency_proof(old, next).unwrap();
            verify_consistency(old, next, &proof, &old_root, &cp.root).unwrap();
        }
        previous = Some((next, cp.root));
    }
    LogReader::new(log.storage()).audit(&vkey).unwrap();
}

#[test]
fn reopening_continues_the_same_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = LogSigningKey::generate("log.test/reopen").unwrap();
    let skey = key.to_note_key().to_string();
    let mut log = Log::create(DirStorage::new(dir.path()).unwrap(), key, vkey.clone()).unwrap();
    let first: Vec<Vec<u8>> = (0..300).map(entry).collect();
    log.append(&first).unwrap();
    let root_before = log.root();
    drop(log);

    let mut log = Log::open(
        DirStorage::new(dir.path()).unwrap(),
        LogSigningKey::parse(&skey).unwrap(),
        vkey.clone(),
    )
    .unwrap();
    assert_eq!((log.size(), log.root()), (300, root_before));
    let second: Vec<Vec<u8>> = (300..700).map(entry).collect();
    log.append(&second).unwrap();
    let all: Vec<Hash> = (0..700).map(|i| leaf_hash(&entry(i))).collect();
    assert_eq!(log.root(), root_of(&all));
    LogReader::new(log.storage()).audit(&vkey).unwrap();
}

#[test]
fn tiles_follow_the_c2sp_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = LogSigningKey::generate("log.test/layout").unwrap();
    let mut log = Log::create(DirStorage::new(dir.path()).unwrap(), key, vkey).unwrap();
    let entries: Vec<Vec<u8>> = (0..70_000u64).map(|i| i.to_be_bytes().to_vec()).collect();
    log.append(&entries).unwrap();
    let s = log.storage();
    // The spec's example for a tree of 70,000 entries.
    assert!(s.read("tile/0/272").unwrap().is_some());
    assert_eq!(s.read("tile/0/273.p/112").unwrap().unwrap().len(), 112 * 32);
    assert_eq!(s.read("tile/1/000").unwrap().unwrap().len(), 256 * 32);
    assert_eq!(s.read("tile/1/001.p/17").unwrap().unwrap().len(), 17 * 32);
    assert_eq!(s.read("tile/2/000.p/1").unwrap().unwrap().len(), 32);
    assert!(s.read("tile/entries/273.p/112").unwrap().is_some());
    // A level-1 hash is the root of the full level-0 tile below it.
    let level0: Vec<Hash> = (0..256u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    assert_eq!(
        &s.read("tile/1/000").unwrap().unwrap()[..32],
        root_of(&level0).as_slice()
    );
}

#[test]
fn corruption_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = LogSigningKey::generate("log.test/corrupt").unwrap();
    let skey = key.to_note_key().to_string();
    let mut log = Log::create(DirStorage::new(dir.path()).unwrap(), key, vkey.clone()).unwrap();
    log.append(&(0..600).map(entry).collect::<Vec<_>>())
        .unwrap();
    drop(log);

    // A changed entry: the audit re-hashes entries and finds it.
    let bundle = dir.path().join("tile/entries/000");
    let mut bytes = std::fs::read(&bundle).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&bundle, &bytes).unwrap();
    let storage = DirStorage::new(dir.path()).unwrap();
    assert!(LogReader::new(&storage).audit(&vkey).is_err());
    bytes[5] ^= 1;
    std::fs::write(&bundle, &bytes).unwrap();
    LogReader::new(&storage).audit(&vkey).unwrap();

    // A changed tile: opening the log notices that the root no longer matches.
    let tile = dir.path().join("tile/0/002.p/88");
    let mut t = std::fs::read(&tile).unwrap();
    t[0] ^= 1;
    std::fs::write(&tile, &t).unwrap();
    assert!(
        Log::open(
            DirStorage::new(dir.path()).unwrap(),
            LogSigningKey::parse(&skey).unwrap(),
            vkey.clone()
        )
        .is_err()
    );
    assert!(LogReader::new(&storage).audit(&vkey).is_err());
}

#[test]
fn oversized_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = LogSigningKey::generate("log.test/limits").unwrap();
    let mut log = Log::create(DirStorage::new(dir.path()).unwrap(), key, vkey).unwrap();
    assert!(log.append(&[vec![0; 70_000]]).is_err());
    assert_eq!(log.size(), 0);
}

#[test]
fn concurrent_writers_are_batched_into_one_consistent_tree() {
    use lockgate_log::batch::Batcher;
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = LogSigningKey::generate("log.test/batcher").unwrap();
    let log = Log::create(DirStorage::new(dir.path()).unwrap(), key, vkey.clone()).unwrap();
    let published = Arc::new(Mutex::new(Vec::new()));
    let seen = published.clone();
    let batcher = Batcher::spawn(
        log,
        std::time::Duration::from_millis(50),
        10_000,
        Box::new(move |a, entries| seen.lock().unwrap().push((a.first_index, entries.len()))),
    );
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let b = batcher.clone();
            std::thread::spawn(move || {
                (0..100u64)
                    .map(|i| {
                        let data = format!("writer {t} entry {i}").into_bytes();
                        let (index, appended) = b.submit(data.clone()).unwrap();
                        (index, data, appended)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // Every entry got a distinct index, and its receipt's checkpoint proves it.
    let mut indexes: Vec<u64> = results.iter().map(|r| r.0).collect();
    indexes.sort();
    assert_eq!(indexes, (0..800).collect::<Vec<_>>());
    let storage = DirStorage::new(dir.path()).unwrap();
    let reader = LogReader::new(&storage);
    for (index, data, appended) in results.iter().step_by(37) {
        let cp = Checkpoint::verify(&appended.checkpoint, &vkey).unwrap();
        let proof = reader.inclusion_proof(*index, cp.size).unwrap();
        verify_inclusion(*index, cp.size, &leaf_hash(data), &proof, &cp.root).unwrap();
    }
    let batches = published.lock().unwrap().clone();
    assert!(
        batches.len() < 800,
        "entries were batched: {} batches",
        batches.len()
    );
    assert_eq!(batches.iter().map(|b| b.1).sum::<usize>(), 800);
    reader.audit(&vkey).unwrap();
}
