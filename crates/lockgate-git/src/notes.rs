//! Git notes under `refs/notes/lockgate`, written and read with gix.
//!
//! A note is a blob in the notes commit's tree, named by the annotated object's id
//! (flat `<40 hex>` or fanned out `ab/<38 hex>`, as git writes large notes trees).
//! Lockgate's notes hold one Sigstore bundle per line (JSONL), so several attestations
//! can annotate one commit; appending keeps earlier lines. Bundles are also written on
//! the proposed commit's **tree**, so a squash or rebase that leaves the tree unchanged
//! still finds its attestation.

use crate::{GitError, Repo};
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;

/// The notes ref Lockgate uses.
pub const NOTES_REF: &str = "refs/notes/lockgate";
/// Largest note read.
const MAX_NOTE_BYTES: u64 = 16 * 1024 * 1024;
/// Most notes scanned when searching by content.
pub const MAX_NOTES_SCANNED: usize = 20_000;

impl Repo {
    fn notes_commit(&self) -> Result<Option<ObjectId>, GitError> {
        let reference = self
            .gix()
            .try_find_reference(NOTES_REF)
            .map_err(|e| GitError::read(format!("reading {NOTES_REF}"), e))?;
        let Some(mut reference) = reference else {
            return Ok(None);
        };
        let id = reference
            .peel_to_id()
            .map_err(|e| GitError::read(format!("resolving {NOTES_REF}"), e))?;
        Ok(Some(id.detach()))
    }

