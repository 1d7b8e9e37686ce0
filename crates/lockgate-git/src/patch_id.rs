//! A stable patch identity: the same change gives the same id wherever it is applied,
//! so an attestation still matches after a rebase or squash that keeps the patch.
//!
//! `lockgate-patch-id/v1` is SHA-256 over, for each changed path in byte order (no
//! rename detection, so the id does not depend on similarity thresholds): `path\n`,
//! then every removed line as `-` and every added line as `+` followed by the line
//! with all ASCII whitespace removed and `\n` (hunk positions are not included: like
//! `git patch-id --stable`, moving the patch does not change it). Binary or oversized
//! files contribute `binary <old blob> <new blob>\n`; mode and type changes contribute
//! `mode <old> <new>\n`. Memory is one file at a time.

use crate::{GitError, Repo};
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::diff::blob::{Algorithm, Diff, InternedInput};
use gix::diff::tree_with_rewrites::Change as TreeChange;
use sha2::{Digest, Sha256};

/// Prefix of every patch id.
pub const PATCH_ID_PREFIX: &str = "lockgate-patch-id/v1:";
/// Files larger than this are identified by blob id instead of lines.
const MAX_DIFF_BYTES: u64 = 64 * 1024 * 1024;

impl Repo {
    /// The patch id of `base..head` (two-dot: tree of base to tree of head), or `None`
    /// when the trees are equal.
    pub fn patch_id(&self, base: &str, head: &str) -> Result<Option<String>, GitError> {
        let repo = self.gix();
        let tree_of = |rev: &str| -> Result<gix::Tree<'_>, GitError> {
            let id = self.resolve_commit(rev)?;
            repo.find_commit(id)
                .and_then(|c| c.tree())
                .map_err(|e| GitError::read(format!("reading the tree of {id}"), e))
        };
        let old = tree_of(base)?;
        let new = tree_of(head)?;
        let mut changes: Vec<TreeChange> = Vec::new();
        old.changes()
            .map_err(|e| GitError::read("preparing the tree diff", e))?
            .options(|o| {
                o.track_path().track_rewrites(None);
            })
            .for_each_to_obtain_tree(&new, |c| {
                if !c.entry_mode().is_tree() {
                    changes.push(c.detach());
                }
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .map_err(|e| GitError::read("diffing trees", e))?;
        if changes.is_empty() {
            return Ok(None);
        }
        changes.sort_by(|a, b| a.location().cmp(b.location()));

        let mut hasher = Sha256::new();
        for change in &changes {
            hasher.update(change.location());
            hasher.update(b"\n");
            let (old, new) = match change {
                TreeChange::Addition { entry_mode, id, .. } => (None, Some((*id, *entry_mode))),
                TreeChange::Deletion { entry_mode, id, .. } => (Some((*id, *entry_mode)), None),
                TreeChange::Modification {
                    previous_entry_mode,
                    previous_id,
                    entry_mode,
                    id,
                    ..
                } => (
                    Some((*previous_id, *previous_entry_mode)),
                    Some((*id, *entry_mode)),
                ),
                TreeChange::Rewrite { .. } => unreachable!("rename tracking is off"),
            };
            let mode = |m: Option<(ObjectId, gix::objs::tree::EntryMode)>| {
                m.map(|(_, m)| m.kind().as_octal_str().to_string())
                    .unwrap_or_else(|| "0".into())
            };
            if old.map(|o| o.1) != new.map(|n| n.1) && old.is_some() && new.is_some() {
                hasher.update(format!("mode {} {}\n", mode(old), mode(new)).as_bytes());
            }
            let blob_like = |m: Option<(ObjectId, gix::objs::tree::EntryMode)>| {
                m.is_none_or(|(_, mode)| mode.is_blob())
            };
            if !blob_like(old) || !blob_like(new) {
                // Symlinks and submodules: identified by object id.
                hasher.update(
                    format!("object {:?} {:?}\n", old.map(|o| o.0), new.map(|n| n.0)).as_bytes(),
                );
                continue;
            }
            let data = |side: Option<(ObjectId, gix::objs::tree::EntryMode)>| -> Result<Option<Vec<u8>>, GitError> {
                let Some((id, _)) = side else {
                    return Ok(Some(Vec::new()));
                };
                let size = repo
                    .find_header(id)
                    .map(|h| h.size())
                    .map_err(|e| GitError::read(format!("reading {id}"), e))?;
                if size > MAX_DIFF_BYTES {
                    return Ok(None);
                }
                repo.find_object(id)
                    .map(|o| Some(o.detach().data))
                    .map_err(|e| GitError::read(format!("reading {id}"), e))
            };
            let (Some(a), Some(b)) = (data(old)?, data(new)?) else {
                hasher.update(
                    format!("binary {:?} {:?}\n", old.map(|o| o.0), new.map(|n| n.0)).as_bytes(),
                );
                continue;
            };
            if a[..a.len().min(8000)].contains(&0) || b[..b.len().min(8000)].contains(&0) {
                hasher.update(
                    format!("binary {:?} {:?}\n", old.map(|o| o.0), new.map(|n| n.0)).as_bytes(),
                );
                continue;
            }
            let input = InternedInput::new(a.as_slice(), b.as_slice());
            let mut diff = Diff::compute(Algorithm::Histogram, &input);
            diff.postprocess_lines(&input);
            for hunk in diff.hunks() {
                for i in hunk.before.clone() {
                    hash_line(&mut hasher, b'-', input.interner[input.before[i as usize]]);
                }
                for i in hunk.after.clone() {
                    hash_line(&mut hasher, b'+', input.interner[input.after[i as usize]]);
                }
            }
        }
        Ok(Some(format!(
            "{PATCH_ID_PREFIX}{}",
            hex::encode(hasher.finalize())
        )))
    }
}

fn hash_line(hasher: &mut Sha256, sign: u8, line: &[u8]) {
    hasher.update([sign]);
    let stripped: Vec<u8> = line
        .as_bytes()
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    hasher.update(&stripped);
    hasher.update(b"\n");
}
