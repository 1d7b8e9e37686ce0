//! C2SP tlog-tiles layout: tile and entry-bundle paths, entry bundles, and a
//! [`SubtreeSource`] that answers Merkle subtree hashes from tiles.
//!
//! Tiles are 256 hashes wide (height 8). The tile at level `l`, index `n` holds the
//! hashes of the perfect subtrees of `256^l` leaves starting at `(n·256 + i)·256^l`;
//! partial tiles (`.p/<w>`) hold the first `w` of them.

use crate::merkle::{Hash, ProofError, SubtreeSource, node_hash};
use crate::storage::Storage;
use std::collections::HashMap;
use std::sync::Mutex;

/// Hashes per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile.
pub const TILE_HEIGHT: u8 = 8;
/// Largest entry a bundle can hold (uint16 length prefix).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// `<N>` as zero-padded 3-digit path elements, all but the last prefixed with `x`.
fn encode_index(n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        parts.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

fn width_suffix(width: u64) -> String {
    if width == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// `tile/<L>/<N>[.p/<W>]`.
pub fn tile_path(level: u8, index: u64, width: u64) -> String {
    format!(
        "tile/{level}/{}{}",
        encode_index(index),
        width_suffix(width)
    )
}

/// `tile/entries/<N>[.p/<W>]`.
pub fn bundle_path(index: u64, width: u64) -> String {
    format!(
        "tile/entries/{}{}",
        encode_index(index),
        width_suffix(width)
    )
}

/// A parsed tile or entry-bundle path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRef {
    /// Hash level, or `None` for an entry bundle.
    pub level: Option<u8>,
    pub index: u64,
    pub width: u64,
}

impl TileRef {
    /// Whether a tree of `size` leaves contains exactly this tile (same width): files
    /// past the published tree, or of a superseded width, are not part of it.
    pub fn is_in_tree(&self, size: u64) -> bool {
        tile_width(self.level.unwrap_or(0), self.index, size) == self.width
    }
}

/// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` in canonical form (the
/// exact text [`tile_path`] and [`bundle_path`] write); anything else is `None`.
pub fn parse_tile_path(path: &str) -> Option<TileRef> {
    let rest = path.strip_prefix("tile/")?;
    let (level_text, rest) = rest.split_once('/')?;
    let level = match level_text {
        "entries" => None,
        l => Some(
            l.parse::<u8>()
                .ok()
                .filter(|l| l.to_string() == level_text)?,
        ),
    };
    let (index_text, width) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let w: u64 = w.parse().ok()?;
            (i, w)
        }
        None => (rest, TILE_WIDTH),
    };
    let mut index: u64 = 0;
    let parts: Vec<&str> = index_text.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() {
            part.strip_prefix('x')?
        } else {
            part
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        index = index
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    let parsed = TileRef {
        level,
        index,
        width,
    };
    let canonical = match level {
        Some(l) => tile_path(l, index, width),
        None => bundle_path(index, width),
    };
    ((1..=TILE_WIDTH).contains(&width) && canonical == path).then_some(parsed)
}

/// Width of tile `index` at `level` in a tree of `size` leaves (0 if it does not exist).
pub fn tile_width(level: u8, index: u64, size: u64) -> u64 {
    let hashes_at_level = size >> (u32::from(TILE_HEIGHT) * u32::from(level));
    let start = index * TILE_WIDTH;
    if hashes_at_level <= start {
        0
    } else {
        (hashes_at_level - start).min(TILE_WIDTH)
    }
}

