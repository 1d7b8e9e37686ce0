//! The first-parent history of a branch: each entry is one change as it landed (a
//! merge commit, a squash or a direct commit), diffable against its first parent.

use crate::GitError;
use crate::read::Repo;

/// One commit on the first-parent chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub sha: String,
    /// The first parent: the branch before this change landed.
    pub first_parent: String,
    /// Committer time (seconds since the epoch): when it landed on the branch.
    pub time: i64,
    /// Number of parents (2+ for a merge).
    pub parents: u32,
    /// The commit a pull request would have been checked at: a merge's second parent
    /// (the branch head that was merged), else the commit itself.
    pub checked_head: String,
    pub summary: String,
}

impl Repo {
    /// Walks `rev`'s first-parent chain, newest first, while commits landed at or
    /// after `since` (seconds), returning at most `limit` entries. The root commit
    /// (no parent) is not a change and is left out.
    pub fn first_parent_history(
        &self,
        rev: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Landed>, GitError> {
        let mut id = self.resolve_commit(rev)?;
        let mut out = Vec::new();
        while out.len() < limit {
            let commit = self
                .gix()
                .find_commit(id)
                .map_err(|e| GitError::read(format!("reading commit {id}"), e))?;
            let ctx = || format!("decoding commit {id}");
            let decoded = commit.decode().map_err(|e| GitError::read(ctx(), e))?;
            let time = decoded
                .committer()
                .map_err(|e| GitError::read(ctx(), e))?
                .seconds();
            if time < since {
                break;
            }
            let parents: Vec<gix::ObjectId> = decoded.parents().collect();
            let Some(first) = parents.first().copied() else {
                break;
            };
            out.push(Landed {
                sha: id.to_string(),
                first_parent: first.to_string(),
                time,
                parents: parents.len() as u32,
                checked_head: parents.get(1).copied().unwrap_or(id).to_string(),
                summary: decoded.message().summary().to_string(),
            });
            id = first;
        }
        Ok(out)
    }
}
