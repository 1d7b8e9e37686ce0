use crate::GitError;
use gix::bstr::{BStr, ByteSlice};
use gix::diff::blob::{Algorithm, Diff, InternedInput};
use gix::diff::tree_with_rewrites::Change as TreeChange;
use gix::objs::tree::EntryKind as GitEntryKind;
use gix::{ObjectId, Repository};
use lockgate_core::change::{
    ChangeSet, Commit, EntryKind, FileChange, FileStatus, Limits, Line, Person, Trailer,
    truncate_on_char_boundary,
};
use std::path::Path;

/// An open repository.
pub struct Repo {
    repo: Repository,
}

/// Git's binary heuristic: a NUL byte in the first 8000 bytes.
const BINARY_PROBE_BYTES: usize = 8000;

impl Repo {
    /// Opens the repository containing `path` (searching parent directories).
    pub fn discover(path: impl AsRef<Path>) -> Result<Repo, GitError> {
        let path = path.as_ref();
        let mut repo = gix::discover(path).map_err(|e| GitError::NotARepository {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        repo.object_cache_size_if_unset(8 * 1024 * 1024);
        Ok(Repo { repo })
    }

    /// The underlying gix repository.
    pub fn gix(&self) -> &Repository {
        &self.repo
    }

    fn is_shallow(&self) -> bool {
        self.repo.is_shallow().unwrap_or(false)
    }

    /// Resolves a revision (branch, tag, `HEAD~2`, full or short id) to a commit id.
    pub fn resolve_commit(&self, rev: &str) -> Result<ObjectId, GitError> {
        let unknown = |detail: String| GitError::UnknownRevision {
            rev: rev.to_string(),
            detail,
            shallow: self.is_shallow(),
        };
        let id = self
            .repo
            .rev_parse_single(rev)
            .map_err(|e| unknown(e.to_string()))?;
        let commit = id
            .object()
            .map_err(|e| unknown(e.to_string()))?
            .peel_to_commit()
            .map_err(|e| unknown(format!("not a commit: {e}")))?;
        Ok(commit.id)
    }

    /// Reads `merge-base(base, head)..head`.
    pub fn read_change(
        &self,
        base: &str,
        head: &str,
        limits: &Limits,
    ) -> Result<ChangeSet, GitError> {
        let base_id = self.resolve_commit(base)?;
        let head_id = self.resolve_commit(head)?;
        let merge_base = self
            .repo
            .merge_base(base_id, head_id)
            .map_err(|e| {
                if self.is_shallow() {
                    GitError::NoMergeBase {
                        base: base.into(),
                        head: head.into(),
                        shallow: true,
                    }
                } else {
                    GitError::read("computing the merge base", e)
                }
            })?
            .map(|id| id.detach())
            .ok_or_else(|| GitError::NoMergeBase {
                base: base.into(),
                head: head.into(),
                shallow: self.is_shallow(),
            })?;

        let mut change = ChangeSet {
            base_ref: base.to_string(),
            head_ref: head.to_string(),
            base: base_id.to_string(),
            head: head_id.to_string(),
            merge_base: merge_base.to_string(),
            ..ChangeSet::default()
        };
        self.read_commits(&mut change, merge_base, head_id, limits)?;
        tracing::debug!(commits = change.commits.len(), "commits read");
        self.read_files(&mut change, merge_base, head_id, limits)?;
        Ok(change)
    }

    fn read_commits(
        &self,
        change: &mut ChangeSet,
        merge_base: ObjectId,
        head: ObjectId,
        limits: &Limits,
    ) -> Result<(), GitError> {
        let walk = self
            .repo
            .rev_walk([head])
            .with_hidden([merge_base])
            .all()
            .map_err(|e| GitError::read("walking commits", e))?;
        for info in walk {
            let info = info.map_err(|e| GitError::read("walking commits", e))?;
            if change.commits.len() >= limits.max_commits as usize {
                change.truncated = true;
                change.notes.push(format!(
                    "only the newest {} commits were read (limits.max_commits)",
                    limits.max_commits
                ));
                break;
            }
            let commit = info
                .object()
                .map_err(|e| GitError::read(format!("reading commit {}", info.id), e))?;
            change.commits.push(commit_facts(&commit, limits)?);
        }
        Ok(())
    }

    fn read_files(
        &self,
        change: &mut ChangeSet,
        from: ObjectId,
        to: ObjectId,
        limits: &Limits,
    ) -> Result<(), GitError> {
        let tree_of = |id: ObjectId| {
            self.repo
                .find_commit(id)
                .and_then(|c| c.tree())
                .map_err(|e| GitError::read(format!("reading the tree of {id}"), e))
        };
        let old_tree = tree_of(from)?;
        let new_tree = tree_of(to)?;
        let rewrites = gix::diff::Rewrites {
            copies: Some(gix::diff::rewrites::Copies::default()),
            ..gix::diff::Rewrites::default()
        };
        let mut changes: Vec<TreeChange> = Vec::new();
        let mut too_many = false;
        old_tree
            .changes()
            .map_err(|e| GitError::read("preparing the tree diff", e))?
            .options(|o| {
                o.track_path().track_rewrites(Some(rewrites));
            })
            .for_each_to_obtain_tree(&new_tree, |c| {
                if c.entry_mode().is_tree() {
                    return Ok(std::ops::ControlFlow::Continue(()));
                }
                if changes.len() >= limits.max_files as usize {
                    too_many = true;
                    return Ok(std::ops::ControlFlow::Break(()));
                }
                changes.push(c.detach());
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .map_err(|e| GitError::read("diffing trees", e))?;
        if too_many {
            return Err(GitError::TooManyFiles {
                count: changes.len() + 1,
                limit: limits.max_files,
            });
        }

        tracing::debug!(files = changes.len(), "tree diff done");
        let mut budget = ContentBudget {
            remaining: limits.max_total_content_bytes,
        };
        let mut files = self.diff_files(&changes, limits, &mut budget)?;
        tracing::debug!("file diffs done");
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if budget.remaining == 0 {
            change.truncated = true;
            change.notes.push(format!(
                "line content beyond {} bytes was not kept (limits.max_total_content_bytes)",
                limits.max_total_content_bytes
            ));
        }
        if files.iter().any(|f| f.content_truncated) && budget.remaining > 0 {
            change.truncated = true;
            change
                .notes
                .push("some files had more changed lines than limits.max_lines_per_file".into());
        }
        if files.iter().any(|f| f.summarized) {
            change.truncated = true;
            change.notes.push(format!(
                "files larger than {} bytes were summarized, not read (limits.max_file_bytes)",
                limits.max_file_bytes
            ));
        }
        change.files = files;
        Ok(())
    }

    /// Line-diffs every changed file. With more than [`PARALLEL_MIN_FILES`] files the
    /// work is spread over the available cores; results are consumed strictly in
    /// order, and the content budget is applied in that order, so the outcome does not
    /// depend on the number of threads. Each worker runs at most [`LOOKAHEAD`] files
    /// ahead, which bounds the memory in flight.
    fn diff_files(
        &self,
        changes: &[TreeChange],
        limits: &Limits,
        budget: &mut ContentBudget,
    ) -> Result<Vec<FileChange>, GitError> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let mut files = Vec::with_capacity(changes.len());
        if workers < 2 || changes.len() < PARALLEL_MIN_FILES {
            for c in changes {
                let mut file = file_change(&self.repo, c, limits)?;
                budget.apply(&mut file);
                files.push(file);
            }
            return Ok(files);
        }
        std::thread::scope(|scope| {
            let mut receivers = Vec::with_capacity(workers);
            for worker in 0..workers {
                let (tx, rx) = std::sync::mpsc::sync_channel(LOOKAHEAD);
                let repo = self.repo.clone();
                scope.spawn(move || {
                    for c in changes.iter().skip(worker).step_by(workers) {
                        if tx.send(file_change(&repo, c, limits)).is_err() {
                            break; // the consumer stopped on an error
                        }
                    }
                });
                receivers.push(rx);
            }
            for index in 0..changes.len() {
                let mut file = receivers[index % workers]
                    .recv()
                    .map_err(|e| GitError::read("diff worker", e))??;
                budget.apply(&mut file);
                files.push(file);
            }
            Ok(files)
        })
    }
}

/// Files to diff before spreading the work over threads (below it, threads cost more
/// than they save).
const PARALLEL_MIN_FILES: usize = 64;
/// How many finished files each diff worker may hold before the consumer takes them.
const LOOKAHEAD: usize = 2;

impl Repo {
    fn object_size(&self, id: ObjectId) -> Result<u64, GitError> {
        object_size(&self.repo, id)
    }

    fn blob(&self, id: ObjectId) -> Result<Vec<u8>, GitError> {
        blob(&self.repo, id)
    }

    /// The content of `path` in commit `commit`, or `None` if it does not exist there.
    /// Fails when the file is larger than `max_bytes`.
    pub fn read_file_at(
        &self,
        commit: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, GitError> {
        let id = self.resolve_commit(commit)?;
        let tree = self
            .repo
            .find_commit(id)
            .and_then(|c| c.tree())
            .map_err(|e| GitError::read(format!("reading the tree of {id}"), e))?;
        let Some(entry) = tree
            .lookup_entry_by_path(path)
            .map_err(|e| GitError::read(format!("looking up {path} in {id}"), e))?
        else {
            return Ok(None);
        };
        if !entry.mode().is_blob() {
            return Ok(None);
        }
        let oid = entry.object_id();
        let size = self.object_size(oid)?;
        if size > max_bytes {
            return Err(GitError::Read {
                context: format!("reading {path} at {}", &commit),
                detail: format!("{size} bytes is more than the {max_bytes}-byte limit"),
            });
        }
        self.blob(oid).map(Some)
    }

    /// Names of the files (not directories) directly inside `dir` in `commit`,
    /// sorted; empty when the directory does not exist.
    pub fn list_files_at(&self, commit: &str, dir: &str) -> Result<Vec<String>, GitError> {
        let id = self.resolve_commit(commit)?;
        let tree = self
            .repo
            .find_commit(id)
            .and_then(|c| c.tree())
            .map_err(|e| GitError::read(format!("reading the tree of {id}"), e))?;
        let Some(entry) = tree
            .lookup_entry_by_path(dir)
            .map_err(|e| GitError::read(format!("looking up {dir} in {id}"), e))?
        else {
            return Ok(Vec::new());
        };
        if !entry.mode().is_tree() {
            return Ok(Vec::new());
        }
        let sub = self
            .repo
            .find_tree(entry.object_id())
            .map_err(|e| GitError::read(format!("reading {dir}"), e))?;
        let mut names = Vec::new();
        for e in sub.iter() {
            let e = e.map_err(|e| GitError::read(format!("reading {dir}"), e))?;
            if e.mode().is_blob()
                && let Ok(name) = e.filename().to_str()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Reads one changed file: status, kinds, size, and (for text under the size limit)
/// line counts and content, capped per file.
fn file_change(repo: &Repository, c: &TreeChange, limits: &Limits) -> Result<FileChange, GitError> {
    let (path, path_not_utf8) = path_string(c.location());
    let mut file = FileChange::new(path, FileStatus::Modified);
    file.path_not_utf8 = path_not_utf8;
    let (old, new) = match c {
        TreeChange::Addition { entry_mode, id, .. } => {
            file.status = FileStatus::Added;
            file.new_kind = Some(entry_kind(entry_mode.kind()));
            (None, Some((*id, entry_mode.kind())))
        }
        TreeChange::Deletion { entry_mode, id, .. } => {
            file.status = FileStatus::Deleted;
            file.old_kind = Some(entry_kind(entry_mode.kind()));
            (Some((*id, entry_mode.kind())), None)
        }
        TreeChange::Modification {
            previous_entry_mode,
            previous_id,
            entry_mode,
            id,
            ..
        } => {
            let (ok, nk) = (previous_entry_mode.kind(), entry_mode.kind());
            file.old_kind = Some(entry_kind(ok));
            file.new_kind = Some(entry_kind(nk));
            file.status = if file.old_kind != file.new_kind && !is_blob_kind_pair(ok, nk) {
                FileStatus::TypeChanged
            } else if previous_id == id && ok != nk {
                FileStatus::ModeChanged
            } else {
                FileStatus::Modified
            };
            (Some((*previous_id, ok)), Some((*id, nk)))
        }
        TreeChange::Rewrite {
            source_location,
            source_entry_mode,
            source_id,
            diff,
            entry_mode,
            id,
            copy,
            ..
        } => {
            let (old_path, old_not_utf8) = path_string(source_location.as_bstr());
            file.old_path = Some(old_path);
            file.path_not_utf8 |= old_not_utf8;
            file.status = if *copy {
                FileStatus::Copied
            } else {
                FileStatus::Renamed
            };
            file.similarity = Some(match diff {
                Some(stats) => (stats.similarity * 100.0).round().clamp(0.0, 100.0) as u8,
                None => 100,
            });
            file.old_kind = Some(entry_kind(source_entry_mode.kind()));
            file.new_kind = Some(entry_kind(entry_mode.kind()));
            (
                Some((*source_id, source_entry_mode.kind())),
                Some((*id, entry_mode.kind())),
            )
        }
    };
    if file.is_submodule() {
        // A gitlink's "content" is a commit id; there are no lines to read.
        return Ok(file);
    }

    let old_size = old
        .map(|(id, _)| object_size(repo, id))
        .transpose()?
        .unwrap_or(0);
    let new_size = new
        .map(|(id, _)| object_size(repo, id))
        .transpose()?
        .unwrap_or(0);
    file.size = new_size;
    if old_size > limits.max_file_bytes || new_size > limits.max_file_bytes {
        file.summarized = true;
        return Ok(file);
    }
    if old.map(|o| o.0) == new.map(|n| n.0) {
        return Ok(file);
    }
    let old_data = old
        .map(|(id, _)| blob(repo, id))
        .transpose()?
        .unwrap_or_default();
    let new_data = new
        .map(|(id, _)| blob(repo, id))
        .transpose()?
        .unwrap_or_default();
    if is_binary(&old_data) || is_binary(&new_data) {
        file.binary = true;
        return Ok(file);
    }
    line_diff(&old_data, &new_data, &mut file, limits);
    Ok(file)
}

fn object_size(repo: &Repository, id: ObjectId) -> Result<u64, GitError> {
    repo.find_header(id)
        .map(|h| h.size())
        .map_err(|e| GitError::read(format!("reading object {id}"), e))
}

fn blob(repo: &Repository, id: ObjectId) -> Result<Vec<u8>, GitError> {
    repo.find_object(id)
        .map(|o| o.detach().data)
        .map_err(|e| GitError::read(format!("reading blob {id}"), e))
}

/// Caps the total bytes of line content kept across one change.
struct ContentBudget {
    remaining: u64,
}

impl ContentBudget {
    /// Charges `file`'s kept lines (added first, then removed) and drops the ones that
    /// no longer fit, marking the file truncated.
    fn apply(&mut self, file: &mut FileChange) {
        for lines in [&mut file.added, &mut file.removed] {
            let mut keep = lines.len();
            for (i, line) in lines.iter().enumerate() {
                let cost = line.text.len() as u64 + LINE_OVERHEAD;
                if cost > self.remaining {
                    self.remaining = 0;
                    keep = i;
                    break;
                }
                self.remaining -= cost;
            }
            if keep < lines.len() {
                lines.truncate(keep);
                file.content_truncated = true;
            }
        }
    }
}

/// Bytes charged per kept line on top of its text.
const LINE_OVERHEAD: u64 = 8;

/// Counts added/removed lines like `git diff --numstat` and keeps their content, at
/// most `max_lines_per_file` lines per side.
fn line_diff(old: &[u8], new: &[u8], file: &mut FileChange, limits: &Limits) {
    let input = InternedInput::new(old, new);
    let mut diff = Diff::compute(Algorithm::Histogram, &input);
    diff.postprocess_lines(&input);
    file.lines_added = diff.count_additions();
    file.lines_removed = diff.count_removals();

    let max = limits.max_lines_per_file as usize;
    let mut truncated = false;
    let mut keep =
        |tokens: &[gix::diff::blob::Token], range: std::ops::Range<u32>, out: &mut Vec<Line>| {
            for index in range {
                if out.len() >= max {
                    truncated = true;
                    return;
                }
                let raw: &[u8] = input.interner[tokens[index as usize]];
                out.push(Line {
                    number: index + 1,
                    text: line_text(raw, limits.max_line_bytes as usize),
                });
            }
        };
    for hunk in diff.hunks() {
        keep(&input.after, hunk.after.clone(), &mut file.added);
        keep(&input.before, hunk.before.clone(), &mut file.removed);
    }
    file.content_truncated = truncated;
}

/// One line without its terminator, lossily decoded and bounded.
fn line_text(raw: &[u8], max: usize) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = String::from_utf8_lossy(raw);
    truncate_on_char_boundary(&text, max).to_string()
}

fn is_binary(data: &[u8]) -> bool {
    data[..data.len().min(BINARY_PROBE_BYTES)].contains(&0)
}

fn entry_kind(kind: GitEntryKind) -> EntryKind {
    match kind {
        GitEntryKind::Blob | GitEntryKind::Tree => EntryKind::File,
        GitEntryKind::BlobExecutable => EntryKind::Executable,
        GitEntryKind::Link => EntryKind::Symlink,
        GitEntryKind::Commit => EntryKind::Submodule,
    }
}

/// Regular and executable files are the same type; only their mode differs.
fn is_blob_kind_pair(a: GitEntryKind, b: GitEntryKind) -> bool {
    let blob = |k| matches!(k, GitEntryKind::Blob | GitEntryKind::BlobExecutable);
    blob(a) && blob(b)
}

/// A path as UTF-8, with invalid bytes escaped as `\xNN`; the flag says if any were.
fn path_string(path: &BStr) -> (String, bool) {
    match path.to_str() {
        Ok(s) => (s.to_string(), false),
        Err(_) => {
            let mut out = String::new();
            for chunk in path.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            (out, true)
        }
    }
}

fn commit_facts(commit: &gix::Commit<'_>, limits: &Limits) -> Result<Commit, GitError> {
    let ctx = || format!("decoding commit {}", commit.id);
    let decoded = commit.decode().map_err(|e| GitError::read(ctx(), e))?;
    let person = |s: gix::actor::SignatureRef<'_>| {
        let s = s.trim();
        Person::new(s.name.to_str_lossy(), s.email.to_str_lossy())
    };
    let author = decoded.author().map_err(|e| GitError::read(ctx(), e))?;
    let committer = decoded.committer().map_err(|e| GitError::read(ctx(), e))?;
    let message = decoded.message();
    let (body, trailers) = match message.body() {
        Some(body) => (
            body.without_trailer().to_str_lossy().trim().to_string(),
            body.trailers()
                .map(|t| Trailer {
                    key: t.token.to_str_lossy().into_owned(),
                    value: t.value.to_str_lossy().into_owned(),
                })
                .collect(),
        ),
        None => (String::new(), Vec::new()),
    };
    Ok(Commit {
        sha: commit.id.to_string(),
        time: author.seconds(),
        author: person(author),
        committer: person(committer),
        summary: message.summary().to_str_lossy().into_owned(),
        body: truncate_on_char_boundary(&body, limits.max_message_bytes as usize).to_string(),
        trailers,
        parents: decoded.parents().count() as u32,
    })
}