/// Concatenates length-prefixed entries into a bundle.
pub fn encode_bundle(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for e in entries {
        out.extend_from_slice(&(e.len() as u16).to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Splits a bundle into entries; fails on a truncated bundle.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err("truncated length prefix".into());
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return Err("truncated entry".into());
        }
        out.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    Ok(out)
}

/// Splits tile bytes into hashes.
pub fn decode_tile(bytes: &[u8]) -> Result<Vec<Hash>, String> {
    if !bytes.len().is_multiple_of(32) || bytes.len() > 32 * TILE_WIDTH as usize {
        return Err(format!(
            "a tile of {} bytes is not a whole number of hashes ≤ 256",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks(32)
        .map(|c| c.try_into().expect("32-byte chunks"))
        .collect())
}

/// All perfect subtree hashes inside one tile: `levels[k][j]` is the hash of hashes
/// `[j·2^k, (j+1)·2^k)` of the tile.
#[derive(Debug)]
pub struct TileTree {
    levels: Vec<Vec<Hash>>,
}

impl TileTree {
    fn new(hashes: Vec<Hash>) -> TileTree {
        let mut levels = vec![hashes];
        while levels.last().is_some_and(|l| l.len() >= 2) {
            let prev = levels.last().expect("non-empty");
            let next: Vec<Hash> = prev
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        TileTree { levels }
    }
}

/// Most tile trees kept in memory (each ≤ 511 hashes, 16 KiB).
const CACHE_TILES: usize = 2048;

/// Tile trees shared between views of different tree sizes (a tile's content depends
/// only on its level, index and width).
#[derive(Clone, Default)]
pub struct TileCache(std::sync::Arc<Mutex<HashMap<TileKey, std::sync::Arc<TileTree>>>>);

/// (level, index, width).
type TileKey = (u8, u64, u64);

impl TileCache {
    /// Remembers a tile already in memory (the writer's freshly written tiles).
    pub fn insert(&self, level: u8, index: u64, hashes: Vec<Hash>) {
        let width = hashes.len() as u64;
        let mut cache = self.0.lock().expect("cache lock");
        if cache.len() >= CACHE_TILES {
            cache.clear();
        }
        cache.insert(
            (level, index, width),
            std::sync::Arc::new(TileTree::new(hashes)),
        );
    }
}

/// Subtree hashes of a tree of `size` leaves, read from the tiles in `storage`.
///
/// Tile trees are cached: a proof touches a handful of tiles, and hashing inside a
/// tile (up to 255 hashes) is the dominant cost without the cache.
pub struct TileSource<'a> {
    storage: &'a dyn Storage,
    size: u64,
    cache: TileCache,
}

impl<'a> TileSource<'a> {
    /// A source for the tree of `size` leaves with a fresh cache.
    pub fn new(storage: &'a dyn Storage, size: u64) -> TileSource<'a> {
        Self::with_cache(storage, size, TileCache::default())
    }

    /// A source sharing `cache` with other views.
    pub fn with_cache(storage: &'a dyn Storage, size: u64, cache: TileCache) -> TileSource<'a> {
        TileSource {
            storage,
            size,
            cache,
        }
    }

    /// The tree size this source serves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hashes of one tile of this tree, from the cache or storage.
    pub fn tile_hashes(&self, level: u8, index: u64) -> Result<Vec<Hash>, ProofError> {
        Ok(self.tile(level, index)?.levels[0].clone())
    }

    fn tile(&self, level: u8, index: u64) -> Result<std::sync::Arc<TileTree>, ProofError> {
        let width = tile_width(level, index, self.size);
        if width == 0 {
            return Err(ProofError::Missing(format!(
                "tile {level}/{index} is beyond the tree"
            )));
        }
        let key = (level, index, width);
        if let Some(t) = self.cache.0.lock().expect("cache lock").get(&key) {
            return Ok(t.clone());
        }
        let path = tile_path(level, index, width);
        let bytes = self
            .storage
            .read(&path)
            .map_err(|e| ProofError::Missing(format!("{path}: {e}")))?
            .ok_or_else(|| ProofError::Missing(path.clone()))?;
        let hashes =
            decode_tile(&bytes).map_err(|e| ProofError::Missing(format!("{path}: {e}")))?;
        if hashes.len() as u64 != width {
            return Err(ProofError::Missing(format!(
                "{path}: {} hashes, expected {width}",
                hashes.len()
            )));
        }
        let tree = std::sync::Arc::new(TileTree::new(hashes));
        let mut cache = self.cache.0.lock().expect("cache lock");
        if cache.len() >= CACHE_TILES {
            cache.clear();
        }
        cache.insert(key, tree.clone());
        Ok(tree)
    }
}

impl SubtreeSource for TileSource<'_> {
    fn subtree(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        let tile_level = level / TILE_HEIGHT;
        let within = level % TILE_HEIGHT;
        // Position (at the tile's level) of the first hash this subtree covers.
        let first = index << within;
        let tile_index = first / TILE_WIDTH;
        let tree = self.tile(tile_level, tile_index)?;
        let offset = (first % TILE_WIDTH) >> within;
        tree.levels
            .get(usize::from(within))
            .and_then(|l| l.get(offset as usize))
            .copied()
            .ok_or_else(|| {
                ProofError::Missing(format!(
                    "subtree {level}/{index} is not complete in the tree"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_parse_back_and_only_canonical_ones() {
        for (level, index, width) in [
            (0u8, 0u64, 256u64),
            (1, 1234067, 8),
            (3, 999, 1),
            (0, 1000, 255),
        ] {
            let p = tile_path(level, index, width);
            assert_eq!(
                parse_tile_path(&p),
                Some(TileRef {
                    level: Some(level),
                    index,
                    width
                }),
                "{p}"
            );
            let b = bundle_path(index, width);
            assert_eq!(
                parse_tile_path(&b),
                Some(TileRef {
                    level: None,
                    index,
                    width
                }),
                "{b}"
            );
        }
        for bad in [
            "checkpoint",
            "tile/0/1",
            "tile/0/0001",
            "tile/0/x001",
            "tile/0/001/002",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/07",
            "tile/00/000",
            "tile/0/x000/001",
            "tile/entries/../000",
            "tile/256/000",
            "tile/0/000.p/",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
        let t = parse_tile_path("tile/0/000.p/7").unwrap();
        assert!(t.is_in_tree(7));
        assert!(!t.is_in_tree(8));
        assert!(!parse_tile_path("tile/0/001").unwrap().is_in_tree(300));
        assert!(parse_tile_path("tile/0/001").unwrap().is_in_tree(512));
    }

    #[test]
    fn paths_follow_the_spec() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(tile_path(0, 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(2, 5, 17), "tile/2/005.p/17");
        assert_eq!(bundle_path(3, 1), "tile/entries/003.p/1");
    }

    #[test]
    fn widths_of_the_spec_example() {
        // Tree size 70,000: 273 full level-0 tiles and a partial of 112; level 1: one full
        // and a partial of 17; level 2: a partial of 1.
        let s = 70_000;
        assert_eq!(tile_width(0, 272, s), 256);
        assert_eq!(tile_width(0, 273, s), 112);
        assert_eq!(tile_width(0, 274, s), 0);
        assert_eq!(tile_width(1, 0, s), 256);
        assert_eq!(tile_width(1, 1, s), 17);
        assert_eq!(tile_width(2, 0, s), 1);
        assert_eq!(tile_width(3, 0, s), 0);
        // Tree size 256: one full level-0 tile and a partial level-1 tile of width 1.
        assert_eq!(tile_width(0, 0, 256), 256);
        assert_eq!(tile_width(1, 0, 256), 1);
    }

    #[test]
    fn bundles_round_trip_and_reject_truncation() {
        let entries = vec![b"one".to_vec(), vec![], vec![7; 300]];
        let b = encode_bundle(&entries);
        assert_eq!(decode_bundle(&b).unwrap(), entries);
        assert!(decode_bundle(&b[..b.len() - 1]).is_err());
        assert!(decode_bundle(&[0]).is_err());
    }
}