    fn notes_tree(&self) -> Result<Option<gix::Tree<'_>>, GitError> {
        let Some(commit) = self.notes_commit()? else {
            return Ok(None);
        };
        self.gix()
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map(Some)
            .map_err(|e| GitError::read(format!("reading {NOTES_REF}"), e))
    }

    /// Whether the repository has any Lockgate notes.
    pub fn has_notes(&self) -> Result<bool, GitError> {
        Ok(self.notes_commit()?.is_some())
    }

    /// The note on `object` (a full hex id), if any.
    pub fn read_note(&self, object: &str) -> Result<Option<Vec<u8>>, GitError> {
        let Some(tree) = self.notes_tree()? else {
            return Ok(None);
        };
        for path in note_paths(object) {
            let entry = tree
                .lookup_entry_by_path(&path)
                .map_err(|e| GitError::read(format!("reading note {path}"), e))?;
            if let Some(entry) = entry
                && entry.mode().is_blob()
            {
                let id = entry.object_id();
                let size = self
                    .gix()
                    .find_header(id)
                    .map(|h| h.size())
                    .map_err(|e| GitError::read(format!("reading note {path}"), e))?;
                if size > MAX_NOTE_BYTES {
                    return Err(GitError::Read {
                        context: format!("reading note {path}"),
                        detail: format!("{size} bytes is more than {MAX_NOTE_BYTES}"),
                    });
                }
                let data = self
                    .gix()
                    .find_object(id)
                    .map(|o| o.detach().data)
                    .map_err(|e| GitError::read(format!("reading note {path}"), e))?;
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// Every note (object id, content), at most [`MAX_NOTES_SCANNED`]; for searches by
    /// content (e.g. patch id). Notes over the size limit are skipped.
    pub fn all_notes(&self) -> Result<Vec<(String, Vec<u8>)>, GitError> {
        let Some(tree) = self.notes_tree()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), tree)];
        while let Some((prefix, tree)) = stack.pop() {
            for entry in tree.iter() {
                let entry = entry.map_err(|e| GitError::read("reading notes", e))?;
                let name = format!("{prefix}{}", entry.filename().to_str_lossy());
                let id = entry.object_id();
                if entry.mode().is_tree() && name.len() < 40 {
                    let sub = self
                        .gix()
                        .find_tree(id)
                        .map_err(|e| GitError::read("reading notes", e))?;
                    stack.push((name, sub));
                } else if entry.mode().is_blob() && name.len() == 40 {
                    let object = self
                        .gix()
                        .find_object(id)
                        .map_err(|e| GitError::read("reading notes", e))?;
                    if object.data.len() as u64 <= MAX_NOTE_BYTES {
                        out.push((name, object.detach().data));
                    }
                    if out.len() >= MAX_NOTES_SCANNED {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Appends `line` (one line, no newline) to the notes on each of `objects`, in one
    /// notes commit. Lines already present are not repeated. The notes ref is updated
    /// with compare-and-swap: a concurrent writer makes this fail rather than lose data.
    pub fn append_notes(
        &self,
        objects: &[&str],
        line: &str,
        author: (&str, &str),
    ) -> Result<String, GitError> {
        if line.contains('\n') {
            return Err(GitError::Read {
                context: "writing a note".into(),
                detail: "a note line may not contain a newline".into(),
            });
        }
        let repo = self.gix();
        let parent = self.notes_commit()?;
        let base_tree = match parent {
            Some(c) => repo
                .find_commit(c)
                .and_then(|c| c.tree_id())
                .map(|id| id.detach())
                .map_err(|e| GitError::read(format!("reading {NOTES_REF}"), e))?,
            None => ObjectId::empty_tree(repo.object_hash()),
        };
        let mut editor = repo
            .edit_tree(base_tree)
            .map_err(|e| GitError::read("editing notes", e))?;
        for object in objects {
            if object.len() != 40 || !object.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(GitError::Read {
                    context: "writing a note".into(),
                    detail: format!("{object:?} is not a full object id"),
                });
            }
            let mut content = self.read_note(object)?.unwrap_or_default();
            let present = content.split(|b| *b == b'\n').any(|l| l == line.as_bytes());
            if present {
                continue;
            }
            if !content.is_empty() && !content.ends_with(b"\n") {
                content.push(b'\n');
            }
            content.extend_from_slice(line.as_bytes());
            content.push(b'\n');
            let blob = repo
                .write_blob(&content)
                .map_err(|e| GitError::read("writing a note", e))?;
            // Keep the note where it already lives (fanned out or flat); new notes go flat.
            let existing_fanout = note_paths(object)
                .into_iter()
                .skip(1)
                .find(|p| self.note_exists_at(base_tree, p));
            let path = existing_fanout.unwrap_or_else(|| object.to_string());
            editor
                .upsert(path.as_str(), EntryKind::Blob, blob)
                .map_err(|e| GitError::read("writing a note", e))?;
        }
        let tree = editor
            .write()
            .map_err(|e| GitError::read("writing notes", e))?
            .detach();
        let time = format!("{} +0000", now_seconds());
        let sig = gix::actor::SignatureRef {
            name: author.0.into(),
            email: author.1.into(),
            time: &time,
        };
        let commit = repo
            .commit_as(
                sig,
                sig,
                NOTES_REF,
                "Notes added by 'lockgate attest'",
                tree,
                parent,
            )
            .map_err(|e| GitError::read(format!("updating {NOTES_REF}"), e))?;
        Ok(commit.to_string())
    }

    fn note_exists_at(&self, tree: ObjectId, path: &str) -> bool {
        self.gix()
            .find_tree(tree)
            .ok()
            .and_then(|t| t.lookup_entry_by_path(path).ok().flatten())
            .is_some()
    }

    /// The tree id of a commit.
    pub fn tree_of(&self, rev: &str) -> Result<String, GitError> {
        let id = self.resolve_commit(rev)?;
        self.gix()
            .find_commit(id)
            .and_then(|c| c.tree_id())
            .map(|t| t.to_string())
            .map_err(|e| GitError::read(format!("reading the tree of {id}"), e))
    }

    /// Whether `ancestor` is reachable from `descendant` (or equal to it).
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let a = self.resolve_commit(ancestor)?;
        let d = self.resolve_commit(descendant)?;
        if a == d {
            return Ok(true);
        }
        let base = self
            .gix()
            .merge_base(a, d)
            .map_err(|e| GitError::read("computing a merge base", e))?;
        Ok(base.map(|b| b.detach()) == Some(a))
    }

    /// First parent of a commit, if any.
    pub fn first_parent(&self, rev: &str) -> Result<Option<String>, GitError> {
        let id = self.resolve_commit(rev)?;
        let commit = self
            .gix()
            .find_commit(id)
            .map_err(|e| GitError::read(format!("reading {id}"), e))?;
        Ok(commit.parent_ids().next().map(|p| p.to_string()))
    }
}

/// Where git may keep the note for `object`: flat, then one and two levels of fanout.
fn note_paths(object: &str) -> Vec<String> {
    let mut paths = vec![object.to_string()];
    if object.len() == 40 {
        paths.push(format!("{}/{}", &object[..2], &object[2..]));
        paths.push(format!(
            "{}/{}/{}",
            &object[..2],
            &object[2..4],
            &object[4..]
        ));
    }
    paths
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
