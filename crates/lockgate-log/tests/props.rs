//! Property tests: for random tree sizes every honest proof verifies and every tampered
//! one fails; roots and proofs agree with the independent `ct-merkle` implementation.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use lockgate_log::merkle::*;
use proptest::prelude::*;

fn leaves(n: u64, salt: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| [&[salt][..], &i.to_le_bytes()].concat())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn honest_proofs_verify_and_tampered_ones_fail(size in 1u64..600, pick in any::<u64>(), old_pick in any::<u64>(), flip in any::<(usize, u8)>(), salt in any::<u8>()) {
        let data = leaves(size, salt);
        let hashes: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let src = Leaves(&hashes);
        let root = root_of(&hashes);
        let index = pick % size;

        let proof = inclusion_proof(&src, index, size).unwrap();
        prop_assert!(verify_inclusion(index, size, &hashes[index as usize], &proof, &root).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let (which, bit) = flip;
            let n = which % bad.len();
            bad[n][bit as usize % 32] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(index, size, &hashes[index as usize], &bad, &root).is_err());
            let mut short = proof.clone();
            short.pop();
            prop_assert!(verify_inclusion(index, size, &hashes[index as usize], &short, &root).is_err());
        }
        // The wrong leaf or the wrong index fails.
        let other = (index + 1) % size;
        if other != index {
            prop_assert!(verify_inclusion(index, size, &hashes[other as usize], &proof, &root).is_err());
        }

        let old = old_pick % size + 1;
        let old_root = root_of(&hashes[..old as usize]);
        let proof = consistency_proof(&src, old, size).unwrap();
        prop_assert!(verify_consistency(old, size, &proof, &old_root, &root).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let (which, bit) = flip;
            let n = which % bad.len();
            bad[n][bit as usize % 32] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(old, size, &bad, &old_root, &root).is_err());
        }
        if old < size {
            // A forked old tree (one leaf changed) is not consistent.
            let mut forked = hashes[..old as usize].to_vec();
            forked[0] = leaf_hash(b"fork");
            prop_assert!(verify_consistency(old, size, &proof, &root_of(&forked), &root).is_err());
        }
    }

    #[test]
    fn agrees_with_ct_merkle(size in 1u64..300, pick in any::<u64>(), salt in any::<u8>()) {
        let data = leaves(size, salt);
        let mut theirs: MemoryBackedTree<sha2_11::Sha256, Vec<u8>> = MemoryBackedTree::new();
        for d in &data {
            theirs.push(d.clone());
        }
        let hashes: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let root = root_of(&hashes);
        let their_root = theirs.root();
        prop_assert_eq!(their_root.as_bytes().as_slice(), root.as_slice());

        let index = pick % size;
        let ours: Vec<u8> = inclusion_proof(&Leaves(&hashes), index, size).unwrap().concat();
        let their_proof = theirs.prove_inclusion(index as usize);
        prop_assert_eq!(their_proof.as_bytes(), ours.as_slice());

        let additions = (pick % size) as usize;
        let old = size - additions as u64;
        let ours: Vec<u8> = consistency_proof(&Leaves(&hashes), old, size).unwrap().concat();
        if additions > 0 {
            let their_proof = theirs.prove_consistency(additions);
            prop_assert_eq!(their_proof.as_bytes(), ours.as_slice());
        }
    }
}
