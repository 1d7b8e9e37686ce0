//! An independent tiles client reads our log: `tlog_tiles` (Cloudflare's port of Go's
//! golang.org/x/mod/sumdb/tlog, the algorithms behind sum.golang.org) fetches our C2SP
//! tiles, authenticates them against the checkpoint's root, and builds its own record
//! and tree proofs — which must equal ours and verify against our checkpoint.

use lockgate_log::checkpoint::{Checkpoint, LogSigningKey};
use lockgate_log::log::{Log, LogReader};
use lockgate_log::storage::{DirStorage, Storage};
use lockgate_log::tiles::tile_path;
use tlog_tiles::{Hash as TlogHash, Tile, TileHashReader, TileReader};

/// Serves tlog_tiles' tile requests from our storage, mapping its coordinates to
/// C2SP paths (tlog_tiles speaks sumdb's `tile/<H>/<L>/<N>`; C2SP drops the height).
struct OurTiles<'a>(&'a dyn Storage);

impl TileReader for OurTiles<'_> {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let path = tile_path(t.level(), t.level_index(), u64::from(t.width()));
                self.0
                    .read(&path)
                    .ok()
                    .flatten()
                    .ok_or(tlog_tiles::Error::InvalidInput(path))
            })
            .collect()
    }

    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

#[test]
fn a_sumdb_tiles_client_authenticates_our_tiles_and_agrees_on_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let (key, vkey) = LogSigningKey::generate("log.test/tile-client").unwrap();
    let mut log = Log::create(DirStorage::new(dir.path()).unwrap(), key, vkey.clone()).unwrap();
    let mut sizes = Vec::new();
    let mut next = 0u64;
    for batch in [1u64, 255, 1, 600, 65_536, 3] {
        let entries: Vec<Vec<u8>> = (next..next + batch)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        next += batch;
        let appended = log.append(&entries).unwrap();
        sizes.push((appended.size, appended.checkpoint));
    }
    let storage = DirStorage::new(dir.path()).unwrap();
    let reader = LogReader::new(&storage);
    let tiles = OurTiles(&storage);
    for (size, note) in &sizes {
        let cp = Checkpoint::verify(note, &vkey).unwrap();
        let client = TileHashReader::new(cp.size, TlogHash(cp.root), &tiles);
        // The client recomputes the root from our tiles before trusting any of them.
        assert_eq!(tlog_tiles::tree_hash(cp.size, &client).unwrap().0, cp.root);
        for index in [0, size / 3, size / 2, size - 1] {
            let theirs = tlog_tiles::prove_record(*size, index, &client).unwrap();
            let ours = reader.inclusion_proof(index, *size).unwrap();
            assert_eq!(
                theirs.iter().map(|h| h.0).collect::<Vec<_>>(),
                ours,
                "record {index} of {size}"
            );
            let leaf = tlog_tiles::record_hash(format!("entry {index}").as_bytes());
            tlog_tiles::check_record(&theirs, *size, TlogHash(cp.root), index, leaf).unwrap();
        }
        for (old, old_note) in sizes.iter().filter(|(s, _)| s <= size) {
            let old_cp = Checkpoint::verify(old_note, &vkey).unwrap();
            let theirs = tlog_tiles::prove_tree(*size, *old, &client).unwrap();
            let ours = reader.consistency_proof(*old, *size).unwrap();
            assert_eq!(
                theirs.iter().map(|h| h.0).collect::<Vec<_>>(),
                ours,
                "tree {old} → {size}"
            );
            tlog_tiles::check_tree(
                &theirs,
                *size,
                TlogHash(cp.root),
                *old,
                TlogHash(old_cp.root),
            )
            .unwrap();
        }
    }
    // A tampered tile never yields a proof the client accepts (tlog_tiles may build a
    // proof from it, but the proof does not lead to the checkpoint's root).
    let path = tile_path(0, 0, 256);
    let mut bytes = storage.read(&path).unwrap().unwrap();
    bytes[0] ^= 1;
    storage.write(&path, &bytes).unwrap();
    let (size, note) = sizes.last().unwrap();
    let cp = Checkpoint::verify(note, &vkey).unwrap();
    let client = TileHashReader::new(cp.size, TlogHash(cp.root), &tiles);
    let leaf = tlog_tiles::record_hash(b"entry 3");
    let accepted = tlog_tiles::prove_record(*size, 3, &client)
        .and_then(|p| tlog_tiles::check_record(&p, *size, TlogHash(cp.root), 3, leaf));
    assert!(accepted.is_err());
}
