//! RFC 6962 / RFC 9162 Merkle trees: hashing, proof generation and proof verification.
//!
//! Leaves and nodes are domain-separated (`0x00` and `0x01` prefixes), so a leaf can
//! never be passed off as an interior node. Proof generation works over any
//! [`SubtreeSource`] (the tile store, or a plain vector of leaf hashes in tests);
//! verification is pure and meant for third parties: it needs only the proof, the
//! sizes and the hashes.
//!
//! Hand-written because the log is Lockgate's core and these few functions are
//! clearer to audit than an adapter around another crate's storage model. They are
//! checked against the transparency-dev/merkle vectors and cross-checked with the
//! independent `ct-merkle` implementation.
//!
//! ```
//! use lockgate_log::merkle::*;
//! let leaves: Vec<Hash> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
//! let root = root_of(&leaves);
//! let proof = inclusion_proof(&Leaves(&leaves), 3, 5).unwrap();
//! verify_inclusion(3, 5, &leaves[3], &proof, &root).unwrap();
//! ```

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Why a proof does not verify (or cannot be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {old} is larger than {new}")]
    SizeOrder { old: u64, new: u64 },
    #[error("proof has {got} hashes, expected {expected}")]
    WrongLength { got: usize, expected: usize },
    #[error("computed root does not match")]
    RootMismatch,
    #[error("an empty tree has no proofs")]
    EmptyTree,
    #[error("missing hashes in the store: {0}")]
    Missing(String),
}

/// Perfect (complete, aligned) subtree hashes: the hash of leaves
/// `[index·2^level, (index+1)·2^level)`.
pub trait SubtreeSource {
    /// The subtree hash, or an error if the store does not hold it.
    fn subtree(&self, level: u8, index: u64) -> Result<Hash, ProofError>;
}

/// Leaf hashes in memory, for tests and small trees.
pub struct Leaves<'a>(pub &'a [Hash]);

impl SubtreeSource for Leaves<'_> {
    fn subtree(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        let start = (index << level) as usize;
        let end = start + (1usize << level);
        if end > self.0.len() {
            return Err(ProofError::Missing(format!("leaves {start}..{end}")));
        }
        Ok(root_of(&self.0[start..end]))
    }
}

/// The largest power of two strictly less than `n` (`n ≥ 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of the leaf hashes in memory (RFC 6962 §2.1).
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// MTH of leaves `[lo, hi)` from perfect subtrees: the range splits into aligned
/// power-of-two pieces (largest first), folded right to left.
pub fn range_hash(src: &dyn SubtreeSource, lo: u64, hi: u64) -> Result<Hash, ProofError> {
    debug_assert!(lo < hi);
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return src.subtree(n.trailing_zeros() as u8, lo >> n.trailing_zeros());
    }
    let k = split_point(n);
    let left = range_hash(src, lo, lo + k)?;
    let right = range_hash(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of a tree of `size` leaves.
pub fn tree_root(src: &dyn SubtreeSource, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// Inclusion proof of leaf `index` in a tree of `size` (RFC 9162 §2.1.3.1 PATH).
pub fn inclusion_proof(
    src: &dyn SubtreeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(src, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// PATH(m, D[lo:hi]), appending to `out` (bottom-up order).
fn path(
    src: &dyn SubtreeSource,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = hi - lo;
    if n == 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(src, m, lo, lo + k, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        path(src, m - k, lo + k, hi, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// Consistency proof from tree size `old` to `new` (RFC 9162 §2.1.4.1 SUBPROOF).
pub fn consistency_proof(
    src: &dyn SubtreeSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::SizeOrder { old, new });
    }
    let mut proof = Vec::new();
    if old == 0 || old == new {
        return Ok(proof);
    }
    subproof(src, old, 0, new, true, &mut proof)?;
    Ok(proof)
}

fn subproof(
    src: &dyn SubtreeSource,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(range_hash(src, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, lo, lo + k, complete, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        subproof(src, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2). Constant work for the size given.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let computed = root_from_inclusion(index, size, leaf, proof)?;
    if ct_eq(&computed, root) {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The root an inclusion proof leads to.
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decomp_inclusion(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected: inner + border,
        });
    }
    let mut h = *leaf;
    for (i, p) in proof[..inner].iter().enumerate() {
        h = if (index >> i) & 1 == 0 {
            node_hash(&h, p)
        } else {
            node_hash(p, &h)
        };
    }
    for p in &proof[inner..] {
        h = node_hash(p, &h);
    }
    Ok(h)
}

/// Splits an inclusion proof into the part inside the perfect subtree containing the
/// leaf and the part along the right border.
fn decomp_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizeOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        // There is no proof from the empty tree (as in transparency-dev/merkle): a client
        // with no previous checkpoint simply trusts the first one it verifies.
        return Err(ProofError::EmptyTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected: 0,
            });
        }
        return if ct_eq(old_root, new_root) {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // Skip the shared levels where old_size-1 is a right child path of full subtrees.
    let shift = old_size.trailing_zeros();
    let (inner, border) = decomp_inclusion((old_size - 1) >> shift, ((new_size - 1) >> shift) + 1);
    let start_from_old = old_size.is_power_of_two();
    let expected = inner + border + usize::from(!start_from_old);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected,
        });
    }
    let (seed, rest) = if start_from_old {
        (*old_root, proof)
    } else {
        (proof[0], &proof[1..])
    };
    let mask = (old_size - 1) >> shift;
    // Hash towards the old root (only left siblings) and the new root (all).
    let mut old_h = seed;
    let mut new_h = seed;
    for (i, p) in rest[..inner].iter().enumerate() {
        if (mask >> i) & 1 == 1 {
            old_h = node_hash(p, &old_h);
            new_h = node_hash(p, &new_h);
        } else {
            new_h = node_hash(&new_h, p);
        }
    }
    for p in &rest[inner..] {
        old_h = node_hash(p, &old_h);
        new_h = node_hash(p, &new_h);
    }
    if !ct_eq(&old_h, old_root) || !ct_eq(&new_h, new_root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

fn ct_eq(a: &Hash, b: &Hash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn every_proof_of_small_trees_verifies() {
        for size in 1..=40u64 {
            let l = leaves(size);
            let src = Leaves(&l);
            let root = root_of(&l);
            assert_eq!(tree_root(&src, size).unwrap(), root);
            for i in 0..size {
                let p = inclusion_proof(&src, i, size).unwrap();
                verify_inclusion(i, size, &l[i as usize], &p, &root).unwrap();
            }
            for old in 1..=size {
                let p = consistency_proof(&src, old, size).unwrap();
                let old_root = root_of(&l[..old as usize]);
                verify_consistency(old, size, &p, &old_root, &root)
                    .unwrap_or_else(|e| panic!("{old}->{size}: {e}"));
            }
        }
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
    }
}
